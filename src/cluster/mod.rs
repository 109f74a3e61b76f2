//! What the instances of one deployment share, in Redis (`--redis-url`): the rate budgets
//! ([`rate`]) and the live poller's lease, state and change stream
//! (`crate::service::live`). Without a Redis URL there is no cluster and every instance keeps its
//! own state, as a single instance always has.
//!
//! Redis is a help, not a dependency: every call has a short deadline
//! (`--redis-timeout-ms`); the first that fails or is late marks the cluster *down*, and
//! from then on the instance uses its local state (rate limits per instance) and `/healthz`
//! says `degraded`, without trying Redis on requests. A monitor pings Redis every
//! [`PROBE_INTERVAL`] and marks it *up* again when it answers: shared mode resumes by
//! itself. The connection manager (redis-rs) reconnects underneath.
//!
//! Every key starts with `--redis-prefix` (default `mj-tasks`), so deployments (and tests)
//! can share one Redis.

pub mod rate;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Time between pings of the monitor (also how soon a recovered Redis is used again).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Why a call to Redis did not answer (logged, never shown to clients).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("redis did not answer within {0} ms")]
    Timeout(u64),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis is marked down; the instance serves on its own until a ping answers")]
    Down,
}

/// The shared state's connection, with whether it is usable now.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    manager: ConnectionManager,
    prefix: String,
    timeout: Duration,
    up: AtomicBool,
    /// Times the cluster went down (`/metrics`).
    outages: AtomicU64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("prefix", &self.inner.prefix)
            .field("up", &self.up())
            .finish_non_exhaustive()
    }
}

/// Why the cluster could not be set up (a URL that is not one); shown at startup.
#[derive(Debug, thiserror::Error)]
#[error("--redis-url: {0}")]
pub struct BadRedisUrl(String);

impl Cluster {
    /// A cluster on `url` (redis:// or rediss://), not connected yet: [`Cluster::probe`]
    /// connects, and until it has, the instance serves on its own.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Cluster, BadRedisUrl> {
        let client = redis::Client::open(url).map_err(|e| BadRedisUrl(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(100))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(PROBE_INTERVAL);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| BadRedisUrl(e.to_string()))?;
        Ok(Cluster {
            inner: Arc::new(Inner {
                client,
                manager,
                prefix: prefix.to_owned(),
                timeout,
                up: AtomicBool::new(false),
                outages: AtomicU64::new(0),
            }),
        })
    }

    /// Whether shared state is in use now.
    pub fn up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    /// Times Redis was lost since the start.
    pub fn outages(&self) -> u64 {
        self.inner.outages.load(Ordering::Relaxed)
    }

    /// `prefix:part`.
    pub fn key(&self, part: &str) -> String {
        format!("{}:{part}", self.inner.prefix)
    }

    /// Runs one command (or script) within the deadline; a failure marks the cluster down.
    pub async fn call<T, F>(&self, run: F) -> Result<T, ClusterError>
    where
        F: AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    {
        if !self.up() {
            return Err(ClusterError::Down);
        }
        let result = self.attempt(run).await;
        if let Err(e) = &result {
            self.mark_down(e);
        }
        result
    }

    async fn attempt<T, F>(&self, run: F) -> Result<T, ClusterError>
    where
        F: AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    {
        let mut conn = self.inner.manager.clone();
        Self::within(self.inner.timeout, run(&mut conn)).await
    }

    async fn within<T>(
        limit: Duration,
        run: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ClusterError> {
        match tokio::time::timeout(limit, run).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(ClusterError::Timeout(limit.as_millis() as u64)),
        }
    }

    /// A connection of its own, for a command that blocks (a blocked read on the shared
    /// connection would hold up every other command); not connected until first used.
    pub fn dedicated(&self) -> Result<ConnectionManager, ClusterError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.inner.timeout.max(Duration::from_millis(100))))
            .set_number_of_retries(1)
            .set_max_delay(PROBE_INTERVAL);
        Ok(ConnectionManager::new_lazy_with_config(
            self.inner.client.clone(),
            config,
        )?)
    }

    /// [`Cluster::call`] on a dedicated connection, for a command that may block up to
    /// `blocks` (the deadline is that plus the usual one). Its failure does not mark Redis
    /// down (a process paused past the deadline cannot tell that from a slow Redis): the
    /// caller drops the connection, and its next ordinary call decides.
    pub async fn call_blocking<T, F>(
        &self,
        conn: &mut ConnectionManager,
        blocks: Duration,
        run: F,
    ) -> Result<T, ClusterError>
    where
        F: AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    {
        if !self.up() {
            return Err(ClusterError::Down);
        }
        Self::within(blocks + self.inner.timeout, run(conn)).await
    }

    fn mark_down(&self, error: &ClusterError) {
        if self.inner.up.swap(false, Ordering::AcqRel) {
            self.inner.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, "redis lost: serving with this instance's own limits and live poller until it answers again");
        }
    }

    /// Pings Redis now; marks the cluster up or down by the answer.
    pub async fn probe(&self) -> bool {
        let answer = self
            .attempt(async |conn| redis::cmd("PING").query_async::<String>(conn).await)
            .await;
        match answer {
            Ok(_) => {
                if !self.inner.up.swap(true, Ordering::AcqRel) {
                    tracing::info!("redis answers: rate limits are shared by the deployment");
                }
                true
            }
            Err(e) => {
                self.mark_down(&e);
                false
            }
        }
    }

    /// Probes every [`PROBE_INTERVAL`] until `stop` completes.
    pub async fn monitor(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = tokio::time::sleep(PROBE_INTERVAL) => {}
                () = &mut stop => return,
            }
            self.probe().await;
        }
    }
}
