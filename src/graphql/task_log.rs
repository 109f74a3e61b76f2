//! new-api's generic task log (Suno and video tasks) in GraphQL: the `Task` type, its filter
//! and order inputs, and its connection. Every rule is the service's (the same core as the
//! Midjourney log); this module only translates.

use std::borrow::Cow;

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

use crate::error::Error;
use crate::graphql::connection::{PageInfo, TotalOf};
use crate::graphql::context::{arrived, caller, lang};
use crate::graphql::errors::{Gql, to_gql};
use crate::graphql::groups::{self, BucketUnit, GroupsArgs, TaskGroup, TaskGroupKey};
use crate::graphql::inputs::{IntFilter, LongFilter, StringFilter, TextFilter};
use crate::graphql::paging::OrderDirection;
use crate::graphql::plain::{Plain, PlainList};
use crate::graphql::scalars::Long;
use crate::graphql::stats::{self, Bucket, TimeBucket};
use crate::service::filter::MAX_DEPTH;
use crate::service::node_id::{self, NodeKind};
use crate::service::stats::{GroupBy, Totals};
use crate::service::task_log::PlatformOrderField;
use crate::service::{
    Direction, KeyOrder, Page, PlatformTaskFilter, PlatformTaskQuery, PlatformTaskRecord, Tasks,
    Viewer,
};

/// A task of the generic log, with whether its caller is an admin: its record owned (a lookup, an event) or borrowed from the page it belongs to (a page's nodes are not copied).
pub struct Task<'a> {
    pub record: Cow<'a, PlatformTaskRecord>,
    /// Whether the caller is an admin (admin-only fields).
    pub admin: bool,
}

impl Task<'static> {
    /// A task holding its own record.
    pub fn owned(record: PlatformTaskRecord, admin: bool) -> Self {
        Task {
            record: Cow::Owned(record),
            admin,
        }
    }
}

impl<'a> Task<'a> {
    /// A task reading a record held elsewhere (a page's row).
    pub fn borrowed(record: &'a PlatformTaskRecord, admin: bool) -> Self {
        Task {
            record: Cow::Borrowed(record),
            admin,
        }
    }
}

fn from_seconds(value: i64) -> Option<DateTime<Utc>> {
    (value > 0)
        .then_some(value)
        .and_then(|s| DateTime::from_timestamp(s, 0))
}

/// One task of new-api's generic task log: a Suno music task or a video task (Kling, Jimeng, Vidu, Seedance, Sora, Veo, Hailuo, Wan, …). Times are epoch seconds (the Midjourney log stores milliseconds). NULL columns read as "" or 0. The upstream's keys (new-api's private data) are never served.
#[Object]
impl Task<'_> {
    /// The row id (the integer the REST routes show as `id`).
    async fn id(&self) -> i64 {
        self.record.id
    }
    /// The opaque global id (Relay's `Node`): give it to `node(id:)` to read this task again.
    pub async fn node_id(&self) -> ID {
        ID(node_id::encode_of(NodeKind::Task, self.record.id))
    }
    /// The public task id (`task_…` in current new-api).
    async fn task_id(&self) -> &str {
        &self.record.task_id
    }
    /// The platform: "suno", or a video channel type as a decimal string ("50" Kling, "51" Jimeng, "52" Vidu, "54" Seedance, "55" Sora, …; an open set).
    async fn platform(&self) -> &str {
        &self.record.platform
    }
    /// The action: MUSIC, LYRICS (Suno); generate, textGenerate, firstTailGenerate, referenceGenerate, remixGenerate (video); an open set.
    async fn action(&self) -> &str {
        &self.record.action
    }
    /// The status: NOT_START, SUBMITTED, QUEUED, IN_PROGRESS, SUCCESS, FAILURE, UNKNOWN, or "" on rows from older builds (an open set).
    async fn status(&self) -> &str {
        &self.record.status
    }
    /// The progress as stored, e.g. "45%".
    async fn progress(&self) -> &str {
        &self.record.progress
    }
    /// Whether the task is done (progress is "100%").
    async fn finished(&self) -> bool {
        self.record.finished()
    }
    /// Why the task failed, when it did.
    async fn fail_reason(&self) -> &str {
        &self.record.fail_reason
    }
    /// The result URL; new-api falls back to the failure reason (where older builds kept the URL), so a failed task shows its error text here too.
    async fn result_url(&self) -> &str {
        &self.record.result_url
    }
    /// The task's text input (prompt, lyrics, …), from its properties.
    async fn input(&self) -> &str {
        &self.record.properties.input
    }
    /// The model the client asked for ("" when not recorded).
    async fn origin_model_name(&self) -> &str {
        &self.record.properties.origin_model_name
    }
    /// The model sent upstream ("" when not recorded).
    async fn upstream_model_name(&self) -> &str {
        &self.record.properties.upstream_model_name
    }
    /// The billing group.
    async fn group(&self) -> &str {
        &self.record.group
    }
    /// The quota charged.
    async fn quota(&self) -> i64 {
        self.record.quota
    }
    /// The owner's user id (callers only ever see their own tasks, admins everyone's).
    async fn user_id(&self) -> i64 {
        self.record.user_id
    }
    /// The upstream channel. Admins only: anyone else gets a FORBIDDEN error here.
    async fn channel_id(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<i64>> {
        if !self.admin {
            let err = Error::Forbidden("channelId is for admins only".into());
            return Err(to_gql(&err, lang(ctx)));
        }
        Ok(Some(self.record.channel_id))
    }
    /// The submit time in epoch seconds, as stored (0 when unset).
    async fn submit_time(&self) -> Long {
        Long(self.record.submit_time)
    }
    /// The start time in epoch seconds (0 until started).
    async fn start_time(&self) -> Long {
        Long(self.record.start_time)
    }
    /// The finish time in epoch seconds (0 until finished).
    async fn finish_time(&self) -> Long {
        Long(self.record.finish_time)
    }
    /// When the row was created, epoch seconds (0 when unset).
    async fn created_at(&self) -> Long {
        Long(self.record.created_at)
    }
    /// When the row last changed, epoch seconds (0 when unset).
    async fn updated_at(&self) -> Long {
        Long(self.record.updated_at)
    }
    /// The submit time in ISO-8601; null when unset.
    async fn submitted_at(&self) -> Option<DateTime<Utc>> {
        from_seconds(self.record.submit_time)
    }
    /// The finish time in ISO-8601; null when unset.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        from_seconds(self.record.finish_time)
    }
    /// The upstream's raw answer as JSON (null when none was stored or it is not JSON).
    async fn data(&self) -> Option<Json<serde_json::Value>> {
        let text = self.record.data.as_deref()?;
        serde_json::from_str(text).ok().map(Json)
    }
}

/// Conditions on the generic task log; all given fields must hold. Non-admins are always limited to their own tasks, whatever the filter says.
#[derive(InputObject, Clone, Debug, Default)]
#[graphql(name = "TaskFilter")]
pub struct TaskFilterInput {
    /// The row id.
    pub id: Option<IntFilter>,
    /// The public task id (exact).
    pub task_id: Option<StringFilter>,
    /// The platform: "suno", or a video channel type ("50", "55", …).
    pub platform: Option<StringFilter>,
    /// The action: MUSIC, LYRICS, generate, textGenerate, … (an open set).
    pub action: Option<StringFilter>,
    /// The status: SUCCESS, FAILURE, IN_PROGRESS, QUEUED, SUBMITTED, NOT_START, … .
    pub status: Option<StringFilter>,
    /// The owner's user id. Admins only.
    pub user_id: Option<IntFilter>,
    /// The upstream channel. Admins only.
    pub channel_id: Option<IntFilter>,
    /// The submit time, epoch seconds.
    pub submit_time: Option<LongFilter>,
    /// The start time, epoch seconds.
    pub start_time: Option<LongFilter>,
    /// The finish time, epoch seconds.
    pub finish_time: Option<LongFilter>,
    /// When the row last changed, epoch seconds.
    pub updated_at: Option<LongFilter>,
    /// The quota charged.
    pub quota: Option<IntFilter>,
    /// Finished (progress is "100%") or not.
    pub finished: Option<bool>,
    /// Tests on the failure reason.
    pub fail_reason: Option<TextFilter>,
    /// The model the client asked for (exact; "" when not recorded).
    pub origin_model_name: Option<StringFilter>,
    /// The model sent upstream (exact; "" when not recorded).
    pub upstream_model_name: Option<StringFilter>,
    /// All of these filters hold (at most 10).
    pub and: Option<Vec<TaskFilterInput>>,
    /// At least one of these filters holds (at most 10).
    pub or: Option<Vec<TaskFilterInput>>,
    /// This filter does not hold.
    pub not: Option<Box<TaskFilterInput>>,
}

impl TaskFilterInput {
    /// The service filter (nesting beyond the service's limit refused before recursing).
    pub fn into_service(self) -> Result<PlatformTaskFilter, Error> {
        self.convert(1)
    }

    fn convert(self, depth: usize) -> Result<PlatformTaskFilter, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::BadFilter(format!(
                "filter nesting is deeper than {MAX_DEPTH} levels"
            )));
        }
        let list = |l: Option<Vec<TaskFilterInput>>| -> Result<Vec<PlatformTaskFilter>, Error> {
            l.unwrap_or_default()
                .into_iter()
                .map(|f| f.convert(depth + 1))
                .collect()
        };
        Ok(PlatformTaskFilter {
            id: self.id.map(Into::into),
            task_id: self.task_id.map(Into::into),
            platform: self.platform.map(Into::into),
            action: self.action.map(Into::into),
            status: self.status.map(Into::into),
            user_id: self.user_id.map(Into::into),
            channel_id: self.channel_id.map(Into::into),
            submit_time: self.submit_time.map(Into::into),
            start_time: self.start_time.map(Into::into),
            finish_time: self.finish_time.map(Into::into),
            updated_at: self.updated_at.map(Into::into),
            quota: self.quota.map(Into::into),
            finished: self.finished,
            fail_reason: self.fail_reason.map(Into::into),
            origin_model_name: self.origin_model_name.map(Into::into),
            upstream_model_name: self.upstream_model_name.map(Into::into),
            legacy_nulls: false,
            and: list(self.and)?,
            or: list(self.or)?,
            not: match self.not {
                Some(f) => Some(Box::new(f.convert(depth + 1)?)),
                None => None,
            },
        })
    }
}

/// A field the generic task log can be ordered by.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskSortField {
    /// The row id (creation order).
    Id,
    /// The submit time.
    SubmitTime,
    /// The finish time.
    FinishTime,
    /// When the row last changed.
    UpdatedAt,
    /// The quota charged.
    Quota,
}

/// One sort key of the generic task log. At most 3 keys; `id` is always added as the final tie-breaker.
#[derive(InputObject, Clone, Copy, Debug)]
pub struct TaskOrder {
    /// The field to sort by.
    pub field: TaskSortField,
    /// The direction.
    #[graphql(default_with = "OrderDirection::Desc")]
    pub direction: OrderDirection,
}

impl From<TaskOrder> for KeyOrder<PlatformOrderField> {
    fn from(o: TaskOrder) -> Self {
        KeyOrder {
            field: match o.field {
                TaskSortField::Id => PlatformOrderField::Id,
                TaskSortField::SubmitTime => PlatformOrderField::SubmitTime,
                TaskSortField::FinishTime => PlatformOrderField::FinishTime,
                TaskSortField::UpdatedAt => PlatformOrderField::UpdatedAt,
                TaskSortField::Quota => PlatformOrderField::Quota,
            },
            direction: match o.direction {
                OrderDirection::Asc => Direction::Asc,
                OrderDirection::Desc => Direction::Desc,
            },
        }
    }
}

/// One page of the generic task log. `totalCount` and `pageInfo.totalPages` run a count query only when selected.
pub struct TaskConnection {
    pub page: Page<Tasks>,
    pub query: PlatformTaskQuery,
    pub viewer: Viewer,
    pub total: OnceCell<u64>,
}

impl TaskConnection {
    pub(crate) async fn total(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        let (service, _, lang) = caller(ctx)?;
        self.total
            .get_or_try_init(|| async {
                service
                    .count_since(&self.viewer, &self.query, arrived(ctx))
                    .await
                    .gql(lang)
            })
            .await
            .copied()
    }

    fn tasks(&self) -> impl Iterator<Item = Task<'_>> + '_ {
        let admin = self.viewer.is_admin();
        self.page.rows.iter().map(move |r| Task::borrowed(r, admin))
    }
}

/// A task of the generic log with its cursor.
#[derive(SimpleObject)]
pub struct TaskEdge<'a> {
    /// Pass as `after` or `before` (with the same order and filter) to page from here.
    pub cursor: String,
    /// The task.
    pub node: Plain<Task<'a>>,
}

/// A page of the generic task log.
#[Object]
impl TaskConnection {
    /// The tasks of this page.
    async fn nodes(&self) -> PlainList<Task<'_>> {
        PlainList(self.tasks().collect())
    }
    /// The tasks of this page with their cursors.
    async fn edges(&self) -> Vec<TaskEdge<'_>> {
        self.tasks()
            .zip(self.page.cursors())
            .map(|(node, cursor)| TaskEdge {
                cursor,
                node: Plain(node),
            })
            .collect()
    }
    /// Where this page stands.
    async fn page_info(&self) -> PageInfo<'_> {
        PageInfo::of(&self.page, TotalOf::Task(self))
    }
    /// How many tasks match in all (an exact count, run only when selected).
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        self.total(ctx).await
    }
}

/// Statistics over the generic log's tasks a filter matches (with the same scope as `tasks`). Each part runs its query only when selected; the four totals share one query.
pub struct TaskStats {
    pub query: PlatformTaskQuery,
    pub viewer: Viewer,
    pub totals: OnceCell<Totals>,
}

/// Counts and sums over the matching tasks of the generic log.
#[Object]
impl TaskStats {
    /// How many tasks match.
    async fn count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(stats::totals(ctx, &self.viewer, &self.query, &self.totals)
            .await?
            .count)
    }
    /// Their total quota.
    async fn quota_sum(&self, ctx: &Context<'_>) -> async_graphql::Result<Long> {
        let t = stats::totals(ctx, &self.viewer, &self.query, &self.totals).await?;
        Ok(Long(t.quota_sum))
    }
    /// How many have status SUCCESS.
    async fn success_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let t = stats::totals(ctx, &self.viewer, &self.query, &self.totals).await?;
        Ok(t.success_count)
    }
    /// How many have status FAILURE.
    async fn failure_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let t = stats::totals(ctx, &self.viewer, &self.query, &self.totals).await?;
        Ok(t.failure_count)
    }
    /// Counts per status, most frequent first (at most 100).
    async fn by_status(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Bucket>> {
        stats::buckets(ctx, &self.viewer, &self.query, GroupBy::Status).await
    }
    /// Counts per action, most frequent first (at most 100).
    async fn by_action(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Bucket>> {
        stats::buckets(ctx, &self.viewer, &self.query, GroupBy::Action).await
    }
    /// Counts per platform ("suno", "50", …), most frequent first (at most 100).
    async fn by_platform(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Bucket>> {
        stats::buckets(ctx, &self.viewer, &self.query, GroupBy::Platform).await
    }
    /// One bucket per UTC day on the submit time, for the `days` days ending today, oldest first, days without tasks included.
    async fn by_day(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many days, 1 to 366.", default = 30)] days: i64,
    ) -> async_graphql::Result<Vec<TimeBucket>> {
        stats::by_day(ctx, &self.viewer, &self.query, days).await
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
