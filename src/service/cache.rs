//! The two short-lived caches that keep repeated work off the database, both bounded:
//!
//! - **tokens**: the user a token belongs to (or that it belongs to nobody) is kept for
//!   `--auth-cache-ms` (default 1 s), so a ban, a deletion or a new token takes effect within
//!   that time; `0` looks the user up on every request. A `moka` cache: bounded, with a time
//!   to live, and a frequency-based admission that keeps a flood of unknown tokens from
//!   evicting the tokens in use;
//! - **counts**: identical counts asked while one is running share its answer when it started
//!   after the asking request began (one started earlier could miss a row the request's page
//!   shows), and a finished count is reused for `--count-freshness-ms` (default 0: never; a
//!   total is then exact as of a moment during the request). This one stays ours: `moka`'s
//!   loaders coalesce every concurrent miss of a key, while a count may only be joined by a
//!   request that began before it started, and a failure must be shared by those who joined
//!   it but never reused, which its loaders do not express.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::service::users::UserRecord;

/// Most tokens remembered (hits and misses alike).
const MAX_TOKENS: u64 = 10_000;
/// Most counts remembered at once.
const MAX_COUNTS: usize = 10_000;

/// Recently looked-up tokens (none kept with a zero time to live). Each answer carries the
/// moment it was read, checked on every use: the cache's own expiry runs on a coarse clock
/// and could let an answer live a little past `--auth-cache-ms`.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    ttl: Duration,
    entries: Option<moka::sync::Cache<String, (Instant, Option<UserRecord>)>>,
}

impl TokenCache {
    pub(crate) fn new(ttl: Duration) -> TokenCache {
        TokenCache {
            ttl,
            entries: (!ttl.is_zero()).then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(MAX_TOKENS)
                    .time_to_live(ttl)
                    .build()
            }),
        }
    }

    /// The remembered answer for `token`, if fresh.
    pub(crate) fn get(&self, token: &str) -> Option<Option<UserRecord>> {
        let (at, user) = self.entries.as_ref()?.get(token)?;
        (at.elapsed() < self.ttl).then_some(user)
    }

    pub(crate) fn put(&self, token: &str, user: Option<UserRecord>) {
        if let Some(entries) = &self.entries {
            entries.insert(token.to_owned(), (Instant::now(), user));
        }
    }
}

/// One count, running or done. Its outcome, failure included, is shared by everyone who
/// joined it: when the database is down, the waiters fail with the count they joined instead
/// of each trying again in turn.
#[derive(Debug)]
struct CountSlot {
    started: Instant,
    value: tokio::sync::OnceCell<Result<u64, Error>>,
    done: OnceLock<Instant>,
}

/// Counts in flight, and recent ones within the freshness window.
#[derive(Debug, Default)]
pub(crate) struct CountCache {
    freshness: Duration,
    slots: Mutex<HashMap<String, Arc<CountSlot>>>,
}

impl CountCache {
    pub(crate) fn new(freshness: Duration) -> CountCache {
        CountCache {
            freshness,
            slots: Mutex::default(),
        }
    }

    /// Whether a request that began at `since` would join the count `key` names now (one
    /// running that started since, or one done within the window) rather than run it.
    pub(crate) fn usable(&self, key: &str, since: Instant) -> bool {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.get(key).is_some_and(|s| self.joinable(s, since))
    }

    fn joinable(&self, slot: &CountSlot, since: Instant) -> bool {
        match slot.done.get() {
            None => slot.started >= since,
            Some(at) => at.elapsed() < self.freshness,
        }
    }

    /// The count `key` names for a request that began at `since`: joins one running that
    /// started since, reuses one done within the window, or runs `count`.
    pub(crate) async fn get_or_run<F>(
        &self,
        key: String,
        since: Instant,
        count: F,
    ) -> Result<u64, Error>
    where
        F: Future<Output = Result<u64, Error>>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let usable = slots.get(&key).filter(|s| self.joinable(s, since));
            match usable {
                Some(s) => s.clone(),
                None => {
                    if slots.len() >= MAX_COUNTS {
                        slots.retain(|_, s| s.done.get().is_none());
                    }
                    let s = Arc::new(CountSlot {
                        started: Instant::now(),
                        value: tokio::sync::OnceCell::new(),
                        done: OnceLock::new(),
                    });
                    slots.insert(key.clone(), s.clone());
                    s
                }
            }
        };
        let value = slot.value.get_or_init(|| count).await.clone();
        if slot.done.set(Instant::now()).is_ok() && (self.freshness.is_zero() || value.is_err()) {
            // Nobody may reuse it (a failure never): forget it (unless a newer one took its
            // place).
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            if slots.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                slots.remove(&key);
            }
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn counts_asked_while_one_runs_share_it_and_later_ones_run_again() {
        let cache = Arc::new(CountCache::new(Duration::ZERO));
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        // The requests all began before the first count started.
        let since = Instant::now();
        let ask = |n: u64| {
            let (cache, runs, gate) = (cache.clone(), runs.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .get_or_run("k".into(), since, async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        Ok(n)
                    })
                    .await
            })
        };
        let first = ask(7);
        tokio::task::yield_now().await;
        let others: Vec<_> = (0..5).map(|_| ask(99)).collect();
        tokio::task::yield_now().await;
        gate.notify_one();
        assert_eq!(first.await.ok().and_then(Result::ok), Some(7));
        for o in others {
            assert_eq!(
                o.await.ok().and_then(Result::ok),
                Some(7),
                "shared the running count"
            );
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Done, with no freshness window: the next one counts again.
        assert!(!cache.usable("k", since));
        let again = cache
            .get_or_run("k".into(), Instant::now(), async { Ok(8) })
            .await;
        assert_eq!(again.ok(), Some(8));
    }

    #[tokio::test]
    async fn usable_says_whether_a_request_would_join_rather_than_run() {
        let cache = Arc::new(CountCache::new(Duration::from_secs(60)));
        let gate = Arc::new(tokio::sync::Notify::new());
        let before = Instant::now();
        assert!(!cache.usable("k", before), "nothing runs yet");
        let running = {
            let (cache, gate) = (cache.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .get_or_run("k".into(), Instant::now(), async move {
                        gate.notified().await;
                        Ok(3)
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        assert!(cache.usable("k", before), "running, started since");
        assert!(!cache.usable("other", before), "another count");
        let later = Instant::now();
        assert!(
            !cache.usable("k", later),
            "started before the request began"
        );
        gate.notify_one();
        assert_eq!(running.await.ok().and_then(Result::ok), Some(3));
        // Done within the freshness window: reused whenever the request began.
        assert!(cache.usable("k", Instant::now()));
    }

    /// A failed count is the answer of everyone who joined it (found with the database
    /// restarted under load: each waiter retried in turn, a second more for each).
    #[tokio::test]
    async fn a_failed_count_fails_everyone_who_joined_it_and_the_next_one_counts_again() {
        let cache = Arc::new(CountCache::new(Duration::from_secs(60)));
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let since = Instant::now();
        let ask = || {
            let (cache, runs, gate) = (cache.clone(), runs.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .get_or_run("k".into(), since, async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        Err::<u64, _>(Error::Unavailable)
                    })
                    .await
            })
        };
        let asked: Vec<_> = (0..6).map(|_| ask()).collect();
        tokio::task::yield_now().await;
        gate.notify_one();
        for a in asked {
            assert!(matches!(a.await.ok(), Some(Err(Error::Unavailable))));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "one count for all six");
        // A failure is never reused, even within the freshness window.
        let again = cache
            .get_or_run("k".into(), Instant::now(), async { Ok(8) })
            .await;
        assert_eq!(again.ok(), Some(8));
    }

    /// Found by a hostile run: a request that joined a count started before it began got
    /// a total that missed a row its own page showed.
    #[tokio::test]
    async fn a_count_started_before_the_request_began_is_not_joined() {
        let cache = Arc::new(CountCache::new(Duration::ZERO));
        let gate = Arc::new(tokio::sync::Notify::new());
        let (c, g) = (cache.clone(), gate.clone());
        let early = tokio::spawn(async move {
            c.get_or_run("k".into(), Instant::now(), async move {
                g.notified().await;
                Ok(1)
            })
            .await
        });
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
        // A request that began after that count started (a row was inserted meanwhile).
        let later = cache
            .get_or_run("k".into(), Instant::now(), async { Ok(2) })
            .await;
        assert_eq!(later.ok(), Some(2), "counted afresh, not the earlier count");
        gate.notify_one();
        assert_eq!(early.await.ok().and_then(Result::ok), Some(1));
    }

    #[test]
    fn the_token_cache_forgets_after_its_time_and_stays_bounded() {
        let cache = TokenCache::new(Duration::from_millis(30));
        cache.put("t", None);
        assert_eq!(cache.get("t"), Some(None));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get("t"), None);
        for i in 0..MAX_TOKENS + 500 {
            cache.put(&i.to_string(), None);
        }
        let entries = cache.entries.as_ref().map(|c| {
            c.run_pending_tasks();
            c.entry_count()
        });
        assert!(entries.is_some_and(|n| n <= MAX_TOKENS), "{entries:?}");
        assert_eq!(TokenCache::new(Duration::ZERO).get("t"), None);
    }

    #[test]
    fn a_flood_of_unknown_tokens_does_not_evict_known_users() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let alice = UserRecord {
            id: 2,
            username: "alice".into(),
            role: 1,
            status: 1,
        };
        cache.put("alice-token", Some(alice.clone()));
        // A token in use is asked for again and again.
        for _ in 0..20 {
            assert!(cache.get("alice-token").is_some());
        }
        for i in 0..MAX_TOKENS * 2 {
            cache.put(&format!("random-{i}"), None);
            if i % 1000 == 0 {
                assert!(
                    cache.get("alice-token").is_some(),
                    "after {i} unknown tokens"
                );
            }
        }
        if let Some(c) = &cache.entries {
            c.run_pending_tasks();
        }
        assert_eq!(cache.get("alice-token"), Some(Some(alice)));
    }
}
