//! Getting a frame to a user: this node's session, another node through the
//! broker, or the offline store. Also the [`Sink`] for frames from other nodes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chat_ports::{Broker, Sink, Store};
use chat_proto::{GroupId, UserId};
use tracing::{error, warn};

use crate::sessions::{Delivered, Sessions};

/// Local delivery with the offline store as fallback, and the group member cache
/// that announcements from other nodes invalidate.
pub struct Delivery {
    sessions: Sessions,
    store: Arc<dyn Store>,
    groups: GroupCache,
}

impl Delivery {
    /// Delivery over this node's sessions and the store.
    pub fn new(sessions: Sessions, store: Arc<dyn Store>) -> Arc<Delivery> {
        Arc::new(Delivery { sessions, store, groups: GroupCache::default() })
    }

    /// The group member cache.
    pub(crate) fn groups(&self) -> &GroupCache {
        &self.groups
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

    fn event(&self, event: Bytes) {
        if let Some(group) = GroupCache::parse_changed(&event) {
            self.groups.forget(group);
        }
    }
}

/// Members of recently used groups, so a group chat to online members needs no database
/// read. A join anywhere in the cluster evicts the group (through a broker announcement);
/// entries also expire after [`GroupCache::TTL`], a bound on staleness should an
/// announcement be lost (the broker down while someone joins).
#[derive(Default)]
pub(crate) struct GroupCache {
    map: std::sync::Mutex<GroupMap>,
}

/// group → (when it was read, its members).
type GroupMap = HashMap<GroupId, (Instant, Arc<[UserId]>)>;

impl GroupCache {
    /// How long an entry is trusted without an announcement.
    pub(crate) const TTL: Duration = Duration::from_secs(10);
    /// Groups kept before the cache starts afresh (bounds memory).
    const CAPACITY: usize = 100_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, GroupMap> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached members of `group`, if fresh.
    pub(crate) fn get(&self, group: GroupId) -> Option<Arc<[UserId]>> {
        let map = self.lock();
        let (at, members) = map.get(&group)?;
        (at.elapsed() < Self::TTL).then(|| Arc::clone(members))
    }

    /// Remembers `group`'s members as read from the store.
    pub(crate) fn put(&self, group: GroupId, members: Arc<[UserId]>) {
        let mut map = self.lock();
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.insert(group, (Instant::now(), members));
    }

    /// Drops `group` (its members changed).
    pub(crate) fn forget(&self, group: GroupId) {
        self.lock().remove(&group);
    }

    /// The announcement that `group`'s members changed.
    pub(crate) fn changed_event(group: GroupId) -> Bytes {
        Bytes::from(format!("group-members:{group}"))
    }

    fn parse_changed(event: &[u8]) -> Option<GroupId> {
        let text = std::str::from_utf8(event).ok()?;
        text.strip_prefix("group-members:")?.parse().ok().map(GroupId)
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
