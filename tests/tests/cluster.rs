//! Black-box cluster tests: real nodes on MySQL and Redis, behind a real nginx.
//! Each test uses its own Redis channel prefix (pub/sub ignores database numbers), and each
//! runs twice: on one Redis (`single_redis`) and on the Redis Cluster of `make test-services`
//! (`redis_cluster`: sharded channels, bucketed presence keys).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chat_tests::{Nginx, RedisServer, ServerProcess, WireClient, cluster_node, unique};
use serde_json::{Value, json};

fn two_nodes(redis: &str, lease: u64) -> (ServerProcess, ServerProcess) {
    let prefix = format!("{}:", unique("t"));
    (cluster_node("n1", redis, &prefix, lease), cluster_node("n2", redis, &prefix, lease))
}

chat_tests::on_both!(
    through_nginx_users_on_two_nodes_chat_both_ways,
    sigkill_a_node_and_its_users_recover_within_the_lease,
    twenty_rounds_of_simultaneous_duplicate_logins_on_two_nodes,
    sigterm_on_one_node_leaves_the_other_nodes_users_online,
    a_recipient_that_leaves_while_messages_are_in_flight_gets_them_next_time
);

async fn registered(addr: std::net::SocketAddr, base: &str) -> i64 {
    WireClient::connect(addr).await.register(&unique(base)).await
}

/// Logs in, retrying while the answer is errno 2 (presence not yet free), up to `within`.
async fn login_within(c: &mut WireClient, id: i64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let ack = c.login(id, true).await;
        if ack["errno"] != 2 || Instant::now() > deadline {
            return ack;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn logged_in_on(node: &ServerProcess, id: i64) -> bool {
    node.log().lines().any(|l| l.contains("logged in") && l.contains(&format!("user={id}")))
}

async fn through_nginx_users_on_two_nodes_chat_both_ways(redis: &str) {
    let (n1, n2) = two_nodes(redis, 10);
    let lb = Nginx::start([n1.addr, n2.addr]);
    let ida = registered(lb.addr, "a").await;
    let idb = registered(lb.addr, "b").await;
    let idc = registered(lb.addr, "c").await;
    // nginx alternates between the nodes: consecutive connections land on different nodes.
    let mut a = WireClient::connect(lb.addr).await;
    assert_eq!(a.login(ida, true).await["errno"], 0);
    let mut b = WireClient::connect(lb.addr).await;
    assert_eq!(b.login(idb, true).await["errno"], 0);
    let a_on_1 = logged_in_on(&n1, ida);
    assert_ne!(a_on_1, logged_in_on(&n2, ida), "a is on exactly one node");
    assert_eq!(a_on_1, logged_in_on(&n2, idb), "b is on the other node: n1 {} / n2 {}", n1.log(), n2.log());

    a.send(&json!({"msgid":6,"to":idb,"msg":"a->b"})).await;
    assert_eq!(a.recv().await["errno"], 0);
    let got = b.recv().await;
    assert_eq!((got["msg"].as_str(), got["id"].as_i64()), (Some("a->b"), Some(ida)));
    b.send(&json!({"msgid":6,"to":ida,"msg":"b->a"})).await;
    assert_eq!(b.recv().await["errno"], 0);
    assert_eq!(a.recv().await["msg"], "b->a");

    // Group chat across nodes, both ways, and a member offline.
    a.send(&json!({"msgid":8,"groupname":unique("g"),"groupdesc":"cross"})).await;
    let gid = a.recv().await["groupid"].as_i64().expect("groupid");
    // Posting alone first makes a's node cache the members; b's join elsewhere must reach it.
    a.send(&json!({"msgid":10,"groupid":gid,"msg":"anyone?"})).await;
    assert_eq!(a.recv().await["errno"], 0);
    b.send(&json!({"msgid":9,"groupid":gid})).await;
    assert_eq!(b.recv().await["errno"], 0);
    let mut c = WireClient::connect(lb.addr).await;
    assert_eq!(c.login(idc, true).await["errno"], 0);
    c.send(&json!({"msgid":9,"groupid":gid})).await;
    assert_eq!(c.recv().await["errno"], 0);
    drop(c);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.send(&json!({"msgid":10,"groupid":gid,"msg":"to all from a"})).await;
    assert_eq!(a.recv().await["errno"], 0);
    assert_eq!(b.recv().await["msg"], "to all from a");
    b.send(&json!({"msgid":10,"groupid":gid,"msg":"to all from b"})).await;
    assert_eq!(b.recv().await["errno"], 0);
    assert_eq!(a.recv().await["msg"], "to all from b");

    // Offline messages across nodes: c logs in again, wherever nginx sends it.
    a.send(&json!({"msgid":6,"to":idc,"msg":"one-to-one while away"})).await;
    assert_eq!(a.recv().await["errno"], 0);
    let mut c = WireClient::connect(lb.addr).await;
    let ack = login_within(&mut c, idc, Duration::from_secs(5)).await;
    assert_eq!(ack["errno"], 0, "{ack}");
    assert_eq!(c.replayed_texts(&ack).await, vec!["to all from a", "to all from b", "one-to-one while away"]);
}

async fn sigkill_a_node_and_its_users_recover_within_the_lease(redis: &str) {
    let lease = 3;
    let (n1, mut n2) = two_nodes(redis, lease);
    let ida = registered(n1.addr, "a").await;
    let idb = registered(n1.addr, "b").await;
    let mut a = WireClient::connect(n1.addr).await;
    assert_eq!(a.login(ida, true).await["errno"], 0);
    let mut b = WireClient::connect(n2.addr).await;
    assert_eq!(b.login(idb, true).await["errno"], 0);
    n2.signal("KILL");
    n2.wait_exit(Duration::from_secs(5)).expect("killed");
    let killed = Instant::now();
    a.send(&json!({"msgid":6,"to":idb,"msg":"after the crash"})).await;
    assert_eq!(a.recv().await["errno"], 0, "stored, not lost");
    let mut b2 = WireClient::connect(n1.addr).await;
    let ack = login_within(&mut b2, idb, Duration::from_secs(lease + 5)).await;
    assert_eq!(ack["errno"], 0, "{ack}");
    assert!(killed.elapsed() < Duration::from_secs(lease + 5), "within the lease");
    assert_eq!(b2.replayed_texts(&ack).await, vec!["after the crash"]);
}

async fn twenty_rounds_of_simultaneous_duplicate_logins_on_two_nodes(redis: &str) {
    let (n1, n2) = two_nodes(redis, 10);
    let id = registered(n1.addr, "dup").await;
    for round in 0..20 {
        let mut c1 = WireClient::connect(n1.addr).await;
        let mut c2 = WireClient::connect(n2.addr).await;
        let (r1, r2) = tokio::join!(c1.login(id, false), c2.login(id, false));
        let wins = [&r1, &r2].iter().filter(|r| r["errno"] == 0).count();
        assert_eq!(wins, 1, "round {round}: {r1} {r2}");
        drop((c1, c2));
        // Wait until the winner's disconnect freed the account, then free it again:
        // an acknowledged LOGINOUT has released everything when the ack comes.
        let mut probe = WireClient::connect(n1.addr).await;
        let ack = login_within(&mut probe, id, Duration::from_secs(5)).await;
        assert_eq!(ack["errno"], 0, "round {round}: {ack}");
        probe.send(&json!({"msgid":3})).await;
        assert_eq!(probe.recv().await, json!({"errno":0,"msgid":11,"re":3}));
    }
}

async fn sigterm_on_one_node_leaves_the_other_nodes_users_online(redis: &str) {
    let (mut n1, n2) = two_nodes(redis, 10);
    let ida = registered(n2.addr, "a").await;
    let idb = registered(n2.addr, "b").await;
    let idx = registered(n2.addr, "x").await;
    let mut x = WireClient::connect(n1.addr).await;
    assert_eq!(x.login(idx, true).await["errno"], 0);
    let mut a = WireClient::connect(n2.addr).await;
    assert_eq!(a.login(ida, true).await["errno"], 0);
    let mut b = WireClient::connect(n2.addr).await;
    assert_eq!(b.login(idb, true).await["errno"], 0);
    n1.signal("TERM");
    assert!(n1.wait_exit(Duration::from_secs(15)).is_some_and(|s| s.success()));
    // n2's users are still online and reachable, and still cannot log in twice.
    a.send(&json!({"msgid":6,"to":idb,"msg":"still here"})).await;
    assert_eq!(a.recv().await["errno"], 0);
    assert_eq!(b.recv().await["msg"], "still here");
    let mut dup = WireClient::connect(n2.addr).await;
    assert_eq!(dup.login(ida, false).await["errno"], 2);
    a.send(&json!({"msgid":15})).await;
    let _ = a.recv().await;
    // x, whose node stopped, was logged out properly: it can log in on n2 at once.
    let mut x2 = WireClient::connect(n2.addr).await;
    assert_eq!(x2.login(idx, true).await["errno"], 0);
}

async fn a_recipient_that_leaves_while_messages_are_in_flight_gets_them_next_time(redis: &str) {
    let (n1, n2) = two_nodes(redis, 10);
    let ida = registered(n1.addr, "a").await;
    let idb = registered(n1.addr, "b").await;
    let mut a = WireClient::connect(n1.addr).await;
    assert_eq!(a.login(ida, true).await["errno"], 0);
    let mut b = WireClient::connect(n2.addr).await;
    assert_eq!(b.login(idb, true).await["errno"], 0);
    // b goes away while a burst is on its way to b's node.
    let burst: Vec<String> = (0..100).map(|i| format!("in flight {i}")).collect();
    let mut bytes = Vec::new();
    for m in &burst {
        bytes.extend(serde_json::to_vec(&json!({"msgid":6,"to":idb,"msg":m})).expect("json"));
        bytes.push(0);
    }
    drop(b);
    a.send_raw(&bytes).await;
    for _ in &burst {
        assert_eq!(a.recv().await["errno"], 0);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut b2 = WireClient::connect(n1.addr).await;
    let ack = login_within(&mut b2, idb, Duration::from_secs(5)).await;
    assert_eq!(ack["errno"], 0);
    assert_eq!(b2.replayed_texts(&ack).await, burst, "every message, in order, none twice");
}

#[tokio::test]
async fn restarting_redis_loses_nothing_and_cross_node_delivery_resumes() {
    let mut redis = RedisServer::start();
    let (n1, n2) = two_nodes(&redis.url(), 10);
    let ida = registered(n1.addr, "a").await;
    let idb = registered(n1.addr, "b").await;
    let mut a = WireClient::connect(n1.addr).await;
    assert_eq!(a.login(ida, true).await["errno"], 0);
    let mut b = WireClient::connect(n2.addr).await;
    assert_eq!(b.login(idb, true).await["errno"], 0);

    let mut sent = Vec::new();
    for i in 0..150 {
        if i == 50 {
            redis.stop();
        }
        if i == 100 {
            redis.restart();
        }
        let m = format!("m{i}");
        a.send(&json!({"msgid":6,"to":idb,"msg":m})).await;
        let ack = a.recv().await;
        assert_eq!(ack["errno"], 0, "message {i} accepted: {ack}");
        sent.push(m);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Cross-node delivery resumes without a restart of the nodes.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut live: Vec<String> = Vec::new();
    let mut live_seqs: BTreeSet<i64> = BTreeSet::new();
    let mut resumed = false;
    let mut probe = 0;
    while Instant::now() < deadline && !resumed {
        let m = format!("probe{probe}");
        probe += 1;
        a.send(&json!({"msgid":6,"to":idb,"msg":m})).await;
        assert_eq!(a.recv().await["errno"], 0);
        sent.push(m.clone());
        while let Some(frame) = b.recv_within(Duration::from_millis(300)).await {
            let msg = frame["msg"].as_str().unwrap_or_default().to_owned();
            resumed |= msg == m;
            live.push(msg);
            assert!(
                live_seqs.insert(frame["seq"].as_i64().unwrap_or_default()),
                "a seq twice on one connection"
            );
        }
    }
    assert!(resumed, "cross-node delivery resumed after Redis came back");
    // Presence survived the restart too: a, on n1, cannot log in a second time on n2.
    let mut dup = WireClient::connect(n2.addr).await;
    assert_eq!(dup.login(ida, false).await["errno"], 2, "one session per user after a Redis restart");
    // b acknowledges what it has without a gap and logs in again: whatever did not
    // arrive live is waiting; what came both ways is dropped by its mid, as clients do.
    let contiguous = (1..).take_while(|s| live_seqs.contains(s)).last().unwrap_or(0);
    b.send(&json!({"msgid":18,"acks":[{"id":ida,"seq":contiguous}]})).await;
    drop(b);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut b2 = WireClient::connect(n1.addr).await;
    let ack = login_within(&mut b2, idb, Duration::from_secs(10)).await;
    assert_eq!(ack["errno"], 0, "{ack}");
    let replayed = b2.replay(&ack).await;
    let seqs: Vec<i64> = replayed.iter().filter_map(|m| m["seq"].as_i64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "the replay is in order, none twice: {seqs:?}");
    assert!(seqs.first().is_none_or(|&s| s == contiguous + 1), "the replay starts after the ack");
    let mut all: BTreeSet<String> = live.iter().cloned().collect();
    all.extend(replayed.iter().filter_map(|m| m["msg"].as_str().map(String::from)));
    let expected: BTreeSet<String> = sent.iter().cloned().collect();
    assert_eq!(all, expected, "every message arrived, live or replayed");
}
