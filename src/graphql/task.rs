//! The `MidjourneyTask` type.

use std::borrow::Cow;

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::graphql::context::lang;
use crate::graphql::errors::to_gql;
use crate::graphql::scalars::Long;
use crate::service::TaskRecord;
use crate::service::node_id;
use crate::service::record::epoch_ms;

/// One Midjourney task (an image or video job submitted upstream): its record, owned (a lookup, an event) or borrowed from the page it belongs to (a page's nodes are not copied).
pub struct MidjourneyTask<'a> {
    pub record: Cow<'a, TaskRecord>,
    /// Whether the caller is an admin (admin-only fields).
    pub admin: bool,
}

impl MidjourneyTask<'static> {
    /// A task holding its own record.
    pub fn owned(record: TaskRecord, admin: bool) -> Self {
        MidjourneyTask {
            record: Cow::Owned(record),
            admin,
        }
    }
}

impl<'a> MidjourneyTask<'a> {
    /// A task reading a record held elsewhere (a page's row).
    pub fn borrowed(record: &'a TaskRecord, admin: bool) -> Self {
        MidjourneyTask {
            record: Cow::Borrowed(record),
            admin,
        }
    }
}

fn datetime(value: i64) -> Option<DateTime<Utc>> {
    epoch_ms(value).and_then(DateTime::from_timestamp_millis)
}

/// One Midjourney task: an image or video job the gateway submitted upstream. Unknown stored values of the open sets (action, status) pass through unchanged; NULL columns read as "" or 0.
#[Object]
impl MidjourneyTask<'_> {
    /// The row id (the integer the REST routes show as `id`).
    async fn id(&self) -> i64 {
        self.record.id
    }
    /// The opaque global id (Relay's `Node`): give it to `node(id:)` to read this task again.
    pub async fn node_id(&self, _ctx: &Context<'_>) -> async_graphql::Result<ID> {
        Ok(ID(node_id::encode(self.record.id)))
    }
    /// The upstream task id (not necessarily unique).
    async fn mj_id(&self) -> &str {
        &self.record.mj_id
    }
    /// The action: IMAGINE, UPSCALE, VARIATION, REROLL, DESCRIBE, BLEND, VIDEO, … (an open set).
    async fn action(&self) -> &str {
        &self.record.action
    }
    /// The status: "" right after submit, then NOT_START, SUBMITTED, IN_PROGRESS, FAILURE, SUCCESS, MODAL, … (an open set).
    async fn status(&self) -> &str {
        &self.record.status
    }
    /// The progress as stored, e.g. "45%".
    async fn progress(&self) -> &str {
        &self.record.progress
    }
    /// The progress as a number from 0 to 100.
    async fn progress_percent(&self) -> i32 {
        self.record.progress_percent()
    }
    /// Whether the task is done (progress is "100%").
    async fn finished(&self) -> bool {
        self.record.finished()
    }
    /// The prompt as submitted.
    async fn prompt(&self) -> &str {
        &self.record.prompt
    }
    /// The prompt translated to English.
    async fn prompt_en(&self) -> &str {
        &self.record.prompt_en
    }
    /// Why the task failed, when it did.
    async fn fail_reason(&self) -> &str {
        &self.record.fail_reason
    }
    /// The upstream's description of the submission.
    async fn description(&self) -> &str {
        &self.record.description
    }
    /// The result image URL.
    async fn image_url(&self) -> &str {
        &self.record.image_url
    }
    /// The result video URL.
    async fn video_url(&self) -> &str {
        &self.record.video_url
    }
    /// Every result video URL (the stored JSON parsed; unreadable JSON gives []).
    async fn video_urls(&self) -> Vec<String> {
        self.record.video_url_list()
    }
    /// The submit time as stored (new-api stores epoch milliseconds; 0 when unset).
    async fn submit_time(&self) -> Long {
        Long(self.record.submit_time)
    }
    /// The start time as stored (0 when unset).
    async fn start_time(&self) -> Long {
        Long(self.record.start_time)
    }
    /// The finish time as stored (0 when unset).
    async fn finish_time(&self) -> Long {
        Long(self.record.finish_time)
    }
    /// The submit time in ISO-8601 (a stored value >= 1e11 is read as milliseconds, a smaller one as seconds); null when unset.
    async fn submitted_at(&self) -> Option<DateTime<Utc>> {
        datetime(self.record.submit_time)
    }
    /// The start time in ISO-8601; null when unset.
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        datetime(self.record.start_time)
    }
    /// The finish time in ISO-8601; null when unset.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        datetime(self.record.finish_time)
    }
    /// Milliseconds from submit to finish; null unless both are set.
    async fn duration_ms(&self) -> Option<Long> {
        self.record.duration_ms().map(Long)
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
}
