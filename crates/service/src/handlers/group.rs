//! Creating and joining groups.

use chat_proto::{ConvId, GroupId, MAX_DESC_CHARS, MAX_NAME_CHARS};
use tracing::info;

use super::{check_name, check_text};
use crate::dispatch::{Reply, SessionUser};
use crate::{Service, ServiceError};

impl Service {
    pub(crate) async fn create_group(
        &self,
        me: &SessionUser,
        name: String,
        desc: String,
    ) -> Result<Reply, ServiceError> {
        let name = name.trim().to_owned();
        check_name("group name", &name, MAX_NAME_CHARS)?;
        check_text("group description", &desc, MAX_DESC_CHARS)?;
        let group = self.store.create_group(me.id, &name, &desc).await?;
        info!(user = %me.id, group = %group, "group created");
        Ok(Reply::GroupCreated(group))
    }

    pub(crate) async fn join_group(&self, me: &SessionUser, group: GroupId) -> Result<Reply, ServiceError> {
        let members = self.store.group_members(group).await?.ok_or(ServiceError::UnknownGroup)?;
        if members.contains(&me.id) {
            return Ok(Reply::Done);
        }
        if members.len() >= self.config.max_group_members {
            return Err(ServiceError::LimitReached(format!(
                "the group is full ({} members)",
                self.config.max_group_members
            )));
        }
        // The group's conversation as it stands before the join: a new member receives what
        // comes after (read first, so nothing sent during the join is skipped).
        let conv = ConvId::group(group);
        let joined_at = self.log.last_seq(conv).await?;
        self.store.join_group(group, me.id).await?;
        self.sessions().joined(me.id, conv, joined_at);
        self.log.save_cursors(&[(me.id, conv, joined_at)]).await?;
        let groups = self.delivery.groups();
        groups.forget(group);
        if let Err(e) = self.broker.announce(crate::delivery::GroupCache::changed_event(group)).await {
            tracing::warn!(group = %group, error = %e, "could not announce a new member; other nodes learn within their cache's TTL");
        }
        Ok(Reply::Done)
    }
}
