//! Register, login and logout.

use chat_proto::{LoginOk, MAX_NAME_CHARS, MAX_PASSWORD_CHARS, UserId, reg_ok};
use tracing::{info, warn};

use super::{check_name, check_text};
use crate::dispatch::{Conn, Reply, SessionUser};
use crate::{Service, ServiceError};

impl Service {
    pub(crate) async fn register(&self, name: String, password: String) -> Result<Reply, ServiceError> {
        // Surrounding blanks are never part of a name (MySQL's collation would ignore trailing ones anyway).
        let name = name.trim().to_owned();
        check_name("name", &name, MAX_NAME_CHARS)?;
        if password.is_empty() {
            return Err(ServiceError::InvalidInput("password must not be empty".into()));
        }
        check_text("password", &password, MAX_PASSWORD_CHARS)?;
        let hash = self.passwords.hash(password).await?;
        let id = self.store.create_user(&name, &hash).await?;
        info!(user = %id, "registered");
        Ok(Reply::Frame(reg_ok(id)))
    }

    pub(crate) async fn login(
        &self,
        conn: &mut Conn,
        id: UserId,
        password: String,
    ) -> Result<Reply, ServiceError> {
        if conn.user.is_some() {
            return Err(ServiceError::AlreadyLoggedIn);
        }
        if password.chars().count() > MAX_PASSWORD_CHARS {
            return Err(ServiceError::InvalidCredentials);
        }
        if self.login_failures.locked(id) {
            return Err(ServiceError::RateLimited(
                "too many failed logins for this account; try again later".into(),
            ));
        }
        let record = self.store.find_user(id).await?;
        let hash = record.as_ref().map(|r| r.password_hash.clone());
        if !self.passwords.verify(password, hash).await? {
            self.login_failures.failed(id);
            return Err(ServiceError::InvalidCredentials);
        }
        self.login_failures.succeeded(id);
        let Some(record) = record else { return Err(ServiceError::InvalidCredentials) };

        // One session per user: this node first (atomic under the sessions lock),
        // then the cluster (atomic in the broker).
        if !self.sessions().try_insert(id, conn.id, conn.out.clone()) {
            return Err(ServiceError::InUse);
        }
        match self.broker.claim(id).await {
            Ok(true) => {}
            Ok(false) => {
                self.abandon_login(id, conn.id, false).await;
                return Err(ServiceError::InUse);
            }
            Err(e) => {
                self.abandon_login(id, conn.id, false).await;
                return Err(e.into());
            }
        }
        // Subscribed (and confirmed) before the ack: nothing published after the ack is missed.
        if let Err(e) = self.broker.subscribe(id).await {
            self.abandon_login(id, conn.id, true).await;
            return Err(e.into());
        }
        let loaded = async {
            self.store.set_online(&[id], true).await?;
            let friends = self.store.friends(id).await?;
            let groups = self.store.groups_of(id).await?;
            let offline = self.store.offline_messages(id).await?;
            Ok::<_, ServiceError>((friends, groups, offline))
        }
        .await;
        let (friends, groups, offline) = match loaded {
            Ok(lists) => lists,
            Err(e) => {
                self.abandon_login(id, conn.id, true).await;
                let _ = self.store.set_online(&[id], false).await;
                return Err(e);
            }
        };

        let up_to = offline.last().map(|m| m.id);
        let ack = LoginOk {
            id,
            name: record.name.clone(),
            friends,
            groups,
            offline: offline.into_iter().map(|m| m.payload).collect(),
        };
        conn.user = Some(SessionUser { id, name: record.name });
        info!(user = %id, "logged in");
        // The ack goes first; what arrived for the user meanwhile follows it.
        let ack_sent = conn.out.try_send(ack.encode(conn.ext).into()).is_ok();
        self.sessions().activate(id, conn.id);
        if let (true, Some(up_to)) = (ack_sent, up_to) {
            // Stored messages are removed only once they reached the client's socket.
            let written = tokio::time::timeout(std::time::Duration::from_secs(30), conn.out.flushed()).await;
            if matches!(written, Ok(true))
                && let Err(e) = self.store.delete_offline(id, up_to).await
            {
                warn!(user = %id, error = %e, "could not delete delivered offline messages; they will come again");
            }
        }
        if !ack_sent {
            conn.out.close();
        }
        Ok(Reply::Silent)
    }

    /// Undoes a login that got as far as the session registry (and maybe the broker).
    async fn abandon_login(&self, id: UserId, conn: u64, subscribed: bool) {
        if subscribed {
            let _ = self.broker.unsubscribe(id).await;
            let _ = self.broker.release(id).await;
        }
        // Last, as in `logout`.
        self.drop_session(id, conn).await;
    }

    /// Removes the session; frames held back for it go to the offline store.
    async fn drop_session(&self, id: UserId, conn: u64) {
        if let Some(held) = self.sessions().remove(id, conn) {
            self.delivery.store_later(
                held.into_iter().map(|f| (id, String::from_utf8_lossy(&f).into_owned())).collect(),
            );
        }
    }

    /// Ends the connection's login, if any: as LOGINOUT, or when the connection is gone.
    ///
    /// The session entry goes last: until it is gone no new login for the user can start on
    /// this node, so this logout's release can never drop a claim that a newer login made.
    pub(crate) async fn logout(&self, conn: &mut Conn) {
        let Some(user) = conn.user.take() else { return };
        conn.unauth_since = std::time::Instant::now();
        if let Err(e) = self.broker.unsubscribe(user.id).await {
            warn!(user = %user.id, error = %e, "unsubscribe failed");
        }
        if let Err(e) = self.broker.release(user.id).await {
            warn!(user = %user.id, error = %e, "releasing presence failed");
        }
        if let Err(e) = self.store.set_online(&[user.id], false).await {
            warn!(user = %user.id, error = %e, "could not mark user offline");
        }
        self.drop_session(user.id, conn.id).await;
        info!(user = %user.id, "logged out");
    }
}
