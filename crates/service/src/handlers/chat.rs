//! One-to-one and group chat, history and acknowledgements. Chats are stored
//! before they are acknowledged (`journal.rs`); these handlers check the request
//! and say who receives it.

use std::sync::Arc;

use chat_ports::{LoggedMessage, NewMessage};
use chat_proto::{ConvId, GroupId, HistoryFrom, MsgId, Peer, Unread, UserId};

use crate::dispatch::{Conn, Reply, SessionUser};
use crate::durable::push_frame;
use crate::journal::{Answer, Recipients};
use crate::{Service, ServiceError};

/// The server's clock in the original's `YYYY-MM-DD HH:MM:SS` form, formatted once a
/// second rather than once a message (formatting showed in profiles).
#[derive(Default)]
pub(crate) struct Clock {
    last: std::sync::Mutex<(i64, String)>,
}

impl Clock {
    /// Now, in unix milliseconds.
    pub(crate) fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    /// `ms` (unix milliseconds) as text, server local time.
    pub(crate) fn text_at(&self, ms: i64) -> String {
        let secs = ms.div_euclid(1000);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.0 != secs || last.1.is_empty() {
            *last = (secs, crate::durable::time_text(ms));
        }
        last.1.clone()
    }
}

/// Users this node has seen exist (users are never deleted), so a chat checks its
/// recipient in the database once per node, not once per message.
#[derive(Default)]
pub(crate) struct KnownUsers {
    set: std::sync::Mutex<std::collections::HashSet<UserId>>,
}

impl KnownUsers {
    /// Users remembered before the set starts afresh (bounds memory).
    const CAPACITY: usize = 1_000_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<UserId>> {
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn contains(&self, user: UserId) -> bool {
        self.lock().contains(&user)
    }

    pub(crate) fn insert(&self, user: UserId) {
        let mut set = self.lock();
        if set.len() >= Self::CAPACITY {
            set.clear();
        }
        set.insert(user);
    }
}

impl Service {
    fn check_message(&self, msg: &str) -> Result<(), ServiceError> {
        if msg.is_empty() {
            return Err(ServiceError::InvalidInput("message must not be empty".into()));
        }
        if msg.len() > self.config.max_message_bytes {
            return Err(ServiceError::InvalidInput(format!(
                "message is longer than {} bytes",
                self.config.max_message_bytes
            )));
        }
        Ok(())
    }

    /// Whether `user` exists (asking the database once per node and user).
    pub(crate) async fn user_exists(&self, user: UserId) -> Result<bool, ServiceError> {
        if user.0 <= 0 {
            return Ok(false);
        }
        if self.known_users.contains(user) {
            return Ok(true);
        }
        let exists = self.store.user_exists(user).await?;
        if exists {
            self.known_users.insert(user);
        }
        Ok(exists)
    }

    fn new_message(&self, me: &SessionUser, conv: ConvId, msg: String, cid: Option<String>) -> NewMessage {
        NewMessage {
            conv,
            sender: me.id,
            sender_name: me.name.clone(),
            cid,
            body: msg,
            created_at: crate::handlers::Clock::now_ms(),
        }
    }

    /// Hands a checked chat to the journal; its ACK comes from there, once it is stored and
    /// routed. The connection goes on reading meanwhile (its chats pipeline).
    async fn submit(
        &self,
        conn: &mut Conn,
        message: NewMessage,
        to: Recipients,
    ) -> Result<Reply, ServiceError> {
        let kind = if matches!(to, Recipients::One(_)) { MsgId::OneChat } else { MsgId::GroupChat };
        let answer =
            Answer { out: conn.out.clone(), ext: conn.ext, kind, cid: message.cid.clone(), conn: conn.id };
        self.journal.submit(message, to, answer, conn.pending.clone()).await?;
        Ok(Reply::Silent)
    }

    pub(crate) async fn send_one(
        &self,
        conn: &mut Conn,
        to: UserId,
        msg: String,
        cid: Option<String>,
    ) -> Result<Reply, ServiceError> {
        let me = conn.user()?.clone();
        self.check_message(&msg)?;
        // Blocks and "friends only" (control.rs), before anything is stored.
        self.check_write(me.id, to).await?;
        let conv = ConvId::direct(me.id, to);
        let message = self.new_message(&me, conv, msg, cid);
        self.submit(conn, message, Recipients::One(to)).await
    }

    pub(crate) async fn send_group(
        &self,
        conn: &mut Conn,
        group: GroupId,
        msg: String,
        cid: Option<String>,
    ) -> Result<Reply, ServiceError> {
        let me = conn.user()?.clone();
        self.check_message(&msg)?;
        let members = self.members(group).await?;
        if !members.contains(&me.id) {
            return Err(ServiceError::NotMember);
        }
        let conv = ConvId::group(group);
        let message = self.new_message(&me, conv, msg, cid);
        self.submit(conn, message, Recipients::Members(members)).await
    }

    /// A group's members: from the cache, or from the store (then cached).
    pub(crate) async fn members(&self, group: GroupId) -> Result<Arc<[UserId]>, ServiceError> {
        let cache = self.delivery.groups();
        if let Some(members) = cache.get(group) {
            return Ok(members);
        }
        let members: Arc<[UserId]> =
            self.store.group_members(group).await?.ok_or(ServiceError::UnknownGroup)?.into();
        cache.put(group, Arc::clone(&members));
        Ok(members)
    }

    /// The conversation `me` names `peer`, if `me` may read it.
    pub(crate) async fn readable(&self, me: &SessionUser, peer: Peer) -> Result<ConvId, ServiceError> {
        match peer {
            Peer::Group(group) if !self.members(group).await?.contains(&me.id) => {
                return Err(ServiceError::NotMember);
            }
            Peer::User(user) if !self.user_exists(user).await? => return Err(ServiceError::UnknownUser),
            _ => {}
        }
        Ok(ConvId::of(me.id, peer))
    }

    pub(crate) async fn history(
        &self,
        me: &SessionUser,
        peer: Peer,
        from: HistoryFrom,
        limit: Option<u32>,
    ) -> Result<Reply, ServiceError> {
        let conv = self.readable(me, peer).await?;
        let cap = self.config.history_page_max.max(1);
        let limit = limit.map_or(cap, |n| (n as usize).clamp(1, cap));
        // One more than asked tells whether there is more in the page's direction.
        let mut page = self.log.history(conv, from, limit + 1).await?;
        let more = page.len() > limit;
        if more {
            match from {
                HistoryFrom::After(_) => page.truncate(limit),
                HistoryFrom::Latest | HistoryFrom::Before(_) => {
                    page.remove(0);
                }
            }
        }
        let frames: Vec<String> = page
            .iter()
            .map(|m: &LoggedMessage| String::from_utf8_lossy(&push_frame(m, true)).into_owned())
            .collect();
        Ok(Reply::Frame(chat_proto::history_ack(&frames, more)))
    }

    /// RECEIVED: the client has these conversations up to these seqs. A cursor it moves in a
    /// one-to-one conversation is a "recv" receipt to the other user (`receipts.rs`).
    pub(crate) async fn received(&self, conn: &Conn, acks: &[(Peer, i64)]) -> Result<Reply, ServiceError> {
        let me = conn.user()?;
        let acks: Vec<(ConvId, i64)> =
            acks.iter().map(|&(peer, seq)| (ConvId::of(me.id, peer), seq)).collect();
        let moved = self.sessions().ack(me.id, conn.id, &acks);
        self.tell_received(me.id, &moved).await;
        Ok(Reply::Silent)
    }

    /// Unread counts from `cursors` (conversation, cursor), as `me` names the conversations.
    pub(crate) async fn unread(
        &self,
        me: UserId,
        cursors: &[(ConvId, i64)],
    ) -> Result<Vec<Unread>, ServiceError> {
        if cursors.is_empty() {
            return Ok(Vec::new());
        }
        let mut counts = self.log.unread(me, cursors).await?;
        counts.sort();
        Ok(counts
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .filter_map(|(conv, count)| conv.peer_of(me).map(|peer| Unread { peer, count }))
            .collect())
    }

    pub(crate) async fn lists(&self, me: &SessionUser, conn: u64) -> Result<Reply, ServiceError> {
        let friends = self.store.friends(me.id).await?;
        let groups = self.store.groups_of(me.id).await?;
        let (friends, groups) = self.mask_presence(me.id, friends, groups).await?;
        let (unread, reads) = self.read_state(me.id, &self.sessions().cursors(me.id, conn), None).await?;
        Ok(Reply::Frame(chat_proto::list_ack(&friends, &groups, &unread, &reads)))
    }
}
