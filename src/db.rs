//! Opening the connection pool with each backend's server settings.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::sqlx::{AssertSqlSafe, Executor};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, RuntimeErr};

use crate::config::DbConfig;
use crate::db_trouble::{RELEASE_PING, Trouble};
use futures_util::future::BoxFuture;
use sea_orm::sqlx::Connection;
use sea_orm::sqlx::pool::{PoolConnectionMetadata, PoolOptions};

/// Each SQLite connection's page cache (`PRAGMA cache_size`; negative: KiB): SQLite's
/// default is 2 MiB for each of the pool's connections. Pages it does not hold are read
/// again from the operating system's cache.
const SQLITE_CACHE_SIZE: &str = "-256";

/// How long a pooled connection may sit idle before it is pinged when handed out.
const IDLE_PING: Duration = Duration::from_secs(10);

/// Opens the pool described by `cfg`. With `lazy`, no connection is made until the first
/// query, so the service can start (and answer 503) while the database is down.
pub async fn connect(cfg: &DbConfig, lazy: bool) -> Result<DatabaseConnection, DbErr> {
    open(cfg, lazy, false).await.map(|(db, _)| db)
}

/// [`connect`] for the pool that serves requests: on SQLite a statement running longer
/// than `--db-statement-timeout-ms` is interrupted (SQLite has no statement timeout of its
/// own). Migrations, imports and other commands use [`connect`], whose work may take longer.
/// Reads on the pool note their trouble in the [`Trouble`] returned with it (see
/// [`crate::db_trouble`]).
pub async fn connect_serving(
    cfg: &DbConfig,
    lazy: bool,
) -> Result<(DatabaseConnection, Trouble), DbErr> {
    open(cfg, lazy, true).await
}

/// Without idle timeout and maximum lifetime, so that sqlx starts no reaper task: sqlx 0.9.0's
/// reaper sweeps `0..num_idle()`, a counter that a release racing an acquire can wrap below
/// zero for an instant, and then spins on a worker thread at 100 % CPU for good (sqlx issue
/// 3645; seen here as a test process that never ended). Idle connections therefore stay
/// open (at most `--db-max-connections`); one idle longer than [`IDLE_PING`] is pinged
/// before use, so one the server closed meanwhile is replaced.
fn no_reaper<DB: sea_orm::sqlx::Database>(o: PoolOptions<DB>) -> PoolOptions<DB> {
    o.idle_timeout(None).max_lifetime(None)
}

/// Checks every connection handed out or given back while `trouble` is suspected (see
/// [`crate::db_trouble`]): a connection given back must answer a ping within
/// [`RELEASE_PING`], or it is closed at once.
fn checked_in_trouble<DB: sea_orm::sqlx::Database>(
    o: PoolOptions<DB>,
    trouble: &Trouble,
) -> PoolOptions<DB> {
    let trouble = trouble.clone();
    o.after_release(move |conn, _| {
        let trouble = trouble.clone();
        Box::pin(async move {
            if !trouble.suspected() {
                return Ok(true);
            }
            match tokio::time::timeout(RELEASE_PING, conn.ping()).await {
                Ok(answered) => answered.map(|()| true),
                Err(_) => Err(sea_orm::sqlx::Error::Io(
                    std::io::ErrorKind::TimedOut.into(),
                )),
            }
        })
    })
}

/// The `before_acquire` half of [`checked_in_trouble`]: while `trouble` is suspected, a
/// connection idle for less than [`IDLE_PING`] is pinged too (the pool's own idle ping
/// checks the others).
fn ping_in_trouble<C: sea_orm::sqlx::Connection>(
    trouble: &Trouble,
) -> impl for<'c> Fn(
    &'c mut C,
    PoolConnectionMetadata,
) -> BoxFuture<'c, Result<bool, sea_orm::sqlx::Error>>
+ Send
+ Sync
+ 'static {
    let trouble = trouble.clone();
    move |conn, meta| {
        let check = trouble.suspected() && meta.idle_for < IDLE_PING;
        Box::pin(async move {
            if check {
                conn.ping().await?;
            }
            Ok(true)
        })
    }
}

/// Bounds every use of a pooled SQLite connection to `limit` from the moment it is handed
/// out: a progress handler interrupts the statement after that (SQLITE_INTERRUPT), and is
/// removed when the connection goes back to the pool.
fn interrupt_after(
    o: sea_orm::sqlx::pool::PoolOptions<sea_orm::sqlx::Sqlite>,
    limit: Duration,
) -> sea_orm::sqlx::pool::PoolOptions<sea_orm::sqlx::Sqlite> {
    use sea_orm::sqlx::sqlite::SqliteConnection;
    async fn arm(conn: &mut SqliteConnection, limit: Duration) -> Result<(), sea_orm::sqlx::Error> {
        let deadline = std::time::Instant::now() + limit;
        conn.lock_handle()
            .await?
            .set_progress_handler(10_000, move || std::time::Instant::now() < deadline);
        Ok(())
    }
    o.after_connect(move |conn, _| Box::pin(async move { arm(conn, limit).await }))
        .before_acquire(move |conn, _| {
            Box::pin(async move { arm(conn, limit).await.map(|()| true) })
        })
        .after_release(|conn, _| {
            Box::pin(async move {
                conn.lock_handle().await?.remove_progress_handler();
                Ok(true)
            })
        })
}

async fn open(
    cfg: &DbConfig,
    lazy: bool,
    serving: bool,
) -> Result<(DatabaseConnection, Trouble), DbErr> {
    let trouble = Trouble::default();
    let (pgbouncer, url) = crate::db_url::pgbouncer(&cfg.database_url);
    let url = url.as_str();
    let mut opts = ConnectOptions::new(url);
    let acquire = Duration::from_millis(cfg.db_acquire_timeout_ms.max(1));
    let statement = Duration::from_millis(cfg.db_statement_timeout_ms);
    opts.max_connections(cfg.db_max_connections.max(1))
        .min_connections(0)
        .acquire_timeout(acquire)
        .connect_timeout(acquire)
        // A connection in use within the last seconds is handed out as it is (a ping on
        // every checkout was a round trip per statement); one idle longer is pinged first.
        // A hot connection the server closed fails at its statement, and the read runs once
        // more (`service::replicas`).
        .test_before_acquire_if_idle_for(IDLE_PING)
        .connect_lazy(lazy)
        .sqlx_logging(cfg.db_log_statements)
        .sqlx_logging_level(log::LevelFilter::Info);

    if url.starts_with("sqlite:") {
        let memory = sqlite_in_memory(url);
        let read_only = url.contains("mode=ro");
        if memory {
            // Every connection to an in-memory database would be a separate database.
            opts.max_connections(1);
        }
        let busy = if statement.is_zero() {
            Duration::from_secs(5)
        } else {
            statement
        };
        if serving && !statement.is_zero() {
            opts.map_sqlx_sqlite_pool_opts(move |o| interrupt_after(no_reaper(o), statement));
        } else {
            opts.map_sqlx_sqlite_pool_opts(no_reaper);
        }
        opts.map_sqlx_sqlite_opts(move |o| {
            let o = o
                .busy_timeout(busy)
                .synchronous(SqliteSynchronous::Normal)
                .pragma("cache_size", SQLITE_CACHE_SIZE);
            if memory || read_only {
                o
            } else {
                // Readers keep working while a writer (new-api) writes.
                o.journal_mode(SqliteJournalMode::Wal)
            }
        });
    } else if pgbouncer {
        // No statement survives a read behind a transaction pooler, and PgBouncer passes on
        // no `options`: the timeout is set in each read's transaction instead (see
        // `service::session`).
        opts.map_sqlx_postgres_opts(|o| o.statement_cache_capacity(0));
    } else if url.starts_with("postgres") {
        if !statement.is_zero() {
            opts.statement_timeout(statement);
        }
    } else if url.starts_with("mysql") || url.starts_with("mariadb") {
        let ms = statement.as_millis();
        let watched = trouble.clone();
        opts.map_sqlx_mysql_pool_opts(move |o| {
            let o = checked_in_trouble(no_reaper(o), &watched);
            if ms == 0 {
                return o;
            }
            o.after_connect(move |conn, _meta| {
                Box::pin(async move {
                    // MariaDB names it max_statement_time (seconds), MySQL
                    // max_execution_time (milliseconds, SELECT only).
                    let mariadb =
                        format!("SET SESSION max_statement_time = {}", ms as f64 / 1000.0);
                    if conn.execute(AssertSqlSafe(mariadb)).await.is_err() {
                        let mysql = format!("SET SESSION max_execution_time = {ms}");
                        let _ = conn.execute(AssertSqlSafe(mysql)).await;
                    }
                    Ok(())
                })
            })
        });
        opts.map_sqlx_mysql_before_acquire(ping_in_trouble(&trouble));
    }
    if url.starts_with("postgres") {
        let watched = trouble.clone();
        opts.map_sqlx_postgres_pool_opts(move |o| checked_in_trouble(no_reaper(o), &watched));
        opts.map_sqlx_postgres_before_acquire(ping_in_trouble(&trouble));
    }
    if !url.starts_with("sqlite:") {
        return Database::connect(opts).await.map(|db| (db, trouble));
    }
    // Opening a SQLite file switches it to WAL, which needs a moment of exclusive access:
    // another process starting (or migrating) at the same instant makes that fail with
    // SQLITE_BUSY at once, whatever the busy timeout. Such a start is retried.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match Database::connect(opts.clone()).await {
            Err(e) if attempt < 10 && sqlite_busy(&e) => {
                tracing::debug!(error = %e, attempt, "SQLite busy while opening; retrying");
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            other => return other.map(|db| (db, trouble)),
        }
    }
}

/// Whether `url` names an in-memory SQLite database (which exists only inside its one
/// connection).
pub fn sqlite_in_memory(url: &str) -> bool {
    url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory"))
}

/// Whether `err` is SQLite's "database is locked" (SQLITE_BUSY, code 5).
fn sqlite_busy(err: &DbErr) -> bool {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "5"),
        _ => false,
    }
}
