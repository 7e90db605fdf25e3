//! Register, login, resume and logout.

use chat_ports::LoggedMessage;
use chat_proto::{ConvId, LoginOk, MAX_NAME_CHARS, MAX_PASSWORD_CHARS, Peer, UserId, reg_ok};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::{Clock, check_name, check_text};
use crate::delivery::{DeviceEvent, TOKEN_PREFIX, save_both};
use crate::dispatch::{Conn, Reply, SessionUser};
use crate::durable::push_frame;
use crate::sessions::{Refused, Unsaved};
use crate::{Service, ServiceError};
use chat_ports::Joined;

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
    /// The extension's read marks and receipts (issue 20).
    reads: chat_proto::ReadState,
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
        self.start_session(conn, SessionUser { id, name: record.name }, token, &[], false).await
    }

    /// LOGIN naming the account by its exact name (extension): the login by id of that
    /// user. An unknown name fails as an unknown id does (same text, same throttle).
    pub(crate) async fn login_by_name(
        &self,
        conn: &mut Conn,
        name: String,
        password: String,
    ) -> Result<Reply, ServiceError> {
        if conn.user.is_some() {
            return Err(ServiceError::AlreadyLoggedIn);
        }
        // Names never have surrounding blanks (registration trims them).
        let id = match self.store.find_user_by_name(name.trim()).await? {
            Some(found) => found.id,
            // No user has id 0: the login below fails the way an unknown id does.
            None => UserId(0),
        };
        self.login(conn, id, password).await
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
        let hash = token_hash(&token);
        let Some(id) = self.log.token_user(&hash, Clock::now_ms()).await? else {
            return Err(ServiceError::BadToken);
        };
        let Some(record) = self.store.find_user(id).await? else { return Err(ServiceError::BadToken) };
        let claims: Vec<(ConvId, i64)> =
            acks.iter().map(|&(peer, seq)| (ConvId::of(id, peer), seq)).collect();
        let user = SessionUser { id, name: record.name };
        // Exactly that session comes back: a connection still holding it (one that died
        // without its node noticing, as XEP-0198 resumption assumes) is closed, here or on
        // another node; the user's other sessions stay.
        let prefix = hash[..TOKEN_PREFIX].to_owned();
        if self.sessions().take_over_session(id, Some(prefix.as_str()), Some(conn.id)) > 0 {
            info!(user = %id, "resume takes over its session still held here");
        }
        let event = DeviceEvent::TakeOver { user: id, token: prefix, from: self.delivery.instance() };
        if let Err(e) = self.broker.announce(event.encode()).await {
            warn!(user = %id, error = %e, "could not announce the takeover");
        }
        let mut waited = std::time::Duration::ZERO;
        loop {
            match self.start_session(conn, user.clone(), Some(token.clone()), &claims, true).await {
                // At the limit, sessions of a dead node may still count (until its lease
                // expires): wait a little, as for a held account, but take nothing over.
                Err(ServiceError::SessionLimit(_)) if waited < TAKEOVER_WAIT => {
                    tokio::time::sleep(TAKEOVER_STEP).await;
                    waited += TAKEOVER_STEP;
                }
                Err(ServiceError::InUse) if waited < TAKEOVER_WAIT => {
                    if waited.is_zero() {
                        // A session that shares with none holds the user (a node of the
                        // previous release resumed it there): take it over the old way.
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

    /// Everything a login and a resume share, once the user is known: register the session
    /// here and in the cluster (an extension client beside the user's other sessions, up to
    /// `max_sessions_per_user`; an original client alone), subscribe, read the lists and the
    /// conversations, answer, then replay.
    async fn start_session(
        &self,
        conn: &mut Conn,
        user: SessionUser,
        token: Option<String>,
        claims: &[(ConvId, i64)],
        resuming: bool,
    ) -> Result<Reply, ServiceError> {
        let id = user.id;
        let hash = token.as_deref().map(token_hash);
        let max = self.config.max_sessions_per_user.max(1);
        // Opening and closing sessions of one user on this node take turns (subscribe on the
        // first, unsubscribe on the last).
        let gate = self.gates.enter(id).await;
        // This node first (atomic under the sessions lock), then the cluster (atomic in the broker).
        let first_here =
            match self.sessions().try_insert(id, conn.id, conn.out.clone(), conn.ext, hash.clone(), max) {
                Ok(first) => first,
                Err(Refused::InUse) => return Err(ServiceError::InUse),
                Err(Refused::Limit) => return Err(ServiceError::SessionLimit(max)),
            };
        let joined = conn.ext;
        let claimed = if joined {
            match self.broker.join(id, u32::try_from(max).unwrap_or(u32::MAX)).await {
                Ok(Joined::Yes { others }) => Ok(others),
                Ok(Joined::InUse) => Err(ServiceError::InUse),
                Ok(Joined::Limit) => Err(ServiceError::SessionLimit(max)),
                Err(e) => Err(e.into()),
            }
        } else {
            match self.broker.claim(id).await {
                Ok(true) => Ok(false),
                Ok(false) => Err(ServiceError::InUse),
                Err(e) => Err(e.into()),
            }
        };
        let others = match claimed {
            Ok(others) => others,
            Err(e) => {
                // A refused join counted nothing; a failed one is set right by the broker.
                self.drop_session(id, conn.id, false).await;
                return Err(e);
            }
        };
        // Subscribed (and confirmed) before the conversations are read: whatever is stored
        // after the read is also published to us, and what came before is in the read.
        if first_here && let Err(e) = self.broker.subscribe(id).await {
            self.abandon_login(id, conn.id, joined, true).await;
            return Err(e.into());
        }
        if others {
            // The user's other nodes publish what reaches it from now on; what they routed
            // before they heard of this session is read again once they surely have.
            self.sessions().set_shared(id);
            let event = DeviceEvent::Joined { user: id, from: self.delivery.instance() };
            if let Err(e) = self.broker.announce(event.encode()).await {
                warn!(user = %id, error = %e, "could not announce a session beside others");
            }
        }
        drop(gate);
        let loaded = self.load_session(conn, id, claims, hash.as_deref(), resuming).await;
        let Loaded { friends, groups, legacy, included, unread, reads } = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                let _gate = self.gates.enter(id).await;
                let left = self.abandon_login(id, conn.id, joined, first_here).await;
                if left == 0 {
                    let _ = self.store.set_online(&[id], false).await;
                }
                return Err(e);
            }
        };
        let legacy_up_to = legacy.last().map(|m| m.id);
        let mut offline: Vec<String> = legacy.into_iter().map(|m| m.payload).collect();
        offline.extend(included.iter().map(|m| String::from_utf8_lossy(&push_frame(m, false)).into_owned()));
        let ack =
            LoginOk { id, name: user.name.clone(), friends, groups, offline, resume: token, unread, reads };
        conn.token = hash;
        conn.joined = joined;
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
        if others {
            self.delivery.settle_later(id, conn.id, self.config.settle_after);
        }
        if let Some(user) = &conn.user {
            self.announce_presence(user, std::time::Duration::ZERO);
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

    /// LOGOUT_ALL (extension): every session of the user ends, on every node, and every
    /// resume token of the user with it; this connection stays open, logged out.
    pub(crate) async fn logout_all(&self, conn: &mut Conn) -> Result<Reply, ServiceError> {
        let me = conn.user()?.id;
        self.log.drop_tokens_of(me).await?;
        conn.token = None;
        let here = self.sessions().log_out_everywhere(me, Some(conn.id));
        let event = DeviceEvent::LogOutAll { user: me, from: self.delivery.instance() };
        if let Err(e) = self.broker.announce(event.encode()).await {
            // Their tokens are gone: they cannot resume, and they end at their next disconnect.
            warn!(user = %me, error = %e, "could not announce the logout everywhere");
        }
        info!(user = %me, closed_here = here, "logged out everywhere");
        // As a LOGINOUT (the token is gone already): the friends hear of it at once.
        self.logout(conn, true).await;
        Ok(Reply::Done)
    }

    /// FIND_USER (extension): the user with exactly that name, to add as a friend.
    pub(crate) async fn find_user(&self, conn: &Conn, name: String) -> Result<Reply, ServiceError> {
        conn.user()?;
        match self.store.find_user_by_name(name.trim()).await? {
            Some(found) => Ok(Reply::Frame(chat_proto::find_user_ok(found.id, &found.name, found.online))),
            None => Err(ServiceError::UnknownUser),
        }
    }

    /// The login's reads: lists, conversations (into the session's inbox), the rows older
    /// versions stored offline, and either the original client's offline messages (from
    /// the log, for its ack) or the extension's unread counts.
    async fn load_session(
        &self,
        conn: &Conn,
        id: UserId,
        claims: &[(ConvId, i64)],
        token: Option<&str>,
        resuming: bool,
    ) -> Result<Loaded, ServiceError> {
        self.store.set_online(&[id], true).await?;
        let friends = self.store.friends(id).await?;
        let groups = self.store.groups_of(id).await?;
        let (friends, groups) = self.mask_presence(id, friends, groups).await?;
        let legacy = self.store.offline_messages(id).await?;
        // Group messages of users this one blocks are not pushed (issue 21).
        let muted: Vec<UserId> = self.control.blocked(id).await?.into_iter().map(|u| u.id).collect();
        self.sessions().set_muted(id, conn.id, muted.clone());
        let mut states = self.log.conversations(id).await?;
        // A session resumes from its own cursors (the user's are the furthest any session
        // acknowledged, which this one may not have). A conversation it has no cursor in began
        // after it did: all of it is new to it. A token without cursors of its own is the
        // previous release's: the user's cursors are all there is.
        let mut own = None;
        if let (Some(hash), true) = (token, resuming) {
            own = self.log.session_cursors(hash).await?;
        }
        if let Some(own) = &own {
            let own: std::collections::HashMap<ConvId, i64> = own.iter().copied().collect();
            for state in &mut states {
                state.cursor = own.get(&state.conv).copied().unwrap_or(0);
            }
        }
        let behind = self.sessions().load(id, conn.id, &states, claims);
        if let (Some(hash), None) = (token, &own) {
            // The session's own cursors start where it starts (and the marker says it has them).
            let mut rows: Vec<(String, ConvId, i64)> = vec![(hash.to_owned(), ConvId(0), 0)];
            rows.extend(
                self.sessions().cursors(id, conn.id).into_iter().map(|(c, s)| (hash.to_owned(), c, s)),
            );
            self.log.save_session_cursors(&rows).await?;
        }
        if conn.ext {
            // Extension clients get the backlog as pushes after the ack (the replay). Unread
            // counts start at the read mark where there is one, else at the cursor.
            let mut known: std::collections::HashMap<ConvId, i64> =
                self.sessions().cursors(id, conn.id).into_iter().collect();
            known.extend(behind.iter().copied());
            let known: Vec<(ConvId, i64)> = known.into_iter().collect();
            let last: std::collections::HashMap<ConvId, i64> =
                states.iter().map(|s| (s.conv, s.last_seq)).collect();
            let (unread, reads) = self.read_state(id, &known, Some(&last)).await?;
            return Ok(Loaded { friends, groups, legacy, included: Vec::new(), unread, reads });
        }
        // The original client reads its backlog from the ack's `offlinemsg`; the rest, if
        // there is more than fits, follows as pushes.
        let mut included = if behind.is_empty() {
            Vec::new()
        } else {
            self.log.after(&behind, self.config.offline_in_ack).await?
        };
        included.retain(|m| m.sender != id && !(m.conv.as_group().is_some() && muted.contains(&m.sender)));
        Ok(Loaded { friends, groups, legacy, included, unread: Vec::new(), reads: Default::default() })
    }

    /// Undoes a login that got as far as the broker (`joined`: an extension session, else an
    /// exclusive claim) and maybe subscribed (`subscribed`). Called with the user's gate held.
    /// Returns how many sessions the user has left in the cluster (1 when unknown).
    async fn abandon_login(&self, id: UserId, conn: u64, joined: bool, subscribed: bool) -> u32 {
        if subscribed && self.sessions().count(id) <= 1 {
            let _ = self.broker.unsubscribe(id).await;
        }
        let left = if joined {
            self.broker.leave(id).await.unwrap_or(1)
        } else {
            let _ = self.broker.release(id).await;
            0
        };
        // Last, as in `logout`.
        self.drop_session(id, conn, false).await;
        left
    }

    /// Removes the session; unsequenced frames held back for it go to the offline store,
    /// its acknowledged cursors to the log (its own too, under its token, if `keep_token`).
    async fn drop_session(&self, id: UserId, conn: u64, keep_token: bool) {
        if let Some(removed) = self.sessions().remove(id, conn) {
            self.delivery.store_later(
                removed.held.into_iter().map(|f| (id, String::from_utf8_lossy(&f).into_owned())).collect(),
            );
            let token = if keep_token { removed.token } else { None };
            self.delivery.save_cursors_later(id, removed.cursors, token);
        }
    }

    /// Ends the connection's login, if any: as LOGINOUT (`forget_token`: the resume token
    /// goes too), or when the connection is gone (it stays, for the client to resume).
    ///
    /// The user's other sessions stay. The last one here unsubscribes; the last one anywhere
    /// marks the user offline. An original client's session releases its claim before its
    /// entry goes, so the release can never drop a claim that a newer login made.
    pub(crate) async fn logout(&self, conn: &mut Conn, forget_token: bool) {
        let Some(user) = conn.user.take() else { return };
        if conn.counted {
            self.addresses.logged_out(conn.who);
        }
        conn.unauth_since = std::time::Instant::now();
        let mut token = conn.token.take();
        if forget_token
            && let Some(hash) = token.take()
            && let Err(e) = self.log.drop_token(&hash).await
        {
            warn!(user = %user.id, error = %e, "could not forget the resume token; it expires by itself");
        }
        // Cursors before the release: the user's next login, anywhere, reads them.
        let cursors = self.sessions().unsaved_of(user.id, conn.id);
        if !cursors.is_empty() {
            let list: Vec<Unsaved> = cursors
                .iter()
                .map(|&(conv, seq)| Unsaved { user: user.id, conn: conn.id, token: token.clone(), conv, seq })
                .collect();
            match save_both(self.log.as_ref(), &list).await {
                Ok(()) => self.sessions().saved_of(user.id, conn.id, &cursors),
                Err(e) => warn!(user = %user.id, error = %e, "saving cursors at logout failed; retrying"),
            }
        }
        let gate = self.gates.enter(user.id).await;
        if self.sessions().count(user.id) <= 1
            && let Err(e) = self.broker.unsubscribe(user.id).await
        {
            warn!(user = %user.id, error = %e, "unsubscribe failed");
        }
        let left = if conn.joined {
            match self.broker.leave(user.id).await {
                Ok(left) => left,
                Err(e) => {
                    warn!(user = %user.id, error = %e, "ending the session in the broker failed");
                    // Unknown: the user's state stays as it is.
                    1
                }
            }
        } else {
            if let Err(e) = self.broker.release(user.id).await {
                warn!(user = %user.id, error = %e, "releasing presence failed");
            }
            0
        };
        if left == 0 {
            if let Err(e) = self.store.set_online(&[user.id], false).await {
                warn!(user = %user.id, error = %e, "could not mark user offline");
            }
            // A LOGINOUT is meant: tell the friends now. A lost connection may come back
            // (a resume) within the debounce: tell them only if it does not.
            let after = if forget_token { std::time::Duration::ZERO } else { self.config.presence_debounce };
            self.announce_presence(&user, after);
        }
        self.drop_session(user.id, conn.id, token.is_some()).await;
        drop(gate);
        conn.joined = false;
        info!(user = %user.id, addr = %conn.addr.ip(), "logged out");
    }
}
