//! Creates new-api's generic task log `tasks` (Suno and video tasks) in new-api's own shape
//! for the backend when it is missing. An existing `tasks` table — new-api's, possibly from
//! an older build with fewer columns or a fork with more — is never altered: the service
//! selects the columns it reads by name. new-api's single-column indexes and the service's
//! own are built online afterwards, by [`crate::indexes::ensure`].

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The DDL new-api's ORM (gorm) writes for `tasks`, per backend.
fn create_sql(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => {
            r#"CREATE TABLE "tasks" ("id" bigserial,"created_at" bigint,"updated_at" bigint,"task_id" varchar(191),"platform" varchar(30),"user_id" bigint,"group" varchar(50),"channel_id" bigint,"quota" bigint,"action" varchar(40),"status" varchar(20),"fail_reason" text,"submit_time" bigint,"start_time" bigint,"finish_time" bigint,"progress" varchar(20),"properties" json,"private_data" json,"data" json,PRIMARY KEY ("id"))"#
        }
        DbBackend::MySql => {
            "CREATE TABLE `tasks` (`id` bigint AUTO_INCREMENT,`created_at` bigint,`updated_at` bigint,`task_id` varchar(191),`platform` varchar(30),`user_id` bigint,`group` varchar(50),`channel_id` bigint,`quota` bigint,`action` varchar(40),`status` varchar(20),`fail_reason` longtext,`submit_time` bigint,`start_time` bigint,`finish_time` bigint,`progress` varchar(20),`properties` json,`private_data` json,`data` json,PRIMARY KEY (`id`))"
        }
        _ => {
            "CREATE TABLE `tasks` (`id` integer PRIMARY KEY AUTOINCREMENT,`created_at` integer,`updated_at` integer,`task_id` varchar(191),`platform` varchar(30),`user_id` integer,`group` varchar(50),`channel_id` integer,`quota` integer,`action` varchar(40),`status` varchar(20),`fail_reason` text,`submit_time` integer,`start_time` integer,`finish_time` integer,`progress` varchar(20),`properties` json,`private_data` json,`data` json)"
        }
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.has_table("tasks").await? {
            return Ok(());
        }
        let sql = create_sql(manager.get_database_backend());
        manager.get_connection().execute_unprepared(sql).await?;
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The table may belong to a live new-api installation: never dropped from here.
        Ok(())
    }
}
