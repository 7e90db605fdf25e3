//! Outages of the services a node depends on: MySQL and Redis go away and come
//! back; nodes keep serving what they can, answer the rest with a clear error,
//! and recover by themselves.

use std::time::{Duration, Instant};

use chat_tests::{
    RedisServer, ServerProcess, TcpProxy, WireClient, cluster_node, mysql_url, tempdir::TempDir, unique,
};
use serde_json::json;

#[tokio::test]
async fn mysql_down_gives_clear_errors_and_service_recovers_by_itself() {
    let url = mysql_url();
    let (creds, rest) = url.trim_start_matches("mysql://").split_once('@').expect("mysql url");
    let (hostport, db) = rest.split_once('/').expect("db");
    let target: std::net::SocketAddr = hostport.replace("localhost", "127.0.0.1").parse().expect("addr");
    let proxy = TcpProxy::start(target).await;
    // prefer_socket=false: mysql_async would otherwise switch to the local socket and bypass the proxy.
    let proxied = format!("mysql://{creds}@{}/{db}?prefer_socket=false", proxy.addr);
    let s = ServerProcess::start_with(TempDir::new("chat-mysql-down"), &["--database-url", &proxied], &[]);
    let mut a = WireClient::connect(s.addr).await;
    let ida = a.register(&unique("a")).await;
    let idb = a.register(&unique("b")).await;
    assert_eq!(a.login(ida, true).await["errno"], 0);
    let mut b = WireClient::connect(s.addr).await;
    assert_eq!(b.login(idb, true).await["errno"], 0);

    proxy.set_up(false);
    // A chat is stored before it is acknowledged: without the database it is refused
    // (errno 13, for the client to send again later) and reaches nobody.
    a.send(&json!({"msgid":6,"to":idb,"msg":"not without the db","cid":"x1"})).await;
    assert_eq!(a.recv().await["errno"], 13);
    b.expect_silence(Duration::from_millis(300)).await;
    // What needs it gets errno 13, quickly, and nothing crashes.
    let started = Instant::now();
    let mut c = WireClient::connect(s.addr).await;
    c.send(&json!({"msgid":4,"name":unique("c"),"password":"pw","ext":1})).await;
    let reg = c.recv().await;
    assert_eq!(reg["errno"], 13, "{reg}: {}", s.log());
    assert!(started.elapsed() < Duration::from_secs(9), "answered in {:?}", started.elapsed());
    a.send(&json!({"msgid":8,"groupname":unique("g"),"groupdesc":""})).await;
    assert_eq!(a.recv().await["errno"], 13);

    proxy.set_up(true);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        c.send(&json!({"msgid":4,"name":unique("c"),"password":"pw","ext":1})).await;
        let reg = c.recv().await;
        if reg["errno"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover: {reg}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    a.send(&json!({"msgid":8,"groupname":unique("g"),"groupdesc":""})).await;
    assert_eq!(a.recv().await["errno"], 0, "recovered without a restart");
    a.send(&json!({"msgid":6,"to":idb,"msg":"not without the db","cid":"x1"})).await;
    assert_eq!(a.recv().await["errno"], 0, "the resend is stored");
    assert_eq!(b.recv().await["msg"], "not without the db");
}

#[tokio::test]
async fn redis_down_local_users_are_still_served_and_logins_say_why() {
    let mut redis = RedisServer::start();
    let prefix = format!("{}:", unique("o"));
    let n1 = cluster_node("n1", &redis.url(), &prefix, 10);
    let mut a = WireClient::connect(n1.addr).await;
    let ida = a.register(&unique("a")).await;
    let idb = a.register(&unique("b")).await;
    let idc = a.register(&unique("c")).await;
    assert_eq!(a.login(ida, true).await["errno"], 0);
    let mut b = WireClient::connect(n1.addr).await;
    assert_eq!(b.login(idb, true).await["errno"], 0);
    redis.stop();
    a.send(&json!({"msgid":6,"to":idb,"msg":"same node, no redis"})).await;
    assert_eq!(a.recv().await["errno"], 0);
    assert_eq!(b.recv().await["msg"], "same node, no redis");
    a.send(&json!({"msgid":6,"to":idc,"msg":"offline, no redis"})).await;
    assert_eq!(a.recv().await["errno"], 0, "stored");
    let mut c = WireClient::connect(n1.addr).await;
    let refused = c.login(idc, true).await;
    assert_eq!(refused["errno"], 13, "cannot check cluster presence: {refused}");
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    let ack = loop {
        let ack = c.login(idc, true).await;
        if ack["errno"] == 0 || Instant::now() > deadline {
            break ack;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(ack["errno"], 0, "{ack}");
    assert_eq!(c.replayed_texts(&ack).await, vec!["offline, no redis"]);
}
