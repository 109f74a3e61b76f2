//! Live task progress: one poller per instance reads what changed in the tasks table (new-api
//! writes it directly, so there are no triggers to rely on) and fans the changes out to every
//! subscriber through one broadcast channel; each subscription keeps what its viewer may see
//! and its filter matches, evaluated in memory with the SQL filter's meaning.
//!
//! Each poll, while at least one subscription is open:
//!
//! - rows with an id above the highest seen (plus ids skipped by a transaction that had not
//!   committed yet, re-read for [`GAP_TTL`]) become `CREATED` events;
//! - rows that were unfinished at the last poll (at most [`MAX_WATCHED`], the newest kept) are
//!   read again by primary key; a changed one becomes `UPDATED`, or `FINISHED` when its
//!   progress reached `100%`;
//! - when anything changed, the users holding subscriptions are read again before it is
//!   delivered: a banned, deleted or changed user's subscriptions end instead of receiving it.
//!
//! Database cost per instance and poll, whatever the number of subscribers: one query (new
//! rows, skipped ids and up to 500 watched rows by primary key), one more per further 500
//! watched rows, and, only when something changed, one per 1,000 subscribed users. With no
//! subscriber the poller sleeps and sends nothing.

mod connection;
mod poller;
mod sockets;
mod subscription;

pub use connection::{Connection, ConnectionSlot, MAX_PER_CONNECTION, TrackedConnection};
pub use poller::{GAP_TTL, MAX_WATCHED, WATCH_WINDOW};
pub use sockets::{MAX_SOCKETS_PER_USER, SocketSlot};
pub use subscription::Subscription;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast, watch};

use crate::error::{AuthError, Error};
use crate::service::filter::{MAX_LIST, StringFilter, TaskFilter};
use crate::service::listing::{Scope, TaskQuery};
use crate::service::log::LogFilter;
use crate::service::page::{OffsetPage, PageRequest};
use crate::service::record::TaskRecord;
use crate::service::{Service, Viewer};

/// Polls a subscriber may fall behind before it is dropped (its bounded buffer).
pub const BUFFER: usize = 64;
/// Most rows an initial snapshot holds (the newest).
pub const MAX_SNAPSHOT: u64 = 100;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// One change, with the task as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskEvent {
    pub kind: EventKind,
    pub task: TaskRecord,
}

/// What a poll found: the changes, and the current state of the subscribed users it checked
/// (`Err` for a user whose subscriptions must end).
#[derive(Debug, Default)]
struct Batch {
    events: Vec<TaskEvent>,
    users: HashMap<i64, Result<Viewer, AuthError>>,
}

/// What to subscribe to.
#[derive(Clone, Debug, Default)]
pub struct LiveRequest {
    /// Only tasks matching this filter (same meaning as for lists).
    pub filter: TaskFilter,
    /// Only tasks with one of these mj ids (1 to 100); the subscription completes when all
    /// of them have finished.
    pub mj_ids: Option<Vec<String>>,
    /// Start with the matching unfinished tasks (the newest [`MAX_SNAPSHOT`]).
    pub snapshot: bool,
}

/// The live service of one instance (cheap to clone).
#[derive(Clone, Debug)]
pub struct Live {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    service: Service,
    config: LiveConfig,
    tx: broadcast::Sender<Arc<Batch>>,
    /// Open subscriptions per user id.
    users: Mutex<HashMap<i64, usize>>,
    total: AtomicUsize,
    wake: Notify,
    started: std::sync::Once,
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
        let (tx, _) = broadcast::channel(BUFFER);
        let (shutdown, _) = watch::channel(false);
        Live {
            inner: Arc::new(Inner {
                service,
                config,
                tx,
                users: Mutex::default(),
                total: AtomicUsize::new(0),
                wake: Notify::new(),
                started: std::sync::Once::new(),
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

    /// Opens a subscription for `viewer`: checks the request and the limits, registers the
    /// subscriber (so no change after this call is missed), then reads the initial state.
    pub async fn subscribe(
        &self,
        viewer: &Viewer,
        req: LiveRequest,
    ) -> Result<Subscription, Error> {
        req.filter.validate(viewer)?;
        let mj_ids = match &req.mj_ids {
            None => None,
            Some(ids) if ids.is_empty() || ids.len() > MAX_LIST => {
                return Err(Error::BadFilter(format!(
                    "mjIds holds 1 to {MAX_LIST} values"
                )));
            }
            Some(ids) => {
                mj_id_filter(ids).validate(viewer)?;
                Some(ids.iter().cloned().collect::<HashSet<String>>())
            }
        };
        if *self.inner.shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        let guard = self.register(viewer.id)?;
        let rx = self.inner.tx.subscribe();
        let shutdown = self.inner.shutdown.subscribe();
        self.start_poller();

        let service = &self.inner.service;
        let mut pending = std::collections::VecDeque::new();
        let mut remaining = None;
        if let (Some(ids), Some(listed)) = (&mj_ids, &req.mj_ids) {
            // The newest visible task of each listed id decides whether it is still to come.
            let mut query = visible_query(mj_id_filter(listed));
            query.page = PageRequest::Offset(OffsetPage {
                page: 1,
                page_size: MAX_LIST as u64,
            });
            let rows = service.list_tasks(viewer, &query).await?.rows;
            let mut decided = HashSet::new();
            let mut left: HashSet<String> = ids.clone();
            for r in rows {
                if decided.insert(r.mj_id.clone()) && r.finished() {
                    left.remove(&r.mj_id);
                }
            }
            remaining = Some(left);
        }
        if req.snapshot {
            let mut filter = TaskFilter {
                finished: Some(false),
                and: vec![req.filter.clone()],
                ..Default::default()
            };
            if let Some(ids) = &req.mj_ids {
                filter.and.push(mj_id_filter(ids));
            }
            let mut query = visible_query(filter);
            query.page = PageRequest::Offset(OffsetPage {
                page: 1,
                page_size: MAX_SNAPSHOT,
            });
            let mut rows = service.list_tasks(viewer, &query).await?.rows;
            rows.reverse();
            pending.extend(rows.into_iter().map(|task| TaskEvent {
                kind: EventKind::Snapshot,
                task,
            }));
        }
        Ok(Subscription {
            viewer: viewer.clone(),
            filter: req.filter,
            mj_ids,
            remaining,
            pending,
            rx,
            shutdown,
            ended: false,
            _guard: guard,
        })
    }

    /// Counts a new subscription of `user`, within the limits.
    fn register(&self, user: i64) -> Result<Registration, Error> {
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
        drop(users);
        inner.wake.notify_one();
        Ok(Registration {
            inner: self.inner.clone(),
            user,
        })
    }

    fn start_poller(&self) {
        let inner = self.inner.clone();
        self.inner.started.call_once(|| {
            tokio::spawn(poller::poll_loop(inner));
        });
    }
}

/// A query over what the viewer may see, newest first.
fn visible_query(filter: TaskFilter) -> TaskQuery {
    TaskQuery {
        scope: Scope::Visible,
        filter,
        ..Default::default()
    }
}

fn mj_id_filter(ids: &[String]) -> TaskFilter {
    TaskFilter {
        mj_id: Some(StringFilter {
            in_list: Some(ids.to_vec()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Keeps a subscription counted while it is open.
#[derive(Debug)]
struct Registration {
    inner: Arc<Inner>,
    user: i64,
}

impl Drop for Registration {
    fn drop(&mut self) {
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
