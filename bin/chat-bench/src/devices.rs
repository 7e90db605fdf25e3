//! Issue 20's costs, each beside its plain row in one run:
//! - `sessions`: one-to-one chats to users logged in with K sessions each (extension
//!   connections spread over the nodes), against the same load to users with one session;
//!   every session must get every chat once.
//! - `presence`: a user with F friends (all logged in with the extension, spread over the
//!   nodes) logs in and out N times; every friend must be told each time. F = 0 is the plain
//!   login/logout cycle, so the difference is what telling the friends costs.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chat_net::Inbound;
use chat_proto::UserId;
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Mutex;
use tokio::io::AsyncWriteExt;

use tokio::sync::Notify;

use crate::client::Conn;
use crate::procfs::{CpuMeter, Watched};
use crate::setup::Setup;

/// How long the bench waits for the last deliveries (or pushes) after the traffic.
const GRACE: Duration = Duration::from_secs(5);

/// One `sessions` row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionsReport {
    /// Sessions per recipient.
    pub sessions: usize,
    /// Sender → recipient pairs (each sender on another node than the recipient's first session).
    pub pairs: usize,
    /// Chats per second offered.
    pub rate: u64,
    /// Chats sent.
    pub sent: u64,
    /// Deliveries expected (chats × sessions).
    pub expected: u64,
    /// Deliveries that arrived (each chat once per session).
    pub delivered: u64,
    /// A chat shown twice on one session.
    pub duplicates: u64,
    /// Latency from hand-over to the recipient session's read, ms.
    pub p50_ms: f64,
    /// The same, 99th percentile.
    pub p99_ms: f64,
    /// CPU seconds of the watched servers (None: unreadable).
    pub server_cpu_s: Option<f64>,
    /// Server CPU per chat sent, µs.
    pub us_per_chat: Option<f64>,
    /// Server CPU per delivery, µs.
    pub us_per_delivery: Option<f64>,
}

/// One `presence` row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PresenceReport {
    /// Friends of the user that logs in and out (all online, with the extension).
    pub friends: usize,
    /// Login + logout cycles.
    pub cycles: usize,
    /// Presence pushes expected (2 × friends × cycles).
    pub expected: u64,
    /// Presence pushes about the user that arrived.
    pub pushed: u64,
    /// From the LOGIN ack to the last friend's "online", ms (median over cycles; 0 without friends).
    pub online_p50_ms: f64,
    /// The same, the slowest cycle.
    pub online_max_ms: f64,
    /// CPU seconds of the watched servers (None: unreadable).
    pub server_cpu_s: Option<f64>,
    /// Server CPU per cycle, µs.
    pub us_per_cycle: Option<f64>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1e6
}

fn cpu_of(meter: &CpuMeter) -> Option<f64> {
    meter.read().iter().map(|u| u.cpu_s).sum()
}

/// Reads a connection's frames until it closes, handing each JSON frame to `on`.
fn spawn_reader(
    mut frames: crate::client::Frames,
    mut on: impl FnMut(serde_json::Value) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(Ok(Inbound::Frame(bytes))) = frames.next().await {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                on(v);
            }
        }
    })
}

/// `pairs` senders write to `pairs` recipients at `rate` chats a second for `duration`, once
/// per entry of `sessions` (sessions per recipient), new users each time.
pub async fn sessions(
    setup: &Setup,
    pairs: usize,
    sessions: &[usize],
    rate: u64,
    duration: Duration,
    servers: &[Watched],
) -> anyhow::Result<Vec<SessionsReport>> {
    anyhow::ensure!(pairs > 0 && rate > 0, "--pairs and --rate must be at least 1");
    let mut rows = Vec::new();
    for (round, &k) in sessions.iter().enumerate() {
        anyhow::ensure!(k > 0, "--sessions entries must be at least 1");
        rows.push(sessions_round(setup, round, pairs, k, rate, duration, servers).await?);
    }
    Ok(rows)
}

async fn sessions_round(
    setup: &Setup,
    round: usize,
    pairs: usize,
    k: usize,
    rate: u64,
    duration: Duration,
    servers: &[Watched],
) -> anyhow::Result<SessionsReport> {
    let nodes = setup.nodes.len();
    // Client numbers: a user's registration connection picks its node (i % nodes).
    let base = round * pairs * (2 + k) * 2;
    let name = |i: usize| format!("{}-s{round}-{i}", setup.prefix);
    eprintln!("sessions: {pairs} pairs, {k} session(s) per recipient ...");
    let users: Vec<UserId> = stream::iter(0..2 * pairs)
        .map(|i| async move {
            let (_, mut conn) = setup.connect(base + i).await?;
            conn.register(&name(i), true).await
        })
        .buffered(setup.concurrency)
        .try_collect()
        .await?;
    let (recipients, senders) = users.split_at(pairs);

    let epoch = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let seen = Arc::new(Mutex::new(HashSet::<(usize, u64)>::new()));
    let delivered = Arc::new(AtomicU64::new(0));
    let duplicates = Arc::new(AtomicU64::new(0));
    // Session j of recipient i is on node (i + j) % nodes; its sender on node (i + 1) % nodes.
    let mut readers = Vec::new();
    let mut keep = Vec::new();
    for (i, &r) in recipients.iter().enumerate() {
        for j in 0..k {
            let slot = i * k + j;
            let node = (i + j) % nodes;
            let (_, mut conn) = setup.connect(base + 2 * pairs + slot * nodes + node).await?;
            conn.login(r, true).await?;
            let Conn { frames, write, .. } = conn;
            keep.push(write);
            let (latencies, seen, delivered, duplicates) =
                (latencies.clone(), seen.clone(), delivered.clone(), duplicates.clone());
            readers.push(spawn_reader(frames, move |v| {
                if v["msgid"] != 6 {
                    return;
                }
                let now = epoch.elapsed().as_nanos() as u64;
                let Some((n, sent)) = v["msg"].as_str().and_then(parse_body) else { return };
                // Held for a set insert and a push: the bench runs on one thread anyway.
                let fresh = seen.lock().is_ok_and(|mut s| s.insert((slot, n)));
                if fresh {
                    delivered.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut l) = latencies.lock() {
                        l.push(now.saturating_sub(sent));
                    }
                } else {
                    duplicates.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    let mut writers = Vec::new();
    for (i, &s) in senders.iter().enumerate() {
        let node = (i + 1) % nodes;
        let (_, mut conn) = setup.connect(base + 2 * pairs + pairs * k * nodes + i * nodes + node).await?;
        conn.login(s, false).await?;
        let Conn { frames, write, .. } = conn;
        readers.push(spawn_reader(frames, |_| {}));
        writers.push(write);
    }
    // Give the logins' replays and presence a moment to settle before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let meter = CpuMeter::start(servers);
    let total = rate * duration.as_secs().max(1);
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0u64;
    while sent < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(total);
        while sent < due {
            let i = (sent as usize) % pairs;
            let body = format!("{sent}:{}:", epoch.elapsed().as_nanos());
            let frame =
                json!({"msgid": 6, "id": senders[i].0, "to": recipients[i].0, "msg": format!("{body:x<64}")});
            let mut bytes = frame.to_string().into_bytes();
            bytes.push(b'\n');
            writers[i].write_all(&bytes).await.context("sending a chat")?;
            writers[i].flush_tls().await.context("sending a chat")?;
            sent += 1;
        }
    }
    let expected = total * k as u64;
    let deadline = Instant::now() + GRACE;
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = cpu_of(&meter);
    drop(writers);
    drop(keep);
    for r in readers {
        r.abort();
    }
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_unstable();
    let delivered = delivered.load(Ordering::Relaxed);
    Ok(SessionsReport {
        sessions: k,
        pairs,
        rate,
        sent: total,
        expected,
        delivered,
        duplicates: duplicates.load(Ordering::Relaxed),
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        server_cpu_s: cpu,
        us_per_chat: cpu.map(|c| c * 1e6 / total.max(1) as f64),
        us_per_delivery: cpu.map(|c| c * 1e6 / delivered.max(1) as f64),
    })
}

/// `n:sent_nanos:` at the start of a bench chat.
fn parse_body(text: &str) -> Option<(u64, u64)> {
    let mut parts = text.splitn(3, ':');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// A user with `friends` friends (for each entry of `friends`) logs in and out `cycles` times.
pub async fn presence(
    setup: &Setup,
    friends: &[usize],
    cycles: usize,
    servers: &[Watched],
) -> anyhow::Result<Vec<PresenceReport>> {
    let mut rows = Vec::new();
    for (round, &f) in friends.iter().enumerate() {
        rows.push(presence_round(setup, round, f, cycles, servers).await?);
    }
    Ok(rows)
}

async fn presence_round(
    setup: &Setup,
    round: usize,
    f: usize,
    cycles: usize,
    servers: &[Watched],
) -> anyhow::Result<PresenceReport> {
    anyhow::ensure!(cycles > 0, "--cycles must be at least 1");
    eprintln!("presence: a user with {f} friends logs in and out {cycles} times ...");
    let base = 1_000_000 + round * (2 * f + 2 * cycles + 8);
    let name = |i: usize| format!("{}-p{round}-{i}", setup.prefix);
    let (_, mut conn) = setup.connect(base).await?;
    let subject = conn.register(&name(0), true).await?;
    drop(conn);

    let online = Arc::new(AtomicU64::new(0));
    let offline = Arc::new(AtomicU64::new(0));
    let changed = Arc::new(Notify::new());
    let friend_conns: Vec<Conn> = stream::iter(1..=f)
        .map(|i| async move {
            let (_, mut conn) = setup.connect(base + i).await?;
            let id = conn.register(&name(i), true).await?;
            conn.login(id, true).await?;
            conn.add_friend(subject).await?;
            Ok::<_, anyhow::Error>(conn)
        })
        .buffered(setup.concurrency)
        .try_collect()
        .await?;
    let mut readers = Vec::new();
    let mut keep = Vec::new();
    for conn in friend_conns {
        let Conn { frames, write, .. } = conn;
        keep.push(write);
        let (online, offline, changed) = (online.clone(), offline.clone(), changed.clone());
        readers.push(spawn_reader(frames, move |v| {
            if v["msgid"] != 53 || v["id"] != subject.0 {
                return;
            }
            match v["state"].as_str() {
                Some("online") => online.fetch_add(1, Ordering::Relaxed),
                Some("offline") => offline.fetch_add(1, Ordering::Relaxed),
                _ => return,
            };
            changed.notify_waiters();
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let wait_for = |counter: Arc<AtomicU64>, target: u64| {
        let changed = changed.clone();
        async move {
            let deadline = Instant::now() + GRACE;
            while counter.load(Ordering::Relaxed) < target {
                let left = deadline.checked_duration_since(Instant::now()).unwrap_or_default();
                if left.is_zero() {
                    return false;
                }
                let notified = changed.notified();
                if counter.load(Ordering::Relaxed) >= target {
                    break;
                }
                let _ = tokio::time::timeout(left.min(Duration::from_millis(5)), notified).await;
            }
            true
        }
    };

    let meter = CpuMeter::start(servers);
    let mut online_ms = Vec::with_capacity(cycles);
    let fu = f as u64;
    for c in 0..cycles {
        let (_, mut conn) = setup.connect(base + f + 1 + c).await?;
        conn.login(subject, true).await?;
        let t = Instant::now();
        if !wait_for(online.clone(), (c as u64 + 1) * fu).await {
            bail!(
                "cycle {c}: only {} of {fu} friends were told 'online'",
                online.load(Ordering::Relaxed) - c as u64 * fu
            );
        }
        online_ms.push(t.elapsed().as_nanos() as u64);
        conn.logout().await?;
        if !wait_for(offline.clone(), (c as u64 + 1) * fu).await {
            bail!(
                "cycle {c}: only {} of {fu} friends were told 'offline'",
                offline.load(Ordering::Relaxed) - c as u64 * fu
            );
        }
    }
    let cpu = cpu_of(&meter);
    drop(keep);
    for r in readers {
        r.abort();
    }
    online_ms.sort_unstable();
    let max = if f == 0 { 0.0 } else { online_ms.last().copied().unwrap_or(0) as f64 / 1e6 };
    Ok(PresenceReport {
        friends: f,
        cycles,
        expected: 2 * fu * cycles as u64,
        pushed: online.load(Ordering::Relaxed) + offline.load(Ordering::Relaxed),
        online_p50_ms: if f == 0 { 0.0 } else { percentile(&online_ms, 0.5) },
        online_max_ms: max,
        server_cpu_s: cpu,
        us_per_cycle: cpu.map(|c| c * 1e6 / cycles as f64),
    })
}

/// The rows for people.
pub fn sessions_text(rows: &[SessionsReport]) -> String {
    let mut out = String::from(
        "| sessions per recipient | pairs | msgs/s | sent | deliveries expected | delivered | duplicates | p50 ms | p99 ms | srv µs/chat | srv µs/delivery |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let us = |x: Option<f64>| x.map_or_else(|| "?".to_string(), |v| format!("{v:.1}"));
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {} |\n",
            r.sessions,
            r.pairs,
            r.rate,
            r.sent,
            r.expected,
            r.delivered,
            r.duplicates,
            r.p50_ms,
            r.p99_ms,
            us(r.us_per_chat),
            us(r.us_per_delivery)
        ));
    }
    out
}

/// The rows for people.
pub fn presence_text(rows: &[PresenceReport]) -> String {
    let mut out = String::from(
        "| friends online | login+logout cycles | pushes expected | pushed | online told, p50 ms | slowest ms | srv µs/cycle |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {} |\n",
            r.friends,
            r.cycles,
            r.expected,
            r.pushed,
            r.online_p50_ms,
            r.online_max_ms,
            r.us_per_cycle.map_or_else(|| "?".to_string(), |v| format!("{v:.0}"))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_their_number_and_send_time() {
        assert_eq!(parse_body("17:123456:xxxx"), Some((17, 123_456)));
        assert_eq!(parse_body("garbage"), None);
    }

    #[test]
    fn rows_render_with_their_counts() {
        let s = sessions_text(&[SessionsReport {
            sessions: 3,
            sent: 10,
            expected: 30,
            delivered: 30,
            ..Default::default()
        }]);
        assert!(s.contains("| 3 | 0 | 0 | 10 | 30 | 30 | 0 |"), "{s}");
        let p = presence_text(&[PresenceReport {
            friends: 200,
            cycles: 5,
            expected: 2000,
            pushed: 2000,
            ..Default::default()
        }]);
        assert!(p.contains("| 200 | 5 | 2000 | 2000 |"), "{p}");
    }
}
