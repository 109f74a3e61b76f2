//! Read replicas: reads (pages, counts, stats, lookups) go to the replicas given with
//! `--read-database-url`, in rotation; writes (migrations, users, imports), the user check
//! and the live poller stay on the primary (see `read_current`).
//!
//! A replica that fails with a connection-class error is taken out of rotation at once and
//! the read is retried on the next one (a statement timeout is the query's fault: the
//! replica stays, and the read fails; a busy pool tries the next without taking it out); a health check (every [`CHECK_EVERY`]) puts it back
//! when it answers again and reads PostgreSQL's replay lag. With no replica left, reads go
//! to the primary, or answer 503 when so configured.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

use crate::db_trouble::Trouble;
use crate::service::session::Session;

use crate::error::{Error, is_pool_timeout, is_statement_timeout, is_unavailable};
use crate::service::Service;

/// Time between two health checks of the replicas.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Longest a health check waits for a replica.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a replica's lag is logged.
const LAG_LOG_EVERY: u64 = 30;

/// Where reads go when no replica answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Fallback {
    /// To the primary.
    #[default]
    Primary,
    /// Nowhere: 503 (`UNAVAILABLE`), keeping the load off the primary.
    Unavailable,
}

/// One replica.
#[derive(Debug)]
struct Member {
    /// `host:port/database`, with no credentials (for logs and `/healthz`).
    name: String,
    db: DatabaseConnection,
    /// Trouble noted by reads on `db`, read by its pool's hooks.
    trouble: Trouble,
    up: AtomicBool,
    reads: AtomicU64,
    /// Replay lag in milliseconds, when the database tells (`u64::MAX`: unknown).
    lag_ms: AtomicU64,
}

/// The replicas of one instance.
#[derive(Debug)]
pub struct Replicas {
    members: Vec<Member>,
    next: AtomicUsize,
    fallback: Fallback,
    primary_reads: AtomicU64,
}

/// What `/healthz` shows of a replica.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplicaStatus {
    /// `replica-N`, its place among the `--read-database-url`s.
    pub name: String,
    pub up: bool,
    /// Reads served so far.
    pub reads: u64,
    /// Replication lag in seconds, when the database tells (PostgreSQL: since the last
    /// replayed transaction; MySQL/MariaDB: `Seconds_Behind_Master`).
    pub lag_seconds: Option<f64>,
}

/// `url` without user, password or parameters: `host:port/database`.
pub fn display_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('?').next().unwrap_or(rest).to_owned()
}

impl Replicas {
    /// Replicas over `pools` (with their URLs, for names), all in rotation until a read or a
    /// health check says otherwise.
    pub fn new(pools: Vec<(String, DatabaseConnection, Trouble)>, fallback: Fallback) -> Replicas {
        Replicas {
            members: pools
                .into_iter()
                .enumerate()
                .map(|(i, (url, db, trouble))| {
                    let name = display_name(&url);
                    tracing::info!(replica = %name, "read replica replica-{}", i + 1);
                    Member {
                        name,
                        db,
                        trouble,
                        up: AtomicBool::new(true),
                        reads: AtomicU64::new(0),
                        lag_ms: AtomicU64::new(u64::MAX),
                    }
                })
                .collect(),
            next: AtomicUsize::new(0),
            fallback,
            primary_reads: AtomicU64::new(0),
        }
    }

    /// The state of every replica.
    pub fn status(&self) -> Vec<ReplicaStatus> {
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let lag = m.lag_ms.load(Ordering::Relaxed);
                ReplicaStatus {
                    // Its place in the list, not its address: `/healthz` answers anyone
                    // (the log names it at start).
                    name: format!("replica-{}", i + 1),
                    up: m.up.load(Ordering::Relaxed),
                    reads: m.reads.load(Ordering::Relaxed),
                    lag_seconds: (lag != u64::MAX).then(|| lag as f64 / 1000.0),
                }
            })
            .collect()
    }

    /// Reads the primary served because no replica answered.
    pub fn primary_reads(&self) -> u64 {
        self.primary_reads.load(Ordering::Relaxed)
    }

    /// Whether a read can be served: a replica is up, or the primary may take it.
    pub fn can_serve(&self, primary_up: bool) -> bool {
        self.members.iter().any(|m| m.up.load(Ordering::Relaxed))
            || (primary_up && self.fallback == Fallback::Primary)
    }

    /// The replicas in the order a read tries them: from the next in rotation, or (`stable`)
    /// always from the first, so a reader that must not see time go backwards (the live
    /// poller) stays on one replica while it answers.
    fn order_indexed(&self, stable: bool) -> impl Iterator<Item = (usize, &Member)> {
        let n = self.members.len();
        let start = if stable {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % n.max(1)
        };
        (0..n)
            .map(move |i| ((start + i) % n, &self.members[(start + i) % n]))
            .filter(|(_, m)| m.up.load(Ordering::Relaxed))
    }

    fn out_of_rotation(&self, m: &Member, err: &DbErr) {
        if m.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(replica = %m.name, error = %err, "replica out of rotation");
        }
    }

    /// Checks every replica once: puts back those that answer, takes out those that do not,
    /// and reads the replay lag where the database exposes it.
    pub async fn check(&self, round: u64) {
        for m in &self.members {
            let answer = {
                let check = std::pin::pin!(tokio::time::timeout(CHECK_TIMEOUT, lag_ms(&m.db)));
                let answer = check.await;
                if answer.is_err() {
                    // Cut off: noted before its connection (dropped with `check`, at the end
                    // of this block) goes back to the pool, which then checks it.
                    m.trouble.note();
                }
                answer
            };
            match answer {
                Ok(Ok(lag)) => {
                    if !m.up.swap(true, Ordering::Relaxed) {
                        tracing::info!(replica = %m.name, "replica back in rotation");
                    }
                    m.lag_ms.store(lag.unwrap_or(u64::MAX), Ordering::Relaxed);
                    if let Some(lag) = lag
                        && round.is_multiple_of(LAG_LOG_EVERY)
                    {
                        tracing::info!(replica = %m.name, lag_seconds = lag as f64 / 1000.0, "replica lag");
                    }
                }
                Ok(Err(e)) => {
                    m.trouble.note();
                    self.out_of_rotation(m, &e)
                }
                Err(_) => self.out_of_rotation(m, &DbErr::Custom("no answer within 1 s".into())),
            }
        }
    }
}

/// Pings `db`, then reads its replication lag in milliseconds where the database tells
/// (PostgreSQL standbys: time since the last replayed transaction; MySQL/MariaDB replicas:
/// `Seconds_Behind_Master`). A lag the user may not read is `None`, not a failure.
async fn lag_ms(db: &DatabaseConnection) -> Result<Option<u64>, DbErr> {
    db.ping().await?;
    let backend = db.get_database_backend();
    let lag = match backend {
        DbBackend::Postgres => db
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT CAST(EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())) * 1000 AS BIGINT)",
            ))
            .await
            .ok()
            .flatten()
            .and_then(|r| r.try_get_by_index::<Option<i64>>(0).ok())
            .flatten(),
        DbBackend::MySql => {
            let mut seconds = None;
            for (sql, column) in [
                ("SHOW SLAVE STATUS", "Seconds_Behind_Master"),
                ("SHOW REPLICA STATUS", "Seconds_Behind_Source"),
            ] {
                if let Ok(Some(row)) = db.query_one_raw(Statement::from_string(backend, sql)).await {
                    // An unsigned column on MySQL and MariaDB alike.
                    seconds = row
                        .try_get::<Option<u64>>("", column)
                        .map(|v| v.map(|s| s as i64))
                        .or_else(|_| row.try_get::<Option<i64>>("", column))
                        .ok()
                        .flatten();
                    break;
                }
            }
            seconds.map(|s| s * 1000)
        }
        _ => None,
    };
    Ok(lag.map(|ms| ms.max(0) as u64))
}

/// A read against one connection: the query built afresh for each attempt.
pub(crate) type Read<'c, T> = BoxFuture<'c, Result<T, DbErr>>;

/// Names of the first replicas in trace spans (`db.on`).
const REPLICA_NAMES: [&str; 8] = [
    "replica-1",
    "replica-2",
    "replica-3",
    "replica-4",
    "replica-5",
    "replica-6",
    "replica-7",
    "replica-8",
];

/// One read statement as traces show it: its kind and the database system.
#[derive(Clone, Copy)]
struct ReadSpan {
    kind: &'static str,
    system: &'static str,
}

impl ReadSpan {
    fn new(service: &Service, kind: &'static str) -> ReadSpan {
        let system = match service.db.get_database_backend() {
            DbBackend::Postgres => "postgresql",
            DbBackend::MySql => "mysql",
            _ => "sqlite",
        };
        ReadSpan { kind, system }
    }

    /// `read` inside a `db.query` span (DEBUG: created only when traces are on): its kind,
    /// system and where it ran, never its parameters; the span lasts as long as the read.
    fn traced<'c, T: 'c>(
        self,
        read: impl Future<Output = Result<T, DbErr>> + 'c,
        on: &'static str,
    ) -> impl Future<Output = Result<T, DbErr>> + 'c {
        let span = tracing::debug_span!(
            "db.query",
            otel.name = %format_args!("db {}", self.kind),
            otel.kind = "client",
            db.system = self.system,
            db.operation = self.kind,
            db.on = on,
        );
        tracing::Instrument::instrument(read, span)
    }
}

impl Service {
    /// Runs `run` on a session of `db`: the pool itself, or a pinned transaction behind a
    /// transaction-pooling PgBouncer (see [`crate::service::session`]).
    async fn in_session<T, F>(
        &self,
        db: &DatabaseConnection,
        trouble: &Trouble,
        run: &F,
    ) -> Result<T, DbErr>
    where
        F: for<'c, 's> Fn(&'c Session<'s>) -> Read<'c, T>,
    {
        let read = std::pin::pin!(async {
            match &self.pooler {
                // A pooled connection is not pinged before use (see `db.rs`): one the server
                // closed meanwhile fails at its first statement, and the read runs once more
                // (reads are idempotent) on another.
                None => match run(&Session::Pool(db)).await {
                    Err(e) if crate::error::is_broken_connection(&e) => {
                        tracing::debug!(error = %e, "a pooled connection was closed by the server: reading again");
                        trouble.note();
                        run(&Session::Pool(db)).await
                    }
                    other => other,
                },
                Some(pooler) => {
                    let session = Session::open(db, Some(pooler)).await?;
                    let result = run(&session).await;
                    let closed = session.close(result.is_ok()).await;
                    match (result, closed) {
                        (Ok(v), Ok(())) => Ok(v),
                        (Ok(_), Err(e)) | (Err(e), _) => Err(e),
                    }
                }
            }
        });
        // Declared after the read: when the read is cut off, this notes the trouble before
        // the read's connection goes back to its pool (see `db_trouble`).
        let watch = trouble.watch();
        let result = read.await;
        watch.finished();
        // A busy pool or a slow statement is not the network's trouble (and checking every
        // connection would only add to a load).
        if let Err(e) = &result
            && (is_unavailable(e) || crate::error::is_broken_connection(e))
            && !is_pool_timeout(e)
            && !is_statement_timeout(e)
        {
            trouble.note();
        }
        if std::ptr::eq(db, &self.db) {
            match &result {
                Ok(_) => self.primary_answered(true),
                // A primary that stops answering is not vouched for by earlier reads.
                Err(e) if is_unavailable(e) => self.primary_answered(false),
                Err(_) => {}
            }
        }
        result
    }

    /// Runs a read on a replica (in rotation; `stable`: the first that answers), retrying on
    /// the next when one fails to answer, then on the primary (or 503, as configured).
    ///
    /// `kind` names the read in its trace span (`rows`, `count`, `user`, …): a span per
    /// statement with its kind and where it ran, never its parameters.
    pub(crate) async fn read_on<T, F>(
        &self,
        kind: &'static str,
        stable: bool,
        run: F,
    ) -> Result<T, Error>
    where
        F: for<'c, 's> Fn(&'c Session<'s>) -> Read<'c, T>,
    {
        let started = std::time::Instant::now();
        let result = self
            .read_timed(ReadSpan::new(self, kind), stable, run)
            .await;
        self.read_durations().observe(started.elapsed());
        result
    }

    async fn read_timed<T, F>(&self, st: ReadSpan, stable: bool, run: F) -> Result<T, Error>
    where
        F: for<'c, 's> Fn(&'c Session<'s>) -> Read<'c, T>,
    {
        let Some(replicas) = &self.replicas else {
            let _counted = self.on_primary();
            return Ok(st
                .traced(self.in_session(&self.db, &self.trouble, &run), "primary")
                .await?);
        };
        for (i, m) in replicas.order_indexed(stable) {
            match st
                .traced(
                    self.in_session(&m.db, &m.trouble, &run),
                    REPLICA_NAMES.get(i).copied().unwrap_or("replica"),
                )
                .await
            {
                Ok(v) => {
                    m.reads.fetch_add(1, Ordering::Relaxed);
                    return Ok(v);
                }
                // A slow query is the query's fault, not the replica's: the replica stays in
                // rotation, and the query is not run again elsewhere.
                Err(e) if is_statement_timeout(&e) => return Err(e.into()),
                // A busy pool (or a server that stopped accepting): the next one is tried,
                // and the health check, not one query, takes a replica out.
                Err(e) if is_pool_timeout(&e) => {}
                Err(e) if is_unavailable(&e) => replicas.out_of_rotation(m, &e),
                Err(e) => return Err(e.into()),
            }
        }
        match replicas.fallback {
            Fallback::Primary => {
                replicas.primary_reads.fetch_add(1, Ordering::Relaxed);
                let _counted = self.on_primary();
                Ok(st
                    .traced(self.in_session(&self.db, &self.trouble, &run), "primary")
                    .await?)
            }
            Fallback::Unavailable => {
                tracing::warn!("no replica answers: read refused (--replica-fallback unavailable)");
                Err(Error::Unavailable)
            }
        }
    }

    /// A read that must see the primary's latest writes (who a token belongs to, and
    /// whether that user is banned): on the primary, and on the replicas only when the
    /// primary cannot answer (then nothing, a ban included, can have been written since).
    pub(crate) async fn read_current<T, F>(&self, kind: &'static str, run: F) -> Result<T, Error>
    where
        F: for<'c, 's> Fn(&'c Session<'s>) -> Read<'c, T>,
    {
        if self.replicas.is_none() {
            return self.read_on(kind, true, run).await;
        }
        let primary = {
            let _counted = self.on_primary();
            ReadSpan::new(self, kind)
                .traced(self.in_session(&self.db, &self.trouble, &run), "primary")
                .await
        };
        match primary {
            Ok(v) => Ok(v),
            Err(e) if is_unavailable(&e) && !is_statement_timeout(&e) => {
                tracing::warn!(error = %e, "primary unavailable: reading users from a replica");
                self.read_on(kind, true, run).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// [`Service::read_on`] in rotation.
    pub(crate) async fn read<T, F>(&self, kind: &'static str, run: F) -> Result<T, Error>
    where
        F: for<'c, 's> Fn(&'c Session<'s>) -> Read<'c, T>,
    {
        self.read_on(kind, false, run).await
    }

    /// The replicas, when reads go to replicas.
    pub fn replicas(&self) -> Option<&Replicas> {
        self.replicas.as_deref()
    }

    /// Starts the replicas' health checks (every [`CHECK_EVERY`]) for as long as the
    /// process runs; nothing without replicas.
    pub fn watch_replicas(&self) {
        let Some(replicas) = self.replicas.clone() else {
            return;
        };
        tokio::spawn(async move {
            let mut round = 0u64;
            loop {
                replicas.check(round).await;
                round += 1;
                tokio::time::sleep(CHECK_EVERY).await;
            }
        });
    }
}
