//! Turning a [`TaskFilter`] into one SeaORM condition.
//!
//! NULL columns compare as the value the wire shows for them (`0` or `""`): a predicate that
//! holds for that value also matches NULL, so what a client sees and what it can filter on
//! never disagree.

use entity::midjourney::Column;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{ColumnTrait, Value};

use crate::service::filter::{NumFilter, StringFilter, TaskFilter, TextFilter};

impl TaskFilter {
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
