//! PNG figures for emocycle stages.
//!
//! Reads and writes nothing by itself. It re-exports [`plotters`] (bitmap back-end, PNG
//! encoder, line/point/area series, error bars) and registers an embedded DejaVu Sans as the
//! `sans-serif` family, so figures render their text identically on machines with no fonts
//! installed. Call [`init`] before drawing.

pub use plotters;

use std::sync::Once;

use plotters::style::{FontStyle, register_font};

/// DejaVu Sans 2.37 (Bitstream Vera licence, see `assets/DejaVuSans.LICENSE`).
const DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The font family every figure uses.
pub const FONT: &str = "sans-serif";

/// Registers the embedded font (idempotent, thread-safe).
pub fn init() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The bytes are a valid TrueType font compiled into the binary: registration cannot fail.
        let _ = register_font(FONT, FontStyle::Normal, DEJAVU_SANS);
    });
}

#[cfg(test)]
mod tests {
    use plotters::prelude::*;

    #[test]
    fn draws_text_into_a_png() {
        super::init();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.png");
        {
            let root = BitMapBackend::new(&path, (200, 100)).into_drawing_area();
            root.fill(&WHITE).unwrap();
            root.draw(&Text::new(
                "angry 59.5%",
                (10, 40),
                (super::FONT, 20).into_font(),
            ))
            .unwrap();
            root.present().unwrap();
        }
        let image = std::fs::read(&path).unwrap();
        assert_eq!(&image[1..4], b"PNG");
        // Text was drawn: a blank white 200x100 PNG compresses to far fewer bytes.
        assert!(image.len() > 500, "{} bytes", image.len());
    }
}
