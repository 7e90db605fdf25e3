//! How the decisions of issue 21 travel: EVENT pushes (friend requests, members removed,
//! groups renamed, …) to a user's sessions wherever they are, the cluster-wide end of a
//! user's other sessions (password changed, account deleted), and the cache of "may `a`
//! write to `b`" verdicts that keeps the block check off the database on the chat path.
//! The rules themselves are in `handlers/control.rs`, `friendship.rs`, `group_admin.rs`
//! and `account.rs`.
//!
//! Both kinds of frame go, like chats, on the recipient's Redis channel (`Broker::publish`),
//! so only the node holding the user reads them; they carry `"v":2`. A node of v0.1.0
//! passes an EVENT to its client as it came (every client ignores a msgid it does not know)
//! and an end-of-session NOTICE too (without closing): ARCHITECTURE.md, "Users in control".

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chat_proto::{ConvId, GroupId, MsgId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

use crate::Service;
use crate::delivery::Delivery;

/// Verdicts "`from` may write to `to`" recently read, so that a conversation's chats cost
/// one read per [`WriteCache::TTL`] instead of one each. Only "yes" is kept: a refusal is
/// rare and always read again. A change that can turn a yes into a no (a block, the
/// "friends only" setting, a friendship ended, an account deleted) is announced
/// (`control-changed:<user>`) and every node forgets that user's verdicts.
///
/// Most users let anyone write and block nobody: such a user is "open", a fact cached per
/// user, and a chat between two open users needs no verdict of its own. Without it every
/// new pair cost a read, which on a busy node is most chats (200 users chatting at random
/// make 40,000 pairs). Every cached fact carries the cache's generation when its read
/// began, and is kept only if no announcement came meanwhile (a block during the read).
#[derive(Default)]
pub(crate) struct WriteCache {
    map: Mutex<HashMap<(UserId, UserId), Instant>>,
    open: Mutex<HashMap<UserId, (Instant, bool)>>,
    generation: std::sync::atomic::AtomicU64,
}

impl WriteCache {
    /// How long a verdict is trusted without an announcement (the bound should one be lost).
    pub(crate) const TTL: Duration = Duration::from_secs(10);
    /// Verdicts kept before the cache starts afresh (bounds memory).
    const CAPACITY: usize = 100_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(UserId, UserId), Instant>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `from` was recently found allowed to write to `to`.
    pub(crate) fn allowed(&self, from: UserId, to: UserId) -> bool {
        self.lock().get(&(from, to)).is_some_and(|at| at.elapsed() < Self::TTL)
    }

    /// The generation to hand back to [`allow`](Self::allow) or [`set_open`](Self::set_open)
    /// after a read: taken before the read.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `from` may write to `to`, as read since `generation`.
    pub(crate) fn allow(&self, from: UserId, to: UserId, generation: u64) {
        let mut map = self.lock();
        if self.generation() != generation {
            return;
        }
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.insert((from, to), Instant::now());
    }

    fn lock_open(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, (Instant, bool)>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `user` was recently found open (anyone may write, blocks nobody, not deleted):
    /// `None` when not known. A user found not open takes the verdict per pair.
    pub(crate) fn open(&self, user: UserId) -> Option<bool> {
        self.lock_open().get(&user).filter(|(at, _)| at.elapsed() < Self::TTL).map(|(_, open)| *open)
    }

    /// Whether `user` was recently found open.
    #[cfg(test)]
    fn is_open(&self, user: UserId) -> bool {
        self.open(user) == Some(true)
    }

    /// Whether `user` is open, as read since `generation`.
    pub(crate) fn set_open(&self, user: UserId, open_now: bool, generation: u64) {
        let mut open = self.lock_open();
        if self.generation() != generation {
            return;
        }
        if open.len() >= Self::CAPACITY {
            open.clear();
        }
        open.insert(user, (Instant::now(), open_now));
    }

    /// Forgets every verdict about `user`, as sender or as recipient, and whether it is open.
    pub(crate) fn forget(&self, user: UserId) {
        // Under both locks, so that a read that began before cannot store its fact after.
        let mut map = self.lock();
        let mut open = self.lock_open();
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        map.retain(|&(from, to), _| from != user && to != user);
        open.remove(&user);
    }

    /// The announcement that `user`'s verdicts changed.
    pub(crate) fn changed_event(user: UserId) -> Bytes {
        Bytes::from(format!("control-changed:{user}"))
    }

    /// The user of a `control-changed` announcement.
    pub(crate) fn parse_changed(event: &[u8]) -> Option<UserId> {
        let text = std::str::from_utf8(event).ok()?;
        text.strip_prefix("control-changed:")?.parse().ok().map(UserId)
    }
}

/// The end of a frame published to another node (the node protocol's version).
pub(crate) fn published(frame: &str) -> Bytes {
    match frame.strip_suffix('}') {
        Some(open) => Bytes::from(format!("{open},\"v\":{}}}", crate::NODE_PROTOCOL)),
        None => Bytes::from(frame.to_owned()),
    }
}

/// The keys of an arriving control frame that this node acts on.
#[derive(Deserialize)]
struct Head {
    msgid: i64,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    groupid: Option<i32>,
    #[serde(default)]
    id: Option<i32>,
    /// An end-of-session NOTICE: the node instance and connection to spare.
    #[serde(default)]
    end: Option<(u64, u64)>,
    #[serde(default)]
    errmsg: Option<String>,
    /// A RECEIPT or TYPING push (issue 20): the node instance and connection it skips.
    #[serde(default)]
    except: Option<(u64, u64)>,
}

impl Delivery {
    /// A frame from a user's channel that is one of issue 21's: acts on it and says so
    /// (`false`: not ours, deliver it as before).
    pub(crate) fn control_frame(&self, user: UserId, frame: &Bytes) -> bool {
        let Ok(head) = serde_json::from_slice::<Head>(frame) else { return false };
        if head.msgid == i64::from(MsgId::Notice.number())
            && let Some((instance, conn)) = head.end
        {
            let keep = (instance == self.instance()).then_some(conn);
            let why = head.errmsg.as_deref().unwrap_or("your session has ended");
            self.sessions().end_except(user, keep, why);
            return true;
        }
        if head.msgid == i64::from(MsgId::Receipt.number()) || head.msgid == i64::from(MsgId::Typing.number())
        {
            // Issue 20's pushes (`receipts.rs`): to the user's extension sessions here, but
            // the one that caused it, without the node protocol's keys.
            let skip = head.except.filter(|(instance, _)| *instance == self.instance()).map(|(_, conn)| conn);
            let mut map: serde_json::Map<String, Value> = serde_json::from_slice(frame).unwrap_or_default();
            map.remove("v");
            map.remove("except");
            self.sessions().push_ext_except(user, Bytes::from(chat_proto::encode(&map)), skip);
            return true;
        }
        if head.msgid != i64::from(MsgId::Event.number()) {
            return false;
        }
        let gone = match (head.event.as_deref(), head.groupid, head.id) {
            (Some("group-deleted"), Some(group), _) => Some(group),
            (Some("member-removed" | "member-left"), Some(group), Some(id)) if id == user.0 => Some(group),
            _ => None,
        };
        if let Some(group) = gone {
            self.sessions().left(user, ConvId::group(GroupId(group)));
        }
        // Clients get the event without the node protocol's `v`.
        let mut map: serde_json::Map<String, Value> = serde_json::from_slice(frame).unwrap_or_default();
        map.remove("v");
        self.sessions().push_ext(user, Bytes::from(chat_proto::encode(&map)));
        true
    }
}

impl Service {
    /// Pushes EVENT `frame` to each of `users`' extension sessions, wherever they are (nothing
    /// is kept for an offline user: what it describes is in the lists they read at login).
    pub(crate) async fn notify(&self, users: &[UserId], frame: &str) {
        let bytes = published(frame);
        for &user in users {
            if let Err(e) = self.broker.publish(user, bytes.clone()).await {
                warn!(user = %user, error = %e, "could not push an event; the user sees it at the next LIST");
            }
        }
    }

    /// Ends every session of `user` in the cluster except connection `keep` of this node,
    /// telling each extension client `why`.
    pub(crate) async fn end_sessions(&self, user: UserId, keep: Option<u64>, why: &str) {
        let end = (self.delivery.instance(), keep.unwrap_or(u64::MAX));
        let frame = chat_proto::encode(&json!({
            "end": end, "errmsg": why, "errno": chat_proto::ErrorCode::Closing.number(),
            "msgid": MsgId::Notice.number()
        }));
        self.sessions().end_except(user, keep, why);
        if let Err(e) = self.broker.publish(user, published(&frame)).await {
            warn!(user = %user, error = %e, "could not end the user's sessions on other nodes");
        }
    }

    /// `user`'s blocks, setting or friendships changed: every node forgets its verdicts.
    pub(crate) async fn control_changed(&self, user: UserId) {
        self.delivery.writes().forget(user);
        if let Err(e) = self.broker.announce(WriteCache::changed_event(user)).await {
            warn!(user = %user, error = %e, "could not announce a block; other nodes learn within their cache's TTL");
        }
    }

    /// `group`'s members changed: this node's cache and every other node's forget them.
    pub(crate) async fn members_changed(&self, group: GroupId) {
        self.delivery.groups().forget(group);
        if let Err(e) = self.broker.announce(crate::delivery::GroupCache::changed_event(group)).await {
            warn!(group = %group, error = %e, "could not announce a membership change; other nodes learn within their cache's TTL");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_forgotten_per_user() {
        let cache = WriteCache::default();
        let generation = cache.generation();
        cache.allow(UserId(1), UserId(2), generation);
        cache.allow(UserId(3), UserId(4), generation);
        cache.set_open(UserId(5), true, generation);
        cache.set_open(UserId(2), true, generation);
        assert!(cache.is_open(UserId(5)) && cache.is_open(UserId(2)));
        assert!(cache.allowed(UserId(1), UserId(2)));
        assert!(!cache.allowed(UserId(2), UserId(1)), "a verdict has a direction");
        cache.forget(UserId(2));
        assert!(!cache.allowed(UserId(1), UserId(2)));
        assert!(!cache.is_open(UserId(2)));
        assert!(cache.allowed(UserId(3), UserId(4)));
        assert!(cache.is_open(UserId(5)));
        // A fact read before an announcement is not kept after it.
        cache.set_open(UserId(6), true, generation);
        cache.allow(UserId(6), UserId(7), generation);
        assert!(!cache.is_open(UserId(6)) && !cache.allowed(UserId(6), UserId(7)));
        assert_eq!(WriteCache::parse_changed(&WriteCache::changed_event(UserId(9))), Some(UserId(9)));
        assert_eq!(WriteCache::parse_changed(b"control-changed:x"), None);
    }

    #[test]
    fn published_frames_carry_the_version() {
        assert_eq!(&published(r#"{"msgid":47}"#)[..], br#"{"msgid":47,"v":2}"#);
    }
}
