//! The registry of this node's logged-in users: user → connection queue and
//! the session's [`Inbox`] (its place in each conversation).
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

/// What happened to an unsequenced frame handed to [`Sessions::deliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Queued for the user's connection on this node.
    Yes,
    /// The user has no session on this node (or it just failed): route it elsewhere.
    No,
}

/// What happened to a logged message offered to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    /// The user has no session here: route it elsewhere.
    NotHere,
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
}

/// This node's sessions.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<UserId, Entry>>,
    /// Frames a login may hold back before its ack; beyond this the client counts as not reading.
    pending_limit: usize,
    metrics: std::sync::Arc<chat_metrics::Metrics>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Entry>> {
        // A poisoned lock only means a panic elsewhere; the map itself is still consistent.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on `user`'s session if it belongs to connection `conn`.
    fn with<T>(&self, user: UserId, conn: u64, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        let mut map = self.lock();
        map.get_mut(&user).filter(|e| e.conn == conn).map(f)
    }

    /// Registers `user` on connection `conn` unless it has a session here already.
    /// Frames for it are held back until [`Sessions::activate`].
    pub fn try_insert(&self, user: UserId, conn: u64, out: Outbound, ext: bool) -> bool {
        let mut map = self.lock();
        if map.contains_key(&user) {
            return false;
        }
        let metrics = self.metrics.clone();
        let muted = Default::default();
        map.insert(
            user,
            Entry { conn, metrics, out, pending: Some(Vec::new()), inbox: Inbox::new(ext), muted },
        );
        true
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

    /// Removes `user` if the session belongs to connection `conn`, with what it held back
    /// and its last cursors (an original client's counting what reached its socket).
    pub(crate) fn remove(&self, user: UserId, conn: u64) -> Option<Removed> {
        let mut map = self.lock();
        if map.get(&user).is_none_or(|e| e.conn != conn) {
            return None;
        }
        let mut entry = map.remove(&user)?;
        entry.inbox.written(entry.out.written());
        entry.inbox.fetch_abandoned();
        Some(Removed { held: entry.pending.unwrap_or_default(), cursors: entry.inbox.unsaved() })
    }

    /// Queues an unsequenced frame (one from a node that does not log messages) for `user`
    /// if the user is here.
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
        if entry.send(user, frame).is_some() { Delivered::Yes } else { Delivered::No }
    }

    /// Offers a logged message to `user`'s session, which pushes it only in its
    /// conversation's order (see [`Inbox`]).
    pub(crate) fn offer(&self, user: UserId, item: &Item) -> Offered {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(&user) else { return Offered::NotHere };
        match entry.inbox.offer(item) {
            Offer::Push(items) => {
                entry.push_items(user, &items);
                Offered::Done
            }
            Offer::Skip | Offer::Hold { timer: None } | Offer::Defer { start: false } => Offered::Done,
            Offer::Hold { timer: Some(generation) } => Offered::Gap(entry.conn, item.conv, generation),
            Offer::Defer { start: true } => Offered::CatchUp(entry.conn),
        }
    }

    /// A gap's wait ran out: whether a catch-up must start for the session on `conn`.
    pub(crate) fn gap_expired(&self, user: UserId, conn: u64, conv: ConvId, generation: u64) -> bool {
        self.with(user, conn, |e| e.inbox.gap_expired(conv, generation)).unwrap_or(false)
    }

    /// `user` sent `seq` of `conv`.
    pub(crate) fn own(&self, user: UserId, conv: ConvId, seq: i64) {
        if let Some(entry) = self.lock().get_mut(&user) {
            let released = entry.inbox.own(conv, seq);
            entry.push_items(user, &released);
        }
    }

    /// `user` joined `conv` when it stood at `seq`.
    pub(crate) fn joined(&self, user: UserId, conv: ConvId, seq: i64) {
        if let Some(entry) = self.lock().get_mut(&user) {
            entry.inbox.joined(conv, seq);
        }
    }

    /// An extension client's acknowledgements.
    pub(crate) fn ack(&self, user: UserId, conn: u64, acks: &[(ConvId, i64)]) {
        self.with(user, conn, |e| {
            for &(conv, seq) in acks {
                e.inbox.ack(conv, seq);
            }
        });
    }

    /// `user`'s cursors, per conversation.
    pub(crate) fn cursors(&self, user: UserId) -> Vec<(ConvId, i64)> {
        self.lock().get(&user).map(|e| e.inbox.cursors()).unwrap_or_default()
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
    pub(crate) fn unsaved(&self) -> Vec<(UserId, ConvId, i64)> {
        let mut map = self.lock();
        let mut out = Vec::new();
        for (&user, entry) in map.iter_mut() {
            entry.inbox.written(entry.out.written());
            out.extend(entry.inbox.unsaved().into_iter().map(|(c, s)| (user, c, s)));
        }
        out
    }

    /// These cursors are in the database now.
    pub(crate) fn saved(&self, list: &[(UserId, ConvId, i64)]) {
        let mut map = self.lock();
        for &(user, conv, seq) in list {
            if let Some(entry) = map.get_mut(&user) {
                entry.inbox.saved(&[(conv, seq)]);
            }
        }
    }

    /// Every session may have missed messages: the sessions whose catch-up must start.
    pub(crate) fn all_stale(&self) -> Vec<(UserId, u64)> {
        let mut map = self.lock();
        map.iter_mut().filter_map(|(&u, e)| e.inbox.all_stale().then_some((u, e.conn))).collect()
    }

    /// Starts a catch-up read: the stale conversations and where each stands, and the
    /// connection's queue. `None` if the session is gone.
    pub(crate) fn begin_fetch(&self, user: UserId, conn: u64) -> Option<(Vec<(ConvId, i64)>, Outbound)> {
        self.with(user, conn, |e| (e.inbox.fetch_from(), e.out.clone()))
    }

    /// Pushes what a catch-up read found, in order, skipping what was delivered meanwhile
    /// and the user's own messages, while the connection's queue has room for it beside
    /// live traffic (half of it).
    pub(crate) fn push_fetched(&self, user: UserId, conn: u64, found: &[LoggedMessage]) -> Fetched {
        self.with(user, conn, |e| {
            let mut room = e.out.room().saturating_sub(e.out.capacity() / 2);
            for m in found {
                let to_push = m.sender != user && m.seq > e.inbox.delivered(m.conv);
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

    /// Closes `user`'s connection here, if any, because a RESUME took the session over
    /// elsewhere: an extension client is told why first (a NOTICE, written before the close
    /// with a short bound), so it does not resume back. The close logs the user out as a
    /// disconnect does.
    pub(crate) fn take_over(&self, user: UserId) {
        let Some((out, ext)) = self.lock().get(&user).map(|e| (e.out.clone(), e.inbox.ext())) else { return };
        let notice = encode(&Notice::new(ErrorCode::Closing, TAKEN_OVER));
        if !ext || out.try_send(Bytes::from(notice)).is_err() {
            out.close();
            return;
        }
        tokio::spawn(async move {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), out.flushed()).await;
            out.close();
        });
    }

    /// Queues an extension-only frame (an EVENT of issue 21) for `user`'s session here, if it
    /// is an extension client's; original clients never get it. Whether it was queued.
    pub(crate) fn push_ext(&self, user: UserId, frame: Bytes) -> bool {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(&user) else { return false };
        if !entry.inbox.ext() {
            return false;
        }
        if let Some(pending) = &mut entry.pending {
            if pending.len() < self.pending_limit {
                pending.push(frame);
                return true;
            }
            return false;
        }
        entry.send(user, frame).is_some()
    }

    /// The users `user` blocks (its session on `conn`): their group messages are not pushed.
    pub(crate) fn set_muted(&self, user: UserId, conn: u64, muted: Vec<UserId>) {
        self.with(user, conn, |e| e.muted = muted.into_iter().collect());
    }

    /// `user` blocked (`on`) or unblocked `other`.
    pub(crate) fn mute(&self, user: UserId, other: UserId, on: bool) {
        if let Some(entry) = self.lock().get_mut(&user) {
            if on {
                entry.muted.insert(other);
            } else {
                entry.muted.remove(&other);
            }
        }
    }

    /// `user` left group conversation `conv`: its session pushes nothing more of it.
    pub(crate) fn left(&self, user: UserId, conv: ConvId) {
        if let Some(entry) = self.lock().get_mut(&user) {
            entry.inbox.left(conv);
        }
    }

    /// Ends `user`'s session here unless it is on connection `keep`: an extension client is
    /// told `why` first (a NOTICE, errno 15); the close logs the user out as a disconnect does.
    pub(crate) fn end_except(&self, user: UserId, keep: Option<u64>, why: &str) {
        let found =
            self.lock().get(&user).filter(|e| Some(e.conn) != keep).map(|e| (e.out.clone(), e.inbox.ext()));
        let Some((out, ext)) = found else { return };
        let notice = encode(&Notice::new(ErrorCode::Closing, why));
        if !ext || out.try_send(Bytes::from(notice)).is_err() {
            out.close();
            return;
        }
        tokio::spawn(async move {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), out.flushed()).await;
            out.close();
        });
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
