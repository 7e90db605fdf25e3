//! The registry of this node's sessions: user → their sessions here (several for an
//! extension client's user: one per device), each with its connection queue and its
//! [`Inbox`] (its place in each conversation).
//!
//! One `std::sync::Mutex` guards the map; it is held only for lookups,
//! `try_send`s (which never wait) and inbox bookkeeping, never across an `.await`.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use chat_net::{Outbound, SendError};
use chat_ports::{ConvState, LoggedMessage};
use chat_proto::{ConvId, ErrorCode, Notice, UserId, encode};

use crate::durable::{Item, push_frame};
use crate::inbox::{Inbox, Offer};

struct Entry {
    conn: u64,
    /// The SHA-256 of the session's resume token (extension sessions): names the session
    /// (its own cursors, a RESUME's takeover).
    token: Option<String>,
    metrics: std::sync::Arc<chat_metrics::Metrics>,
    out: Outbound,
    /// While a login is in progress: unsequenced frames that arrived before its ack, in order.
    pending: Option<Vec<Bytes>>,
    inbox: Inbox,
    /// Users this one blocks: their group messages are not pushed to it (issue 21).
    muted: std::collections::HashSet<UserId>,
}

impl Entry {
    /// Pushes live messages, in order, each in the client's form.
    fn push_items(&mut self, user: UserId, items: &[Item]) {
        for item in items {
            if item.conv.as_group().is_some() && self.muted.contains(&item.sender) {
                continue;
            }
            let frame = if self.inbox.ext() { item.frame.clone() } else { item.original() };
            match self.send(user, frame) {
                Some(index) => self.inbox.mark(index, item.conv, item.seq),
                None => return,
            }
        }
    }

    /// Queues a frame; a client whose queue is full is not reading and is disconnected.
    /// Returns the frame's index, if queued.
    fn send(&self, user: UserId, frame: Bytes) -> Option<u64> {
        match self.out.try_send_indexed(frame) {
            Ok(index) => Some(index),
            Err(SendError::Full) => {
                tracing::warn!(user = %user, "outbound queue full; disconnecting a client that does not read");
                self.metrics.slow_readers_disconnected.inc();
                self.out.close();
                None
            }
            Err(SendError::Closed) => None,
        }
    }
}

/// What a connection whose session a RESUME took over is told before it is closed.
const TAKEN_OVER: &str = "this session was resumed on another connection";
/// What the other sessions of a user who logged out everywhere are told before they close.
const LOGGED_OUT_EVERYWHERE: &str = "logged out everywhere: log in again";

/// What happened to an unsequenced frame handed to [`Sessions::deliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Queued for the user's connection on this node.
    Yes,
    /// The user has no session on this node (or it just failed): route it elsewhere.
    No,
}

/// What happened to a logged message offered to one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    /// Handled here (pushed, a duplicate dropped, or left to a running catch-up).
    Done,
    /// Left to a catch-up that the caller must start for this session.
    CatchUp(u64),
    /// Held behind a new gap: the caller checks it again after `GAP_WAIT`
    /// ([`Sessions::gap_expired`] with the connection, conversation and generation).
    Gap(u64, ConvId, u64),
}

/// What [`Sessions::push_fetched`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetched {
    /// Everything is queued.
    Done,
    /// The queue has no room for the rest: wait for the socket, then read again.
    Full,
    /// The session is gone or stopped reading.
    Gone,
}

/// A session's end: what it held back and its last cursors.
pub(crate) struct Removed {
    /// Unsequenced frames held for a login that never completed.
    pub(crate) held: Vec<Bytes>,
    /// Acknowledged cursors not yet saved.
    pub(crate) cursors: Vec<(ConvId, i64)>,
    /// The session's token hash, for its own cursors.
    pub(crate) token: Option<String>,
}

/// A cursor to write: the user's, and the session's own if it has a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsaved {
    pub(crate) user: UserId,
    pub(crate) conn: u64,
    pub(crate) token: Option<String>,
    pub(crate) conv: ConvId,
    pub(crate) seq: i64,
}

/// Why a session could not be registered here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// An original-protocol session shares with none (and is refused beside any other).
    InUse,
    /// The user has the most sessions it may have here.
    Limit,
}

/// One user's sessions on this node.
#[derive(Default)]
struct UserSessions {
    list: Vec<Entry>,
    /// Other nodes hold sessions of the user too: what reaches it here is also published.
    shared: bool,
}

/// This node's sessions.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<UserId, UserSessions>>,
    /// Frames a login may hold back before its ack; beyond this the client counts as not reading.
    pending_limit: usize,
    metrics: std::sync::Arc<chat_metrics::Metrics>,
}

/// Where a user's sessions are, as an offer found them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Where {
    /// No session here.
    NotHere,
    /// Here only (as far as this node knows).
    Here,
    /// Here, and on other nodes too.
    HereAndElsewhere,
}

impl Sessions {
    /// An empty registry; `pending_limit` bounds what a login in progress may hold back.
    pub fn new(pending_limit: usize) -> Sessions {
        Sessions { map: Mutex::default(), pending_limit, metrics: Default::default() }
    }

    /// As [`Sessions::new`], counting into `metrics`.
    pub fn with_metrics(pending_limit: usize, metrics: std::sync::Arc<chat_metrics::Metrics>) -> Sessions {
        Sessions { map: Mutex::default(), pending_limit, metrics }
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &chat_metrics::Metrics {
        &self.metrics
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, UserSessions>> {
        // A poisoned lock only means a panic elsewhere; the map itself is still consistent.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on `user`'s session on connection `conn`, if there is one.
    fn with<T>(&self, user: UserId, conn: u64, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        let mut map = self.lock();
        map.get_mut(&user).and_then(|u| u.list.iter_mut().find(|e| e.conn == conn)).map(f)
    }

    /// Registers a session of `user` on connection `conn`: an extension one (`ext`) beside
    /// the user's other extension sessions here, up to `max`; an original one alone.
    /// Frames for it are held back until [`Sessions::activate`]. Returns whether it is the
    /// user's first session here.
    pub fn try_insert(
        &self,
        user: UserId,
        conn: u64,
        out: Outbound,
        ext: bool,
        token: Option<String>,
        max: usize,
    ) -> Result<bool, Refused> {
        let mut map = self.lock();
        let sessions = map.entry(user).or_default();
        let first = sessions.list.is_empty();
        if !first && (!ext || sessions.list.iter().any(|e| !e.inbox.ext())) {
            return Err(Refused::InUse);
        }
        if sessions.list.len() >= max.max(1) {
            return Err(Refused::Limit);
        }
        let metrics = self.metrics.clone();
        sessions.list.push(Entry {
            conn,
            token,
            metrics,
            out,
            pending: Some(Vec::new()),
            inbox: Inbox::new(ext),
            muted: Default::default(),
        });
        Ok(first)
    }

    /// Other nodes hold sessions of `user` too (from now on, what reaches it here is also
    /// published to them), while it has sessions here.
    pub(crate) fn set_shared(&self, user: UserId) {
        if let Some(sessions) = self.lock().get_mut(&user) {
            sessions.shared = true;
        }
    }

    /// Every user here may have sessions elsewhere now (the broker may have lost an
    /// announcement that said so): publish for all of them from now on.
    pub(crate) fn set_all_shared(&self) {
        for sessions in self.lock().values_mut() {
            sessions.shared = true;
        }
    }

    /// The login read the user's conversations; `claims` are what a resuming client has.
    /// Returns the conversations with something after the cursor, and the cursor.
    pub(crate) fn load(
        &self,
        user: UserId,
        conn: u64,
        states: &[ConvState],
        claims: &[(ConvId, i64)],
    ) -> Vec<(ConvId, i64)> {
        self.with(user, conn, |e| {
            e.inbox.load(states, claims);
            e.inbox.behind()
        })
        .unwrap_or_default()
    }

    /// The login's ack (frame `ack_index`, carrying `included` for an original client) is
    /// queued: release what was held back, in order, and go live. Returns whether a
    /// catch-up (the replay) must start.
    pub(crate) fn activate(
        &self,
        user: UserId,
        conn: u64,
        ack_index: u64,
        included: &[LoggedMessage],
    ) -> bool {
        self.with(user, conn, |entry| {
            for m in included {
                entry.inbox.fetched(m.conv, m.seq);
                entry.inbox.mark(ack_index, m.conv, m.seq);
            }
            for frame in entry.pending.take().unwrap_or_default() {
                if entry.out.try_send(frame).is_err() {
                    entry.out.close();
                    break;
                }
            }
            entry.inbox.go_live()
        })
        .unwrap_or(false)
    }

    /// Removes `user`'s session on connection `conn`, with what it held back and its last
    /// cursors (an original client's counting what reached its socket).
    pub(crate) fn remove(&self, user: UserId, conn: u64) -> Option<Removed> {
        let mut map = self.lock();
        let sessions = map.get_mut(&user)?;
        let at = sessions.list.iter().position(|e| e.conn == conn)?;
        let mut entry = sessions.list.swap_remove(at);
        if sessions.list.is_empty() {
            map.remove(&user);
        }
        entry.inbox.written(entry.out.written());
        entry.inbox.fetch_abandoned();
        Some(Removed {
            held: entry.pending.unwrap_or_default(),
            cursors: entry.inbox.unsaved(),
            token: entry.token,
        })
    }

    /// How many sessions `user` has here.
    pub(crate) fn count(&self, user: UserId) -> usize {
        self.lock().get(&user).map_or(0, |s| s.list.len())
    }

    /// Queues an unsequenced frame (one from a node that does not log messages) for each of
    /// `user`'s sessions here.
    pub fn deliver(&self, user: UserId, frame: Bytes) -> Delivered {
        let mut map = self.lock();
        let Some(sessions) = map.get_mut(&user) else { return Delivered::No };
        let mut any = false;
        for entry in &mut sessions.list {
            if let Some(pending) = &mut entry.pending {
                if pending.len() < self.pending_limit {
                    pending.push(frame.clone());
                    any = true;
                } else {
                    entry.out.close();
                }
                continue;
            }
            any |= entry.send(user, frame.clone()).is_some();
        }
        if any { Delivered::Yes } else { Delivered::No }
    }

    /// Offers a logged message to each of `user`'s sessions here, which push it only in its
    /// conversation's order (see [`Inbox`]); what a session must do next goes into `next`.
    /// The user's own message (sent from another session: a carbon) is pushed to extension
    /// sessions only; the one that sent it has passed it over already.
    pub(crate) fn offer(&self, user: UserId, item: &Item, next: &mut Vec<(u64, Offered)>) -> Where {
        let mut map = self.lock();
        let Some(sessions) = map.get_mut(&user) else { return Where::NotHere };
        let carbon = item.sender == user && item.conv != ConvId::direct(user, user);
        for entry in &mut sessions.list {
            if carbon && !entry.inbox.ext() {
                // The original client never sees what it did not send or receive.
                let released = entry.inbox.own(item.conv, item.seq);
                entry.push_items(user, &released);
                continue;
            }
            let done = match entry.inbox.offer(item) {
                Offer::Push(items) => {
                    entry.push_items(user, &items);
                    Offered::Done
                }
                Offer::Skip | Offer::Hold { timer: None } | Offer::Defer { start: false } => Offered::Done,
                Offer::Hold { timer: Some(generation) } => Offered::Gap(entry.conn, item.conv, generation),
                Offer::Defer { start: true } => Offered::CatchUp(entry.conn),
            };
            if done != Offered::Done {
                next.push((entry.conn, done));
            }
        }
        if sessions.shared { Where::HereAndElsewhere } else { Where::Here }
    }

    /// A gap's wait ran out: whether a catch-up must start for the session on `conn`.
    pub(crate) fn gap_expired(&self, user: UserId, conn: u64, conv: ConvId, generation: u64) -> bool {
        self.with(user, conn, |e| e.inbox.gap_expired(conv, generation)).unwrap_or(false)
    }

    /// `user` sent `seq` of `conv` from the session on `conn`.
    pub(crate) fn own(&self, user: UserId, conn: u64, conv: ConvId, seq: i64) {
        self.with(user, conn, |entry| {
            let released = entry.inbox.own(conv, seq);
            entry.push_items(user, &released);
        });
    }

    /// `user` joined `conv` when it stood at `seq`.
    pub(crate) fn joined(&self, user: UserId, conv: ConvId, seq: i64) {
        if let Some(sessions) = self.lock().get_mut(&user) {
            for entry in &mut sessions.list {
                entry.inbox.joined(conv, seq);
            }
        }
    }

    /// Of a catch-up's `from`, the groups the session on `conn` never loaded nor joined.
    pub(crate) fn unknown_groups(&self, user: UserId, conn: u64, from: &[(ConvId, i64)]) -> Vec<ConvId> {
        self.with(user, conn, |e| e.inbox.unknown_groups(from)).unwrap_or_default()
    }

    /// The session on `conn` learns that `user` joined `conv` at `seq` (elsewhere).
    pub(crate) fn joined_at(&self, user: UserId, conn: u64, conv: ConvId, seq: i64) {
        self.with(user, conn, |e| e.inbox.joined(conv, seq));
    }

    /// An extension client's acknowledgements. Returns the conversations whose cursor they
    /// moved forward, with the new cursor.
    pub(crate) fn ack(&self, user: UserId, conn: u64, acks: &[(ConvId, i64)]) -> Vec<(ConvId, i64)> {
        self.with(user, conn, |e| {
            acks.iter().filter_map(|&(conv, seq)| e.inbox.ack(conv, seq).map(|now| (conv, now))).collect()
        })
        .unwrap_or_default()
    }

    /// The cursors of `user`'s session on `conn`, per conversation.
    pub(crate) fn cursors(&self, user: UserId, conn: u64) -> Vec<(ConvId, i64)> {
        self.with(user, conn, |e| e.inbox.cursors()).unwrap_or_default()
    }

    /// `user`'s acknowledged cursors that are not in the database yet (the session on `conn`).
    pub(crate) fn unsaved_of(&self, user: UserId, conn: u64) -> Vec<(ConvId, i64)> {
        self.with(user, conn, |e| {
            e.inbox.written(e.out.written());
            e.inbox.unsaved()
        })
        .unwrap_or_default()
    }

    /// Every session's acknowledged cursors that are not in the database yet.
    pub(crate) fn unsaved(&self) -> Vec<Unsaved> {
        let mut map = self.lock();
        let mut out = Vec::new();
        for (&user, sessions) in map.iter_mut() {
            for entry in &mut sessions.list {
                entry.inbox.written(entry.out.written());
                out.extend(entry.inbox.unsaved().into_iter().map(|(conv, seq)| Unsaved {
                    user,
                    conn: entry.conn,
                    token: entry.token.clone(),
                    conv,
                    seq,
                }));
            }
        }
        out
    }

    /// These cursors are in the database now.
    pub(crate) fn saved(&self, list: &[Unsaved]) {
        let mut map = self.lock();
        for u in list {
            if let Some(entry) =
                map.get_mut(&u.user).and_then(|s| s.list.iter_mut().find(|e| e.conn == u.conn))
            {
                entry.inbox.saved(&[(u.conv, u.seq)]);
            }
        }
    }

    /// These cursors of the session on `conn` are in the database now.
    pub(crate) fn saved_of(&self, user: UserId, conn: u64, list: &[(ConvId, i64)]) {
        self.with(user, conn, |e| e.inbox.saved(list));
    }

    /// Every session may have missed messages: the sessions whose catch-up must start.
    pub(crate) fn all_stale(&self) -> Vec<(UserId, u64)> {
        let mut map = self.lock();
        let mut out = Vec::new();
        for (&user, sessions) in map.iter_mut() {
            for entry in &mut sessions.list {
                if entry.inbox.all_stale() {
                    out.push((user, entry.conn));
                }
            }
        }
        out
    }

    /// The session on `conn` may have missed messages: whether its catch-up must start.
    pub(crate) fn stale(&self, user: UserId, conn: u64) -> bool {
        self.with(user, conn, |e| e.inbox.all_stale()).unwrap_or(false)
    }

    /// Starts a catch-up read: the stale conversations and where each stands, and the
    /// connection's queue. `None` if the session is gone.
    pub(crate) fn begin_fetch(&self, user: UserId, conn: u64) -> Option<(Vec<(ConvId, i64)>, Outbound)> {
        self.with(user, conn, |e| (e.inbox.fetch_from(), e.out.clone()))
    }

    /// Pushes what a catch-up read found, in order, skipping what was delivered meanwhile
    /// and what the session sent itself (the user's own messages from before the session
    /// began too; those sent from its other sessions since are carbons and pushed), while
    /// the connection's queue has room for it beside live traffic (half of it).
    pub(crate) fn push_fetched(&self, user: UserId, conn: u64, found: &[LoggedMessage]) -> Fetched {
        self.with(user, conn, |e| {
            let mut room = e.out.room().saturating_sub(e.out.capacity() / 2);
            for m in found {
                let to_push =
                    (m.sender != user || e.inbox.carbon(m.conv, m.seq)) && m.seq > e.inbox.delivered(m.conv);
                if to_push && room == 0 {
                    return Fetched::Full;
                }
                if !e.inbox.fetched(m.conv, m.seq) || !to_push {
                    continue;
                }
                if m.conv.as_group().is_some() && e.muted.contains(&m.sender) {
                    continue;
                }
                room -= 1;
                let Some(index) = e.send(user, push_frame(m, e.inbox.ext())) else {
                    e.inbox.fetch_abandoned();
                    return Fetched::Gone;
                };
                e.inbox.mark(index, m.conv, m.seq);
                self.metrics.deliveries_replayed.inc();
            }
            Fetched::Done
        })
        .unwrap_or(Fetched::Gone)
    }

    /// A page was cut at its limit: those conversations need another read.
    pub(crate) fn more(&self, user: UserId, conn: u64, from: &[(ConvId, i64)]) {
        self.with(user, conn, |e| e.inbox.more(from));
    }

    /// A catch-up read is done: whether to read again.
    pub(crate) fn end_fetch(&self, user: UserId, conn: u64) -> bool {
        self.with(user, conn, |e| e.inbox.fetch_done()).unwrap_or(false)
    }

    /// A catch-up gave up.
    pub(crate) fn abandon_fetch(&self, user: UserId, conn: u64) {
        self.with(user, conn, |e| e.inbox.fetch_abandoned());
    }

    /// Closes `user`'s sessions here that `which` picks, telling extension clients `why` first
    /// (a NOTICE, written before the close with a short bound). A close logs the session out as
    /// a disconnect does. Returns how many it closed.
    fn close_where(&self, user: UserId, why: &str, which: impl Fn(&Entry) -> bool) -> usize {
        let closing: Vec<(Outbound, bool)> = match self.lock().get(&user) {
            Some(sessions) => {
                sessions.list.iter().filter(|e| which(e)).map(|e| (e.out.clone(), e.inbox.ext())).collect()
            }
            None => return 0,
        };
        let notice = Bytes::from(encode(&Notice::new(ErrorCode::Closing, why)));
        for (out, ext) in &closing {
            if !ext || out.try_send(notice.clone()).is_err() {
                out.close();
                continue;
            }
            let out = out.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(std::time::Duration::from_millis(500), out.flushed()).await;
                out.close();
            });
        }
        closing.len()
    }

    /// Closes every session of `user` here: another node holds the user now (a claim lost).
    pub(crate) fn take_over(&self, user: UserId) {
        self.close_where(user, TAKEN_OVER, |_| true);
    }

    /// Closes `user`'s session here whose token hash starts with `token` (a RESUME took it
    /// over elsewhere), or (no `token`) the user's original-protocol session.
    pub(crate) fn take_over_session(&self, user: UserId, token: Option<&str>, except: Option<u64>) -> usize {
        self.close_where(user, TAKEN_OVER, |e| {
            Some(e.conn) != except
                && match (token, &e.token) {
                    (Some(prefix), Some(hash)) => hash.starts_with(prefix),
                    (None, _) => !e.inbox.ext(),
                    (Some(_), None) => false,
                }
        })
    }

    /// Closes every session of `user` here but `except` ("log out everywhere").
    pub(crate) fn log_out_everywhere(&self, user: UserId, except: Option<u64>) -> usize {
        self.close_where(user, LOGGED_OUT_EVERYWHERE, |e| Some(e.conn) != except)
    }

    /// Queues an extension-only frame (an EVENT of issue 21, a presence push of issue 20) for
    /// `user`'s extension sessions here (a login in progress gets it after its ack); original
    /// clients never get it. Whether some session took it.
    pub(crate) fn push_ext(&self, user: UserId, frame: Bytes) -> bool {
        self.push_ext_except(user, frame, None)
    }

    /// As [`push_ext`](Self::push_ext), but not to the session on connection `except` (the
    /// one that caused it: a MARK_READ's own session, issue 20).
    pub(crate) fn push_ext_except(&self, user: UserId, frame: Bytes, except: Option<u64>) -> bool {
        let mut map = self.lock();
        let Some(sessions) = map.get_mut(&user) else { return false };
        let mut any = false;
        for entry in sessions.list.iter_mut().filter(|e| e.inbox.ext() && Some(e.conn) != except) {
            if let Some(pending) = &mut entry.pending {
                if pending.len() < self.pending_limit {
                    pending.push(frame.clone());
                    any = true;
                }
            } else {
                any |= entry.send(user, frame.clone()).is_some();
            }
        }
        any
    }

    /// The users `user` blocks (its session on `conn`): their group messages are not pushed.
    pub(crate) fn set_muted(&self, user: UserId, conn: u64, muted: Vec<UserId>) {
        self.with(user, conn, |e| e.muted = muted.into_iter().collect());
    }

    /// `user` blocked (`on`) or unblocked `other`: every session of the user here.
    pub(crate) fn mute(&self, user: UserId, other: UserId, on: bool) {
        if let Some(sessions) = self.lock().get_mut(&user) {
            for entry in &mut sessions.list {
                if on {
                    entry.muted.insert(other);
                } else {
                    entry.muted.remove(&other);
                }
            }
        }
    }

    /// `user` left group conversation `conv`: its sessions push nothing more of it.
    pub(crate) fn left(&self, user: UserId, conv: ConvId) {
        if let Some(sessions) = self.lock().get_mut(&user) {
            for entry in &mut sessions.list {
                entry.inbox.left(conv);
            }
        }
    }

    /// Ends `user`'s sessions here but the one on connection `keep`: an extension client is
    /// told `why` first (a NOTICE, errno 15); the close logs it out as a disconnect does.
    pub(crate) fn end_except(&self, user: UserId, keep: Option<u64>, why: &str) {
        self.close_where(user, why, |e| Some(e.conn) != keep);
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
        self.lock().values().map(|s| s.list.len()).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
