//! Live task progress, for every log: one poller per log and instance (or, with
//! `--redis-url`, per log and deployment: [`shared`]) reads what changed in its table (new-api writes it directly, so there are no triggers to rely on) and fans the
//! changes out to every subscriber of that log through one broadcast channel; each
//! subscription keeps what its viewer may see and its filter matches, evaluated in memory with
//! the SQL filter's meaning. The limits (subscriptions per user and per instance, sockets,
//! shutdown) are shared by the logs. A log's poller runs only while it has subscribers.
//!
//! Each poll, while at least one subscription is open:
//!
//! - rows with an id above the highest seen (plus ids skipped by a transaction that had not
//!   committed yet, re-read for [`GAP_TTL`]) become `CREATED` events;
//! - rows that were unfinished at the last poll (at most [`MAX_WATCHED`], the newest kept) are
//!   read again by primary key; a changed one becomes `UPDATED`, or `FINISHED` when its
//!   progress reached `100%`;
//! - in a log whose writer stamps every change (the task log's `updated_at`, seconds), rows
//!   stamped since the last poll are read in the same query, watched or not: a task that
//!   finished beyond the watch limit, or was edited after it finished (new-api settling its
//!   quota), is sent as `UPDATED` or `FINISHED` with its new state. The stamp's second is read
//!   again each poll, and what was already sent from it is skipped; legacy rows whose stamp
//!   is NULL are followed as above, from insert to finish;
//! - when anything changed, the users holding subscriptions are read again before it is
//!   delivered: a banned, deleted or changed user's subscriptions end instead of receiving it.
//!
//! Database cost per poller and poll, whatever the number of subscribers: one query (new
//! rows, skipped ids and up to 500 watched rows by primary key), one more per further 500
//! watched rows, and, only when something changed, one per 1,000 subscribed users. With no
//! subscriber the poller sleeps and sends nothing.

mod connection;
mod poller;
mod shared;
mod sockets;
mod subscription;

pub use connection::{Connection, ConnectionSlot, MAX_PER_CONNECTION, TrackedConnection};
pub use poller::{GAP_TTL, MAX_WATCHED, WATCH_WINDOW};
pub use sockets::{MAX_SOCKETS_PER_USER, SocketSlot};
pub use subscription::Subscription;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast, watch};

use crate::cluster::Cluster;
use crate::error::{AuthError, Error};
use crate::service::filter::MAX_LIST;
use crate::service::listing::Scope;
use crate::service::log::{Log, LogFilter, LogQuery};
use crate::service::page::{OffsetPage, PageRequest};
use crate::service::{Midjourneys, Service, Tasks, Viewer};

/// Polls a subscriber may fall behind before it is dropped (its bounded buffer).
pub const BUFFER: usize = 64;
/// Most rows an initial snapshot holds (the newest).
pub const MAX_SNAPSHOT: u64 = 100;
/// How long a new subscription waits at least for the source of changes to be established
/// (the poller's first reads) before it fails as unavailable.
pub const READY_WITHIN: Duration = Duration::from_secs(10);

/// How the live service behaves.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Time between polls while someone is subscribed.
    pub interval: Duration,
    /// Most open subscriptions per user.
    pub max_per_user: usize,
    /// Most open subscriptions on this instance.
    pub max_total: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            interval: Duration::from_secs(1),
            max_per_user: 20,
            max_total: 10_000,
        }
    }
}

/// What happened to a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    /// The task as it was when the subscription started (initial snapshot).
    Snapshot,
    /// A task appeared.
    Created,
    /// An unfinished task changed (status, progress, …).
    Updated,
    /// A task reached progress `100%` (success or failure).
    Finished,
}

/// One change, with the task of log `L` as it is now (serialised as such into a
/// deployment's change stream).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub struct LogEvent<L: Log> {
    pub kind: EventKind,
    pub task: L::Record,
}

impl<L: Log> Clone for LogEvent<L> {
    fn clone(&self) -> Self {
        LogEvent {
            kind: self.kind,
            task: self.task.clone(),
        }
    }
}

impl<L: Log> PartialEq for LogEvent<L> {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.task == other.task
    }
}

/// One change to a Midjourney task.
pub type TaskEvent = LogEvent<Midjourneys>;

/// What a poll found: the changes, and the current state of the subscribed users it checked
/// (`Err` for a user whose subscriptions must end); `interrupted` when changes may have been
/// missed (every subscription of the log ends with [`Error::FeedInterrupted`]).
#[derive(Debug)]
struct Batch<L: Log> {
    events: Vec<LogEvent<L>>,
    users: HashMap<i64, Result<Viewer, AuthError>>,
    interrupted: bool,
}

/// What to subscribe to in log `L`.
#[derive(Debug)]
pub struct LiveRequest<L: Log = Midjourneys> {
    /// Only tasks matching this filter (same meaning as for lists).
    pub filter: L::Filter,
    /// Only tasks with one of these upstream keys (`mj_id`, `task_id`; 1 to 100); the
    /// subscription completes when all of them have finished.
    pub keys: Option<Vec<String>>,
    /// Start with the matching unfinished tasks (the newest [`MAX_SNAPSHOT`]).
    pub snapshot: bool,
}

/// A log with a hub in the live service (its own poller and channel).
pub trait LiveLog: Log {
    /// This log's hub.
    #[doc(hidden)]
    fn hub(inner: &Inner) -> &Hub<Self>;
}

impl LiveLog for Midjourneys {
    fn hub(inner: &Inner) -> &Hub<Self> {
        &inner.mj
    }
}

impl LiveLog for Tasks {
    fn hub(inner: &Inner) -> &Hub<Self> {
        &inner.tasks
    }
}

/// One log's poller and channel.
#[doc(hidden)]
#[derive(Debug)]
pub struct Hub<L: Log> {
    tx: broadcast::Sender<Arc<Batch<L>>>,
    /// Open subscriptions to this log.
    listeners: AtomicUsize,
    wake: Notify,
    started: std::sync::Once,
    /// Whether this instance polls for the deployment now.
    leading: AtomicBool,
    /// Whether the source of changes is established for the subscribers there are now: the
    /// poller's baseline taken (or, in a deployment, this instance's place in the feed taken
    /// and the deployment's poller state published). A subscription reads its initial state
    /// only once this holds, so that every later change is an event ([`Live::subscribe`]).
    ready: watch::Sender<bool>,
}

impl<L: Log> Hub<L> {
    fn new() -> Hub<L> {
        let (tx, _) = broadcast::channel(BUFFER);
        Hub {
            tx,
            listeners: AtomicUsize::new(0),
            wake: Notify::new(),
            started: std::sync::Once::new(),
            leading: AtomicBool::new(false),
            ready: watch::channel(false).0,
        }
    }

    /// Marks the source of changes established (`true`) or not (`false`).
    fn set_ready(&self, ready: bool) {
        self.ready
            .send_if_modified(|now| std::mem::replace(now, ready) != ready);
    }
}

/// Whether log `L` has subscribers now. When it has none the hub is marked not ready, under
/// the lock [`Live::register`] counts a subscription with: a subscription registered after
/// this check waits for the poller's next baseline, one registered before it keeps the
/// poller's state alive.
fn listening<L: LiveLog>(inner: &Inner) -> bool {
    let _users = inner.users.lock().unwrap_or_else(PoisonError::into_inner);
    let hub = L::hub(inner);
    let listening = hub.listeners.load(Ordering::Relaxed) > 0;
    if !listening {
        hub.set_ready(false);
    }
    listening
}

/// The live service of one instance (cheap to clone).
#[derive(Clone, Debug)]
pub struct Live {
    inner: Arc<Inner>,
}

#[doc(hidden)]
#[derive(Debug)]
pub struct Inner {
    service: Service,
    config: LiveConfig,
    /// The deployment's shared state, when there is one.
    cluster: Option<Cluster>,
    /// Open subscriptions per user id (both logs).
    users: Mutex<HashMap<i64, usize>>,
    total: AtomicUsize,
    mj: Hub<Midjourneys>,
    tasks: Hub<Tasks>,
    shutdown: watch::Sender<bool>,
    polls: AtomicU64,
    /// Open client connections that must be closed before the process exits.
    connections: Arc<AtomicUsize>,
    /// Open WebSockets per user.
    sockets: Arc<sockets::Sockets>,
}

impl Live {
    /// A live service over `service`; its poller starts with the first subscription.
    pub fn new(service: Service, config: LiveConfig) -> Live {
        Live::in_deployment(service, config, None)
    }

    /// A live service that, while `cluster` (Redis) answers, shares one poller per log with
    /// the other instances of the deployment ([`shared`]), and polls on its own otherwise.
    pub fn in_deployment(service: Service, config: LiveConfig, cluster: Option<Cluster>) -> Live {
        let (shutdown, _) = watch::channel(false);
        Live {
            inner: Arc::new(Inner {
                service,
                config,
                cluster,
                users: Mutex::default(),
                total: AtomicUsize::new(0),
                mj: Hub::new(),
                tasks: Hub::new(),
                shutdown,
                polls: AtomicU64::new(0),
                connections: Arc::default(),
                sockets: Arc::default(),
            }),
        }
    }

    /// How many polls have run (for tests and metrics).
    pub fn polls(&self) -> u64 {
        self.inner.polls.load(Ordering::Relaxed)
    }

    /// Per log (its table), whether this instance polls it for the deployment now.
    pub fn leading(&self) -> [(&'static str, bool); 2] {
        [
            (
                Midjourneys::TABLE,
                self.inner.mj.leading.load(Ordering::Relaxed),
            ),
            (
                Tasks::TABLE,
                self.inner.tasks.leading.load(Ordering::Relaxed),
            ),
        ]
    }

    /// How many subscriptions are open.
    pub fn subscriptions(&self) -> usize {
        self.inner.total.load(Ordering::Relaxed)
    }

    /// Ends every subscription and stops the poller (server shutdown).
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Counts a client connection (a WebSocket) until the guard is dropped.
    pub fn track_connection(&self) -> TrackedConnection {
        self.inner.connections.fetch_add(1, Ordering::AcqRel);
        TrackedConnection(self.inner.connections.clone())
    }

    /// Counts an authenticated WebSocket of `user` while the slot is held, within
    /// [`MAX_SOCKETS_PER_USER`].
    pub fn open_socket(&self, user: i64) -> Result<SocketSlot, Error> {
        sockets::open(&self.inner.sockets, user)
    }

    /// Waits (at most `limit`) until every tracked connection has closed.
    pub async fn drained(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.inner.connections.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resolves when [`Live::shutdown`] has been called.
    pub async fn stopped(&self) {
        let mut rx = self.inner.shutdown.subscribe();
        // An error means the sender is gone, which only happens with the service itself.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    /// Opens a subscription for `viewer` to log `L`: checks the request and the limits,
    /// registers the subscriber, waits until the source of changes is established for it
    /// (the poller's baseline, at most [`READY_WITHIN`] or the poll interval five times;
    /// [`Error::Unavailable`] otherwise), then reads the initial state: every change made
    /// after that read is an event (a change during it may be both in the snapshot and an
    /// event), and none made after this call returns is missed.
    pub async fn subscribe<L: LiveLog>(
        &self,
        viewer: &Viewer,
        req: LiveRequest<L>,
    ) -> Result<Subscription<L>, Error> {
        req.filter.validate(viewer)?;
        let keys = match &req.keys {
            None => None,
            Some(ids) if ids.is_empty() || ids.len() > MAX_LIST => {
                return Err(Error::BadFilter(format!(
                    "the listed task ids hold 1 to {MAX_LIST} values"
                )));
            }
            Some(ids) => {
                L::keys_filter(ids).validate(viewer)?;
                Some(ids.iter().cloned().collect::<HashSet<String>>())
            }
        };
        if *self.inner.shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        let guard = self.register::<L>(viewer.id)?;
        let rx = L::hub(&self.inner).tx.subscribe();
        let mut shutdown = self.inner.shutdown.subscribe();
        self.start_poller::<L>();
        self.established::<L>(&mut shutdown).await?;

        let service = &self.inner.service;
        let mut pending = std::collections::VecDeque::new();
        let mut remaining = None;
        if let (Some(ids), Some(listed)) = (&keys, &req.keys) {
            // The newest visible task of each listed key decides whether it is still to come.
            let mut query = visible_query::<L>(L::keys_filter(listed));
            query.page = PageRequest::Offset(OffsetPage {
                page: 1,
                page_size: MAX_LIST as u64,
            });
            let rows = service.list(viewer, &query).await?.rows;
            let mut decided = HashSet::new();
            let mut left: HashSet<String> = ids.clone();
            for r in rows {
                let key = L::key(&r);
                if decided.insert(key.to_owned()) && L::finished(&r) {
                    left.remove(key);
                }
            }
            remaining = Some(left);
        }
        if req.snapshot {
            let mut parts = vec![L::unfinished(), req.filter.clone()];
            if let Some(ids) = &req.keys {
                parts.push(L::keys_filter(ids));
            }
            let mut query = visible_query::<L>(all_of(parts));
            query.page = PageRequest::Offset(OffsetPage {
                page: 1,
                page_size: MAX_SNAPSHOT,
            });
            let mut rows = service.list(viewer, &query).await?.rows;
            rows.reverse();
            pending.extend(rows.into_iter().map(|task| LogEvent {
                kind: EventKind::Snapshot,
                task,
            }));
        }
        Ok(Subscription {
            viewer: viewer.clone(),
            filter: req.filter,
            keys,
            remaining,
            pending,
            rx,
            shutdown,
            ended: false,
            _guard: guard,
        })
    }

    /// Waits until log `L`'s source of changes is established (see [`Hub::ready`]).
    async fn established<L: LiveLog>(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let mut ready = L::hub(&self.inner).ready.subscribe();
        let within = (self.inner.config.interval * 5).max(READY_WITHIN);
        tokio::select! {
            established = tokio::time::timeout(within, ready.wait_for(|ready| *ready)) => {
                match established {
                    Ok(Ok(_)) => Ok(()),
                    // The poller could not read the database (or Redis) in time.
                    _ => Err(Error::Unavailable),
                }
            }
            _ = shutdown.wait_for(|stopped| *stopped) => Err(Error::ShuttingDown),
        }
    }

    /// Counts a new subscription of `user`, within the limits.
    fn register<L: LiveLog>(&self, user: i64) -> Result<Registration<L>, Error> {
        let inner = &self.inner;
        let mut users = inner.users.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.total.load(Ordering::Relaxed) >= inner.config.max_total {
            return Err(Error::TooManySubscriptions(format!(
                "this server holds at most {} subscriptions: try again later",
                inner.config.max_total
            )));
        }
        let open = users.entry(user).or_insert(0);
        if *open >= inner.config.max_per_user {
            return Err(Error::TooManySubscriptions(format!(
                "a user holds at most {} subscriptions at once",
                inner.config.max_per_user
            )));
        }
        *open += 1;
        inner.total.fetch_add(1, Ordering::Relaxed);
        let hub = L::hub(inner);
        // Under the lock: see [`listening`].
        hub.listeners.fetch_add(1, Ordering::Relaxed);
        drop(users);
        hub.wake.notify_one();
        Ok(Registration {
            inner: self.inner.clone(),
            user,
            log: std::marker::PhantomData,
        })
    }

    fn start_poller<L: LiveLog>(&self) {
        let inner = self.inner.clone();
        L::hub(&self.inner).started.call_once(|| {
            tokio::spawn(poller::poll_loop::<L>(inner));
        });
    }
}

/// A query over what the viewer may see, newest first.
fn visible_query<L: Log>(filter: L::Filter) -> LogQuery<L> {
    LogQuery {
        scope: Scope::Visible,
        filter,
        ..Default::default()
    }
}

/// Every one of `parts` (as one filter's `and`).
fn all_of<F: LogFilter>(parts: Vec<F>) -> F {
    let mut all = F::default();
    all.set_and(parts);
    all
}

/// Keeps a subscription counted while it is open.
#[derive(Debug)]
struct Registration<L: LiveLog> {
    inner: Arc<Inner>,
    user: i64,
    log: std::marker::PhantomData<L>,
}

impl<L: LiveLog> Drop for Registration<L> {
    fn drop(&mut self) {
        L::hub(&self.inner)
            .listeners
            .fetch_sub(1, Ordering::Relaxed);
        let mut users = self
            .inner
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = users.get_mut(&self.user) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                users.remove(&self.user);
            }
        }
        self.inner.total.fetch_sub(1, Ordering::Relaxed);
    }
}
