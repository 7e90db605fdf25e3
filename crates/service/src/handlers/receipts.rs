//! MARK_READ (54) and READS (56): a few lines each; the rules are in `crate::receipts`.

use chat_proto::{Peer, UserId};

use crate::dispatch::{Conn, Reply};
use crate::{Service, ServiceError};

impl Service {
    /// MARK_READ: the session's user has read `peer`'s conversation up to `seq` (clamped to
    /// its last seq; a mark never goes back). Members only. A mark that moved is told.
    pub(crate) async fn mark_read(&self, conn: &Conn, peer: Peer, seq: i64) -> Result<Reply, ServiceError> {
        let me = conn.user()?;
        let conv = self.readable(me, peer).await?;
        let (before, after) = self.log.mark_read(me.id, conv, seq).await?;
        if after > before {
            self.tell_read(me.id, conn.id, conv, before, after).await?;
        }
        Ok(Reply::Done)
    }

    /// READS: each member's read mark and cursor in `peer`'s conversation. Members only.
    pub(crate) async fn reads(&self, conn: &Conn, peer: Peer) -> Result<Reply, ServiceError> {
        let me = conn.user()?;
        let conv = self.readable(me, peer).await?;
        let mut users: Vec<UserId> = match peer {
            Peer::User(other) => vec![me.id, other],
            Peer::Group(group) => self.members(group).await?.to_vec(),
        };
        users.sort();
        users.dedup();
        let reads = self.marks_of(me.id, conv, &users).await?;
        Ok(Reply::Frame(chat_proto::reads_ack(peer, &reads)))
    }
}
