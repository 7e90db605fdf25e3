//! The PROXY protocol through the project's nginx (deploy/nginx.conf, `proxy_protocol on`):
//! clients from distinct loopback addresses (127.0.0.2, 127.0.0.3, …) are each known to the
//! nodes by their own address, over TCP and over WebSocket (X-Forwarded-For); a header from an
//! address not in `proxy_from`, or one that does not parse, closes the connection.

use std::net::IpAddr;
use std::time::Duration;

use chat_tests::web::{WsClient, WsNode};
use chat_tests::{Nginx, ServerProcess, WireClient, unique};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// Both nodes' logs.
fn logs(nodes: &[&ServerProcess]) -> String {
    nodes.iter().map(|n| n.log()).collect::<Vec<_>>().join("\n")
}

/// Waits until some line of the nodes' logs contains every one of `needles`.
async fn logged(nodes: &[&ServerProcess], needles: &[&str]) -> bool {
    for _ in 0..100 {
        if logs(nodes).lines().any(|l| needles.iter().all(|n| l.contains(n))) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Reads until the server closes; what it sent before.
async fn read_to_close(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got)).await;
    read.ok().map(|_| got)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_client_is_known_by_its_own_address_through_nginx() {
    let prefix = format!("edge-proxy-{}:", unique("p"));
    let a = WsNode::cluster("edge-a", &prefix, 3);
    let b = WsNode::cluster("edge-b", &prefix, 3);
    let nodes = [&a.server, &b.server];
    let nginx = Nginx::start_web([a.server.addr, b.server.addr], [a.ws, b.ws]);

    // Two clients through nginx's TCP port, from 127.0.0.2 and 127.0.0.3: registered, logged
    // in and chatting, each logged by the node with its own address.
    let mut two = WireClient::connect_from(ip("127.0.0.2"), nginx.addr).await;
    let id2 = two.register(&unique("two")).await;
    let mut three = WireClient::connect_from(ip("127.0.0.3"), nginx.addr).await;
    let id3 = three.register(&unique("three")).await;
    assert_eq!(two.login(id2, true).await["errno"], 0);
    assert_eq!(three.login(id3, true).await["errno"], 0);
    two.send(&json!({"msgid":6,"to":id3,"msg":"hello from .2","cid":"c1"})).await;
    assert_eq!(two.recv().await["errno"], 0);
    assert_eq!(three.recv().await["msg"], "hello from .2");
    for (id, addr) in [(id2, "127.0.0.2"), (id3, "127.0.0.3")] {
        let (user, addr) = (format!("user={id}"), format!("addr={addr}"));
        assert!(
            logged(&nodes, &["logged in", &user, &addr]).await,
            "login of {user} with {addr}:\n{}",
            logs(&nodes)
        );
    }
    drop((two, three));
    assert!(
        logged(&nodes, &["disconnected", "peer=127.0.0.2:", "via=127.0.0.1:"]).await,
        "the connection's lines name the client and the proxy:\n{}",
        logs(&nodes)
    );

    // WebSocket through nginx's HTTP proxy: the address comes from X-Forwarded-For.
    let mut ws = WsClient::connect_from(ip("127.0.0.4"), nginx.web_addr).await;
    let id4 = ws.register(&unique("four")).await;
    assert_eq!(ws.login(id4).await["errno"], 0);
    let user4 = format!("user={id4}");
    assert!(logged(&nodes, &["logged in", &user4, "addr=127.0.0.4"]).await, "{}", logs(&nodes));

    // A v2 header sent straight to a node by an allowed proxy (127.0.0.1): the address it names.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend([198, 51, 100, 7, 127, 0, 0, 1, 0x30, 0x39, 0x17, 0x70]);
    let mut raw = tokio::net::TcpStream::connect(a.server.addr).await.expect("connect");
    raw.write_all(&v2).await.expect("write");
    let mut c = WireClient::from_stream(raw);
    let id5 = c.register(&unique("five")).await;
    assert_eq!(c.login(id5, true).await["errno"], 0);
    let user5 = format!("user={id5}");
    assert!(logged(&[&a.server], &["logged in", &user5, "addr=198.51.100.7"]).await, "{}", a.server.log());

    // A forged header from an address not in proxy_from: closed, nothing answered.
    let mut forged = chat_tests::connect_from(ip("127.0.0.5"), a.server.addr).await;
    forged
        .write_all(
            b"PROXY TCP4 10.1.2.3 127.0.0.1 1234 6000\r\n{\"msgid\":4,\"name\":\"x\",\"password\":\"pw\"}\n",
        )
        .await
        .ok();
    assert_eq!(read_to_close(&mut forged).await, Some(Vec::new()), "closed without an answer");
    assert!(logged(&[&a.server], &["not in proxy_from", "127.0.0.5"]).await, "{}", a.server.log());
    // Even without a header: the node takes connections only from its balancers.
    let mut direct = chat_tests::connect_from(ip("127.0.0.6"), b.server.addr).await;
    assert_eq!(read_to_close(&mut direct).await, Some(Vec::new()));
    // A header that does not parse, from an allowed address: closed too.
    let mut garbled = tokio::net::TcpStream::connect(a.server.addr).await.expect("connect");
    garbled.write_all(b"PROXY TCP4 10.1.2.3 127.0.0.1 99999 6000\r\n").await.ok();
    assert_eq!(read_to_close(&mut garbled).await, Some(Vec::new()));
    assert!(logged(&[&a.server], &["bad PROXY header"]).await, "{}", a.server.log());
    // And a forged X-Forwarded-For from outside is refused with its connection.
    let mut ws_forged = chat_tests::connect_from(ip("127.0.0.7"), a.ws).await;
    ws_forged
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\nUpgrade: websocket\r\n\r\n")
        .await
        .ok();
    assert_eq!(read_to_close(&mut ws_forged).await, Some(Vec::new()));
}
