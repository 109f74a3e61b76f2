//! Migrations that are safe on an existing new-api database.
//!
//! They only ever add: a missing table in new-api's shape for the backend, a missing column,
//! or one of the indexes the service's queries need. Nothing that exists is dropped,
//! renamed or retyped, and running them again changes nothing. The `mj-tasks migrate`
//! command and the server's start-up both run them (unless `--no-migrate` is given).

pub use sea_orm_migration::prelude::*;

pub mod indexes;
mod m20261128_000001_new_api_tables;
mod m20261128_000002_service_indexes;
mod m20261129_000003_tasks_table;
mod shapes;

/// The ordered list of this service's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_new_api_tables::Migration),
            Box::new(m20261128_000002_service_indexes::Migration),
            Box::new(m20261129_000003_tasks_table::Migration),
        ]
    }
}

use std::time::{Duration, Instant};

use sea_orm_migration::sea_orm::{DatabaseConnection, DbBackend, Statement, TransactionTrait};

/// What this version of the service needs and the database lacks, found with reads only (no
/// table is created, no lock taken, so it works on a read-only replica): migrations not
/// recorded in `seaql_migrations`, then indexes not built. Empty when nothing is to do.
pub async fn missing(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    let manager = SchemaManager::new(db);
    let mut applied = Vec::new();
    if manager.has_table("seaql_migrations").await? {
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT version FROM seaql_migrations",
            ))
            .await?;
        for row in rows {
            applied.push(row.try_get_by_index::<String>(0)?);
        }
    }
    let mut out: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .filter(|name| !applied.contains(name))
        .map(|name| format!("migration {name}"))
        .collect();
    out.extend(
        indexes::missing(db)
            .await?
            .into_iter()
            .map(|name| format!("index {name}")),
    );
    Ok(out)
}

/// Whether the database refuses writes: a PostgreSQL hot standby or read-only session, a
/// MySQL/MariaDB server with `read_only` set (a replica), a SQLite connection in
/// `query_only` mode.
pub async fn read_only(db: &DatabaseConnection) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT CAST(pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on' AS INT)"
        }
        DbBackend::MySql => "SELECT CAST(@@global.read_only AS SIGNED)",
        _ => "PRAGMA query_only",
    };
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?;
    let flag = match row {
        None => 0,
        Some(r) => r
            .try_get_by_index::<i32>(0)
            .map(i64::from)
            .or_else(|_| r.try_get_by_index::<i64>(0))?,
    };
    Ok(flag != 0)
}

/// The lock that serializes concurrent starts (PostgreSQL advisory lock key; MySQL lock name).
const PG_LOCK: i64 = 7_243_051_926;
const MYSQL_LOCK: &str = "mj_tasks_migrate";
/// Longest wait for another instance's migrations (an index build on a large table).
const LOCK_WAIT: Duration = Duration::from_secs(3600);

/// Applies the pending migrations and builds the missing indexes, safely when several
/// instances start at once on one database: on PostgreSQL and MySQL a session lock
/// serializes them (the later ones find nothing to do); SQLite serializes writers itself,
/// and a lost race is retried.
///
/// On PostgreSQL and MySQL, `db` must be a connection of its own (a pool of one, with no
/// statement timeout): the lock belongs to the session, and the indexes are built online,
/// outside any transaction, which takes as long as the table is large.
pub async fn apply(db: &DatabaseConnection) -> Result<(), DbErr> {
    // The usual start: everything is there already, and nothing is written or locked.
    if missing(db).await?.is_empty() {
        return Ok(());
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match db.get_database_backend() {
            DbBackend::Sqlite => apply_sqlite(db).await,
            _ => apply_locked(db).await,
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) => {
                if Migrator::get_pending_migrations(db)
                    .await
                    .is_ok_and(|p| p.is_empty())
                {
                    // Another instance finished the migrations (and builds the indexes
                    // under its lock: building here, outside it, could drop its
                    // in-progress index as an invalid leftover).
                    return Ok(());
                }
                if attempt >= 5 {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
        }
    }
}

/// SQLite: everything in one transaction (the file's write lock serializes starts).
async fn apply_sqlite(db: &DatabaseConnection) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    Migrator::up(&txn, None).await?;
    indexes::ensure(&txn).await?;
    txn.commit().await
}

/// PostgreSQL and MySQL: under the session lock, the migrations (each in its own
/// transaction where the backend has transactional DDL), then the online index builds.
async fn apply_locked(db: &DatabaseConnection) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    match backend {
        DbBackend::Postgres => {
            db.execute_unprepared("SET statement_timeout = 0").await?;
        }
        _ => {
            // MariaDB's name; MySQL's max_execution_time does not apply to DDL.
            let _ = db
                .execute_unprepared("SET SESSION max_statement_time = 0")
                .await;
        }
    }
    lock(db).await?;
    let result = async {
        Migrator::up(db, None).await?;
        indexes::ensure(db).await
    }
    .await;
    let unlocked = unlock(db).await;
    result.and(unlocked)
}

/// Takes the migration lock, waiting for another instance that holds it.
async fn lock(db: &DatabaseConnection) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let started = Instant::now();
    let mut told = Instant::now();
    loop {
        let sql = match backend {
            DbBackend::Postgres => format!("SELECT CAST(pg_try_advisory_lock({PG_LOCK}) AS INT)"),
            _ => format!("SELECT GET_LOCK('{MYSQL_LOCK}', 1)"),
        };
        let row = db
            .query_one_raw(sea_orm_migration::sea_orm::Statement::from_string(
                backend, sql,
            ))
            .await?;
        let got = row
            .map(|r| {
                r.try_get_by_index::<Option<i32>>(0).or_else(|_| {
                    r.try_get_by_index::<Option<i64>>(0)
                        .map(|v| v.map(|v| v as i32))
                })
            })
            .transpose()?
            .flatten();
        match got {
            Some(1) => return Ok(()),
            // Held by another session: wait for it.
            Some(0) => {}
            _ => {
                return Err(DbErr::Custom(
                    "the migration lock could not be taken (the database answered no result)"
                        .into(),
                ));
            }
        }
        if started.elapsed() > LOCK_WAIT {
            return Err(DbErr::Custom(format!(
                "another instance has held the migration lock for over {} s",
                LOCK_WAIT.as_secs()
            )));
        }
        if told.elapsed() > Duration::from_secs(10) {
            tracing::info!("waiting for another instance's migrations to finish");
            told = Instant::now();
        }
        if backend == DbBackend::Postgres {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn unlock(db: &DatabaseConnection) -> Result<(), DbErr> {
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => format!("SELECT pg_advisory_unlock({PG_LOCK})"),
        _ => format!("SELECT RELEASE_LOCK('{MYSQL_LOCK}')"),
    };
    db.execute_unprepared(&sql).await.map(|_| ())
}
