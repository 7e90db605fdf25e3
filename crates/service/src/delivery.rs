//! Getting a frame to a user: this node's session, another node through the
//! broker, or the offline store. Also the [`Sink`] for frames from other nodes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chat_ports::{Broker, Sink, Store};
use chat_proto::UserId;
use tracing::{error, warn};

use crate::sessions::{Delivered, Sessions};

/// Local delivery with the offline store as fallback.
pub struct Delivery {
    sessions: Sessions,
    store: Arc<dyn Store>,
}

impl Delivery {
    /// Delivery over this node's sessions and the store.
    pub fn new(sessions: Sessions, store: Arc<dyn Store>) -> Arc<Delivery> {
        Arc::new(Delivery { sessions, store })
    }

    /// This node's sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Stores frames offline in the background, retrying for a while if the database is down.
    pub fn store_later(&self, messages: Vec<(UserId, String)>) {
        if messages.is_empty() {
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(100);
            for attempt in 1..=8 {
                match store.store_offline(&messages).await {
                    Ok(()) => return,
                    Err(e) => {
                        warn!(error = %e, attempt, count = messages.len(), "storing offline messages failed; retrying")
                    }
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            error!(count = messages.len(), "offline messages lost: database unavailable");
        });
    }
}

impl Sink for Delivery {
    fn deliver(&self, user: UserId, frame: Bytes) {
        if self.sessions.deliver(user, frame.clone()) == Delivered::Yes {
            return;
        }
        // The user left this node while the frame was in flight: keep it for the next login.
        self.store_later(vec![(user, String::from_utf8_lossy(&frame).into_owned())]);
    }
}

/// Routes one frame to each of `users` (never to nobody): this node first, then
/// one publish per remaining user, all in flight at once (the broker pipelines
/// them); whoever no node took is returned for offline storage.
pub(crate) async fn route(
    sessions: &Sessions,
    broker: &dyn Broker,
    users: impl IntoIterator<Item = UserId>,
    frame: &Bytes,
) -> Vec<UserId> {
    let mut remote = Vec::new();
    for user in users {
        if sessions.deliver(user, frame.clone()) == Delivered::No {
            remote.push(user);
        }
    }
    match remote.len() {
        0 => Vec::new(),
        1 => {
            let user = remote[0];
            if published(user, broker.publish(user, frame.clone()).await) { Vec::new() } else { remote }
        }
        _ => {
            let results =
                futures::future::join_all(remote.iter().map(|&u| broker.publish(u, frame.clone()))).await;
            remote
                .into_iter()
                .zip(results)
                .filter(|(u, r)| !published(*u, r.clone()))
                .map(|(u, _)| u)
                .collect()
        }
    }
}

/// Whether a publish reached a node; a failed one is logged and counts as not.
fn published(user: UserId, result: Result<bool, chat_ports::BrokerError>) -> bool {
    match result {
        Ok(reached) => reached,
        Err(e) => {
            warn!(user = %user, error = %e, "publish failed; storing offline");
            false
        }
    }
}
