//! Reading a stored row's columns by position, with the column's type checked by its
//! PostgreSQL type id.
//!
//! sqlx checks every value's column type before decoding it by building the column's type
//! description and comparing it with each type the Rust type accepts (for a string, five
//! descriptions, one of them built by name on every call): under the REST page that check
//! was about an eighth of the server's instructions (`valgrind --tool=callgrind`, README's
//! eighth round). On PostgreSQL a column whose type id is one the Rust type accepts is
//! decoded at once; any other column goes the checked way, so a column of a type the value
//! does not fit is refused exactly as before. Other backends always go the checked way.

use sea_orm::sqlx::postgres::{PgRow, types::Oid};
use sea_orm::sqlx::{Column, Row};
use sea_orm::{DbErr, QueryResult, TryGetable};

/// A value read from a column: the type ids (PostgreSQL's `pg_type.oid`) it is decoded
/// from unchecked, each one sqlx's own check accepts for it too.
pub(crate) trait Readable: TryGetable + Sized {
    /// The type ids read without sqlx's check.
    const OIDS: &'static [u32];
    /// `row`'s value at `index`, decoded without sqlx's type check (the caller checked the
    /// column's type id); NULL as `None`.
    fn unchecked(row: &PgRow, index: usize) -> Result<Option<Self>, sea_orm::sqlx::Error>;
}

impl Readable for String {
    /// `text`, `name`, `bpchar`, `varchar`, `unknown` (a NULL literal).
    const OIDS: &'static [u32] = &[25, 19, 1042, 1043, 705];

    fn unchecked(row: &PgRow, index: usize) -> Result<Option<Self>, sea_orm::sqlx::Error> {
        row.try_get_unchecked::<Option<String>, _>(index)
    }
}

impl Readable for i64 {
    /// `int8`: the one type sqlx accepts for an `i64`.
    const OIDS: &'static [u32] = &[20];

    fn unchecked(row: &PgRow, index: usize) -> Result<Option<Self>, sea_orm::sqlx::Error> {
        row.try_get_unchecked::<Option<i64>, _>(index)
    }
}

impl Readable for Vec<u8> {
    /// `bytea`: the one type sqlx accepts for bytes.
    const OIDS: &'static [u32] = &[17];

    fn unchecked(row: &PgRow, index: usize) -> Result<Option<Self>, sea_orm::sqlx::Error> {
        row.try_get_unchecked::<Option<Vec<u8>>, _>(index)
    }
}

/// `value`, which the column must hold: NULL is a type error naming `what`.
pub(crate) fn not_null<T>(value: Option<T>, what: &str) -> Result<T, DbErr> {
    value.ok_or_else(|| DbErr::Type(format!("{what} is NULL")))
}

/// A stored row read by position.
pub(crate) struct RowReader<'a> {
    row: &'a QueryResult,
    pg: Option<&'a PgRow>,
}

impl<'a> RowReader<'a> {
    pub(crate) fn new(row: &'a QueryResult) -> RowReader<'a> {
        RowReader {
            row,
            pg: row.try_as_pg_row(),
        }
    }

    /// The value of column `index`, NULL as `None`.
    pub(crate) fn get<T: Readable>(&self, index: usize) -> Result<Option<T>, DbErr> {
        if let Some(pg) = self.pg
            && let Some(Oid(oid)) = pg.columns().get(index).and_then(|c| c.type_info().oid())
            && T::OIDS.contains(&oid)
        {
            return T::unchecked(pg, index).map_err(|e| DbErr::Type(e.to_string()));
        }
        self.row.try_get_by_index::<Option<T>>(index)
    }

    /// The value of column `name`, which is looked for last first (a column appended to a
    /// select's list, such as a page's total): found there on PostgreSQL, it is read by
    /// position like [`RowReader::get`]; anywhere else, by name.
    pub(crate) fn get_last<T: Readable>(&self, name: &str) -> Result<Option<T>, DbErr> {
        if let Some(pg) = self.pg
            && let Some(last) = pg.columns().len().checked_sub(1)
            && pg.columns()[last].name() == name
        {
            return self.get(last);
        }
        self.row.try_get::<Option<T>>("", name)
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sqlx::postgres::PgTypeInfo;
    use sea_orm::sqlx::{Type, postgres::Postgres};

    use super::Readable;

    /// Every type id read unchecked is one sqlx's own check accepts for the type.
    #[test]
    fn the_unchecked_type_ids_are_ones_sqlx_accepts() {
        fn accepted<T: Readable + Type<Postgres>>() {
            for oid in T::OIDS {
                let ty = PgTypeInfo::with_oid(sea_orm::sqlx::postgres::types::Oid(*oid));
                assert!(
                    <T as Type<Postgres>>::compatible(&ty),
                    "type id {oid} is not one sqlx accepts for {}",
                    std::any::type_name::<T>()
                );
            }
        }
        accepted::<String>();
        accepted::<i64>();
        accepted::<Vec<u8>>();
    }
}
