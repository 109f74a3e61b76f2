//! Grouped statistics for both logs' statistics types: groups by status, action, channel
//! and user (the last two admin-only) and by local time buckets in an IANA time zone.

use async_graphql::{Context, Enum, SimpleObject};
use chrono::{DateTime, Utc};

use crate::graphql::context::caller;
use crate::graphql::errors::Gql;
use crate::graphql::scalars::Long;
use crate::service::groups::{Group, GroupKey, Grouping};
use crate::service::time_zone::{self, Unit};
use crate::service::{Log, LogQuery, Viewer};

/// What tasks can be grouped by, besides time.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskGroupKey {
    /// The status ("" for tasks without one).
    Status,
    /// The action ("" for tasks without one).
    Action,
    /// The channel (admins only).
    Channel,
    /// The owner (admins only).
    User,
}

impl From<TaskGroupKey> for GroupKey {
    fn from(k: TaskGroupKey) -> GroupKey {
        match k {
            TaskGroupKey::Status => GroupKey::Status,
            TaskGroupKey::Action => GroupKey::Action,
            TaskGroupKey::Channel => GroupKey::Channel,
            TaskGroupKey::User => GroupKey::User,
        }
    }
}

/// A unit of local time to bucket the submit time by.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketUnit {
    /// From one local o'clock to the next.
    Hour,
    /// From local midnight to local midnight: 23 or 25 hours on daylight-saving days.
    Day,
    /// Monday to Monday (ISO 8601 weeks), local midnights.
    Week,
    /// The first of a month to the first of the next, local midnights.
    Month,
}

impl From<BucketUnit> for Unit {
    fn from(u: BucketUnit) -> Unit {
        match u {
            BucketUnit::Hour => Unit::Hour,
            BucketUnit::Day => Unit::Day,
            BucketUnit::Week => Unit::Week,
            BucketUnit::Month => Unit::Month,
        }
    }
}

/// One group of tasks and its figures. Key fields not grouped by are null.
#[derive(SimpleObject)]
pub struct TaskGroup {
    /// The status shared by the group (when grouped by STATUS).
    pub status: Option<String>,
    /// The action shared by the group (when grouped by ACTION).
    pub action: Option<String>,
    /// The channel shared by the group (when grouped by CHANNEL; 0 for none).
    pub channel_id: Option<i64>,
    /// The owner shared by the group (when grouped by USER).
    pub user_id: Option<i64>,
    /// Where the group's time bucket starts (when grouped by time).
    pub bucket_start: Option<DateTime<Utc>>,
    /// Where it ends (the next bucket's start).
    pub bucket_end: Option<DateTime<Utc>>,
    /// How many tasks (0 for an empty bucket).
    pub count: i64,
    /// How many have status SUCCESS.
    pub success_count: i64,
    /// How many have status FAILURE.
    pub failure_count: i64,
    /// successCount / count; null for an empty group.
    pub success_rate: Option<f64>,
    /// Their quota sum.
    pub quota_sum: Long,
    /// How many have a duration (finished, with a submit time): the figures below are over these.
    pub duration_count: i64,
    /// Mean duration (finish − submit), in milliseconds.
    pub duration_avg_ms: Option<f64>,
    /// Median duration in milliseconds (nearest rank: the ⌈n/2⌉-th smallest).
    pub duration_p50_ms: Option<Long>,
    /// 95th percentile duration in milliseconds (nearest rank: the ⌈0.95·n⌉-th smallest).
    pub duration_p95_ms: Option<Long>,
    /// Longest duration in milliseconds.
    pub duration_max_ms: Option<Long>,
}

fn instant(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

impl From<Group> for TaskGroup {
    fn from(g: Group) -> TaskGroup {
        TaskGroup {
            success_rate: g.success_rate(),
            duration_avg_ms: g.durations.average_ms(),
            status: g.keys.status,
            action: g.keys.action,
            channel_id: g.keys.channel_id,
            user_id: g.keys.user_id,
            bucket_start: g.bucket.and_then(|(s, _)| instant(s)),
            bucket_end: g.bucket.and_then(|(_, e)| instant(e)),
            count: g.count,
            success_count: g.success_count,
            failure_count: g.failure_count,
            quota_sum: Long(g.quota_sum),
            duration_count: g.durations.count,
            duration_p50_ms: g.durations.p50_ms.map(Long),
            duration_p95_ms: g.durations.p95_ms.map(Long),
            duration_max_ms: g.durations.max_ms.map(Long),
        }
    }
}

/// The arguments of a `groups` field.
pub(crate) struct GroupsArgs {
    pub by: Vec<TaskGroupKey>,
    pub bucket: Option<BucketUnit>,
    pub time_zone: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// `query`'s tasks grouped as `args` say.
pub(crate) async fn groups<L: Log>(
    ctx: &Context<'_>,
    viewer: &Viewer,
    query: &LogQuery<L>,
    args: GroupsArgs,
) -> async_graphql::Result<Vec<TaskGroup>> {
    let (service, _, lang) = caller(ctx)?;
    let grouping = Grouping {
        by: args.by.into_iter().map(Into::into).collect(),
        bucket: args.bucket.map(Into::into),
        tz: time_zone::parse(&args.time_zone).gql(lang)?,
        from_ms: args.from.map(|t| t.timestamp_millis()),
        to_ms: args.to.map(|t| t.timestamp_millis()),
    };
    let now = Utc::now().timestamp_millis();
    let groups = service
        .task_groups(viewer, query, &grouping, now)
        .await
        .gql(lang)?;
    Ok(groups.into_iter().map(TaskGroup::from).collect())
}
