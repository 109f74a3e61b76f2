//! The budget of single-task lookups in one operation: a GraphQL document with many
//! `midjourneyTask` aliases, Relay `node`/`nodes`, or a federation router asking for many
//! entities, all count towards the same [`MAX_LOOKUPS`].

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Error;

/// Most single-task lookups in one operation.
pub const MAX_LOOKUPS: usize = 100;

/// The lookups one operation has made so far. Its transport attaches a fresh one to every
/// operation (a WebSocket's context lives as long as the connection, so the count cannot
/// live there).
#[derive(Debug, Default)]
pub struct Lookups(AtomicUsize);

impl Lookups {
    /// Counts `n` more lookups, or refuses them when the operation would pass
    /// [`MAX_LOOKUPS`].
    pub fn take(&self, n: usize) -> Result<(), Error> {
        let before = self.0.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > MAX_LOOKUPS {
            return Err(Error::BadFilter(format!(
                "at most {MAX_LOOKUPS} single-task lookups an operation"
            )));
        }
        Ok(())
    }
}
