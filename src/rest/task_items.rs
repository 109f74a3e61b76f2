//! The task routes' item: new-api's 20 keys in its DTO's order.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::service::PlatformTaskRecord;
use crate::service::task_log::json::Properties;

/// One item of `/api/task/self` or `/api/task/`.
#[derive(Serialize)]
pub struct TaskItem {
    id: i64,
    created_at: i64,
    updated_at: i64,
    task_id: String,
    platform: String,
    user_id: i64,
    group: String,
    channel_id: i64,
    quota: i64,
    action: String,
    status: String,
    fail_reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    result_url: String,
    submit_time: i64,
    start_time: i64,
    finish_time: i64,
    progress: String,
    properties: Properties,
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    data: Option<Box<RawValue>>,
}

impl TaskItem {
    /// The item of `record`. `/self` shows no channel (new-api's list query omits the
    /// column) and no username; the admin route shows both (`username` empty: key absent).
    pub fn new(r: PlatformTaskRecord, admin: bool, username: Option<&str>) -> TaskItem {
        TaskItem {
            id: r.id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            task_id: r.task_id,
            platform: r.platform,
            user_id: r.user_id,
            group: r.group,
            channel_id: if admin { r.channel_id } else { 0 },
            quota: r.quota,
            action: r.action,
            status: r.status,
            fail_reason: r.fail_reason,
            result_url: r.result_url,
            submit_time: r.submit_time,
            start_time: r.start_time,
            finish_time: r.finish_time,
            progress: r.progress,
            properties: r.properties,
            username: if admin {
                username.unwrap_or_default().to_owned()
            } else {
                String::new()
            },
            // Compacted JSON already; a value that somehow is not is served as null.
            data: r.data.and_then(|d| RawValue::from_string(d).ok()),
        }
    }
}

/// The `data` object of a task list answer (a Go struct: fields in this order).
#[derive(Serialize)]
pub struct TaskPageData {
    pub page: u64,
    pub page_size: u64,
    pub total: u64,
    pub items: Vec<TaskItem>,
}
