//! The idle hold: log in N users, keep their connections open and silent,
//! and compare the servers' resident memory before and with them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chat_net::Inbound;
use futures::StreamExt;

use crate::procfs::{Watched, rss_kib};
use crate::report::{IdleReport, RssRow, kib_per_conn};
use crate::setup::Setup;

/// Resident memory of each watched process (0 when unreadable).
fn rss_all(watched: &[Watched]) -> Vec<u64> {
    watched.iter().map(|w| rss_kib(w.pid).unwrap_or(0)).collect()
}

/// Holds `users` idle logged-in connections for `hold` and reports the memory they cost.
pub async fn idle(
    setup: &Setup,
    users: usize,
    hold: Duration,
    servers: &[Watched],
) -> anyhow::Result<IdleReport> {
    for w in servers {
        rss_kib(w.pid)?;
    }
    let before = rss_all(servers);
    let t = Instant::now();
    let ready = setup.chat_users(users).await?;
    let setup_s = t.elapsed().as_secs_f64();
    // Each connection's frames are read (there should be none), so a close is seen.
    let disconnects = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::with_capacity(ready.len());
    let mut tasks = Vec::with_capacity(ready.len());
    for r in ready {
        writers.push(r.conn.write);
        let mut frames = r.conn.frames;
        let disconnects = disconnects.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match frames.next().await {
                    Some(Ok(Inbound::Frame(_) | Inbound::TooLong)) => {}
                    Some(Err(_)) | None => {
                        disconnects.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }
    let start = Instant::now();
    let mut next = Duration::from_secs(1);
    while start.elapsed() < hold {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if start.elapsed() >= next {
            next += Duration::from_secs(1);
            let now = rss_all(servers);
            let rows: Vec<String> = servers
                .iter()
                .zip(now.iter().zip(&before))
                .map(|(w, (n, b))| format!("{}[{}] {} KiB (+{})", w.name, w.pid, n, *n as i64 - *b as i64))
                .collect();
            eprintln!(
                "[{:5.1}s] {users} idle connections; {}; {} closed by the server",
                start.elapsed().as_secs_f64(),
                rows.join(", "),
                disconnects.load(Ordering::Relaxed)
            );
        }
    }
    let after = rss_all(servers);
    let rss: Vec<RssRow> = servers
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(w, (b, a))| RssRow { name: w.name.clone(), pid: w.pid, before_kib: *b, after_kib: *a })
        .collect();
    let disconnects = disconnects.load(Ordering::Relaxed);
    drop(writers);
    for task in &tasks {
        task.abort();
    }
    let (delta_kib, per) = kib_per_conn(&rss, users);
    Ok(IdleReport {
        nodes: setup.nodes.clone(),
        users,
        hold_s: hold.as_secs_f64(),
        setup_s,
        disconnects,
        rss,
        delta_kib,
        kib_per_conn: per,
    })
}
