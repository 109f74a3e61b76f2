//! The indexes the service's queries need, built online so that a live new-api keeps
//! writing while they build: PostgreSQL `CREATE INDEX CONCURRENTLY` (outside any transaction;
//! an invalid index left by an interrupted build is dropped and built again), MySQL/MariaDB
//! `ALGORITHM=INPLACE, LOCK=NONE`. Each is created only when no index of that name exists:
//! new-api's own single-column indexes (for a table this service created) and the composite
//! ones that keep a user's or a channel's newest-first page cheap.

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

/// Table, index name and columns.
pub const INDEXES: &[(&str, &str, &[&str])] = &[
    ("midjourneys", "idx_midjourneys_user_id", &["user_id"]),
    ("midjourneys", "idx_midjourneys_action", &["action"]),
    ("midjourneys", "idx_midjourneys_mj_id", &["mj_id"]),
    (
        "midjourneys",
        "idx_midjourneys_submit_time",
        &["submit_time"],
    ),
    ("midjourneys", "idx_midjourneys_start_time", &["start_time"]),
    (
        "midjourneys",
        "idx_midjourneys_finish_time",
        &["finish_time"],
    ),
    ("midjourneys", "idx_midjourneys_status", &["status"]),
    ("midjourneys", "idx_midjourneys_progress", &["progress"]),
    // The service's own: first pages of a user's or a channel's tasks, newest first.
    (
        "midjourneys",
        "idx_midjourneys_user_id_id",
        &["user_id", "id"],
    ),
    (
        "midjourneys",
        "idx_midjourneys_channel_id_id",
        &["channel_id", "id"],
    ),
    // new-api's, on `tasks` (present on its databases; built here for a table created here).
    ("tasks", "idx_tasks_created_at", &["created_at"]),
    ("tasks", "idx_tasks_task_id", &["task_id"]),
    ("tasks", "idx_tasks_platform", &["platform"]),
    ("tasks", "idx_tasks_user_id", &["user_id"]),
    ("tasks", "idx_tasks_channel_id", &["channel_id"]),
    ("tasks", "idx_tasks_action", &["action"]),
    ("tasks", "idx_tasks_status", &["status"]),
    ("tasks", "idx_tasks_submit_time", &["submit_time"]),
    ("tasks", "idx_tasks_start_time", &["start_time"]),
    ("tasks", "idx_tasks_finish_time", &["finish_time"]),
    ("tasks", "idx_tasks_progress", &["progress"]),
    // The service's own, as on `midjourneys`.
    ("tasks", "idx_tasks_user_id_id", &["user_id", "id"]),
    ("tasks", "idx_tasks_channel_id_id", &["channel_id", "id"]),
];

/// How often an interrupted PostgreSQL build is dropped and tried again.
const PG_ATTEMPTS: usize = 3;

/// What one index looks like in the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    Missing,
    Valid,
    /// PostgreSQL: left invalid by an interrupted concurrent build.
    Invalid,
}

/// Builds every missing index. `db` must be one session outside any transaction, holding
/// the migration lock (see [`crate::apply`]), on PostgreSQL and MySQL.
pub async fn ensure<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    for (table, name, cols) in INDEXES {
        if !has_table(db, table).await? {
            continue;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match find(db, table, name).await? {
                Found::Valid => break,
                Found::Invalid => {
                    tracing::warn!(
                        index = name,
                        "dropping an invalid index left by an interrupted build"
                    );
                    db.execute_unprepared(&format!("DROP INDEX CONCURRENTLY IF EXISTS \"{name}\""))
                        .await?;
                }
                Found::Missing => {}
            }
            tracing::info!(index = name, "building index");
            match db
                .execute_unprepared(&create_sql(backend, table, name, cols))
                .await
            {
                Ok(_) => break,
                Err(e) if backend == DbBackend::Postgres && attempt < PG_ATTEMPTS => {
                    tracing::warn!(index = name, error = %e, "index build failed; retrying");
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// The indexes not (validly) built yet on the tables that exist, found with reads only.
pub async fn missing<C: ConnectionTrait>(db: &C) -> Result<Vec<&'static str>, DbErr> {
    let mut out = Vec::new();
    for (table, name, _) in INDEXES {
        if has_table(db, table).await? && find(db, table, name).await? != Found::Valid {
            out.push(*name);
        }
    }
    Ok(out)
}

/// Whether `table` exists (the migrations create both logs' tables; an index is only looked
/// for where its table is).
async fn has_table<C: ConnectionTrait>(db: &C, table: &str) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_name = $1"
        }
        DbBackend::MySql => {
            "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() \
             AND table_name = ?"
        }
        _ => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [Value::from(table)],
        ))
        .await?;
    Ok(row.is_some())
}

fn create_sql(backend: DbBackend, table: &str, name: &str, cols: &[&str]) -> String {
    match backend {
        DbBackend::Postgres => {
            let cols: Vec<String> = cols.iter().map(|c| format!("\"{c}\"")).collect();
            format!(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"{name}\" ON \"{table}\" ({})",
                cols.join(", ")
            )
        }
        DbBackend::MySql => {
            let cols: Vec<String> = cols.iter().map(|c| format!("`{c}`")).collect();
            format!(
                "ALTER TABLE `{table}` ADD INDEX `{name}` ({}), ALGORITHM=INPLACE, LOCK=NONE",
                cols.join(", ")
            )
        }
        _ => format!(
            "CREATE INDEX IF NOT EXISTS \"{name}\" ON \"{table}\" ({})",
            cols.join(", ")
        ),
    }
}

async fn find<C: ConnectionTrait>(db: &C, table: &str, name: &str) -> Result<Found, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT CASE WHEN i.indisvalid THEN 1 ELSE 0 END FROM pg_class c \
             JOIN pg_index i ON i.indexrelid = c.oid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = $1 AND n.nspname = current_schema()"
        }
        DbBackend::MySql => {
            "SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE() \
             AND table_name = ? AND index_name = ? LIMIT 1"
        }
        _ => "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
    };
    let values = match backend {
        DbBackend::MySql => vec![Value::from(table), Value::from(name)],
        _ => vec![Value::from(name)],
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    Ok(match row {
        None => Found::Missing,
        Some(r) => match r.try_get_by_index::<i32>(0) {
            Ok(1) => Found::Valid,
            Ok(_) => Found::Invalid,
            // MySQL answers a BIGINT literal.
            Err(_) => match r.try_get_by_index::<i64>(0)? {
                1 => Found::Valid,
                _ => Found::Invalid,
            },
        },
    })
}
