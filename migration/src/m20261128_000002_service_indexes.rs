//! Kept for the history recorded in `seaql_migrations`: the indexes this migration once
//! built inside the migration transaction are now built online, after the migrations, by
//! [`crate::indexes::ensure`] (a plain `CREATE INDEX` in a transaction blocked new-api's
//! writes on a live database for the whole build).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
