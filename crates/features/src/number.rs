//! Text-to-float32 conversion for feature values, exact and fast for openSMILE's formats.

/// Powers of ten that are exact in f32 (5^10 < 2^24).
const POW10: [f32; 11] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];

/// What a feature field holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    /// A number (possibly NaN or infinite, spelled out in the file).
    Number(f32),
    /// An empty field or ARFF's `?`.
    Missing,
}

/// Parses one feature field. `None` means the text is not a number.
///
/// SMILExtract prints `%e` with six decimals (`6.224630e-01`) or whole numbers; those take a
/// fast path that is still correctly rounded: a mantissa of at most 2^24 and a power of ten of at
/// most 10^10 are both exact in f32, so one multiplication or division rounds once (Clinger's
/// fast path). Everything else goes through the standard library's correctly rounded parser.
#[inline]
pub(crate) fn parse_field(field: &[u8]) -> Option<Value> {
    let field = field.trim_ascii();
    if field.is_empty() || field == b"?" {
        return Some(Value::Missing);
    }
    if let Some(value) = parse_fast(field) {
        return Some(Value::Number(value));
    }
    std::str::from_utf8(field)
        .ok()?
        .parse::<f32>()
        .ok()
        .map(Value::Number)
}

#[inline]
fn parse_fast(text: &[u8]) -> Option<f32> {
    match parse_fast_prefix(text) {
        Some((value, used)) if used == text.len() => Some(value),
        _ => None,
    }
}

/// The fast path on the number at the start of `text`: its value and the bytes it spans, or
/// `None` where the fast path does not apply (the caller then takes the general route). The
/// reader calls it on whole lines, so that a field is scanned once instead of being split off
/// first and parsed after.
#[inline]
pub(crate) fn parse_fast_prefix(text: &[u8]) -> Option<(f32, usize)> {
    let mut position = 0;
    let negative = match text.first()? {
        b'-' => {
            position = 1;
            true
        }
        b'+' => {
            position = 1;
            false
        }
        _ => false,
    };
    // Up to 9 digits cannot overflow a u32; longer mantissas leave the fast path anyway.
    let mut mantissa: u32 = 0;
    let mut digits = 0u32;
    let mut fraction_digits = 0i32;
    while let Some(&byte) = text.get(position) {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u32::from(digit));
        digits += 1;
        position += 1;
    }
    if text.get(position) == Some(&b'.') {
        position += 1;
        while let Some(&byte) = text.get(position) {
            let digit = byte.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u32::from(digit));
            digits += 1;
            fraction_digits += 1;
            position += 1;
        }
    }
    if digits == 0 || digits > 9 || mantissa > (1 << 24) {
        return None;
    }
    let mut exponent = 0i32;
    if matches!(text.get(position), Some(b'e' | b'E')) {
        position += 1;
        let exponent_negative = match text.get(position) {
            Some(b'-') => {
                position += 1;
                true
            }
            Some(b'+') => {
                position += 1;
                false
            }
            _ => false,
        };
        let start = position;
        while let Some(&byte) = text.get(position) {
            if !byte.is_ascii_digit() || position - start >= 4 {
                break;
            }
            exponent = exponent * 10 + i32::from(byte - b'0');
            position += 1;
        }
        if position == start {
            return None;
        }
        if exponent_negative {
            exponent = -exponent;
        }
    }
    let power = exponent - fraction_digits;
    let magnitude = mantissa as f32;
    let value = if (0..=10).contains(&power) {
        magnitude * POW10[power as usize]
    } else if (-10..0).contains(&power) {
        magnitude / POW10[(-power) as usize]
    } else {
        return None;
    };
    Some((if negative { -value } else { value }, position))
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
    fn fast_path_agrees_with_the_standard_parser() {
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

    #[test]
    fn every_printed_mantissa_round_trips_through_the_fast_path() {
        // A sweep over %e renderings: the fast path must equal the correctly rounded value.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mantissa = (state % 9_000_000 + 1_000_000) as f64 / 1e6;
            let exponent = (state >> 40) as i32 % 21 - 10;
            let text = format!("{mantissa:.6}e{exponent:+03}");
            let expected: f32 = text.parse().unwrap();
            assert_eq!(number(&text).to_bits(), expected.to_bits(), "{text}");
        }
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
