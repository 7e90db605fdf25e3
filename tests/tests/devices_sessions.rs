//! Several sessions per user (issue 20), black-box over real TCP: two nodes on MySQL and
//! Redis, one user with three extension sessions spread over both, a friend on one of them.
//! Every session shows every chat to the user once and in order, and what the user sends from
//! one session as its own on the others (carbons); a session's node is SIGKILLed mid-stream
//! and the others lose nothing; RESUME brings back exactly that session; the session limit,
//! LOGINOUT of one session and "log out everywhere". Each runs on one Redis and on a Redis
//! Cluster (sharded channels, bucketed presence keys).

use std::time::Duration;

use chat_tests::devices::{Device, assert_once_in_order};
use chat_tests::{ServerProcess, WireClient, cluster_node_with, unique};
use serde_json::json;

chat_tests::on_both!(
    multi_thread;
    three_sessions_on_two_nodes_show_every_chat_once_in_order_and_carbons,
    a_sessions_node_is_killed_mid_stream_and_nothing_is_lost,
    resume_brings_back_exactly_that_session,
    the_session_limit_loginout_and_log_out_everywhere
);

fn two_nodes(redis: &str, env: &[(&str, &str)]) -> (ServerProcess, ServerProcess) {
    let prefix = format!("{}:", unique("dev"));
    (cluster_node_with("n1", redis, &prefix, 3, env), cluster_node_with("n2", redis, &prefix, 3, env))
}

async fn registered(node: &ServerProcess, base: &str) -> i64 {
    WireClient::connect(node.addr).await.register(&unique(base)).await
}

const LONG: Duration = Duration::from_secs(30);

async fn three_sessions_on_two_nodes_show_every_chat_once_in_order_and_carbons(redis: &str) {
    let (n1, n2) = two_nodes(redis, &[]);
    let user = registered(&n1, "u").await;
    let friend = registered(&n2, "f").await;
    // Two sessions on n1, one on n2; the friend on n2.
    let mut s1 = Device::login(n1.addr, user).await;
    let mut s2 = Device::login(n2.addr, user).await;
    let mut s3 = Device::login(n1.addr, user).await;
    let mut f = Device::login(n2.addr, friend).await;

    let texts: Vec<String> = (1..=200).map(|i| format!("f{i}")).collect();
    for (i, text) in texts.iter().enumerate() {
        assert_eq!(f.chat(user, text, &format!("c{i}")).await["errno"], 0);
    }
    for (who, s) in [("s1 (n1)", &mut s1), ("s2 (n2)", &mut s2), ("s3 (n1)", &mut s3)] {
        assert!(s.read_until(LONG, |shown| shown.len() >= 200).await, "{who} got {} of 200", s.shown.len());
        s.drain(Duration::from_millis(300)).await;
        assert_once_in_order(who, s, friend, &texts);
    }

    // The user writes from s2 (on n2): s1 and s3 (on n1) show it as the user's own; s2 does not
    // get it back; the friend gets it once.
    let own: Vec<String> = (1..=5).map(|i| format!("u{i}")).collect();
    for (i, text) in own.iter().enumerate() {
        assert_eq!(s2.chat(friend, text, &format!("o{i}")).await["errno"], 0);
    }
    for (who, s) in [("s1", &mut s1), ("s3", &mut s3)] {
        assert!(
            s.read_until(LONG, |shown| shown.iter().filter(|c| c.from == user).count() >= 5).await,
            "{who}: carbons"
        );
        s.drain(Duration::from_millis(300)).await;
        assert_once_in_order(who, s, user, &own);
        assert!(s.from(user).iter().all(|c| c.to == friend), "{who}: a carbon names the other side");
    }
    s2.drain(Duration::from_millis(500)).await;
    assert!(s2.from(user).is_empty(), "the sending session does not get its own chats back");
    assert!(f.read_until(LONG, |shown| shown.len() >= 5).await);
    f.drain(Duration::from_millis(300)).await;
    assert_once_in_order("friend", &f, user, &own);

    // And from s1 (n1, beside s3): s3 and s2 get it.
    assert_eq!(s1.chat(friend, "from s1", "o-s1").await["errno"], 0);
    for (who, s) in [("s2", &mut s2), ("s3", &mut s3)] {
        assert!(s.read_until(LONG, |shown| shown.iter().any(|c| c.msg == "from s1")).await, "{who}");
    }
    s1.drain(Duration::from_millis(500)).await;
    assert!(s1.from(user).iter().all(|c| c.msg != "from s1"), "s1 does not get its own chat back");
}

async fn a_sessions_node_is_killed_mid_stream_and_nothing_is_lost(redis: &str) {
    let (n1, mut n2) = two_nodes(redis, &[]);
    let name = unique("u");
    let user = WireClient::connect(n1.addr).await.register(&name).await;
    let friend = registered(&n1, "f").await;
    let mut s1 = Device::login(n1.addr, user).await;
    let mut s2 = Device::login(n2.addr, user).await;
    let _s3 = Device::login(n2.addr, user).await;
    let mut f = Device::login(n1.addr, friend).await;

    let texts: Vec<String> = (1..=200).map(|i| format!("k{i}")).collect();
    let sender = {
        let texts = texts.clone();
        tokio::spawn(async move {
            for (i, text) in texts.iter().enumerate() {
                assert_eq!(f.chat(user, text, &format!("k{i}")).await["errno"], 0, "chat {i}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            f
        })
    };
    // s2 reads a part, then its node dies under it.
    assert!(
        s2.read_until(LONG, |shown| shown.len() >= 60).await,
        "s2 got {} before the kill",
        s2.shown.len()
    );
    s2.received(friend, s2.contiguous(friend)).await;
    n2.signal("KILL");
    n2.wait_exit(Duration::from_secs(5)).expect("n2 killed");
    let had = s2.contiguous(friend);

    // s1, on the surviving node, goes on and loses nothing; the user stays online.
    assert!(s1.read_until(LONG, |shown| shown.len() >= 200).await, "s1 got {} of 200", s1.shown.len());
    let mut f = sender.await.expect("sender");
    let found = f.ask(json!({"msgid":50,"name":name}), 51).await;
    assert_eq!(found["state"], "online", "the user stays online: {found}");

    // s2 resumes on n1 with what it has, and catches up once: every chat exactly once over
    // its whole life, in order.
    let ack = s2.resume(n1.addr, json!([{"id":friend,"seq":had}])).await;
    assert_eq!(ack["errno"], 0, "resume on the surviving node: {ack}");
    assert!(
        s2.read_until(LONG, |shown| shown.len() >= 200).await,
        "s2 got {} of 200 after resuming",
        s2.shown.len()
    );
    s2.drain(Duration::from_millis(300)).await;
    s1.drain(Duration::from_millis(300)).await;
    assert_once_in_order("s1 (survivor)", &s1, friend, &texts);
    assert_once_in_order("s2 (killed, resumed)", &s2, friend, &texts);
}

async fn resume_brings_back_exactly_that_session(redis: &str) {
    let (n1, n2) = two_nodes(redis, &[]);
    let user = registered(&n1, "u").await;
    let friend = registered(&n1, "f").await;
    let mut s1 = Device::login(n1.addr, user).await;
    let mut s2 = Device::login(n2.addr, user).await;
    let mut f = Device::login(n1.addr, friend).await;
    let first: Vec<String> = (1..=10).map(|i| format!("a{i}")).collect();
    for (i, text) in first.iter().enumerate() {
        assert_eq!(f.chat(user, text, &format!("a{i}")).await["errno"], 0);
    }
    assert!(s1.read_until(LONG, |s| s.len() >= 10).await);
    assert!(s2.read_until(LONG, |s| s.len() >= 10).await);
    // s1 has everything acknowledged and saved; s2 only the first three.
    s1.received(friend, 10).await;
    s2.received(friend, 3).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // s2's connection drops (a phone losing its network).
    drop(std::mem::replace(&mut s2.client, WireClient::connect(n2.addr).await));
    s2.shown.clear();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let more: Vec<String> = (1..=5).map(|i| format!("b{i}")).collect();
    for (i, text) in more.iter().enumerate() {
        assert_eq!(f.chat(user, text, &format!("b{i}")).await["errno"], 0);
    }
    // A RESUME without acks: the session's own cursor (3), not the user's (10).
    let ack = s2.resume(n2.addr, json!([])).await;
    assert_eq!(ack["errno"], 0, "{ack}");
    let want: Vec<String> = first[3..].iter().chain(&more).cloned().collect();
    assert!(s2.read_until(LONG, |s| s.len() >= want.len()).await, "s2 replayed {:?}", s2.shown);
    s2.drain(Duration::from_millis(300)).await;
    assert_once_in_order("s2 resumed", &s2, friend, &want);
    // s1 meanwhile got the new ones live, once.
    assert!(s1.read_until(LONG, |s| s.len() >= 15).await);
    s1.drain(Duration::from_millis(300)).await;
    let all: Vec<String> = first.iter().chain(&more).cloned().collect();
    assert_once_in_order("s1", &s1, friend, &all);
    // A fresh login (a new device) starts from the user's cursor: only what nobody acknowledged.
    let s3 = Device::try_login(n2.addr, json!({"msgid":1,"id":user,"password":"pw","ext":1})).await.1;
    assert_eq!(s3["unread"], json!([{"count":5,"id":friend}]), "{s3}");
}

async fn the_session_limit_loginout_and_log_out_everywhere(redis: &str) {
    let (n1, n2) = two_nodes(redis, &[("CHAT_MAX_SESSIONS_PER_USER", "3")]);
    let user = registered(&n1, "u").await;
    let friend = registered(&n1, "f").await;
    let mut s1 = Device::login(n1.addr, user).await;
    let mut s2 = Device::login(n2.addr, user).await;
    let mut s3 = Device::login(n2.addr, user).await;
    // A fourth extension session, on either node: errno 30 with the limit in the text.
    for node in [&n1, &n2] {
        let (_, ack) =
            Device::try_login(node.addr, json!({"msgid":1,"id":user,"password":"pw","ext":1})).await;
        assert_eq!(ack["errno"], 30, "{ack}");
        assert!(ack["errmsg"].as_str().is_some_and(|t| t.contains("3 sessions")), "{ack}");
    }
    // The original client keeps the original's rule: errno 2 while the user has any session.
    let mut original = WireClient::connect(n1.addr).await;
    assert_eq!(original.login(user, false).await["errno"], 2);

    // LOGINOUT ends one session: the others stay, and a new one fits again.
    assert_eq!(s3.ask(json!({"msgid":3}), 11).await["errno"], 0);
    let (again, ack) = Device::try_login(n1.addr, json!({"msgid":1,"id":user,"password":"pw","ext":1})).await;
    assert_eq!(ack["errno"], 0, "{ack}");
    let mut f = Device::login(n1.addr, friend).await;
    assert_eq!(f.chat(user, "still two", "x1").await["errno"], 0);
    for (who, s) in [("s1", &mut s1), ("s2", &mut s2)] {
        assert!(s.read_until(LONG, |c| c.iter().any(|m| m.msg == "still two")).await, "{who}");
    }
    // s3's token ended with its LOGINOUT.
    let ack = s3.resume(n2.addr, json!([])).await;
    assert_eq!(ack["errno"], 17, "{ack}");

    // Log out everywhere from s1: every other session gets a NOTICE and is closed, on both
    // nodes; every token ends; s1's connection stays, logged out.
    let answer = s1.ask(json!({"msgid":52}), 11).await;
    assert_eq!(answer, json!({"errno":0,"msgid":11,"re":52}));
    for (who, mut s) in [("s2", s2), ("again", again)] {
        let mut notice = None;
        while let Some(frame) = s.client.recv_within(Duration::from_secs(5)).await {
            if frame["msgid"] == 14 {
                notice = Some(frame);
                break;
            }
        }
        assert_eq!(
            notice,
            Some(json!({"errmsg":"logged out everywhere: log in again","errno":15,"msgid":14})),
            "{who}"
        );
        assert!(s.client.closed_within(Duration::from_secs(5)).await, "{who} closed");
        let ack = s.resume(n1.addr, json!([])).await;
        assert_eq!(ack["errno"], 17, "{who}'s token ended: {ack}");
    }
    assert_eq!(s1.ask(json!({"msgid":15}), 16).await["errno"], 3, "s1 is logged out");
    // Logged out everywhere means no session left: the original client may log in now (once
    // the closed sessions' nodes have ended them).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut original = WireClient::connect(n2.addr).await;
        let ack = original.login(user, false).await;
        if ack["errno"] == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ack}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
