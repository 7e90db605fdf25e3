//! Connection churn: what a connection costs the nodes from accept to close (connect, an
//! optional PROXY header, LOGIN, LOGINOUT, close), read from their CPU over N connections.
//! With `--proxy` every connection comes from an address of its own, so the nodes' per-address
//! bookkeeping (an entry made and dropped per connection) is in the count too.

use std::time::Instant;

use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};

use crate::procfs::{CpuMeter, Watched};
use crate::setup::Setup;

/// The result of a churn run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectReport {
    /// Addresses connected to.
    pub nodes: Vec<String>,
    /// Whether each connection began with a PROXY header of its own address.
    pub proxy: bool,
    /// Connections opened, logged in, logged out and closed.
    pub conns: usize,
    /// Connections in flight at once.
    pub concurrency: usize,
    /// Seconds the churn took.
    pub wall_s: f64,
    /// Connections per second.
    pub per_s: f64,
    /// CPU seconds of the watched servers together (None: a server could not be read).
    pub server_cpu_s: Option<f64>,
    /// Server CPU per connection, µs.
    pub us_per_conn: Option<f64>,
}

/// Registers `users` users, then opens `conns` connections, each logging one of them in and
/// out (in turn, never the same user on two connections at once) before closing.
pub async fn churn(
    setup: &Setup,
    users: usize,
    conns: usize,
    servers: &[Watched],
) -> anyhow::Result<ConnectReport> {
    anyhow::ensure!(users > 0, "--users must be at least 1");
    let ids: Vec<_> = setup.chat_users(users).await?.into_iter().map(|r| r.id).collect();
    // A user's turns are `users` connections apart: in flight at once stays well below that.
    let concurrency = setup.concurrency.clamp(1, users.div_ceil(4));
    let meter = CpuMeter::start(servers);
    let t = Instant::now();
    let ids = &ids;
    stream::iter(0..conns)
        .map(|j| async move {
            // Client numbers past the users': a source address no connection used before.
            let (_, mut conn) = setup.connect(users + j).await?;
            conn.login(ids[j % users], true).await?;
            conn.logout().await
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let wall_s = t.elapsed().as_secs_f64();
    let cpu: Option<f64> = meter.read().iter().map(|u| u.cpu_s).sum();
    Ok(ConnectReport {
        nodes: setup.nodes.clone(),
        proxy: setup.proxy,
        conns,
        concurrency,
        wall_s,
        per_s: conns as f64 / wall_s.max(1e-9),
        server_cpu_s: cpu,
        us_per_conn: cpu.map(|c| c * 1e6 / conns.max(1) as f64),
    })
}

/// One line for people.
pub fn connect_text(r: &ConnectReport) -> String {
    format!(
        "{} connections{} to {} ({} at once): {:.1} s, {:.0}/s, server CPU {}\n",
        r.conns,
        if r.proxy { " with a PROXY header each" } else { "" },
        r.nodes.join(","),
        r.concurrency,
        r.wall_s,
        r.per_s,
        r.us_per_conn.map_or_else(|| "unreadable".into(), |us| format!("{us:.0} µs per connection")),
    )
}
