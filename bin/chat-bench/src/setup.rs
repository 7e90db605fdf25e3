//! Bringing users on line before a run: register (names unique per bench
//! process), log in, and for group chat create and join the groups. Users are
//! spread over the addresses round robin. Not responsible for the traffic.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use chat_proto::{GroupId, UserId};
use chat_tls::ClientConfig;
use futures::{StreamExt, TryStreamExt, stream};

use crate::client::{Conn, proxy_header};
use crate::fleet::Ready;

/// Where and how to bring users on line.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Addresses, used round robin.
    pub nodes: Vec<String>,
    /// Prefix of user and group names (unique per bench process).
    pub prefix: String,
    /// Set-up requests in flight at once.
    pub concurrency: usize,
    /// TLS to the nodes (`--tls`), else plain TCP.
    pub tls: Option<Arc<ClientConfig>>,
    /// WebSocket to the nodes' `ws_listen` (`--ws`).
    pub ws: bool,
    /// Each connection starts with a PROXY protocol header naming an address of its own
    /// (`--proxy`): the nodes then count each user under its own address.
    pub proxy: bool,
}

/// A name prefix unique to this bench process: `b<seconds-hex><pid-hex>`.
pub fn unique_prefix() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("b{:x}{:x}", secs & 0xff_ffff, std::process::id())
}

impl Setup {
    /// The name of user `i`.
    pub fn user_name(&self, i: usize) -> String {
        format!("{}-{i}", self.prefix)
    }

    fn addr(&self, i: usize) -> (usize, &str) {
        let node = i % self.nodes.len();
        (node, &self.nodes[node])
    }

    /// Connects client `i` (its address, and with `--proxy` its own source address). The
    /// source addresses start at a point taken from the name prefix, so that the runs of one
    /// hour do not add up in a node's registrations per address.
    pub async fn connect(&self, i: usize) -> anyhow::Result<(usize, Conn)> {
        let (node, addr) = self.addr(i);
        let base = self.prefix.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
        let header = self.proxy.then(|| proxy_header(base.wrapping_add(i), addr));
        Ok((node, Conn::connect(addr, self.tls.as_ref(), self.ws, header.as_deref()).await?))
    }

    /// Registers and logs in `users` users, without the extension.
    pub async fn chat_users(&self, users: usize) -> anyhow::Result<Vec<Ready>> {
        let t = Instant::now();
        eprintln!("registering and logging in {users} users on {} ...", self.nodes.join(","));
        let ready: Vec<Ready> = stream::iter(0..users)
            .map(|i| async move {
                let (node, mut conn) = self.connect(i).await?;
                let id = conn.register(&self.user_name(i), false).await?;
                conn.login(id, false).await?;
                Ok::<_, anyhow::Error>(Ready { conn, id, node, group: None })
            })
            .buffered(self.concurrency)
            .try_collect()
            .await?;
        eprintln!("{users} users on line in {:.1} s", t.elapsed().as_secs_f64());
        Ok(ready)
    }

    /// `groups` groups of `size` members: member `j` of group `k` is user `k * size + j`
    /// (so members alternate between the addresses). Set-up runs on extension
    /// connections (for the acks); the users then log in again without the extension.
    pub async fn group_users(&self, groups: usize, size: usize) -> anyhow::Result<Vec<Ready>> {
        let t = Instant::now();
        let users = groups * size;
        eprintln!("setting up {groups} groups of {size} ({users} users) on {} ...", self.nodes.join(","));
        let mut setup: Vec<(Conn, UserId)> = stream::iter(0..users)
            .map(|i| async move {
                let (_, mut conn) = self.connect(i).await?;
                let id = conn.register(&self.user_name(i), true).await?;
                conn.login(id, true).await?;
                Ok::<_, anyhow::Error>((conn, id))
            })
            .buffered(self.concurrency)
            .try_collect()
            .await?;
        let mut group_ids = Vec::with_capacity(groups);
        for k in 0..groups {
            let creator = &mut setup[k * size].0;
            group_ids.push(
                creator.create_group(&format!("{}-g{k}", self.prefix)).await.context("creating a group")?,
            );
        }
        let group_ids = &group_ids;
        stream::iter(setup.iter_mut().enumerate().filter(|(i, _)| i % size != 0))
            .map(|(i, (conn, _))| async move { conn.join_group(group_ids[i / size]).await })
            .buffer_unordered(self.concurrency)
            .try_collect::<Vec<()>>()
            .await
            .context("joining a group")?;
        stream::iter(setup.iter_mut())
            .map(|(conn, _)| conn.logout())
            .buffer_unordered(self.concurrency)
            .try_collect::<Vec<()>>()
            .await
            .context("logging out after set-up")?;
        let ids: Vec<UserId> = setup.iter().map(|(_, id)| *id).collect();
        drop(setup);
        let ids = &ids;
        let ready: Vec<Ready> = stream::iter(0..users)
            .map(|i| async move {
                let (node, mut conn) = self.connect(i).await?;
                conn.login(ids[i], false).await?;
                let group: (GroupId, u32) = (group_ids[i / size], (i % size) as u32);
                Ok::<_, anyhow::Error>(Ready { conn, id: ids[i], node, group: Some(group) })
            })
            .buffered(self.concurrency)
            .try_collect()
            .await?;
        eprintln!("{groups} groups of {size} on line in {:.1} s", t.elapsed().as_secs_f64());
        Ok(ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_distinct() {
        let s = Setup {
            nodes: vec!["a".into(), "b".into()],
            prefix: unique_prefix(),
            concurrency: 1,
            tls: None,
            ws: false,
            proxy: false,
        };
        assert!(s.user_name(99_999).len() <= 50);
        assert_ne!(s.user_name(1), s.user_name(11));
        assert_eq!(s.addr(3), (1, "b"));
    }
}
