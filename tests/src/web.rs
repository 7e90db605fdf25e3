//! Harness for the WebSocket endpoint and the web client: nodes with a WebSocket listener, a
//! small WebSocket client, and the runner of the browser scenarios (`tests/web/*.mjs`, Node.js
//! driving Debian's headless Chromium through playwright-core).
//!
//! A missing Chromium, Node.js or `tests/web/node_modules` fails the test and says how to
//! install it (`deploy/browser-setup.sh`, which `make test` runs).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::{Nginx, ServerProcess, WAIT, free_port, mysql_url, redis_url, tempdir::TempDir, unique};

/// A node with a WebSocket listener, and that listener's address.
pub struct WsNode {
    /// The node.
    pub server: ServerProcess,
    /// Its `--ws-listen` address.
    pub ws: SocketAddr,
}

/// A free address on 127.0.0.1.
pub fn free_addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().expect("addr")
}

impl WsNode {
    /// A single node on SQLite with a WebSocket listener, extra arguments and environment.
    pub fn sqlite(args: &[&str], env: &[(&str, &str)]) -> WsNode {
        let dir = TempDir::new("chat-ws");
        let url = format!("sqlite://{}", dir.path().join("chat.db").display());
        let ws = free_addr();
        let ws_text = ws.to_string();
        let mut all = vec!["--database-url", &url, "--ws-listen", &ws_text];
        all.extend_from_slice(args);
        let server = ServerProcess::start_with(dir, &all, env);
        WsNode { server, ws }
    }

    /// A cluster node on the MySQL test database and Redis (channel `prefix`, short lease).
    pub fn cluster(name: &str, prefix: &str, lease_secs: u64) -> WsNode {
        let (mysql, redis, ws) = (mysql_url(), redis_url(), free_addr());
        let (ws_text, lease) = (ws.to_string(), lease_secs.to_string());
        let server = ServerProcess::start_with(
            TempDir::new(&format!("chat-web-{name}")),
            &["--database-url", &mysql, "--redis-url", &redis, "--node-name", name, "--ws-listen", &ws_text],
            &[
                ("CHAT_CHANNEL_PREFIX", prefix),
                ("CHAT_LEASE_SECS", &lease),
                ("CHAT_CURSOR_FLUSH_SECS", "0.2"),
                // nginx (deploy/nginx.conf) sends X-Forwarded-For to the WebSocket listener.
                ("CHAT_PROXY_PROTOCOL", "true"),
            ],
        );
        WsNode { server, ws }
    }

    /// Whether `user` logged in (or resumed) on this node, by its log.
    pub fn has_logged_in(&self, user: i64) -> bool {
        let needle = format!("user={user}");
        self.server.log().lines().any(|l| l.contains("logged in") && l.contains(&needle))
    }
}

/// Two cluster nodes with WebSocket listeners behind nginx (TCP on `nginx.addr`, the web on
/// `nginx.web_addr`).
pub struct WebCluster {
    /// Node a and node b.
    pub nodes: [WsNode; 2],
    /// nginx in front of both.
    pub nginx: Nginx,
}

impl WebCluster {
    /// Starts both nodes (shared MySQL and Redis, a channel prefix of this test's own) and nginx.
    pub fn start(lease_secs: u64) -> WebCluster {
        let prefix = format!("{}:", unique("web"));
        let a = WsNode::cluster("web-a", &prefix, lease_secs);
        let b = WsNode::cluster("web-b", &prefix, lease_secs);
        let nginx = Nginx::start_web([a.server.addr, b.server.addr], [a.ws, b.ws]);
        WebCluster { nodes: [a, b], nginx }
    }

    /// The page's URL through nginx.
    pub fn url(&self) -> String {
        format!("http://{}/", self.nginx.web_addr)
    }

    /// The page's URL served by one node directly.
    pub fn node_url(&self, i: usize) -> String {
        format!("http://{}/", self.nodes[i].ws)
    }

    /// The node `user` last logged in (or resumed) on, by the timestamps of the nodes' log
    /// lines (waiting up to 5 s for a line).
    pub fn node_of(&self, user: i64) -> Option<usize> {
        let needle = format!("user={user}");
        let last_login = |i: usize| {
            let log = self.nodes[i].server.log();
            log.lines()
                .filter(|l| l.contains("logged in") && l.split_whitespace().any(|w| w == needle))
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .max()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (a, b) = (last_login(0), last_login(1));
            if a.is_some() || b.is_some() {
                return Some(if b > a { 1 } else { 0 });
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Answers the scenario's `ASK node <user id>` (which node that user logged in on, for a
    /// scenario that wants its users on different nodes through nginx) until it asks nothing
    /// more; any other question fails the test.
    pub fn answer_node_questions(&self, scenario: &mut Scenario, timeout: Duration) {
        while let Some(question) = scenario.next_question(timeout) {
            let user: i64 = question
                .strip_prefix("node ")
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("unexpected question from the scenario: {question}"));
            let node = self.node_of(user).unwrap_or_else(|| panic!("no node logged user {user} in"));
            scenario.answer(&node.to_string());
        }
    }
}

/// A WebSocket client: one JSON frame per text message.
pub struct WsClient {
    ws: WebSocketStream<TcpStream>,
}

impl WsClient {
    /// Connects to `ws://addr/ws` with an optional `Origin`; the handshake's error if refused.
    pub async fn try_connect(
        addr: SocketAddr,
        origin: Option<&str>,
    ) -> Result<WsClient, tokio_tungstenite::tungstenite::Error> {
        let mut request = format!("ws://{addr}/ws").into_client_request()?;
        if let Some(origin) = origin {
            request.headers_mut().insert("Origin", HeaderValue::from_str(origin).expect("origin header"));
        }
        let stream = TcpStream::connect(addr).await?;
        let (ws, _) = tokio_tungstenite::client_async(request, stream).await?;
        Ok(WsClient { ws })
    }

    /// Connects to `ws://addr/ws` from the local address `local` (e.g. 127.0.0.2), or panics.
    pub async fn connect_from(local: std::net::IpAddr, addr: SocketAddr) -> WsClient {
        let stream = crate::connect_from(local, addr).await;
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
            .await
            .unwrap_or_else(|e| panic!("WebSocket to {addr} from {local}: {e}"));
        WsClient { ws }
    }

    /// Connects without an `Origin` (not a browser), or panics.
    pub async fn connect(addr: SocketAddr) -> WsClient {
        WsClient::try_connect(addr, None).await.unwrap_or_else(|e| panic!("WebSocket to {addr}: {e}"))
    }

    /// Sends one text message.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws.send(Message::Text(text.into().into())).await.expect("send a text message");
    }

    /// Sends one JSON request.
    pub async fn send(&mut self, v: &Value) {
        self.send_text(v.to_string()).await;
    }

    /// Sends one binary message.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.expect("send a binary message");
    }

    /// The next message that is not a ping or pong, within `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(m))) => return Some(m),
                Ok(Some(Err(_)) | None) | Err(_) => return None,
            }
        }
    }

    /// The next JSON frame, or panics after [`WAIT`].
    pub async fn recv(&mut self) -> Value {
        match self.next_within(WAIT).await {
            Some(Message::Text(t)) => {
                serde_json::from_str(&t).unwrap_or_else(|e| panic!("server sent invalid JSON ({e}): {t}"))
            }
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Sends a close frame and waits for the server's (the end of a clean close).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
    }

    /// Registers `name` with password `pw` (extension) and returns the id.
    pub async fn register(&mut self, name: &str) -> i64 {
        self.send(&serde_json::json!({"msgid":4,"name":name,"password":"pw","ext":1})).await;
        let ack = self.recv().await;
        assert_eq!(ack["errno"], 0, "register {name}: {ack}");
        ack["id"].as_i64().expect("id")
    }

    /// Logs in with password `pw` (extension); returns the ack.
    pub async fn login(&mut self, id: i64) -> Value {
        self.send(&serde_json::json!({"msgid":1,"id":id,"password":"pw","ext":1})).await;
        self.recv().await
    }
}

/// Debian's Chromium, where the browser tests expect it.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// `tests/web`: the scenarios, their package.json and lock, and (after `npm ci`) node_modules.
pub fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// Where the scenarios save their screenshots: `target/web-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/web-screenshots");
    std::fs::create_dir_all(&dir).expect("create target/web-screenshots");
    dir
}

/// Fails, saying what to install, unless Chromium, Node.js and playwright-core are there.
pub fn require_browser() {
    let fix = "run deploy/browser-setup.sh (make test does)";
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: {fix}, or apt-get install -y chromium"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node (Node.js) is missing: {fix}, or apt-get install -y nodejs npm"
    );
    assert!(
        web_dir().join("node_modules/playwright-core").exists(),
        "tests/web/node_modules/playwright-core is missing: {fix}, or `npm ci` in tests/web"
    );
}

/// A browser scenario running: `node tests/web/<name>.mjs` with `env`. It prints one line per
/// step (`STEP …`), may ask the test for something (`ASK …`, answered on its stdin) and ends
/// with `PASS` and exit status 0.
pub struct Scenario {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Everything it printed so far.
    pub transcript: Vec<String>,
}

impl Scenario {
    /// Starts the scenario (after checking what it needs).
    pub fn start(name: &str, env: &[(&str, String)]) -> Scenario {
        require_browser();
        let script = web_dir().join(format!("{name}.mjs"));
        let mut cmd = Command::new("node");
        cmd.arg(&script)
            .current_dir(web_dir())
            .env("CHROMIUM", CHROMIUM)
            .env("SCREENSHOTS", screenshot_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run node {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Scenario { child, stdin, lines, transcript: Vec::new() }
    }

    /// The next line it prints that starts with `ASK `, without that prefix; or `None` when it
    /// ended first (or `timeout` passed).
    pub fn next_question(&mut self, timeout: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            eprintln!("[browser] {line}");
            self.transcript.push(line.clone());
            if let Some(q) = line.strip_prefix("ASK ") {
                return Some(q.to_owned());
            }
        }
    }

    /// Answers its question.
    pub fn answer(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{text}").expect("answer the scenario");
        stdin.flush().expect("flush");
    }

    /// Waits for the end (at most `timeout`) and asserts it passed: exit status 0 and a last
    /// line `PASS`.
    pub fn assert_passes(mut self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        drop(self.stdin.take());
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.drain();
                panic!(
                    "the browser scenario did not end within {timeout:?}:\n{}",
                    self.transcript.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The reader thread delivers what is left once the pipe closes.
        std::thread::sleep(Duration::from_millis(100));
        self.drain();
        assert!(
            status.success() && self.transcript.last().is_some_and(|l| l == "PASS"),
            "the browser scenario failed ({status}):\n{}",
            self.transcript.join("\n")
        );
    }

    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            eprintln!("[browser] {line}");
            self.transcript.push(line);
        }
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
