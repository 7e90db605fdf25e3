//! Friends.

use chat_proto::UserId;

use crate::dispatch::{Reply, SessionUser};
use crate::{Service, ServiceError};

impl Service {
    pub(crate) async fn add_friend(&self, me: &SessionUser, friend: UserId) -> Result<Reply, ServiceError> {
        if friend == me.id {
            return Err(ServiceError::InvalidInput("you cannot add yourself as a friend".into()));
        }
        self.store.add_friend(me.id, friend).await?;
        Ok(Reply::Done)
    }
}
