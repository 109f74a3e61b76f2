//! The poller: what changed in a log's table since the last poll, sent to every subscriber
//! of that log (one poller per log, the same code for each).
//!
//! It reads the primary, like the user check (replicas only while the primary does not
//! answer): a replica taking over from another that was ahead could show a watched row in an
//! older state, an event going back in time; one small query a second is the price.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::error::Error;
use crate::service::Service;
use crate::service::log::{Log, LogFilter};
use crate::service::users::MAX_USER_BATCH;

use super::shared::Feed;
use super::{Batch, EventKind, Inner, LiveLog, LogEvent};

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
/// What the poller remembers between polls (in a deployment, kept in Redis with each
/// published batch, so that the next leader resumes where the last one stopped).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub(super) struct PollState<L: Log> {
    /// The highest id seen.
    last_id: i64,
    /// Unfinished rows as last read, by id.
    watched: BTreeMap<i64, L::Record>,
    /// Ids below `last_id` not seen yet (an insert that had not committed), with when to
    /// stop looking (Unix milliseconds: the next leader may be another process).
    gaps: BTreeMap<i64, i64>,
    /// Logs whose writer stamps changes (`updated_at`, seconds): the highest stamp seen, and
    /// the rows read with that stamp (the next poll reads that second again, for changes
    /// made later in it, and skips what it already sent).
    mark: Option<i64>,
    at_mark: HashMap<i64, L::Record>,
}

pub(super) async fn poll_loop<L: LiveLog>(inner: Arc<Inner>) {
    let hub = L::hub(&inner);
    let mut shutdown = inner.shutdown.subscribe();
    let mut state: Option<PollState<L>> = None;
    let mut feed = inner
        .cluster
        .clone()
        .map(|c| Feed::<L>::new(c, inner.config.interval));
    // Whether the last round (with subscribers) used the deployment's feed.
    let mut was_shared: Option<bool> = None;
    let mut failing = false;
    loop {
        if *shutdown.borrow() {
            if let Some(feed) = feed.as_mut() {
                feed.leave().await;
            }
            return;
        }
        let listening = super::listening::<L>(&inner);
        if let Some(feed) = feed.as_mut().filter(|f| f.usable()) {
            state = None;
            if !listening && !feed.leading() {
                was_shared = None;
                feed.idle();
                tokio::select! {
                    () = hub.wake.notified() => continue,
                    _ = shutdown.changed() => continue,
                }
            }
            if listening && was_shared == Some(false) {
                hub.set_ready(false);
                interrupt::<L>(
                    &inner,
                    "redis answers again: switching to the deployment's feed",
                );
            }
            was_shared = listening.then_some(true);
            feed.round(&inner, listening, &mut shutdown).await;
            continue;
        }
        if listening && was_shared == Some(true) {
            hub.set_ready(false);
            interrupt::<L>(&inner, "redis lost: this instance polls on its own");
        }
        if let Some(feed) = feed.as_mut() {
            feed.idle();
            hub.leading.store(false, Ordering::Relaxed);
        }
        if !listening {
            // Nobody listens: forget everything and wait for a subscriber.
            state = None;
            was_shared = None;
            tokio::select! {
                () = hub.wake.notified() => continue,
                _ = shutdown.changed() => continue,
            }
        }
        was_shared = Some(false);
        let started = Instant::now();
        let result = match state.as_mut() {
            Some(s) => match poll::<L>(&inner.service, s).await {
                Ok((events, more)) => deliver::<L>(&inner, events).await.map(|()| more),
                Err(e) => Err(e),
            },
            None => match baseline::<L>(&inner.service).await {
                Ok(s) => {
                    state = Some(s);
                    Ok(false)
                }
                Err(e) => Err(e),
            },
        };
        inner.polls.fetch_add(1, Ordering::Relaxed);
        // A failed poll keeps the last state: the next one compares with it, so nothing
        // changed in between is missed.
        hub.set_ready(state.is_some());
        let more = match result {
            Ok(more) => {
                if failing {
                    tracing::info!(log = L::TABLE, "live poller: the database answers again");
                    failing = false;
                }
                more
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(log = L::TABLE, error = %e, "live poller: a poll failed; retrying every interval");
                    failing = true;
                }
                false
            }
        };
        if more {
            continue;
        }
        let wait = inner.config.interval.saturating_sub(started.elapsed());
        let poll_again = feed.as_ref().map_or(wait, |_| wait.min(CHECK_REDIS));
        tokio::select! {
            () = tokio::time::sleep(poll_again) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// How often an instance polling on its own (Redis lost) looks whether Redis is back.
const CHECK_REDIS: Duration = Duration::from_secs(1);

/// Ends this instance's subscriptions of log `L` with [`Error::FeedInterrupted`]: changes
/// may have been missed (or would be sent twice) where the source of changes switched.
pub(super) fn interrupt<L: LiveLog>(inner: &Inner, why: &str) {
    tracing::warn!(
        log = L::TABLE,
        "live: {why}; open subscriptions end (FEED_INTERRUPTED) and subscribe again"
    );
    let _ = L::hub(inner).tx.send(Arc::new(Batch {
        events: Vec::new(),
        users: HashMap::new(),
        interrupted: true,
    }));
}

/// Sends `events` to this instance's subscribers of log `L`, with the subscribed users as
/// they are now (read first: a banned user receives nothing more). When the users cannot be
/// read the subscriptions end (FEED_INTERRUPTED) rather than silently miss the events.
pub(super) async fn deliver<L: LiveLog>(
    inner: &Inner,
    events: Vec<LogEvent<L>>,
) -> Result<(), Error> {
    if events.is_empty() {
        return Ok(());
    }
    let subscribed: Vec<i64> = {
        let users = inner.users.lock().unwrap_or_else(PoisonError::into_inner);
        users.keys().copied().collect()
    };
    let service = &inner.service;
    let mut users = HashMap::with_capacity(subscribed.len());
    for chunk in subscribed.chunks(MAX_USER_BATCH) {
        service.live_check();
        match service.current_viewers(chunk).await {
            Ok(found) => users.extend(found),
            Err(e) => {
                interrupt::<L>(inner, "the subscribed users could not be read");
                return Err(e);
            }
        }
    }
    // No receiver is not an error: the last subscriber just left.
    let _ = L::hub(inner).tx.send(Arc::new(Batch {
        events,
        users,
        interrupted: false,
    }));
    Ok(())
}

/// The starting point: the highest id, and the recent unfinished rows to watch.
pub(super) async fn baseline<L: Log>(service: &Service) -> Result<PollState<L>, Error> {
    let backend = service.db.get_database_backend();
    service.live_query();
    let highest = L::bare().column_as(Expr::cust("MAX(id)"), "m");
    let last = service
        .read_current("live.changes", |db| {
            Box::pin(highest.clone().into_tuple::<Option<i64>>().one(db))
        })
        .await?;
    let last_id = last.flatten().unwrap_or(0);
    service.live_query();
    let recent = L::rows(backend)
        .filter(L::id_column().gt(last_id.saturating_sub(WATCH_WINDOW)))
        .filter(L::unfinished().condition(backend))
        .order_by_desc(L::id_column())
        .limit(MAX_WATCHED as u64);
    let rows = service
        .read_current("live.recent", |db| Box::pin(recent.clone().all(db)))
        .await?;
    let watched = rows
        .into_iter()
        .map(|m| {
            let r = L::record(m, service);
            (L::record_id(&r), r)
        })
        .collect();
    let (mark, at_mark) = match L::updated_at_column() {
        None => (None, HashMap::new()),
        Some(col) => {
            service.live_query();
            let newest = L::bare().column_as(
                Expr::from(sea_orm::sea_query::Func::max(Expr::col(col))),
                "m",
            );
            let newest = service
                .read_current("live.changes", |db| {
                    Box::pin(newest.clone().into_tuple::<Option<i64>>().one(db))
                })
                .await?
                .flatten()
                .unwrap_or(0);
            service.live_query();
            let stamped = L::rows(backend)
                .filter(col.eq(newest))
                .limit(MAX_WATCHED as u64);
            let rows = service
                .read_current("live.recent", |db| Box::pin(stamped.clone().all(db)))
                .await?;
            let at_mark = rows
                .into_iter()
                .map(|m| {
                    let r = L::record(m, service);
                    (L::record_id(&r), r)
                })
                .collect();
            (Some(newest), at_mark)
        }
    };
    Ok(PollState {
        last_id,
        watched,
        gaps: BTreeMap::new(),
        mark,
        at_mark,
    })
}

/// One poll: the events, and `true` when more new rows are waiting (poll again at once).
/// The state changes only once every read has succeeded.
///
/// An idle poll is one query: the first [`WATCH_BATCH`] watched rows, the skipped ids and
/// the new rows are read together.
pub(super) async fn poll<L: LiveLog>(
    service: &Service,
    state: &mut PollState<L>,
) -> Result<(Vec<LogEvent<L>>, bool), Error> {
    let backend = service.db.get_database_backend();
    let now = chrono::Utc::now().timestamp_millis();
    let gap_until = now + GAP_TTL.as_millis() as i64;
    state.gaps.retain(|_, until| *until > now);
    let watched: Vec<i64> = state.watched.keys().copied().collect();
    let mut chunks = watched.chunks(WATCH_BATCH);
    let first = chunks.next().unwrap_or_default();

    let mut rows = Vec::new();
    // Watched rows beyond the first batch, by primary key.
    for chunk in chunks {
        service.live_query();
        let watched = L::rows(backend).filter(L::id_column().is_in(chunk.iter().copied()));
        rows.extend(
            service
                .read_current("live.watched", |db| Box::pin(watched.clone().all(db)))
                .await?,
        );
    }
    // The first watched rows, the skipped ids and what is new, in id order: every watched
    // and skipped row fits under the limit, and up to NEW_BATCH new rows follow them.
    let mut wanted = Condition::any().add(L::id_column().gt(state.last_id));
    let known: Vec<i64> = first.iter().chain(state.gaps.keys()).copied().collect();
    if !known.is_empty() {
        wanted = wanted.add(L::id_column().is_in(known.iter().copied()));
    }
    // Rows stamped since the last poll (the stamp's second read again), watched or not.
    if let (Some(col), Some(mark)) = (L::updated_at_column(), state.mark) {
        wanted = wanted.add(col.gte(mark));
    }
    service.live_query();
    let changed = L::rows(backend)
        .filter(wanted)
        .order_by_asc(L::id_column())
        .limit(NEW_BATCH + known.len() as u64);
    let found = service
        .read_current("live.changed", |db| Box::pin(changed.clone().all(db)))
        .await?;
    let found: Vec<L::Record> = found.into_iter().map(|m| L::record(m, service)).collect();
    let fresh = found
        .iter()
        .filter(|r| L::record_id(r) > state.last_id)
        .count() as u64;
    let mut rows: Vec<L::Record> = rows.into_iter().map(|m| L::record(m, service)).collect();
    rows.extend(found);

    let mut events = Vec::new();
    let mut seen = HashSet::with_capacity(rows.len());
    let mut expected = state.last_id + 1;
    let mark = state.mark;
    let stamped: Vec<L::Record> = match mark {
        Some(m) => rows
            .iter()
            .filter(|r| L::updated_at(r) >= m)
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    for task in rows {
        let id = L::record_id(&task);
        if !seen.insert(id) {
            // Read twice (watched, and stamped since): the first reading decided.
            continue;
        }
        if let Some(before) = state.watched.get(&id) {
            if *before == task {
                continue;
            }
            let kind = if L::finished(&task) {
                state.watched.remove(&id);
                EventKind::Finished
            } else {
                state.watched.insert(id, task.clone());
                EventKind::Updated
            };
            events.push(LogEvent { kind, task });
            continue;
        }
        if id > state.last_id {
            for gap in expected..id.min(expected.saturating_add(MAX_GAPS as i64)) {
                state.gaps.insert(gap, gap_until);
            }
            expected = id + 1;
            state.last_id = id;
        } else if state.gaps.remove(&id).is_none() {
            // A row neither watched nor new: stamped since the last poll, it changed (a
            // task finished beyond the watch limit, or edited after it finished).
            let stamped_since = mark.is_some_and(|m| L::updated_at(&task) >= m);
            if !stamped_since || state.at_mark.get(&id) == Some(&task) {
                continue;
            }
            let kind = if L::finished(&task) {
                EventKind::Finished
            } else {
                state.watched.insert(id, task.clone());
                EventKind::Updated
            };
            events.push(LogEvent { kind, task });
            continue;
        }
        if !L::finished(&task) {
            state.watched.insert(id, task.clone());
        }
        events.push(LogEvent {
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
    // The newest stamp seen, and what was read with it.
    if let Some(m) = mark {
        let newest = stamped.iter().map(L::updated_at).max().unwrap_or(m).max(m);
        if newest > m {
            state.at_mark.clear();
            state.mark = Some(newest);
        }
        for r in stamped {
            if L::updated_at(&r) == newest && state.at_mark.len() < MAX_WATCHED {
                state.at_mark.insert(L::record_id(&r), r);
            }
        }
    }
    while state.gaps.len() > MAX_GAPS {
        state.gaps.pop_first();
    }
    while state.watched.len() > MAX_WATCHED {
        state.watched.pop_first();
    }
    Ok((events, fresh == NEW_BATCH))
}
