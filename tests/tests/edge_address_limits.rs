//! Limits per client address, with the real addresses: through the project's nginx (PROXY
//! protocol) from distinct loopback addresses, and with PROXY headers naming addresses of
//! our choosing (IPv6 counts by its /64). Each refusal is a NOTICE with errno 18, then a close;
//! another address is never affected.

use std::net::IpAddr;
use std::time::Duration;

use chat_tests::{Nginx, ServerProcess, WireClient, cluster_node_with, redis_url, tempdir::TempDir, unique};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// What a connection got: `Some(notice)` if refused (a frame, then closed), `None` if it is
/// held open in silence.
async fn refusal(c: &mut WireClient) -> Option<Value> {
    refusal_within(c, Duration::from_millis(1500)).await
}

/// As [`refusal`], waiting up to `wait` for the NOTICE.
async fn refusal_within(c: &mut WireClient, wait: Duration) -> Option<Value> {
    let frame = c.recv_within(wait).await?;
    assert!(c.closed_within(Duration::from_secs(5)).await, "closed after {frame}");
    Some(frame)
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sockets_from_one_address_are_refused_beyond_the_limit_and_others_chat() {
    let prefix = format!("edge-limits-{}:", unique("p"));
    let env = [("CHAT_UNAUTH_PER_IP", "20"), ("CHAT_MAX_CONNECTIONS_PER_IP", "40")];
    let a = cluster_node_with("lim-a", &redis_url(), &prefix, 3, &env);
    let b = cluster_node_with("lim-b", &redis_url(), &prefix, 3, &env);
    let nginx = Nginx::start([a.addr, b.addr]);

    // 500 idle sockets from 127.0.0.2: nginx alternates them over the nodes, each node holds
    // 20 of them and refuses the rest.
    let flood = ip("127.0.0.2");
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(WireClient::connect_from(flood, nginx.addr).await);
    }
    // Long enough for a loaded machine to refuse hundreds of sockets; the held ones cost
    // this wait once (they are awaited together).
    let answers =
        futures::future::join_all(idle.iter_mut().map(|c| refusal_within(c, Duration::from_secs(4)))).await;
    let refused: Vec<&Value> = answers.iter().flatten().collect();
    let closed_silently = answers.iter().filter(|a| a.is_none()).count();
    assert_eq!(
        500 - refused.len(),
        40,
        "20 held on each node ({closed_silently} without a frame); nginx: {}",
        nginx.error_log()
    );
    for notice in &refused {
        assert_eq!(notice["msgid"], 14, "{notice}");
        assert_eq!(notice["errno"], 18, "{notice}");
        assert!(notice["errmsg"].as_str().is_some_and(|m| m.contains("your address")), "{notice}");
    }

    // Meanwhile another address registers, logs in and chats normally, on both nodes.
    let other = ip("127.0.0.3");
    let mut x = WireClient::connect_from(other, nginx.addr).await;
    let mut y = WireClient::connect_from(other, nginx.addr).await;
    let (idx, idy) = (x.register(&unique("x")).await, y.register(&unique("y")).await);
    assert_eq!(x.login(idx, true).await["errno"], 0);
    assert_eq!(y.login(idy, true).await["errno"], 0);
    x.send(&json!({"msgid":6,"to":idy,"msg":"still here","cid":"1"})).await;
    assert_eq!(x.recv().await["errno"], 0);
    assert_eq!(y.recv().await["msg"], "still here");
    let refusals = |s: &ServerProcess| {
        s.log().lines().filter(|l| l.contains("per-address limit") && l.contains("addr=127.0.0.2")).count()
    };
    assert_eq!(refusals(&a) + refusals(&b), 460, "each refusal logged with the client's address");
    drop(idle);
}

/// A single node with the PROXY protocol on and these settings.
fn node(env: &[(&str, &str)]) -> ServerProcess {
    let dir = TempDir::new("chat-edge");
    let url = format!("sqlite://{}", dir.path().join("chat.db").display());
    let mut all = vec![("CHAT_PROXY_PROTOCOL", "true")];
    all.extend_from_slice(env);
    ServerProcess::start_with(dir, &["--database-url", &url], &all)
}

/// A connection from 127.0.0.1 (an allowed proxy) relaying a client from `client`.
async fn relayed(node: &ServerProcess, client: &str) -> WireClient {
    let mut stream = tokio::net::TcpStream::connect(node.addr).await.expect("connect");
    let header = match client.parse::<IpAddr>().expect("client") {
        IpAddr::V4(v4) => format!("PROXY TCP4 {v4} 127.0.0.1 40000 6000\r\n"),
        IpAddr::V6(v6) => format!("PROXY TCP6 {v6} ::1 40000 6000\r\n"),
    };
    stream.write_all(header.as_bytes()).await.expect("header");
    WireClient::from_stream(stream)
}

#[tokio::test]
async fn connections_per_address_count_logged_in_ones_too_and_ipv6_by_its_64() {
    let s = node(&[("CHAT_MAX_CONNECTIONS_PER_IP", "3"), ("CHAT_UNAUTH_PER_IP", "2")]);
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(WireClient::connect(s.addr).await.register(&unique("u")).await);
    }
    let mut held = Vec::new();
    for id in &ids[..3] {
        let mut c = relayed(&s, "203.0.113.9").await;
        assert_eq!(c.login(*id, true).await["errno"], 0);
        held.push(c);
    }
    let mut fourth = relayed(&s, "203.0.113.9").await;
    let notice = refusal(&mut fourth).await.expect("refused");
    assert_eq!(notice["errno"], 18);
    assert!(notice["errmsg"].as_str().is_some_and(|m| m.contains("too many connections from your address")));
    let mut elsewhere = relayed(&s, "203.0.113.10").await;
    assert_eq!(elsewhere.login(ids[3], true).await["errno"], 0, "another address is not affected");
    // A closed connection gives its place back.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = relayed(&s, "203.0.113.9").await;
    assert_eq!(refusal(&mut again).await, None, "a closed connection gave its place back");

    // IPv6: two addresses of one /64 are one address; another /64 is another.
    let mut v6 = vec![relayed(&s, "2001:db8:1:2::a").await, relayed(&s, "2001:db8:1:2:ffff::b").await];
    for c in &mut v6 {
        assert_eq!(refusal(c).await, None);
    }
    let mut third = relayed(&s, "2001:db8:1:2::c").await;
    let notice = refusal(&mut third).await.expect("refused");
    assert!(notice["errmsg"].as_str().is_some_and(|m| m.contains("waiting to log in")), "{notice}");
    let mut next_net = relayed(&s, "2001:db8:1:3::a").await;
    assert_eq!(refusal(&mut next_net).await, None);
}

#[tokio::test]
async fn under_pressure_the_login_deadline_is_shorter() {
    let s = node(&[("CHAT_UNAUTH_PRESSURE", "3"), ("CHAT_LOGIN_TIMEOUT_PRESSED_SECS", "1")]);
    let mut two = vec![relayed(&s, "198.51.100.1").await, relayed(&s, "198.51.100.2").await];
    tokio::time::sleep(Duration::from_millis(1800)).await;
    for c in &mut two {
        assert!(!c.closed_within(Duration::from_millis(100)).await, "no pressure: the 60 s deadline");
    }
    // Three more: five wait to log in, the node is under pressure, and those waiting longer
    // than 1 s are closed until it is not (fewer than 3 wait).
    let mut three = Vec::new();
    for n in 3..6 {
        three.push(relayed(&s, &format!("198.51.100.{n}")).await);
    }
    for c in &mut two {
        assert!(c.closed_within(Duration::from_secs(4)).await, "pressure: closed after about 1 s");
    }
    let closed =
        futures::future::join_all(three.iter_mut().map(|c| c.closed_within(Duration::from_secs(4)))).await;
    assert!(closed.iter().any(|c| *c), "the newer ones too, once over 1 s, while the pressure lasts");
    // A connection that logs in in time is not touched.
    let id = WireClient::connect(s.addr).await.register(&unique("calm")).await;
    let mut calm = relayed(&s, "198.51.100.4").await;
    assert_eq!(calm.login(id, true).await["errno"], 0);
    calm.send(&json!({"msgid":15})).await;
    assert_eq!(calm.recv().await["msgid"], 16);
}

#[tokio::test(flavor = "multi_thread")]
async fn registrations_from_one_address_beyond_the_window_are_refused() {
    let prefix = format!("edge-reg-{}:", unique("p"));
    let env = [("CHAT_REGISTRATIONS_PER_IP", "3")];
    let a = cluster_node_with("reg-a", &redis_url(), &prefix, 3, &env);
    let b = cluster_node_with("reg-b", &redis_url(), &prefix, 3, &env);
    let nginx = Nginx::start([a.addr, b.addr]);
    let from = ip("127.0.0.2");
    // Three registrations, over both nodes (counted in Redis), then refused.
    for _ in 0..3 {
        WireClient::connect_from(from, nginx.addr).await.register(&unique("r")).await;
    }
    for _ in 0..2 {
        let mut c = WireClient::connect_from(from, nginx.addr).await;
        c.send(&json!({"msgid":4,"name":unique("r"),"password":"pw","ext":1})).await;
        let ack = c.recv().await;
        assert_eq!((ack["msgid"].as_i64(), ack["errno"].as_i64()), (Some(5), Some(18)), "{ack}");
        assert!(ack["errmsg"].as_str().is_some_and(|m| m.contains("registrations from your address")));
    }
    // The original client (no extension) gets its usual failure text.
    let mut plain = WireClient::connect_from(from, nginx.addr).await;
    plain.send(&json!({"msgid":4,"name":unique("r"),"password":"pw"})).await;
    assert_eq!(plain.recv().await["errno"], 1);
    // Another address is not affected.
    WireClient::connect_from(ip("127.0.0.3"), nginx.addr).await.register(&unique("r")).await;
}
