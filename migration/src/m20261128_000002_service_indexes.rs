//! The indexes the service's queries need, each created only when no index of that name
//! exists: new-api's own single-column indexes (for a table this service created) and the
//! composite ones that keep a user's or a channel's newest-first page cheap.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Index name and columns on `midjourneys`.
const INDEXES: &[(&str, &[&str])] = &[
    ("idx_midjourneys_user_id", &["user_id"]),
    ("idx_midjourneys_action", &["action"]),
    ("idx_midjourneys_mj_id", &["mj_id"]),
    ("idx_midjourneys_submit_time", &["submit_time"]),
    ("idx_midjourneys_start_time", &["start_time"]),
    ("idx_midjourneys_finish_time", &["finish_time"]),
    ("idx_midjourneys_status", &["status"]),
    ("idx_midjourneys_progress", &["progress"]),
    // The service's own: first pages of a user's or a channel's tasks, newest first.
    ("idx_midjourneys_user_id_id", &["user_id", "id"]),
    ("idx_midjourneys_channel_id_id", &["channel_id", "id"]),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, cols) in INDEXES {
            if manager.has_index("midjourneys", name).await? {
                continue;
            }
            let mut index = Index::create();
            index.name(*name).table(Alias::new("midjourneys"));
            for col in *cols {
                index.col(Alias::new(*col));
            }
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
