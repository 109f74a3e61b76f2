//! What one client connection shares between its subscriptions, and the count of open
//! connections the shutdown waits for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::error::Error;

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

/// A tracked client connection (see [`Live::track_connection`]).
#[derive(Debug)]
pub struct TrackedConnection(pub(super) Arc<AtomicUsize>);

impl Drop for TrackedConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
