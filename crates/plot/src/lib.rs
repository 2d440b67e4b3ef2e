//! PNG figures for emocycle stages.
//!
//! Reads nothing. [`write_png`] writes one PNG, atomically through the artifact crate's writer
//! (a temporary file beside it, synced and renamed), so a crash never leaves half a figure
//! under its name. It re-exports [`plotters`] (bitmap back-end, line/point/area series, error
//! bars) and registers an embedded DejaVu Sans as the `sans-serif` family, so figures render
//! their text identically on machines with no fonts installed.

pub use plotters;

use std::path::{Path, PathBuf};
use std::sync::Once;

use image::ImageEncoder;
use image::codecs::png::PngEncoder;
use plotters::coord::Shift;
use plotters::prelude::{BitMapBackend, DrawingArea, IntoDrawingArea, WHITE};
use plotters::style::{FontStyle, register_font};

/// The drawing area a figure is drawn on: `size` pixels, white, origin top left.
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// A figure that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Drawing failed (plotters' error, or the caller's).
    #[error("{path}: drawing failed: {message}")]
    Draw {
        /// The figure.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The PNG could not be encoded or written.
    #[error(transparent)]
    Write(#[from] emocycle_artifact::ArtifactError),
}

/// Draws a `size` figure with `draw` on a white area and writes it to `path` as a PNG,
/// atomically. The drawing happens in memory: nothing is written when `draw` fails.
pub fn write_png<E: std::fmt::Display>(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), E>,
) -> Result<(), PlotError> {
    init();
    let draw_error = |message: String| PlotError::Draw {
        path: path.to_path_buf(),
        message,
    };
    let (width, height) = size;
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|error| draw_error(error.to_string()))?;
        draw(&root).map_err(|error| draw_error(error.to_string()))?;
        root.present()
            .map_err(|error| draw_error(error.to_string()))?;
    }
    emocycle_artifact::write_atomic(path, |writer| {
        PngEncoder::new(writer).write_image(&pixels, width, height, image::ColorType::Rgb8)?;
        Ok(())
    })?;
    Ok(())
}

/// DejaVu Sans 2.37 (Bitstream Vera licence, see `assets/DejaVuSans.LICENSE`).
const DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The font family every figure uses.
pub const FONT: &str = "sans-serif";

/// Registers the embedded font (idempotent, thread-safe).
fn init() {
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
    fn write_png_draws_in_memory_and_writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("figure.png");
        super::write_png(&path, (200, 100), |root| {
            root.draw(&Text::new("59.5%", (10, 40), (super::FONT, 20).into_font()))
        })
        .unwrap();
        let image = std::fs::read(&path).unwrap();
        assert_eq!(&image[1..4], b"PNG");
        assert!(image.len() > 500, "{} bytes", image.len());
        // A failing drawing writes nothing, not even a temporary file, and keeps the old file.
        let error = super::write_png(&path, (200, 100), |_| Err("no data")).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("figure.png: drawing failed: no data"),
            "{error}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), image);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

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
