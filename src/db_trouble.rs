//! What a connection pool knows of trouble on the way to its database.
//!
//! Pooled connections are handed out without a ping while they are hot (a round trip per
//! statement otherwise; see `db.rs`). That is right while the database answers, and wrong
//! when the network to it fails: a statement sent into a partition waits on TCP's
//! retransmissions, and so does the ping sqlx runs on every connection given back to the
//! pool after its read was cut off (request timeout, client gone), holding the pool's
//! places until the kernel gives up or the network returns — then each waits for its next
//! retransmission, seconds later.
//!
//! So a read that is cut off after running [`CUT_OFF_AFTER`] or longer, or that finds its
//! database unavailable or its connection broken, [`Trouble::note`]s it, and for
//! [`WINDOW`] after that the pool's hooks check connections as they did before: every
//! connection handed out is pinged first (within the acquire timeout: one that does not
//! answer is dropped), and every connection given back must answer a ping within
//! [`RELEASE_PING`] or is closed at once, giving its place to a new connection.
//!
//! A read cut off sooner is not noted: a client that hangs up early (anyone can, at
//! `/healthz` or with bogus credentials, whose token lookup is a read) must not be able to
//! keep every checkout pinged. A read held by a failing network is cut off by the request or
//! statement timeout, well past [`CUT_OFF_AFTER`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the pool checks every connection after a noted trouble.
pub const WINDOW: Duration = Duration::from_secs(10);

/// How long a connection given back to the pool in a troubled window may take to answer its
/// ping before it is closed.
pub const RELEASE_PING: Duration = Duration::from_millis(500);

/// How long a read must have run before its being cut off counts as trouble.
pub const CUT_OFF_AFTER: Duration = Duration::from_secs(1);

/// The process's reference instant for [`Trouble`]'s deadline.
static STARTED: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// Shared by a pool's hooks and the reads on that pool (clones share it).
#[derive(Clone, Debug, Default)]
pub struct Trouble {
    /// Until when connections are checked, in milliseconds since [`STARTED`] (0: never).
    until_ms: Arc<AtomicU64>,
}

impl Trouble {
    /// Notes trouble now: connections are checked for [`WINDOW`] from now.
    pub fn note(&self) {
        let until = (STARTED.elapsed() + WINDOW).as_millis() as u64;
        self.until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// Whether connections are being checked.
    pub fn suspected(&self) -> bool {
        let until = self.until_ms.load(Ordering::Relaxed);
        until > 0 && (STARTED.elapsed().as_millis() as u64) < until
    }

    /// A guard that notes trouble when dropped before [`Watch::finished`] at least
    /// [`CUT_OFF_AFTER`] after it was made: the read it watches was cut off while it may
    /// have held a connection.
    pub fn watch(&self) -> Watch<'_> {
        Watch {
            trouble: self,
            finished: false,
            started: Instant::now(),
        }
    }
}

/// See [`Trouble::watch`].
#[must_use]
pub struct Watch<'a> {
    trouble: &'a Trouble,
    finished: bool,
    started: Instant,
}

impl Watch<'_> {
    /// The watched read ended (with whatever result): nothing to note.
    pub fn finished(mut self) {
        self.finished = true;
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if !self.finished && self.started.elapsed() >= CUT_OFF_AFTER {
            self.trouble.note();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_cut_off_late_is_noted_and_a_finished_or_early_one_is_not() {
        let trouble = Trouble::default();
        assert!(!trouble.suspected());
        trouble.watch().finished();
        assert!(!trouble.suspected());
        // A client hanging up at once is not trouble.
        drop(trouble.watch());
        assert!(!trouble.suspected());
        // A read held past CUT_OFF_AFTER and cut off is.
        let mut late = trouble.watch();
        late.started -= CUT_OFF_AFTER;
        drop(late);
        assert!(trouble.suspected());
        // Clones share what was noted.
        assert!(trouble.clone().suspected());
        assert!(!Trouble::default().suspected());
    }
}
