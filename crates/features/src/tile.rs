//! Rows to columns, a block of rows at a time.
//!
//! The reader hands over column chunks, but parses rows; this is the copy in between. The
//! caller takes blocks of 64 rows and bands of 64 columns, so that a block's part of a band
//! (four cache lines of each row) and the columns' ends it writes stay in L1.

/// Rows in a block and columns in a band, for the caller's loops.
pub(crate) const TILE: usize = 64;

/// Appends `rows[r][first + c]` to `columns[c]`, every row in order, for every column given.
pub(crate) fn append_columns(rows: &[&[f32]], first: usize, columns: &mut [Vec<f32>]) {
    for row in rows {
        assert!(
            row.len() >= first + columns.len(),
            "a row is shorter than the columns asked for"
        );
    }
    for (offset, column) in columns.iter_mut().enumerate() {
        column.extend(rows.iter().map(|row| row[first + offset]));
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
