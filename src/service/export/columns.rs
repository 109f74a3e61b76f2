//! What an export holds of each log: its columns in order, which are admin-only, and each
//! column's value in a record. Times are written twice: the stored number and ISO 8601.

use crate::service::record::epoch_ms;
use crate::service::{Log, Midjourneys, PlatformTaskRecord, TaskRecord, Tasks};

/// One value of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell<'a> {
    Int(i64),
    Text(&'a str),
    /// A stored time (its number as stored) and the instant it means in epoch
    /// milliseconds (`None` when unset).
    Time {
        stored: i64,
        ms: Option<i64>,
    },
}

/// One column of an export.
pub struct Column<R> {
    /// Its name in the header (CSV) or as a key (NDJSON); a time column adds `<name>_iso`.
    pub name: &'static str,
    /// Shown to admins only.
    pub admin_only: bool,
    /// A time: written as the stored number and again as ISO 8601 (`<name>_iso`).
    pub time: bool,
    /// Its value in a record.
    pub get: fn(&R) -> Cell<'_>,
}

/// A log that can be exported.
pub trait Exportable: Log {
    /// The file name's stem (`midjourney-tasks`, `tasks`).
    const FILE_STEM: &'static str;
    /// Every column, in order.
    fn columns() -> &'static [Column<Self::Record>];
}

/// The columns `admin` (or not) may see, in order.
pub fn visible<L: Exportable>(admin: bool) -> impl Iterator<Item = &'static Column<L::Record>> {
    L::columns().iter().filter(move |c| admin || !c.admin_only)
}

const fn col<R>(name: &'static str, get: fn(&R) -> Cell<'_>) -> Column<R> {
    Column {
        name,
        admin_only: false,
        time: false,
        get,
    }
}

const fn time<R>(name: &'static str, get: fn(&R) -> Cell<'_>) -> Column<R> {
    Column {
        name,
        admin_only: false,
        time: true,
        get,
    }
}

/// A Midjourney time column: stored as seconds or milliseconds.
fn mj_time(stored: i64) -> Cell<'static> {
    Cell::Time {
        stored,
        ms: epoch_ms(stored),
    }
}

/// A task-log time column: stored as epoch seconds.
fn seconds(stored: i64) -> Cell<'static> {
    Cell::Time {
        stored,
        ms: (stored > 0).then(|| stored.saturating_mul(1000)),
    }
}

static MJ_COLUMNS: [Column<TaskRecord>; 22] = [
    col("id", |r| Cell::Int(r.id)),
    col("user_id", |r| Cell::Int(r.user_id)),
    col("code", |r| Cell::Int(r.code)),
    col("mj_id", |r| Cell::Text(&r.mj_id)),
    col("action", |r| Cell::Text(&r.action)),
    col("prompt", |r| Cell::Text(&r.prompt)),
    col("prompt_en", |r| Cell::Text(&r.prompt_en)),
    col("description", |r| Cell::Text(&r.description)),
    col("state", |r| Cell::Text(&r.state)),
    col("status", |r| Cell::Text(&r.status)),
    col("progress", |r| Cell::Text(&r.progress)),
    col("image_url", |r| Cell::Text(&r.image_url)),
    col("video_url", |r| Cell::Text(&r.video_url)),
    col("video_urls", |r| Cell::Text(&r.video_urls)),
    col("buttons", |r| Cell::Text(&r.buttons)),
    col("properties", |r| Cell::Text(&r.properties)),
    time("submit_time", |r| mj_time(r.submit_time)),
    time("start_time", |r| mj_time(r.start_time)),
    time("finish_time", |r| mj_time(r.finish_time)),
    col("fail_reason", |r| Cell::Text(&r.fail_reason)),
    Column {
        name: "channel_id",
        admin_only: true,
        time: false,
        get: |r| Cell::Int(r.channel_id),
    },
    col("quota", |r| Cell::Int(r.quota)),
];

impl Exportable for Midjourneys {
    const FILE_STEM: &'static str = "midjourney-tasks";
    fn columns() -> &'static [Column<TaskRecord>] {
        &MJ_COLUMNS
    }
}

static TASK_COLUMNS: [Column<PlatformTaskRecord>; 21] = [
    col("id", |r| Cell::Int(r.id)),
    time("created_at", |r| seconds(r.created_at)),
    time("updated_at", |r| seconds(r.updated_at)),
    col("task_id", |r| Cell::Text(&r.task_id)),
    col("platform", |r| Cell::Text(&r.platform)),
    col("user_id", |r| Cell::Int(r.user_id)),
    col("group", |r| Cell::Text(&r.group)),
    Column {
        name: "channel_id",
        admin_only: true,
        time: false,
        get: |r| Cell::Int(r.channel_id),
    },
    col("quota", |r| Cell::Int(r.quota)),
    col("action", |r| Cell::Text(&r.action)),
    col("status", |r| Cell::Text(&r.status)),
    col("fail_reason", |r| Cell::Text(&r.fail_reason)),
    col("result_url", |r| Cell::Text(&r.result_url)),
    time("submit_time", |r| seconds(r.submit_time)),
    time("start_time", |r| seconds(r.start_time)),
    time("finish_time", |r| seconds(r.finish_time)),
    col("progress", |r| Cell::Text(&r.progress)),
    col("input", |r| Cell::Text(&r.properties.input)),
    col("upstream_model_name", |r| {
        Cell::Text(&r.properties.upstream_model_name)
    }),
    col("origin_model_name", |r| {
        Cell::Text(&r.properties.origin_model_name)
    }),
    col("data", |r| Cell::Text(r.data.as_deref().unwrap_or(""))),
];

impl Exportable for Tasks {
    const FILE_STEM: &'static str = "tasks";
    fn columns() -> &'static [Column<PlatformTaskRecord>] {
        &TASK_COLUMNS
    }
}
