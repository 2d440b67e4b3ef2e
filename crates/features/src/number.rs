//! Text-to-float32 conversion for feature values, correctly rounded, by `fast-float2` (the
//! parser polars' own CSV reader uses).
//!
//! The ingestion benchmark's three routes on its 388 MB SMILExtract-style CSV (2-core AMD
//! EPYC, 5 alternating runs, the feature stage's whole work): hand-written `%e` fast paths with
//! AVX2 parsing, AVX transposition and AVX2 statistics 0.39 to 0.43 s; the same fast paths
//! scalar 0.51 to 0.52 s; `fast-float2` with no vector code of our own 0.65 to 0.68 s, every
//! output file the same byte for byte on all three. The fraction of a second per 388 MB did not
//! pay for about 1,400 lines of hand-written parsing and SIMD with 15 unsafe blocks, so only
//! `fast-float2` is left (docs/benchmarks.md).

/// What a feature field holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    /// A number (possibly NaN or infinite, spelled out in the file).
    Number(f32),
    /// An empty field or ARFF's `?`.
    Missing,
}

/// Parses one feature field, surrounding ASCII white space ignored. `None` means the text is
/// not a number.
#[inline]
pub(crate) fn parse_field(field: &[u8]) -> Option<Value> {
    let field = field.trim_ascii();
    if field.is_empty() || field == b"?" {
        return Some(Value::Missing);
    }
    fast_float2::parse::<f32, _>(field).ok().map(Value::Number)
}

/// The number at the start of `text` and the bytes it spans; `None` when `text` does not
/// start with one. The reader calls it on whole lines, so that a field is scanned once
/// instead of being split off first and parsed after.
#[inline]
pub(crate) fn parse_prefix(text: &[u8]) -> Option<(f32, usize)> {
    fast_float2::parse_partial::<f32, _>(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> f32 {
        match parse_field(text.as_bytes()) {
            Some(Value::Number(value)) => value,
            other => panic!("{text:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn printf_and_plain_numbers_agree_with_the_standard_parser() {
        let samples = [
            "6.224630e-01",
            "-1.234000e+01",
            "0",
            "12",
            "-0",
            "0.000000e+00",
            "9.999999e+09",
            "1.677722e+07",
            "3.402823e+38",
            "1.175494e-38",
            "1.000000e-10",
            "123.456",
            "-7.5",
            "4.000000e+00",
            "2.500000e-05",
            "16777216",
            "16777217",
            "8.388609e+06",
        ];
        for text in samples {
            let expected: f32 = text.parse().unwrap();
            assert_eq!(number(text).to_bits(), expected.to_bits(), "{text}");
        }
    }

    /// `count` xorshift64 draws from `seed`.
    fn draws(seed: u64, count: usize) -> impl Iterator<Item = u64> {
        let mut state = seed;
        (0..count).map(move |_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        })
    }

    #[test]
    fn every_printed_mantissa_is_correctly_rounded() {
        // A sweep over %e renderings: the parser must equal the correctly rounded value.
        for state in draws(0x9E37_79B9_7F4A_7C15, 200_000) {
            let mantissa = (state % 9_000_000 + 1_000_000) as f64 / 1e6;
            let exponent = (state >> 40) as i32 % 21 - 10;
            let text = format!("{mantissa:.6}e{exponent:+03}");
            let expected: f32 = text.parse().unwrap();
            assert_eq!(number(&text).to_bits(), expected.to_bits(), "{text}");
        }
    }

    #[test]
    fn shortest_float_renderings_agree_with_the_standard_parser() {
        // What pandas and Python write: the shortest text that reads back as the same float,
        // plain (`0.0003571368`) or scientific (`6.84083e-5`), of f32 and of f64 values.
        for state in draws(0x5DEE_CE66_D1CE_4E5B, 200_000) {
            let single = f32::from_bits((state as u32) & 0x7F7F_FFFF | 0x0080_0000);
            let double = f64::from_bits(state & 0x7FEF_FFFF_FFFF_FFFF | 0x0010_0000_0000_0000);
            for text in [
                format!("{single}"),
                format!("{single:e}"),
                format!("{}", double % 1e6),
                format!("{double:e}"),
            ] {
                let expected: f32 = text.parse().unwrap();
                let parsed = number(&text);
                assert_eq!(parsed.to_bits(), expected.to_bits(), "{text}");
            }
        }
    }

    #[test]
    fn random_number_like_text_is_accepted_and_rounded_as_the_standard_parser_does() {
        // Fields built from the characters numbers are made of: whatever the standard library
        // accepts must parse to the same bits, and what it refuses must be refused (`None`),
        // never mangled into a number.
        let alphabet = b"0123456789+-.eE";
        for state in draws(0xD1B5_4A32_D192_ED03, 300_000) {
            let length = (state % 12 + 1) as usize;
            let text: String = (0..length)
                .map(|i| {
                    alphabet[((state >> (5 + 4 * i)) % alphabet.len() as u64) as usize] as char
                })
                .collect();
            let expected = text.parse::<f32>().ok();
            let parsed = match parse_field(text.as_bytes()) {
                Some(Value::Number(value)) => Some(value),
                Some(Value::Missing) => unreachable!("{text:?} is not empty"),
                None => None,
            };
            assert_eq!(
                parsed.map(f32::to_bits),
                expected.map(f32::to_bits),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_prefix_is_the_number_that_opens_a_line() {
        assert_eq!(parse_prefix(b"6.224630e-01;1"), Some((0.622463, 12)));
        assert_eq!(parse_prefix(b"12;x"), Some((12.0, 2)));
        assert_eq!(parse_prefix(b"-7.5"), Some((-7.5, 4)));
        assert_eq!(parse_prefix(b";1"), None);
        assert_eq!(parse_prefix(b"'a';1"), None);
    }

    #[test]
    fn missing_and_non_finite_values() {
        assert_eq!(parse_field(b""), Some(Value::Missing));
        assert_eq!(parse_field(b" ? "), Some(Value::Missing));
        assert!(number("nan").is_nan());
        assert!(number("NaN").is_nan());
        assert_eq!(number("-inf"), f32::NEG_INFINITY);
        assert_eq!(number("inf"), f32::INFINITY);
        assert_eq!(parse_field(b"1.0.0"), None);
        assert_eq!(parse_field(b"abc"), None);
        assert_eq!(parse_field(b"1e"), None);
    }
}
