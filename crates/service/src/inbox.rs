//! One session's place in each of its conversations: what was pushed to the
//! client (`delivered`), what it acknowledged (`acked`) and what of that is in
//! the database (`saved`). Pure state, no I/O: `Sessions` keeps one per session
//! under its lock, `durable.rs` drives the catch-up reads it asks for.
//!
//! A message reaches a client only in its conversation's order: a live message
//! with the next seq is pushed at once, an older one is a duplicate and dropped,
//! and a newer one waits (briefly, bounded) for the ones before it: two nodes'
//! publishes to one conversation race, and the user's own message may be counted
//! a moment later. If the gap does not fill within [`GAP_WAIT`] (a lost publish),
//! the conversation turns stale and is read from the log instead. Because every
//! message is stored before it is published, a read that starts after a message
//! was seen live always finds it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use chat_ports::ConvState;
use chat_proto::ConvId;

use crate::durable::Item;

/// How long a message after a gap waits for the gap to fill before the log is read.
pub(crate) const GAP_WAIT: Duration = Duration::from_millis(150);
/// Messages a session holds back behind gaps, at most (beyond, it reads the log).
const HELD_MAX: usize = 512;

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
    /// The user's own messages up to here were sent before this session began: a catch-up
    /// does not push them (carbons are for what the user sends while the session lives).
    floor: i64,
    /// Read at login or joined here; otherwise first met in a message (a new conversation,
    /// or a group the user joined from another session).
    known: bool,
}

/// What to do with a live message offered to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Push these, in order: the message, and those held back behind it.
    Push(Vec<Item>),
    /// Already delivered: drop it.
    Skip,
    /// Held back behind a gap. `timer`: the gap is new; check it again after [`GAP_WAIT`]
    /// (with this generation, see [`Inbox::gap_expired`]).
    Hold { timer: Option<u64> },
    /// It will come from the log. `start`: no catch-up runs yet, start one.
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
    /// Live messages waiting behind a gap, by conversation and seq (`None`: the user's own
    /// message, passed over without a push).
    held: HashMap<ConvId, BTreeMap<i64, Option<Item>>>,
    held_count: usize,
    /// Open gaps: conversation → the generation of its timer.
    gaps: HashMap<ConvId, u64>,
    next_gap: u64,
    /// Groups the user left or was removed from during the session: nothing more of them
    /// is pushed, whichever path it comes by (issue 21).
    gone: HashSet<ConvId>,
    /// Own messages this session sent that it has not passed over yet (behind a gap or a
    /// catch-up): never pushed back to it as carbons.
    sent: HashSet<(ConvId, i64)>,
}

/// Own messages [`Inbox::sent`] remembers, at most (beyond, one may come back as a carbon,
/// which the client drops by its `mid`).
const SENT_MAX: usize = 4096;

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
            held: HashMap::new(),
            held_count: 0,
            gaps: HashMap::new(),
            next_gap: 0,
            gone: HashSet::new(),
            sent: HashSet::new(),
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
            let track = Track {
                delivered: s.cursor,
                acked: s.cursor,
                saved: s.cursor,
                last: s.last_seq,
                floor: s.last_seq,
                known: true,
            };
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

    /// A live message.
    pub(crate) fn offer(&mut self, item: &Item) -> Offer {
        let (conv, seq) = (item.conv, item.seq);
        if self.gone.contains(&conv) {
            return Offer::Skip;
        }
        let delivered = self.convs.entry(conv).or_default().delivered;
        if seq <= delivered {
            return Offer::Skip;
        }
        if !self.live || self.stale.contains(&conv) {
            self.stale.insert(conv);
            self.forget_held(conv);
            return Offer::Defer { start: self.live && self.start_if_stale() };
        }
        if seq == delivered + 1 {
            let mut out = vec![item.clone()];
            self.advance(conv, seq, &mut out);
            return Offer::Push(out);
        }
        if self.held_count >= HELD_MAX {
            return self.give_up_on(conv);
        }
        self.hold(conv, seq, Some(item.clone()))
    }

    /// Keeps `seq` of `conv` behind its gap; starts the gap's timer if the gap is new.
    fn hold(&mut self, conv: ConvId, seq: i64, item: Option<Item>) -> Offer {
        // What is held first stays: an own message (`None`) is never replaced by its carbon.
        let held = self.held.entry(conv).or_default();
        if let std::collections::btree_map::Entry::Vacant(slot) = held.entry(seq) {
            slot.insert(item);
            self.held_count += 1;
        }
        if self.gaps.contains_key(&conv) {
            return Offer::Hold { timer: None };
        }
        self.next_gap += 1;
        self.gaps.insert(conv, self.next_gap);
        Offer::Hold { timer: Some(self.next_gap) }
    }

    /// `conv` is delivered up to `seq`: move on through what was held behind it (into `out`).
    fn advance(&mut self, conv: ConvId, seq: i64, out: &mut Vec<Item>) {
        let mut delivered = seq;
        if let Some(held) = self.held.get_mut(&conv) {
            while let Some(next) = held.remove(&(delivered + 1)) {
                self.held_count -= 1;
                delivered += 1;
                out.extend(next);
            }
            // Anything left at or below `delivered` came twice.
            let before = held.len();
            held.retain(|&s, _| s > delivered);
            self.held_count -= before - held.len();
            if held.is_empty() {
                self.held.remove(&conv);
                self.gaps.remove(&conv);
            }
        }
        if let Some(t) = self.convs.get_mut(&conv) {
            t.delivered = delivered;
        }
    }

    fn forget_held(&mut self, conv: ConvId) {
        if let Some(held) = self.held.remove(&conv) {
            self.held_count -= held.len();
        }
        self.gaps.remove(&conv);
    }

    /// Reads `conv` from the log instead of waiting for its gap.
    fn give_up_on(&mut self, conv: ConvId) -> Offer {
        self.forget_held(conv);
        self.stale.insert(conv);
        Offer::Defer { start: self.start_if_stale() }
    }

    /// The gap timer `generation` of `conv` ran out: if that gap is still open, read the log.
    /// Returns whether a catch-up must start.
    pub(crate) fn gap_expired(&mut self, conv: ConvId, generation: u64) -> bool {
        if self.gaps.get(&conv) != Some(&generation) {
            return false;
        }
        matches!(self.give_up_on(conv), Offer::Defer { start: true })
    }

    /// The user sent `seq` in `conv` themselves: nothing to push for it, but the
    /// conversation moves past it (now, or when the messages before it came); returns
    /// what was held behind it.
    pub(crate) fn own(&mut self, conv: ConvId, seq: i64) -> Vec<Item> {
        let mut out = Vec::new();
        let track = self.convs.entry(conv).or_default();
        let delivered = track.delivered;
        if seq <= delivered {
            return out;
        }
        if !self.live || self.stale.contains(&conv) {
            // The coming read covers it (it skips what this session sent).
            if seq == delivered + 1 {
                track.delivered = seq;
            } else {
                self.remember_sent(conv, seq);
            }
            return out;
        }
        if seq == delivered + 1 {
            self.advance(conv, seq, &mut out);
        } else {
            self.remember_sent(conv, seq);
            if self.held_count < HELD_MAX {
                // Sent after messages this session has not seen yet (another node's, racing).
                let _ = self.hold(conv, seq, None);
            }
        }
        out
    }

    fn remember_sent(&mut self, conv: ConvId, seq: i64) {
        if self.sent.len() >= SENT_MAX {
            let convs = &self.convs;
            self.sent.retain(|(c, s)| convs.get(c).is_some_and(|t| *s > t.delivered));
            if self.sent.len() >= SENT_MAX {
                self.sent.clear();
            }
        }
        self.sent.insert((conv, seq));
    }

    /// Whether the user's own message `seq` of `conv`, read from the log, is a carbon for this
    /// session: sent from another session while this one lives (extension clients only).
    pub(crate) fn carbon(&self, conv: ConvId, seq: i64) -> bool {
        self.ext && seq > self.convs.get(&conv).map_or(0, |t| t.floor) && !self.sent.contains(&(conv, seq))
    }

    /// The user joined `conv` at `seq`: what came before is not theirs to receive.
    /// (Written as a cursor at the next flush: a resumed session starts the group there.)
    pub(crate) fn joined(&mut self, conv: ConvId, seq: i64) {
        self.gone.remove(&conv);
        let track = self.convs.entry(conv).or_default();
        track.delivered = track.delivered.max(seq);
        track.acked = track.acked.max(seq);
        track.last = track.last.max(seq);
        track.known = true;
    }

    /// Of `from`, the groups this session never loaded nor joined: joined from another
    /// session, so what came before the join is not the user's (the join's cursor says where).
    pub(crate) fn unknown_groups(&self, from: &[(ConvId, i64)]) -> Vec<ConvId> {
        from.iter()
            .filter(|(c, _)| c.as_group().is_some() && !self.convs.get(c).is_some_and(|t| t.known))
            .map(|(c, _)| *c)
            .collect()
    }

    /// The user left `conv` (a group): forget it, and push nothing more of it.
    pub(crate) fn left(&mut self, conv: ConvId) {
        self.convs.remove(&conv);
        self.stale.remove(&conv);
        self.forget_held(conv);
        self.gone.insert(conv);
    }

    /// Every conversation may have missed something (the broker lost messages): read them all.
    /// Returns whether a catch-up must start.
    pub(crate) fn all_stale(&mut self) -> bool {
        self.stale.extend(self.convs.keys().copied());
        self.held.clear();
        self.held_count = 0;
        self.gaps.clear();
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
        if self.gone.contains(&conv) {
            return false;
        }
        let track = self.convs.entry(conv).or_default();
        if seq <= track.delivered {
            return false;
        }
        track.delivered = seq;
        if !self.sent.is_empty() {
            self.sent.remove(&(conv, seq));
        }
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
    /// Returns the new cursor if the ack moved it forward (a "recv" receipt, issue 20).
    pub(crate) fn ack(&mut self, conv: ConvId, seq: i64) -> Option<i64> {
        if !self.ext {
            return None;
        }
        let t = self.convs.get_mut(&conv)?;
        let before = t.acked;
        t.acked = t.acked.max(seq.min(t.delivered));
        (t.acked > before).then_some(t.acked)
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

    fn item(conv: ConvId, seq: i64) -> Item {
        Item { conv, seq, sender: chat_proto::UserId(99), frame: bytes::Bytes::from(format!("{seq}")) }
    }

    fn seqs(offer: Offer) -> Vec<i64> {
        match offer {
            Offer::Push(items) => items.iter().map(|i| i.seq).collect(),
            other => panic!("expected a push, got {other:?}"),
        }
    }

    /// Issue 21: a group the user left or was removed from pushes nothing more, live or read
    /// from the log, until the user joins it again.
    #[test]
    fn a_group_left_pushes_nothing_more() {
        let mut inbox = live(true, &[(G, 3, 3)]);
        assert!(!inbox.go_live());
        assert_eq!(inbox.offer(&item(G, 5)), Offer::Hold { timer: Some(1) });
        inbox.left(G);
        assert_eq!(inbox.offer(&item(G, 4)), Offer::Skip);
        assert!(!inbox.fetched(G, 4), "nor from the log");
        assert!(inbox.cursors().is_empty(), "no cursor is kept for it");
        inbox.joined(G, 9);
        assert_eq!(seqs(inbox.offer(&item(G, 10))), [10], "joined again");
    }

    #[test]
    fn in_order_pushes_duplicates_skip_gaps_wait_then_read_the_log() {
        let mut inbox = live(true, &[(A, 0, 0)]);
        assert!(!inbox.go_live(), "nothing to replay");
        assert_eq!(seqs(inbox.offer(&item(A, 1))), [1]);
        assert_eq!(inbox.offer(&item(A, 1)), Offer::Skip);
        assert_eq!(inbox.offer(&item(A, 3)), Offer::Hold { timer: Some(1) });
        assert_eq!(inbox.offer(&item(A, 4)), Offer::Hold { timer: None }, "one timer per gap");
        assert_eq!(seqs(inbox.offer(&item(A, 2))), [2, 3, 4], "the gap filled in time");
        assert_eq!(inbox.offer(&item(A, 6)), Offer::Hold { timer: Some(2) });
        assert!(!inbox.gap_expired(A, 1), "an old timer does nothing");
        assert!(inbox.gap_expired(A, 2), "the gap stayed open: read the log");
        assert_eq!(inbox.offer(&item(A, 7)), Offer::Defer { start: false }, "one catch-up at a time");
        assert_eq!(inbox.fetch_from(), vec![(A, 4)]);
        assert!(inbox.fetched(A, 5) && inbox.fetched(A, 6) && inbox.fetched(A, 7));
        assert!(!inbox.fetched(A, 6));
        assert!(!inbox.fetch_done());
        assert_eq!(seqs(inbox.offer(&item(A, 8))), [8], "live again after the catch-up");
    }

    #[test]
    fn held_messages_are_bounded() {
        let mut inbox = live(true, &[(A, 0, 0)]);
        inbox.go_live();
        for seq in 2..(2 + HELD_MAX as i64) {
            assert!(matches!(inbox.offer(&item(A, seq)), Offer::Hold { .. }));
        }
        assert_eq!(inbox.offer(&item(A, 9999)), Offer::Defer { start: true }, "past the bound: read the log");
        assert_eq!(inbox.held_count, 0);
    }

    #[test]
    fn a_loading_session_defers_everything_and_replays_from_its_cursor() {
        let mut inbox = live(true, &[(A, 10, 4), (G, 3, 3)]);
        assert_eq!(inbox.offer(&item(G, 4)), Offer::Defer { start: false });
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
        assert_eq!(seqs(inbox.offer(&item(A, 11))), [11]);
    }

    #[test]
    fn acks_are_cumulative_and_bounded_by_what_was_delivered() {
        let mut inbox = live(true, &[(A, 0, 0)]);
        inbox.go_live();
        for seq in 1..=5 {
            assert_eq!(seqs(inbox.offer(&item(A, seq))), [seq]);
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
            assert_eq!(seqs(inbox.offer(&item(A, seq))), [seq]);
            inbox.mark(index, A, seq);
        }
        inbox.ack(A, 3);
        inbox.written(2);
        assert_eq!(inbox.unsaved(), vec![(A, 2)], "frame 3 was never written; acks are ignored");
    }

    #[test]
    fn carbons_are_what_other_sessions_sent_while_this_one_lives() {
        let mut inbox = live(true, &[(A, 4, 4)]);
        inbox.go_live();
        assert!(!inbox.carbon(A, 3), "sent before the session began");
        assert!(inbox.carbon(A, 5), "sent from another session since");
        // Sent from this session behind a gap: held as its own, never replaced by the carbon
        // of itself (published back by a node that holds the user's other sessions).
        assert!(inbox.own(A, 6).is_empty());
        assert!(!inbox.carbon(A, 6));
        assert_eq!(inbox.offer(&item(A, 6)), Offer::Hold { timer: None });
        assert_eq!(seqs(inbox.offer(&item(A, 5))), [5], "its own 6 passed over, not pushed");
        assert_eq!(inbox.delivered(A), 6);
        let original = live(false, &[(A, 0, 0)]);
        assert!(!original.carbon(A, 1), "the original client never gets carbons");
    }

    #[test]
    fn own_messages_and_joins_move_delivery() {
        let mut inbox = live(true, &[(G, 0, 0)]);
        inbox.go_live();
        assert!(inbox.own(G, 1).is_empty());
        assert_eq!(seqs(inbox.offer(&item(G, 2))), [2]);
        assert!(matches!(inbox.offer(&item(G, 4)), Offer::Hold { .. }));
        assert_eq!(
            inbox.own(G, 3).iter().map(|i| i.seq).collect::<Vec<_>>(),
            [4],
            "own message fills the gap"
        );
        inbox.joined(ConvId(-9), 40);
        assert_eq!(seqs(inbox.offer(&item(ConvId(-9), 41))), [41]);
        assert!(inbox.all_stale());
        assert_eq!(inbox.fetch_from().len(), 2);
    }
}
