//! The contract suite against a Redis Cluster (`CHAT_TEST_REDIS_CLUSTER_URL`, started by
//! `make test-services`), plus what only a cluster has: presence spread over hash-tag buckets,
//! and sharded channels re-subscribed when their slot moves to another master. The slot move
//! runs on a Redis Cluster of the test's own (deploy/redis-cluster.sh), never the shared one.
//! These tests fail (never skip) when the cluster is not reachable.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chat_broker::channel_of;
use chat_ports::Broker;
use chat_proto::UserId;
use fred::prelude::{ClientLike, ClusterInterface};
use fred::types::{ClusterHash, CustomCommand};

use crate::contract::{self, until_true};
use crate::redis::{RedisCluster, missing_redis, raw_client, redis_cluster_url};
use crate::support::RecordingSink;

macro_rules! cluster_contract {
    ($name:ident, $check:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let cluster = RedisCluster::on(redis_cluster_url(), stringify!($name));
            $check(&cluster).await;
        }
    };
}

cluster_contract!(cluster_delivers_exact_bytes, contract::delivers_exact_bytes);
cluster_contract!(cluster_every_subscribed_node_receives, contract::every_subscribed_node_receives);
cluster_contract!(cluster_publish_to_nobody_is_false, contract::publish_to_nobody_is_false);
cluster_contract!(cluster_unsubscribe_stops_delivery, contract::unsubscribe_stops_delivery);
cluster_contract!(
    cluster_subscription_changes_are_live_on_return,
    contract::subscription_changes_are_live_on_return
);
cluster_contract!(cluster_claim_is_exclusive, contract::claim_is_exclusive);
cluster_contract!(cluster_sessions_are_counted_across_nodes, contract::sessions_are_counted_across_nodes);
cluster_contract!(cluster_presence_follows_the_sessions, contract::presence_follows_the_sessions);
cluster_contract!(cluster_concurrent_claims_have_one_winner, contract::concurrent_claims_have_one_winner);
cluster_contract!(cluster_dead_node_frees_its_claims, contract::dead_node_frees_its_claims);

/// Presence keys land on every master (the buckets' hash tags spread), every script stays in
/// one slot (a CROSSSLOT error would fail the claims), and release_all frees users of every
/// bucket at once. Channels are sharded: SPUBLISH reaches the subscriber, PUBLISH does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_presence_spreads_over_masters_and_channels_are_sharded() {
    let cluster = RedisCluster::on(redis_cluster_url(), "spread");
    let sink = Arc::new(RecordingSink::default());
    let a = cluster.redis_node(Arc::clone(&sink)).await;
    let b = cluster.redis_node(Arc::new(RecordingSink::default())).await;
    let users: Vec<UserId> = (1000..1200).map(UserId).collect();
    for u in &users {
        assert!(a.claim(*u).await.expect("claim"), "claim of {u:?}");
        assert!(!b.claim(*u).await.expect("claim b"), "{u:?} claimed twice");
    }

    let raw = raw_client(&cluster.url).await;
    let state = raw.cached_cluster_state().expect("the client knows the cluster's slots");
    let masters = state.unique_primary_nodes();
    assert_eq!(masters.len(), 3, "the test cluster has 3 masters");
    for master in masters {
        let keys: Vec<String> = raw
            .with_cluster_node(master.clone())
            .custom(
                CustomCommand::new_static("KEYS", ClusterHash::Random, false),
                vec![format!("{{{}*user:*", cluster.prefix)],
            )
            .await
            .expect("KEYS");
        assert!(keys.len() >= 20, "master {master} holds only {} of 200 presence keys", keys.len());
    }

    a.release_all(&users).await.expect("release_all");
    for u in &users {
        assert_eq!(a.holder(*u).await.expect("holder"), None, "{u:?} still held");
    }

    let u = UserId(1500);
    a.subscribe(u).await.expect("subscribe");
    let channel = channel_of(&cluster.prefix, u);
    let classic: i64 =
        fred::prelude::PubsubInterface::publish(&raw, channel.clone(), "classic").await.expect("PUBLISH");
    assert_eq!(classic, 0, "a user's channel is sharded: a classic PUBLISH reaches no one");
    assert!(b.publish(u, Bytes::from_static(b"sharded")).await.expect("SPUBLISH"));
    assert!(
        until_true(Duration::from_secs(3), || async { sink.frames().len() == 1 }).await,
        "the sharded publish arrived"
    );
    assert_eq!(sink.frames()[0], (u, Bytes::from_static(b"sharded")));

    let _ = raw.quit().await;
    a.shutdown().await;
    b.shutdown().await;
}

/// A Redis Cluster of this test's own, stopped and deleted on drop.
struct OwnCluster {
    dir: PathBuf,
    base: u16,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/redis-cluster.sh")
}

impl OwnCluster {
    fn start(test: &str) -> OwnCluster {
        let dir = std::env::temp_dir().join(format!("chat-broker-{test}-{}", std::process::id()));
        // Ports and bus ports (port + 10000) free for six nodes.
        let base = (0..200)
            .map(|i| 21000 + ((std::process::id() as u16 % 150) * 20 + i * 7) % 4000)
            .find(|base| {
                (0..6).all(|i| {
                    std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                        && std::net::TcpListener::bind(("127.0.0.1", base + 10000 + i)).is_ok()
                })
            })
            .expect("six free ports for a Redis Cluster");
        let cluster = OwnCluster { dir, base };
        let out = Command::new("bash")
            .arg(script())
            .args(["up", "--dir"])
            .arg(&cluster.dir)
            .args(["--port", &base.to_string()])
            .output()
            .unwrap_or_else(|e| missing_redis(e));
        assert!(
            out.status.success(),
            "deploy/redis-cluster.sh up failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn url(&self) -> String {
        format!("redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}", self.base, self.base + 1)
    }

    fn cli(&self, port: u16, args: &[&str]) -> String {
        let out =
            Command::new("redis-cli").args(["-p", &port.to_string()]).args(args).output().expect("redis-cli");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(out.status.success() && !text.starts_with("ERR"), "redis-cli -p {port} {args:?}: {text}");
        text
    }

    /// (port, node id) of the master serving `slot`, as any live node sees it.
    fn owner(&self, slot: u16) -> (u16, String) {
        self.serving(slot).unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// (port, node id) of the master serving `slot`, if one does now (none while a failed
    /// master's replica is not yet promoted).
    fn serving(&self, slot: u16) -> Option<(u16, String)> {
        let nodes = (0..6)
            .find_map(|i| {
                let out = Command::new("redis-cli")
                    .args(["-p", &(self.base + i).to_string(), "cluster", "nodes"])
                    .output()
                    .ok()?;
                let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                (out.status.success() && text.contains("myself")).then_some(text)
            })
            .expect("a live cluster node");
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let port: u16 = fields[1].split([':', '@']).nth(1).and_then(|p| p.parse().ok()).expect("port");
            let serves = fields[8..].iter().any(|range| match range.split_once('-') {
                Some((a, b)) => {
                    a.parse::<u16>().is_ok_and(|a| a <= slot) && b.parse::<u16>().is_ok_and(|b| slot <= b)
                }
                None => range.parse::<u16>().ok() == Some(slot),
            });
            if serves {
                return Some((port, fields[0].to_owned()));
            }
        }
        None
    }

    /// Moves `slot` (which holds no keys) to another master, as `redis-cli --cluster reshard` does.
    fn move_slot(&self, slot: u16) -> u16 {
        let (from_port, from) = self.owner(slot);
        let (to_port, to) = (0..6)
            .map(|i| self.base + i)
            .filter(|p| *p != from_port)
            .find_map(|p| {
                let role = self.cli(p, &["role"]);
                role.starts_with("master").then(|| (p, self.cli(p, &["cluster", "myid"])))
            })
            .expect("another master");
        let slot = slot.to_string();
        self.cli(to_port, &["cluster", "setslot", &slot, "importing", &from]);
        self.cli(from_port, &["cluster", "setslot", &slot, "migrating", &to]);
        self.cli(to_port, &["cluster", "setslot", &slot, "node", &to]);
        self.cli(from_port, &["cluster", "setslot", &slot, "node", &to]);
        to_port
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).args(["down", "--dir"]).arg(&self.dir).output();
    }
}

/// A slot moved to another master while a node is subscribed to a channel in it: Redis drops
/// the subscription (SUNSUBSCRIBE); the node notices the new owner, subscribes there, and
/// publishes reach it again. A message published while the node was not subscribed there is
/// not lost to the service: the sink is asked to read the log (`resync`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_resubscribes_when_a_slot_moves() {
    let own = OwnCluster::start("slot-move");
    let cluster = RedisCluster::on(own.url(), "slot_move");
    let sink = Arc::new(RecordingSink::default());
    let a = cluster.redis_node(Arc::clone(&sink)).await;
    let b = cluster.redis_node(Arc::new(RecordingSink::default())).await;
    let u = UserId(77);
    a.subscribe(u).await.expect("subscribe");
    assert!(b.publish(u, Bytes::from_static(b"before")).await.expect("publish"));

    let slot = fred::util::redis_keyslot(channel_of(&cluster.prefix, u).as_bytes());
    let resyncs = sink.resyncs();
    let to_port = own.move_slot(slot);
    assert_eq!(own.owner(slot).0, to_port, "the slot moved");

    let mut n = 0;
    let moved = until_true(Duration::from_secs(10), || {
        n += 1;
        let (b, frame) = (Arc::clone(&b), Bytes::from(format!("after {n}")));
        async move { b.publish(u, frame).await.unwrap_or(false) }
    })
    .await;
    assert!(moved, "no subscriber on the slot's new master");
    assert!(
        until_true(Duration::from_secs(3), || async {
            sink.frames().iter().any(|(_, f)| f.starts_with(b"after"))
        })
        .await,
        "a publish after the move arrived"
    );
    assert!(sink.resyncs() > resyncs, "the node had the sessions read the log after the move");

    a.shutdown().await;
    b.shutdown().await;
}

/// A master SIGKILLed: while its replica is not yet promoted, calls fail fast (fred reconnects
/// the cluster as a whole, so no call may wait for it); once the replica took over, the node
/// has by itself subscribed every channel on the new owner and put back its claims, on every
/// shard, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_heals_by_itself_after_a_master_dies() {
    let own = OwnCluster::start("dead-master");
    let cluster = RedisCluster::on(own.url(), "dead_master");
    let sink = Arc::new(RecordingSink::default());
    let a = cluster.redis_node(Arc::clone(&sink)).await;
    let b = cluster.redis_node(Arc::new(RecordingSink::default())).await;
    let users: Vec<UserId> = (1..=30).map(UserId).collect();
    for u in &users {
        a.subscribe(*u).await.expect("subscribe");
        assert!(a.claim(*u).await.expect("claim"));
    }
    let slot = |u: UserId| fred::util::redis_keyslot(channel_of(&cluster.prefix, u).as_bytes());
    let victim = own.owner(slot(users[0])).0;
    let resyncs = sink.resyncs();
    let pid = std::fs::read_to_string(own.dir.join(victim.to_string()).join("redis.pid")).expect("pid");
    assert!(Command::new("kill").args(["-KILL", pid.trim()]).status().expect("kill").success());
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = std::time::Instant::now();
    for u in &users {
        let _ = b.publish(*u, Bytes::from_static(b"during")).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "calls waited for the failover: {:?}",
        started.elapsed()
    );

    // Healed: every channel receives again and every claim is this node's, on every shard.
    // (Each node's clients reconnect on their own schedule: both must have.)
    let healed = until_true(Duration::from_secs(15), || {
        let (a, b, users) = (Arc::clone(&a), Arc::clone(&b), users.clone());
        async move {
            for u in users {
                if !b.publish(u, Bytes::from(format!("after {}", u.0))).await.unwrap_or(false) {
                    return false;
                }
                if a.holder(u).await.ok().flatten().as_deref() != Some(a.node_id()) {
                    return false;
                }
            }
            true
        }
    })
    .await;
    assert!(
        healed,
        "not every channel was subscribed again, or not every claim put back, after the failover"
    );
    assert_ne!(own.owner(slot(users[0])).0, victim, "a replica took the dead master's slots");
    for u in &users {
        assert!(!b.claim(*u).await.expect("claim b"), "{u:?} claimable by another node");
    }
    assert!(sink.resyncs() > resyncs, "the sessions were asked to read the log");
    a.shutdown().await;
    b.shutdown().await;
}

/// What one publish of the traffic below saw.
struct Sent {
    user: UserId,
    frame: Bytes,
    at: std::time::Instant,
    /// Redis said a subscriber received it (`Ok(true)`): the acknowledgement.
    delivered: bool,
    /// The user's channel is in a slot of the killed master.
    on_victim: bool,
    /// How long the call took.
    took: Duration,
}

/// The URL names one node only, and that node, a master, is SIGKILLed while publishes flow to
/// channels on every shard. The cluster promotes its replica; the nodes must find the cluster
/// again through the other nodes they learnt of (fred's default asks only the URL's nodes, and
/// then never recovers: every call "the Redis command connection is down"). Within the failover
/// time plus a few seconds both nodes claim new users and every channel receives again;
/// every publish Redis acknowledged reached the subscriber. Prints how long the failover took
/// and what it cost publishes to the shards that stayed up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_survives_the_death_of_the_only_node_in_its_url() {
    let own = OwnCluster::start("seed-killed");
    let seed = own.base;
    assert!(own.cli(seed, &["role"]).starts_with("master"), "the URL's node is a master");
    let cluster = RedisCluster::on(format!("redis-cluster://127.0.0.1:{seed}"), "seed_killed");
    let sink = Arc::new(RecordingSink::default());
    let a = cluster.redis_node(Arc::clone(&sink)).await;
    let b = cluster.redis_node(Arc::new(RecordingSink::default())).await;
    let users: Vec<UserId> = (1..=30).map(UserId).collect();
    for u in &users {
        a.subscribe(*u).await.expect("subscribe");
        assert!(a.claim(*u).await.expect("claim"));
    }
    let slot = |u: UserId| fred::util::redis_keyslot(channel_of(&cluster.prefix, u).as_bytes());
    let on_victim: HashSet<UserId> =
        users.iter().copied().filter(|u| own.owner(slot(*u)).0 == seed).collect();
    assert!(
        !on_victim.is_empty() && on_victim.len() < users.len(),
        "users on the seed's shard and on others"
    );

    // Traffic: node b publishes to every user in turn, one publish every 10 ms.
    let stop = tokio_util::sync::CancellationToken::new();
    let traffic = tokio::spawn({
        let (b, users, on_victim, stop) = (Arc::clone(&b), users.clone(), on_victim.clone(), stop.clone());
        async move {
            let mut sent = Vec::new();
            for n in 0.. {
                if stop.is_cancelled() {
                    break;
                }
                let user = users[n % users.len()];
                let frame = Bytes::from(format!("m{n}"));
                let at = std::time::Instant::now();
                let delivered = b.publish(user, frame.clone()).await.unwrap_or(false);
                let took = at.elapsed();
                assert!(took < Duration::from_secs(3), "a publish waited {took:?}");
                sent.push(Sent { user, frame, at, delivered, on_victim: on_victim.contains(&user), took });
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            sent
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let pid = std::fs::read_to_string(own.dir.join(seed.to_string()).join("redis.pid")).expect("pid");
    let killed = std::time::Instant::now();
    assert!(Command::new("kill").args(["-KILL", pid.trim()]).status().expect("kill").success());
    let victim_slot = slot(*on_victim.iter().next().expect("a user on the victim"));
    let promoted = until_true(Duration::from_secs(15), || async {
        own.serving(victim_slot).is_some_and(|(port, _)| port != seed)
    })
    .await;
    assert!(promoted, "no replica took over the seed's slots");
    let failover = killed.elapsed();

    // Both nodes serve again: a new user can be claimed on each, every channel receives.
    let mut fresh = 10_000;
    let healed = until_true(Duration::from_secs(20), || {
        fresh += 2;
        let (a, b, users) = (Arc::clone(&a), Arc::clone(&b), users.clone());
        async move {
            if !a.claim(UserId(fresh)).await.unwrap_or(false)
                || !b.claim(UserId(fresh + 1)).await.unwrap_or(false)
            {
                return false;
            }
            for u in users {
                if !b.publish(u, Bytes::from(format!("probe {}", u.0))).await.unwrap_or(false) {
                    return false;
                }
                if a.holder(u).await.ok().flatten().as_deref() != Some(a.node_id()) {
                    return false;
                }
            }
            true
        }
    })
    .await;
    let serving = killed.elapsed();
    assert!(healed, "the nodes never found the cluster again after the seed master died");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let sent = traffic.await.expect("traffic");

    // What the failover cost publishes, on the dead shard and on the live ones: how many
    // failed, the longest stretch with none delivered, the slowest call.
    let cost = |victim: bool| {
        let after: Vec<&Sent> = sent.iter().filter(|s| s.on_victim == victim && s.at >= killed).collect();
        let failed = after.iter().filter(|s| !s.delivered).count();
        let mut last_ok = killed;
        let mut outage = Duration::ZERO;
        for s in &after {
            if s.delivered {
                outage = outage.max(s.at.duration_since(last_ok));
                last_ok = s.at + s.took;
            }
        }
        let slowest = after.iter().map(|s| s.took).max().unwrap_or_default();
        format!(
            "{failed} of {} failed, none delivered for {outage:?} at most, slowest call {slowest:?}",
            after.len()
        )
    };
    println!(
        "seed master SIGKILLed: replica promoted after {failover:?}, both nodes serving after {serving:?}; \
         publishes to the dead shard: {}; to the live shards: {}",
        cost(true),
        cost(false)
    );
    assert!(
        serving < failover + Duration::from_secs(5),
        "serving again took {serving:?}, the failover {failover:?}"
    );

    // Nothing acknowledged lost: every publish Redis said reached a subscriber is in the sink.
    let frames: HashSet<(UserId, Bytes)> = sink.frames().into_iter().collect();
    let lost: Vec<&Sent> =
        sent.iter().filter(|s| s.delivered && !frames.contains(&(s.user, s.frame.clone()))).collect();
    assert!(lost.is_empty(), "{} acknowledged publishes never arrived", lost.len());
    assert!(
        sent.iter().filter(|s| s.delivered && s.at >= killed + serving).count() > 0,
        "traffic flowed after"
    );
    for u in &users {
        assert!(!b.claim(*u).await.expect("claim b"), "{u:?} claimable by another node");
    }
    a.shutdown().await;
    b.shutdown().await;
}
