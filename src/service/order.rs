//! Sort orders: up to three keys, `id` always last as the tie-breaker.

use entity::midjourney::Column;
use sea_orm::sea_query::{Expr, Func};
use serde::Serialize;

use crate::error::Error;

/// Most caller-given sort keys.
pub const MAX_KEYS: usize = 3;

/// A column tasks can be sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum OrderField {
    Id,
    SubmitTime,
    FinishTime,
    Quota,
}

/// Ascending or descending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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

/// One sort key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TaskOrder {
    pub field: OrderField,
    pub direction: Direction,
}

impl OrderField {
    /// The expression sorted on: NULL reads as 0, as on the wire.
    pub fn expr(self) -> Expr {
        match self {
            OrderField::Id => Expr::col(Column::Id),
            OrderField::SubmitTime => coalesce(Column::SubmitTime),
            OrderField::FinishTime => coalesce(Column::FinishTime),
            OrderField::Quota => coalesce(Column::Quota),
        }
    }

    /// This key's value in a record (for cursors).
    pub fn value(self, r: &crate::service::TaskRecord) -> i64 {
        match self {
            OrderField::Id => r.id,
            OrderField::SubmitTime => r.submit_time,
            OrderField::FinishTime => r.finish_time,
            OrderField::Quota => r.quota,
        }
    }
}

fn coalesce(col: Column) -> Expr {
    Func::coalesce([Expr::col(col), Expr::val(0i64)]).into()
}

/// The effective order: the given keys (default `ID DESC`), then `id` in the first key's
/// direction unless `id` is already a key. Rejects more than [`MAX_KEYS`] keys and repeats.
pub fn normalize(keys: &[TaskOrder]) -> Result<Vec<TaskOrder>, Error> {
    if keys.len() > MAX_KEYS {
        return Err(Error::BadFilter(format!(
            "orderBy takes at most {MAX_KEYS} keys"
        )));
    }
    let mut out: Vec<TaskOrder> = Vec::with_capacity(keys.len() + 1);
    for key in keys {
        if out.iter().any(|k| k.field == key.field) {
            return Err(Error::BadFilter("orderBy names a field twice".into()));
        }
        out.push(*key);
        if key.field == OrderField::Id {
            // id is unique: keys after it could never decide anything.
            return Ok(out);
        }
    }
    let direction = out.first().map_or(Direction::Desc, |k| k.direction);
    out.push(TaskOrder {
        field: OrderField::Id,
        direction,
    });
    Ok(out)
}
