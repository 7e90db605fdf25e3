//! The in-process broker of the single-node default: a [`LocalHub`] routes frames between the
//! [`LocalBroker`] "nodes" made from it exactly as Redis would route them between processes,
//! and keeps the cluster-wide claims. It knows nothing of sessions; it only calls `Sink`s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use chat_ports::{Broker, BrokerError, Joined, Sink};
use chat_proto::UserId;

/// Identifies one node of a hub.
type NodeId = u64;

/// A node subscribed to a channel, with the sink its frames go to.
type Subscriber = (NodeId, Arc<dyn Sink>);

/// The shared routing table and claim table of a set of in-process nodes.
pub struct LocalHub {
    state: Mutex<HubState>,
    next_node: AtomicU64,
}

#[derive(Default)]
struct HubState {
    /// user → the nodes subscribed to the user's channel, each with its sink.
    subscribers: HashMap<UserId, Vec<Subscriber>>,
    /// user → the node that holds it (an exclusive claim).
    claims: HashMap<UserId, NodeId>,
    /// user → node → how many extension sessions of the user it has.
    joins: HashMap<UserId, HashMap<NodeId, u32>>,
    /// Users last announced online.
    online: std::collections::HashSet<UserId>,
    /// Every live node's sink, for announcements.
    nodes: HashMap<NodeId, Arc<dyn Sink>>,
}

impl LocalHub {
    /// A hub with no nodes.
    pub fn new() -> Arc<LocalHub> {
        Arc::new(LocalHub { state: Mutex::new(HubState::default()), next_node: AtomicU64::new(1) })
    }

    /// A new node of this hub whose incoming frames go to `sink`.
    pub fn node(self: &Arc<Self>, sink: Arc<dyn Sink>) -> Arc<LocalBroker> {
        let id = self.next_node.fetch_add(1, Ordering::Relaxed);
        self.lock().nodes.insert(id, Arc::clone(&sink));
        Arc::new(LocalBroker { hub: Arc::clone(self), id, sink })
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // Nothing panics while holding the lock, and the tables stay consistent even if it did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One node of a [`LocalHub`]; implements [`Broker`]. Dropping it is a [`crash`](Self::crash).
pub struct LocalBroker {
    hub: Arc<LocalHub>,
    id: NodeId,
    sink: Arc<dyn Sink>,
}

impl LocalBroker {
    /// Simulates this node dying: unsubscribes all its channels and frees all its claims.
    pub fn crash(&self) {
        let mut state = self.hub.lock();
        state.subscribers.retain(|_, subs| {
            subs.retain(|(node, _)| *node != self.id);
            !subs.is_empty()
        });
        state.claims.retain(|_, node| *node != self.id);
        state.joins.retain(|_, nodes| {
            nodes.remove(&self.id);
            !nodes.is_empty()
        });
        state.nodes.remove(&self.id);
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        self.crash();
    }
}

#[async_trait]
impl Broker for LocalBroker {
    async fn claim(&self, user: UserId) -> Result<bool, BrokerError> {
        let mut state = self.hub.lock();
        let joined_elsewhere =
            state.joins.get(&user).is_some_and(|nodes| nodes.keys().any(|n| *n != self.id));
        match state.claims.get(&user) {
            Some(holder) if *holder != self.id => Ok(false),
            _ if joined_elsewhere => Ok(false),
            _ => {
                state.claims.insert(user, self.id);
                Ok(true)
            }
        }
    }

    async fn release(&self, user: UserId) -> Result<(), BrokerError> {
        let mut state = self.hub.lock();
        if state.claims.get(&user) == Some(&self.id) {
            state.claims.remove(&user);
        }
        Ok(())
    }

    async fn join(&self, user: UserId, max: u32) -> Result<Joined, BrokerError> {
        let mut state = self.hub.lock();
        if state.claims.contains_key(&user) {
            return Ok(Joined::InUse);
        }
        let nodes = state.joins.entry(user).or_default();
        let total: u32 = nodes.values().sum();
        if total >= max {
            return Ok(Joined::Limit);
        }
        let others = nodes.iter().any(|(n, c)| *n != self.id && *c > 0);
        *nodes.entry(self.id).or_default() += 1;
        Ok(Joined::Yes { others })
    }

    async fn leave(&self, user: UserId) -> Result<u32, BrokerError> {
        let mut state = self.hub.lock();
        let Some(nodes) = state.joins.get_mut(&user) else { return Ok(0) };
        if let Some(count) = nodes.get_mut(&self.id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                nodes.remove(&self.id);
            }
        }
        let left = nodes.values().sum();
        if nodes.is_empty() {
            state.joins.remove(&user);
        }
        Ok(left)
    }

    async fn presence(&self, user: UserId) -> Result<Option<bool>, BrokerError> {
        let mut state = self.hub.lock();
        let online = state.joins.get(&user).is_some_and(|nodes| nodes.values().any(|n| *n > 0))
            || state.claims.contains_key(&user);
        let changed = if online { state.online.insert(user) } else { state.online.remove(&user) };
        Ok(changed.then_some(online))
    }

    async fn subscribe(&self, user: UserId) -> Result<(), BrokerError> {
        let mut state = self.hub.lock();
        let subs = state.subscribers.entry(user).or_default();
        if !subs.iter().any(|(node, _)| *node == self.id) {
            subs.push((self.id, Arc::clone(&self.sink)));
        }
        Ok(())
    }

    async fn unsubscribe(&self, user: UserId) -> Result<(), BrokerError> {
        let mut state = self.hub.lock();
        if let Some(subs) = state.subscribers.get_mut(&user) {
            subs.retain(|(node, _)| *node != self.id);
            if subs.is_empty() {
                state.subscribers.remove(&user);
            }
        }
        Ok(())
    }

    async fn publish(&self, user: UserId, frame: Bytes) -> Result<bool, BrokerError> {
        // Collect the sinks and drop the lock before delivering: a sink may call back into the hub.
        let sinks: Vec<Arc<dyn Sink>> = {
            let state = self.hub.lock();
            match state.subscribers.get(&user) {
                Some(subs) => subs.iter().map(|(_, sink)| Arc::clone(sink)).collect(),
                None => Vec::new(),
            }
        };
        for sink in &sinks {
            sink.deliver(user, frame.clone());
        }
        Ok(!sinks.is_empty())
    }

    async fn announce(&self, event: Bytes) -> Result<(), BrokerError> {
        let sinks: Vec<Arc<dyn Sink>> = self.hub.lock().nodes.values().cloned().collect();
        for sink in sinks {
            sink.event(event.clone());
        }
        Ok(())
    }
}
