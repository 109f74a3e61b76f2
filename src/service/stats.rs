//! Counts and sums over the same scope and filter as a task list, for every log (both
//! tables name their status, action, quota and submit-time columns alike).

use sea_orm::sea_query::Expr;
use sea_orm::{
    DbBackend, Order, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Statement,
};

use crate::error::Error;
use crate::service::Service;
use crate::service::filter_sql::exact_text;
use crate::service::listing::{one_row_aggregate, scoped_bare};
use crate::service::log::LogFilter;
use crate::service::log::{Log, LogQuery};
use crate::service::viewer::Viewer;

/// Most buckets returned for one grouping (the most frequent ones).
pub const MAX_BUCKETS: u64 = 100;
/// Widest `byDay` window, in days.
pub const MAX_DAYS: i64 = 366;

const DAY_MS: i64 = 86_400_000;

/// Totals over the matching tasks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub count: i64,
    pub quota_sum: i64,
    pub success_count: i64,
    pub failure_count: i64,
}

/// One group: a key (status or action; `""` for NULL), its task count and quota sum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub key: String,
    pub count: i64,
    pub quota_sum: i64,
}

/// One UTC day: its start (epoch ms), task count and quota sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayBucket {
    pub start_ms: i64,
    pub count: i64,
    pub quota_sum: i64,
}

/// A column to group by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Status,
    Action,
    /// The generic log's platform (`suno`, a video channel type).
    Platform,
}

impl GroupBy {
    fn column(self) -> &'static str {
        match self {
            GroupBy::Status => "status",
            GroupBy::Action => "action",
            GroupBy::Platform => "platform",
        }
    }
}

/// `SUM(expr)` as a 64-bit integer on every backend (PostgreSQL sums to numeric, MySQL to
/// decimal), 0 over no rows.
fn sum(backend: DbBackend, expr: &str) -> Expr {
    let inner = format!("COALESCE(SUM({expr}), 0)");
    Expr::cust(match backend {
        DbBackend::MySql => format!("CAST({inner} AS SIGNED)"),
        DbBackend::Postgres => format!("CAST({inner} AS BIGINT)"),
        _ => inner,
    })
}

/// `submit_time` in milliseconds: values below
/// [`MS_THRESHOLD`](crate::service::record::MS_THRESHOLD) are read as seconds.
fn submit_ms() -> &'static str {
    "(CASE WHEN COALESCE(submit_time, 0) >= 100000000000 THEN submit_time ELSE COALESCE(submit_time, 0) * 1000 END)"
}

impl Service {
    /// Count, quota sum, successes and failures of the matching tasks.
    pub async fn task_totals<L: Log>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
    ) -> Result<Totals, Error> {
        query.filter.validate(viewer)?;
        self.count_query();
        let totals = self.totals_select(viewer, query);
        let rows = self
            .read("stats", |db| {
                Box::pin(totals.clone().into_tuple::<(i64, i64, i64, i64)>().all(db))
            })
            .await?;
        let (count, quota_sum, success_count, failure_count) =
            rows.into_iter().next().unwrap_or_default();
        Ok(Totals {
            count,
            quota_sum,
            success_count,
            failure_count,
        })
    }

    /// The statement [`Service::task_totals`] runs (for the benchmark's floor).
    pub fn totals_statement<L: Log>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
    ) -> Result<Statement, Error> {
        query.filter.validate(viewer)?;
        Ok(self
            .totals_select(viewer, query)
            .build(self.db.get_database_backend()))
    }

    fn totals_select<L: Log>(&self, viewer: &Viewer, query: &LogQuery<L>) -> Select<L::Entity> {
        let backend = self.db.get_database_backend();
        let status = exact_text(backend, "status");
        let totals = scoped_bare(backend, viewer, query)
            .column_as(Expr::cust("COUNT(*)"), "n")
            .column_as(sum(backend, "quota"), "q")
            .column_as(
                sum(
                    backend,
                    &format!("CASE WHEN {status} = 'SUCCESS' THEN 1 ELSE 0 END"),
                ),
                "s",
            )
            .column_as(
                sum(
                    backend,
                    &format!("CASE WHEN {status} = 'FAILURE' THEN 1 ELSE 0 END"),
                ),
                "f",
            );
        one_row_aggregate(totals, backend)
    }

    /// The matching tasks grouped by `by`, most frequent first (ties by key), at most
    /// [`MAX_BUCKETS`] groups.
    pub async fn task_buckets<L: Log>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
        by: GroupBy,
    ) -> Result<Vec<Bucket>, Error> {
        query.filter.validate(viewer)?;
        if !L::GROUPINGS.contains(&by) {
            return Err(Error::BadFilter(format!(
                "{} cannot be grouped by {}",
                L::TABLE,
                by.column()
            )));
        }
        let backend = self.db.get_database_backend();
        let column = by.column();
        // Grouped and ordered byte for byte (MySQL's `_ci` collations would merge "success"
        // into "SUCCESS"); every value of a group is the same, so MIN reads it back as text.
        let key = exact_text(backend, &format!("COALESCE({column}, '')"));
        let shown = format!("COALESCE(MIN({column}), '')");
        self.count_query();
        let groups = scoped_bare(backend, viewer, query)
            .column_as(Expr::cust(shown), "k")
            .column_as(Expr::cust("COUNT(*)"), "n")
            .column_as(sum(backend, "quota"), "q")
            .group_by(Expr::cust(key.clone()))
            .order_by(Expr::cust("COUNT(*)"), Order::Desc)
            .order_by(Expr::cust(key), Order::Asc)
            .limit(MAX_BUCKETS);
        let rows = self
            .read("groups", |db| {
                Box::pin(groups.clone().into_tuple::<(String, i64, i64)>().all(db))
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(key, count, quota_sum)| Bucket {
                key,
                count,
                quota_sum,
            })
            .collect())
    }

    /// One bucket per UTC day for the `days` days ending today (oldest first, days without
    /// tasks included), on `submit_time`, with integer arithmetic on every backend.
    pub async fn tasks_by_day<L: Log>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
        days: i64,
        now_ms: i64,
    ) -> Result<Vec<DayBucket>, Error> {
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(Error::BadFilter(format!("days is 1 to {MAX_DAYS}")));
        }
        query.filter.validate(viewer)?;
        let backend = self.db.get_database_backend();
        let today = now_ms.div_euclid(DAY_MS);
        let first = today - days + 1;
        let div = if backend == DbBackend::MySql {
            "DIV"
        } else {
            "/"
        };
        let day = format!("({} {div} {DAY_MS})", submit_ms());
        self.count_query();
        let per_day = scoped_bare(backend, viewer, query)
            .filter(Expr::cust(format!("{} >= {}", submit_ms(), first * DAY_MS)))
            .filter(Expr::cust(format!(
                "{} < {}",
                submit_ms(),
                (today + 1) * DAY_MS
            )))
            .column_as(Expr::cust(day.clone()), "d")
            .column_as(Expr::cust("COUNT(*)"), "n")
            .column_as(sum(backend, "quota"), "q")
            .group_by(Expr::cust(day));
        let rows = self
            .read("per_day", |db| {
                Box::pin(per_day.clone().into_tuple::<(i64, i64, i64)>().all(db))
            })
            .await?;
        Ok((first..=today)
            .map(|d| {
                let (count, quota_sum) = rows
                    .iter()
                    .find(|(day, _, _)| *day == d)
                    .map_or((0, 0), |(_, n, q)| (*n, *q));
                DayBucket {
                    start_ms: d * DAY_MS,
                    count,
                    quota_sum,
                }
            })
            .collect())
    }
}
