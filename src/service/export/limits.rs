//! How many exports may run at once (per user, per instance), how many rows one may hold,
//! and the progress operators see in `/metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Error;

/// Default most exports running at once for one user.
pub const DEFAULT_PER_USER: usize = 2;
/// Default most exports running at once on this instance.
pub const DEFAULT_PER_INSTANCE: usize = 8;
/// Default most rows in one export.
pub const DEFAULT_MAX_ROWS: u64 = 1_000_000;

/// The limits and the running exports.
#[derive(Debug)]
pub struct ExportLimits {
    pub per_user: usize,
    pub per_instance: usize,
    pub max_rows: u64,
    running: Mutex<HashMap<i64, usize>>,
    started: AtomicU64,
    rows: AtomicU64,
}

impl Default for ExportLimits {
    fn default() -> Self {
        ExportLimits::new(DEFAULT_PER_USER, DEFAULT_PER_INSTANCE, DEFAULT_MAX_ROWS)
    }
}

/// A reading of the exports' progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportProgress {
    /// Exports running now.
    pub running: u64,
    /// Exports started since the instance started.
    pub started: u64,
    /// Rows written by all exports so far (running ones included).
    pub rows: u64,
}

/// A running export's place: given back when dropped (finished, failed or disconnected).
#[derive(Debug)]
pub struct Slot {
    limits: Arc<ExportLimits>,
    user: i64,
}

impl ExportLimits {
    pub fn new(per_user: usize, per_instance: usize, max_rows: u64) -> ExportLimits {
        ExportLimits {
            per_user,
            per_instance,
            max_rows,
            running: Mutex::default(),
            started: AtomicU64::new(0),
            rows: AtomicU64::new(0),
        }
    }

    /// A place for one more export of `user`, or why there is none.
    pub fn acquire(self: &Arc<Self>, user: i64) -> Result<Slot, Error> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let total: usize = running.values().sum();
        if total >= self.per_instance {
            return Err(Error::TooManyExports(format!(
                "this instance runs {} exports at once: try again shortly",
                self.per_instance
            )));
        }
        let mine = running.entry(user).or_default();
        if *mine >= self.per_user {
            return Err(Error::TooManyExports(format!(
                "at most {} exports at once per user: wait for one to finish",
                self.per_user
            )));
        }
        *mine += 1;
        self.started.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            limits: Arc::clone(self),
            user,
        })
    }

    /// Counts `n` more rows written.
    pub fn wrote(&self, n: u64) {
        self.rows.fetch_add(n, Ordering::Relaxed);
    }

    /// The progress so far.
    pub fn progress(&self) -> ExportProgress {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        ExportProgress {
            running: running.values().sum::<usize>() as u64,
            started: self.started.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self
            .limits
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = running.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.user);
            }
        }
    }
}
