//! Blocking and "who may write to me" (issue 21), and the check every one-to-one chat
//! passes before it is stored. Not the transport of the changes (`crate::control`).

use std::collections::HashSet;

use chat_ports::Writers;
use chat_proto::{FriendEntry, GroupEntry, UserId};
use tracing::info;

use crate::dispatch::{Reply, SessionUser};
use crate::{Service, ServiceError};

impl Service {
    /// May `from` send `to` a one-to-one chat? Refused before the append, so nothing is
    /// stored: `UnknownUser` (no such user, or a deleted account), `YouBlocked` (the sender
    /// blocks the recipient), `Refused` (the recipient blocks the sender, or takes chats from
    /// friends only and the sender is not on their list). A yes is cached per node
    /// (`WriteCache`): a conversation's chats cost one read per TTL, not one each.
    pub(crate) async fn check_write(&self, from: UserId, to: UserId) -> Result<(), ServiceError> {
        if to.0 <= 0 {
            return Err(ServiceError::UnknownUser);
        }
        let writes = self.delivery.writes();
        if writes.allowed(from, to) || (self.is_open(from).await? && self.is_open(to).await?) {
            return Ok(());
        }
        let generation = writes.generation();
        let check = self.control.write_check(from, to).await?;
        if !check.live {
            return Err(ServiceError::UnknownUser);
        }
        if check.blocked_by_sender {
            return Err(ServiceError::YouBlocked);
        }
        if check.blocked_by_recipient || (check.friends_only && !check.friend_of_recipient && from != to) {
            return Err(ServiceError::Refused);
        }
        writes.allow(from, to, generation);
        Ok(())
    }

    /// Whether `user` lets anyone write to it, blocks nobody and lives: then its chats with
    /// another such user need no verdict of their own (see `WriteCache`). Cached per user.
    async fn is_open(&self, user: UserId) -> Result<bool, ServiceError> {
        let writes = self.delivery.writes();
        if let Some(open) = writes.open(user) {
            return Ok(open);
        }
        let generation = writes.generation();
        let me = self.control.write_check(user, user).await?;
        let open = me.live && !me.friends_only && self.control.blocked(user).await?.is_empty();
        writes.set_open(user, open, generation);
        Ok(open)
    }

    /// BLOCK: `me` blocks `other`. Their chats and friend requests to `me` are refused from
    /// now on, `me` shows as offline to them, and their messages in groups the two share are
    /// not pushed to `me` (they stay in the group's history, which `me` may still page).
    pub(crate) async fn block(&self, me: &SessionUser, other: UserId) -> Result<Reply, ServiceError> {
        if other == me.id {
            return Err(ServiceError::InvalidInput("you cannot block yourself".into()));
        }
        self.control.block(me.id, other).await?;
        self.sessions().mute(me.id, other, true);
        self.control_changed(me.id).await;
        info!(user = %me.id, other = %other, "blocked");
        Ok(Reply::Done)
    }

    /// UNBLOCK.
    pub(crate) async fn unblock(&self, me: &SessionUser, other: UserId) -> Result<Reply, ServiceError> {
        // Unblocking only widens what is allowed: no cached verdict can be wrong after it.
        self.control.unblock(me.id, other).await?;
        self.sessions().mute(me.id, other, false);
        Ok(Reply::Done)
    }

    /// BLOCKED: the users `me` blocks and who may write to `me`.
    pub(crate) async fn blocked_list(&self, me: &SessionUser) -> Result<Reply, ServiceError> {
        let users = self.control.blocked(me.id).await?;
        let writers = self.control.writers(me.id).await?;
        let users: Vec<(UserId, String)> = users.into_iter().map(|u| (u.id, u.name)).collect();
        Ok(Reply::Frame(chat_proto::blocked_ack(&users, writers.as_str())))
    }

    /// SET_WRITERS: anyone (the default) or friends only.
    pub(crate) async fn set_writers(
        &self,
        me: &SessionUser,
        friends_only: bool,
    ) -> Result<Reply, ServiceError> {
        let writers = if friends_only { Writers::Friends } else { Writers::Anyone };
        self.control.set_writers(me.id, writers).await?;
        if friends_only {
            self.control_changed(me.id).await;
        }
        Ok(Reply::Done)
    }

    /// Lists as `me` may see them: users who block `me` show as offline.
    pub(crate) async fn mask_presence(
        &self,
        me: UserId,
        mut friends: Vec<FriendEntry>,
        mut groups: Vec<GroupEntry>,
    ) -> Result<(Vec<FriendEntry>, Vec<GroupEntry>), ServiceError> {
        let blockers: HashSet<UserId> = self.control.blockers_of(me).await?.into_iter().collect();
        if blockers.is_empty() {
            return Ok((friends, groups));
        }
        for f in &mut friends {
            f.online &= !blockers.contains(&f.id);
        }
        for m in groups.iter_mut().flat_map(|g| g.members.iter_mut()) {
            m.online &= !blockers.contains(&m.id);
        }
        Ok((friends, groups))
    }
}
