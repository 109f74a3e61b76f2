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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use entity::midjourney::{self, Column};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::sync::{Notify, broadcast, watch};

use crate::error::{AuthError, Error};
use crate::service::filter::{MAX_LIST, StringFilter, TaskFilter};
use crate::service::page::{OffsetPage, PageRequest};
use crate::service::record::TaskRecord;
use crate::service::tasks::{Scope, TaskQuery, may_see};
use crate::service::users::MAX_USER_BATCH;
use crate::service::{Service, Viewer};

/// Most unfinished rows re-read each poll; beyond it the oldest stop being watched.
pub const MAX_WATCHED: usize = 10_000;
/// How far below the highest id the first poll looks for unfinished rows to watch.
pub const WATCH_WINDOW: i64 = 10_000;
/// How long an id skipped by a not-yet-committed insert keeps being looked for.
pub const GAP_TTL: Duration = Duration::from_secs(30);
/// Most skipped ids looked for at once.
const MAX_GAPS: usize = 1_000;
/// New rows read per query (more are read at once in further queries).
const NEW_BATCH: u64 = 500;
/// Watched rows read per query.
const WATCH_BATCH: usize = 500;
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
            tokio::spawn(poll_loop(inner));
        });
    }
}

/// A tracked client connection (see [`Live::track_connection`]).
#[derive(Debug)]
pub struct TrackedConnection(Arc<AtomicUsize>);

impl Drop for TrackedConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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

/// One open subscription: its events, in the order the poller saw them.
#[derive(Debug)]
pub struct Subscription {
    viewer: Viewer,
    filter: TaskFilter,
    mj_ids: Option<HashSet<String>>,
    /// The listed mj ids not seen finished yet.
    remaining: Option<HashSet<String>>,
    pending: std::collections::VecDeque<TaskEvent>,
    rx: broadcast::Receiver<Arc<Batch>>,
    shutdown: watch::Receiver<bool>,
    ended: bool,
    _guard: Registration,
}

impl Subscription {
    /// The next event; `None` when the subscription is complete (every listed mj id
    /// finished, or the server is shutting down); an error ends it (the user was banned or
    /// deleted, or the subscriber fell [`BUFFER`] polls behind).
    pub async fn next(&mut self) -> Option<Result<TaskEvent, Error>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.ended || self.remaining.as_ref().is_some_and(HashSet::is_empty) {
                return None;
            }
            if *self.shutdown.borrow() {
                self.ended = true;
                return None;
            }
            tokio::select! {
                _ = self.shutdown.changed() => {
                    self.ended = true;
                    return None;
                }
                received = self.rx.recv() => match received {
                    Ok(batch) => {
                        if let Err(e) = self.take(&batch) {
                            self.ended = true;
                            return Some(Err(e));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.ended = true;
                        return Some(Err(Error::SlowConsumer));
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.ended = true;
                        return None;
                    }
                }
            }
        }
    }

    /// Keeps the batch's events this subscriber gets; fails when its user changed.
    fn take(&mut self, batch: &Batch) -> Result<(), Error> {
        match batch.users.get(&self.viewer.id) {
            Some(Err(e)) => return Err(Error::Auth(*e)),
            Some(Ok(now)) if *now != self.viewer => {
                return Err(Error::Forbidden(
                    "your account changed: subscribe again".into(),
                ));
            }
            _ => {}
        }
        for event in &batch.events {
            let task = &event.task;
            if !may_see(&self.viewer, Scope::Visible, task.user_id) {
                continue;
            }
            if let Some(ids) = &self.mj_ids {
                if !ids.contains(&task.mj_id) {
                    continue;
                }
                if task.finished()
                    && let Some(left) = &mut self.remaining
                {
                    left.remove(&task.mj_id);
                }
            }
            if self.filter.matches(task) {
                self.pending.push_back(event.clone());
            }
        }
        Ok(())
    }
}

/// What the poller remembers between polls.
#[derive(Debug, Default)]
struct PollState {
    /// The highest id seen.
    last_id: i64,
    /// Unfinished rows as last read, by id.
    watched: BTreeMap<i64, TaskRecord>,
    /// Ids below `last_id` not seen yet (an insert that had not committed), with when to
    /// stop looking.
    gaps: BTreeMap<i64, Instant>,
}

async fn poll_loop(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut state: Option<PollState> = None;
    let mut failing = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if inner.total.load(Ordering::Relaxed) == 0 {
            // Nobody listens: forget everything and wait for a subscriber.
            state = None;
            tokio::select! {
                () = inner.wake.notified() => continue,
                _ = shutdown.changed() => return,
            }
        }
        let started = Instant::now();
        let result = match state.as_mut() {
            Some(s) => poll(&inner, s).await,
            None => match baseline(&inner.service).await {
                Ok(s) => {
                    state = Some(s);
                    Ok(false)
                }
                Err(e) => Err(e),
            },
        };
        inner.polls.fetch_add(1, Ordering::Relaxed);
        let more = match result {
            Ok(more) => {
                if failing {
                    tracing::info!("live poller: the database answers again");
                    failing = false;
                }
                more
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "live poller: a poll failed; retrying every interval");
                    failing = true;
                }
                false
            }
        };
        if more {
            continue;
        }
        let wait = inner.config.interval.saturating_sub(started.elapsed());
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The starting point: the highest id, and the recent unfinished rows to watch.
async fn baseline(service: &Service) -> Result<PollState, Error> {
    let backend = service.db.get_database_backend();
    service.live_query();
    let highest = midjourney::Entity::find()
        .select_only()
        .column_as(Expr::cust("MAX(id)"), "m");
    let last = service
        .read_on(true, |db| {
            Box::pin(highest.clone().into_tuple::<Option<i64>>().one(db))
        })
        .await?;
    let last_id = last.flatten().unwrap_or(0);
    let unfinished = TaskFilter {
        finished: Some(false),
        ..Default::default()
    };
    service.live_query();
    let recent = midjourney::Entity::find()
        .filter(Column::Id.gt(last_id.saturating_sub(WATCH_WINDOW)))
        .filter(unfinished.condition(backend))
        .order_by_desc(Column::Id)
        .limit(MAX_WATCHED as u64);
    let rows = service
        .read_on(true, |db| Box::pin(recent.clone().all(db)))
        .await?;
    let forward = service.image_forward_base.as_deref();
    let watched = rows
        .into_iter()
        .map(|m| (m.id, TaskRecord::from_model(m, forward)))
        .collect();
    Ok(PollState {
        last_id,
        watched,
        ..Default::default()
    })
}

/// One poll; `Ok(true)` when more new rows are waiting (poll again at once).
///
/// An idle poll is one query: the first [`WATCH_BATCH`] watched rows, the skipped ids and
/// the new rows are read together; the subscribed users are read again only when there are
/// events to deliver (a banned user receives nothing more).
async fn poll(inner: &Inner, state: &mut PollState) -> Result<bool, Error> {
    let service = &inner.service;
    let forward = service.image_forward_base.as_deref();
    let now = Instant::now();
    state.gaps.retain(|_, until| *until > now);
    let watched: Vec<i64> = state.watched.keys().copied().collect();
    let mut chunks = watched.chunks(WATCH_BATCH);
    let first = chunks.next().unwrap_or_default();

    let mut rows = Vec::new();
    // Watched rows beyond the first batch, by primary key.
    for chunk in chunks {
        service.live_query();
        let watched = midjourney::Entity::find().filter(Column::Id.is_in(chunk.iter().copied()));
        rows.extend(
            service
                .read_on(true, |db| Box::pin(watched.clone().all(db)))
                .await?,
        );
    }
    // The first watched rows, the skipped ids and what is new, in id order: every watched
    // and skipped row fits under the limit, and up to NEW_BATCH new rows follow them.
    let mut wanted = Condition::any().add(Column::Id.gt(state.last_id));
    let known: Vec<i64> = first.iter().chain(state.gaps.keys()).copied().collect();
    if !known.is_empty() {
        wanted = wanted.add(Column::Id.is_in(known.iter().copied()));
    }
    service.live_query();
    let changed = midjourney::Entity::find()
        .filter(wanted)
        .order_by_asc(Column::Id)
        .limit(NEW_BATCH + known.len() as u64);
    let found = service
        .read_on(true, |db| Box::pin(changed.clone().all(db)))
        .await?;
    let fresh = found.iter().filter(|m| m.id > state.last_id).count() as u64;
    rows.extend(found);

    let mut events = Vec::new();
    let mut seen = HashSet::with_capacity(rows.len());
    let mut expected = state.last_id + 1;
    for m in rows {
        let id = m.id;
        seen.insert(id);
        let task = TaskRecord::from_model(m, forward);
        if let Some(before) = state.watched.get(&id) {
            if *before == task {
                continue;
            }
            let kind = if task.finished() {
                state.watched.remove(&id);
                EventKind::Finished
            } else {
                state.watched.insert(id, task.clone());
                EventKind::Updated
            };
            events.push(TaskEvent { kind, task });
            continue;
        }
        if id > state.last_id {
            for gap in expected..id.min(expected.saturating_add(MAX_GAPS as i64)) {
                state.gaps.insert(gap, now + GAP_TTL);
            }
            expected = id + 1;
            state.last_id = id;
        } else if state.gaps.remove(&id).is_none() {
            continue;
        }
        if !task.finished() {
            state.watched.insert(id, task.clone());
        }
        events.push(TaskEvent {
            kind: EventKind::Created,
            task,
        });
    }
    // A deleted row is no longer watched.
    for id in &watched {
        if !seen.contains(id) {
            state.watched.remove(id);
        }
    }
    while state.gaps.len() > MAX_GAPS {
        state.gaps.pop_first();
    }
    while state.watched.len() > MAX_WATCHED {
        state.watched.pop_first();
    }
    if events.is_empty() {
        return Ok(false);
    }

    // Before anything is delivered: the subscribed users, as they are now.
    let subscribed: Vec<i64> = {
        let users = inner.users.lock().unwrap_or_else(PoisonError::into_inner);
        users.keys().copied().collect()
    };
    let mut users = HashMap::with_capacity(subscribed.len());
    for chunk in subscribed.chunks(MAX_USER_BATCH) {
        service.live_query();
        users.extend(service.current_viewers(chunk).await?);
    }
    // No receiver is not an error: the last subscriber just left.
    let _ = inner.tx.send(Arc::new(Batch { events, users }));
    Ok(fresh == NEW_BATCH)
}

/// Most open subscriptions on one connection (a WebSocket; an SSE request holds one).
pub const MAX_PER_CONNECTION: usize = 10;

/// What one client connection shares between its subscriptions: their count, and whether
/// one of them fell behind (the transport then drops the connection, saying why).
#[derive(Clone, Debug, Default)]
pub struct Connection {
    open: Arc<AtomicUsize>,
    slow: Arc<Notify>,
}

impl Connection {
    /// Counts one more subscription on this connection, within [`MAX_PER_CONNECTION`].
    pub fn open(&self) -> Result<ConnectionSlot, Error> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_PER_CONNECTION).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(ConnectionSlot(self.clone())),
            Err(_) => Err(Error::TooManySubscriptions(format!(
                "a connection holds at most {MAX_PER_CONNECTION} subscriptions at once"
            ))),
        }
    }

    /// Records that a subscription on this connection fell too far behind.
    pub fn fell_behind(&self) {
        self.slow.notify_one();
    }

    /// Resolves once a subscription on this connection fell too far behind.
    pub async fn too_slow(&self) {
        self.slow.notified().await;
    }
}

/// One counted subscription of a [`Connection`], released when dropped.
#[derive(Debug)]
pub struct ConnectionSlot(Connection);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}
