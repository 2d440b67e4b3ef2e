//! Rows to columns, one 64 x 64 tile at a time, with AVX 8 x 8 transpositions where the CPU
//! has them.
//!
//! The reader hands over column chunks, but parses rows; this is the copy in between. A tile
//! is read row by row (four cache lines of each row) into a buffer small enough to stay in L1;
//! the caller then appends its columns to the chunk's. Element by element that is one load and
//! one store per value; with AVX, eight rows of eight values are loaded, transposed in registers
//! (24 shuffles) and stored as eight column pieces, 40 instructions per 64 values instead of
//! 128.

/// Rows and columns of a tile.
pub(crate) const TILE: usize = 64;

/// Copies `rows[r][first + c]` to `tile[c][r]`, for every row (at most [`TILE`]) and
/// `c < count` (at most [`TILE`]).
pub(crate) fn fill_tile(
    rows: &[&[f32]],
    first: usize,
    count: usize,
    tile: &mut [[f32; TILE]; TILE],
) {
    assert!(rows.len() <= TILE && count <= TILE);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX.
        #[allow(unsafe_code)]
        unsafe {
            avx::fill_tile(rows, first, count, tile);
        }
        return;
    }
    fill_rectangle(rows, first, tile, 0..rows.len(), 0..count);
}

/// [`fill_tile`] for the rows and columns given, one value at a time.
fn fill_rectangle(
    rows: &[&[f32]],
    first: usize,
    tile: &mut [[f32; TILE]; TILE],
    row_range: std::ops::Range<usize>,
    column_range: std::ops::Range<usize>,
) {
    for row in row_range {
        let values = &rows[row][first + column_range.start..first + column_range.end];
        for (column, &value) in column_range.clone().zip(values) {
            tile[column][row] = value;
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

    use super::{TILE, fill_rectangle};

    /// [`super::fill_tile`] in 8 x 8 blocks, the edges (fewer than eight rows or columns left)
    /// one value at a time.
    ///
    /// # Safety
    /// The CPU must have AVX.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn fill_tile(
        rows: &[&[f32]],
        first: usize,
        count: usize,
        tile: &mut [[f32; TILE]; TILE],
    ) {
        let full_rows = rows.len() / 8 * 8;
        let full_columns = count / 8 * 8;
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
                    let out = &mut tile[column + offset][row..row + 8];
                    // SAFETY: `out` holds eight f32.
                    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), values) };
                }
            }
        }
        fill_rectangle(rows, first, tile, 0..full_rows, full_columns..count);
        fill_rectangle(rows, first, tile, full_rows..rows.len(), 0..count);
    }

    /// Eight rows of eight to eight columns of eight.
    #[inline]
    #[target_feature(enable = "avx")]
    fn transpose(rows: [__m256; 8]) -> [__m256; 8] {
        let [r0, r1, r2, r3, r4, r5, r6, r7] = rows;
        // Pairs of rows interleaved, then pairs of pairs: each 128-bit half then holds four
        // values of one column, from rows 0..4 (low halves' sources) or 4..8.
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
    fn every_value_lands_in_its_column_at_every_tile_shape() {
        // Shapes with and without edges of fewer than eight rows or columns, and offsets.
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
            let data: Vec<Vec<f32>> = (0..row_count)
                .map(|row| {
                    (0..width)
                        .map(|column| (row * 1000 + column) as f32)
                        .collect()
                })
                .collect();
            let rows: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
            let mut tile = [[f32::NAN; TILE]; TILE];
            fill_tile(&rows, first, count, &mut tile);
            let mut expected = [[f32::NAN; TILE]; TILE];
            fill_rectangle(&rows, first, &mut expected, 0..row_count, 0..count);
            for column in 0..TILE {
                for row in 0..TILE {
                    let (got, want) = (tile[column][row], expected[column][row]);
                    assert!(
                        got.to_bits() == want.to_bits(),
                        "{row_count} x {count} from {first}: tile[{column}][{row}] = {got}, \
                         expected {want}"
                    );
                    if row < row_count && column < count {
                        assert_eq!(want, (row * 1000 + first + column) as f32);
                    }
                }
            }
        }
    }
}
