//! The WebSocket endpoint, black-box: the handshake's Origin check, the web client served on
//! the same listener, the TCP limits through WebSocket (frame size, idle pings, rate), binary
//! messages refused, a WebSocket user and a TCP user chatting, and no file descriptor left
//! behind by 1,000 connections.

use std::time::{Duration, Instant};

use chat_tests::web::{WsClient, WsNode};
use chat_tests::{WireClient, unique};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// What a raw HTTP request gets: the whole answer, or the head of a 101 (whose connection stays).
async fn http(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&chunk[..n]),
            _ => break,
        }
        if out.starts_with(b"HTTP/1.1 101") && out.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn upgrade(host: &str, origin: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
    )
}

#[tokio::test]
async fn the_handshake_refuses_a_foreign_origin_and_serves_the_page() {
    let node =
        WsNode::sqlite(&[], &[("CHAT_WS_ALLOWED_ORIGINS", "https://chat.example.com,https://other.example")]);
    let host = node.ws.to_string();
    let refused = http(node.ws, &upgrade(&host, "http://evil.example")).await;
    assert!(refused.starts_with("HTTP/1.1 403"), "a foreign origin is refused: {refused}");
    assert!(refused.contains("origin not allowed"), "{refused}");
    // The listener's own pages, and the configured origins, are let in.
    let own = http(node.ws, &upgrade(&host, &format!("http://{host}"))).await;
    assert!(own.starts_with("HTTP/1.1 101"), "{own}");
    assert!(
        own.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "RFC 6455's example key: {own}"
    );
    let listed = http(node.ws, &upgrade(&host, "https://other.example")).await;
    assert!(listed.starts_with("HTTP/1.1 101"), "{listed}");
    assert!(WsClient::try_connect(node.ws, Some("http://evil.example")).await.is_err());

    // The web client, on the same listener, with a policy that runs only its own script.
    let page = http(node.ws, &format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n")).await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("Content-Security-Policy: default-src 'none'; script-src 'self'"), "{page}");
    assert!(page.contains("<script src=\"app.js\""), "{page}");
    let script = http(node.ws, &format!("GET /app.js HTTP/1.1\r\nHost: {host}\r\n\r\n")).await;
    assert!(script.starts_with("HTTP/1.1 200") && script.contains("textContent"), "app.js is served");
    let missing = http(node.ws, &format!("GET /nope HTTP/1.1\r\nHost: {host}\r\n\r\n")).await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

#[tokio::test]
async fn an_over_long_message_gets_the_usual_error_and_the_connection_stays() {
    let node = WsNode::sqlite(&["--max-frame-bytes", "4096"], &[]);
    let mut c = WsClient::connect(node.ws).await;
    let id = c.register(&unique("long")).await;
    c.send_text(format!("{{\"msgid\":6,\"to\":1,\"msg\":\"{}\"}}", "x".repeat(5000))).await;
    assert_eq!(
        c.recv().await,
        json!({"errmsg":"frame is longer than the limit","errno":10,"msgid":11,"re":0})
    );
    // Still served: the login works on the same connection.
    assert_eq!(c.login(id).await["errno"], 0);
    // A message too big to read at all (over 4× the limit, and at least 64 KiB) ends the
    // connection, saying why.
    c.send_text("y".repeat(70_000)).await;
    match c.next_within(Duration::from_secs(5)).await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Size, "close 1009: {frame:?}"),
        other => panic!("expected a close frame (1009), got {other:?}"),
    }
}

#[tokio::test]
async fn a_binary_message_is_refused_with_a_close_that_says_why() {
    let node = WsNode::sqlite(&[], &[]);
    let mut c = WsClient::connect(node.ws).await;
    c.register(&unique("bin")).await;
    c.send_binary(b"{\"msgid\":15}".to_vec()).await;
    match c.next_within(Duration::from_secs(5)).await {
        Some(Message::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::Unsupported, "close 1003: {frame:?}");
            assert!(frame.reason.contains("send each JSON request as a text message"), "{frame:?}");
        }
        other => panic!("expected a close frame (1003), got {other:?}"),
    }
    assert!(c.next_within(Duration::from_secs(5)).await.is_none(), "the connection ends");
}

#[tokio::test]
async fn a_websocket_user_and_a_tcp_user_chat_and_the_tcp_limits_hold() {
    let node = WsNode::sqlite(
        &[],
        &[("CHAT_PING_INTERVAL_SECS", "1"), ("CHAT_RATE_BURST", "5"), ("CHAT_RATE_PER_SEC", "1")],
    );
    let mut web = WsClient::connect(node.ws).await;
    let web_id = web.register(&unique("web")).await;
    assert_eq!(web.login(web_id).await["errno"], 0);
    let mut tcp = WireClient::connect(node.server.addr).await;
    let tcp_id = WireClient::connect(node.server.addr).await.register(&unique("tcp")).await;
    assert_eq!(tcp.login(tcp_id, true).await["errno"], 0);

    web.send(&json!({"msgid":6,"to":tcp_id,"msg":"über WebSocket <b>","cid":"w1"})).await;
    let ack = web.recv().await;
    assert_eq!(
        (ack["errno"].clone(), ack["cid"].clone(), ack["re"].clone()),
        (json!(0), json!("w1"), json!(6)),
        "{ack}"
    );
    let got = tcp.recv().await;
    assert_eq!(
        (got["id"].as_i64(), got["msg"].as_str()),
        (Some(web_id), Some("über WebSocket <b>")),
        "{got}"
    );
    tcp.send(&json!({"msgid":6,"to":web_id,"msg":"over TCP","cid":"t1"})).await;
    assert_eq!(tcp.recv().await["errno"], 0);
    let got = web.recv().await;
    assert_eq!((got["id"].as_i64(), got["msg"].as_str()), (Some(tcp_id), Some("over TCP")), "{got}");
    assert!(got["mid"].is_i64() && got["seq"].is_i64(), "extension pushes carry mid and seq: {got}");

    // An original client cannot log in over TCP while the user has a WebSocket session.
    let mut again = WireClient::connect(node.server.addr).await;
    assert_eq!(again.login(web_id, false).await["errno"], 2);

    // Idle pings, as over TCP.
    let started = Instant::now();
    assert_eq!(web.recv().await, json!({"msgid":12}), "a silent WebSocket client is pinged");
    assert!(started.elapsed() < Duration::from_secs(5));
    web.send(&json!({"msgid":13})).await;

    // The request rate limit, as over TCP: a burst of 5, then errno 14.
    for _ in 0..8 {
        web.send(&json!({"msgid":15})).await;
    }
    let mut limited = 0;
    for _ in 0..8 {
        let reply = web.recv().await;
        if reply["msgid"] == 11 && reply["errno"] == 14 {
            limited += 1;
        }
    }
    assert!(limited >= 2, "requests beyond the burst are refused with errno 14");
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).expect("read /proc/<pid>/fd")
}

#[tokio::test]
async fn a_thousand_connections_leave_no_file_descriptor_behind() {
    let node = WsNode::sqlite(&[], &[]);
    let pid = node.server.child.id();
    // Warm up (the pool, the runtime's threads), then take the baseline.
    for _ in 0..5 {
        WsClient::connect(node.ws).await.close().await;
    }
    // The baseline once the node's own descriptors stopped changing (its database files and
    // background tasks open lazily after start-up).
    let mut before = open_fds(pid);
    let (mut steady, settle) = (Instant::now(), Instant::now() + Duration::from_secs(5));
    while steady.elapsed() < Duration::from_millis(800) && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = open_fds(pid);
        if now != before {
            (before, steady) = (now, Instant::now());
        }
    }
    let mut peak = before;
    for i in 0..1000 {
        let mut c = WsClient::connect(node.ws).await;
        match i % 4 {
            // A clean close.
            0 => c.close().await,
            // A frame answered, then a clean close.
            1 => {
                c.send_text("not json").await;
                assert_eq!(c.recv().await["errno"], 4);
                c.close().await;
            }
            // Gone without a close frame.
            2 => drop(c),
            // A binary message: the server closes.
            _ => {
                c.send_binary(vec![1, 2, 3]).await;
                assert!(matches!(c.next_within(Duration::from_secs(5)).await, Some(Message::Close(_))));
            }
        }
        if i % 100 == 0 {
            peak = peak.max(open_fds(pid));
        }
    }
    // A descriptor left per connection shows as hundreds; a pooled database connection the
    // node opened meanwhile for its own work (the database file and its WAL) as a few.
    const NODE_OWN: usize = 4;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = open_fds(pid);
    while after > before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = open_fds(pid);
    }
    assert!(
        after <= before + NODE_OWN,
        "file descriptors: {before} before, {after} after 1,000 connections (peak {peak})"
    );
}

#[tokio::test]
async fn a_websocket_client_that_does_not_read_is_dropped_without_stalling_the_sender() {
    let node = WsNode::sqlite(&[], &[("CHAT_OUTBOUND_QUEUE", "16"), ("CHAT_RATE_BURST", "10000")]);
    let mut lazy = WsClient::connect(node.ws).await;
    let lazy_id = lazy.register(&unique("lazy")).await;
    assert_eq!(lazy.login(lazy_id).await["errno"], 0);
    let mut sender = WireClient::connect(node.server.addr).await;
    let sender_id = WireClient::connect(node.server.addr).await.register(&unique("flood")).await;
    assert_eq!(sender.login(sender_id, true).await["errno"], 0);
    let body = "z".repeat(50_000);
    let (started, total) = (Instant::now(), 200);
    for i in 0..total {
        sender.send(&json!({"msgid":6,"to":lazy_id,"msg":format!("{i}:{body}")})).await;
        assert_eq!(sender.recv().await["errno"], 0, "the sender is never stalled");
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    // What reached the lazy client before it was dropped is less than everything, and then
    // its connection ends.
    let mut seen = 0;
    let ended = loop {
        match lazy.next_within(Duration::from_secs(3)).await {
            Some(Message::Text(t)) if t.contains(&body[..100]) => seen += 1,
            Some(Message::Text(_)) => {}
            Some(Message::Close(_)) | None => break true,
            Some(_) => {}
        }
        if seen >= total {
            break false;
        }
    };
    assert!(ended && seen < total, "the lazy client was disconnected after {seen} of {total}");
    let mut again = WsClient::connect(node.ws).await;
    let ack = again.login(lazy_id).await;
    assert_eq!(ack["errno"], 0, "the session ended like a disconnect: {ack}");
}
