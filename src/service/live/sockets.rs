//! Open WebSockets per user: a user's sockets are capped (each holds a file descriptor and
//! buffers for as long as it is open, whatever it subscribes to).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Error;

/// Most WebSockets one user may hold open on an instance (one per browser tab is plenty).
pub const MAX_SOCKETS_PER_USER: usize = 16;

/// Open sockets per user id.
#[derive(Debug, Default)]
pub(super) struct Sockets(Mutex<HashMap<i64, usize>>);

impl Sockets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, usize>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One counted socket of a user, released when dropped.
#[derive(Debug)]
pub struct SocketSlot {
    sockets: Arc<Sockets>,
    user: i64,
}

/// Counts one more socket of `user`, within [`MAX_SOCKETS_PER_USER`].
pub(super) fn open(sockets: &Arc<Sockets>, user: i64) -> Result<SocketSlot, Error> {
    let mut open = sockets.lock();
    let n = open.entry(user).or_insert(0);
    if *n >= MAX_SOCKETS_PER_USER {
        return Err(Error::TooManySubscriptions(format!(
            "a user holds at most {MAX_SOCKETS_PER_USER} WebSockets open at once"
        )));
    }
    *n += 1;
    Ok(SocketSlot {
        sockets: sockets.clone(),
        user,
    })
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self.sockets.lock();
        if let Some(n) = open.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}
