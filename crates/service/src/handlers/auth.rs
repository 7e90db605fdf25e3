//! Register, login, resume and logout.

use chat_ports::LoggedMessage;
use chat_proto::{ConvId, LoginOk, MAX_NAME_CHARS, MAX_PASSWORD_CHARS, Peer, UserId, reg_ok};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::{Clock, check_name, check_text};
use crate::dispatch::{Conn, Reply, SessionUser};
use crate::durable::push_frame;
use crate::{Service, ServiceError};

/// How long a RESUME waits for a session it took over to end (a dead node's lease can
/// take longer: then the client gets errno 2 and retries).
const TAKEOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
const TAKEOVER_STEP: std::time::Duration = std::time::Duration::from_millis(100);

/// A resume token: 32 random bytes, hex. Only its SHA-256 is stored.
fn new_token() -> Result<String, ServiceError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "no randomness for a resume token");
        ServiceError::Internal
    })?;
    Ok(hex(&bytes))
}

/// A new resume token and the hash that is stored of it.
pub(super) fn issue_token() -> Result<(String, String), ServiceError> {
    let token = new_token()?;
    let hash = token_hash(&token);
    Ok((token, hash))
}

fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What a login reads before its ack.
struct Loaded {
    friends: Vec<chat_proto::FriendEntry>,
    groups: Vec<chat_proto::GroupEntry>,
    /// Rows versions before the message log stored offline.
    legacy: Vec<chat_ports::OfflineMessage>,
    /// The original client's backlog from the log, for its ack's `offlinemsg`.
    included: Vec<LoggedMessage>,
    /// The extension's unread counts.
    unread: Vec<chat_proto::Unread>,
}

impl Service {
    pub(crate) async fn register(
        &self,
        conn: &Conn,
        name: String,
        password: String,
    ) -> Result<Reply, ServiceError> {
        // Surrounding blanks are never part of a name (MySQL's collation would ignore trailing ones anyway).
        let name = name.trim().to_owned();
        check_name("name", &name, MAX_NAME_CHARS)?;
        if password.is_empty() {
            return Err(ServiceError::InvalidInput("password must not be empty".into()));
        }
        check_text("password", &password, MAX_PASSWORD_CHARS)?;
        // Counted before the hash, which is what a registration costs.
        if let Err(e) = self.throttles.registration(conn.who).await {
            self.sessions().metrics().refused_registrations_per_ip.inc();
            info!(addr = %conn.addr.ip(), "registrations per address reached; refusing");
            return Err(e);
        }
        let hash = self.passwords.hash(password).await?;
        let id = match self.store.create_user(&name, &hash).await {
            // A deleted account's name is free again once its hold is over (account.rs).
            Err(chat_ports::StoreError::NameTaken) if self.free_held_name(&name).await? => {
                self.store.create_user(&name, &hash).await?
            }
            other => other?,
        };
        info!(user = %id, addr = %conn.addr.ip(), "registered");
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
        let failed_before = match self.throttles.login_allowed(id, conn.who).await {
            Ok(n) => n,
            Err(e) => {
                self.sessions().metrics().refused_logins_per_ip.inc();
                info!(user = %id, addr = %conn.addr.ip(), "failed-login throttle; refusing");
                return Err(e);
            }
        };
        let record = self.store.find_user(id).await?;
        let hash = record.as_ref().map(|r| r.password_hash.clone());
        if !self.passwords.verify(password, hash).await? {
            self.throttles.login_failed(id, conn.who).await;
            return Err(ServiceError::InvalidCredentials);
        }
        if failed_before > 0 {
            self.throttles.login_succeeded(id, conn.who).await;
        }
        let Some(record) = record else { return Err(ServiceError::InvalidCredentials) };
        let token = if conn.ext {
            let token = new_token()?;
            let expires = Clock::now_ms().saturating_add(self.config.resume_ttl.as_millis() as i64);
            self.log.put_token(&token_hash(&token), id, expires).await?;
            Some(token)
        } else {
            None
        };
        self.start_session(conn, SessionUser { id, name: record.name }, token, &[]).await
    }

    /// RESUME: a session again from a resume token (no password, so no hashing), with what
    /// the client says it has.
    pub(crate) async fn resume(
        &self,
        conn: &mut Conn,
        token: String,
        acks: &[(Peer, i64)],
    ) -> Result<Reply, ServiceError> {
        if conn.user.is_some() {
            return Err(ServiceError::AlreadyLoggedIn);
        }
        conn.ext = true;
        let Some(id) = self.log.token_user(&token_hash(&token), Clock::now_ms()).await? else {
            return Err(ServiceError::BadToken);
        };
        let Some(record) = self.store.find_user(id).await? else { return Err(ServiceError::BadToken) };
        let claims: Vec<(ConvId, i64)> =
            acks.iter().map(|&(peer, seq)| (ConvId::of(id, peer), seq)).collect();
        let user = SessionUser { id, name: record.name };
        // The token proves the user: a session still held for it (a connection that died
        // without its node noticing, as XEP-0198 resumption assumes) is taken over.
        let mut waited = std::time::Duration::ZERO;
        loop {
            match self.start_session(conn, user.clone(), Some(token.clone()), &claims).await {
                Err(ServiceError::InUse) if waited < TAKEOVER_WAIT => {
                    if waited.is_zero() {
                        info!(user = %id, "resume takes over a session still held");
                        self.sessions().take_over(id);
                        if let Err(e) = self.broker.announce(self.delivery.takeover_event(id)).await {
                            warn!(user = %id, error = %e, "could not announce the takeover");
                        }
                    }
                    tokio::time::sleep(TAKEOVER_STEP).await;
                    waited += TAKEOVER_STEP;
                }
                outcome => return outcome,
            }
        }
    }

    /// Everything a login and a resume share, once the user is known: claim the user here and
    /// in the cluster, subscribe, read the lists and the conversations, answer, then replay.
    async fn start_session(
        &self,
        conn: &mut Conn,
        user: SessionUser,
        token: Option<String>,
        claims: &[(ConvId, i64)],
    ) -> Result<Reply, ServiceError> {
        let id = user.id;
        // One session per user: this node first (atomic under the sessions lock),
        // then the cluster (atomic in the broker).
        if !self.sessions().try_insert(id, conn.id, conn.out.clone(), conn.ext) {
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
        // Subscribed (and confirmed) before the conversations are read: whatever is stored
        // after the read is also published to us, and what came before is in the read.
        if let Err(e) = self.broker.subscribe(id).await {
            self.abandon_login(id, conn.id, true).await;
            return Err(e.into());
        }
        let loaded = self.load_session(conn, id, claims).await;
        let Loaded { friends, groups, legacy, included, unread } = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                self.abandon_login(id, conn.id, true).await;
                let _ = self.store.set_online(&[id], false).await;
                return Err(e);
            }
        };
        let legacy_up_to = legacy.last().map(|m| m.id);
        let mut offline: Vec<String> = legacy.into_iter().map(|m| m.payload).collect();
        offline.extend(included.iter().map(|m| String::from_utf8_lossy(&push_frame(m, false)).into_owned()));
        let ack = LoginOk { id, name: user.name.clone(), friends, groups, offline, resume: token, unread };
        conn.token = ack.resume.as_deref().map(token_hash);
        conn.user = Some(user);
        if conn.counted {
            self.addresses.logged_in(conn.who);
        }
        info!(user = %id, addr = %conn.addr.ip(), "logged in");
        // The ack goes first; the replay and what arrived meanwhile follow it.
        let ack_index = conn.out.try_send_indexed(ack.encode(conn.ext).into()).ok();
        let replay = self.sessions().activate(id, conn.id, ack_index.unwrap_or(u64::MAX), &included);
        if replay {
            self.delivery.start_catch_up(id, conn.id);
        }
        if let (Some(_), Some(up_to)) = (ack_index, legacy_up_to) {
            // Rows older versions stored are removed only once they reached the client's socket.
            let written = tokio::time::timeout(std::time::Duration::from_secs(30), conn.out.flushed()).await;
            if matches!(written, Ok(true))
                && let Err(e) = self.store.delete_offline(id, up_to).await
            {
                warn!(user = %id, error = %e, "could not delete delivered offline messages; they will come again");
            }
        }
        if ack_index.is_none() {
            conn.out.close();
        }
        Ok(Reply::Silent)
    }

    /// The login's reads: lists, conversations (into the session's inbox), the rows older
    /// versions stored offline, and either the original client's offline messages (from
    /// the log, for its ack) or the extension's unread counts.
    async fn load_session(
        &self,
        conn: &Conn,
        id: UserId,
        claims: &[(ConvId, i64)],
    ) -> Result<Loaded, ServiceError> {
        self.store.set_online(&[id], true).await?;
        let friends = self.store.friends(id).await?;
        let groups = self.store.groups_of(id).await?;
        let (friends, groups) = self.mask_presence(id, friends, groups).await?;
        let legacy = self.store.offline_messages(id).await?;
        let states = self.log.conversations(id).await?;
        // Group messages of users this one blocks are not pushed (issue 21).
        let muted: Vec<UserId> = self.control.blocked(id).await?.into_iter().map(|u| u.id).collect();
        self.sessions().set_muted(id, conn.id, muted.clone());
        let behind = self.sessions().load(id, conn.id, &states, claims);
        if conn.ext {
            // Extension clients get the backlog as pushes after the ack (the replay).
            let unread = self.unread(id, &behind).await?;
            return Ok(Loaded { friends, groups, legacy, included: Vec::new(), unread });
        }
        // The original client reads its backlog from the ack's `offlinemsg`; the rest, if
        // there is more than fits, follows as pushes.
        let mut included = if behind.is_empty() {
            Vec::new()
        } else {
            self.log.after(&behind, self.config.offline_in_ack).await?
        };
        included.retain(|m| m.sender != id && !(m.conv.as_group().is_some() && muted.contains(&m.sender)));
        Ok(Loaded { friends, groups, legacy, included, unread: Vec::new() })
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

    /// Removes the session; unsequenced frames held back for it go to the offline store,
    /// its acknowledged cursors to the log.
    async fn drop_session(&self, id: UserId, conn: u64) {
        if let Some(removed) = self.sessions().remove(id, conn) {
            self.delivery.store_later(
                removed.held.into_iter().map(|f| (id, String::from_utf8_lossy(&f).into_owned())).collect(),
            );
            self.delivery.save_cursors_later(id, removed.cursors);
        }
    }

    /// Ends the connection's login, if any: as LOGINOUT (`forget_token`: the resume token
    /// goes too), or when the connection is gone (it stays, for the client to resume).
    ///
    /// The session entry goes last: until it is gone no new login for the user can start on
    /// this node, so this logout's release can never drop a claim that a newer login made.
    pub(crate) async fn logout(&self, conn: &mut Conn, forget_token: bool) {
        let Some(user) = conn.user.take() else { return };
        if conn.counted {
            self.addresses.logged_out(conn.who);
        }
        conn.unauth_since = std::time::Instant::now();
        if let (true, Some(hash)) = (forget_token, conn.token.take())
            && let Err(e) = self.log.drop_token(&hash).await
        {
            warn!(user = %user.id, error = %e, "could not forget the resume token; it expires by itself");
        }
        // Cursors before the release: the user's next login, anywhere, reads them.
        let cursors = self.sessions().unsaved_of(user.id, conn.id);
        if !cursors.is_empty() {
            let list: Vec<_> = cursors.iter().map(|&(c, s)| (user.id, c, s)).collect();
            match self.log.save_cursors(&list).await {
                Ok(()) => self.sessions().saved(&list),
                Err(e) => warn!(user = %user.id, error = %e, "saving cursors at logout failed; retrying"),
            }
        }
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
        info!(user = %user.id, addr = %conn.addr.ip(), "logged out");
    }
}
