//! Getting messages to users: this node's sessions (each in its conversations'
//! order, see `inbox.rs`), the catch-up reads from the message log that fill any
//! gap (a replay at login, a lost publish, a lagging broker), the cursors the
//! sessions acknowledge, and the [`Sink`] for frames from other nodes.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chat_ports::{Broker, Log, Sink, Store};
use chat_proto::{ConvId, GroupId, UserId};
use tracing::{debug, error, warn};

use crate::durable::Item;
use crate::inbox::GAP_WAIT;
use crate::sessions::{Delivered, Fetched, Offered, Sessions};

/// Messages one catch-up read takes (then it waits for the client's socket to take them).
const CATCH_UP_PAGE: usize = 256;
/// Cursors saved per transaction by the periodic flush (see [`Delivery::flush_cursors`]).
const CURSORS_PER_SAVE: usize = 256;

/// Delivery to this node's sessions, with the log behind it, and the group member cache
/// that announcements from other nodes invalidate.
pub struct Delivery {
    sessions: Sessions,
    store: Arc<dyn Store>,
    log: Arc<dyn Log>,
    groups: GroupCache,
    /// "May `a` write to `b`" verdicts (issue 21, `control.rs`).
    writes: crate::control::WriteCache,
    /// Itself, for the tasks it starts from `&self` (the broker's receive loop calls in).
    me: Weak<Delivery>,
    /// This node among the nodes that hear its announcements (random per start).
    instance: u64,
}

impl Delivery {
    /// Delivery over this node's sessions, the store and the message log.
    pub fn new(sessions: Sessions, store: Arc<dyn Store>, log: Arc<dyn Log>) -> Arc<Delivery> {
        let mut bytes = [0u8; 8];
        // Without randomness two nodes might share an instance; takeovers then only wait longer.
        let _ = getrandom::fill(&mut bytes);
        let instance = u64::from_le_bytes(bytes);
        Arc::new_cyclic(|me| Delivery {
            sessions,
            store,
            log,
            groups: GroupCache::default(),
            writes: Default::default(),
            me: me.clone(),
            instance,
        })
    }

    /// The group member cache.
    pub(crate) fn groups(&self) -> &GroupCache {
        &self.groups
    }

    /// The "may `a` write to `b`" verdicts.
    pub(crate) fn writes(&self) -> &crate::control::WriteCache {
        &self.writes
    }

    /// This node among the nodes that hear its announcements.
    pub(crate) fn instance(&self) -> u64 {
        self.instance
    }

    /// This node's sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Stores unsequenced frames (from a node that does not log messages) offline in the
    /// background, retrying for a while if the database is down.
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

    /// Starts reading `user`'s stale conversations from the log (the session on `conn`).
    pub(crate) fn start_catch_up(&self, user: UserId, conn: u64) {
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move { me.catch_up(user, conn).await });
    }

    /// Reads what the session is missing from the log and pushes it in order, a page at a
    /// time (waiting for the client's socket between pages), until nothing is stale. A
    /// database outage is waited out while the session lasts.
    async fn catch_up(&self, user: UserId, conn: u64) {
        let mut wait = Duration::from_millis(100);
        loop {
            let Some((from, out)) = self.sessions.begin_fetch(user, conn) else { return };
            if !from.is_empty() {
                match self.log.after(&from, CATCH_UP_PAGE).await {
                    Ok(found) => {
                        wait = Duration::from_millis(100);
                        debug!(user = %user, count = found.len(), "catching up from the log");
                        let pushed = self.sessions.push_fetched(user, conn, &found);
                        if pushed == Fetched::Gone {
                            return;
                        }
                        // Cut at the page's end or at the queue's room: read those again
                        // (from where delivery stands now) once the socket took what is queued.
                        if pushed == Fetched::Full || found.len() >= CATCH_UP_PAGE {
                            self.sessions.more(user, conn, &from);
                            if !out.flushed().await {
                                self.sessions.abandon_fetch(user, conn);
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        warn!(user = %user, error = %e, "catch-up read failed; retrying");
                        self.sessions.more(user, conn, &from);
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                        if out.is_closed() {
                            self.sessions.abandon_fetch(user, conn);
                            return;
                        }
                        continue;
                    }
                }
            }
            if !self.sessions.end_fetch(user, conn) {
                return;
            }
        }
    }

    /// Offers a logged message to `user`'s session here; false if the user has none.
    pub(crate) fn offer(&self, user: UserId, item: &Item) -> bool {
        match self.sessions.offer(user, item) {
            Offered::NotHere => false,
            Offered::Done => true,
            Offered::CatchUp(conn) => {
                self.start_catch_up(user, conn);
                true
            }
            Offered::Gap(conn, conv, generation) => {
                if let Some(me) = self.me.upgrade() {
                    tokio::spawn(async move {
                        tokio::time::sleep(GAP_WAIT).await;
                        if me.sessions.gap_expired(user, conn, conv, generation) {
                            debug!(user = %user, conv = %conv, "a gap did not fill; reading the log");
                            me.start_catch_up(user, conn);
                        }
                    });
                }
                true
            }
        }
    }

    /// Writes the sessions' acknowledged cursors (the periodic flush; see `cursor_flush`), in
    /// transactions of [`CURSORS_PER_SAVE`]: a busy node has thousands a second, and one
    /// transaction for all of them held SQLite's one connection, and every append waiting
    /// for it, for tens of milliseconds.
    pub(crate) async fn flush_cursors(&self) {
        let list = self.sessions.unsaved();
        for chunk in list.chunks(CURSORS_PER_SAVE) {
            match self.log.save_cursors(chunk).await {
                Ok(()) => self.sessions.saved(chunk),
                Err(e) => {
                    warn!(error = %e, count = list.len(), "saving cursors failed; will retry");
                    return;
                }
            }
        }
    }

    /// Saves a finished session's cursors in the background, retrying while the database is down.
    pub(crate) fn save_cursors_later(&self, user: UserId, cursors: Vec<(ConvId, i64)>) {
        if cursors.is_empty() {
            return;
        }
        let log = self.log.clone();
        let list: Vec<(UserId, ConvId, i64)> = cursors.into_iter().map(|(c, s)| (user, c, s)).collect();
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(100);
            for attempt in 1..=10 {
                match log.save_cursors(&list).await {
                    Ok(()) => return,
                    Err(e) => warn!(error = %e, attempt, "saving a session's cursors failed; retrying"),
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            // Only costs redelivery: the client drops messages it has seen.
            warn!(user = %user, "a session's cursors were not saved; its last messages will come again");
        });
    }

    /// Publishes again, in the background, frames whose publish failed (the broker was down):
    /// the recipients' nodes may not have noticed the outage and would not catch up by themselves.
    pub(crate) fn republish_later(&self, broker: Arc<dyn Broker>, failed: Vec<(UserId, Bytes)>) {
        if failed.is_empty() {
            return;
        }
        tokio::spawn(async move {
            let mut left = failed;
            let mut wait = Duration::from_millis(200);
            for _ in 0..10 {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
                let results =
                    futures::future::join_all(left.iter().map(|(u, f)| broker.publish(*u, f.clone()))).await;
                left = left.into_iter().zip(results).filter(|(_, r)| r.is_err()).map(|(x, _)| x).collect();
                if left.is_empty() {
                    return;
                }
            }
            // Stored all the same: the recipients get them at their next catch-up or resume.
            warn!(count = left.len(), "publishes kept failing; recipients will catch up from the log");
        });
    }
}

impl Sink for Delivery {
    fn deliver(&self, user: UserId, frame: Bytes) {
        if let Some(item) = Item::parse(frame.clone()) {
            // Not here any more: the message is in the log, the user's next session replays it.
            self.offer(user, &item);
            return;
        }
        if self.control_frame(user, &frame) {
            return;
        }
        if self.sessions.deliver(user, frame.clone()) == Delivered::Yes {
            return;
        }
        // An unsequenced frame for a user who left this node while it was in flight.
        self.store_later(vec![(user, String::from_utf8_lossy(&frame).into_owned())]);
    }

    fn event(&self, event: Bytes) {
        if let Some(group) = GroupCache::parse_changed(&event) {
            self.groups.forget(group);
        } else if let Some(user) = crate::control::WriteCache::parse_changed(&event) {
            self.writes.forget(user);
        } else if let Some((user, from)) = parse_takeover(&event)
            && from != self.instance
        {
            self.sessions.take_over(user);
        }
    }

    fn claim_lost(&self, user: UserId) {
        // Another node holds the user now: one session per user, and that one is the newer.
        self.sessions.take_over(user);
    }

    fn resync(&self) {
        let sessions = self.sessions.all_stale();
        if !sessions.is_empty() {
            warn!(
                sessions = sessions.len(),
                "messages may have been lost in the broker; catching up from the log"
            );
        }
        for (user, conn) in sessions {
            self.start_catch_up(user, conn);
        }
    }
}

impl Delivery {
    /// The announcement that `user` resumes on this node: another node still holding a
    /// session for it (a connection that died without that node noticing) closes it.
    pub(crate) fn takeover_event(&self, user: UserId) -> Bytes {
        Bytes::from(format!("takeover:{user}:{}", self.instance))
    }
}

fn parse_takeover(event: &[u8]) -> Option<(UserId, u64)> {
    let text = std::str::from_utf8(event).ok()?;
    let (user, from) = text.strip_prefix("takeover:")?.split_once(':')?;
    Some((UserId(user.parse().ok()?), from.parse().ok()?))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Announcements are versioned by their kind (ARCHITECTURE.md, "Upgrades"): a node
    /// ignores a kind it does not know, and a known kind with other fields, as v0.1.0 does
    /// (this parsing is unchanged since); so a new kind never confuses the previous release.
    #[test]
    fn unknown_announcements_are_ignored() {
        assert_eq!(GroupCache::parse_changed(&GroupCache::changed_event(GroupId(5))), Some(GroupId(5)));
        assert_eq!(parse_takeover(b"takeover:7:42"), Some((UserId(7), 42)));
        for unknown in [
            &b"group-members:5:extra"[..],
            b"takeover:7:42:extra",
            b"takeover2:7:42",
            b"something-new:1",
            b"\xff",
        ] {
            assert_eq!(GroupCache::parse_changed(unknown), None);
            assert_eq!(parse_takeover(unknown), None);
        }
    }
}
