//! One async lock per user with sessions being opened or closed on this node, so that a
//! login's "first session here: subscribe" and a logout's "last session here: unsubscribe
//! and release" never interleave for one user (several sessions per user may now start and
//! end on one node at once). Entries live only while someone holds or waits for them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use chat_proto::UserId;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The per-user locks of this node.
#[derive(Default)]
pub(crate) struct Gates {
    map: Mutex<HashMap<UserId, Weak<AsyncMutex<()>>>>,
}

impl Gates {
    /// Waits for `user`'s lock; held until the guard is dropped.
    pub(crate) async fn enter(&self, user: UserId) -> OwnedMutexGuard<()> {
        let gate = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&user).and_then(Weak::upgrade) {
                Some(gate) => gate,
                None => {
                    if map.len() >= 1024 {
                        // Forget the locks nobody holds (bounded memory, no timer).
                        map.retain(|_, gate| gate.strong_count() > 0);
                    }
                    let gate = Arc::new(AsyncMutex::new(()));
                    map.insert(user, Arc::downgrade(&gate));
                    gate
                }
            }
        };
        gate.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_per_user_and_users_do_not_wait_for_each_other() {
        let gates = Gates::default();
        let held = gates.enter(UserId(1)).await;
        let other = tokio::time::timeout(std::time::Duration::from_millis(100), gates.enter(UserId(2))).await;
        assert!(other.is_ok(), "another user's lock is free");
        let same = tokio::time::timeout(std::time::Duration::from_millis(100), gates.enter(UserId(1))).await;
        assert!(same.is_err(), "the same user's lock waits");
        drop(held);
        let again = tokio::time::timeout(std::time::Duration::from_millis(100), gates.enter(UserId(1))).await;
        assert!(again.is_ok(), "free again once released");
    }
}
