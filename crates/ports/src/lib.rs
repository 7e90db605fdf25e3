//! The ports between the chat service and its adapters: what the service needs
//! from storage and from the broker, and what the broker hands back.
//! Adapters live elsewhere (`chat-model` for the store, `chat-broker` for the
//! broker); the service only ever sees these traits, so its tests run on
//! in-memory adapters and the single-node and cluster set-ups share every handler.

use async_trait::async_trait;
use bytes::Bytes;
use chat_proto::{FriendEntry, GroupEntry, GroupId, UserId};

pub mod contract;
mod control;
pub mod control_contract;
mod log;
pub mod log_contract;
pub mod memory;
pub mod throttle;

pub use control::{Control, GroupRank, UserRef, WriteCheck, Writers};
pub use log::{Appended, ConvState, Log, LoggedMessage, Marks, NewMessage};
pub use throttle::{MemoryThrottle, Throttle};

/// A user as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The user's id.
    pub id: UserId,
    /// The user's unique name.
    pub name: String,
    /// The argon2 PHC string of the password (never the password).
    pub password_hash: String,
}

/// One stored offline message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineMessage {
    /// Increasing with the order messages were stored.
    pub id: i64,
    /// The frame the user would have got live, as JSON text.
    pub payload: String,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A user or group with that name exists.
    #[error("name is taken")]
    NameTaken,
    /// No user has that id.
    #[error("no such user")]
    UnknownUser,
    /// No group has that id.
    #[error("no such group")]
    UnknownGroup,
    /// The database cannot be reached (or timed out); worth retrying later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the text is for the log.
    #[error("database error: {0}")]
    Internal(String),
}

/// Accounts, friends, groups and offline messages.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a user; `NameTaken` if the name exists.
    async fn create_user(&self, name: &str, password_hash: &str) -> Result<UserId, StoreError>;
    /// The user with that id, if any.
    async fn find_user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError>;
    /// The user whose name is exactly `name` (case and blanks count), with their state.
    async fn find_user_by_name(&self, name: &str) -> Result<Option<FriendEntry>, StoreError>;
    /// Whether a user with that id exists.
    async fn user_exists(&self, id: UserId) -> Result<bool, StoreError>;
    /// Sets the `state` column of these users (what friend lists show).
    /// Ids that do not exist are ignored; an empty slice does nothing.
    async fn set_online(&self, ids: &[UserId], online: bool) -> Result<(), StoreError>;
    /// Adds `friend` to `user`'s friends; repeating it is harmless; `UnknownUser` if `friend` does not exist.
    /// One direction only (one `Friend` row); `UnknownUser` too if `user` does not exist.
    async fn add_friend(&self, user: UserId, friend: UserId) -> Result<(), StoreError>;
    /// The users who have `user` in their friend list (who are told when `user` comes
    /// online or goes offline), by id.
    async fn followers(&self, user: UserId) -> Result<Vec<UserId>, StoreError>;
    /// `user`'s friends with their state, by id.
    /// Only friends that exist as users are listed; an unknown `user` has none.
    async fn friends(&self, user: UserId) -> Result<Vec<FriendEntry>, StoreError>;
    /// Creates a group with `creator` as its creator; `NameTaken` if the name exists.
    /// `UnknownUser` if `creator` does not exist. The group and its creator row are one transaction.
    async fn create_group(&self, creator: UserId, name: &str, desc: &str) -> Result<GroupId, StoreError>;
    /// Adds `user` to `group` as a normal member; repeating it is harmless (a creator stays creator);
    /// `UnknownGroup` if the group does not exist; `UnknownUser` if the user does not exist.
    async fn join_group(&self, group: GroupId, user: UserId) -> Result<(), StoreError>;
    /// The groups `user` belongs to, with all their members, by group id.
    /// Members are ordered by user id and carry their name, role and state.
    async fn groups_of(&self, user: UserId) -> Result<Vec<GroupEntry>, StoreError>;
    /// The member ids of `group`, or `None` if there is no such group.
    /// Ordered by user id.
    async fn group_members(&self, group: GroupId) -> Result<Option<Vec<UserId>>, StoreError>;
    /// Stores offline messages, in the order given, in one transaction.
    /// `UnknownUser` if a recipient does not exist; nothing is stored then.
    async fn store_offline(&self, messages: &[(UserId, String)]) -> Result<(), StoreError>;
    /// `user`'s stored messages, oldest first.
    async fn offline_messages(&self, user: UserId) -> Result<Vec<OfflineMessage>, StoreError>;
    /// How many messages are stored for each of `users` (users with none may be left out).
    async fn offline_counts(&self, users: &[UserId]) -> Result<Vec<(UserId, u64)>, StoreError>;
    /// Deletes `user`'s stored messages with ids up to and including `up_to`.
    /// Other users' messages are never touched, whatever their ids.
    async fn delete_offline(&self, user: UserId, up_to: i64) -> Result<(), StoreError>;
}

/// Why a broker operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The broker (Redis) cannot be reached right now.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// Where frames that arrive from other nodes go (implemented by the service).
pub trait Sink: Send + Sync + 'static {
    /// A frame for `user` arrived on the user's channel.
    fn deliver(&self, user: UserId, frame: Bytes);

    /// A node announced a change that other nodes may have cached (see [`Broker::announce`]).
    fn event(&self, _event: Bytes) {}

    /// Frames for any user may have been lost (the receive buffer overflowed, or the
    /// connection to the broker was down): every session should check the message log.
    fn resync(&self) {}

    /// This node's claim on `user` was lost to another node (the broker lost the claim, e.g. a
    /// Redis master died before replicating it, and another node claimed the user meanwhile):
    /// the other node's session wins, so a session for `user` here should end.
    fn claim_lost(&self, _user: UserId) {}
}

/// What a claim for one more extension session of a user found ([`Broker::join`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// Granted. `others`: other nodes hold sessions of the user too, so what reaches the user
    /// here must also be published to them.
    Yes {
        /// Other nodes hold sessions of the user.
        others: bool,
    },
    /// A session that shares with none (an original-protocol client's, or one on a node of
    /// the previous release) holds the user.
    InUse,
    /// The user has the most sessions it may have.
    Limit,
}

/// Cross-node routing and cluster-wide presence.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Claims `user` for this node, atomically across the cluster: `Ok(false)` if a live
    /// node holds it. A user held by a node whose lease has expired is free.
    async fn claim(&self, user: UserId) -> Result<bool, BrokerError>;
    /// Gives up this node's claim on `user` (no effect if another node holds it).
    async fn release(&self, user: UserId) -> Result<(), BrokerError>;
    /// Adds one extension session of `user` on this node, atomically across the cluster: up to
    /// `max` sessions in all, on any nodes, none beside an exclusive [`Broker::claim`].
    async fn join(&self, user: UserId, max: u32) -> Result<Joined, BrokerError>;
    /// Ends one of this node's extension sessions of `user`; returns how many sessions the
    /// user has left on live nodes (0: none anywhere).
    async fn leave(&self, user: UserId) -> Result<u32, BrokerError>;
    /// Records `user`'s presence as its sessions say it is now (online while it has one on a
    /// live node), atomically with counting them; `Ok(Some(online))` if that changes what was
    /// recorded last, so that each change is announced once, by whichever node sees it first,
    /// and the last call after any login or logout records the truth.
    async fn presence(&self, user: UserId) -> Result<Option<bool>, BrokerError>;
    /// Users that nodes which died (their lease expired) held, each handed to one caller only,
    /// a batch at a time: their friends may need telling that they went offline.
    async fn orphans(&self) -> Result<Vec<UserId>, BrokerError> {
        Ok(Vec::new())
    }
    /// Subscribes `user`'s channel; returns once the broker confirmed it.
    async fn subscribe(&self, user: UserId) -> Result<(), BrokerError>;
    /// Unsubscribes `user`'s channel.
    async fn unsubscribe(&self, user: UserId) -> Result<(), BrokerError>;
    /// Publishes `frame` on `user`'s channel; `Ok(true)` if at least one node received it.
    async fn publish(&self, user: UserId, frame: Bytes) -> Result<bool, BrokerError>;
    /// Tells every node (this one included, if it listens) about a change, e.g. a group's
    /// members; they get it through [`Sink::event`]. Best effort: nothing is stored.
    async fn announce(&self, event: Bytes) -> Result<(), BrokerError>;
}
