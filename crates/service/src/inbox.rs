//! One session's place in each of its conversations: what was pushed to the
//! client (`delivered`), what it acknowledged (`acked`) and what of that is in
//! the database (`saved`). Pure state, no I/O: `Sessions` keeps one per session
//! under its lock, `durable.rs` drives the catch-up reads it asks for.
//!
//! A message reaches a client only in its conversation's order: a live message
//! with the next seq is pushed at once, an older one is a duplicate and dropped,
//! and a newer one (something in between was missed: a lost publish, a race of
//! two nodes) makes the conversation stale, to be read from the log instead.
//! Because every message is stored before it is published, a read that starts
//! after a message was seen live always finds it.

use std::collections::{HashMap, HashSet, VecDeque};

use chat_ports::ConvState;
use chat_proto::ConvId;

/// One conversation of a session.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Track {
    /// Highest seq pushed to the client (or skipped: own messages, a duplicate).
    delivered: i64,
    /// Highest seq the client acknowledged (extension) or that reached its socket (original).
    acked: i64,
    /// Highest seq written to the database as the user's cursor.
    saved: i64,
    /// The conversation's newest seq as last seen at login (bounds what a resume may claim).
    last: i64,
}

/// What to do with a live message offered to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// The next in its conversation: push it.
    Push,
    /// Already delivered: drop it.
    Skip,
    /// Out of order or too early: it will come from the log. `start`: no catch-up runs yet, start one.
    Defer { start: bool },
}

/// A session's conversations.
#[derive(Debug)]
pub(crate) struct Inbox {
    /// An extension client (acknowledges); otherwise the original client (its socket does).
    ext: bool,
    /// False while the login loads: every offer is deferred to the first catch-up.
    live: bool,
    convs: HashMap<ConvId, Track>,
    /// Conversations to read from the log at the next catch-up.
    stale: HashSet<ConvId>,
    /// A catch-up task runs for this session.
    catching_up: bool,
    /// Original clients: (frame index, conversation, seq) of frames queued but maybe not written.
    marks: VecDeque<(u64, ConvId, i64)>,
}

impl Inbox {
    /// A loading inbox (see [`Inbox::load`] and [`Inbox::go_live`]).
    pub(crate) fn new(ext: bool) -> Inbox {
        Inbox {
            ext,
            live: false,
            convs: HashMap::new(),
            stale: HashSet::new(),
            catching_up: false,
            marks: VecDeque::new(),
        }
    }

    /// Whether the client acknowledges (extension) rather than its socket (original).
    pub(crate) fn ext(&self) -> bool {
        self.ext
    }

    /// The conversations and cursors read at login. `claims`, from a RESUME, say what the client
    /// already has: they move delivery (and the cursor) forward, never past the conversation's end.
    pub(crate) fn load(&mut self, states: &[ConvState], claims: &[(ConvId, i64)]) {
        for s in states {
            let track = Track { delivered: s.cursor, acked: s.cursor, saved: s.cursor, last: s.last_seq };
            self.convs.insert(s.conv, track);
        }
        for &(conv, seq) in claims {
            if let Some(t) = self.convs.get_mut(&conv) {
                let seq = seq.min(t.last);
                t.delivered = t.delivered.max(seq);
                t.acked = t.acked.max(seq);
            }
        }
        for (&conv, t) in &self.convs {
            if t.last > t.delivered {
                self.stale.insert(conv);
            }
        }
    }

    /// Per conversation with something after the cursor: the cursor (for unread counts and replay).
    pub(crate) fn behind(&self) -> Vec<(ConvId, i64)> {
        self.convs.iter().filter(|(_, t)| t.last > t.delivered).map(|(&c, t)| (c, t.delivered)).collect()
    }

    /// Every conversation with the client's cursor.
    pub(crate) fn cursors(&self) -> Vec<(ConvId, i64)> {
        self.convs.iter().map(|(&c, t)| (c, t.acked)).collect()
    }

    /// The login's ack is out: live from now. Returns whether a catch-up must start.
    pub(crate) fn go_live(&mut self) -> bool {
        self.live = true;
        self.start_if_stale()
    }

    fn start_if_stale(&mut self) -> bool {
        if self.stale.is_empty() || self.catching_up {
            return false;
        }
        self.catching_up = true;
        true
    }

    /// A live message `seq` of `conv`.
    pub(crate) fn offer(&mut self, conv: ConvId, seq: i64) -> Offer {
        let track = self.convs.entry(conv).or_default();
        if seq <= track.delivered {
            return Offer::Skip;
        }
        if self.live && seq == track.delivered + 1 {
            track.delivered = seq;
            return Offer::Push;
        }
        self.stale.insert(conv);
        if !self.live {
            return Offer::Defer { start: false };
        }
        Offer::Defer { start: self.start_if_stale() }
    }

    /// The user sent `seq` in `conv` themselves: nothing to push, but the conversation moves on.
    pub(crate) fn own(&mut self, conv: ConvId, seq: i64) {
        let track = self.convs.entry(conv).or_default();
        if track.delivered + 1 == seq {
            track.delivered = seq;
        }
    }

    /// The user joined `conv` at `seq`: what came before is not theirs to receive.
    pub(crate) fn joined(&mut self, conv: ConvId, seq: i64) {
        let track = self.convs.entry(conv).or_default();
        track.delivered = track.delivered.max(seq);
        track.acked = track.acked.max(seq);
        track.saved = track.saved.max(seq);
        track.last = track.last.max(seq);
    }

    /// Every conversation may have missed something (the broker lost messages): read them all.
    /// Returns whether a catch-up must start.
    pub(crate) fn all_stale(&mut self) -> bool {
        self.stale.extend(self.convs.keys().copied());
        self.live && self.start_if_stale()
    }

    /// Starts a catch-up read: the stale conversations and where each stands.
    pub(crate) fn fetch_from(&mut self) -> Vec<(ConvId, i64)> {
        let from: Vec<(ConvId, i64)> =
            self.stale.drain().map(|c| (c, self.convs.get(&c).map_or(0, |t| t.delivered))).collect();
        from
    }

    /// After a page read from `from` that was cut at its limit: keep reading those.
    pub(crate) fn more(&mut self, from: &[(ConvId, i64)]) {
        self.stale.extend(from.iter().map(|(c, _)| *c));
    }

    /// The highest seq of `conv` pushed (or skipped) so far.
    pub(crate) fn delivered(&self, conv: ConvId) -> i64 {
        self.convs.get(&conv).map_or(0, |t| t.delivered)
    }

    /// A message read from the log: whether to push it (it is past what was delivered).
    pub(crate) fn fetched(&mut self, conv: ConvId, seq: i64) -> bool {
        let track = self.convs.entry(conv).or_default();
        if seq <= track.delivered {
            return false;
        }
        track.delivered = seq;
        true
    }

    /// A catch-up read is done: whether to read again (something went stale meanwhile).
    pub(crate) fn fetch_done(&mut self) -> bool {
        if self.stale.is_empty() {
            self.catching_up = false;
            return false;
        }
        true
    }

    /// A catch-up gave up (the session is going): let a later one start.
    pub(crate) fn fetch_abandoned(&mut self) {
        self.catching_up = false;
    }

    /// Original clients: frame `index` carries `seq` of `conv`.
    pub(crate) fn mark(&mut self, index: u64, conv: ConvId, seq: i64) {
        if !self.ext {
            self.marks.push_back((index, conv, seq));
        }
    }

    /// Extension clients: the client has everything of `conv` up to `seq`.
    pub(crate) fn ack(&mut self, conv: ConvId, seq: i64) {
        if !self.ext {
            return;
        }
        if let Some(t) = self.convs.get_mut(&conv) {
            t.acked = t.acked.max(seq.min(t.delivered));
        }
    }

    /// Original clients: `written` frames have reached the socket; their seqs count as acknowledged.
    pub(crate) fn written(&mut self, written: u64) {
        while let Some(&(index, conv, seq)) = self.marks.front() {
            if index > written {
                break;
            }
            self.marks.pop_front();
            if let Some(t) = self.convs.get_mut(&conv) {
                t.acked = t.acked.max(seq);
            }
        }
    }

    /// Cursors acknowledged but not yet in the database.
    pub(crate) fn unsaved(&self) -> Vec<(ConvId, i64)> {
        self.convs.iter().filter(|(_, t)| t.acked > t.saved).map(|(&c, t)| (c, t.acked)).collect()
    }

    /// These cursors are in the database now.
    pub(crate) fn saved(&mut self, list: &[(ConvId, i64)]) {
        for &(conv, seq) in list {
            if let Some(t) = self.convs.get_mut(&conv) {
                t.saved = t.saved.max(seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ConvId = ConvId(1 << 32 | 2);
    const G: ConvId = ConvId(-5);

    fn live(ext: bool, states: &[(ConvId, i64, i64)]) -> Inbox {
        let mut inbox = Inbox::new(ext);
        let states: Vec<ConvState> =
            states.iter().map(|&(conv, last_seq, cursor)| ConvState { conv, last_seq, cursor }).collect();
        inbox.load(&states, &[]);
        inbox
    }

    #[test]
    fn in_order_pushes_duplicates_skip_gaps_defer_once() {
        let mut inbox = live(true, &[(A, 0, 0)]);
        assert!(!inbox.go_live(), "nothing to replay");
        assert_eq!(inbox.offer(A, 1), Offer::Push);
        assert_eq!(inbox.offer(A, 1), Offer::Skip);
        assert_eq!(inbox.offer(A, 3), Offer::Defer { start: true });
        assert_eq!(inbox.offer(A, 4), Offer::Defer { start: false }, "one catch-up at a time");
        assert_eq!(inbox.fetch_from(), vec![(A, 1)]);
        assert!(inbox.fetched(A, 2) && inbox.fetched(A, 3) && inbox.fetched(A, 4));
        assert!(!inbox.fetched(A, 3));
        assert!(!inbox.fetch_done());
        assert_eq!(inbox.offer(A, 5), Offer::Push, "live again after the catch-up");
    }

    #[test]
    fn a_loading_session_defers_everything_and_replays_from_its_cursor() {
        let mut inbox = live(true, &[(A, 10, 4), (G, 3, 3)]);
        assert_eq!(inbox.offer(G, 4), Offer::Defer { start: false });
        assert_eq!(inbox.behind(), vec![(A, 4)]);
        assert!(inbox.go_live());
        let mut from = inbox.fetch_from();
        from.sort();
        assert_eq!(from, vec![(G, 3), (A, 4)]);
    }

    #[test]
    fn a_resume_claim_moves_delivery_but_not_past_the_end() {
        let mut inbox = Inbox::new(true);
        inbox.load(&[ConvState { conv: A, last_seq: 10, cursor: 2 }], &[(A, 99)]);
        assert_eq!(inbox.cursors(), vec![(A, 10)]);
        assert!(!inbox.go_live());
        assert_eq!(inbox.offer(A, 11), Offer::Push);
    }

    #[test]
    fn acks_are_cumulative_and_bounded_by_what_was_delivered() {
        let mut inbox = live(true, &[(A, 0, 0)]);
        inbox.go_live();
        for seq in 1..=5 {
            assert_eq!(inbox.offer(A, seq), Offer::Push);
        }
        inbox.ack(A, 3);
        inbox.ack(A, 2);
        assert_eq!(inbox.unsaved(), vec![(A, 3)]);
        inbox.ack(A, 50);
        assert_eq!(inbox.unsaved(), vec![(A, 5)], "never past what was pushed");
        inbox.saved(&[(A, 5)]);
        assert!(inbox.unsaved().is_empty());
    }

    #[test]
    fn original_clients_acknowledge_what_reached_the_socket() {
        let mut inbox = live(false, &[(A, 0, 0)]);
        inbox.go_live();
        for (index, seq) in [(1, 1), (2, 2), (3, 3)] {
            assert_eq!(inbox.offer(A, seq), Offer::Push);
            inbox.mark(index, A, seq);
        }
        inbox.ack(A, 3);
        inbox.written(2);
        assert_eq!(inbox.unsaved(), vec![(A, 2)], "frame 3 was never written; acks are ignored");
    }

    #[test]
    fn own_messages_and_joins_move_delivery() {
        let mut inbox = live(true, &[(G, 0, 0)]);
        inbox.go_live();
        inbox.own(G, 1);
        assert_eq!(inbox.offer(G, 2), Offer::Push);
        inbox.joined(ConvId(-9), 40);
        assert_eq!(inbox.offer(ConvId(-9), 41), Offer::Push);
        assert!(inbox.all_stale());
        assert_eq!(inbox.fetch_from().len(), 2);
    }
}
