//! Grouped statistics: counts, outcomes, quota and task durations grouped by any of status,
//! action, channel and user (the last two admin-only) and by local time buckets (hour, day,
//! week, month) in an IANA time zone, for every log, in one SQL query.
//!
//! Time buckets are local calendar units, so a daylight-saving day lasts 23 or 25 hours:
//! their boundaries are computed here (with the zone's rules) and the database only places
//! each row between two of them, with integer comparisons that give the same answer on
//! every backend. Every bucket of the range is answered, empty ones with zeros.
//!
//! Durations are `finish_time − submit_time` (both read as milliseconds, seconds scaled) of
//! tasks with both set; unfinished tasks (no finish time) are left out of them. Percentiles
//! use the **nearest-rank** definition: the p-th percentile of n sorted durations is the
//! ⌈p·n/100⌉-th smallest, always one of the durations — the same integer on SQLite,
//! PostgreSQL and MariaDB (no interpolation).

use std::collections::{BTreeMap, BTreeSet};

use chrono_tz::Tz;
use sea_orm::sea_query::Expr;
use sea_orm::{ConnectionTrait, DbBackend, QueryFilter, QuerySelect, QueryTrait, Statement};

use crate::error::Error;
use crate::service::Service;
use crate::service::filter_sql::exact_text;
use crate::service::listing::scoped_bare;
use crate::service::log::{Log, LogFilter, LogQuery};
use crate::service::time_zone::{self, Unit};
use crate::service::viewer::Viewer;

/// Most groups in one answer (empty time buckets included).
pub const MAX_GROUPS: usize = 1_000;
/// Buckets in a range given without `from`.
pub const DEFAULT_BUCKETS: usize = 30;

/// What rows can be grouped by, besides time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupKey {
    Status,
    Action,
    /// Admin only.
    Channel,
    /// Admin only.
    User,
}

impl GroupKey {
    fn admin_only(self) -> bool {
        matches!(self, GroupKey::Channel | GroupKey::User)
    }

    fn name(self) -> &'static str {
        match self {
            GroupKey::Status => "status",
            GroupKey::Action => "action",
            GroupKey::Channel => "channel",
            GroupKey::User => "user",
        }
    }
}

/// How to group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grouping {
    pub by: Vec<GroupKey>,
    /// Local time buckets on the submit time, when wanted.
    pub bucket: Option<Unit>,
    pub tz: Tz,
    /// Only tasks submitted at or after this instant (epoch ms). With a bucket the range is
    /// rounded out to whole buckets: it starts with the bucket holding `from` (default: the
    /// [`DEFAULT_BUCKETS`]th bucket before the one holding `to`).
    pub from_ms: Option<i64>,
    /// Only tasks submitted before this instant; with a bucket, the range ends with the
    /// bucket holding it (default: now).
    pub to_ms: Option<i64>,
}

/// One group's key values (those grouped by; the rest `None`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKeys {
    pub status: Option<String>,
    pub action: Option<String>,
    pub channel_id: Option<i64>,
    pub user_id: Option<i64>,
}

/// Task durations of a group, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Durations {
    /// How many tasks have one (finished, with a submit time).
    pub count: i64,
    pub sum_ms: i64,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    pub max_ms: Option<i64>,
}

impl Durations {
    /// The mean, when there is any duration.
    pub fn average_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_ms as f64 / self.count as f64)
    }
}

/// One group and its figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    pub keys: GroupKeys,
    /// The time bucket `[start, end)` in epoch ms, when grouped by time.
    pub bucket: Option<(i64, i64)>,
    pub count: i64,
    pub success_count: i64,
    pub failure_count: i64,
    pub quota_sum: i64,
    pub durations: Durations,
}

impl Group {
    /// Successes over all tasks of the group (`None` for an empty group).
    pub fn success_rate(&self) -> Option<f64> {
        (self.count > 0).then(|| self.success_count as f64 / self.count as f64)
    }
}

/// A stored time in milliseconds (values below 1e11 are seconds); NULL reads as 0.
fn ms_of(column: &str) -> String {
    format!(
        "(CASE WHEN COALESCE({column}, 0) >= 100000000000 THEN {column} ELSE COALESCE({column}, 0) * 1000 END)"
    )
}

/// The boundaries of the buckets of `unit` in `tz` covering `[from, to)`: the first at or
/// before `from`, the last at or after `to`.
fn boundaries(tz: Tz, unit: Unit, from: i64, to: i64) -> Result<Vec<i64>, Error> {
    let mut out = vec![time_zone::floor(tz, unit, from)];
    while out.last().is_some_and(|last| *last < to) {
        if out.len() > MAX_GROUPS {
            return Err(Error::BadFilter(format!(
                "the range holds more than {MAX_GROUPS} buckets: narrow it (from, to) or use a larger bucket"
            )));
        }
        let last = out[out.len() - 1];
        out.push(time_zone::next(tz, unit, last));
    }
    if out.len() < 2 {
        out.push(time_zone::next(tz, unit, out[0]));
    }
    Ok(out)
}

/// The bucket index of `t` among `bounds` (`bounds[i] <= t < bounds[i + 1]`), as nested
/// integer comparisons (a binary search: log2(n) comparisons a row).
fn bucket_case(t: &str, bounds: &[i64], lo: usize, hi: usize) -> String {
    if hi - lo <= 1 {
        return lo.to_string();
    }
    let mid = (lo + hi) / 2;
    format!(
        "CASE WHEN {t} < {} THEN {} ELSE {} END",
        bounds[mid],
        bucket_case(t, bounds, lo, mid),
        bucket_case(t, bounds, mid, hi)
    )
}

impl Service {
    /// The matching tasks grouped as `grouping` says, in key order then time order (every
    /// bucket of the range present for each combination of keys that has tasks).
    pub async fn task_groups<L: Log>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
        grouping: &Grouping,
        now_ms: i64,
    ) -> Result<Vec<Group>, Error> {
        query.filter.validate(viewer)?;
        let (statement, by, bounds) = self.groups_statement(viewer, query, grouping, now_ms)?;
        self.count_query();
        let backend = self.db.get_database_backend();
        let rows = self
            .read("groups", |db| Box::pin(db.query_all_raw(statement.clone())))
            .await?;
        let mut found: BTreeMap<(GroupKeys, usize), Group> = BTreeMap::new();
        for row in rows {
            let mut keys = GroupKeys::default();
            for (i, key) in by.iter().enumerate() {
                match key {
                    GroupKey::Status => keys.status = Some(text_at(backend, &row, i)?),
                    GroupKey::Action => keys.action = Some(text_at(backend, &row, i)?),
                    GroupKey::Channel => keys.channel_id = Some(int_at(&row, i)?),
                    GroupKey::User => keys.user_id = Some(int_at(&row, i)?),
                }
            }
            let at = |j: usize| int_at(&row, by.len() + j);
            let opt = |j: usize| opt_int_at(&row, by.len() + j);
            let index = at(0)?.max(0) as usize;
            let group = Group {
                keys: keys.clone(),
                bucket: bounds.as_ref().map(|b| (b[index], b[index + 1])),
                count: at(1)?,
                success_count: at(2)?,
                failure_count: at(3)?,
                quota_sum: at(4)?,
                durations: Durations {
                    count: at(5)?,
                    sum_ms: at(6)?,
                    max_ms: opt(7)?,
                    p50_ms: opt(8)?,
                    p95_ms: opt(9)?,
                },
            };
            found.insert((keys, index), group);
        }
        let Some(bounds) = bounds else {
            let groups: Vec<Group> = found.into_values().collect();
            if groups.is_empty() && by.is_empty() {
                return Ok(vec![Group::default()]);
            }
            return Ok(groups);
        };
        // Every bucket for every combination of keys with tasks (the one empty combination
        // when grouping by time alone).
        let mut series: BTreeSet<GroupKeys> = found.keys().map(|(k, _)| k.clone()).collect();
        if by.is_empty() {
            series.insert(GroupKeys::default());
        }
        let buckets = bounds.len() - 1;
        if series.len().saturating_mul(buckets) > MAX_GROUPS {
            return Err(too_many(series.len() * buckets));
        }
        let mut out = Vec::with_capacity(series.len() * buckets);
        for keys in series {
            for i in 0..buckets {
                out.push(found.remove(&(keys.clone(), i)).unwrap_or_else(|| Group {
                    keys: keys.clone(),
                    bucket: Some((bounds[i], bounds[i + 1])),
                    ..Group::default()
                }));
            }
        }
        Ok(out)
    }

    /// The statement [`Service::task_groups`] runs, the keys in its column order, and the
    /// bucket boundaries (for the benchmark's floor too).
    #[allow(clippy::type_complexity)]
    pub fn groups_statement<L: Log>(
        &self,
        viewer: &Viewer,
        query: &LogQuery<L>,
        grouping: &Grouping,
        now_ms: i64,
    ) -> Result<(Statement, Vec<GroupKey>, Option<Vec<i64>>), Error> {
        let mut by = grouping.by.clone();
        by.sort();
        by.dedup();
        if let Some(key) = by.iter().find(|k| k.admin_only())
            && !viewer.is_admin()
        {
            return Err(Error::Forbidden(format!(
                "grouping by {} is for admins only",
                key.name()
            )));
        }
        let backend = self.db.get_database_backend();
        let submit = ms_of("submit_time");
        let finish = ms_of("finish_time");
        let bounds = match grouping.bucket {
            Some(unit) => {
                let to = grouping.to_ms.unwrap_or(now_ms);
                let from = match grouping.from_ms {
                    Some(from) => from,
                    None => {
                        let mut start = time_zone::floor(grouping.tz, unit, to);
                        for _ in 1..DEFAULT_BUCKETS {
                            start = time_zone::floor(grouping.tz, unit, start - 1);
                        }
                        start
                    }
                };
                if from > to {
                    return Err(Error::BadFilter("from is after to".into()));
                }
                Some(boundaries(grouping.tz, unit, from, to)?)
            }
            None => None,
        };
        let mut select = scoped_bare(backend, viewer, query);
        for (i, key) in by.iter().enumerate() {
            let expr = match key {
                GroupKey::Status => exact_text(backend, "COALESCE(status, '')"),
                GroupKey::Action => exact_text(backend, "COALESCE(action, '')"),
                GroupKey::Channel => "COALESCE(channel_id, 0)".to_owned(),
                GroupKey::User => "COALESCE(user_id, 0)".to_owned(),
            };
            select = select.column_as(Expr::cust(expr), format!("k{i}"));
        }
        let status = exact_text(backend, "status");
        select = select
            .column_as(Expr::cust(submit.clone()), "t")
            .column_as(
                Expr::cust(format!("CASE WHEN {status} = 'SUCCESS' THEN 1 ELSE 0 END")),
                "ok",
            )
            .column_as(
                Expr::cust(format!("CASE WHEN {status} = 'FAILURE' THEN 1 ELSE 0 END")),
                "ko",
            )
            .column_as(Expr::cust("COALESCE(quota, 0)"), "q")
            .column_as(
                Expr::cust(format!(
                    "CASE WHEN COALESCE(finish_time, 0) > 0 AND COALESCE(submit_time, 0) > 0 THEN {finish} - {submit} END"
                )),
                "d",
            );
        // With buckets the range is whole buckets; without, exactly [from, to).
        let range = match (&bounds, grouping.from_ms, grouping.to_ms) {
            (Some(b), _, _) => Some((b[0], b[b.len() - 1])),
            (None, None, None) => None,
            (None, from, to) => Some((from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX))),
        };
        if let Some((from, to)) = range {
            select = select
                .filter(Expr::cust(format!("{submit} >= {from}")))
                .filter(Expr::cust(format!("{submit} < {to}")));
        }
        let inner = select.build(backend);
        let keys: Vec<String> = (0..by.len()).map(|i| format!("k{i}")).collect();
        let key_list = keys.join(", ");
        let keys_and = |s: &str| {
            if keys.is_empty() {
                s.to_owned()
            } else {
                format!("{key_list}, {s}")
            }
        };
        let bucket = match &bounds {
            Some(b) => bucket_case("t", b, 0, b.len() - 1),
            None => "0".to_owned(),
        };
        let div = if backend == DbBackend::MySql {
            "DIV"
        } else {
            "/"
        };
        let sum = |e: &str| {
            let inner = format!("COALESCE(SUM({e}), 0)");
            match backend {
                DbBackend::MySql => format!("CAST({inner} AS SIGNED)"),
                DbBackend::Postgres => format!("CAST({inner} AS BIGINT)"),
                _ => inner,
            }
        };
        if backend == DbBackend::Postgres {
            // PostgreSQL's percentile_disc is the same nearest-rank definition (the first
            // value whose position reaches p·n), as an ordered-set aggregate: one pass with
            // small per-group sorts, where a window over every row sorts them all.
            // `OFFSET 0` keeps the row expressions from being folded into the grouping.
            let sql = format!(
                "SELECT {cols}, COUNT(*), {ok}, {ko}, {q}, COUNT(d), {dsum}, MAX(d), \
                 percentile_disc(0.5) WITHIN GROUP (ORDER BY d), \
                 percentile_disc(0.95) WITHIN GROUP (ORDER BY d) \
                 FROM (SELECT {k0}, ok, ko, q, d FROM ({inner} OFFSET 0) t0) t1 GROUP BY {kb}",
                cols = keys_and("b"),
                ok = sum("ok"),
                ko = sum("ko"),
                q = sum("q"),
                dsum = sum("d"),
                k0 = keys_and(&format!("{bucket} AS b")),
                kb = keys_and("b"),
                inner = inner.sql,
            );
            return Ok((
                Statement {
                    sql,
                    values: inner.values,
                    db_backend: backend,
                },
                by,
                bounds,
            ));
        }
        let rank = |p: u32| format!("MAX(CASE WHEN rn = ({p} * n + 99) {div} 100 THEN d END)");
        // The rows are read once into `base` (PostgreSQL and SQLite are told to keep it,
        // rather than fold it into both uses); the sums are a plain GROUP BY over it, and
        // only the durations, with their keys, are ranked by the window function.
        let materialized = if backend == DbBackend::MySql {
            ""
        } else {
            "MATERIALIZED "
        };
        let on: Vec<String> = keys
            .iter()
            .chain(std::iter::once(&"b".to_owned()))
            .map(|k| format!("agg.{k} = pct.{k}"))
            .collect();
        let agg_keys: Vec<String> = keys.iter().map(|k| format!("agg.{k}")).collect();
        let sql = format!(
            "WITH base AS {materialized}(SELECT {k0}, ok, ko, q, d FROM ({inner}) t0), \
             agg AS (SELECT {kb}, COUNT(*) AS n_all, {ok} AS s_ok, {ko} AS s_ko, {q} AS s_q, \
                     COUNT(d) AS n_d, {dsum} AS s_d, MAX(d) AS m_d FROM base GROUP BY {kb}), \
             pct AS (SELECT {kb}, {p50} AS p50, {p95} AS p95 FROM \
                     (SELECT {kb}, d, ROW_NUMBER() OVER (PARTITION BY {kb} ORDER BY d) AS rn, \
                      COUNT(*) OVER (PARTITION BY {kb}) AS n FROM base WHERE d IS NOT NULL) r \
                     GROUP BY {kb}) \
             SELECT {cols}, n_all, s_ok, s_ko, s_q, n_d, s_d, m_d, pct.p50, pct.p95 \
             FROM agg LEFT JOIN pct ON {on}",
            ok = sum("ok"),
            ko = sum("ko"),
            q = sum("q"),
            dsum = sum("d"),
            p50 = rank(50),
            p95 = rank(95),
            kb = keys_and("b"),
            k0 = keys_and(&format!("{bucket} AS b")),
            cols = if agg_keys.is_empty() {
                "agg.b".to_owned()
            } else {
                format!("{}, agg.b", agg_keys.join(", "))
            },
            on = on.join(" AND "),
            inner = inner.sql,
        );
        Ok((
            Statement {
                sql,
                values: inner.values,
                db_backend: backend,
            },
            by,
            bounds,
        ))
    }
}

fn too_many(n: usize) -> Error {
    Error::BadFilter(format!(
        "this grouping gives {n} groups; at most {MAX_GROUPS} per answer: group by fewer keys, narrow the range or use a larger bucket"
    ))
}

fn int_at(row: &sea_orm::QueryResult, i: usize) -> Result<i64, Error> {
    Ok(opt_int_at(row, i)?.unwrap_or(0))
}

fn opt_int_at(row: &sea_orm::QueryResult, i: usize) -> Result<Option<i64>, Error> {
    if let Ok(v) = row.try_get_by_index::<Option<i64>>(i) {
        return Ok(v);
    }
    // MySQL answers some integer expressions as DECIMAL or as 32-bit integers.
    if let Ok(v) = row.try_get_by_index::<Option<i32>>(i) {
        return Ok(v.map(i64::from));
    }
    Err(Error::Internal)
}

/// A text key: as text, or as bytes where the backend compares bytes (MySQL).
fn text_at(backend: DbBackend, row: &sea_orm::QueryResult, i: usize) -> Result<String, Error> {
    if backend == DbBackend::MySql
        && let Ok(b) = row.try_get_by_index::<Vec<u8>>(i)
    {
        return Ok(String::from_utf8_lossy(&b).into_owned());
    }
    row.try_get_by_index::<String>(i)
        .map_err(|_| Error::Internal)
}
