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
use crate::sessions::{Delivered, Fetched, Offered, Sessions, Unsaved, Where};

/// Where an offered message went ([`Delivery::offer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Here {
    /// The user has no session here: publish it.
    No,
    /// To the user's sessions here, and it has none elsewhere as far as this node knows.
    Yes,
    /// To the user's sessions here, and it has sessions on other nodes too: publish it as well.
    AndElsewhere,
}

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
        let mut waits = 0;
        loop {
            let Some((mut from, out)) = self.sessions.begin_fetch(user, conn) else { return };
            let unknown = self.sessions.unknown_groups(user, conn, &from);
            if !unknown.is_empty() {
                // A group joined from another session: start where the join's cursor says.
                if let Ok(states) = self.log.conversations(user).await {
                    for state in states.iter().filter(|s| unknown.contains(&s.conv)) {
                        self.sessions.joined_at(user, conn, state.conv, state.cursor);
                        for entry in from.iter_mut().filter(|(c, _)| *c == state.conv) {
                            entry.1 = entry.1.max(state.cursor);
                        }
                    }
                }
            }
            if !from.is_empty() {
                match self.log.after(&from, CATCH_UP_PAGE).await {
                    Ok(found) => {
                        wait = Duration::from_millis(100);
                        debug!(user = %user, count = found.len(), "catching up from the log");
                        let pushed = self.sessions.push_fetched(user, conn, &found);
                        if pushed == Fetched::Gone {
                            return;
                        }
                        if pushed == Fetched::Wait {
                            // This session's own chat there is being stored: its answer
                            // comes within a commit (a second at most, or we stop waiting).
                            waits += 1;
                            if waits > 500 {
                                warn!(user = %user, "no answer to this session's chats for a second; catching up anyway");
                                self.sessions.forget_sending(user, conn);
                            }
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        } else {
                            waits = 0;
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

    /// Offers a logged message to `user`'s sessions here.
    pub(crate) fn offer(&self, user: UserId, item: &Item) -> Here {
        let mut next = Vec::new();
        let here = self.sessions.offer(user, item, &mut next);
        for (conn, what) in next {
            match what {
                Offered::Done => {}
                Offered::CatchUp(conn) => self.start_catch_up(user, conn),
                Offered::Gap(_, conv, generation) => {
                    if let Some(me) = self.me.upgrade() {
                        tokio::spawn(async move {
                            tokio::time::sleep(GAP_WAIT).await;
                            if me.sessions.gap_expired(user, conn, conv, generation) {
                                debug!(user = %user, conv = %conv, "a gap did not fill; reading the log");
                                me.start_catch_up(user, conn);
                            }
                        });
                    }
                }
            }
        }
        match here {
            Where::NotHere => Here::No,
            Where::Here => Here::Yes,
            Where::HereAndElsewhere => Here::AndElsewhere,
        }
    }

    /// The session on `conn` reads its conversations again after `after`: a session that
    /// joined a user other nodes hold may have missed what they routed before they heard of it.
    pub(crate) fn settle_later(&self, user: UserId, conn: u64, after: Duration) {
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if me.sessions.stale(user, conn) {
                me.start_catch_up(user, conn);
            }
        });
    }

    /// Writes the sessions' acknowledged cursors (the periodic flush; see `cursor_flush`), in
    /// transactions of [`CURSORS_PER_SAVE`]: a busy node has thousands a second, and one
    /// transaction for all of them held SQLite's one connection, and every append waiting
    /// for it, for tens of milliseconds.
    ///
    /// In key order: two nodes flushing cursors of the same user (sessions on both) take the
    /// row locks in one order and cannot deadlock, and on InnoDB, clustered on the key, the
    /// rows of one transaction share their pages. (On SQLite, whose cursor tables are rowid
    /// tables, the order changed nothing measurable: bench/README, "Where a commit's cost sits".)
    pub(crate) async fn flush_cursors(&self) {
        let mut list = self.sessions.unsaved();
        list.sort_unstable_by_key(|u| (u.user, u.conv));
        for chunk in list.chunks(CURSORS_PER_SAVE) {
            match save_both(self.log.as_ref(), chunk).await {
                Ok(()) => self.sessions.saved(chunk),
                Err(e) => {
                    warn!(error = %e, count = list.len(), "saving cursors failed; will retry");
                    return;
                }
            }
        }
    }

    /// Saves a finished session's cursors (the user's, and its own under `token`) in the
    /// background, retrying while the database is down.
    pub(crate) fn save_cursors_later(
        &self,
        user: UserId,
        cursors: Vec<(ConvId, i64)>,
        token: Option<String>,
    ) {
        if cursors.is_empty() {
            return;
        }
        let log = self.log.clone();
        let list: Vec<Unsaved> = cursors
            .into_iter()
            .map(|(conv, seq)| Unsaved { user, conn: 0, token: token.clone(), conv, seq })
            .collect();
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(100);
            for attempt in 1..=10 {
                match save_both(log.as_ref(), &list).await {
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

/// Writes cursors: the users' (the furthest any session acknowledged) and the sessions' own.
pub(crate) async fn save_both(log: &dyn Log, list: &[Unsaved]) -> Result<(), chat_ports::StoreError> {
    let users: Vec<(UserId, ConvId, i64)> = list.iter().map(|u| (u.user, u.conv, u.seq)).collect();
    let mut sessions: Vec<(String, ConvId, i64)> =
        list.iter().filter_map(|u| u.token.clone().map(|t| (t, u.conv, u.seq))).collect();
    sessions.sort_unstable();
    log.save_all_cursors(&users, &sessions).await
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
        // Presence goes to this node's sessions too, whichever node announced it.
        if let Some(DeviceEvent::Presence { user, online, followers, name, .. }) = DeviceEvent::parse(&event)
        {
            let frame = Bytes::from(chat_proto::presence_push(user, &name, online));
            for follower in followers {
                self.sessions.push_ext(follower, frame.clone());
            }
            return;
        }
        if let Some(group) = GroupCache::parse_changed(&event) {
            self.groups.forget(group);
        } else if let Some(user) = crate::control::WriteCache::parse_changed(&event) {
            self.writes.forget(user);
        } else if let Some((user, from)) = parse_takeover(&event)
            && from != self.instance
        {
            // A session that shares with none is resumed elsewhere (or a node of the previous
            // release resumes the user): whatever holds the user here goes.
            self.sessions.take_over(user);
        } else if let Some(event) = DeviceEvent::parse(&event)
            && event.from() != self.instance
        {
            match event {
                DeviceEvent::Joined { user, .. } => self.sessions.set_shared(user),
                DeviceEvent::TakeOver { user, token, .. } => {
                    self.sessions.take_over_session(user, Some(&token), None);
                }
                DeviceEvent::LogOutAll { user, .. } => {
                    self.sessions.log_out_everywhere(user, None);
                }
                DeviceEvent::Presence { .. } => {}
            }
        }
    }

    fn claim_lost(&self, user: UserId) {
        // Another node holds the user now: one session per user, and that one is the newer.
        self.sessions.take_over(user);
    }

    fn resync(&self) {
        // A `sessions:` announcement may have been lost with the rest: from now on publish for
        // every user here too, so that their sessions on other nodes miss nothing live.
        self.sessions.set_all_shared();
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

/// Announcements about a user's sessions (issue 20). Kinds new in this release, so the
/// previous release ignores them (it has one session per user and needs none of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeviceEvent {
    /// `sessions:<user>:<instance>`: a node joined the user while others hold sessions of it;
    /// they publish what reaches the user from now on.
    Joined { user: UserId, from: u64 },
    /// `takeover-session:<user>:<token hash prefix>:<instance>`: a RESUME takes that session
    /// over; the node holding it closes it.
    TakeOver { user: UserId, token: String, from: u64 },
    /// `logout-all:<user>:<instance>`: every session of the user ends.
    LogOutAll { user: UserId, from: u64 },
    /// `presence:<user>:<1|0>:<instance>:<followers, comma-separated>:<name>`: the user came
    /// online (its first session anywhere) or went offline (its last ended); each node tells
    /// its extension sessions of the listed users (those who have the user as a friend).
    Presence { user: UserId, online: bool, followers: Vec<UserId>, name: String, from: u64 },
}

/// How much of a token's hash a takeover announcement carries (names the session among the
/// user's; not enough to be worth anything to a listener).
pub(crate) const TOKEN_PREFIX: usize = 16;

impl DeviceEvent {
    fn from(&self) -> u64 {
        match self {
            DeviceEvent::Joined { from, .. }
            | DeviceEvent::TakeOver { from, .. }
            | DeviceEvent::LogOutAll { from, .. }
            | DeviceEvent::Presence { from, .. } => *from,
        }
    }

    pub(crate) fn encode(&self) -> Bytes {
        Bytes::from(match self {
            DeviceEvent::Joined { user, from } => format!("sessions:{user}:{from}"),
            DeviceEvent::TakeOver { user, token, from } => format!("takeover-session:{user}:{token}:{from}"),
            DeviceEvent::LogOutAll { user, from } => format!("logout-all:{user}:{from}"),
            DeviceEvent::Presence { user, online, followers, name, from } => {
                let ids: Vec<String> = followers.iter().map(|f| f.0.to_string()).collect();
                format!("presence:{user}:{}:{from}:{}:{name}", u8::from(*online), ids.join(","))
            }
        })
    }

    fn parse(event: &[u8]) -> Option<DeviceEvent> {
        let text = std::str::from_utf8(event).ok()?;
        if let Some(rest) = text.strip_prefix("presence:") {
            // The name comes last: it may hold ':'.
            let mut parts = rest.splitn(5, ':');
            let user = UserId(parts.next()?.parse().ok()?);
            let online = match parts.next()? {
                "1" => true,
                "0" => false,
                _ => return None,
            };
            let from = parts.next()?.parse().ok()?;
            let ids = parts.next()?;
            let followers = if ids.is_empty() {
                Vec::new()
            } else {
                ids.split(',').map(|i| i.parse().ok().map(UserId)).collect::<Option<Vec<UserId>>>()?
            };
            let name = parts.next()?.to_owned();
            return Some(DeviceEvent::Presence { user, online, followers, name, from });
        }
        let (kind, rest) = text.split_once(':')?;
        let fields: Vec<&str> = rest.split(':').collect();
        let user = UserId(fields.first()?.parse().ok()?);
        let from: u64 = fields.last()?.parse().ok()?;
        match (kind, fields.len()) {
            ("sessions", 2) => Some(DeviceEvent::Joined { user, from }),
            ("logout-all", 2) => Some(DeviceEvent::LogOutAll { user, from }),
            ("takeover-session", 3) => {
                let token = fields[1];
                (token.len() == TOKEN_PREFIX && token.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| DeviceEvent::TakeOver { user, token: token.to_owned(), from })
            }
            _ => None,
        }
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
            assert_eq!(DeviceEvent::parse(unknown), None);
        }
    }

    #[test]
    fn device_events_round_trip_and_are_strict() {
        for event in [
            DeviceEvent::Joined { user: UserId(7), from: 42 },
            DeviceEvent::TakeOver { user: UserId(7), token: "0123456789abcdef".into(), from: 42 },
            DeviceEvent::LogOutAll { user: UserId(7), from: 42 },
            DeviceEvent::Presence {
                user: UserId(7),
                online: true,
                followers: vec![UserId(1), UserId(9)],
                name: "a:b".into(),
                from: 42,
            },
            DeviceEvent::Presence {
                user: UserId(7),
                online: false,
                followers: vec![],
                name: String::new(),
                from: 1,
            },
        ] {
            assert_eq!(DeviceEvent::parse(&event.encode()), Some(event));
        }
        for bad in [
            &b"sessions:7"[..],
            b"sessions:7:42:1",
            b"takeover-session:7:short:42",
            b"takeover-session:7:0123456789abcdeg:42",
            b"logout-all:x:42",
        ] {
            assert_eq!(DeviceEvent::parse(bad), None);
        }
        assert_eq!(parse_takeover(&DeviceEvent::LogOutAll { user: UserId(7), from: 1 }.encode()), None);
        assert_eq!(GroupCache::parse_changed(b"sessions:7:42"), None);
    }
}
