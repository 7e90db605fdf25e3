//! Read state and receipts (issue 20): what a user marked read (MARK_READ, stored as a read
//! mark per conversation, `Log::mark_read`), who is told (RECEIPT pushes), what READS and the
//! LOGIN/LIST acks report, and the per-user push that typing (`handlers/typing.rs`) shares.
//! Not the cursors themselves (`inbox.rs`, `delivery.rs`): "received" is the user's cursor.
//!
//! Who is told of a mark that moved: the reader's other sessions (unread counts drop on every
//! device), the other user of a one-to-one conversation, and in a group only the distinct
//! senders (other than the reader) of the messages the mark newly covers; never every member,
//! so a group of 1,000 costs what its active senders cost. A cursor moved by RECEIVED in a
//! one-to-one conversation is a "recv" receipt to the other user; nothing new is stored.
//!
//! The pushes travel like EVENT (47): on the recipient's channel (`Broker::publish`) with
//! `"v":2`, and for the reader's own sessions `"except":[node instance, connection]`, so the
//! session that marked is not told what it did (`Delivery::control_frame`).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use chat_proto::{ConvId, Peer, PeerReads, ReadState, Unread, UserId};
use serde_json::Value;
use tracing::{debug, warn};

use crate::control::published;
use crate::{Service, ServiceError};

impl Service {
    /// Publishes an issue-20 push `frame` to each of `users`' extension sessions, wherever they
    /// are; `except` names a connection of this node that must not get it.
    pub(crate) async fn push_to(&self, users: &[UserId], frame: &str, except: Option<u64>) {
        let frame = match except {
            None => published(frame),
            Some(conn) => {
                let mut map: serde_json::Map<String, Value> = serde_json::from_str(frame).unwrap_or_default();
                map.insert("except".into(), serde_json::json!([self.delivery.instance(), conn]));
                published(&chat_proto::encode(&map))
            }
        };
        for &user in users {
            if let Err(e) = self.broker.publish(user, Bytes::clone(&frame)).await {
                debug!(user = %user, error = %e, "could not push a receipt or typing");
            }
        }
    }

    /// Whether `from`'s receipts and typing may reach `to` in their one-to-one conversation:
    /// the check a chat passes (blocks either way, "friends only"), cached per node.
    pub(crate) async fn may_tell(&self, from: UserId, to: UserId) -> Result<bool, ServiceError> {
        match self.check_write(from, to).await {
            Ok(()) => Ok(true),
            Err(ServiceError::Refused | ServiceError::YouBlocked | ServiceError::UnknownUser) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `reader` (its session on `conn`) moved its read mark in `conv` from `before` to `after`.
    pub(crate) async fn tell_read(
        &self,
        reader: UserId,
        conn: u64,
        conv: ConvId,
        before: i64,
        after: i64,
    ) -> Result<(), ServiceError> {
        if let Some(peer) = conv.peer_of(reader) {
            let own = chat_proto::receipt_push(peer, reader, after, true);
            self.push_to(&[reader], &own, Some(conn)).await;
        }
        let told: Vec<UserId> = match conv.as_group() {
            None => match conv.peer_of(reader) {
                Some(Peer::User(other)) if other != reader && self.may_tell(reader, other).await? => {
                    vec![other]
                }
                _ => Vec::new(),
            },
            Some(_) => {
                let senders = self.log.senders(conv, before, after).await?;
                let senders: Vec<UserId> = senders.into_iter().filter(|s| *s != reader).collect();
                if senders.is_empty() {
                    Vec::new()
                } else {
                    let blockers: HashSet<UserId> =
                        self.control.blockers_of(reader).await?.into_iter().collect();
                    senders.into_iter().filter(|s| !blockers.contains(s)).collect()
                }
            }
        };
        for user in told {
            if let Some(peer) = conv.peer_of(user) {
                self.push_to(&[user], &chat_proto::receipt_push(peer, reader, after, true), None).await;
            }
        }
        Ok(())
    }

    /// `user`'s RECEIVED moved its cursors `moved`: "recv" receipts to the other users of the
    /// one-to-one conversations among them (no receipts of receipt in groups).
    pub(crate) async fn tell_received(&self, user: UserId, moved: &[(ConvId, i64)]) {
        for &(conv, seq) in moved {
            let Some(Peer::User(other)) = conv.peer_of(user) else { continue };
            if other == user {
                continue;
            }
            match self.may_tell(user, other).await {
                Ok(true) => {
                    let frame = chat_proto::receipt_push(Peer::User(user), user, seq, false);
                    self.push_to(&[other], &frame, None).await;
                }
                Ok(false) => {}
                Err(e) => warn!(user = %user, error = %e, "a recv receipt was not sent"),
            }
        }
    }

    /// Each of `users`' marks in `conv`, in `users`' order (0 when none); users who block
    /// `asker` show 0, as they show offline.
    pub(crate) async fn marks_of(
        &self,
        asker: UserId,
        conv: ConvId,
        users: &[UserId],
    ) -> Result<Vec<PeerReads>, ServiceError> {
        let pairs: Vec<(UserId, ConvId)> = users.iter().map(|&u| (u, conv)).collect();
        let found: HashMap<UserId, (i64, i64)> =
            self.log.marks(&pairs).await?.into_iter().map(|m| (m.user, (m.read, m.recv))).collect();
        let blockers: HashSet<UserId> = self.control.blockers_of(asker).await?.into_iter().collect();
        Ok(users
            .iter()
            .map(|&id| {
                let (read, recv) =
                    if blockers.contains(&id) { (0, 0) } else { found.get(&id).copied().unwrap_or_default() };
                PeerReads { id, read, recv }
            })
            .collect())
    }

    /// The read state of a LOGIN ack or LIST_ACK, and the unread counts: `known` are the
    /// session's conversations with its cursors; `last`, when known, their newest seqs (to
    /// count only conversations with something after). A conversation with a read mark counts
    /// others' messages after the mark, one without after the cursor.
    pub(crate) async fn read_state(
        &self,
        me: UserId,
        known: &[(ConvId, i64)],
        last: Option<&HashMap<ConvId, i64>>,
    ) -> Result<(Vec<Unread>, ReadState), ServiceError> {
        let marks: HashMap<ConvId, i64> = self.log.read_marks(me).await?.into_iter().collect();
        let from: Vec<(ConvId, i64)> = known
            .iter()
            .map(|&(conv, cursor)| (conv, marks.get(&conv).copied().unwrap_or(cursor)))
            .filter(|&(conv, from)| last.is_none_or(|last| last.get(&conv).is_some_and(|&l| l > from)))
            .collect();
        let unread = self.unread(me, &from).await?;
        let mut read: Vec<(Peer, i64)> =
            known.iter().filter_map(|&(conv, _)| Some((conv.peer_of(me)?, *marks.get(&conv)?))).collect();
        read.sort();
        // The other users' marks in the one-to-one conversations (what a sender who was away learns).
        let pairs: Vec<(UserId, ConvId)> = known
            .iter()
            .filter_map(|&(conv, _)| match conv.peer_of(me)? {
                Peer::User(other) if other != me => Some((other, conv)),
                _ => None,
            })
            .collect();
        let mut receipts = Vec::new();
        if !pairs.is_empty() {
            let blockers: HashSet<UserId> = self.control.blockers_of(me).await?.into_iter().collect();
            receipts = self
                .log
                .marks(&pairs)
                .await?
                .into_iter()
                .filter(|m| !blockers.contains(&m.user))
                .map(|m| PeerReads { id: m.user, read: m.read, recv: m.recv })
                .collect();
            receipts.sort_by_key(|r| r.id);
        }
        Ok((unread, ReadState { read, receipts }))
    }
}
