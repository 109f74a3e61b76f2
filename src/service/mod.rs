//! All database access and every rule: viewer scoping, filters, ordering, offset and keyset
//! pages, counts, users, imports — for both of new-api's task logs (`midjourneys` and
//! `tasks`), written once over [`Log`]. The REST and GraphQL skins only translate to and from
//! these types; neither builds a query.

mod cache;
mod cursor;
pub mod demo;
pub mod export;
pub mod filter;
mod filter_match;
mod filter_sql;
pub mod fold;
pub mod groups;
pub mod import;
mod listing;
pub mod live;
pub mod log;
mod lookups;
mod midjourneys;
pub mod node_id;
pub mod order;
pub mod page;
pub mod record;
pub mod replicas;
mod row;
pub mod session;
pub mod stats;
pub mod task_log;
pub mod time_zone;
pub mod users;
mod viewer;

pub use filter::{NumFilter, StringFilter, TaskFilter, TextFilter};
pub use listing::{Columns, Scope, TaskKey, TaskQuery, may_see};
pub use log::{Log, LogFilter, LogQuery, SortField};
pub use lookups::{Lookups, MAX_LOOKUPS};
pub use midjourneys::Midjourneys;
pub use order::{Direction, KeyOrder, OrderField, TaskOrder};
pub use page::{CursorPage, OffsetPage, Page, PageRequest, TaskPage};
pub use record::TaskRecord;
pub use task_log::{
    PlatformOrderField, PlatformTaskFilter, PlatformTaskQuery, PlatformTaskRecord, Tasks,
};
pub use users::{NewUser, UserRecord};
pub use viewer::{Role, Viewer};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use sea_orm::DatabaseConnection;

use std::time::Duration;

use crate::service::cache::{CountCache, TokenCache};
use crate::service::replicas::Replicas;

/// The service: a database handle plus the settings that shape what it returns.
/// Cheap to clone (the connection is a pool handle).
#[derive(Clone, Debug)]
pub struct Service {
    db: DatabaseConnection,
    /// Trouble noted by reads on `db`, read by its pool's hooks.
    trouble: crate::db_trouble::Trouble,
    image_forward_base: Option<String>,
    counters: Arc<Counters>,
    /// Where reads go, when not to `db`.
    replicas: Option<Arc<Replicas>>,
    tokens: Arc<TokenCache>,
    counts: Arc<CountCache>,
    /// Export limits and progress.
    exports: Arc<export::ExportLimits>,
    /// The key export links are signed with.
    link_key: export::LinkKey,
    /// How long an export link is valid.
    link_ttl_secs: u64,
    /// Where exports read, when not from `db` (SQLite: a pool whose connections are not
    /// interrupted at the statement timeout, since an export holds one for its whole run).
    export_db: Option<DatabaseConnection>,
    /// Set behind a transaction-pooling PgBouncer: every read pins a server connection.
    pooler: Option<session::Pooler>,
}

/// How many task queries this service has run, by kind (shared by its clones).
#[derive(Debug, Default)]
struct Counters {
    rows: AtomicU64,
    aggregates: AtomicU64,
    live: AtomicU64,
    live_checks: AtomicU64,
    /// How long reads took (metrics).
    reads: crate::metrics::Histogram,
    /// Reads running on the primary's pool now, holding a connection or waiting for one.
    primary_in_flight: AtomicUsize,
    /// The last health ping of the primary: when, and whether it answered.
    last_ping: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
    /// When a read on the primary last succeeded, in milliseconds since [`STARTED`] (0:
    /// never).
    primary_answered_ms: AtomicU64,
}

/// A read on the primary that succeeded this recently answers for it as a ping: under
/// load `/healthz` answers at once instead of queueing behind requests for a pooled
/// connection (a load balancer timing out its checks of busy instances would take them all
/// out at once).
const PASSIVE_WINDOW: Duration = Duration::from_secs(1);

/// The process's reference instant for [`Counters::primary_answered_ms`].
static STARTED: std::sync::LazyLock<std::time::Instant> =
    std::sync::LazyLock::new(std::time::Instant::now);

/// How long a health ping's answer is reused: `/healthz` asked by anyone, however often,
/// pings the primary at most this often.
const PING_REUSE: Duration = Duration::from_millis(250);

/// Counts one read on the primary's pool for as long as it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn start(counter: &'a AtomicUsize) -> InFlight<'a> {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A reading of the query counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryCounts {
    /// Queries that fetched task rows (one per page).
    pub rows: u64,
    /// Count, sum and grouping queries.
    pub aggregates: u64,
    /// Queries of the live-progress poller (changed rows).
    pub live: u64,
    /// The subscribed users read again before changes are delivered (per instance, also
    /// when the deployment shares one poller).
    pub live_checks: u64,
}

impl Service {
    /// A service over `db`; `image_forward_base` turns on image-URL forwarding.
    pub fn new(db: DatabaseConnection, image_forward_base: Option<String>) -> Service {
        Service {
            db,
            trouble: Default::default(),
            image_forward_base: image_forward_base.filter(|b| !b.trim().is_empty()),
            counters: Arc::default(),
            replicas: None,
            tokens: Arc::default(),
            counts: Arc::default(),
            exports: Arc::default(),
            link_key: export::LinkKey::new(""),
            link_ttl_secs: export::link::DEFAULT_TTL_SECS,
            export_db: None,
            pooler: None,
        }
    }

    /// The same service, noting the trouble its reads meet in `trouble`, the one its pool
    /// was opened with ([`crate::db::connect_serving`]).
    pub fn with_trouble(mut self, trouble: crate::db_trouble::Trouble) -> Service {
        self.trouble = trouble;
        self
    }

    /// The same service behind a transaction-pooling PgBouncer (`pgbouncer=true`): each
    /// read in a short transaction of its own, bounded by `statement_timeout_ms`.
    pub fn behind_pooler(mut self, statement_timeout_ms: u64) -> Service {
        self.pooler = Some(session::Pooler::new(statement_timeout_ms));
        self
    }

    /// The same service, its exports read through `db` (the same database).
    pub fn with_export_pool(mut self, db: DatabaseConnection) -> Service {
        self.export_db = Some(db);
        self
    }

    /// The same service with its export settings: limits, the key links are signed with
    /// (the same on every instance of a deployment), and how long a link is valid.
    pub fn with_exports(
        mut self,
        limits: export::ExportLimits,
        link_key: export::LinkKey,
        link_ttl_secs: u64,
    ) -> Service {
        self.exports = Arc::new(limits);
        self.link_key = link_key;
        self.link_ttl_secs = link_ttl_secs;
        self
    }

    /// The same service with its caches set: a token's user is kept for `auth_ttl` (a ban
    /// takes effect within it; zero: looked up on every request), and a finished count is
    /// reused for `count_freshness` (zero: only counts running at the same moment are
    /// shared).
    pub fn with_caches(mut self, auth_ttl: Duration, count_freshness: Duration) -> Service {
        self.tokens = Arc::new(TokenCache::new(auth_ttl));
        self.counts = Arc::new(CountCache::new(count_freshness));
        self
    }

    /// The same service, its reads sent to `replicas` (writes stay on the primary).
    pub fn with_replicas(mut self, replicas: Replicas) -> Service {
        self.replicas = Some(Arc::new(replicas));
        self
    }

    /// How many task queries have run so far (for logs, metrics and tests).
    pub fn query_counts(&self) -> QueryCounts {
        QueryCounts {
            rows: self.counters.rows.load(Ordering::Relaxed),
            aggregates: self.counters.aggregates.load(Ordering::Relaxed),
            live: self.counters.live.load(Ordering::Relaxed),
            live_checks: self.counters.live_checks.load(Ordering::Relaxed),
        }
    }

    /// How long reads took, all kinds together.
    pub fn read_durations(&self) -> &crate::metrics::Histogram {
        &self.counters.reads
    }

    /// Marks a read on the primary's pool until the guard is dropped (the pool's waiting
    /// figure).
    fn on_primary(&self) -> InFlight<'_> {
        InFlight::start(&self.counters.primary_in_flight)
    }

    /// Notes that a read on the primary succeeded, or found it unavailable (which forgets
    /// the earlier successes; see [`PASSIVE_WINDOW`]).
    fn primary_answered(&self, answered: bool) {
        let ms = if answered {
            STARTED.elapsed().as_millis().max(1) as u64
        } else {
            0
        };
        self.counters
            .primary_answered_ms
            .store(ms, Ordering::Relaxed);
    }

    fn rows_query(&self) {
        self.counters.rows.fetch_add(1, Ordering::Relaxed);
    }

    fn live_query(&self) {
        self.counters.live.fetch_add(1, Ordering::Relaxed);
    }

    fn live_check(&self) {
        self.counters.live_checks.fetch_add(1, Ordering::Relaxed);
    }

    fn count_query(&self) {
        self.counters.aggregates.fetch_add(1, Ordering::Relaxed);
    }

    /// The underlying connection (for start-up work such as migrations).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), crate::error::Error> {
        // The watch is declared after the ping, so a ping cut off notes the trouble before
        // its connection goes back to the pool (see `db_trouble`).
        let ping = std::pin::pin!(self.db.ping());
        let watch = self.trouble.watch();
        let answer = ping.await;
        watch.finished();
        if answer.is_err() {
            self.trouble.note();
        }
        answer.map_err(crate::error::Error::from)
    }

    /// Whether the primary answered a read in the last [`PASSIVE_WINDOW`], or a ping in the
    /// last `PING_REUSE` (250 ms) (one ping at a time, shared by every caller meanwhile).
    pub async fn primary_up(&self) -> bool {
        let answered = self.counters.primary_answered_ms.load(Ordering::Relaxed);
        if answered > 0
            && STARTED
                .elapsed()
                .saturating_sub(Duration::from_millis(answered))
                < PASSIVE_WINDOW
        {
            return true;
        }
        let mut last = self.counters.last_ping.lock().await;
        if let Some((at, up)) = *last
            && at.elapsed() < PING_REUSE
        {
            return up;
        }
        let up = self.ping().await.is_ok();
        *last = Some((std::time::Instant::now(), up));
        up
    }

    /// The primary's connection pool now: connections open and how many of them are idle.
    pub fn pool_status(&self) -> PoolStatus {
        use sea_orm::DatabaseBackend as B;
        let (open, idle) = match self.db.get_database_backend() {
            B::Postgres => {
                let p = self.db.get_postgres_connection_pool();
                (p.size(), p.num_idle())
            }
            B::MySql => {
                let p = self.db.get_mysql_connection_pool();
                (p.size(), p.num_idle())
            }
            _ => {
                let p = self.db.get_sqlite_connection_pool();
                (p.size(), p.num_idle())
            }
        };
        let in_use = (open as usize).saturating_sub(idle);
        let in_flight = self.counters.primary_in_flight.load(Ordering::Relaxed);
        PoolStatus {
            open,
            in_use,
            waiting: in_flight.saturating_sub(in_use),
        }
    }
}

/// A connection pool's state (`/healthz`, metrics).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct PoolStatus {
    /// Connections open.
    pub open: u32,
    /// Of which in use by a query.
    pub in_use: usize,
    /// Reads waiting for a connection: reads on the pool beyond the connections in use (sqlx
    /// does not count its waiters, so this is derived from the reads the service runs;
    /// a connection held by a write makes it read low by one for that moment).
    pub waiting: usize,
}
