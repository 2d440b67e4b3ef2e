//! SMILExtract's `%e` fields in bulk, with AVX2: the same values, bit for bit, as
//! [`super::parse_printf_e`] field after field, in a fraction of the time.
//!
//! The scalar route is a chain: where a field ends decides where the next begins, and every
//! field is checked, converted and scaled on its own. Here four fields are taken at a time:
//! the delimiters of 64 bytes are found with two compares, so every field's end is known
//! without reading the field before; each field's bytes (`-d.dddddde±dd;`) are checked against
//! the pattern in one compare, two fields per register; and their digits are combined, their
//! powers of ten applied and their products rounded to f32 in vector registers. A field of
//! another length ends the group after the fields before it: a short whole number (a frame
//! position) is parsed on its own and the run goes on after it; anything else ends the run. A
//! group with anything else unusual in it (another spelling, a value whose f64 product cannot
//! vouch for its rounding, a power of ten outside the table, the end of the line) is left to
//! the scalar route, which takes over at the group's first field.
//!
//! The crate's `unsafe` is here, in `tile.rs` and in the calls that pick these routes: calling
//! AVX code after checking that the CPU has it, loads and stores through pointers into slices
//! whose bounds were checked just before, and (in `tile.rs`) a `set_len` over values just
//! written.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::{POW10_WIDE, parse_whole};

/// Whether this CPU can run [`parse_printf_e_fields`] (std caches the answer).
#[inline]
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("bmi1")
}

/// Parses groups of four `%e` fields, each followed by `delimiter`, from `position` into
/// `slots`, until a field has another length (the fields before it in its group are still
/// taken, and a short whole number there is taken too, after which the run goes on), a group
/// has something else unusual in it (none of it is taken), fewer than 67 bytes of the line are
/// left or fewer than four slots: how many were parsed and where the next field begins. The
/// caller continues from there on the scalar route.
///
/// # Safety
/// The CPU must have AVX2 and BMI1 ([`available`]).
#[target_feature(enable = "avx2,bmi1")]
pub(super) unsafe fn parse_printf_e_fields(
    line: &[u8],
    mut position: usize,
    slots: &mut [f32],
    delimiter: u8,
) -> (usize, usize) {
    let delimiters = _mm256_set1_epi8(delimiter as i8);
    let pattern = Pattern::new();
    let mut parsed = 0;
    // A group reads the 64 bytes from its first field and 16 bytes around each field's end,
    // at most 3 bytes past the window; `position >= 1` because each field's 16 bytes start
    // one byte before a 12-byte field.
    while position >= 1 && position + 67 <= line.len() && parsed + 4 <= slots.len() {
        let window = &line[position..position + 64];
        // SAFETY: `window` is 64 bytes long; unaligned loads.
        let (low, high) = unsafe {
            (
                _mm256_loadu_si256(window.as_ptr().cast::<__m256i>()),
                _mm256_loadu_si256(window.as_ptr().add(32).cast::<__m256i>()),
            )
        };
        let mut ends = u64::from(_mm256_movemask_epi8(_mm256_cmpeq_epi8(low, delimiters)) as u32)
            | (u64::from(_mm256_movemask_epi8(_mm256_cmpeq_epi8(high, delimiters)) as u32) << 32);
        // Four fields of 12 or 13 bytes and their delimiters fit in the window; where there
        // are fewer than four delimiters, `trailing_zeros` gives 64 and the length check fails.
        let mut next_end = || {
            let end = position + ends.trailing_zeros() as usize;
            ends &= ends.wrapping_sub(1);
            end
        };
        let ends = [next_end(), next_end(), next_end(), next_end()];
        // Past the last delimiter every end is `position + 64`, so a difference can wrap.
        let lengths = [
            ends[0] - position,
            ends[1].wrapping_sub(ends[0] + 1),
            ends[2].wrapping_sub(ends[1] + 1),
            ends[3].wrapping_sub(ends[2] + 1),
        ];
        // The fields before the first of another length (a whole number, say) are converted
        // all the same; the lanes from there on are filled with the first field again.
        let taken = lengths
            .iter()
            .position(|length| !(12..=13).contains(length))
            .unwrap_or(4);
        if taken == 0 {
            // SMILExtract writes each frame position (`maxPos`, `minPos`) as a whole number
            // between runs of `%e` fields: parsed here, the run goes on after it.
            match parse_whole(&line[position..]) {
                Some((value, used)) if line[position + used] == delimiter => {
                    slots[parsed] = value;
                    parsed += 1;
                    position += used + 1;
                    continue;
                }
                _ => break,
            }
        }
        let lane_field = |lane: usize| if lane < taken { lane } else { 0 };
        // Each field's 16 bytes from one before a 12-byte field: the sign (or the delimiter
        // before), the number, the delimiter, two more.
        let field = |lane: usize| {
            let end = ends[lane_field(lane)];
            let bytes = &line[end - 13..end + 3];
            // SAFETY: `bytes` is 16 bytes long; an unaligned load.
            unsafe { _mm_loadu_si128(bytes.as_ptr().cast::<__m128i>()) }
        };
        let first = _mm256_set_m128i(field(1), field(0));
        let second = _mm256_set_m128i(field(3), field(2));
        let negative = (0..4).fold(0, |bits, lane| {
            bits | (i32::from(lengths[lane_field(lane)] == 13) << lane)
        });
        let Some(values) = pattern.convert(first, second, negative) else {
            break;
        };
        // The loop's condition leaves room for four; the lanes past `taken` are not written.
        let out = &mut slots[parsed..parsed + 4];
        let lanes = _mm_cmpgt_epi32(_mm_set1_epi32(taken as i32), _mm_setr_epi32(0, 1, 2, 3));
        // SAFETY: `out` has room for four f32.
        unsafe { _mm_maskstore_ps(out.as_mut_ptr(), lanes, values) };
        parsed += taken;
        position = ends[taken - 1] + 1;
    }
    (parsed, position)
}

/// The constants that check and convert two fields per register, one per 128-bit lane, each
/// lane holding the 16 bytes `s d . d d d d d d e ± d d ; . .` where `s` is the field's minus
/// or the byte before it.
struct Pattern {
    fold_case: __m256i,
    lowest: __m256i,
    spans: __m256i,
    zero: __m256i,
    minus: __m256i,
    plus: __m256i,
    order: __m256i,
    tens: __m256i,
    hundreds: __m256i,
    ten_thousands: __m256i,
    in_order: __m256i,
}

impl Pattern {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new() -> Self {
        // Each byte, after `e` is folded to lower case, minus its smallest allowed value,
        // must not exceed its span: digits 0..9, the point and `e` exactly, the exponent's
        // sign `+`..`-` (the comma between them is turned away separately). The sign byte
        // (checked against the field's length), the delimiter (found there already) and the
        // two bytes after it may be anything.
        const Z: i8 = b'0' as i8;
        #[rustfmt::skip]
        let lowest = [
            0, Z, b'.' as i8, Z, Z, Z, Z, Z, Z, b'e' as i8, b'+' as i8, Z, Z, 0, 0, 0,
        ];
        #[rustfmt::skip]
        let spans = [-1, 9, 0, 9, 9, 9, 9, 9, 9, 0, 2, 9, 9, -1, -1, -1];
        let twice = |lane: [i8; 16]| {
            // SAFETY: a 16-byte load from a 16-byte array.
            unsafe {
                let lane = _mm_loadu_si128(lane.as_ptr().cast::<__m128i>());
                _mm256_set_m128i(lane, lane)
            }
        };
        let mut fold_case = [0i8; 16];
        fold_case[9] = 0x20;
        Self {
            fold_case: twice(fold_case),
            lowest: twice(lowest),
            spans: twice(spans),
            zero: _mm256_set1_epi8(Z),
            minus: _mm256_set1_epi8(b'-' as i8),
            plus: _mm256_set1_epi8(b'+' as i8),
            // The digits most significant first, as [0, d0, d1..d6, e1, e2, 0...].
            order: twice([-1, 1, 3, 4, 5, 6, 7, 8, 11, 12, -1, -1, -1, -1, -1, -1]),
            tens: twice([10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 0, 0, 0, 0, 0, 0]),
            hundreds: _mm256_setr_epi16(100, 1, 100, 1, 1, 0, 0, 0, 100, 1, 100, 1, 1, 0, 0, 0),
            ten_thousands: _mm256_setr_epi16(
                10_000, 1, 1, 0, 10_000, 1, 1, 0, 10_000, 1, 1, 0, 10_000, 1, 1, 0,
            ),
            in_order: _mm256_setr_epi32(0, 4, 2, 6, 1, 5, 3, 7),
        }
    }

    /// The four fields' values, or `None` where any of them is not `%e` as SMILExtract prints
    /// it, or needs the scalar route's care. `negative`: bit i is set where field i is 13
    /// bytes long (so its first byte must be a minus).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn convert(&self, first: __m256i, second: __m256i, negative: i32) -> Option<__m128> {
        let shaped = |pair: __m256i| {
            let offsets = _mm256_sub_epi8(_mm256_or_si256(pair, self.fold_case), self.lowest);
            _mm256_movemask_epi8(_mm256_cmpeq_epi8(
                _mm256_max_epu8(offsets, self.spans),
                self.spans,
            ))
        };
        let minus = |pair: __m256i| _mm256_movemask_epi8(_mm256_cmpeq_epi8(pair, self.minus));
        let plus = |pair: __m256i| _mm256_movemask_epi8(_mm256_cmpeq_epi8(pair, self.plus));
        let (minus_first, minus_second) = (minus(first), minus(second));
        let (sign_first, sign_second) = (minus_first | plus(first), minus_second | plus(second));
        // Byte 0 (a leading minus) and byte 10 (the exponent's sign) of the four fields.
        let at = |byte: u32, first: i32, second: i32| {
            let pair = |mask: i32| ((mask >> byte) & 1) | ((mask >> (byte + 15)) & 2);
            pair(first) | (pair(second) << 2)
        };
        if shaped(first) & shaped(second) != -1
            || at(0, minus_first, minus_second) != negative
            || at(10, sign_first, sign_second) != 0b1111
        {
            return None;
        }
        let negative_exponent = at(10, minus_first, minus_second);

        // Pairs of digits to 16 bits, pairs of those to 32: per lane [d0 x 100 + d1d2,
        // d3d4 x 100 + d5d6, e1e2, 0]. Packed to 16 bits (every part is below 10^4) and
        // combined once more: [m0, e0, m2, e2 | m1, e1, m3, e3], then put in order.
        let digits = |pair: __m256i| {
            _mm256_madd_epi16(
                _mm256_maddubs_epi16(
                    _mm256_shuffle_epi8(_mm256_sub_epi8(pair, self.zero), self.order),
                    self.tens,
                ),
                self.hundreds,
            )
        };
        let combined = _mm256_madd_epi16(
            _mm256_packs_epi32(digits(first), digits(second)),
            self.ten_thousands,
        );
        let ordered = _mm256_permutevar8x32_epi32(combined, self.in_order);
        let mantissas = _mm256_castsi256_si128(ordered);
        let exponents = _mm256_extracti128_si256::<1>(ordered);

        // The power of ten is the exponent minus six, its index in the table that plus 22.
        let negate = lanes_of(negative_exponent);
        let indices = _mm_add_epi32(
            _mm_sub_epi32(_mm_xor_si128(exponents, negate), negate),
            _mm_set1_epi32(22 - 6),
        );
        let last = _mm_set1_epi32(POW10_WIDE.len() as i32 - 1);
        if _mm_movemask_epi8(_mm_cmpeq_epi32(_mm_min_epu32(indices, last), indices)) != 0xFFFF {
            return None;
        }
        // Four loads rather than a gather instruction: with the microcode that guards against
        // gather data sampling, a gather costs tens of cycles.
        let mut index_lanes = [0u32; 4];
        // SAFETY: a 16-byte store into a 16-byte array.
        unsafe { _mm_storeu_si128(index_lanes.as_mut_ptr().cast::<__m128i>(), indices) };
        let power = |lane: usize| POW10_PADDED[index_lanes[lane] as usize % POW10_PADDED.len()];
        let powers = _mm256_setr_pd(power(0), power(1), power(2), power(3));
        let wide = _mm256_mul_pd(_mm256_cvtepi32_pd(mantissas), powers);
        // As in `scale`: within four f64 ulps of an f32 midpoint the rounding below cannot be
        // trusted. (A zero mantissa needs nothing special here: zero times a power of ten is
        // exactly zero, as `scale`'s exact route gives.)
        let dropped = _mm256_sub_epi64(
            _mm256_and_si256(_mm256_castpd_si256(wide), _mm256_set1_epi64x((1 << 29) - 1)),
            _mm256_set1_epi64x((1 << 28) - 4),
        );
        let near_midpoint = _mm256_andnot_si256(
            _mm256_cmpgt_epi64(dropped, _mm256_set1_epi64x(8)),
            _mm256_cmpgt_epi64(dropped, _mm256_set1_epi64x(-1)),
        );
        if _mm256_movemask_pd(_mm256_castsi256_pd(near_midpoint)) != 0 {
            return None;
        }
        let signs = _mm_slli_epi32::<31>(lanes_of(negative));
        Some(_mm_or_ps(_mm256_cvtpd_ps(wide), _mm_castsi128_ps(signs)))
    }
}

/// [`POW10_WIDE`] padded with ones to a power-of-two length, so that a masked index needs no
/// bounds check.
const POW10_PADDED: [f64; 64] = {
    let mut padded = [1.0; 64];
    let mut index = 0;
    while index < POW10_WIDE.len() {
        padded[index] = POW10_WIDE[index];
        index += 1;
    }
    padded
};

/// All ones in lane i (of four 32-bit lanes) where bit i of `bits` is set.
#[inline]
#[target_feature(enable = "avx2")]
fn lanes_of(bits: i32) -> __m128i {
    let selectors = _mm_setr_epi32(1, 2, 4, 8);
    _mm_cmpeq_epi32(_mm_and_si128(_mm_set1_epi32(bits), selectors), selectors)
}

#[cfg(test)]
mod tests {
    use super::super::tests::draws;
    use super::super::{near_f32_midpoint, parse_printf_e_run, parse_printf_e_run_scalar};
    use super::*;

    /// `%e` as SMILExtract prints it, from a seven-digit mantissa and the printed exponent.
    fn printf_e(negative: bool, mantissa: u32, exponent: i32, upper: bool) -> String {
        let sign = if negative { "-" } else { "" };
        let e = if upper { 'E' } else { 'e' };
        format!(
            "{sign}{}.{:06}{e}{exponent:+03}",
            mantissa / 1_000_000,
            mantissa % 1_000_000
        )
    }

    /// Both routes on `line` from `position` into `slots` slots: the same count, position and
    /// bits.
    fn assert_routes_agree(line: &[u8], position: usize, slots: usize, delimiter: u8) {
        let mut vector = vec![f32::NAN; slots];
        let mut scalar = vec![f32::NAN; slots];
        // SAFETY: the callers checked `available()`.
        let (vector_parsed, vector_next) =
            unsafe { parse_printf_e_fields(line, position, &mut vector, delimiter) };
        let (more, vector_next) =
            parse_printf_e_run_scalar(line, vector_next, &mut vector[vector_parsed..], delimiter);
        let (scalar_parsed, scalar_next) =
            parse_printf_e_run_scalar(line, position, &mut scalar, delimiter);
        let text = String::from_utf8_lossy(line);
        assert_eq!(
            (vector_parsed + more, vector_next),
            (scalar_parsed, scalar_next),
            "{text}"
        );
        for (index, (a, b)) in vector.iter().zip(&scalar).enumerate().take(scalar_parsed) {
            assert_eq!(a.to_bits(), b.to_bits(), "field {index} of {text}");
        }
    }

    fn skip_without_avx2() -> bool {
        if available() {
            return false;
        }
        eprintln!("this CPU has no AVX2: the vector route is not used here, nothing to compare");
        true
    }

    #[test]
    fn the_vector_route_agrees_with_the_scalar_route_on_mangled_lines() {
        if skip_without_avx2() {
            return;
        }
        // Lines of mostly well-formed fields with every kind of flaw mixed in: other
        // spellings, a byte replaced, exponents outside the table, zeros, short and long
        // fields, a comma for the exponent's sign, empty fields, and slot counts that end
        // mid-line.
        let replacements = b";,.+-eE0 9x'";
        let mut random = draws(0x5DEE_CE66_D1CE_4E5B, usize::MAX);
        for round in 0..4_000u32 {
            let delimiter = if round.is_multiple_of(3) { b',' } else { b';' };
            let fields = (random.next().unwrap() % 60) as usize + 1;
            let mut line = String::from("'id'");
            for _ in 0..fields {
                line.push(delimiter as char);
                let draw = random.next().unwrap();
                let mantissa = if draw.is_multiple_of(17) {
                    0
                } else {
                    (draw >> 8) as u32 % 10_000_000
                };
                let exponent = if draw.is_multiple_of(13) {
                    (draw >> 40) as i32 % 61 - 30
                } else {
                    (draw >> 40) as i32 % 9 - 4
                };
                let mut field =
                    printf_e(draw >> 63 == 1, mantissa, exponent, draw.is_multiple_of(29));
                match (draw >> 32) % 41 {
                    // Whole numbers of one to nine digits: up to seven are taken.
                    0 => field = format!("{}", (draw >> 20) % 10u64.pow(1 + (draw % 9) as u32)),
                    40 => {
                        field =
                            "'a long quoted field, longer than a 64-byte window by itself'".into()
                    }
                    1 => field.clear(),
                    2 => field.push('0'),
                    3 => {
                        field.remove(field.len() - 1);
                    }
                    4..=7 => {
                        let index = (draw >> 24) as usize % field.len();
                        let byte = replacements[(draw >> 48) as usize % replacements.len()];
                        field.replace_range(index..=index, &(byte as char).to_string());
                    }
                    _ => {}
                }
                line.push_str(&field);
            }
            if round.is_multiple_of(2) {
                line.push(delimiter as char);
            }
            let line = line.as_bytes();
            let slots = if round.is_multiple_of(5) {
                (random.next().unwrap() % (fields as u64 + 1)) as usize
            } else {
                fields
            };
            assert_routes_agree(line, 5, slots, delimiter);
        }
    }

    #[test]
    fn the_vector_route_takes_every_field_but_the_last_few() {
        if skip_without_avx2() {
            return;
        }
        let fields: Vec<String> = draws(0x0123_4567_89AB_CDEF, 300)
            .map(|draw| printf_e(draw % 3 == 0, (draw >> 8) as u32 % 10_000_000, -3, false))
            .collect();
        let line = format!("'a';{}", fields.join(";"));
        let mut values = vec![0f32; fields.len() - 1];
        // SAFETY: the CPU has AVX2.
        let (parsed, next) =
            unsafe { parse_printf_e_fields(line.as_bytes(), 4, &mut values, b';') };
        // It stops where fewer than 67 bytes are left: at most five fields before the end.
        assert!(parsed >= fields.len() - 6, "{parsed} of {}", fields.len());
        assert!(
            line.len() - next < 68 + 14,
            "stopped {} bytes before the end",
            line.len() - next
        );
    }

    #[test]
    fn the_run_goes_on_after_a_whole_number() {
        if skip_without_avx2() {
            return;
        }
        // SMILExtract writes positions (`maxPos`, `minPos`) as whole numbers, in pairs, between
        // runs of `%e` fields: the vector route takes every field before such a pair (also
        // those of the group it falls in), the pair, and the fields after it.
        let fields: Vec<String> = (1..=9).map(|n| format!("-{n}.250000e-0{n}")).collect();
        let tail: Vec<String> = (1..=20)
            .map(|n| format!("{}.{:06}e+0{}", n % 9 + 1, n * 4_321, n % 4))
            .collect();
        for before in 0..=fields.len() {
            for pair in [["553", "685"], ["0", "1234567"]] {
                let all: Vec<&str> = fields[..before]
                    .iter()
                    .map(String::as_str)
                    .chain(pair)
                    .chain(tail.iter().map(String::as_str))
                    .collect();
                let line = format!("'a';{};", all.join(";"));
                let mut values = vec![f32::NAN; all.len()];
                // SAFETY: the CPU has AVX2.
                let (parsed, next) =
                    unsafe { parse_printf_e_fields(line.as_bytes(), 4, &mut values, b';') };
                // It stops where fewer than 67 bytes are left: within the tail's last six.
                assert!(parsed >= all.len() - 6, "{parsed} of {}: {line}", all.len());
                let taken = all[..parsed]
                    .iter()
                    .map(|text| text.len() + 1)
                    .sum::<usize>();
                assert_eq!(next, 4 + taken, "{line}");
                for (text, value) in all.iter().zip(&values[..parsed]) {
                    let expected: f32 = text.parse().unwrap();
                    assert_eq!(value.to_bits(), expected.to_bits(), "{text} in {line}");
                }
                assert_routes_agree(line.as_bytes(), 4, all.len(), b';');
            }
        }
    }

    #[test]
    fn values_next_to_an_f32_midpoint_agree_with_the_standard_parser() {
        if skip_without_avx2() {
            return;
        }
        // Mantissas and powers whose product is an f32 midpoint (for example an odd mantissa
        // times ten between 2^25 and 2^26, where f32 steps by four): the vector route must
        // hand them to the scalar one.
        let mut near = Vec::new();
        for power in 1..=3 {
            let candidates = (1_000_000..10_000_000u32)
                .filter(|&mantissa| near_f32_midpoint(f64::from(mantissa) * 10f64.powi(power)))
                .take(12);
            near.extend(candidates.map(|mantissa| (mantissa, power + 6)));
        }
        assert!(
            near.len() >= 32,
            "only {} near-midpoint values found",
            near.len()
        );
        let fields: Vec<String> = near
            .iter()
            .enumerate()
            .flat_map(|(index, &(mantissa, exponent))| {
                [
                    printf_e(index % 2 == 1, mantissa, exponent, false),
                    printf_e(false, 1_234_567, -2, false),
                ]
            })
            .collect();
        let line = format!("x;{};", fields.join(";"));
        assert_routes_agree(line.as_bytes(), 2, fields.len(), b';');
        let mut values = vec![0f32; fields.len()];
        let (parsed, _) = parse_printf_e_run(line.as_bytes(), 2, &mut values, b';');
        assert_eq!(parsed, fields.len());
        for (text, value) in fields.iter().zip(&values) {
            let expected: f32 = text.parse().unwrap();
            assert_eq!(value.to_bits(), expected.to_bits(), "{text}");
        }
    }

    #[test]
    fn whole_lines_agree_with_the_standard_parser() {
        if skip_without_avx2() {
            return;
        }
        // 400,000 values at every exponent SMILExtract prints for an f32, in lines of 1,000
        // fields: every value must be the correctly rounded f32. A run stops only at a power
        // of ten beyond the table, which is then skipped as the line parser would parse it.
        let mut random = draws(0x2545_F491_4F6C_DD1D, usize::MAX);
        for _ in 0..400 {
            let fields: Vec<String> = (0..1_000)
                .map(|_| {
                    let draw = random.next().unwrap();
                    let exponent = if draw.is_multiple_of(10) {
                        (draw >> 40) as i32 % 81 - 40
                    } else {
                        (draw >> 40) as i32 % 45 - 16
                    };
                    printf_e(draw >> 63 == 1, (draw % 10_000_000) as u32, exponent, false)
                })
                .collect();
            let line = format!("'a';0.000000;{};", fields.join(";"));
            let line = line.as_bytes();
            assert_routes_agree(line, 13, fields.len(), b';');
            let mut values = vec![0f32; fields.len()];
            let (mut index, mut position) = (0, 13);
            while index < fields.len() {
                let (parsed, next) = parse_printf_e_run(line, position, &mut values[index..], b';');
                for (text, value) in fields[index..index + parsed].iter().zip(&values[index..]) {
                    let expected: f32 = text.parse().unwrap();
                    assert_eq!(value.to_bits(), expected.to_bits(), "{text}");
                    position += text.len() + 1;
                }
                assert_eq!(next, position);
                index += parsed;
                if let Some(text) = fields.get(index) {
                    let exponent: i32 = text.rsplit('e').next().unwrap().parse().unwrap();
                    assert!(!(-16..=28).contains(&exponent), "{text} stopped the run");
                    position += text.len() + 1;
                    index += 1;
                }
            }
        }
    }
}
