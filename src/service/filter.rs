//! The task filter: the whole GraphQL filter set, which the legacy REST parameters map onto.
//!
//! A filter is checked ([`TaskFilter::validate`]) before any SQL is built, then turned into
//! one SeaORM condition ([`TaskFilter::condition`]). NULL columns compare as the value the
//! wire shows for them (`0` or `""`): a predicate that holds for that value also matches
//! NULL, so what a client sees and what it can filter on never disagree.

use entity::midjourney::Column;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{ColumnTrait, Value};
use serde::Serialize;

use crate::error::Error;
use crate::service::viewer::Viewer;

/// Most values in one `in` / `notIn` list.
pub const MAX_LIST: usize = 100;
/// Most items in one `and` / `or` list.
pub const MAX_BRANCHES: usize = 10;
/// Deepest nesting of `and` / `or` / `not` (the top-level filter is level 1).
pub const MAX_DEPTH: usize = 3;
/// Longest text pattern, in characters.
pub const MAX_PATTERN: usize = 200;
/// Longest exact-match string value, in characters.
pub const MAX_VALUE: usize = 1000;

/// Comparisons on a number column (`Int` and `Long` alike).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NumFilter {
    pub eq: Option<i64>,
    pub ne: Option<i64>,
    pub gt: Option<i64>,
    pub gte: Option<i64>,
    pub lt: Option<i64>,
    pub lte: Option<i64>,
    pub in_list: Option<Vec<i64>>,
    pub not_in: Option<Vec<i64>>,
}

/// Exact comparisons on a string column.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StringFilter {
    pub eq: Option<String>,
    pub ne: Option<String>,
    pub in_list: Option<Vec<String>>,
    pub not_in: Option<Vec<String>>,
}

/// Case-insensitive pattern tests on a text column; `%`, `_` and `\` are literal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TextFilter {
    pub contains: Option<String>,
    pub starts_with: Option<String>,
    pub is_empty: Option<bool>,
}

/// Every condition a caller can put on tasks; all given parts must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TaskFilter {
    pub id: Option<NumFilter>,
    pub mj_id: Option<StringFilter>,
    pub action: Option<StringFilter>,
    pub status: Option<StringFilter>,
    /// Admin only.
    pub user_id: Option<NumFilter>,
    /// Admin only.
    pub channel_id: Option<NumFilter>,
    pub submit_time: Option<NumFilter>,
    pub start_time: Option<NumFilter>,
    pub finish_time: Option<NumFilter>,
    pub quota: Option<NumFilter>,
    /// `progress = '100%'` (true) or not (false).
    pub finished: Option<bool>,
    /// A non-empty `image_url` (true) or an empty one (false).
    pub has_image: Option<bool>,
    pub prompt: Option<TextFilter>,
    pub fail_reason: Option<TextFilter>,
    pub and: Vec<TaskFilter>,
    pub or: Vec<TaskFilter>,
    pub not: Option<Box<TaskFilter>>,
}

impl TaskFilter {
    /// Checks the limits and the admin-only parts for `viewer`; runs no SQL.
    pub fn validate(&self, viewer: &Viewer) -> Result<(), Error> {
        self.validate_at(viewer, 1)
    }

    fn validate_at(&self, viewer: &Viewer, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(Error::BadFilter(format!(
                "filter nesting is deeper than {MAX_DEPTH} levels"
            )));
        }
        if !viewer.is_admin() {
            if self.user_id.is_some() {
                return Err(Error::Forbidden(
                    "the userId filter is for admins only".into(),
                ));
            }
            if self.channel_id.is_some() {
                return Err(Error::Forbidden(
                    "the channelId filter is for admins only".into(),
                ));
            }
        }
        let nums = [
            ("id", &self.id),
            ("userId", &self.user_id),
            ("channelId", &self.channel_id),
            ("submitTime", &self.submit_time),
            ("startTime", &self.start_time),
            ("finishTime", &self.finish_time),
            ("quota", &self.quota),
        ];
        for (name, f) in nums {
            if let Some(f) = f {
                check_list(name, f.in_list.as_ref().map(Vec::len))?;
                check_list(name, f.not_in.as_ref().map(Vec::len))?;
            }
        }
        let strings = [
            ("mjId", &self.mj_id),
            ("action", &self.action),
            ("status", &self.status),
        ];
        for (name, f) in strings {
            if let Some(f) = f {
                check_list(name, f.in_list.as_ref().map(Vec::len))?;
                check_list(name, f.not_in.as_ref().map(Vec::len))?;
                let values = f.eq.iter().chain(f.ne.iter());
                let listed = f.in_list.iter().chain(f.not_in.iter()).flatten();
                if values.chain(listed).any(|v| v.chars().count() > MAX_VALUE) {
                    return Err(Error::BadFilter(format!(
                        "{name}: values are at most {MAX_VALUE} characters"
                    )));
                }
            }
        }
        for (name, f) in [("prompt", &self.prompt), ("failReason", &self.fail_reason)] {
            if let Some(f) = f {
                for pattern in f.contains.iter().chain(f.starts_with.iter()) {
                    let n = pattern.chars().count();
                    if n == 0 || n > MAX_PATTERN {
                        return Err(Error::BadFilter(format!(
                            "{name}: a text pattern is 1 to {MAX_PATTERN} characters"
                        )));
                    }
                }
            }
        }
        for (name, list) in [("and", &self.and), ("or", &self.or)] {
            if list.len() > MAX_BRANCHES {
                return Err(Error::BadFilter(format!(
                    "{name}: at most {MAX_BRANCHES} items"
                )));
            }
            for f in list {
                f.validate_at(viewer, depth + 1)?;
            }
        }
        if let Some(f) = &self.not {
            f.validate_at(viewer, depth + 1)?;
        }
        Ok(())
    }

    /// The SQL condition for this filter (validated first).
    pub fn condition(&self) -> Condition {
        let mut all = Condition::all();
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
                all = all.add(string_condition(col, f));
            }
        }
        for (col, f) in [
            (Column::Prompt, &self.prompt),
            (Column::FailReason, &self.fail_reason),
        ] {
            if let Some(f) = f {
                all = all.add(text_condition(col, f));
            }
        }
        if let Some(finished) = self.finished {
            let done = Column::Progress.eq("100%");
            all = all.add(if finished {
                Condition::all().add(done)
            } else {
                Condition::any()
                    .add(Column::Progress.ne("100%"))
                    .add(Column::Progress.is_null())
            });
        }
        if let Some(has) = self.has_image {
            all = all.add(empty_condition(Column::ImageUrl, !has));
        }
        for f in &self.and {
            all = all.add(f.condition());
        }
        if !self.or.is_empty() {
            let mut any = Condition::any();
            for f in &self.or {
                any = any.add(f.condition());
            }
            all = all.add(any);
        }
        if let Some(f) = &self.not {
            all = all.add(f.condition().not());
        }
        all
    }
}

fn check_list(name: &str, len: Option<usize>) -> Result<(), Error> {
    match len {
        Some(n) if n > MAX_LIST => Err(Error::BadFilter(format!(
            "{name}: in/notIn take at most {MAX_LIST} values"
        ))),
        _ => Ok(()),
    }
}

/// `pred(col)`, widened with `OR col IS NULL` when the predicate holds for `null_as`.
fn with_null<V>(
    col: Column,
    nullable: bool,
    expr: Expr,
    null_as: V,
    pred: impl Fn(&V) -> bool,
) -> Condition {
    let c = Condition::any().add(expr);
    if nullable && pred(&null_as) {
        c.add(col.is_null())
    } else {
        c
    }
}

fn always(holds: bool) -> Condition {
    let v = Expr::val(1);
    Condition::all().add(if holds { v.eq(1) } else { Expr::val(1).eq(0) })
}

/// A comparison as SQL, and the same comparison on a value in Rust.
type SqlCmp = fn(Column, i64) -> Expr;
type RustCmp = fn(i64, i64) -> bool;

fn num_condition(col: Column, f: &NumFilter, nullable: bool) -> Condition {
    let mut c = Condition::all();
    let cmp: [(Option<i64>, SqlCmp, RustCmp); 6] = [
        (f.eq, |c, v| c.eq(v), |x, v| x == v),
        (f.ne, |c, v| c.ne(v), |x, v| x != v),
        (f.gt, |c, v| c.gt(v), |x, v| x > v),
        (f.gte, |c, v| c.gte(v), |x, v| x >= v),
        (f.lt, |c, v| c.lt(v), |x, v| x < v),
        (f.lte, |c, v| c.lte(v), |x, v| x <= v),
    ];
    for (value, sql, holds) in cmp {
        if let Some(v) = value {
            c = c.add(with_null(col, nullable, sql(col, v), 0, |x| holds(*x, v)));
        }
    }
    if let Some(list) = &f.in_list {
        c = c.add(if list.is_empty() {
            always(false)
        } else {
            with_null(col, nullable, col.is_in(list.clone()), 0, |x| {
                list.contains(x)
            })
        });
    }
    if let Some(list) = f.not_in.as_ref().filter(|l| !l.is_empty()) {
        let sql = col.is_not_in(list.clone());
        c = c.add(with_null(col, nullable, sql, 0, |x| !list.contains(x)));
    }
    c
}

fn string_condition(col: Column, f: &StringFilter) -> Condition {
    let mut c = Condition::all();
    if let Some(v) = &f.eq {
        c = c.add(with_null(col, true, col.eq(v.as_str()), "", |x| x == v));
    }
    if let Some(v) = &f.ne {
        c = c.add(with_null(col, true, col.ne(v.as_str()), "", |x| x != v));
    }
    if let Some(list) = &f.in_list {
        c = c.add(if list.is_empty() {
            always(false)
        } else {
            let values: Vec<Value> = list.iter().map(|s| s.as_str().into()).collect();
            with_null(col, true, col.is_in(values), "", |x| {
                list.iter().any(|v| v == x)
            })
        });
    }
    if let Some(list) = f.not_in.as_ref().filter(|l| !l.is_empty()) {
        let values: Vec<Value> = list.iter().map(|s| s.as_str().into()).collect();
        c = c.add(with_null(col, true, col.is_not_in(values), "", |x| {
            !list.iter().any(|v| v == x)
        }));
    }
    c
}

/// `col` is empty (NULL or `''`) when `empty`, else non-empty.
fn empty_condition(col: Column, empty: bool) -> Condition {
    if empty {
        Condition::any().add(col.is_null()).add(col.eq(""))
    } else {
        Condition::all().add(col.is_not_null()).add(col.ne(""))
    }
}

/// Escapes LIKE's wildcards so `%`, `_` and the escape character match themselves.
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.to_lowercase().chars() {
        if matches!(ch, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(ch);
    }
    out
}

fn text_condition(col: Column, f: &TextFilter) -> Condition {
    let mut c = Condition::all();
    let lowered = || Expr::expr(Func::lower(Expr::col(col)));
    if let Some(p) = &f.contains {
        let pattern = format!("%{}%", like_literal(p));
        c = c.add(lowered().like(LikeExpr::new(pattern).escape('!')));
    }
    if let Some(p) = &f.starts_with {
        let pattern = format!("{}%", like_literal(p));
        c = c.add(lowered().like(LikeExpr::new(pattern).escape('!')));
    }
    if let Some(empty) = f.is_empty {
        c = c.add(empty_condition(col, empty));
    }
    c
}
