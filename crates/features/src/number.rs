//! Text-to-float32 conversion for feature values, exact and fast for openSMILE's formats.

#[cfg(target_arch = "x86_64")]
mod printf_e_avx2;

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
    match parse_printf_e(text).or_else(|| parse_fast_prefix(text)) {
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
    // Up to 19 significant digits cannot overflow a u64 (leading zeros do not count, so
    // `0.0003571368` has 7); longer mantissas leave the fast path anyway.
    let mut mantissa: u64 = 0;
    let mut digits = 0u32;
    let mut significant = 0u32;
    let mut fraction_digits = 0i32;
    while let Some(&byte) = text.get(position) {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(digit));
        digits += 1;
        significant += u32::from(mantissa != 0);
        position += 1;
    }
    if text.get(position) == Some(&b'.') {
        position += 1;
        while let Some(&byte) = text.get(position) {
            let digit = byte.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(digit));
            digits += 1;
            significant += u32::from(mantissa != 0);
            fraction_digits += 1;
            position += 1;
        }
    }
    if digits == 0 || significant > 19 || mantissa >= MANTISSA_LIMIT {
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
    let value = scale(mantissa, exponent - fraction_digits)?;
    Some((if negative { -value } else { value }, position))
}

/// Mantissas from this on leave the fast path: below it, the f64 of a mantissa is exact.
const MANTISSA_LIMIT: u64 = 1 << 52;

/// `mantissa x 10^power` correctly rounded to f32, for a mantissa below 2^52, or `None` where
/// that cannot be done cheaply (the caller then uses the standard library's parser).
///
/// One f64 multiplication by the nearest f64 to 10^power (exact for 10^0..10^22, within half an
/// f64 ulp for 10^-1..10^-22), then a rounding to f32. `wide` is within two f64 ulps of the
/// exact value (two roundings of at most half an ulp each, relative). Rounding it to f32 gives
/// the exact value's correctly rounded f32 unless an f32 midpoint lies between the two; a
/// midpoint has the 29 bits that f32 drops equal to 1000...0, so a `wide` at least five ulps
/// away from that pattern is safe. The rest (and zero) take the exact routes. Unlike Clinger's
/// f32 path alone, this covers 10^-22..10^22, so `6.200000e-05` (62 x 10^-11) needs no
/// standard parser.
#[inline(always)]
fn scale(mantissa: u64, power: i32) -> Option<f32> {
    let index = usize::try_from(power + 22)
        .ok()
        .filter(|&index| index < POW10_WIDE.len())?;
    // The mantissa as an f64 through its bits (2^52 + m, minus 2^52: exact below 2^52), not
    // through an int-to-float conversion, which writes only the low half of its register and
    // so also waits for whatever the register held before (the previous number).
    let magnitude = f64::from_bits(TWO_52.to_bits() | mantissa) - TWO_52;
    let wide = magnitude * POW10_WIDE[index];
    // A mantissa below 2^52 times 10^-22..10^22 is zero or inside f32's normal range.
    if mantissa == 0 || near_f32_midpoint(wide) {
        return scale_exact(mantissa, power);
    }
    Some(wide as f32)
}

/// Whether `wide` is within four ulps of a midpoint between two f32 values (normal range):
/// the 29 mantissa bits that f32 drops are then within four of 1000...0.
#[inline(always)]
fn near_f32_midpoint(wide: f64) -> bool {
    let dropped = wide.to_bits() & ((1 << 29) - 1);
    dropped.abs_diff(1 << 28) <= 4
}

/// [`scale`] where the f64 route cannot vouch for its rounding: zero, and Clinger's fast path
/// (a mantissa and a power of ten both exact in f32, one rounding).
#[cold]
#[inline(never)]
fn scale_exact(mantissa: u64, power: i32) -> Option<f32> {
    let magnitude = mantissa as f32;
    if mantissa == 0 {
        Some(0.0)
    } else if mantissa > 1 << 24 {
        // Not exact in f32: Clinger's path does not apply.
        None
    } else if (0..=10).contains(&power) {
        Some(magnitude * POW10[power as usize])
    } else if (-10..0).contains(&power) {
        Some(magnitude / POW10[(-power) as usize])
    } else {
        None
    }
}

/// 2^52: an f64 whose low mantissa bits are an integer's own.
const TWO_52: f64 = 4_503_599_627_370_496.0;

/// 10^-22 ..= 10^22 as the nearest f64 values; 10^0 and up are exact (5^22 < 2^53).
const POW10_WIDE: [f64; 45] = [
    1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10,
    1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
    1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// SMILExtract's own rendering, `printf("%e")`: an optional minus, one digit, a point, six
/// digits, `e`, a sign and two exponent digits (`-6.224630e-01`). Checked and converted eight
/// bytes at a time; anything else (a longer mantissa, other spellings) returns `None` and takes
/// the byte-by-byte route. Like [`parse_fast_prefix`] it reads a prefix: the caller checks that
/// the field ends where it says (so `1.000000e-100` is not taken for `1.000000e-10`).
#[inline(always)]
pub(crate) fn parse_printf_e(text: &[u8]) -> Option<(f32, usize)> {
    // `d.dddddd` as one word: digits have the high nibble 3 and stay below 0x3A when 6 is
    // added; the point is 0x2E. `e±dd` as another: `e` or `E` (0x65 or 0x45), two digits.
    const HEAD: u64 = u64::from_le_bytes(*b"0.000000");
    const HEAD_MASK: u64 = 0xF0F0_F0F0_F0F0_FFF0;
    const HEAD_DIGITS: u64 = 0xF0F0_F0F0_F0F0_00F0;
    const TAIL: u32 = u32::from_le_bytes(*b"E\0\x30\x30");
    const TAIL_MASK: u32 = 0xF0F0_00DF;
    const TAIL_DIGITS: u32 = 0xF0F0_0000;
    let negative = text.first() == Some(&b'-');
    let start = usize::from(negative);
    let field: &[u8; 12] = text.get(start..start + 12)?.try_into().ok()?;
    let head = u64::from_le_bytes(field[..8].try_into().ok()?);
    let tail = u32::from_le_bytes(field[8..].try_into().ok()?);
    if head & HEAD_MASK != HEAD
        || (head + 0x0606_0606_0606_0006) & HEAD_DIGITS != HEAD & HEAD_DIGITS
        || tail & TAIL_MASK != TAIL
        || (tail + 0x0606_0000) & TAIL_DIGITS != TAIL & TAIL_DIGITS
        || !matches!(field[9], b'+' | b'-')
    {
        return None;
    }
    // No byte is below its counterpart in HEAD, so this subtracts bytewise: the digits, with a
    // zero digit in place of the point, `d0 0 d1 .. d6` = d0 x 10^7 + d1..d6. Then the eight
    // digits to an integer, the most significant first in memory: pairs, quads, the whole (the
    // classic SWAR reduction).
    let digits = head - HEAD;
    let mut value = digits;
    value = (value * 10 + (value >> 8)) & 0x00FF_00FF_00FF_00FF;
    value = (value * 100 + (value >> 16)) & 0x0000_FFFF_0000_FFFF;
    value = (value * 10_000 + (value >> 32)) & 0xFFFF_FFFF;
    let mantissa = value - (digits & 0xFF) * 9_000_000;
    let exponent = ((tail >> 16) & 0xF) as i32 * 10 + ((tail >> 24) & 0xF) as i32;
    let exponent = if field[9] == b'-' {
        -exponent
    } else {
        exponent
    };
    let magnitude = scale(mantissa, exponent - 6)?;
    let sign = u32::from(negative) << 31;
    Some((f32::from_bits(magnitude.to_bits() | sign), start + 12))
}

/// A whole number of one to seven digits, as SMILExtract writes frame positions (`maxPos`,
/// `minPos`): its value and length. Below 10^7 every whole number is an f32, so the value is
/// exact, as any parser gives it. A prefix, like [`parse_printf_e`]: the caller checks what
/// follows.
#[inline(always)]
pub(crate) fn parse_whole(text: &[u8]) -> Option<(f32, usize)> {
    let mut value = 0u32;
    for (length, &byte) in text.iter().take(8).enumerate() {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return (length > 0).then_some((value as f32, length));
        }
        value = value * 10 + u32::from(digit);
    }
    // Eight digits (or more) are left to the general parser; so is a field that is all text.
    (text.len() < 8 && !text.is_empty()).then_some((value as f32, text.len()))
}

/// Parses `%e` fields and short whole numbers ([`parse_whole`]), each followed by `delimiter`,
/// from `position` into `slots`, until a field is something else or the slots are full: how
/// many were parsed and where the next begins. The values are [`parse_printf_e`]'s and
/// [`parse_whole`]'s, bit for bit. On a CPU with AVX2 most fields take the vector route
/// (`printf_e_avx2`), and this loop the few it leaves (the end of a line, a field it turned
/// away, which this loop then turns away too or parses).
#[inline(never)]
pub(crate) fn parse_printf_e_run(
    line: &[u8],
    position: usize,
    slots: &mut [f32],
    delimiter: u8,
) -> (usize, usize) {
    #[cfg(target_arch = "x86_64")]
    if printf_e_avx2::available() {
        // SAFETY: the CPU has AVX2 and BMI1.
        #[allow(unsafe_code)]
        let (parsed, next) =
            unsafe { printf_e_avx2::parse_printf_e_fields(line, position, slots, delimiter) };
        let (more, next) = parse_printf_e_run_scalar(line, next, &mut slots[parsed..], delimiter);
        return (parsed + more, next);
    }
    parse_printf_e_run_scalar(line, position, slots, delimiter)
}

/// [`parse_printf_e_run`] one field at a time. Not inlined, so that the loop gets the
/// registers to itself: inlined into the line parser it kept its state on the stack.
#[inline(never)]
fn parse_printf_e_run_scalar(
    line: &[u8],
    mut position: usize,
    slots: &mut [f32],
    delimiter: u8,
) -> (usize, usize) {
    for (parsed, slot) in slots.iter_mut().enumerate() {
        let rest = &line[position.min(line.len())..];
        match parse_printf_e(rest).or_else(|| parse_whole(rest)) {
            Some((value, used)) if rest.get(used) == Some(&delimiter) => {
                *slot = value;
                position += used + 1;
            }
            _ => return (parsed, position),
        }
    }
    (slots.len(), position)
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

    /// `count` xorshift64 draws from `seed`.
    pub(super) fn draws(seed: u64, count: usize) -> impl Iterator<Item = u64> {
        let mut state = seed;
        (0..count).map(move |_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        })
    }

    #[test]
    fn every_printed_mantissa_round_trips_through_the_fast_path() {
        // A sweep over %e renderings: the fast path must equal the correctly rounded value.
        for state in draws(0x9E37_79B9_7F4A_7C15, 200_000) {
            let mantissa = (state % 9_000_000 + 1_000_000) as f64 / 1e6;
            let exponent = (state >> 40) as i32 % 21 - 10;
            let text = format!("{mantissa:.6}e{exponent:+03}");
            let expected: f32 = text.parse().unwrap();
            assert_eq!(number(&text).to_bits(), expected.to_bits(), "{text}");
        }
    }

    #[test]
    fn printf_e_at_every_float32_exponent_agrees_with_the_standard_parser() {
        // Exponents beyond the exact f32 powers take the f64 route with its midpoint check;
        // beyond 10^22 they fall back to the standard parser. All must give the same bits.
        for state in draws(0x2545_F491_4F6C_DD1D, 400_000) {
            let mantissa = (state % 10_000_000) as f64 / 1e6;
            let exponent = (state >> 40) as i32 % 81 - 40;
            let sign = if state >> 63 == 1 { "-" } else { "" };
            let text = format!("{sign}{mantissa:.6}e{exponent:+03}");
            let expected: f32 = text.parse().unwrap();
            let parsed = number(&text);
            assert!(
                parsed.to_bits() == expected.to_bits() || (parsed.is_nan() && expected.is_nan()),
                "{text}: {parsed:e} vs {expected:e}"
            );
        }
    }

    #[test]
    fn scaling_through_f64_is_correctly_rounded_or_declined() {
        let mut declined = 0;
        for state in draws(0x9E37_79B9_7F4A_7C15, 400_000) {
            // Mantissas of every size the fast path takes, with 1 to 16 digits.
            let mantissa = (state >> 12) % 10u64.pow((state % 16) as u32 + 1);
            let power = (state >> 40) as i32 % 45 - 22;
            let expected: f32 = format!("{mantissa}e{power}").parse().unwrap();
            match scale(mantissa, power) {
                Some(value) => {
                    assert_eq!(value.to_bits(), expected.to_bits(), "{mantissa}e{power}")
                }
                None => declined += 1,
            }
        }
        // Declined: results next to an f32 midpoint that Clinger's path cannot take (a mantissa
        // above 2^24 or a power beyond 10^+-10), mostly exact midpoints such as integers with 25
        // significant bits, whose ties only the standard parser decides. A few per 10,000 here.
        assert!(declined < 2_000, "{declined} declined");
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
    fn results_next_to_an_f32_midpoint_take_the_exact_route() {
        // Halfway between 1 and the next f32 (1 + 2^-23): 1 + 2^-24.
        let midpoint = 1.0 + 2f64.powi(-24);
        let ulps = |n: i64| f64::from_bits(midpoint.to_bits().wrapping_add_signed(n));
        for n in -4..=4 {
            assert!(near_f32_midpoint(ulps(n)), "{n} ulps");
        }
        for n in [-6, -5, 5, 6, 1 << 20] {
            assert!(!near_f32_midpoint(ulps(n)), "{n} ulps");
        }
        assert!(!near_f32_midpoint(1.0));
        assert!(!near_f32_midpoint(f64::from(0.622_463f32)));
    }

    #[test]
    fn whole_numbers_of_up_to_seven_digits_are_exact_and_longer_ones_are_declined() {
        for text in ["0", "7", "553", "0042", "1234567", "9999999", "1677721"] {
            let expected: f32 = text.parse().unwrap();
            let (value, used) = parse_whole(format!("{text};1").as_bytes()).unwrap();
            assert_eq!(
                (value.to_bits(), used),
                (expected.to_bits(), text.len()),
                "{text}"
            );
            // The end of the text ends the number too.
            assert_eq!(parse_whole(text.as_bytes()), Some((expected, text.len())));
        }
        // A prefix: the caller checks the byte after it.
        assert_eq!(parse_whole(b"12.5;"), Some((12.0, 2)));
        for declined in [
            "",
            ";1",
            "-5",
            "+5",
            " 5",
            "12345678",
            "12345678;",
            "123456789;",
        ] {
            assert_eq!(parse_whole(declined.as_bytes()), None, "{declined:?}");
        }
    }

    #[test]
    fn printf_e_shapes_outside_the_eight_byte_route_still_parse() {
        for text in [
            "1.000000e-100",
            "1.0000000e+00",
            "1.000000e+0",
            "1.000000E+01",
            "1.00000e+01",
        ] {
            let expected: f32 = text.parse().unwrap();
            assert_eq!(number(text).to_bits(), expected.to_bits(), "{text}");
        }
        assert_eq!(parse_printf_e(b"6.224630e-01;1"), Some((0.622_463, 12)));
        assert_eq!(parse_printf_e(b"-6.224630e-01"), Some((-0.622_463, 13)));
        // A prefix: the third exponent digit is left for the caller to reject.
        assert_eq!(parse_printf_e(b"6.224630e-012"), Some((0.622_463, 12)));
        assert_eq!(parse_printf_e(b"6,224630e-01"), None);
        assert_eq!(parse_printf_e(b"6.22a630e-01"), None);
        assert_eq!(parse_printf_e(b"6.224630x-01"), None);
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
