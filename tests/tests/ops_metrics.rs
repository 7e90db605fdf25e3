//! Metrics: a known workload on one node, then `/metrics` counts exactly that workload.
//!
//! Two extension clients register and log in (one login fails first), A sends 5 chats to B
//! while B is online (delivered locally), B acknowledges and logs out, A sends 3 more (stored
//! only), and B logs in again and gets those 3 replayed from the log. One more connection
//! stays original (never opts in).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chat_tests::ops::{http_get, metric, wait_status};
use chat_tests::{ServerProcess, WireClient, free_port, unique};
use serde_json::json;

#[tokio::test]
async fn metrics_count_a_known_workload() {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let server = ServerProcess::start_sqlite(&["--admin-listen", &admin.to_string()]);
    assert_eq!(wait_status(admin, "/healthz", 200, Duration::from_secs(10)).await, "ok\n");
    assert_eq!(wait_status(admin, "/readyz", 200, Duration::from_secs(10)).await, "ready\n");

    let mut a = WireClient::connect(server.addr).await;
    let mut b = WireClient::connect(server.addr).await;
    let _original = WireClient::connect(server.addr).await;
    let (name_a, name_b) = (unique("ma"), unique("mb"));
    let ida = a.register(&name_a).await;
    let idb = b.register(&name_b).await;
    assert_eq!(a.login(ida, true).await["errno"], 0);
    b.send(&json!({"msgid":1,"id":idb,"password":"wrong","ext":1})).await;
    assert_ne!(b.recv().await["errno"], 0, "a wrong password must fail");
    assert_eq!(b.login(idb, true).await["errno"], 0);

    for i in 0..5 {
        a.send(&json!({"msgid":6,"to":idb,"msg":format!("live {i}"),"cid":format!("l{i}")})).await;
    }
    for _ in 0..5 {
        assert_eq!(a.recv().await["errno"], 0, "each chat is acknowledged");
        assert_eq!(b.recv().await["msgid"], 6, "B gets each chat live");
    }
    // RECEIVED has no answer.
    b.send(&json!({"msgid":18,"acks":[{"id":ida,"seq":5}]})).await;
    b.send(&json!({"msgid":3})).await;
    assert_eq!(b.recv().await["errno"], 0);
    assert_eq!(a.recv().await["what"], "recv", "A learns that B received up to 5 (issue 20)");

    for i in 0..3 {
        a.send(&json!({"msgid":6,"to":idb,"msg":format!("later {i}"),"cid":format!("s{i}")})).await;
    }
    for _ in 0..3 {
        assert_eq!(a.recv().await["errno"], 0);
    }
    let ack = b.login(idb, true).await;
    assert_eq!(ack["errno"], 0);
    assert_eq!(b.replayed_texts(&ack).await, ["later 0", "later 1", "later 2"]);

    let (status, page) = http_get(admin, "/metrics").await.expect("GET /metrics");
    assert_eq!(status, 200);
    let expect = [
        ("chat_requests_total{msgid=\"4\"}", 2.0),
        ("chat_requests_total{msgid=\"1\"}", 4.0),
        ("chat_requests_total{msgid=\"6\"}", 8.0),
        ("chat_requests_total{msgid=\"18\"}", 1.0),
        ("chat_requests_total{msgid=\"3\"}", 1.0),
        ("chat_logins_total{result=\"ok\"}", 3.0),
        ("chat_logins_total{result=\"failed\"}", 1.0),
        ("chat_logins_total{result=\"refused\"}", 0.0),
        ("chat_chats_accepted_total", 8.0),
        ("chat_deliveries_total{route=\"local\"}", 5.0),
        ("chat_deliveries_total{route=\"stored\"}", 3.0),
        ("chat_deliveries_total{route=\"remote\"}", 0.0),
        ("chat_deliveries_total{route=\"replayed\"}", 3.0),
        ("chat_publish_failures_total", 0.0),
        ("chat_slow_readers_disconnected_total", 0.0),
        ("chat_connections_open{kind=\"extension\"}", 2.0),
        ("chat_connections_open{kind=\"original\"}", 1.0),
        ("chat_request_duration_seconds_count", 16.0),
        ("chat_ready", 1.0),
    ];
    let mut wrong = Vec::new();
    for (name, want) in expect {
        let got = metric(&page, name);
        if got != want {
            wrong.push(format!("{name}: {got}, expected {want}"));
        }
    }
    assert!(wrong.is_empty(), "metrics off:\n{}\n\npage:\n{page}", wrong.join("\n"));
    // The pool served every database read and write; nothing stays checked out once the
    // node is at rest. Background work that follows the last answer (the replay's cursor
    // save, the write check's cache refresh) may hold a connection for a moment, so the
    // gauge is read until it settles, and it must settle at 0.
    assert!(metric(&page, "chat_db_pool_checkouts_total") >= 10.0, "{page}");
    let mut in_use = metric(&page, "chat_db_pool_in_use");
    let settle = Instant::now() + Duration::from_secs(5);
    while in_use != 0.0 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, again) = http_get(admin, "/metrics").await.expect("GET /metrics");
        in_use = metric(&again, "chat_db_pool_in_use");
    }
    assert_eq!(in_use, 0.0, "a database connection stays checked out at rest");
    assert!(metric(&page, "chat_db_pool_wait_seconds_total") >= 0.0, "{page}");
    // Every chat was stored in one group commit or more.
    let appends = metric(&page, "chat_store_duration_seconds_count");
    assert!((1.0..=8.0).contains(&appends), "store appends {appends}");

    let (status, _) = http_get(admin, "/nope").await.expect("GET /nope");
    assert_eq!(status, 404);
}
