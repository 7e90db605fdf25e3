//! One-to-one and group chat.

use bytes::Bytes;
use chat_proto::{ChatPush, GroupChatPush, GroupId, MsgId, TIME_FORMAT, UserId, encode};

use crate::delivery::route;
use crate::dispatch::{Reply, SessionUser};
use crate::{Service, ServiceError};

/// The server's clock in the original's `YYYY-MM-DD HH:MM:SS` form, formatted once a
/// second rather than once a message (formatting showed in profiles).
#[derive(Default)]
pub(crate) struct Clock {
    last: std::sync::Mutex<(u64, String)>,
}

impl Clock {
    pub(crate) fn now(&self) -> String {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.0 != secs || last.1.is_empty() {
            *last = (secs, chrono::Local::now().format(TIME_FORMAT).to_string());
        }
        last.1.clone()
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

    pub(crate) async fn send_one(
        &self,
        me: &SessionUser,
        to: UserId,
        msg: String,
    ) -> Result<Reply, ServiceError> {
        self.check_message(&msg)?;
        let push = ChatPush {
            id: me.id,
            msg,
            msgid: MsgId::OneChat.number(),
            name: me.name.clone(),
            time: self.clock.now(),
            to,
        };
        let frame = Bytes::from(encode(&push));
        let offline = route(self.sessions(), self.broker.as_ref(), [to], &frame).await;
        if offline.is_empty() {
            return Ok(Reply::Done);
        }
        // Nobody holds the recipient: keep it for them, if they exist at all.
        if !self.store.user_exists(to).await? {
            return Err(ServiceError::UnknownUser);
        }
        if self.mailbox_full(&[to]).await?.contains(&to) {
            return Err(ServiceError::LimitReached(format!(
                "the recipient's offline mailbox is full ({} messages)",
                self.config.max_offline_per_user
            )));
        }
        self.store.store_offline(&[(to, push_text(&frame))]).await?;
        Ok(Reply::Done)
    }

    pub(crate) async fn send_group(
        &self,
        me: &SessionUser,
        group: GroupId,
        msg: String,
    ) -> Result<Reply, ServiceError> {
        self.check_message(&msg)?;
        let members = self.members(group).await?;
        if !members.contains(&me.id) {
            return Err(ServiceError::NotMember);
        }
        let push = GroupChatPush {
            groupid: group,
            id: me.id,
            msg,
            msgid: MsgId::GroupChat.number(),
            name: me.name.clone(),
            time: self.clock.now(),
        };
        let frame = Bytes::from(encode(&push));
        let others = members.iter().copied().filter(|m| *m != me.id);
        let offline = route(self.sessions(), self.broker.as_ref(), others, &frame).await;
        if !offline.is_empty() {
            let full = self.mailbox_full(&offline).await?;
            if !full.is_empty() {
                tracing::info!(group = %group, skipped = full.len(), "offline mailboxes full; message not stored for them");
            }
            let text = push_text(&frame);
            let rows: Vec<_> =
                offline.into_iter().filter(|m| !full.contains(m)).map(|m| (m, text.clone())).collect();
            self.store.store_offline(&rows).await?;
        }
        Ok(Reply::Done)
    }

    /// A group's members: from the cache, or from the store (then cached).
    async fn members(&self, group: GroupId) -> Result<std::sync::Arc<[UserId]>, ServiceError> {
        let cache = self.delivery.groups();
        if let Some(members) = cache.get(group) {
            return Ok(members);
        }
        let members: std::sync::Arc<[UserId]> =
            self.store.group_members(group).await?.ok_or(ServiceError::UnknownGroup)?.into();
        cache.put(group, std::sync::Arc::clone(&members));
        Ok(members)
    }

    /// Which of `users` have a full offline mailbox.
    async fn mailbox_full(&self, users: &[UserId]) -> Result<Vec<UserId>, ServiceError> {
        let counts = self.store.offline_counts(users).await?;
        Ok(counts
            .into_iter()
            .filter(|(_, n)| *n >= self.config.max_offline_per_user)
            .map(|(u, _)| u)
            .collect())
    }

    pub(crate) async fn lists(&self, me: &SessionUser) -> Result<Reply, ServiceError> {
        let friends = self.store.friends(me.id).await?;
        let groups = self.store.groups_of(me.id).await?;
        Ok(Reply::Frame(chat_proto::list_ack(&friends, &groups)))
    }
}

fn push_text(frame: &Bytes) -> String {
    String::from_utf8_lossy(frame).into_owned()
}
