//! Every limit of a node, black-box: what a client sees when it hits it.
//! (README's "Limits" table lists them with their defaults.)

use std::time::{Duration, Instant};

use chat_tests::{ServerProcess, WireClient, tempdir::TempDir, unique};
use serde_json::json;

fn server(env: &[(&str, &str)]) -> ServerProcess {
    let dir = TempDir::new("chat-limits");
    let url = format!("sqlite://{}", dir.path().join("chat.db").display());
    ServerProcess::start_with(dir, &["--database-url", &url], env)
}

async fn user(server: &ServerProcess, ext: bool) -> (WireClient, i64) {
    let mut c = WireClient::connect(server.addr).await;
    let id = WireClient::connect(server.addr).await.register(&unique("u")).await;
    assert_eq!(c.login(id, ext).await["errno"], 0);
    (c, id)
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_cleanly() {
    let s = ServerProcess::start_sqlite(&["--max-connections", "3"]);
    // Let the harness's readiness probe connection be reaped first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = WireClient::connect(s.addr).await;
        c.register(&unique("held")).await; // answered: the connection is served
        held.push(c);
    }
    let mut extra = WireClient::connect(s.addr).await;
    let refusal = extra.recv().await;
    assert_eq!(refusal, json!({"errmsg":"server is full; try again later","errno":15,"msgid":14}));
    assert!(extra.closed_within(Duration::from_secs(2)).await);
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = WireClient::connect(s.addr).await;
    again.register(&unique("room")).await;
}

#[tokio::test]
async fn request_rate_is_limited_and_floods_are_disconnected() {
    let s = server(&[("CHAT_RATE_PER_SEC", "1"), ("CHAT_RATE_BURST", "10"), ("CHAT_ABUSE_LIMIT", "50")]);
    let (mut a, ida) = user(&s, true).await; // login used one token
    let mut burst = Vec::new();
    for _ in 0..20 {
        burst.extend(serde_json::to_vec(&json!({"msgid":6,"to":ida,"msg":"x"})).expect("json"));
        burst.push(b'\n');
    }
    a.send_raw(&burst).await;
    let mut ok = 0;
    let mut limited = 0;
    for _ in 0..(9 * 2 + 11) {
        let f = a.recv().await;
        match (f["msgid"].as_i64(), f["errno"].as_i64()) {
            (Some(11), Some(0)) => ok += 1,
            (Some(11), Some(14)) => limited += 1,
            (Some(6), _) => {}
            other => panic!("unexpected {other:?}: {f}"),
        }
    }
    assert_eq!((ok, limited), (9, 11), "the burst of 10 tokens, then errno 14");
    // Keep flooding: after 50 refusals in a row the connection is closed with a notice.
    let flood: Vec<u8> = std::iter::repeat_n(&b"{\"msgid\":15}\n"[..], 200).flatten().copied().collect();
    a.send_raw(&flood).await;
    let mut notice = None;
    while let Some(f) = a.recv_within(Duration::from_secs(5)).await {
        if f["msgid"] == 14 {
            notice = Some(f);
        }
    }
    assert_eq!(notice.map(|n| n["errno"].clone()), Some(json!(14)));
}

#[tokio::test]
async fn failed_logins_close_the_connection_and_lock_the_account() {
    let s = server(&[("CHAT_LOGIN_FAILURES_PER_CONN", "3"), ("CHAT_LOGIN_FAILURES_PER_USER", "5")]);
    let id = WireClient::connect(s.addr).await.register(&unique("victim")).await;
    let other = WireClient::connect(s.addr).await.register(&unique("other")).await;
    let mut c = WireClient::connect(s.addr).await;
    for _ in 0..3 {
        c.send(&json!({"msgid":1,"id":id,"password":"guess","ext":1})).await;
        assert_eq!(c.recv().await["errno"], 1);
    }
    assert!(c.closed_within(Duration::from_secs(2)).await, "3 failures on one connection close it");
    let mut d = WireClient::connect(s.addr).await;
    for _ in 0..2 {
        d.send(&json!({"msgid":1,"id":id,"password":"guess","ext":1})).await;
        assert_eq!(d.recv().await["errno"], 1);
    }
    // 5 failures for the account: even the right password is refused for a while.
    let mut e = WireClient::connect(s.addr).await;
    let locked = e.login(id, true).await;
    assert_eq!(locked["errno"], 14, "{locked}");
    assert!(locked["errmsg"].as_str().is_some_and(|m| m.contains("too many failed logins")));
    // Other accounts are not affected.
    assert_eq!(e.login(other, true).await["errno"], 0);
}

#[tokio::test]
async fn groups_have_a_maximum_size() {
    let s = server(&[("CHAT_MAX_GROUP_MEMBERS", "2")]);
    let (mut a, _) = user(&s, true).await;
    let (mut b, _) = user(&s, true).await;
    let (mut c, _) = user(&s, true).await;
    a.send(&json!({"msgid":8,"groupname":unique("g"),"groupdesc":""})).await;
    let gid = a.recv().await["groupid"].as_i64().expect("groupid");
    b.send(&json!({"msgid":9,"groupid":gid})).await;
    assert_eq!(b.recv().await["errno"], 0);
    c.send(&json!({"msgid":9,"groupid":gid})).await;
    let full = c.recv().await;
    assert_eq!(full["errno"], 16, "{full}");
    b.send(&json!({"msgid":9,"groupid":gid})).await;
    assert_eq!(b.recv().await["errno"], 0, "a member joining again is harmless");
}

#[tokio::test]
async fn retention_keeps_the_newest_messages_of_each_conversation() {
    let s = server(&[("CHAT_RETENTION_PER_CONVERSATION", "3"), ("CHAT_PURGE_INTERVAL_SECS", "1")]);
    let (mut a, _) = user(&s, true).await;
    let idb = WireClient::connect(s.addr).await.register(&unique("away")).await;
    for i in 0..10 {
        a.send(&json!({"msgid":6,"to":idb,"msg":format!("m{i}")})).await;
        assert_eq!(a.recv().await["errno"], 0, "a recipient never fills up: the sender is not refused");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut b = WireClient::connect(s.addr).await;
    let ack = b.login(idb, true).await;
    assert_eq!(ack["errno"], 0);
    assert_eq!(b.replayed_texts(&ack).await, vec!["m7", "m8", "m9"], "the newest 3 are kept");
    assert!(s.log().contains("retention purge"), "the purge ran: {}", s.log());
}

#[tokio::test]
async fn messages_have_a_maximum_length() {
    let s = server(&[("CHAT_MAX_MESSAGE_BYTES", "1000")]);
    let (mut a, ida) = user(&s, true).await;
    a.send(&json!({"msgid":6,"to":ida,"msg":"x".repeat(1001)})).await;
    assert_eq!(a.recv().await["errno"], 9);
    a.send(&json!({"msgid":6,"to":ida,"msg":"x".repeat(1000)})).await;
    let mut got = [a.recv().await, a.recv().await];
    got.sort_by_key(|f| f["msgid"].as_i64());
    assert_eq!(got[0]["msg"].as_str().map(str::len), Some(1000));
}

#[tokio::test]
async fn a_connection_that_never_logs_in_is_closed() {
    let s = server(&[("CHAT_LOGIN_TIMEOUT_SECS", "0.5")]);
    let mut quiet = WireClient::connect(s.addr).await;
    let started = Instant::now();
    assert!(quiet.closed_within(Duration::from_secs(5)).await);
    assert!(started.elapsed() >= Duration::from_millis(400));
    // Chatter without a login does not keep it open either.
    let mut chatty = WireClient::connect(s.addr).await;
    chatty.register(&unique("r")).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut closed = false;
    while Instant::now() < deadline {
        chatty.send(&json!({"msgid":13})).await;
        if let Some(f) = chatty.recv_within(Duration::from_millis(100)).await {
            assert_eq!(f["msgid"], 14, "an extension client hears why: {f}");
            closed = chatty.closed_within(Duration::from_secs(2)).await;
            break;
        }
    }
    assert!(closed, "closed after the login timeout");
    // A logged-in connection stays.
    let (mut a, _) = user(&s, false).await;
    a.expect_silence(Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn silent_extension_clients_are_pinged_and_dropped_like_a_disconnect() {
    let s = server(&[("CHAT_PING_INTERVAL_SECS", "0.5")]);
    let (mut answering, _) = user(&s, true).await;
    let (mut silent, ids) = user(&s, true).await;
    let (mut original, _) = user(&s, false).await;
    assert_eq!(silent.recv().await, json!({"msgid":12}));
    for _ in 0..3 {
        assert_eq!(answering.recv().await, json!({"msgid":12}));
        answering.send(&json!({"msgid":13})).await;
    }
    answering.send(&json!({"msgid":15})).await;
    assert_eq!(answering.recv().await["msgid"], 16, "a client that answers pings stays");
    assert!(silent.closed_within(Duration::from_secs(3)).await, "an unanswered ping closes the connection");
    original.expect_silence(Duration::from_millis(1500)).await; // never pinged, never dropped
    let mut back = WireClient::connect(s.addr).await;
    assert_eq!(back.login(ids, true).await["errno"], 0, "cleaned up exactly like a disconnect");
}

#[tokio::test]
async fn a_client_that_does_not_read_is_dropped_without_stalling_anyone_and_loses_nothing() {
    let s = server(&[("CHAT_OUTBOUND_QUEUE", "16"), ("CHAT_RATE_BURST", "10000")]);
    let (mut a, _) = user(&s, true).await;
    let (mut reader, idr) = user(&s, true).await;
    let (lazy, idl) = user(&s, true).await;
    let body = "z".repeat(50_000);
    let started = Instant::now();
    let total = 200;
    for i in 0..total {
        a.send(&json!({"msgid":6,"to":idl,"msg":format!("{i}:{body}")})).await;
        assert_eq!(a.recv().await["errno"], 0, "the sender is never stalled");
    }
    a.send(&json!({"msgid":6,"to":idr,"msg":"others are served"})).await;
    assert_eq!(a.recv().await["errno"], 0);
    assert_eq!(reader.recv().await["msg"], "others are served");
    assert!(started.elapsed() < Duration::from_secs(20));
    // What the lazy client's socket got before it was dropped, plus what waits for its next login.
    let mut lazy = lazy;
    let mut seen = std::collections::BTreeSet::new();
    while let Some(text) = lazy.recv_text_within(Duration::from_secs(2)).await {
        if let Ok(f) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(m) = f["msg"].as_str()
        {
            seen.insert(m.split(':').next().unwrap_or_default().to_owned());
        }
    }
    assert!(seen.len() < total, "the lazy client was disconnected before getting everything");
    let mut again = WireClient::connect(s.addr).await;
    let ack = again.login(idl, true).await;
    assert_eq!(ack["errno"], 0, "{}", ack["errmsg"]);
    // It acknowledged nothing: everything comes again (dropped by mid, here by text).
    for m in again.replayed_texts(&ack).await {
        seen.insert(m.split(':').next().unwrap_or_default().to_owned());
    }
    let expected: std::collections::BTreeSet<String> = (0..total).map(|i| i.to_string()).collect();
    assert_eq!(seen, expected, "nothing lost");
}
