//! The registry of this node's logged-in users: user → connection queue.
//!
//! One `std::sync::Mutex` guards the map; it is held only for lookups and
//! `try_send`s (which never wait), never across an `.await`.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use chat_net::{Outbound, SendError};
use chat_proto::UserId;

struct Entry {
    conn: u64,
    out: Outbound,
    /// While a login is in progress: frames that arrived before its ack, in order.
    pending: Option<Vec<Bytes>>,
}

/// What happened to a frame handed to [`Sessions::deliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Queued for the user's connection on this node.
    Yes,
    /// The user has no session on this node (or it just failed): route it elsewhere.
    No,
}

/// This node's sessions.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<UserId, Entry>>,
    /// Frames a login may hold back before its ack; beyond this the client counts as not reading.
    pending_limit: usize,
}

impl Sessions {
    /// An empty registry; `pending_limit` bounds what a login in progress may hold back.
    pub fn new(pending_limit: usize) -> Sessions {
        Sessions { map: Mutex::default(), pending_limit }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Entry>> {
        // A poisoned lock only means a panic elsewhere; the map itself is still consistent.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `user` on connection `conn` unless it has a session here already.
    /// Frames for it are held back until [`Sessions::activate`].
    pub fn try_insert(&self, user: UserId, conn: u64, out: Outbound) -> bool {
        let mut map = self.lock();
        if map.contains_key(&user) {
            return false;
        }
        map.insert(user, Entry { conn, out, pending: Some(Vec::new()) });
        true
    }

    /// The login's ack is queued: release what was held back, in order.
    pub fn activate(&self, user: UserId, conn: u64) {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(&user).filter(|e| e.conn == conn) else { return };
        for frame in entry.pending.take().unwrap_or_default() {
            if entry.out.try_send(frame).is_err() {
                entry.out.close();
                break;
            }
        }
    }

    /// Removes `user` if the session belongs to connection `conn`; returns whether it did.
    /// Frames held back for a login that never completed are returned for offline storage.
    pub fn remove(&self, user: UserId, conn: u64) -> Option<Vec<Bytes>> {
        let mut map = self.lock();
        if map.get(&user).is_some_and(|e| e.conn == conn) {
            return map.remove(&user).map(|e| e.pending.unwrap_or_default());
        }
        None
    }

    /// Queues a frame for `user` if the user is here. A client whose queue is full
    /// is not reading: it is disconnected and the frame is reported as not delivered.
    pub fn deliver(&self, user: UserId, frame: Bytes) -> Delivered {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(&user) else { return Delivered::No };
        if let Some(pending) = &mut entry.pending {
            if pending.len() < self.pending_limit {
                pending.push(frame);
                return Delivered::Yes;
            }
            entry.out.close();
            return Delivered::No;
        }
        match entry.out.try_send(frame) {
            Ok(()) => Delivered::Yes,
            Err(SendError::Full) => {
                tracing::warn!(user = %user, "outbound queue full; disconnecting a client that does not read");
                entry.out.close();
                Delivered::No
            }
            Err(SendError::Closed) => Delivered::No,
        }
    }

    /// Whether `user` has a session here.
    pub fn contains(&self, user: UserId) -> bool {
        self.lock().contains_key(&user)
    }

    /// Every user with a session here.
    pub fn users(&self) -> Vec<UserId> {
        self.lock().keys().copied().collect()
    }

    /// How many sessions there are.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
