//! Smoke tests of the whole bench (set-up, pacer, readers, report) against a
//! small fake server in this file that speaks just enough of the protocol and
//! can drop or double chats on purpose. Nothing here asserts on timing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_net::{FrameCodec, Inbound};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

use crate::fleet::{Fleet, Mode, Plan, Watch};
use crate::procfs::Watched;
use crate::setup::Setup;

/// What the fake does to forwarded chats.
#[derive(Clone, Copy)]
struct Faults {
    /// Drop every n-th chat (0: none).
    drop_every: u64,
    /// Send every n-th chat twice (0: none).
    double_every: u64,
}

#[derive(Default)]
struct World {
    next_id: i64,
    online: HashMap<i64, mpsc::UnboundedSender<String>>,
    groups: HashMap<i64, Vec<i64>>,
}

async fn fake_server(faults: Faults) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let world = Arc::new(Mutex::new(World { next_id: 1, ..World::default() }));
    let chats = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (read, mut write) = stream.into_split();
            let (tx, mut rx) = mpsc::unbounded_channel::<String>();
            tokio::spawn(async move {
                while let Some(frame) = rx.recv().await {
                    if write.write_all(format!("{frame}\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
            let world = world.clone();
            let chats = chats.clone();
            tokio::spawn(async move {
                let mut frames = FramedRead::new(read, FrameCodec::new(65536));
                let mut me: Option<i64> = None;
                while let Some(Ok(Inbound::Frame(bytes))) = frames.next().await {
                    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else { continue };
                    let mut w = world.lock().expect("lock");
                    let reply = match v["msgid"].as_i64() {
                        Some(4) => {
                            w.next_id += 1;
                            Some(json!({"errno": 0, "id": w.next_id, "msgid": 5}))
                        }
                        Some(1) => {
                            let id = v["id"].as_i64().unwrap_or(0);
                            me = Some(id);
                            w.online.insert(id, tx.clone());
                            Some(json!({"errno": 0, "id": id, "msgid": 2, "name": "x"}))
                        }
                        Some(3) => {
                            if let Some(id) = me.take() {
                                w.online.remove(&id);
                            }
                            Some(json!({"errno": 0, "msgid": 11, "re": 3}))
                        }
                        Some(8) => {
                            w.next_id += 1;
                            let g = w.next_id;
                            w.groups.insert(g, vec![me.unwrap_or(0)]);
                            Some(json!({"errno": 0, "groupid": g, "msgid": 11, "re": 8}))
                        }
                        Some(9) => {
                            let g = v["groupid"].as_i64().unwrap_or(0);
                            w.groups.entry(g).or_default().push(me.unwrap_or(0));
                            Some(json!({"errno": 0, "msgid": 11, "re": 9}))
                        }
                        Some(n @ (6 | 10)) => {
                            let from = me.unwrap_or(0);
                            let k = chats.fetch_add(1, Ordering::Relaxed) + 1;
                            let (frame, to): (Value, Vec<i64>) = if n == 6 {
                                let to = v["to"].as_i64().unwrap_or(0);
                                (
                                    json!({"id": from, "msg": v["msg"], "msgid": 6, "name": "x", "time": "t", "to": to}),
                                    vec![to],
                                )
                            } else {
                                let g = v["groupid"].as_i64().unwrap_or(0);
                                let members = w.groups.get(&g).cloned().unwrap_or_default();
                                let frame = json!({"groupid": g, "id": from, "msg": v["msg"], "msgid": 10, "name": "x", "time": "t"});
                                (frame, members.into_iter().filter(|m| *m != from).collect())
                            };
                            let copies = if k.checked_rem(faults.drop_every) == Some(0) {
                                0
                            } else if k.checked_rem(faults.double_every) == Some(0) {
                                2
                            } else {
                                1
                            };
                            for r in to {
                                if let Some(out) = w.online.get(&r) {
                                    for _ in 0..copies {
                                        let _ = out.send(frame.to_string());
                                    }
                                }
                            }
                            None
                        }
                        _ => None,
                    };
                    drop(w);
                    if let Some(reply) = reply {
                        let _ = tx.send(reply.to_string());
                    }
                }
                if let Some(id) = me {
                    world.lock().expect("lock").online.remove(&id);
                }
            });
        }
    });
    addr
}

fn plan(rate: f64, secs: f64) -> Plan {
    Plan {
        rate,
        duration: Duration::from_secs_f64(secs),
        msg_bytes: 64,
        grace: Duration::from_secs(2),
        drain: Duration::from_secs(1),
        cross: 0.5,
        progress: false,
        seed: 3,
    }
}

fn setup(addrs: Vec<String>) -> Setup {
    Setup { nodes: addrs, prefix: "smoke".into(), concurrency: 4, tls: None, ws: false, proxy: false }
}

fn watch_self() -> Watch {
    Watch {
        servers: vec![Watched { name: "self".into(), pid: std::process::id() }],
        others: Vec::new(),
        status: None,
    }
}

#[tokio::test]
async fn one_to_one_over_two_fake_nodes_counts_every_message() {
    let a = fake_server(Faults { drop_every: 0, double_every: 0 }).await;
    // Two addresses of the same fake: placement and cross choice run as with two nodes.
    let s = setup(vec![a.clone(), a]);
    let ready = s.chat_users(10).await.expect("users on line");
    let mut fleet = Fleet::start(Mode::Chat, s.nodes.clone(), "test".into(), Instant::now(), ready);
    let r = fleet.run(&plan(1000.0, 0.3), &watch_self()).await;
    assert_eq!((r.sent, r.expected, r.delivered, r.lost, r.duplicated), (300, 300, 300, 0, 0));
    assert_eq!((r.misrouted, r.malformed, r.stale, r.disconnects), (0, 0, 0, 0));
    assert_eq!(r.latency.count, 300);
    assert!(r.cross_actual.is_some_and(|c| c > 0.2 && c < 0.8), "{:?}", r.cross_actual);
    assert!(r.server_cpu_s.is_some());
    // A second run on the same connections starts its own books.
    let r2 = fleet.run(&plan(500.0, 0.2), &Watch::default()).await;
    assert_eq!((r2.sent, r2.delivered, r2.lost), (100, 100, 0));
    assert_eq!(r2.server_cpu_s, None);
    fleet.close().await;
}

#[tokio::test]
async fn losses_and_duplicates_are_seen() {
    let a = fake_server(Faults { drop_every: 10, double_every: 7 }).await;
    let s = setup(vec![a]);
    let ready = s.chat_users(4).await.expect("users on line");
    let mut fleet = Fleet::start(Mode::Chat, s.nodes.clone(), "test".into(), Instant::now(), ready);
    let mut p = plan(1000.0, 0.2);
    p.grace = Duration::from_millis(300);
    let r = fleet.run(&p, &Watch::default()).await;
    assert_eq!(r.sent, 200);
    assert_eq!(r.lost, 20);
    // Every 7th chat is doubled, unless it is also a 10th (dropped): 28 of 1..=200, less 70 and 140.
    assert_eq!(r.duplicated, 26);
    assert_eq!(r.delivered, 180);
    fleet.close().await;
}

#[tokio::test]
async fn group_chat_reaches_every_other_member() {
    let a = fake_server(Faults { drop_every: 0, double_every: 0 }).await;
    let s = setup(vec![a.clone(), a]);
    let ready = s.group_users(2, 3).await.expect("groups on line");
    let mut fleet = Fleet::start(
        Mode::Group { size: 3, groups: 2 },
        s.nodes.clone(),
        "test".into(),
        Instant::now(),
        ready,
    );
    let r = fleet.run(&plan(600.0, 0.2), &Watch::default()).await;
    assert_eq!(
        (r.sent, r.expected, r.delivered, r.lost, r.duplicated, r.misrouted),
        (120, 240, 240, 0, 0, 0)
    );
    assert_eq!(r.last_member.map(|l| l.count), Some(120));
    fleet.close().await;
}
