//! Friends: the original's one-sided ADD_FRIEND, and the extension's friend requests
//! (issue 21: request, accept or decline, remove), pushed live to the other side.
//!
//! How the two meet: ADD_FRIEND (any client) still puts the friend on the caller's own list
//! at once, one direction, as the original did; it grants nothing on the other side (the
//! "friends only" setting looks at the recipient's list). If the other side had asked the
//! caller to be friends, ADD_FRIEND completes that request (friends both ways, the asker is
//! told). A FRIEND_REQUEST to a user who lists the asker already (by its ADD_FRIEND) is
//! granted at once. A user who blocks the caller cannot be added or asked.

use chat_proto::{UserId, event};
use serde_json::json;
use tracing::info;

use crate::dispatch::{Reply, SessionUser};
use crate::{Service, ServiceError};

impl Service {
    /// Refuses a friendship between `me` and `other` that a block forbids; `UnknownUser` for
    /// no such (or a deleted) user.
    async fn check_befriendable(&self, me: UserId, other: UserId) -> Result<(), ServiceError> {
        if other == me {
            return Err(ServiceError::InvalidInput("you cannot add yourself as a friend".into()));
        }
        let check = self.control.write_check(me, other).await?;
        if !check.live {
            return Err(ServiceError::UnknownUser);
        }
        if check.blocked_by_sender {
            return Err(ServiceError::YouBlocked);
        }
        if check.blocked_by_recipient {
            return Err(ServiceError::Refused);
        }
        Ok(())
    }

    /// `me` and `other` became friends (both ways); `other` is told.
    async fn befriended(&self, me: &SessionUser, other: UserId) -> Result<(), ServiceError> {
        self.control.befriend(me.id, other).await?;
        self.notify(&[other], &event("friend-accepted", json!({ "id": me.id, "name": me.name }))).await;
        info!(user = %me.id, other = %other, "friends both ways");
        Ok(())
    }

    pub(crate) async fn add_friend(&self, me: &SessionUser, friend: UserId) -> Result<Reply, ServiceError> {
        self.check_befriendable(me.id, friend).await?;
        if self.control.take_request(friend, me.id).await? {
            self.befriended(me, friend).await?;
            return Ok(Reply::Done);
        }
        self.store.add_friend(me.id, friend).await?;
        Ok(Reply::Done)
    }

    /// FRIEND_REQUEST: asks `to`; if `to` had asked `me` already, or lists `me` (its
    /// ADD_FRIEND), they are friends both ways now.
    pub(crate) async fn friend_request(&self, me: &SessionUser, to: UserId) -> Result<Reply, ServiceError> {
        self.check_befriendable(me.id, to).await?;
        if self.control.take_request(to, me.id).await? {
            self.befriended(me, to).await?;
            return Ok(Reply::Done);
        }
        // `to` lists `me` already (its ADD_FRIEND, or a friendship): that was its consent.
        if self.control.is_friend(to, me.id).await? {
            self.befriended(me, to).await?;
            return Ok(Reply::Done);
        }
        if self.control.put_request(me.id, to, super::Clock::now_ms()).await? {
            self.notify(&[to], &event("friend-request", json!({ "id": me.id, "name": me.name }))).await;
        }
        Ok(Reply::Done)
    }

    /// FRIEND_ANSWER: accepts or declines `from`'s request.
    pub(crate) async fn friend_answer(
        &self,
        me: &SessionUser,
        from: UserId,
        accept: bool,
    ) -> Result<Reply, ServiceError> {
        if !self.control.take_request(from, me.id).await? {
            return Err(ServiceError::NoRequest);
        }
        if accept {
            self.befriended(me, from).await?;
        } else {
            self.notify(&[from], &event("friend-declined", json!({ "id": me.id }))).await;
        }
        Ok(Reply::Done)
    }

    /// REMOVE_FRIEND: ends the friendship both ways (and any request between the two).
    pub(crate) async fn remove_friend(&self, me: &SessionUser, other: UserId) -> Result<Reply, ServiceError> {
        if !self.user_exists(other).await? {
            return Err(ServiceError::UnknownUser);
        }
        if self.control.unfriend(me.id, other).await? {
            // "Friends only" may now refuse either of them.
            self.control_changed(me.id).await;
            self.notify(&[other], &event("friend-removed", json!({ "id": me.id }))).await;
        }
        Ok(Reply::Done)
    }

    /// FRIEND_REQUESTS: the requests waiting for `me`, and those `me` sent.
    pub(crate) async fn friend_requests(&self, me: &SessionUser) -> Result<Reply, ServiceError> {
        let (incoming, outgoing) = self.control.requests(me.id).await?;
        let pairs =
            |list: Vec<chat_ports::UserRef>| list.into_iter().map(|u| (u.id, u.name)).collect::<Vec<_>>();
        Ok(Reply::Frame(chat_proto::requests_ack(&pairs(incoming), &pairs(outgoing))))
    }

    /// After an extension login: the friend requests waiting for the user, as EVENTs (they
    /// were kept while the user was away).
    pub(crate) async fn push_waiting_requests(&self, me: &SessionUser) {
        match self.control.requests(me.id).await {
            Ok((incoming, _)) => {
                for u in incoming {
                    self.notify(&[me.id], &event("friend-request", json!({ "id": u.id, "name": u.name })))
                        .await;
                }
            }
            Err(e) => tracing::warn!(user = %me.id, error = %e, "could not read waiting friend requests"),
        }
    }
}
