//! Turning a filter's leaves into SeaORM conditions, for every log's columns (the
//! Midjourney filter's own leaves at the end).
//!
//! Every leaf is two-valued: a NULL column compares as the value the wire shows for it (`0`
//! or `""`), so a leaf is widened with `OR col IS NULL` when its predicate holds for that
//! value and narrowed with `col IS NOT NULL AND …` when it does not. SQL's three-valued logic
//! then never reaches `not`, and what a client sees and what it can filter on agree under any
//! nesting. String equality is byte for byte and text patterns fold case the same way on
//! every backend (see [`fold`](crate::service::fold)).

use entity::midjourney::Column;
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{ColumnTrait, DbBackend, Value};

use crate::service::filter::{NumFilter, StringFilter, TaskFilter, TextFilter};
use crate::service::fold;

impl TaskFilter {
    /// This node's own leaves (not its `and`/`or`/`not`) as one condition.
    pub(crate) fn leaves(&self, backend: DbBackend) -> Condition {
        let mut all = all_of();
        let nums = [
            (Column::Id, &self.id, false),
            (Column::UserId, &self.user_id, true),
            (Column::ChannelId, &self.channel_id, true),
            (Column::SubmitTime, &self.submit_time, true),
            (Column::StartTime, &self.start_time, true),
            (Column::FinishTime, &self.finish_time, true),
            (Column::Quota, &self.quota, true),
        ];
        for (col, f, nullable) in nums {
            if let Some(f) = f {
                all = all.add(num_condition(col, f, nullable));
            }
        }
        for (col, f) in [
            (Column::MjId, &self.mj_id),
            (Column::Action, &self.action),
            (Column::Status, &self.status),
        ] {
            if let Some(f) = f {
                all = all.add(string_condition(backend, col, f));
            }
        }
        for (col, f) in [
            (Column::Prompt, &self.prompt),
            (Column::FailReason, &self.fail_reason),
        ] {
            if let Some(f) = f {
                all = all.add(text_condition(backend, col, f));
            }
        }
        if let Some(finished) = self.finished {
            all = all.add(finished_condition(backend, Column::Progress, finished));
        }
        if let Some(has) = self.has_image {
            let empty = leaf(
                Column::ImageUrl,
                true,
                exact_eq(backend, Column::ImageUrl, ""),
                true,
            );
            all = all.add(if has { empty.not() } else { empty });
        }
        all
    }
}

/// `progress = '100%'` (or not), NULL read as `""`.
pub(crate) fn finished_condition<C: ColumnTrait>(
    backend: DbBackend,
    progress: C,
    finished: bool,
) -> Condition {
    let done = leaf(progress, true, exact_eq(backend, progress, "100%"), false);
    if finished { done } else { done.not() }
}

/// `expr` on `col` made two-valued: `holds_for_null` says whether the predicate holds for
/// the value a NULL is shown as.
fn leaf<C: ColumnTrait>(col: C, nullable: bool, expr: Expr, holds_for_null: bool) -> Condition {
    if !nullable {
        Condition::all().add(expr)
    } else if holds_for_null {
        Condition::any().add(col.is_null()).add(expr)
    } else {
        Condition::all().add(col.is_not_null()).add(expr)
    }
}

/// A conjunction to add parts to; finished by [`nonempty`].
pub(crate) fn all_of() -> Condition {
    Condition::all()
}

/// `c`, or `1 = 1` when it has no parts: a filter or sub-filter with no parts matches every
/// row, also under `not` and inside `or` (where an empty condition would vanish).
pub(crate) fn nonempty(c: Condition) -> Condition {
    if c.is_empty() { c.add(always(true)) } else { c }
}

/// A condition that always (or never) holds, written so every backend accepts it. Literal,
/// not bound parameters: a planner folds `1 = 1` away, while `$1 = $2` is an unknown it
/// guesses to keep 0.5 % of the rows (which misled PostgreSQL's plans for whole-table
/// statistics by a factor of five).
fn always(holds: bool) -> Expr {
    Expr::cust(if holds { "1 = 1" } else { "1 = 0" })
}

/// A comparison as SQL, and the same comparison on a value in Rust.
type SqlCmp<C> = fn(C, i64) -> Expr;
type RustCmp = fn(i64, i64) -> bool;

/// A number comparison on `col` (NULL read as 0 when `nullable`).
pub(crate) fn num_condition<C: ColumnTrait>(col: C, f: &NumFilter, nullable: bool) -> Condition {
    let mut c = all_of();
    let cmp: [(Option<i64>, SqlCmp<C>, RustCmp); 6] = [
        (f.eq, |c, v| c.eq(v), |x, v| x == v),
        (f.ne, |c, v| c.ne(v), |x, v| x != v),
        (f.gt, |c, v| c.gt(v), |x, v| x > v),
        (f.gte, |c, v| c.gte(v), |x, v| x >= v),
        (f.lt, |c, v| c.lt(v), |x, v| x < v),
        (f.lte, |c, v| c.lte(v), |x, v| x <= v),
    ];
    for (value, sql, holds) in cmp {
        if let Some(v) = value {
            c = c.add(leaf(col, nullable, sql(col, v), holds(0, v)));
        }
    }
    if let Some(list) = &f.in_list {
        c = c.add(if list.is_empty() {
            Condition::all().add(always(false))
        } else {
            leaf(col, nullable, col.is_in(list.clone()), list.contains(&0))
        });
    }
    if let Some(list) = f.not_in.as_ref().filter(|l| !l.is_empty()) {
        let sql = col.is_not_in(list.clone());
        c = c.add(leaf(col, nullable, sql, !list.contains(&0)));
    }
    nonempty(c)
}

/// The text expression `expr` (SQL) compared and ordered byte for byte on `backend`: as
/// bytes on MySQL/MariaDB, whose default `_ci` collations ignore case and trailing spaces;
/// in the "C" collation on PostgreSQL (equality is exact already; this fixes the order).
pub(crate) fn exact_text(backend: DbBackend, expr: &str) -> String {
    match backend {
        DbBackend::MySql => format!("CAST(CONVERT({expr} USING utf8mb4) AS BINARY)"),
        DbBackend::Postgres => format!("({expr}) COLLATE \"C\""),
        _ => expr.to_owned(),
    }
}

/// `col` as bytes on MySQL/MariaDB: compared with a text parameter, byte for byte.
fn mysql_bytes<C: ColumnTrait>(col: C) -> Expr {
    Expr::cust(exact_text(DbBackend::MySql, &format!("`{}`", col.as_str())))
}

/// `col = value`, byte for byte on every backend. On MySQL the collation's comparison
/// stays in front so its index is used, and the bytes confirm the match.
fn exact_eq<C: ColumnTrait>(backend: DbBackend, col: C, value: &str) -> Expr {
    match backend {
        DbBackend::MySql => col.eq(value).and(mysql_bytes(col).eq(value)),
        _ => col.eq(value),
    }
}

/// `col IN (values)`, byte for byte on every backend (`values` non-empty).
fn exact_in<C: ColumnTrait>(backend: DbBackend, col: C, values: &[String]) -> Expr {
    let vals = || values.iter().map(|s| Value::from(s.as_str()));
    match backend {
        DbBackend::MySql => col.is_in(vals()).and(mysql_bytes(col).is_in(vals())),
        _ => col.is_in(vals()),
    }
}

/// An exact string comparison on `col` (NULL read as `""`).
pub(crate) fn string_condition<C: ColumnTrait>(
    backend: DbBackend,
    col: C,
    f: &StringFilter,
) -> Condition {
    let mut c = all_of();
    if let Some(v) = &f.eq {
        c = c.add(leaf(col, true, exact_eq(backend, col, v), v.is_empty()));
    }
    if let Some(v) = &f.ne {
        c = c.add(leaf(col, true, exact_eq(backend, col, v), v.is_empty()).not());
    }
    if let Some(list) = &f.in_list {
        c = c.add(if list.is_empty() {
            Condition::all().add(always(false))
        } else {
            let empty = list.iter().any(String::is_empty);
            leaf(col, true, exact_in(backend, col, list), empty)
        });
    }
    if let Some(list) = f.not_in.as_ref().filter(|l| !l.is_empty()) {
        let empty = list.iter().any(String::is_empty);
        c = c.add(leaf(col, true, exact_in(backend, col, list), empty).not());
    }
    nonempty(c)
}

/// An exact string comparison on a text expression that is never NULL (`sql`, raw SQL
/// built by the service, never from input), byte for byte on every backend.
pub(crate) fn string_expr_condition(backend: DbBackend, sql: &str, f: &StringFilter) -> Condition {
    let text = || Expr::cust(exact_text(backend, sql));
    let vals = |l: &[String]| {
        l.iter()
            .map(|s| Value::from(s.as_str()))
            .collect::<Vec<_>>()
    };
    let mut c = all_of();
    if let Some(v) = &f.eq {
        c = c.add(text().eq(v.as_str()));
    }
    if let Some(v) = &f.ne {
        c = c.add(text().ne(v.as_str()));
    }
    if let Some(list) = &f.in_list {
        c = c.add(if list.is_empty() {
            always(false)
        } else {
            text().is_in(vals(list))
        });
    }
    if let Some(list) = f.not_in.as_ref().filter(|l| !l.is_empty()) {
        c = c.add(text().is_not_in(vals(list)));
    }
    nonempty(c)
}

/// `col` matches `pattern` case-insensitively (contains, or `starts` with it).
fn pattern_match<C: ColumnTrait>(backend: DbBackend, col: C, pattern: &str, starts: bool) -> Expr {
    match backend {
        DbBackend::Sqlite => Expr::col(col).binary(
            sea_orm::sea_query::BinOper::Custom("GLOB"),
            fold::glob(pattern, starts),
        ),
        DbBackend::Postgres => Expr::col(col).binary(
            sea_orm::sea_query::BinOper::Custom("~"),
            fold::regex(pattern, starts),
        ),
        _ => Expr::cust_with_values(
            format!(
                "CONVERT(`{}` USING utf8mb4) COLLATE utf8mb4_bin REGEXP ?",
                col.as_str()
            ),
            [fold::regex(pattern, starts)],
        ),
    }
}

/// A case-insensitive pattern test on `col` (NULL read as `""`).
pub(crate) fn text_condition<C: ColumnTrait>(
    backend: DbBackend,
    col: C,
    f: &TextFilter,
) -> Condition {
    let mut c = all_of();
    // Patterns are never empty, so "" (a NULL's value) never matches one.
    if let Some(p) = &f.contains {
        c = c.add(leaf(
            col,
            true,
            pattern_match(backend, col, p, false),
            false,
        ));
    }
    if let Some(p) = &f.starts_with {
        c = c.add(leaf(col, true, pattern_match(backend, col, p, true), false));
    }
    if let Some(empty) = f.is_empty {
        let is_empty = leaf(col, true, exact_eq(backend, col, ""), true);
        c = c.add(if empty { is_empty } else { is_empty.not() });
    }
    nonempty(c)
}
