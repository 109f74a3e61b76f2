//! The task as both doors see it: every column present, NULL read as `""` or `0`.

use entity::midjourney;

/// One task, free of NULLs. Built from a stored row; the REST and GraphQL skins shape it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskRecord {
    pub id: i64,
    pub user_id: i64,
    pub code: i64,
    pub mj_id: String,
    pub action: String,
    pub prompt: String,
    pub prompt_en: String,
    pub description: String,
    pub state: String,
    pub status: String,
    pub progress: String,
    pub image_url: String,
    pub video_url: String,
    pub video_urls: String,
    pub buttons: String,
    pub properties: String,
    pub submit_time: i64,
    pub start_time: i64,
    pub finish_time: i64,
    pub fail_reason: String,
    pub channel_id: i64,
    pub quota: i64,
}

impl TaskRecord {
    /// Reads a stored row; `forward_base` rewrites a non-empty `image_url` to
    /// `<base>/mj/image/<mj_id>`, as new-api's image forwarding does.
    pub fn from_model(m: midjourney::Model, forward_base: Option<&str>) -> TaskRecord {
        let mj_id = m.mj_id.unwrap_or_default();
        let mut image_url = m.image_url.unwrap_or_default();
        if let Some(base) = forward_base
            && !image_url.is_empty()
        {
            image_url = format!("{}/mj/image/{}", base.trim_end_matches('/'), mj_id);
        }
        TaskRecord {
            id: m.id,
            user_id: m.user_id.unwrap_or_default(),
            code: m.code.unwrap_or_default(),
            mj_id,
            action: m.action.unwrap_or_default(),
            prompt: m.prompt.unwrap_or_default(),
            prompt_en: m.prompt_en.unwrap_or_default(),
            description: m.description.unwrap_or_default(),
            state: m.state.unwrap_or_default(),
            status: m.status.unwrap_or_default(),
            progress: m.progress.unwrap_or_default(),
            image_url,
            video_url: m.video_url.unwrap_or_default(),
            video_urls: m.video_urls.unwrap_or_default(),
            buttons: m.buttons.unwrap_or_default(),
            properties: m.properties.unwrap_or_default(),
            submit_time: m.submit_time.unwrap_or_default(),
            start_time: m.start_time.unwrap_or_default(),
            finish_time: m.finish_time.unwrap_or_default(),
            fail_reason: m.fail_reason.unwrap_or_default(),
            channel_id: m.channel_id.unwrap_or_default(),
            quota: m.quota.unwrap_or_default(),
        }
    }
}

/// Epoch values at or above this are milliseconds; below it, seconds.
pub const MS_THRESHOLD: i64 = 100_000_000_000;

/// A stored epoch value in milliseconds: read as ms when >= 1e11, else as seconds; `None`
/// when unset (0 or negative).
///
/// ```
/// use mj_tasks::service::record::epoch_ms;
/// assert_eq!(epoch_ms(1_640_908_800), Some(1_640_908_800_000)); // seconds, as documented
/// assert_eq!(epoch_ms(1_640_908_800_000), Some(1_640_908_800_000)); // ms, as new-api stores
/// assert_eq!(epoch_ms(0), None);
/// ```
pub fn epoch_ms(value: i64) -> Option<i64> {
    match value {
        v if v <= 0 => None,
        v if v >= MS_THRESHOLD => Some(v),
        v => v.checked_mul(1000),
    }
}

impl TaskRecord {
    /// `progress` as a number: the leading digits of e.g. `"45%"`, clamped to 0..=100.
    pub fn progress_percent(&self) -> i32 {
        let digits: String = self
            .progress
            .trim()
            .chars()
            .take_while(char::is_ascii_digit)
            .take(3)
            .collect();
        digits.parse::<i32>().map_or(0, |p| p.clamp(0, 100))
    }

    /// Whether the task is done: `progress = "100%"`.
    pub fn finished(&self) -> bool {
        self.progress == "100%"
    }

    /// `video_urls` parsed: a JSON array of strings or of `{"url": …}` objects; anything
    /// else gives an empty list.
    pub fn video_url_list(&self) -> Vec<String> {
        let Ok(serde_json::Value::Array(items)) = serde_json::from_str(&self.video_urls) else {
            return Vec::new();
        };
        items
            .into_iter()
            .filter_map(|item| match item {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Object(mut o) => match o.remove("url") {
                    Some(serde_json::Value::String(s)) => Some(s),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    /// `finish - submit` in milliseconds, when both are set.
    pub fn duration_ms(&self) -> Option<i64> {
        let (Some(s), Some(f)) = (epoch_ms(self.submit_time), epoch_ms(self.finish_time)) else {
            return None;
        };
        Some(f - s)
    }
}
