//! The account (issue 21): changing the password (every other session and resume token of
//! the user ends) and deleting the account (every session ends; friendships, requests,
//! blocks, memberships, cursors and tokens go; the messages it sent stay with their
//! recipients, signed "deleted user"; its name is free again after [`NAME_HOLD`]).

use std::time::Duration;

use chat_proto::{MAX_NAME_CHARS, MAX_PASSWORD_CHARS, MsgId, UserId, event};
use serde_json::json;
use tracing::info;

use super::{Clock, check_text};
use crate::dispatch::{Conn, Reply};
use crate::{Service, ServiceError};

/// How long a deleted account's name stays taken (nobody can pose as the departed user to
/// the people who knew the name meanwhile).
pub(crate) const NAME_HOLD: Duration = Duration::from_secs(30 * 24 * 3600);
/// The name the messages of a deleted account are signed with.
pub(crate) const DELETED_NAME: &str = "deleted user";
/// A deleted account's row is renamed to this plus its id when its name is freed; a control
/// character, so no registered name can ever equal it.
const FREED_NAME: &str = "\u{7f}deleted-";

impl Service {
    /// Checks `password` against `user`'s: `WrongPassword` if it is not.
    async fn verify_own(&self, user: UserId, password: String) -> Result<(), ServiceError> {
        if password.chars().count() > MAX_PASSWORD_CHARS {
            return Err(ServiceError::WrongPassword);
        }
        let hash = self.store.find_user(user).await?.map(|r| r.password_hash);
        if !self.passwords.verify(password, hash).await? {
            return Err(ServiceError::WrongPassword);
        }
        Ok(())
    }

    /// CHANGE_PASSWORD: the old one required. Every resume token of the user ends and every
    /// other session of it, anywhere, is closed; this connection goes on, and an extension
    /// client gets a new resume token in the ACK.
    pub(crate) async fn change_password(
        &self,
        conn: &mut Conn,
        old: String,
        new: String,
    ) -> Result<Reply, ServiceError> {
        let me = conn.user()?.clone();
        if new.is_empty() {
            return Err(ServiceError::InvalidInput("password must not be empty".into()));
        }
        check_text("password", &new, MAX_PASSWORD_CHARS)?;
        self.verify_own(me.id, old).await?;
        let hash = self.passwords.hash(new).await?;
        self.control.set_password(me.id, &hash).await?;
        info!(user = %me.id, "password changed");
        self.end_sessions(me.id, Some(conn.id), "your password was changed; log in again").await;
        if !conn.ext {
            conn.token = None;
            return Ok(Reply::Done);
        }
        let (token, hash) = super::auth::issue_token()?;
        let expires = Clock::now_ms().saturating_add(self.config.resume_ttl.as_millis() as i64);
        self.log.put_token(&hash, me.id, expires).await?;
        conn.token = Some(hash);
        Ok(Reply::Frame(chat_proto::ack_with_resume(MsgId::ChangePassword, &token)))
    }

    /// DELETE_ACCOUNT: the password required. The connection is logged out and closed after
    /// the ACK (dispatch closes it), every other session ends.
    pub(crate) async fn delete_account(
        &self,
        conn: &mut Conn,
        password: String,
    ) -> Result<Reply, ServiceError> {
        let me = conn.user()?.clone();
        self.verify_own(me.id, password).await?;
        // Nobody can log in with the password or a token from now on.
        let unusable = self.passwords.hash(unusable_password()?).await?;
        self.control.set_password(me.id, &unusable).await?;
        self.logout(conn, true).await;
        self.end_sessions(me.id, None, "this account was deleted").await;
        let friends = self.store.friends(me.id).await?;
        self.leave_all_groups(me.id).await?;
        self.control.delete_account(me.id, &unusable, DELETED_NAME, Clock::now_ms()).await?;
        self.control_changed(me.id).await;
        let ids: Vec<UserId> = friends.iter().map(|f| f.id).collect();
        self.notify(&ids, &event("friend-removed", json!({ "id": me.id }))).await;
        info!(user = %me.id, "account deleted");
        Ok(Reply::Done)
    }

    /// After a registration found `name` taken: frees it if a deleted account held it for
    /// longer than [`NAME_HOLD`]; whether it did.
    pub(crate) async fn free_held_name(&self, name: &str) -> Result<bool, ServiceError> {
        debug_assert!(name.chars().count() <= MAX_NAME_CHARS);
        let hold = i64::try_from(NAME_HOLD.as_millis()).unwrap_or(i64::MAX);
        Ok(self.control.free_name(name, Clock::now_ms().saturating_sub(hold), FREED_NAME).await?)
    }
}

/// A password nobody knows (32 random bytes), for a deleted account's hash.
fn unusable_password() -> Result<String, ServiceError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| ServiceError::Internal)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
