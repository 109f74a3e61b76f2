//! Sort orders: up to three keys, `id` always last as the tie-breaker (for every log), and
//! the Midjourney log's sort keys.

use entity::midjourney::Column;
use sea_orm::sea_query::{Expr, Func, IntoColumnRef};
use serde::Serialize;

use crate::error::Error;
use crate::service::log::SortField;

/// Most caller-given sort keys.
pub const MAX_KEYS: usize = 3;

/// A column Midjourney tasks can be sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum OrderField {
    Id,
    SubmitTime,
    FinishTime,
    Quota,
}

/// Ascending or descending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Direction {
    Asc,
    Desc,
}

impl Direction {
    pub fn reversed(self) -> Direction {
        match self {
            Direction::Asc => Direction::Desc,
            Direction::Desc => Direction::Asc,
        }
    }
}

/// One sort key of a log whose sort fields are `F`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct KeyOrder<F> {
    pub field: F,
    pub direction: Direction,
}

/// One sort key of the Midjourney log.
pub type TaskOrder = KeyOrder<OrderField>;

impl SortField for OrderField {
    type Record = crate::service::TaskRecord;
    const ID: Self = OrderField::Id;

    fn expr(self) -> Expr {
        match self {
            OrderField::Id => Expr::col(Column::Id),
            OrderField::SubmitTime => coalesce(Column::SubmitTime),
            OrderField::FinishTime => coalesce(Column::FinishTime),
            OrderField::Quota => coalesce(Column::Quota),
        }
    }

    fn value(self, r: &crate::service::TaskRecord) -> i64 {
        match self {
            OrderField::Id => r.id,
            OrderField::SubmitTime => r.submit_time,
            OrderField::FinishTime => r.finish_time,
            OrderField::Quota => r.quota,
        }
    }
}

/// `col`, NULL read as 0 (as on the wire): the expression a nullable number is sorted on.
pub(crate) fn coalesce(col: impl IntoColumnRef) -> Expr {
    Func::coalesce([Expr::col(col), Expr::val(0i64)]).into()
}

/// The effective order: the given keys (default `ID DESC`), then `id` in the first key's
/// direction unless `id` is already a key. Rejects more than [`MAX_KEYS`] keys and repeats.
pub fn normalize<F: SortField>(keys: &[KeyOrder<F>]) -> Result<Vec<KeyOrder<F>>, Error> {
    if keys.len() > MAX_KEYS {
        return Err(Error::BadFilter(format!(
            "orderBy takes at most {MAX_KEYS} keys"
        )));
    }
    let mut out: Vec<KeyOrder<F>> = Vec::with_capacity(keys.len() + 1);
    for key in keys {
        if out.iter().any(|k| k.field == key.field) {
            return Err(Error::BadFilter("orderBy names a field twice".into()));
        }
        out.push(*key);
        if key.field == F::ID {
            // id is unique: keys after it could never decide anything.
            return Ok(out);
        }
    }
    let direction = out.first().map_or(Direction::Desc, |k| k.direction);
    out.push(KeyOrder {
        field: F::ID,
        direction,
    });
    Ok(out)
}
