//! One open subscription: what it keeps of each poll's changes, and how it ends.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use crate::error::Error;
use crate::service::Viewer;
use crate::service::listing::{Scope, may_see};
use crate::service::log::LogFilter;

use super::{Batch, LiveLog, LogEvent, Registration};

/// One open subscription to log `L`: its events, in the order the poller saw them.
#[derive(Debug)]
pub struct Subscription<L: LiveLog> {
    pub(super) viewer: Viewer,
    pub(super) filter: L::Filter,
    pub(super) keys: Option<HashSet<String>>,
    /// The listed keys not seen finished yet.
    pub(super) remaining: Option<HashSet<String>>,
    pub(super) pending: std::collections::VecDeque<LogEvent<L>>,
    pub(super) rx: broadcast::Receiver<Arc<Batch<L>>>,
    pub(super) shutdown: watch::Receiver<bool>,
    pub(super) ended: bool,
    pub(super) _guard: Registration<L>,
}

impl<L: LiveLog> Subscription<L> {
    /// The next event; `None` when the subscription is complete (every listed task
    /// finished, or the server is shutting down); an error ends it (the user was banned or
    /// deleted, the subscriber fell [`BUFFER`](super::BUFFER) polls behind, or the source of
    /// changes was interrupted).
    pub async fn next(&mut self) -> Option<Result<LogEvent<L>, Error>> {
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
    fn take(&mut self, batch: &Batch<L>) -> Result<(), Error> {
        if batch.interrupted {
            return Err(Error::FeedInterrupted);
        }
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
            if !may_see(&self.viewer, Scope::Visible, L::owner(task)) {
                continue;
            }
            if let Some(ids) = &self.keys {
                let key = L::key(task);
                if !ids.contains(key) {
                    continue;
                }
                if L::finished(task)
                    && let Some(left) = &mut self.remaining
                {
                    left.remove(key);
                }
            }
            if self.filter.matches(task) {
                self.pending.push_back(event.clone());
            }
        }
        Ok(())
    }
}
