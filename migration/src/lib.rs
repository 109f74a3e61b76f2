//! Migrations that are safe on an existing new-api database.
//!
//! They only ever add: a missing table in new-api's shape for the backend, a missing column,
//! or one of the indexes the service's queries need. Nothing that exists is dropped,
//! renamed or retyped, and running them again changes nothing. The `mj-tasks migrate`
//! command and the server's start-up both run them (unless `--no-migrate` is given).

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_new_api_tables;
mod m20261128_000002_service_indexes;
mod shapes;

/// The ordered list of this service's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_new_api_tables::Migration),
            Box::new(m20261128_000002_service_indexes::Migration),
        ]
    }
}

use sea_orm_migration::sea_orm::{DatabaseConnection, DbBackend, TransactionTrait};

/// Applies the pending migrations, safely when several instances start at once on one
/// database: on PostgreSQL and MySQL a database lock serializes them (the loser finds
/// nothing pending); SQLite serializes writers itself, and a lost race is retried.
pub async fn apply(db: &DatabaseConnection) -> Result<(), DbErr> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match apply_locked(db).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                if Migrator::get_pending_migrations(db)
                    .await
                    .is_ok_and(|p| p.is_empty())
                {
                    // Another instance finished the job.
                    return Ok(());
                }
                if attempt >= 5 {
                    return Err(e);
                }
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
            }
        }
    }
}

async fn apply_locked(db: &DatabaseConnection) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let txn = db.begin().await?;
    match backend {
        // Held until the transaction ends.
        DbBackend::Postgres => {
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(7243051926)")
                .await?;
        }
        // Held by the session (the transaction's connection) until released.
        DbBackend::MySql => {
            txn.execute_unprepared("SELECT GET_LOCK('mj_tasks_migrate', 60)")
                .await?;
        }
        _ => {}
    }
    let result = Migrator::up(&txn, None).await;
    if backend == DbBackend::MySql {
        txn.execute_unprepared("SELECT RELEASE_LOCK('mj_tasks_migrate')")
            .await?;
    }
    result?;
    txn.commit().await
}
