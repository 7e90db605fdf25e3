//! Typed ids of users and groups (the original's `INT` keys).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A user's id, as the `User.id` column holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i32);

/// A group's id, as the `AllGroup.id` column holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupId(pub i32);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A conversation as one user sees it: with another user, or in a group.
/// On the wire it is `{"id":N}` (a user) or `{"groupid":N}` (a group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// One-to-one with this user.
    User(UserId),
    /// In this group.
    Group(GroupId),
}

/// A conversation's key in the message log, the same for both sides of a
/// one-to-one conversation: `lo << 32 | hi` for users `lo < hi` (positive),
/// `-groupid` for a group (negative). Ids are positive, so the two never meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConvId(pub i64);

impl ConvId {
    /// The conversation between `a` and `b` (in either order).
    pub fn direct(a: UserId, b: UserId) -> ConvId {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        ConvId((i64::from(lo.0) << 32) | i64::from(hi.0 as u32))
    }

    /// A group's conversation.
    pub fn group(group: GroupId) -> ConvId {
        ConvId(-i64::from(group.0))
    }

    /// The conversation `me` has with `peer`.
    pub fn of(me: UserId, peer: Peer) -> ConvId {
        match peer {
            Peer::User(other) => ConvId::direct(me, other),
            Peer::Group(group) => ConvId::group(group),
        }
    }

    /// The group, if this is a group's conversation.
    pub fn as_group(self) -> Option<GroupId> {
        (self.0 < 0).then(|| GroupId(i32::try_from(-self.0).unwrap_or_default()))
    }

    /// The two users, lower id first, if this is a one-to-one conversation.
    pub fn users(self) -> Option<(UserId, UserId)> {
        (self.0 > 0).then_some((UserId((self.0 >> 32) as i32), UserId(self.0 as u32 as i32)))
    }

    /// How `me` names this conversation (the other user, or the group).
    pub fn peer_of(self, me: UserId) -> Option<Peer> {
        if let Some(group) = self.as_group() {
            return Some(Peer::Group(group));
        }
        let (lo, hi) = self.users()?;
        Some(Peer::User(if lo == me { hi } else { lo }))
    }
}

impl fmt::Display for ConvId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_keys_are_symmetric_and_distinct() {
        let (a, b) = (UserId(7), UserId(2_000_000_000));
        assert_eq!(ConvId::direct(a, b), ConvId::direct(b, a));
        assert_eq!(ConvId::direct(a, b).users(), Some((a, b)));
        assert_eq!(ConvId::direct(a, b).peer_of(a), Some(Peer::User(b)));
        assert_eq!(ConvId::direct(a, b).peer_of(b), Some(Peer::User(a)));
        assert!(ConvId::direct(UserId(1), UserId(1)).0 > 0);
        let g = ConvId::group(GroupId(7));
        assert_eq!(g.as_group(), Some(GroupId(7)));
        assert_eq!(g.users(), None);
        assert_eq!(g.peer_of(a), Some(Peer::Group(GroupId(7))));
        assert_ne!(ConvId::of(a, Peer::User(b)), ConvId::of(a, Peer::Group(GroupId(7))));
    }
}
