//! The `tasks` table: new-api's generic task log, one row per Suno or video task (Kling,
//! Jimeng, Vidu, Seedance, Sora, Veo, Hailuo, Wan, …) submitted upstream.

use sea_orm::entity::prelude::*;

/// A stored task row, every column but `id` nullable (new-api's shape).
///
/// `properties`, `private_data` and `data` are JSON columns, read as the bytes of their text:
/// SQLite holds them as BLOBs (new-api's driver) or TEXT (other writers), and the service
/// selects them as bytes on PostgreSQL and MySQL too, so one type reads every backend.
/// `private_data` holds upstream keys: the service reads one value from it (`result_url`) and
/// never serves it. Columns forks add (`token_id`, billing columns) are deliberately absent.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub task_id: Option<String>,
    pub platform: Option<String>,
    pub user_id: Option<i64>,
    pub group: Option<String>,
    pub channel_id: Option<i64>,
    pub quota: Option<i64>,
    pub action: Option<String>,
    pub status: Option<String>,
    pub fail_reason: Option<String>,
    pub submit_time: Option<i64>,
    pub start_time: Option<i64>,
    pub finish_time: Option<i64>,
    pub progress: Option<String>,
    pub properties: Option<Vec<u8>>,
    pub private_data: Option<Vec<u8>>,
    pub data: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
