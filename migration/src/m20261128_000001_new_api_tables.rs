//! Creates `midjourneys` and `users` in new-api's shape when they are missing, and adds any
//! column the service reads that an older new-api database lacks.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::shapes::{MIDJOURNEY_COLUMNS, USER_COLUMNS, column, primary_key};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();

        if manager.has_table("midjourneys").await? {
            for (name, kind) in MIDJOURNEY_COLUMNS {
                add_missing(manager, "midjourneys", column(backend, name, *kind)).await?;
            }
        } else {
            let mut table = Table::create();
            table
                .table(Alias::new("midjourneys"))
                .if_not_exists()
                .col(primary_key(backend));
            for (name, kind) in MIDJOURNEY_COLUMNS {
                table.col(column(backend, name, *kind));
            }
            manager.create_table(table).await?;
        }

        if manager.has_table("users").await? {
            for (name, kind) in USER_COLUMNS {
                add_missing(manager, "users", column(backend, name, *kind)).await?;
            }
            add_missing(manager, "users", access_token(backend)).await?;
            add_missing(manager, "users", deleted_at(backend)).await?;
        } else {
            let mut table = Table::create();
            table
                .table(Alias::new("users"))
                .if_not_exists()
                .col(primary_key(backend));
            for (name, kind) in USER_COLUMNS {
                table.col(column(backend, name, *kind));
            }
            table.col(access_token(backend)).col(deleted_at(backend));
            manager.create_table(table).await?;
            for (name, col) in [
                ("idx_users_username", "username"),
                ("idx_users_access_token", "access_token"),
            ] {
                manager
                    .create_index(
                        Index::create()
                            .name(name)
                            .table(Alias::new("users"))
                            .col(Alias::new(col))
                            .unique()
                            .to_owned(),
                    )
                    .await?;
            }
            manager
                .create_index(
                    Index::create()
                        .name("idx_users_deleted_at")
                        .table(Alias::new("users"))
                        .col(Alias::new("deleted_at"))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The tables may belong to a live new-api installation: never dropped from here.
        Ok(())
    }
}

/// `users.access_token`: `char(32)`, as new-api declares it.
fn access_token(_backend: DbBackend) -> ColumnDef {
    let mut def = ColumnDef::new(Alias::new("access_token"));
    def.custom(Alias::new("char(32)")).null();
    def
}

/// `users.deleted_at`: gorm's soft-delete timestamp.
fn deleted_at(backend: DbBackend) -> ColumnDef {
    let ty = match backend {
        DbBackend::Postgres => "timestamptz",
        DbBackend::MySql => "datetime(3)",
        _ => "datetime",
    };
    let mut def = ColumnDef::new(Alias::new("deleted_at"));
    def.custom(Alias::new(ty)).null();
    def
}

/// Adds `def` to `table` unless a column of that name exists (whatever its type).
async fn add_missing(
    manager: &SchemaManager<'_>,
    table: &str,
    mut def: ColumnDef,
) -> Result<(), DbErr> {
    let name = def.get_column_name();
    if manager.has_column(table, &name).await? {
        return Ok(());
    }
    manager
        .alter_table(
            Table::alter()
                .table(Alias::new(table))
                .add_column(&mut def)
                .to_owned(),
        )
        .await
}
