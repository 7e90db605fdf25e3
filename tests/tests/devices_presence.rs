//! Presence pushed (issue 20), black-box over real TCP: two nodes on MySQL and Redis (one
//! Redis, and a Redis Cluster). A friend on one node hears, within a second, that the user
//! came online (its first session, on the other node) and went offline (its last session
//! logged out); a second session is not announced again; 20 reconnects in a row (connection
//! lost, RESUME at once) are not announced at all; a lost connection that does not come back
//! is announced after the debounce.

use std::time::{Duration, Instant};

use chat_tests::devices::Device;
use chat_tests::{ServerProcess, WireClient, cluster_node_with, unique};
use serde_json::{Value, json};

chat_tests::on_both!(
    multi_thread;
    a_friend_on_another_node_hears_online_and_offline_once,
    a_node_killed_under_the_users_last_session_is_announced_within_the_lease
);

/// The debounce the nodes run with here.
const DEBOUNCE: Duration = Duration::from_secs(2);

fn two_nodes(redis: &str) -> (ServerProcess, ServerProcess) {
    let prefix = format!("{}:", unique("pres"));
    let env = [("CHAT_PRESENCE_DEBOUNCE_SECS", "2")];
    (cluster_node_with("n1", redis, &prefix, 3, &env), cluster_node_with("n2", redis, &prefix, 3, &env))
}

/// The next PRESENCE push within `within`, skipping other frames.
async fn presence_within(c: &mut WireClient, within: Duration) -> Option<Value> {
    let deadline = Instant::now() + within;
    while let Some(frame) = c.recv_within(deadline.saturating_duration_since(Instant::now())).await {
        if frame["msgid"] == 53 {
            return Some(frame);
        }
    }
    None
}

async fn a_friend_on_another_node_hears_online_and_offline_once(redis: &str) {
    let (n1, n2) = two_nodes(redis);
    let name = unique("u");
    let user = WireClient::connect(n1.addr).await.register(&name).await;
    let friend = WireClient::connect(n2.addr).await.register(&unique("f")).await;
    let mut f = Device::login(n2.addr, friend).await;
    assert_eq!(f.ask(json!({"msgid":7,"friendid":user}), 11).await["errno"], 0);
    let online = json!({"id":user,"msgid":53,"name":name,"state":"online"});
    let offline = json!({"id":user,"msgid":53,"name":name,"state":"offline"});

    // First session anywhere: online, within a second.
    let started = Instant::now();
    let mut s1 = Device::login(n1.addr, user).await;
    assert_eq!(presence_within(&mut f.client, Duration::from_secs(1)).await, Some(online.clone()));
    assert!(started.elapsed() < Duration::from_secs(1));
    // A second session (other node) and the first one's LOGINOUT change nothing.
    let mut s2 = Device::login(n2.addr, user).await;
    assert_eq!(s1.ask(json!({"msgid":3}), 11).await["errno"], 0);
    assert_eq!(presence_within(&mut f.client, DEBOUNCE + Duration::from_millis(500)).await, None);
    // The last session's LOGINOUT: offline, within a second.
    let ended = Instant::now();
    assert_eq!(s2.ask(json!({"msgid":3}), 11).await["errno"], 0);
    assert_eq!(presence_within(&mut f.client, Duration::from_secs(1)).await, Some(offline.clone()));
    assert!(ended.elapsed() < Duration::from_secs(1));

    // Online again, then 20 reconnects in a row (the connection drops, RESUME at once, on
    // alternating nodes): the friend hears nothing of them.
    let mut d = Device::login(n1.addr, user).await;
    assert_eq!(presence_within(&mut f.client, Duration::from_secs(1)).await, Some(online.clone()));
    for round in 0..20 {
        let node = if round % 2 == 0 { n2.addr } else { n1.addr };
        drop(std::mem::replace(&mut d.client, WireClient::connect(node).await));
        let ack = d.resume(node, json!([])).await;
        assert_eq!(ack["errno"], 0, "round {round}: {ack}");
    }
    assert_eq!(
        presence_within(&mut f.client, DEBOUNCE + Duration::from_secs(1)).await,
        None,
        "no offline/online flapping"
    );
    // A lost connection that does not come back: offline once the debounce is over.
    let lost = Instant::now();
    drop(std::mem::replace(&mut d.client, WireClient::connect(n1.addr).await));
    assert_eq!(presence_within(&mut f.client, DEBOUNCE + Duration::from_secs(2)).await, Some(offline));
    assert!(lost.elapsed() >= DEBOUNCE, "not before the debounce");
    assert_eq!(presence_within(&mut f.client, Duration::from_millis(500)).await, None, "once");
}

async fn a_node_killed_under_the_users_last_session_is_announced_within_the_lease(redis: &str) {
    let prefix = format!("{}:", unique("pres"));
    let env = [("CHAT_PRESENCE_DEBOUNCE_SECS", "2")];
    let node = |name: &str| cluster_node_with(name, redis, &prefix, 3, &env);
    let (mut n1, n2, mut n3) = (node("n1"), node("n2"), node("n3"));
    let name = unique("u");
    let user = WireClient::connect(n2.addr).await.register(&name).await;
    let friend = WireClient::connect(n2.addr).await.register(&unique("f")).await;
    let mut f = Device::login(n2.addr, friend).await;
    assert_eq!(f.ask(json!({"msgid":7,"friendid":user}), 11).await["errno"], 0);
    let state = |p: Option<Value>| p.map(|p| p["state"].clone());
    // Two sessions of the user: on n1 and on n3 (the friend is on n2).
    let _s1 = Device::login(n1.addr, user).await;
    assert_eq!(state(presence_within(&mut f.client, Duration::from_secs(1)).await), Some(json!("online")));
    let _s3 = Device::login(n3.addr, user).await;
    // n1 dies: the user still has a session on n3, so nothing is announced.
    n1.signal("KILL");
    n1.wait_exit(Duration::from_secs(5)).expect("n1 killed");
    assert_eq!(presence_within(&mut f.client, Duration::from_secs(5)).await, None, "still online on n3");
    // n3 dies under the last session: offline within the lease (3 s) and a sweep (1 s).
    n3.signal("KILL");
    n3.wait_exit(Duration::from_secs(5)).expect("n3 killed");
    let killed = Instant::now();
    assert_eq!(state(presence_within(&mut f.client, Duration::from_secs(6)).await), Some(json!("offline")));
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "within the lease and a sweep: {:?}",
        killed.elapsed()
    );
    assert_eq!(presence_within(&mut f.client, Duration::from_secs(2)).await, None, "once");
}
