//! The `midjourneys` table: one row per image or video task submitted upstream.

use sea_orm::entity::prelude::*;

/// A stored task row, every column but `id` nullable (new-api's shape).
///
/// `token_id` and `billing_channel_id` exist in newer new-api databases but are internal
/// and never read, so they are deliberately absent from the model.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "midjourneys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub code: Option<i64>,
    pub user_id: Option<i64>,
    pub action: Option<String>,
    pub mj_id: Option<String>,
    pub prompt: Option<String>,
    pub prompt_en: Option<String>,
    pub description: Option<String>,
    pub state: Option<String>,
    pub submit_time: Option<i64>,
    pub start_time: Option<i64>,
    pub finish_time: Option<i64>,
    pub image_url: Option<String>,
    pub video_url: Option<String>,
    pub video_urls: Option<String>,
    pub status: Option<String>,
    pub progress: Option<String>,
    pub fail_reason: Option<String>,
    pub channel_id: Option<i64>,
    pub quota: Option<i64>,
    pub buttons: Option<String>,
    pub properties: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
