//! The [`Control`] port: what users decide about each other and about their groups and
//! accounts (issue 21) — blocks, who may write to them, friend requests, group owners and
//! admins, password changes and deleted accounts. The rules (who may do what) are the
//! service's (`handlers/control.rs`); this port only reads and writes the facts.

use async_trait::async_trait;
use chat_proto::{GroupId, UserId};

use crate::StoreError;

/// Who may write one-to-one chats to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Writers {
    /// Anyone who is not blocked (the default, as before the setting existed).
    #[default]
    Anyone,
    /// Only users on the user's friend list.
    Friends,
}

impl Writers {
    /// The column's (and the wire's) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Writers::Anyone => "anyone",
            Writers::Friends => "friends",
        }
    }

    /// The setting a spelling names.
    pub fn parse(text: &str) -> Option<Writers> {
        match text {
            "anyone" => Some(Writers::Anyone),
            "friends" => Some(Writers::Friends),
            _ => None,
        }
    }
}

/// What a one-to-one chat from `from` to `to` needs to know, read in one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteCheck {
    /// `to` exists and its account is not deleted.
    pub live: bool,
    /// `to` blocked `from`.
    pub blocked_by_recipient: bool,
    /// `from` blocked `to`.
    pub blocked_by_sender: bool,
    /// `to` accepts chats from friends only.
    pub friends_only: bool,
    /// `from` is on `to`'s friend list.
    pub friend_of_recipient: bool,
}

/// A member's standing in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupRank {
    /// May do everything, deleting the group and naming admins included.
    Owner,
    /// Named by the owner: may remove members (not the owner or other admins), rename the
    /// group and change its description.
    Admin,
    /// A member.
    Member,
}

/// Another user as a list shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    /// The user's id.
    pub id: UserId,
    /// The user's name.
    pub name: String,
}

/// Blocks, settings, friend requests, group ranks and accounts.
#[async_trait]
pub trait Control: Send + Sync + 'static {
    /// `user` blocks `other` (repeating it is harmless); `UnknownUser` if either does not exist.
    async fn block(&self, user: UserId, other: UserId) -> Result<(), StoreError>;
    /// `user` unblocks `other`; whether there was a block.
    async fn unblock(&self, user: UserId, other: UserId) -> Result<bool, StoreError>;
    /// The users `user` blocks, by id.
    async fn blocked(&self, user: UserId) -> Result<Vec<UserRef>, StoreError>;
    /// The users who block `user` (they see no presence of it).
    async fn blockers_of(&self, user: UserId) -> Result<Vec<UserId>, StoreError>;
    /// Whether `user` is blocked by `by`: the query other code asks (one key lookup).
    async fn is_blocked(&self, user: UserId, by: UserId) -> Result<bool, StoreError>;
    /// Sets who may write to `user`.
    async fn set_writers(&self, user: UserId, writers: Writers) -> Result<(), StoreError>;
    /// Who may write to `user`.
    async fn writers(&self, user: UserId) -> Result<Writers, StoreError>;
    /// Everything a chat from `from` to `to` needs, in one round trip.
    async fn write_check(&self, from: UserId, to: UserId) -> Result<WriteCheck, StoreError>;

    /// Records a friend request; whether it is new.
    async fn put_request(&self, from: UserId, to: UserId, at_ms: i64) -> Result<bool, StoreError>;
    /// Removes the request `from` → `to`; whether there was one.
    async fn take_request(&self, from: UserId, to: UserId) -> Result<bool, StoreError>;
    /// Requests waiting for `user` (incoming) and those `user` sent (outgoing), oldest first.
    async fn requests(&self, user: UserId) -> Result<(Vec<UserRef>, Vec<UserRef>), StoreError>;
    /// Whether `friend` is on `user`'s list (one direction).
    async fn is_friend(&self, user: UserId, friend: UserId) -> Result<bool, StoreError>;
    /// Makes `a` and `b` friends both ways, in one transaction.
    async fn befriend(&self, a: UserId, b: UserId) -> Result<(), StoreError>;
    /// Ends the friendship both ways and any request between the two; whether there was anything.
    async fn unfriend(&self, a: UserId, b: UserId) -> Result<bool, StoreError>;

    /// The members of `group` with their rank, by user id; `None` if there is no such group.
    async fn ranks(&self, group: GroupId) -> Result<Option<Vec<(UserId, GroupRank)>>, StoreError>;
    /// Takes `user` out of `group` (membership, admin rank and cursor); whether it was a member.
    async fn remove_member(&self, group: GroupId, user: UserId) -> Result<bool, StoreError>;
    /// Makes `user` (a member) the owner of `group`; any other owner becomes a member.
    async fn set_owner(&self, group: GroupId, user: UserId) -> Result<(), StoreError>;
    /// Names `user` an admin of `group`, or takes the rank away.
    async fn set_admin(&self, group: GroupId, user: UserId, admin: bool) -> Result<(), StoreError>;
    /// Renames `group` and/or changes its description; `NameTaken` if the name exists.
    async fn edit_group(
        &self,
        group: GroupId,
        name: Option<&str>,
        desc: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Deletes `group` with its members, cursors and messages.
    async fn delete_group(&self, group: GroupId) -> Result<(), StoreError>;

    /// Replaces `user`'s password hash and ends every resume token of the user.
    async fn set_password(&self, user: UserId, password_hash: &str) -> Result<(), StoreError>;
    /// Deletes `user`'s account: friendships, requests, blocks, memberships, cursors, tokens and
    /// offline rows go; the messages it sent are signed `deleted_name` from now on; its password
    /// becomes `unusable_hash`; its row stays, holding its name until [`Control::free_name`].
    async fn delete_account(
        &self,
        user: UserId,
        unusable_hash: &str,
        deleted_name: &str,
        at_ms: i64,
    ) -> Result<(), StoreError>;
    /// If `name` is held by an account deleted at or before `deleted_before` (unix ms), frees it
    /// (the row is renamed to `placeholder` followed by its id); whether it did.
    async fn free_name(&self, name: &str, deleted_before: i64, placeholder: &str)
    -> Result<bool, StoreError>;
}
