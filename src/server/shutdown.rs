//! The phases of a graceful shutdown, shared by the accept loop, every connection, the
//! request guard and `/healthz`.

use std::sync::Arc;

use tokio::sync::watch;

/// Where the instance is in its life, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Accepting and serving.
    Serving,
    /// Told to stop: `/healthz` answers 503 `draining` so load balancers stop sending, while
    /// new connections and requests are still served.
    Draining,
    /// No longer accepting: what was already accepted (or queued by the operating system) is
    /// served, then each connection closes.
    Closing,
    /// The grace period is over: requests still running are answered with 503.
    Deadline,
}

/// A handle on the instance's phase (cheap to clone).
#[derive(Clone, Debug)]
pub struct Shutdown {
    phase: Arc<watch::Sender<Phase>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            phase: Arc::new(watch::Sender::new(Phase::Serving)),
        }
    }
}

impl Shutdown {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Moves on to `phase` (never back).
    pub fn enter(&self, phase: Phase) {
        self.phase.send_if_modified(|p| {
            let later = phase > *p;
            if later {
                *p = phase;
            }
            later
        });
    }

    /// Completes once the instance has reached `phase`.
    pub async fn reached(&self, phase: Phase) {
        let mut rx = self.phase.subscribe();
        // The sender lives as long as `self`, so this only returns once the phase is reached.
        let _ = rx.wait_for(|p| *p >= phase).await;
    }
}
