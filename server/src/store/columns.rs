//! Row mappers for both stores: a struct whose fields are a row's columns in order.

/// `from_columns!(row.get => Link { id, product })` is `Link { id: row.get(0)?, product:
/// row.get(1)? }`: each field named reads the next column, so a mapper says which fields
/// its columns are and never counts. `$get` is the row's getter (`get` for SQLite's rows,
/// `try_get` for PostgreSQL's). Fields after `+` are given as they are and read no column
/// of their own (one may read a later column by number).
macro_rules! from_columns {
    ($row:ident . $get:ident => $ty:ident { $($field:ident),* $(,)? }
        $(+ { $($other:ident: $value:expr),* $(,)? })?) => {{
        let mut column = 0;
        $ty {
            $($field: {
                column += 1;
                $row.$get(column - 1)?
            },)*
            $($($other: $value,)*)?
        }
    }};
}

pub(super) use from_columns;
