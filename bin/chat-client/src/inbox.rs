//! What this run of the client has received, per conversation: the highest
//! `seq` shown, which both drops messages that come again and is what the
//! client acknowledges; and when to send those acknowledgements (RECEIVED).
//!
//! Pure: the console feeds it pushes and the time, and sends what it says.
//!
//! Why the highest `seq` rather than a set of recent `mid`s: the server
//! pushes each conversation strictly in `seq` order on a connection, and a
//! resume replays each conversation from a point in `seq` order too
//! (docs/PROTOCOL.md, "Delivery"), so a push at or below the highest `seq`
//! shown is a message already shown, and one above it is new. That takes one
//! number per conversation, forgets nothing however long the run, and is
//! exactly the cumulative acknowledgement RECEIVED and RESUME carry. A
//! bounded set of `mid`s would forget old ones (and could show one twice
//! after a long replay) and would need the highest `seq` anyway for acks.
//! Only pushes move it: the `seq` of the client's own chats (from their ACKs)
//! does not, because a message from the other side stored just before ours
//! can be pushed to us after our ACK arrived, and must not be dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chat_proto::{MAX_ACKS, Peer, UserId};
use tokio::time::Instant;

use crate::incoming::{Incoming, Logged};

/// Acknowledge at the latest after this many pushes...
pub const ACK_BATCH: usize = 50;
/// ...or this long after the first push not yet acknowledged.
pub const ACK_DELAY: Duration = Duration::from_millis(500);

/// The conversation and `seq` of a push, as this user (`me`) names the
/// conversation; `None` for frames without a place in the log (the original
/// server's, a fake server's), which are shown as they come.
pub fn place(frame: &Incoming, me: UserId) -> Option<(Peer, i64)> {
    match frame {
        Incoming::Chat(c) => {
            let Logged { seq, .. } = c.logged?;
            // A one-to-one conversation is named by the other user.
            let other = if c.from == me { c.to? } else { c.from };
            Some((Peer::User(other), seq))
        }
        Incoming::GroupChat(g) => Some((Peer::Group(g.group), g.logged?.seq)),
        _ => None,
    }
}

/// Read marks (MARK_READ) go out at most this often per conversation: the console shows
/// every message, so what it shows is read, but one mark per message would be a request each.
pub const MARK_DELAY: Duration = Duration::from_millis(500);

/// Per conversation, the highest `seq` shown, and the acknowledgements owed.
#[derive(Debug, Default)]
pub struct Inbox {
    /// Others' messages shown and not yet marked read: the highest seq per conversation.
    unmarked: BTreeMap<Peer, i64>,
    /// When the read marks owed must go out.
    mark_due: Option<Instant>,
    /// The highest `seq` shown per conversation.
    shown: BTreeMap<Peer, i64>,
    /// Conversations with pushes since the last RECEIVED.
    owed: BTreeSet<Peer>,
    /// Pushes since the last RECEIVED.
    unacked: usize,
    /// When the owed acknowledgements must go out.
    due: Option<Instant>,
    /// Pushes dropped as already shown.
    repeats: u64,
}

impl Inbox {
    /// A push in conversation `peer` with `seq` arrived at `now`: whether to show it
    /// (`false`: it was shown before). Either way it is owed an acknowledgement: the
    /// server counts an ack only up to what it pushed on this connection, so a
    /// repeat replayed from a cursor behind ours must be acknowledged again.
    pub fn receive(&mut self, peer: Peer, seq: i64, now: Instant) -> bool {
        self.owed.insert(peer);
        self.unacked += 1;
        self.due.get_or_insert(now + ACK_DELAY);
        let last = self.shown.entry(peer).or_insert(0);
        if seq <= *last {
            self.repeats += 1;
            return false;
        }
        *last = seq;
        true
    }

    /// A message from someone else in `peer` up to `seq` was shown at `now`: it is read.
    pub fn read(&mut self, peer: Peer, seq: i64, now: Instant) {
        let mark = self.unmarked.entry(peer).or_insert(0);
        *mark = (*mark).max(seq);
        self.mark_due.get_or_insert(now + MARK_DELAY);
    }

    /// When the read marks owed must go out, if any are.
    pub fn marks_due(&self) -> Option<Instant> {
        self.mark_due
    }

    /// The read marks owed (one MARK_READ each), which are then no longer owed.
    pub fn take_marks(&mut self) -> Vec<(Peer, i64)> {
        self.mark_due = None;
        std::mem::take(&mut self.unmarked).into_iter().collect()
    }

    /// Whether enough pushes wait to acknowledge them now.
    pub fn batch_full(&self) -> bool {
        self.unacked >= ACK_BATCH
    }

    /// When the acknowledgements owed must go out, if any are.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// The acknowledgements owed (for a RECEIVED), which are then no longer owed.
    pub fn take_acks(&mut self) -> Vec<(Peer, i64)> {
        self.unacked = 0;
        self.due = None;
        let owed = std::mem::take(&mut self.owed);
        owed.into_iter().filter_map(|peer| self.shown.get(&peer).map(|&seq| (peer, seq))).collect()
    }

    /// How far every conversation was received, for a RESUME.
    pub fn resume_acks(&self) -> Vec<(Peer, i64)> {
        // More conversations than a frame may name is far beyond a console's
        // use; the rest come again and are dropped here.
        self.shown.iter().take(MAX_ACKS).map(|(&peer, &seq)| (peer, seq)).collect()
    }

    /// A new connection's session began: what was owed went with the RESUME
    /// (or, after a password login, comes again and is acknowledged then).
    pub fn reconnected(&mut self) {
        self.owed.clear();
        self.unacked = 0;
        self.due = None;
    }

    /// Pushes dropped so far as already shown.
    #[cfg(test)]
    pub fn repeats(&self) -> u64 {
        self.repeats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incoming::decode;
    use chat_proto::GroupId;

    const BOB: Peer = Peer::User(UserId(2));
    const DEVS: Peer = Peer::Group(GroupId(5));

    #[test]
    fn pushes_name_their_conversation_from_my_side() {
        let me = UserId(1);
        let place_of = |s: &str| place(&decode(s.as_bytes()), me);
        assert_eq!(place_of(r#"{"id":2,"mid":9,"msg":"x","msgid":6,"seq":4,"to":1}"#), Some((BOB, 4)));
        // My own message (history, or another device) is in the conversation with `to`.
        assert_eq!(place_of(r#"{"id":1,"mid":9,"msg":"x","msgid":6,"seq":4,"to":2}"#), Some((BOB, 4)));
        assert_eq!(place_of(r#"{"groupid":5,"id":2,"mid":9,"msg":"x","msgid":10,"seq":7}"#), Some((DEVS, 7)));
        // No place in the log: shown as it is.
        assert_eq!(place_of(r#"{"id":2,"msg":"x","msgid":6,"to":1}"#), None);
        assert_eq!(place_of(r#"{"id":1,"mid":9,"msg":"x","msgid":6,"seq":4}"#), None);
        assert_eq!(place_of(r#"{"msgid":12}"#), None);
    }

    #[test]
    fn each_message_is_shown_once_and_none_is_skipped() {
        let now = Instant::now();
        let mut inbox = Inbox::default();
        // Live pushes, then a resume that replays from a cursor behind what was shown.
        let arrivals =
            [(BOB, 1), (BOB, 2), (DEVS, 1), (BOB, 4), (BOB, 2), (BOB, 4), (BOB, 5), (DEVS, 1), (DEVS, 2)];
        let shown: Vec<(Peer, i64)> =
            arrivals.into_iter().filter(|&(peer, seq)| inbox.receive(peer, seq, now)).collect();
        // Seq 3 of bob's conversation is one of ours: a gap is not a loss.
        assert_eq!(shown, [(BOB, 1), (BOB, 2), (DEVS, 1), (BOB, 4), (BOB, 5), (DEVS, 2)]);
        assert_eq!(inbox.repeats(), 3);
        assert_eq!(inbox.resume_acks(), [(BOB, 5), (DEVS, 2)]);
    }

    #[test]
    fn acks_go_in_batches_of_fifty_or_after_half_a_second() {
        let t0 = Instant::now();
        let mut inbox = Inbox::default();
        assert_eq!(inbox.due(), None);
        assert!(inbox.take_acks().is_empty(), "nothing owed, nothing sent");
        inbox.receive(BOB, 1, t0);
        assert_eq!(inbox.due(), Some(t0 + ACK_DELAY));
        // Later pushes do not push the deadline back.
        inbox.receive(BOB, 2, t0 + Duration::from_millis(400));
        assert_eq!(inbox.due(), Some(t0 + ACK_DELAY));
        assert!(!inbox.batch_full());
        assert_eq!(inbox.take_acks(), [(BOB, 2)]);
        assert_eq!(inbox.due(), None);

        for seq in 3..=(2 + ACK_BATCH as i64) {
            assert!(!inbox.batch_full());
            inbox.receive(if seq % 2 == 0 { BOB } else { DEVS }, seq, t0);
        }
        assert!(inbox.batch_full());
        let acks = inbox.take_acks();
        assert_eq!(acks, [(BOB, 52), (DEVS, 51)], "one cumulative ack per conversation");
        assert!(!inbox.batch_full());

        // A repeat is owed an ack too (the server's cursor on this connection must pass it).
        inbox.receive(BOB, 10, t0);
        assert_eq!(inbox.take_acks(), [(BOB, 52)]);
    }

    #[test]
    fn a_resume_carries_what_was_owed() {
        let t0 = Instant::now();
        let mut inbox = Inbox::default();
        inbox.receive(BOB, 3, t0);
        inbox.receive(DEVS, 8, t0);
        assert_eq!(inbox.resume_acks(), [(BOB, 3), (DEVS, 8)]);
        inbox.reconnected();
        assert_eq!(inbox.due(), None);
        assert!(inbox.take_acks().is_empty());
        // Dedup survives the reconnection.
        assert!(!inbox.receive(BOB, 3, t0));
        assert!(inbox.receive(BOB, 4, t0));
    }
}
