//! Harness for the black-box tests: start real `chat-server` processes and talk
//! to them over real TCP, as any client would.
//!
//! The binaries are the workspace's own, built before the tests run
//! (`make test` builds them); a test that needs MySQL, Redis or nginx and cannot
//! reach them fails and says what is missing.

pub mod control;
pub mod devices;
pub mod drill;
pub mod ops;
pub mod redis_cluster;
pub mod upgrade;
pub mod web;

/// Runs each named `async fn(redis_url: &str)` of the calling test file twice: on one Redis
/// and on a Redis Cluster (a module per test, with `single_redis` and `redis_cluster` in it).
/// `on_both!(multi_thread; a, b)` runs them on a two-worker runtime.
#[macro_export]
macro_rules! on_both {
    (multi_thread; $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn single_redis() {
                super::$name(&chat_tests::redis_url()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_cluster() {
                super::$name(&chat_tests::redis_cluster_url()).await
            }
        }
    )*};
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn single_redis() {
                super::$name(&chat_tests::redis_url()).await
            }

            #[tokio::test]
            async fn redis_cluster() {
                super::$name(&chat_tests::redis_cluster_url()).await
            }
        }
    )*};
}

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for an expected frame.
pub const WAIT: Duration = Duration::from_secs(10);

/// Path of one of the workspace's binaries in the same target directory as this test.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`)",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A `chat-server` process, killed on drop.
pub struct ServerProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The process.
    pub child: Child,
    /// Its scratch directory (SQLite file lives here unless a URL was given).
    pub dir: tempdir::TempDir,
}

/// Minimal scratch-directory helper (removed on drop).
pub mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    static COUNTER: AtomicU32 = AtomicU32::new(0);

    /// A directory under the system temp dir, removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        /// Creates a fresh directory.
        pub fn new(prefix: &str) -> TempDir {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("{prefix}-{}-{n}-{}", std::process::id(), super::nonce()));
            std::fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }

        /// Its path.
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A value that differs between runs (for unique names).
pub fn nonce() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (t as u64) ^ (u64::from(std::process::id()) << 40)
}

impl ServerProcess {
    /// Starts a server on a fresh SQLite database with extra arguments.
    pub fn start_sqlite(extra: &[&str]) -> ServerProcess {
        let dir = tempdir::TempDir::new("chat-test");
        let url = format!("sqlite://{}", dir.path().join("chat.db").display());
        let mut args = vec!["--database-url", &url];
        args.extend_from_slice(extra);
        Self::start_with(dir, &args, &[])
    }

    /// Starts a server with these arguments and environment variables (plus `--listen`).
    pub fn start_with(dir: tempdir::TempDir, args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        Self::launch(&bin("chat-server"), addr, dir, args, env)
    }

    /// Starts `program` (this workspace's `chat-server` or another release's) listening on
    /// `addr`, with these arguments and environment variables; returns once it listens.
    pub fn launch(
        program: &std::path::Path,
        addr: SocketAddr,
        dir: tempdir::TempDir,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut cmd = Command::new(program);
        cmd.arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .env(CHEAP_HASH[0], CHEAP_HASH[1])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        let mut server = ServerProcess { addr, child, dir };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chat-server exited early with {status}; log:\n{}", self.log());
            }
            if std::net::TcpStream::connect(self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("chat-server did not listen on {} within 30 s; log:\n{}", self.addr, self.log());
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Sends a signal (e.g. "TERM", "KILL") to the process.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{sig} failed");
    }

    /// Waits for the process to exit, up to `timeout`; returns its exit code (None on signal or timeout).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- log of chat-server on {} ---\n{}", self.addr, self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw wire client: sends frames, reads LF-delimited JSON frames.
pub struct WireClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// How much of `buf` holds no LF (so long frames are not rescanned).
    scanned: usize,
}

impl WireClient {
    /// Connects to a server.
    pub async fn connect(addr: SocketAddr) -> WireClient {
        let stream = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        WireClient { stream, buf: Vec::new(), scanned: 0 }
    }

    /// Connects to a server from `local` (e.g. 127.0.0.2: every 127.x.y.z is this host), so
    /// that the server, or the nginx in front of it, sees a client of its own address.
    pub async fn connect_from(local: std::net::IpAddr, addr: SocketAddr) -> WireClient {
        WireClient { stream: connect_from(local, addr).await, buf: Vec::new(), scanned: 0 }
    }

    /// A client over a connection made elsewhere (e.g. after a PROXY header was written on it).
    pub fn from_stream(stream: TcpStream) -> WireClient {
        WireClient { stream, buf: Vec::new(), scanned: 0 }
    }

    /// Sends raw bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Sends a JSON value followed by NUL, as the original client does.
    pub async fn send(&mut self, v: &Value) {
        let mut bytes = serde_json::to_vec(v).expect("json");
        bytes.push(0);
        self.send_raw(&bytes).await;
    }

    /// The next frame as JSON, or panics after [`WAIT`].
    pub async fn recv(&mut self) -> Value {
        match self.recv_within(WAIT).await {
            Some(v) => v,
            None => panic!("no frame within {WAIT:?}"),
        }
    }

    /// The next frame as raw text, or `None` if none arrives within `timeout` or the server closed.
    pub async fn recv_text_within(&mut self, timeout: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=self.scanned + pos).collect();
                self.scanned = 0;
                return Some(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
            }
            self.scanned = self.buf.len();
            let mut chunk = vec![0u8; 65536];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await;
            match read {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next frame as JSON, or `None` within `timeout`.
    pub async fn recv_within(&mut self, timeout: Duration) -> Option<Value> {
        let text = self.recv_text_within(timeout).await?;
        Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("server sent invalid JSON ({e}): {text}")))
    }

    /// Asserts that nothing arrives within `timeout` (and the connection stays open or closes quietly).
    pub async fn expect_silence(&mut self, timeout: Duration) {
        if let Some(text) = self.recv_text_within(timeout).await {
            panic!("expected no frame, got {text}");
        }
    }

    /// Whether the server closed the connection (reads EOF within `timeout`).
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// A TCP connection to `addr` from the local address `local` (any port).
pub async fn connect_from(local: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = match local {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .expect("socket");
    socket.bind(SocketAddr::new(local, 0)).unwrap_or_else(|e| panic!("bind {local}: {e}"));
    socket.connect(addr).await.unwrap_or_else(|e| panic!("connect {addr} from {local}: {e}"))
}

/// A name unique to this run and call, at most 50 characters.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut s = format!("{prefix}_{:x}_{n}", nonce() & 0xffff_ffff_ffff);
    s.truncate(50);
    s
}

/// The MySQL URL the tests use (`CHAT_TEST_MYSQL_URL`, set up by `deploy/db-setup.sh`).
pub fn mysql_url() -> String {
    std::env::var("CHAT_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://chat_test:chat_test@127.0.0.1:3306/chat_test".to_owned())
}

/// The Redis URL the tests use (`CHAT_TEST_REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("CHAT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Cheap password hashing for test servers (the default cost is for production).
pub const CHEAP_HASH: [&str; 2] = ["CHAT_HASH_MEMORY_KIB", "256"];

impl WireClient {
    /// Registers `name` with password `pw` (extension on) and returns the new id.
    pub async fn register(&mut self, name: &str) -> i64 {
        self.send(&serde_json::json!({"msgid":4,"name":name,"password":"pw","ext":1})).await;
        let ack = self.recv().await;
        assert_eq!(ack["errno"], 0, "register {name}: {ack}");
        ack["id"].as_i64().expect("id")
    }

    /// Logs in with password `pw`; `ext` opts in to the extension. Returns the ack.
    pub async fn login(&mut self, id: i64, ext: bool) -> Value {
        let mut req = serde_json::json!({"msgid":1,"id":id,"password":"pw"});
        if ext {
            req["ext"] = serde_json::json!(1);
        }
        self.send(&req).await;
        self.recv().await
    }
}

/// The MySQL/MariaDB command-line client (`mariadb` or `mysql`), or a failure that says how
/// to install it: the tests make their scratch databases through it as root.
pub fn mysql_client() -> &'static str {
    for candidate in ["mariadb", "mysql"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {candidate}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if found {
            return candidate;
        }
    }
    panic!("no MySQL/MariaDB client (mariadb or mysql): install one and run deploy/db-setup.sh");
}

/// The nginx binary, or a failure that says how to install it.
pub fn nginx_bin() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/nginx/sbin"] {
        let path = PathBuf::from(dir).join("nginx");
        if path.exists() {
            return path;
        }
    }
    panic!(
        "nginx is not installed: run deploy/nginx-setup.sh (make test does) or apt-get install -y nginx libnginx-mod-stream"
    );
}

/// An nginx stream load balancer run from `deploy/nginx.conf` with test ports, killed on drop.
pub struct Nginx {
    /// Where it listens (the TCP stream balancer).
    pub addr: SocketAddr,
    /// Where its HTTP server proxies the web client and WebSocket to the nodes' `ws_listen`.
    pub web_addr: SocketAddr,
    child: Child,
    dir: tempdir::TempDir,
}

impl Nginx {
    /// Starts nginx in front of exactly two upstream nodes (its web side points at free ports).
    pub fn start(upstreams: [SocketAddr; 2]) -> Nginx {
        let nowhere = || -> SocketAddr { format!("127.0.0.1:{}", free_port()).parse().expect("addr") };
        Nginx::start_web(upstreams, [nowhere(), nowhere()])
    }

    /// As [`Nginx::start`], without the PROXY protocol when `proxy_protocol` is false (nodes
    /// of a release that does not speak it).
    pub fn start_with(upstreams: [SocketAddr; 2], proxy_protocol: bool) -> Nginx {
        let nowhere = || -> SocketAddr { format!("127.0.0.1:{}", free_port()).parse().expect("addr") };
        Nginx::launch(upstreams, [nowhere(), nowhere()], proxy_protocol)
    }

    /// Starts nginx in front of two nodes: `upstreams` for TCP, `web` their WebSocket listeners.
    pub fn start_web(upstreams: [SocketAddr; 2], web: [SocketAddr; 2]) -> Nginx {
        Nginx::launch(upstreams, web, true)
    }

    fn launch(upstreams: [SocketAddr; 2], web: [SocketAddr; 2], proxy_protocol: bool) -> Nginx {
        let bin = nginx_bin();
        let template_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx.conf");
        let template = std::fs::read_to_string(&template_path).expect("read deploy/nginx.conf");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let web_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        for needle in [
            "127.0.0.1:6000",
            "127.0.0.1:6002",
            "127.0.0.1:8000",
            "127.0.0.1:6080",
            "127.0.0.1:6082",
            "127.0.0.1:8080",
        ] {
            assert!(template.contains(needle), "deploy/nginx.conf no longer names {needle}");
        }
        let conf = template
            .replace("127.0.0.1:6000", &upstreams[0].to_string())
            .replace("127.0.0.1:6002", &upstreams[1].to_string())
            .replace("127.0.0.1:8000", &addr.to_string())
            .replace("127.0.0.1:6080", &web[0].to_string())
            .replace("127.0.0.1:6082", &web[1].to_string())
            .replace("127.0.0.1:8080", &web_addr.to_string());
        let conf = if proxy_protocol {
            conf
        } else {
            assert!(
                conf.contains("proxy_protocol on;"),
                "deploy/nginx.conf no longer sends the PROXY protocol"
            );
            conf.lines().filter(|l| l.trim() != "proxy_protocol on;").collect::<Vec<_>>().join("\n")
        };
        let dir = tempdir::TempDir::new("chat-nginx");
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut nginx = Nginx { addr, web_addr, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() || std::net::TcpStream::connect(web_addr).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited with {status}: {}", nginx.error_log());
            }
            assert!(Instant::now() < deadline, "nginx does not listen on {addr}: {}", nginx.error_log());
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    /// Reloads the configuration (SIGHUP), as an operator or deploy/readyz-watch.sh does when
    /// a node is back: new workers start with no memory of failed upstreams (a node refused
    /// `max_fails` times is otherwise skipped for `fail_timeout`), old ones finish their
    /// connections. Returns after a pause that lets the new workers start.
    pub fn reload(&self) {
        let status = Command::new("kill").arg("-HUP").arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -HUP nginx failed");
        std::thread::sleep(Duration::from_millis(500));
    }

    /// nginx's error log.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: a killed master leaves its worker running, still holding
        // the listening socket. The master stops its worker on SIGTERM and then exits.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Redis Cluster the tests share (`CHAT_TEST_REDIS_CLUSTER_URL`; `make test-services`
/// starts it with deploy/redis-cluster.sh on 127.0.0.1:7400-7405).
pub fn redis_cluster_url() -> String {
    std::env::var("CHAT_TEST_REDIS_CLUSTER_URL").unwrap_or_else(|_| {
        "redis-cluster://127.0.0.1:7400?node=127.0.0.1:7401&node=127.0.0.1:7402".to_owned()
    })
}

/// A private `redis-server` on its own port (for tests that restart Redis), killed on drop.
pub struct RedisServer {
    /// Its port.
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port.
    pub fn start() -> RedisServer {
        let mut server = RedisServer { port: free_port(), child: None };
        server.restart();
        server
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it (SIGKILL: everything in memory is gone, as in a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}): install it with apt-get install -y redis-server")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server does not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a cluster node on the MySQL test database and the given Redis, with a
/// channel prefix shared by the nodes of one test and a short lease. It expects the PROXY
/// protocol from 127.0.0.1 (the tests' nginx sends it; the tests' own direct connections
/// from 127.0.0.1 send none and are served as they are).
pub fn cluster_node(name: &str, redis: &str, prefix: &str, lease_secs: u64) -> ServerProcess {
    cluster_node_with(name, redis, prefix, lease_secs, &[])
}

/// As [`cluster_node`], with more environment variables.
pub fn cluster_node_with(
    name: &str,
    redis: &str,
    prefix: &str,
    lease_secs: u64,
    env: &[(&str, &str)],
) -> ServerProcess {
    let mysql = mysql_url();
    let lease = lease_secs.to_string();
    let mut all =
        vec![("CHAT_CHANNEL_PREFIX", prefix), ("CHAT_LEASE_SECS", &lease), ("CHAT_PROXY_PROTOCOL", "true")];
    all.extend_from_slice(env);
    ServerProcess::start_with(
        tempdir::TempDir::new(&format!("chat-{name}")),
        &["--database-url", &mysql, "--redis-url", redis, "--node-name", name],
        &all,
    )
}

/// A TCP proxy to a service (e.g. MySQL) that a test can cut and restore, to
/// simulate the service going down without touching the real one.
pub struct TcpProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding 127.0.0.1:<free port> to `target`.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (tx, _) = tokio::sync::watch::channel(0u64);
        let generation = std::sync::Arc::new(tx);
        let (up2, gen2) = (up.clone(), generation.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = gen2.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    // Without it, Nagle and delayed ACKs add ~40 ms to each database round trip.
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut cr, &mut sw) => {}
                        _ = tokio::io::copy(&mut sr, &mut cw) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        TcpProxy { addr, up, generation, task }
    }

    /// Cuts every connection and refuses new ones (`false`), or lets them through again.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
        if !up {
            self.generation.send_modify(|g| *g += 1);
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WireClient {
    /// After an extension LOGIN or RESUME ack: the replayed messages that follow it, as many
    /// as its `unread` counts say (messages from others after the cursor), in order.
    pub async fn replay(&mut self, ack: &Value) -> Vec<Value> {
        let count: u64 =
            ack["unread"].as_array().map_or(0, |list| list.iter().filter_map(|u| u["count"].as_u64()).sum());
        let mut got = Vec::new();
        for _ in 0..count {
            got.push(self.recv().await);
        }
        got
    }

    /// The `msg` texts of [`WireClient::replay`].
    pub async fn replayed_texts(&mut self, ack: &Value) -> Vec<String> {
        self.replay(ack).await.iter().filter_map(|m| m["msg"].as_str().map(String::from)).collect()
    }
}
