//! Rows to columns, a block of rows at a time, with AVX 8 x 8 transpositions where the CPU has
//! them.
//!
//! The reader hands over column chunks, but parses rows; this is the copy in between. The
//! caller takes blocks of 64 rows and bands of 64 columns, so that a block's part of a band
//! (four cache lines of each row) and the columns' ends it writes stay in L1. Element by
//! element that is one load and one store per value; with AVX, eight rows of eight values are
//! loaded, transposed in registers (24 shuffles) and stored as eight column pieces, 40
//! instructions per 64 values instead of 128. The values are written straight into the
//! columns' spare capacity: no staging buffer, no zero-filling first.

use std::mem::MaybeUninit;

/// Rows in a block and columns in a band, for the caller's loops.
pub(crate) const TILE: usize = 64;

/// Appends `rows[r][first + c]` to `columns[c]`, every row in order, for every column given.
pub(crate) fn append_columns(rows: &[&[f32]], first: usize, columns: &mut [Vec<f32>]) {
    let count = columns.len();
    for row in rows {
        assert!(
            row.len() >= first + count,
            "a row is shorter than the columns asked for"
        );
    }
    for column in columns.iter_mut() {
        column.reserve(rows.len());
    }
    let mut spare: Vec<&mut [MaybeUninit<f32>]> = columns
        .iter_mut()
        .map(|column| &mut column.spare_capacity_mut()[..rows.len()])
        .collect();
    fill(rows, first, &mut spare);
    for column in columns.iter_mut() {
        let filled = column.len() + rows.len();
        // SAFETY: `fill` wrote the first `rows.len()` values of every column's spare capacity
        // (reserved above), each exactly once.
        #[allow(unsafe_code)]
        unsafe {
            column.set_len(filled);
        }
    }
}

/// Writes `rows[r][first + c]` to `out[c][r]` for every row and column of `out`.
fn fill(rows: &[&[f32]], first: usize, out: &mut [&mut [MaybeUninit<f32>]]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX.
        #[allow(unsafe_code)]
        unsafe {
            avx::fill(rows, first, out);
        }
        return;
    }
    fill_rectangle(rows, first, out, 0..rows.len(), 0..out.len());
}

/// [`fill`] for the rows and columns given, one value at a time.
fn fill_rectangle(
    rows: &[&[f32]],
    first: usize,
    out: &mut [&mut [MaybeUninit<f32>]],
    row_range: std::ops::Range<usize>,
    column_range: std::ops::Range<usize>,
) {
    for row in row_range {
        let values = &rows[row][first + column_range.start..first + column_range.end];
        for (column, &value) in column_range.clone().zip(values) {
            out[column][row] = MaybeUninit::new(value);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx {
    use std::arch::x86_64::{
        __m256, _mm256_loadu_ps, _mm256_permute2f128_ps, _mm256_shuffle_ps, _mm256_storeu_ps,
        _mm256_unpackhi_ps, _mm256_unpacklo_ps,
    };
    use std::mem::MaybeUninit;

    use super::fill_rectangle;

    /// [`super::fill`] in 8 x 8 blocks, the edges (fewer than eight rows or columns left) one
    /// value at a time.
    ///
    /// # Safety
    /// The CPU must have AVX.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn fill(rows: &[&[f32]], first: usize, out: &mut [&mut [MaybeUninit<f32>]]) {
        let full_rows = rows.len() / 8 * 8;
        let full_columns = out.len() / 8 * 8;
        for row in (0..full_rows).step_by(8) {
            for column in (0..full_columns).step_by(8) {
                let load = |offset: usize| {
                    let values = &rows[row + offset][first + column..first + column + 8];
                    // SAFETY: `values` holds eight f32.
                    unsafe { _mm256_loadu_ps(values.as_ptr()) }
                };
                let columns = transpose([
                    load(0),
                    load(1),
                    load(2),
                    load(3),
                    load(4),
                    load(5),
                    load(6),
                    load(7),
                ]);
                for (offset, values) in columns.into_iter().enumerate() {
                    let piece = &mut out[column + offset][row..row + 8];
                    // SAFETY: `piece` has room for eight f32 (MaybeUninit<f32> has f32's
                    // layout).
                    unsafe { _mm256_storeu_ps(piece.as_mut_ptr().cast::<f32>(), values) };
                }
            }
        }
        let columns = out.len();
        fill_rectangle(rows, first, out, 0..full_rows, full_columns..columns);
        fill_rectangle(rows, first, out, full_rows..rows.len(), 0..columns);
    }

    /// Eight rows of eight to eight columns of eight.
    #[inline]
    #[target_feature(enable = "avx")]
    fn transpose(rows: [__m256; 8]) -> [__m256; 8] {
        let [r0, r1, r2, r3, r4, r5, r6, r7] = rows;
        // Pairs of rows interleaved, then pairs of pairs: each 128-bit half then holds four
        // values of one column, from rows 0..4 (the first four rows' halves) or 4..8.
        let (a0, a1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
        let (a2, a3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
        let (a4, a5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
        let (a6, a7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
        let b0 = _mm256_shuffle_ps::<0x44>(a0, a2);
        let b1 = _mm256_shuffle_ps::<0xEE>(a0, a2);
        let b2 = _mm256_shuffle_ps::<0x44>(a1, a3);
        let b3 = _mm256_shuffle_ps::<0xEE>(a1, a3);
        let b4 = _mm256_shuffle_ps::<0x44>(a4, a6);
        let b5 = _mm256_shuffle_ps::<0xEE>(a4, a6);
        let b6 = _mm256_shuffle_ps::<0x44>(a5, a7);
        let b7 = _mm256_shuffle_ps::<0xEE>(a5, a7);
        [
            _mm256_permute2f128_ps::<0x20>(b0, b4),
            _mm256_permute2f128_ps::<0x20>(b1, b5),
            _mm256_permute2f128_ps::<0x20>(b2, b6),
            _mm256_permute2f128_ps::<0x20>(b3, b7),
            _mm256_permute2f128_ps::<0x31>(b0, b4),
            _mm256_permute2f128_ps::<0x31>(b1, b5),
            _mm256_permute2f128_ps::<0x31>(b2, b6),
            _mm256_permute2f128_ps::<0x31>(b3, b7),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_its_column_at_every_block_shape() {
        // Shapes with and without edges of fewer than eight rows or columns, and offsets;
        // appended twice, to columns that already hold values.
        for (row_count, count, first) in [
            (64, 64, 0),
            (64, 64, 3),
            (8, 8, 0),
            (13, 21, 5),
            (64, 7, 0),
            (1, 64, 9),
            (0, 64, 0),
            (64, 0, 0),
            (57, 63, 1),
        ] {
            let width = first + count + 2;
            let value = |row: usize, column: usize| (row * 1000 + column) as f32;
            let data: Vec<Vec<f32>> = (0..row_count)
                .map(|row| (0..width).map(|column| value(row, column)).collect())
                .collect();
            let rows: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
            let mut columns: Vec<Vec<f32>> = (0..count)
                .map(|column| vec![-1.0 - column as f32])
                .collect();
            append_columns(&rows, first, &mut columns);
            append_columns(&rows, first, &mut columns);
            for (column, values) in columns.iter().enumerate() {
                let expected: Vec<f32> = std::iter::once(-1.0 - column as f32)
                    .chain((0..row_count).map(|row| value(row, first + column)))
                    .chain((0..row_count).map(|row| value(row, first + column)))
                    .collect();
                assert_eq!(
                    values, &expected,
                    "{row_count} x {count} from {first}, column {column}"
                );
            }
        }
    }
}
