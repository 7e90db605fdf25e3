//! The one place where frames become requests and outcomes become frames.
//!
//! Handlers return `Result<Reply, ServiceError>`; this module decides what the
//! client sees. A connection that has not opted in to the extension gets only
//! the frames the original server would send (LOGIN/REG acks and forwarded
//! chats); one that has gets an answer to every request.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chat_net::{Flow, Handler, Inbound, Outbound};
use chat_proto::{
    Ack, ErrorCode, GroupId, MsgId, Notice, Request, UserId, ack_error, decode_request, encode,
};
use tracing::{Instrument, debug, debug_span, info, warn};

use crate::limits::{Refused, TokenBucket};
use crate::{Service, ServiceError};

/// The logged-in user of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// Who.
    pub id: UserId,
    /// Their name, stamped on everything they send.
    pub name: String,
}

/// Per-connection state, owned by the connection's reader task.
pub struct Conn {
    pub(crate) id: u64,
    /// The client's address (the real one, when an allowed proxy said it).
    pub(crate) addr: SocketAddr,
    /// How the per-address limits count the address.
    pub(crate) who: crate::limits::Counted,
    /// Whether the per-address bookkeeping counts this connection (a refused one is not).
    pub(crate) counted: bool,
    pub(crate) out: Outbound,
    /// Opted in to the extension (by `"ext"` in a LOGIN or REG).
    pub(crate) ext: bool,
    pub(crate) user: Option<SessionUser>,
    /// The SHA-256 of the session's resume token (forgotten at LOGINOUT).
    pub(crate) token: Option<String>,
    /// The session is an extension one, one of the user's several ([`chat_ports::Broker::join`]);
    /// otherwise an original client's, alone ([`chat_ports::Broker::claim`]).
    pub(crate) joined: bool,
    /// The connection's chats not yet answered (see `journal.rs`).
    pub(crate) pending: std::sync::Arc<crate::journal::Pending>,
    /// Request rate limit.
    bucket: TokenBucket,
    /// Requests refused by the rate limit in a row.
    refused_in_row: u32,
    /// Failed logins on this connection.
    failed_logins: u32,
    /// Since when this connection has had no login (open, or the last logout).
    pub(crate) unauth_since: Instant,
    /// A ping went out and nothing has come back since.
    ping_outstanding: bool,
    /// What this session's TYPING forwarded lately (its rate limit).
    pub(crate) typing: crate::handlers::TypingState,
}

impl Conn {
    /// The logged-in user, or `NotLoggedIn`.
    pub(crate) fn user(&self) -> Result<&SessionUser, ServiceError> {
        self.user.as_ref().ok_or(ServiceError::NotLoggedIn)
    }

    fn send(&self, frame: String) {
        // A full queue here means the client does not read its own replies.
        if self.out.try_send(Bytes::from(frame)).is_err() {
            self.out.close();
        }
    }
}

/// What a successful request answers.
pub(crate) enum Reply {
    /// A frame of its own (LOGIN and REG acks, LIST).
    Frame(String),
    /// Nothing in the original protocol; an ACK for extension clients.
    Done,
    /// A new group (the extension's ACK carries its id).
    GroupCreated(GroupId),

    /// Nothing at all, for anybody (PONG).
    Silent,
}

impl Handler for Service {
    type Conn = Conn;

    fn open(&self, id: u64, peer: SocketAddr, out: Outbound) -> (Conn, Flow) {
        self.sessions().metrics().connections_original.inc();
        let who = self.addresses.classify(peer.ip());
        let refused = self.addresses.open(who).err();
        let conn = Conn {
            id,
            addr: peer,
            who,
            counted: refused.is_none(),
            out,
            ext: false,
            user: None,
            token: None,
            joined: false,
            pending: Default::default(),
            bucket: TokenBucket::new(self.config.rate_burst),
            refused_in_row: 0,
            failed_logins: 0,
            unauth_since: Instant::now(),
            ping_outstanding: false,
            typing: Default::default(),
        };
        if let Some(why) = refused {
            let metrics = self.sessions().metrics();
            match why {
                Refused::Connections => metrics.refused_connections_per_ip.inc(),
                Refused::Unauthenticated => metrics.refused_unauth_per_ip.inc(),
            }
            info!(addr = %peer.ip(), limit = why.label(), "per-address limit reached; refusing");
            conn.send(encode(&Notice::new(ErrorCode::AddressLimit, why.text())));
            return (conn, Flow::Close);
        }
        (conn, Flow::Continue)
    }

    async fn frame(&self, conn: &mut Conn, frame: Inbound) -> Flow {
        conn.ping_outstanding = false;
        if !conn.bucket.take(self.config.rate_per_sec, self.config.rate_burst) {
            conn.refused_in_row += 1;
            if conn.refused_in_row >= self.config.abuse_limit {
                warn!(addr = %conn.addr.ip(), "request flood; disconnecting");
                conn.send(encode(&Notice::new(ErrorCode::RateLimited, "too many requests; disconnecting")));
                return Flow::Close;
            }
            conn.send(encode(&Ack::error(0, ErrorCode::RateLimited, "too many requests; slow down")));
            return Flow::Continue;
        }
        conn.refused_in_row = 0;
        let bytes = match frame {
            Inbound::Frame(bytes) => bytes,
            Inbound::TooLong => {
                debug!("frame over the limit");
                conn.send(encode(&Ack::error(0, ErrorCode::FrameTooLong, "frame is longer than the limit")));
                return Flow::Continue;
            }
        };
        let request = match decode_request(&bytes) {
            Ok(request) => request,
            Err(e) => {
                debug!(error = %e, "malformed frame");
                // Protocol errors are answered even without the extension: the original
                // client never sends a malformed frame, so it never sees one.
                let frame = match e.msgid {
                    Some(1) => ack_error(MsgId::LoginAck, ErrorCode::BadRequest, &e.reason),
                    Some(4) => ack_error(MsgId::RegAck, ErrorCode::BadRequest, &e.reason),
                    re => encode(&Ack::error(re.unwrap_or(0), ErrorCode::BadRequest, e.reason)),
                };
                conn.send(frame);
                return Flow::Continue;
            }
        };
        let kind = request.msgid();
        let (metrics, started, was_ext) = (self.sessions().metrics(), Instant::now(), conn.ext);
        metrics.request(kind.number());
        // A refused chat's ACK echoes its cid, as a stored one's does.
        let chat_cid = match &request {
            Request::OneChat { cid, .. } | Request::GroupChat { cid, .. } => cid.clone(),
            _ => None,
        };
        // Debug level: a span per request costs real time at tens of thousands of requests a second.
        let span = debug_span!("request", kind = ?kind, user = conn.user.as_ref().map(|u| u.id.0));
        let outcome = self.dispatch(conn, request).instrument(span).await;
        metrics.request_duration.observe(started.elapsed().as_secs_f64());
        if conn.ext && !was_ext {
            metrics.connection_opted_in();
        }
        if matches!(kind, MsgId::Login | MsgId::Resume) {
            match &outcome {
                Ok(_) => metrics.logins_ok.inc(),
                Err(ServiceError::InvalidCredentials | ServiceError::BadToken) => metrics.logins_failed.inc(),
                Err(ServiceError::RateLimited(_)) => metrics.logins_refused.inc(),
                Err(_) => metrics.logins_error.inc(),
            }
        }
        let mut flow = Flow::Continue;
        let failed_login = matches!(outcome, Err(ServiceError::InvalidCredentials | ServiceError::BadToken));
        if matches!(kind, MsgId::Login | MsgId::Resume) && failed_login {
            conn.failed_logins += 1;
            if conn.failed_logins >= self.config.login_failures_per_conn {
                warn!(addr = %conn.addr.ip(), failures = conn.failed_logins, "too many failed logins; disconnecting");
                flow = Flow::Close;
            }
        }
        let (logged_in, deleted) = (
            matches!(kind, MsgId::Login | MsgId::Resume) && outcome.is_ok(),
            kind == MsgId::DeleteAccount && outcome.is_ok(),
        );
        self.answer(conn, kind, outcome, chat_cid);
        if logged_in
            && conn.ext
            && let Some(user) = conn.user.clone()
        {
            // Friend requests kept while the user was away (issue 21).
            self.push_waiting_requests(&user).await;
        }
        if deleted {
            // The account is gone: its ACK is the connection's last frame.
            flow = Flow::Close;
        }
        flow
    }

    fn idle(&self, conn: &mut Conn, quiet_for: Duration) -> Flow {
        if conn.user.is_none() {
            // Under pressure (many connections waiting to log in), the deadline is shorter.
            let deadline = if self.addresses.unauthenticated() >= self.config.unauth_pressure {
                self.config.login_timeout_pressed.min(self.config.login_timeout)
            } else {
                self.config.login_timeout
            };
            if conn.unauth_since.elapsed() >= deadline {
                debug!("no login in time; closing");
                if conn.ext {
                    conn.send(encode(&Notice::new(ErrorCode::Closing, "no login in time; closing")));
                }
                return Flow::Close;
            }
            return Flow::Continue;
        }
        // Only extension clients can answer a ping; TCP keepalive watches the others.
        if !conn.ext || quiet_for < self.config.ping_interval {
            return Flow::Continue;
        }
        if conn.ping_outstanding && quiet_for >= self.config.ping_interval * 2 {
            debug!("ping unanswered; closing");
            return Flow::Close;
        }
        if !conn.ping_outstanding {
            conn.ping_outstanding = true;
            conn.send(chat_proto::ping());
        }
        Flow::Continue
    }

    fn shutting_down(&self, conn: &mut Conn) {
        if conn.ext {
            conn.send(encode(&Notice::new(ErrorCode::Closing, "server is shutting down")));
        }
    }

    async fn close(&self, mut conn: Conn, unwritten: Vec<Bytes>) {
        self.sessions().metrics().connection_closed(conn.ext);
        // Logged chats that never reached the socket stay after the session's cursor (an
        // original client's cursor counts only what was written; an extension client's
        // only what it acknowledged): its next login or resume replays them.
        // Unsequenced ones (from nodes that keep no log) are kept offline.
        if let Some(user) = &conn.user {
            let keep: Vec<(UserId, String)> = unwritten
                .iter()
                .filter(|f| is_unlogged_chat(f))
                .map(|f| (user.id, String::from_utf8_lossy(f).into_owned()))
                .collect();
            if !keep.is_empty() {
                debug!(count = keep.len(), "keeping unwritten unlogged chats offline");
                self.delivery.store_later(keep);
            }
        }
        self.logout(&mut conn, false).await;
        if conn.counted {
            self.addresses.closed(conn.who);
        }
    }
}

/// Whether a queued frame is a forwarded chat that is not in the log (no `seq`).
fn is_unlogged_chat(frame: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind {
        msgid: i64,
        #[serde(default)]
        seq: Option<i64>,
    }
    serde_json::from_slice::<Kind>(frame).is_ok_and(|k| {
        k.seq.is_none()
            && (k.msgid == i64::from(MsgId::OneChat.number())
                || k.msgid == i64::from(MsgId::GroupChat.number()))
    })
}

impl Service {
    async fn dispatch(&self, conn: &mut Conn, request: Request) -> Result<Reply, ServiceError> {
        // Chats pipeline; anything else first waits for the connection's chats to be answered,
        // so it sees them (a HISTORY, a LOGINOUT) and is answered after them.
        if !matches!(
            request,
            Request::OneChat { .. } | Request::GroupChat { .. } | Request::Pong | Request::Typing { .. }
        ) {
            conn.pending.idle().await;
        }
        match request {
            Request::Login { id, password, ext } => {
                conn.ext |= ext;
                self.login(conn, id, password).await
            }
            Request::LoginByName { name, password, ext } => {
                conn.ext |= ext;
                self.login_by_name(conn, name, password).await
            }
            Request::FindUser { name } => self.find_user(conn, name).await,
            Request::LogoutAll => self.logout_all(conn).await,
            Request::Register { name, password, ext } => {
                conn.ext |= ext;
                self.register(conn, name, password).await
            }
            Request::Pong => Ok(Reply::Silent),
            Request::Resume { token, acks } => self.resume(conn, token, &acks).await,
            Request::Loginout => {
                conn.user()?;
                self.logout(conn, true).await;
                Ok(Reply::Done)
            }
            Request::OneChat { to, msg, cid } => self.send_one(conn, to, msg, cid).await,
            Request::GroupChat { group, msg, cid } => self.send_group(conn, group, msg, cid).await,
            Request::Received { acks } => self.received(conn, &acks).await,
            Request::History { peer, from, limit } => self.history(conn.user()?, peer, from, limit).await,
            Request::AddFriend { friend } => self.add_friend(conn.user()?, friend).await,
            Request::CreateGroup { name, desc } => self.create_group(conn.user()?, name, desc).await,
            Request::AddGroup { group } => self.join_group(conn.user()?, group).await,
            Request::List => self.lists(conn.user()?, conn.id).await,
            Request::Block { user } => self.block(conn.user()?, user).await,
            Request::Unblock { user } => self.unblock(conn.user()?, user).await,
            Request::Blocked => self.blocked_list(conn.user()?).await,
            Request::SetWriters { friends_only } => self.set_writers(conn.user()?, friends_only).await,
            Request::FriendRequest { user } => self.friend_request(conn.user()?, user).await,
            Request::FriendAnswer { user, accept } => self.friend_answer(conn.user()?, user, accept).await,
            Request::RemoveFriend { user } => self.remove_friend(conn.user()?, user).await,
            Request::FriendRequests => self.friend_requests(conn.user()?).await,
            Request::LeaveGroup { group } => self.leave_group(conn.user()?, group).await,
            Request::Kick { group, user } => self.kick(conn.user()?, group, user).await,
            Request::EditGroup { group, name, desc } => {
                self.edit_group(conn.user()?, group, name, desc).await
            }
            Request::DeleteGroup { group } => self.delete_group(conn.user()?, group).await,
            Request::SetAdmin { group, user, admin } => {
                self.set_admin(conn.user()?, group, user, admin).await
            }
            Request::ChangePassword { old, new } => self.change_password(conn, old, new).await,
            Request::DeleteAccount { password } => self.delete_account(conn, password).await,
            Request::MarkRead { peer, seq } => self.mark_read(conn, peer, seq).await,
            Request::Reads { peer } => self.reads(conn, peer).await,
            Request::Typing { peer, typing } => self.typing(conn, peer, typing).await,
        }
    }

    fn answer(
        &self,
        conn: &Conn,
        kind: MsgId,
        outcome: Result<Reply, ServiceError>,
        chat_cid: Option<String>,
    ) {
        let re = i64::from(kind.number());
        match outcome {
            Ok(Reply::Frame(frame)) => conn.send(frame),
            Ok(Reply::Silent) => {}
            Ok(Reply::Done) if conn.ext => conn.send(encode(&Ack::ok(kind))),
            Ok(Reply::GroupCreated(group)) if conn.ext => {
                conn.send(encode(&Ack { groupid: Some(group), ..Ack::ok(kind) }))
            }

            Ok(_) => {}
            Err(e) => {
                let (code, text) = e.wire();
                match kind {
                    MsgId::Login | MsgId::Resume => conn.send(ack_error(MsgId::LoginAck, code, &text)),
                    // The original client prints its own text for any failed registration.
                    MsgId::Reg if !conn.ext => {
                        conn.send(ack_error(MsgId::RegAck, ErrorCode::Invalid, chat_proto::ERRMSG_REG_FAILED))
                    }
                    MsgId::Reg => conn.send(ack_error(MsgId::RegAck, code, &text)),
                    _ if conn.ext => conn.send(encode(&Ack { cid: chat_cid, ..Ack::error(re, code, text) })),
                    _ => debug!(error = %e, "request refused (client has no extension; no reply)"),
                }
                if matches!(e, ServiceError::Internal) {
                    warn!(kind = ?kind, "request failed with an internal error");
                }
            }
        }
    }
}
