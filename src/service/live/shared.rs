//! One live poller per deployment (`--redis-url`): the instances with subscribers compete
//! for a lease in Redis; the holder (the *leader*) polls the database and publishes each
//! poll's changes to a stream, and every instance, the leader included, reads the stream and
//! delivers the changes to its own subscribers with its own scoping and user check.
//!
//! - **Lease**: `<prefix>:live:<table>:lease`, the holder's random token, expiring after
//!   [`Feed::lease`] (three poll intervals, at least 2 s) unless renewed; renewed every round
//!   while some instance has subscribers (each such instance refreshes
//!   `<prefix>:live:<table>:wanted`). A leader whose deployment has no subscriber left
//!   releases it and deletes the state.
//! - **Publishing is fenced**: one script checks that the lease is still the publisher's,
//!   then appends the batch (`XADD`, with its epoch and sequence number) and stores the
//!   poller's whole state (last id, watched rows, skipped ids, stamp mark). A leader that lost
//!   its lease (paused, partitioned) publishes nothing; the next leader loads the last
//!   published state and polls from there, so a change is published once, whichever leader
//!   dies when.
//! - **Reading**: each instance keeps its place in the stream (`XREAD BLOCK` on a connection
//!   of its own) and checks each batch's sequence: a gap (the stream trimmed past it, or a new
//!   epoch after the state was lost) ends its subscriptions with `FEED_INTERRUPTED` instead
//!   of silently missing changes; clients subscribe again with `initialSnapshot`.
//! - **Redis lost**: the instance goes back to its own poller (`super::poller`); at the
//!   switch, and at the switch back, its open subscriptions end with `FEED_INTERRUPTED`.
//!
//! Database cost of the deployment: one poller's queries (`kind="live"`), plus, per instance
//! and batch with changes, the user check of its own subscribers (`kind="live_check"`).

use std::sync::LazyLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::cluster::{Cluster, ClusterError};
use crate::service::log::Log;

use super::poller::{self, PollState};
use super::{Inner, LiveLog, LogEvent};

/// Batches kept in a stream (approximately; an instance further behind sees a gap).
const STREAM_LEN: u64 = 10_000;
/// Batches read at once.
const READ_COUNT: usize = 100;
/// How long the stream outlives the last publication, and the state the last publication or
/// lease renewal.
const KEEP_MS: u64 = 3_600_000;

/// Renews the lease of ARGV[1] (or takes a free one, when ARGV[3] is 1: this instance has
/// subscribers, which it notes in KEYS[2]); a renewal keeps the state (KEYS[3]) for ARGV[4]
/// ms more, however long nothing changes; a holder whose deployment has no subscriber left
/// releases the lease and deletes the state. Answers 2 when just taken, 1 when renewed, 0
/// otherwise.
const LEASE: &str = r"
if ARGV[3] == '1' then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  if ARGV[3] == '1' or redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    redis.call('PEXPIRE', KEYS[3], ARGV[4])
    return 1
  end
  redis.call('DEL', KEYS[1], KEYS[3])
  return 0
end
if not holder and ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
";

/// Publishes while KEYS[1] (the lease) holds ARGV[1]: appends ARGV[3] (events, when not
/// empty) to the stream KEYS[3] with its epoch ARGV[4] and sequence ARGV[5] (keeping about
/// ARGV[6] batches), stores the state ARGV[2] (when not empty) in KEYS[2]; both expire
/// ARGV[7] ms after the last publication. Answers 1 when published, 0 when the lease is
/// someone else's.
const PUBLISH: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] ~= '' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'epoch', ARGV[4], 'seq', ARGV[5], 'events', ARGV[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[7])
end
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[7]) end
return 1
";

/// Gives the lease up (shutdown) when it is still ARGV[1]'s; the state stays for the next.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

static LEASE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(LEASE));
static PUBLISH_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(PUBLISH));
static RELEASE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RELEASE));

/// What the leader stores with each publication: the poller's state, and where the stream
/// stands (its epoch, a new one for each fresh start, and the last batch's sequence).
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct Stored<L: Log> {
    epoch: u64,
    seq: u64,
    state: PollState<L>,
}

/// What a read of the stream found, in order.
enum Found<L: Log> {
    /// One batch of changes.
    Batch(Vec<LogEvent<L>>),
    /// Batches this instance cannot have (trimmed away, or a fresh start of the state).
    Gap,
}

/// A log's part in the deployment's feed, for one instance.
pub(super) struct Feed<L: Log> {
    cluster: Cluster,
    /// This instance's lease token.
    token: String,
    interval: Duration,
    /// The blocking reads' own connection.
    reader: Option<ConnectionManager>,
    /// While leading: the poller's state as last published.
    leader: Option<Stored<L>>,
    /// The state's text as last stored (unchanged state is not sent again).
    stored_text: String,
    /// Where this instance stands in the stream: the last id read, and the epoch and
    /// sequence of the last batch.
    cursor: Option<String>,
    seen: Option<(u64, u64)>,
    /// Whether, since the place was taken, the deployment's poller state was seen published
    /// (see [`Feed::settle`]).
    established: bool,
}

impl<L: LiveLog> Feed<L> {
    pub(super) fn new(cluster: Cluster, interval: Duration) -> Feed<L> {
        Feed {
            cluster,
            token: format!(
                "{:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            ),
            interval,
            reader: None,
            leader: None,
            stored_text: String::new(),
            cursor: None,
            established: false,
            seen: None,
        }
    }

    /// How long a lease lasts without renewal (another instance takes over after it).
    pub(super) fn lease(&self) -> Duration {
        (self.interval * 3).max(Duration::from_secs(2))
    }

    /// Whether the deployment's feed can be used now (Redis answers).
    pub(super) fn usable(&self) -> bool {
        self.cluster.up()
    }

    /// Whether this instance polls for the deployment.
    pub(super) fn leading(&self) -> bool {
        self.leader.is_some()
    }

    /// Forgets the place in the stream and any leadership (no subscriber, or Redis lost):
    /// the next round starts afresh.
    pub(super) fn idle(&mut self) {
        if !self.cluster.up() {
            // Its connection may be broken: a new one when Redis is back.
            self.reader = None;
        }
        self.leader = None;
        self.forget_place();
    }

    /// Forgets this instance's place in the stream.
    fn forget_place(&mut self) {
        self.cursor = None;
        self.seen = None;
        self.established = false;
    }

    fn key(&self, part: &str) -> String {
        self.cluster.key(&format!("live:{}:{part}", L::TABLE))
    }

    /// Gives the lease up at shutdown, so that another instance takes over at once.
    pub(super) async fn leave(&mut self) {
        if self.leader.take().is_some() {
            let (lease, token) = (self.key("lease"), self.token.clone());
            let _ = self
                .cluster
                .call(async |conn| {
                    RELEASE_SCRIPT
                        .key(&lease)
                        .arg(&token)
                        .invoke_async::<i64>(conn)
                        .await
                })
                .await;
        }
    }

    /// One round (one poll interval): the lease, the leader's polls, and the stream read
    /// until the interval is over. A Redis failure marks the cluster down and ends the round
    /// (the caller switches to the instance's own poller).
    pub(super) async fn round(
        &mut self,
        inner: &Inner,
        listening: bool,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let started = Instant::now();
        let hub = L::hub(inner);
        if let Err(e) = self.lead(inner, listening).await {
            tracing::debug!(log = L::TABLE, error = %e, "live feed: this round stops");
        }
        hub.leading.store(self.leading(), Ordering::Relaxed);
        let end = started + self.interval;
        if !listening {
            self.forget_place();
            tokio::select! {
                () = tokio::time::sleep_until(end.into()) => {}
                _ = shutdown.changed() => {}
            }
            return;
        }
        if let Err(e) = self.settle(inner).await {
            tracing::debug!(log = L::TABLE, error = %e, "live feed: taking a place in the stream failed");
            self.reader = None;
            return;
        }
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let read = tokio::select! {
                read = self.read(left) => read,
                _ = shutdown.changed() => return,
            };
            match read {
                Ok(found) => {
                    for item in found {
                        match item {
                            Found::Gap => poller::interrupt::<L>(
                                inner,
                                "the deployment's change feed skipped batches",
                            ),
                            Found::Batch(events) => {
                                if let Err(e) = poller::deliver::<L>(inner, events).await {
                                    tracing::warn!(log = L::TABLE, error = %e, "live feed: the subscribed users could not be read");
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    // A new connection next round, from the same place in the stream.
                    tracing::debug!(log = L::TABLE, error = %e, "live feed: reading the stream failed");
                    self.reader = None;
                    return;
                }
            }
            if Instant::now() >= end {
                return;
            }
        }
    }

    /// The lease, and while it is this instance's, the polls.
    async fn lead(&mut self, inner: &Inner, listening: bool) -> Result<(), ClusterError> {
        let keys = [self.key("lease"), self.key("wanted"), self.key("state")];
        let (token, lease_ms) = (self.token.clone(), self.lease().as_millis() as u64);
        let answer: i64 = self
            .cluster
            .call(async |conn| {
                LEASE_SCRIPT
                    .key(&keys[0])
                    .key(&keys[1])
                    .key(&keys[2])
                    .arg(&token)
                    .arg(lease_ms)
                    .arg(if listening { "1" } else { "0" })
                    .arg(KEEP_MS)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        if answer == 0 {
            if self.leader.take().is_some() {
                tracing::info!(
                    log = L::TABLE,
                    "live feed: no longer polling for the deployment"
                );
            }
            return Ok(());
        }
        if answer == 2 || self.leader.is_none() {
            self.leader = None;
            let stored: Option<String> = self
                .cluster
                .call(async |conn| conn.get(&keys[2]).await)
                .await?;
            let resumed = stored.and_then(|text| serde_json::from_str::<Stored<L>>(&text).ok());
            let started = match resumed {
                Some(stored) => {
                    tracing::info!(
                        log = L::TABLE,
                        seq = stored.seq,
                        "live feed: polling for the deployment, from the last published state"
                    );
                    stored
                }
                None => match poller::baseline::<L>(&inner.service).await {
                    Ok(state) => {
                        tracing::info!(
                            log = L::TABLE,
                            "live feed: polling for the deployment, from a fresh start"
                        );
                        Stored {
                            epoch: rand::random::<u64>(),
                            seq: 0,
                            state,
                        }
                    }
                    Err(e) => {
                        tracing::warn!(log = L::TABLE, error = %e, "live feed: the first poll failed; trying again next round");
                        return Ok(());
                    }
                },
            };
            self.stored_text.clear();
            self.leader = Some(started);
            self.publish(Vec::new()).await?;
        }
        // Polls until no more new rows wait (a failed publication ends leadership: the
        // state in memory may be ahead of the published one, so it is loaded again).
        loop {
            let Some(leader) = self.leader.as_mut() else {
                return Ok(());
            };
            inner.polls.fetch_add(1, Ordering::Relaxed);
            let (events, more) = match poller::poll::<L>(&inner.service, &mut leader.state).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(log = L::TABLE, error = %e, "live feed: a poll failed; retrying next round");
                    return Ok(());
                }
            };
            self.publish(events).await?;
            if !more {
                return Ok(());
            }
        }
    }

    /// Publishes `events` and the state, fenced by the lease; a lost lease, or Redis
    /// failing, ends leadership (the next round loads the published state again).
    async fn publish(&mut self, events: Vec<LogEvent<L>>) -> Result<(), ClusterError> {
        let result = self.try_publish(events).await;
        if result.is_err() {
            self.leader = None;
        }
        result
    }

    async fn try_publish(&mut self, events: Vec<LogEvent<L>>) -> Result<(), ClusterError> {
        let Some(leader) = self.leader.as_mut() else {
            return Ok(());
        };
        if !events.is_empty() {
            leader.seq += 1;
        }
        let batch = if events.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&events).unwrap_or_default()
        };
        let text = serde_json::to_string(&*leader).unwrap_or_default();
        let state = if text == self.stored_text {
            String::new()
        } else {
            text.clone()
        };
        if batch.is_empty() && state.is_empty() {
            return Ok(());
        }
        let (epoch, seq) = (leader.epoch, leader.seq);
        let keys = [self.key("lease"), self.key("state"), self.key("events")];
        let token = self.token.clone();
        let published: i64 = self
            .cluster
            .call(async |conn| {
                PUBLISH_SCRIPT
                    .key(&keys[0])
                    .key(&keys[1])
                    .key(&keys[2])
                    .arg(&token)
                    .arg(&state)
                    .arg(&batch)
                    .arg(epoch)
                    .arg(seq)
                    .arg(STREAM_LEN)
                    .arg(KEEP_MS)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        if published == 1 {
            self.stored_text = text;
        } else {
            tracing::info!(
                log = L::TABLE,
                "live feed: the lease passed to another instance before this poll was published; it polls again from the last published state"
            );
            self.leader = None;
        }
        Ok(())
    }

    /// Takes this instance's place in the stream, after the newest batch, when it has none;
    /// then, until it has, looks whether the deployment's poller state is published. Once it
    /// is, every change made from now on will be published after this place (the state was
    /// read before now, and each poll compares with the last), so the hub is marked ready:
    /// a subscription's initial state read after this covers what came before.
    async fn settle(&mut self, inner: &Inner) -> Result<(), ClusterError> {
        let stream = self.key("events");
        if self.cursor.is_none() {
            self.established = false;
            let newest: StreamRangeReply = self
                .cluster
                .call(async |c| c.xrevrange_count(&stream, "+", "-", 1).await)
                .await?;
            match newest.ids.first() {
                Some(last) => {
                    self.cursor = Some(last.id.clone());
                    self.seen = Some((
                        last.get::<u64>("epoch").unwrap_or(0),
                        last.get::<u64>("seq").unwrap_or(0),
                    ));
                }
                None => self.cursor = Some("0-0".to_owned()),
            }
        }
        if !self.established {
            let state = self.key("state");
            self.established = self
                .cluster
                .call(async |c| c.exists::<_, bool>(&state).await)
                .await?;
        }
        if self.established {
            L::hub(inner).set_ready(true);
        }
        Ok(())
    }

    /// The batches published after this instance's place, waiting up to `within` for one.
    async fn read(&mut self, within: Duration) -> Result<Vec<Found<L>>, ClusterError> {
        if self.reader.is_none() {
            self.reader = Some(self.cluster.dedicated()?);
        }
        let (Some(mut conn), Some(cursor)) = (self.reader.clone(), self.cursor.clone()) else {
            return Ok(Vec::new());
        };
        let stream = self.key("events");
        let block = within.as_millis() as usize;
        let options = if block == 0 {
            StreamReadOptions::default().count(READ_COUNT)
        } else {
            StreamReadOptions::default().count(READ_COUNT).block(block)
        };
        let reply: Option<StreamReadReply> = self
            .cluster
            .call_blocking(&mut conn, within, async |c| {
                c.xread_options(&[&stream], &[&cursor], &options).await
            })
            .await?;
        let mut batches = Vec::new();
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            self.cursor = Some(entry.id.clone());
            let epoch = entry.get::<u64>("epoch").unwrap_or(0);
            let seq = entry.get::<u64>("seq").unwrap_or(0);
            let text = entry.get::<String>("events").unwrap_or_default();
            let continues = match self.seen {
                None => true,
                Some((e, s)) => e == epoch && seq == s + 1,
            };
            self.seen = Some((epoch, seq));
            if !continues {
                batches.push(Found::Gap);
            }
            match serde_json::from_str::<Vec<LogEvent<L>>>(&text) {
                Ok(events) => batches.push(Found::Batch(events)),
                Err(e) => {
                    tracing::warn!(log = L::TABLE, error = %e, "live feed: a batch could not be read");
                    batches.push(Found::Gap);
                }
            }
        }
        Ok(batches)
    }
}

impl<L: Log> std::fmt::Debug for Feed<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("leading", &self.leader.is_some())
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}
