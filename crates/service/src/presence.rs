//! Presence pushed (issue 20): a user's friends hear when it comes online (its first session
//! anywhere) and goes offline (its last one ended), once per change. Not the sessions
//! themselves (`sessions.rs`, the broker's counts) nor the push's delivery (`delivery.rs`).
//!
//! Who is told: the users who have the user in their friend list, on every node, through one
//! `presence:` announcement carrying their ids (one database read per change, by the node that
//! saw it). Group members are not told: a group of 1,000 would cost 1,000 pushes per login,
//! and the web client shows members' state from LIST.

use std::sync::Arc;
use std::time::Duration;

use chat_ports::{Broker, Control, Store};
use chat_proto::UserId;
use tracing::{debug, warn};

use crate::Service;
use crate::delivery::{Delivery, DeviceEvent};
use crate::dispatch::SessionUser;

impl Service {
    /// Announces, in the background after `after`, that `user` came online or went offline:
    /// whatever its sessions say then, and only if that changes what was announced last (the
    /// broker records it atomically with counting the sessions, so each change is announced
    /// once, and a reconnect within `after` is never announced). A login calls it at once; an
    /// ended session with `after` = 0 (a LOGINOUT) or the debounce (a lost connection).
    pub(crate) fn announce_presence(&self, user: &SessionUser, after: Duration) {
        let (broker, store, control) = (self.broker.clone(), self.store.clone(), self.control.clone());
        let (id, name, from) = (user.id, user.name.clone(), self.delivery.instance());
        tokio::spawn(async move {
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            announce(broker.as_ref(), store.as_ref(), control.as_ref(), id, name, from).await;
        });
    }
}

/// Every `period`, while `delivery` lives: the users of nodes that died (their lease expired)
/// are announced offline, if they have no session left anywhere.
pub(crate) fn sweep_dead_nodes(
    broker: Arc<dyn Broker>,
    store: Arc<dyn Store>,
    control: Arc<dyn Control>,
    delivery: std::sync::Weak<Delivery>,
    period: Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(from) = delivery.upgrade().map(|d| d.instance()) else { return };
            let users = match broker.orphans().await {
                Ok(users) => users,
                Err(e) => {
                    debug!(error = %e, "presence: cannot look for dead nodes' users");
                    continue;
                }
            };
            for id in users {
                let name = match store.find_user(id).await {
                    Ok(Some(record)) => record.name,
                    Ok(None) => continue,
                    Err(e) => {
                        warn!(user = %id, error = %e, "presence: a dead node's user is not announced");
                        continue;
                    }
                };
                announce(broker.as_ref(), store.as_ref(), control.as_ref(), id, name, from).await;
            }
        }
    });
}

/// Announces `id`'s presence now, if it changed (see [`Service::announce_presence`]).
async fn announce(
    broker: &dyn Broker,
    store: &dyn Store,
    control: &dyn Control,
    id: UserId,
    name: String,
    from: u64,
) {
    let online = match broker.presence(id).await {
        Ok(Some(online)) => online,
        Ok(None) => return,
        Err(e) => {
            warn!(user = %id, error = %e, "presence: cannot record it; not announced");
            return;
        }
    };
    let followers = match store.followers(id).await {
        Ok(followers) => followers,
        Err(e) => {
            warn!(user = %id, error = %e, "presence: cannot read who to tell; not announced");
            return;
        }
    };
    // The users `id` blocks never learn its presence (issue 21: it shows offline to them).
    let followers = match control.blocked(id).await {
        Ok(blocked) if blocked.is_empty() => followers,
        Ok(blocked) => followers.into_iter().filter(|f| !blocked.iter().any(|b| b.id == *f)).collect(),
        Err(e) => {
            warn!(user = %id, error = %e, "presence: cannot read whom the user blocks; not announced");
            return;
        }
    };
    if followers.is_empty() {
        return;
    }
    debug!(user = %id, online, followers = followers.len(), "presence announced");
    let event = DeviceEvent::Presence { user: id, online, followers, name, from };
    if let Err(e) = broker.announce(event.encode()).await {
        warn!(user = %id, error = %e, "presence: announcement failed");
    }
}
