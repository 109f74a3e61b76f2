//! A row of the task log as both doors see it: NULL read as `""` or `0`, the JSON columns
//! decoded, and `private_data` reduced to the one value that may be shown.

use entity::task;

use crate::service::task_log::json::{self, Properties};

/// One task of the generic log. Built from a stored row; there is no field for
/// `private_data`, so nothing downstream can serve it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlatformTaskRecord {
    pub id: i64,
    /// Epoch seconds.
    pub created_at: i64,
    /// Epoch seconds.
    pub updated_at: i64,
    pub task_id: String,
    pub platform: String,
    pub user_id: i64,
    pub group: String,
    pub channel_id: i64,
    pub quota: i64,
    pub action: String,
    pub status: String,
    pub fail_reason: String,
    /// `private_data.result_url` when non-empty, else `fail_reason` (new-api's rule).
    pub result_url: String,
    /// Epoch seconds.
    pub submit_time: i64,
    /// Epoch seconds.
    pub start_time: i64,
    /// Epoch seconds.
    pub finish_time: i64,
    pub progress: String,
    pub properties: Properties,
    /// The upstream's answer, compacted; `None` when NULL, empty or not JSON.
    pub data: Option<String>,
}

/// A JSON column's bytes as text (SQLite keeps new-api's JSON as BLOBs); invalid UTF-8
/// becomes U+FFFD, as Go's encoder would write it.
fn text(bytes: Option<Vec<u8>>) -> String {
    match bytes {
        None => String::new(),
        Some(b) => match String::from_utf8(b) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        },
    }
}

impl PlatformTaskRecord {
    /// Reads a stored row.
    pub fn from_model(m: task::Model) -> PlatformTaskRecord {
        let fail_reason = m.fail_reason.unwrap_or_default();
        let result_url =
            json::private_result_url(&text(m.private_data)).unwrap_or_else(|| fail_reason.clone());
        PlatformTaskRecord {
            id: m.id,
            created_at: m.created_at.unwrap_or_default(),
            updated_at: m.updated_at.unwrap_or_default(),
            task_id: m.task_id.unwrap_or_default(),
            platform: m.platform.unwrap_or_default(),
            user_id: m.user_id.unwrap_or_default(),
            group: m.group.unwrap_or_default(),
            channel_id: m.channel_id.unwrap_or_default(),
            quota: m.quota.unwrap_or_default(),
            action: m.action.unwrap_or_default(),
            status: m.status.unwrap_or_default(),
            fail_reason,
            result_url,
            submit_time: m.submit_time.unwrap_or_default(),
            start_time: m.start_time.unwrap_or_default(),
            finish_time: m.finish_time.unwrap_or_default(),
            progress: m.progress.unwrap_or_default(),
            properties: json::properties(&text(m.properties)),
            data: json::compact_data(&text(m.data)),
        }
    }

    /// Whether the task is done: `progress = "100%"`.
    pub fn finished(&self) -> bool {
        self.progress == "100%"
    }
}
