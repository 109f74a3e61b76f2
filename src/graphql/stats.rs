//! The statistics type: totals, groupings and a daily series over one filter and scope.

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

use crate::graphql::context::caller;
use crate::graphql::errors::Gql;
use crate::graphql::groups::{self, BucketUnit, GroupsArgs, TaskGroup, TaskGroupKey};
use crate::graphql::scalars::Long;
use crate::service::stats::{Bucket as SvcBucket, GroupBy, Totals};
use crate::service::{Log, LogQuery, TaskQuery, Viewer};

/// Statistics over the tasks a filter matches (with the same scope as `midjourneyTasks`). Each part runs its query only when selected; the four totals share one query.
pub struct MidjourneyTaskStats {
    pub query: TaskQuery,
    pub viewer: Viewer,
    pub totals: OnceCell<Totals>,
}

/// A group of tasks sharing a key.
#[derive(SimpleObject)]
pub struct Bucket {
    /// The status, action or platform ("" for tasks without one).
    pub key: String,
    /// How many tasks.
    pub count: i64,
    /// Their quota sum.
    pub quota_sum: Long,
}

/// One UTC day.
#[derive(SimpleObject)]
pub struct TimeBucket {
    /// The day's start (00:00 UTC).
    pub start: DateTime<Utc>,
    /// Tasks submitted that day.
    pub count: i64,
    /// Their quota sum.
    pub quota_sum: Long,
}

impl MidjourneyTaskStats {
    async fn totals(&self, ctx: &Context<'_>) -> async_graphql::Result<Totals> {
        totals(ctx, &self.viewer, &self.query, &self.totals).await
    }
}

/// The four totals of `query`, counted once (one query) however many are selected.
pub(crate) async fn totals<L: Log>(
    ctx: &Context<'_>,
    viewer: &Viewer,
    query: &LogQuery<L>,
    cell: &OnceCell<Totals>,
) -> async_graphql::Result<Totals> {
    let (service, _, lang) = caller(ctx)?;
    cell.get_or_try_init(|| async { service.task_totals(viewer, query).await.gql(lang) })
        .await
        .copied()
}

/// `query`'s tasks grouped `by`.
pub(crate) async fn buckets<L: Log>(
    ctx: &Context<'_>,
    viewer: &Viewer,
    query: &LogQuery<L>,
    by: GroupBy,
) -> async_graphql::Result<Vec<Bucket>> {
    let (service, _, lang) = caller(ctx)?;
    let rows = service.task_buckets(viewer, query, by).await.gql(lang)?;
    Ok(rows
        .into_iter()
        .map(
            |SvcBucket {
                 key,
                 count,
                 quota_sum,
             }| Bucket {
                key,
                count,
                quota_sum: Long(quota_sum),
            },
        )
        .collect())
}

/// `query`'s tasks per UTC day on the submit time, for the `days` days ending today.
pub(crate) async fn by_day<L: Log>(
    ctx: &Context<'_>,
    viewer: &Viewer,
    query: &LogQuery<L>,
    days: i64,
) -> async_graphql::Result<Vec<TimeBucket>> {
    let (service, _, lang) = caller(ctx)?;
    let now = Utc::now().timestamp_millis();
    let rows = service
        .tasks_by_day(viewer, query, days, now)
        .await
        .gql(lang)?;
    Ok(rows
        .into_iter()
        .filter_map(|b| {
            Some(TimeBucket {
                start: DateTime::from_timestamp_millis(b.start_ms)?,
                count: b.count,
                quota_sum: Long(b.quota_sum),
            })
        })
        .collect())
}

/// Counts and sums over the matching tasks.
#[Object]
impl MidjourneyTaskStats {
    /// How many tasks match.
    async fn count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.totals(ctx).await?.count)
    }
    /// Their total quota.
    async fn quota_sum(&self, ctx: &Context<'_>) -> async_graphql::Result<Long> {
        Ok(Long(self.totals(ctx).await?.quota_sum))
    }
    /// How many have status SUCCESS.
    async fn success_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.totals(ctx).await?.success_count)
    }
    /// How many have status FAILURE.
    async fn failure_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.totals(ctx).await?.failure_count)
    }
    /// Counts per status, most frequent first (at most 100).
    async fn by_status(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Bucket>> {
        buckets(ctx, &self.viewer, &self.query, GroupBy::Status).await
    }
    /// Counts per action, most frequent first (at most 100).
    async fn by_action(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Bucket>> {
        buckets(ctx, &self.viewer, &self.query, GroupBy::Action).await
    }
    /// One bucket per UTC day on the submit time, for the `days` days ending today, oldest first, days without tasks included.
    async fn by_day(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many days, 1 to 366.", default = 30)] days: i64,
    ) -> async_graphql::Result<Vec<TimeBucket>> {
        by_day(ctx, &self.viewer, &self.query, days).await
    }

    /// The matching tasks grouped by any of status, action, channel and user (the last two admins only) and by local time buckets of the submit time: counts, outcomes, quota and durations per group, in key order then time order. With a bucket, every bucket of the range is present for each combination of keys (zeros when empty), ready to chart. At most 1000 groups.
    #[allow(clippy::too_many_arguments)]
    async fn groups(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The keys to group by (none: one group, or one per bucket).",
            default
        )]
        by: Vec<TaskGroupKey>,
        #[graphql(desc = "Bucket the submit time by this unit of local time.")] bucket: Option<
            BucketUnit,
        >,
        #[graphql(
            desc = "The IANA time zone buckets are local to (e.g. Europe/Berlin).",
            default = "UTC"
        )]
        time_zone: String,
        #[graphql(
            desc = "Only tasks submitted from this instant on; with a bucket, rounded down to its bucket's start (default: 30 buckets back)."
        )]
        from: Option<DateTime<Utc>>,
        #[graphql(
            desc = "Only tasks submitted before this instant; with a bucket, rounded up to its bucket's end (default: now)."
        )]
        to: Option<DateTime<Utc>>,
    ) -> async_graphql::Result<Vec<TaskGroup>> {
        let args = GroupsArgs {
            by,
            bucket,
            time_zone,
            from,
            to,
        };
        groups::groups(ctx, &self.viewer, &self.query, args).await
    }
}
