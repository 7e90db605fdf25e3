//! TLS on the client port: a certificate made at run time, the whole chat flow over TLS
//! (wire clients and the real console with `--tls --ca-file`), and a plaintext client on the
//! TLS port told so in one line and closed, not left hanging.

#[path = "console_support.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chat_tests::ops::{http_get, metric, wait_status};
use chat_tests::{ServerProcess, WAIT, WireClient, free_port, unique};
use serde_json::{Value, json};
use support::ConsoleProcess;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

/// A self-signed certificate for localhost and 127.0.0.1, written to `dir`.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("generate a certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key");
    (cert, key)
}

/// A wire client over TLS.
struct TlsClient {
    read: BufReader<ReadHalf<chat_tls::ClientStream>>,
    write: WriteHalf<chat_tls::ClientStream>,
}

impl TlsClient {
    async fn connect(addr: SocketAddr, ca: &Path) -> TlsClient {
        let config = chat_tls::client_config(Some(ca)).expect("client config");
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let tls = chat_tls::connect(Arc::clone(&config), "127.0.0.1", tcp).await.expect("TLS handshake");
        let (read, write) = tokio::io::split(tls);
        TlsClient { read: BufReader::new(read), write }
    }

    async fn send(&mut self, v: &Value) {
        let mut bytes = serde_json::to_vec(v).expect("json");
        bytes.push(0);
        self.write.write_all(&bytes).await.expect("write");
    }

    async fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = tokio::time::timeout(WAIT, self.read.read_line(&mut line)).await.expect("a frame in time");
        assert!(n.expect("read") > 0, "server closed the TLS connection");
        serde_json::from_str(line.trim_end()).expect("JSON frame")
    }

    async fn register_and_login(&mut self, name: &str) -> i64 {
        self.send(&json!({"msgid":4,"name":name,"password":"pw","ext":1})).await;
        let ack = self.recv().await;
        assert_eq!(ack["errno"], 0, "{ack}");
        let id = ack["id"].as_i64().expect("id");
        self.send(&json!({"msgid":1,"id":id,"password":"pw","ext":1})).await;
        assert_eq!(self.recv().await["errno"], 0);
        id
    }
}

fn tls_server(dir: &chat_tests::tempdir::TempDir, admin: Option<SocketAddr>) -> ServerProcess {
    let (cert, key) = self_signed(dir.path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut args = vec!["--tls-cert".to_owned(), cert, "--tls-key".to_owned(), key];
    if let Some(admin) = admin {
        args.extend(["--admin-listen".to_owned(), admin.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::start_sqlite(&args)
}

#[tokio::test]
async fn the_chat_flow_runs_over_tls() {
    let certs = chat_tests::tempdir::TempDir::new("chat-tls-certs");
    let server = tls_server(&certs, None);
    let ca = certs.path().join("cert.pem");
    let mut a = TlsClient::connect(server.addr, &ca).await;
    let mut b = TlsClient::connect(server.addr, &ca).await;
    let ida = a.register_and_login(&unique("ta")).await;
    let idb = b.register_and_login(&unique("tb")).await;
    a.send(&json!({"msgid":6,"to":idb,"msg":"over TLS","cid":"t1"})).await;
    let ack = a.recv().await;
    assert_eq!((ack["errno"].as_i64(), ack["cid"].as_str()), (Some(0), Some("t1")), "{ack}");
    let push = b.recv().await;
    assert_eq!((push["msg"].as_str(), push["id"].as_i64()), (Some("over TLS"), Some(ida)), "{push}");
}

#[tokio::test]
async fn a_plaintext_client_on_the_tls_port_is_told_and_closed() {
    let certs = chat_tests::tempdir::TempDir::new("chat-tls-certs");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let server = tls_server(&certs, Some(admin));
    let mut plain = WireClient::connect(server.addr).await;
    plain.send(&json!({"msgid":1,"id":1,"password":"pw"})).await;
    let line = plain.recv_text_within(Duration::from_secs(3)).await.expect("a refusal, not silence");
    let refusal: Value = serde_json::from_str(&line).expect("the refusal is a JSON frame");
    assert!(refusal["errmsg"].as_str().is_some_and(|t| t.contains("TLS")), "{refusal}");
    assert!(plain.closed_within(Duration::from_secs(3)).await, "the plaintext connection stays open");
    wait_status(admin, "/healthz", 200, Duration::from_secs(10)).await;
    let (_, page) = http_get(admin, "/metrics").await.expect("GET /metrics");
    assert!(metric(&page, "chat_tls_handshake_failures_total") >= 1.0, "{page}");
}

#[test]
fn the_console_talks_tls_with_a_private_ca() {
    let certs = chat_tests::tempdir::TempDir::new("chat-tls-certs");
    let server = tls_server(&certs, None);
    let ca = certs.path().join("cert.pem").display().to_string();
    let addr = server.addr.to_string();
    let console = || ConsoleProcess::start_args(&["console", &addr, "--tls", "--ca-file", &ca]);
    let mut alice = console();
    alice.lines(&["2", "alice", "pw-a"]);
    alice.expect_out("register success, userid is ");
    let alice_id =
        alice.expect_out(" , do not forget it!").trim_end_matches(" , do not forget it!").to_owned();
    alice.lines(&["2", "bob", "pw-b"]);
    alice.expect_out("register success, userid is ");
    let bob_id = alice.expect_out(" , do not forget it!").trim_end_matches(" , do not forget it!").to_owned();
    alice.lines(&["1", &alice_id, "pw-a"]);
    alice.expect_out("show command list >>>");
    let mut bob = console();
    bob.lines(&["1", &bob_id, "pw-b"]);
    bob.expect_out("show command list >>>");
    alice.line(&format!("chat:{bob_id}:hello over tls"));
    alice.expect_out(&format!("sent to user {bob_id}"));
    bob.expect_out("hello over tls");

    // Without --ca-file the self-signed certificate is not trusted: a clear error, exit 1.
    let mut stranger = ConsoleProcess::start_args(&["console", &addr, "--tls"]);
    let status = stranger.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{}", stranger.transcript());
    assert!(stranger.stderr().contains("TLS"), "{}", stranger.transcript());
}
