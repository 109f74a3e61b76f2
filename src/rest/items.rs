//! The two legacy item shapes, fields in the documented order.

use serde::Serialize;

use crate::service::TaskRecord;

/// An item of `/api/mj/self`: the 15 documented fields (no user or channel).
#[derive(Serialize)]
pub struct SelfItem {
    id: i64,
    mj_id: String,
    action: String,
    prompt: String,
    prompt_en: String,
    status: String,
    progress: String,
    image_url: String,
    video_url: String,
    video_urls: String,
    submit_time: i64,
    start_time: i64,
    finish_time: i64,
    fail_reason: String,
    quota: i64,
}

impl From<TaskRecord> for SelfItem {
    fn from(r: TaskRecord) -> Self {
        SelfItem {
            id: r.id,
            mj_id: r.mj_id,
            action: r.action,
            prompt: r.prompt,
            prompt_en: r.prompt_en,
            status: r.status,
            progress: r.progress,
            image_url: r.image_url,
            video_url: r.video_url,
            video_urls: r.video_urls,
            submit_time: r.submit_time,
            start_time: r.start_time,
            finish_time: r.finish_time,
            fail_reason: r.fail_reason,
            quota: r.quota,
        }
    }
}

/// An item of `/api/mj/`: every public column (never `token_id` or `billing_channel_id`).
#[derive(Serialize)]
pub struct AdminItem {
    id: i64,
    user_id: i64,
    code: i64,
    mj_id: String,
    action: String,
    prompt: String,
    prompt_en: String,
    description: String,
    state: String,
    status: String,
    progress: String,
    image_url: String,
    video_url: String,
    video_urls: String,
    buttons: String,
    properties: String,
    submit_time: i64,
    start_time: i64,
    finish_time: i64,
    fail_reason: String,
    channel_id: i64,
    quota: i64,
}

impl From<TaskRecord> for AdminItem {
    fn from(r: TaskRecord) -> Self {
        AdminItem {
            id: r.id,
            user_id: r.user_id,
            code: r.code,
            mj_id: r.mj_id,
            action: r.action,
            prompt: r.prompt,
            prompt_en: r.prompt_en,
            description: r.description,
            state: r.state,
            status: r.status,
            progress: r.progress,
            image_url: r.image_url,
            video_url: r.video_url,
            video_urls: r.video_urls,
            buttons: r.buttons,
            properties: r.properties,
            submit_time: r.submit_time,
            start_time: r.start_time,
            finish_time: r.finish_time,
            fail_reason: r.fail_reason,
            channel_id: r.channel_id,
            quota: r.quota,
        }
    }
}

/// The `data` object of a list answer.
#[derive(Serialize)]
pub struct ListData<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
}
