//! The console client through faults, against a real `chat-server` (SQLite):
//! a sender keeps a steady stream of numbered chats going to a user logged in
//! with `chat-client console` (piped, so in its plain mode), and halfway
//! through the console's connection is cut (a TCP proxy drops it and refuses
//! new ones for a second), or the server is SIGKILLed and started again on
//! the same port and database file. The console gets its connection back by
//! itself and resumes; at the end its printed output must hold every chat
//! exactly once, in the order sent: lost 0, duplicates 0.
//!
//! The third test turns it round: the console sends, its connection is cut
//! while lines keep coming from the script, and the recipient must get every
//! chat once (a chat whose ACK was lost is sent again with the same `cid`).

#[path = "console_support.rs"]
mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chat_tests::{CHEAP_HASH, ServerProcess, TcpProxy, WireClient, bin, free_port, tempdir, unique};
use serde_json::{Value, json};
use support::{ConsoleProcess, EXIT_WAIT};

/// Chats in each stream.
const N: usize = 300;
/// The pause between two chats of the stream (after each one's ACK).
const GAP: Duration = Duration::from_millis(10);
/// How long the fault lasts.
const OUTAGE: Duration = Duration::from_secs(1);
/// How long the whole stream may take to show up at the far end.
const DEADLINE: Duration = Duration::from_secs(60);

/// The text of chat number `n`: `n=0007/300`.
fn text(n: usize) -> String {
    format!("n={n:04}/{N}")
}

/// A runtime for the proxy and the sender, which run while the test thread
/// drives the console process.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Registers a user (password `pw`) and returns the id.
async fn register(addr: SocketAddr, prefix: &str) -> i64 {
    let mut client = WireClient::connect(addr).await;
    client.register(&unique(prefix)).await
}

/// A raw extension client that gets its connection back by itself: the
/// sender of the stream (or its recipient in the third test).
struct Peer {
    addr: SocketAddr,
    id: i64,
    client: Option<WireClient>,
    /// Frames that are not the answer awaited (pushes to the recipient).
    pushes: Vec<Value>,
    /// Times the connection had to be made again.
    reconnects: usize,
}

impl Peer {
    fn new(addr: SocketAddr, id: i64) -> Peer {
        Peer { addr, id, client: None, pushes: Vec::new(), reconnects: 0 }
    }

    /// Makes sure of a logged-in connection, made again (with retries, for up to [`DEADLINE`]) if needed.
    async fn connect(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        while self.client.is_none() {
            assert!(Instant::now() < deadline, "user {} cannot log in again at {}", self.id, self.addr);
            // Probe first: WireClient::connect panics on a refused connection.
            if tokio::net::TcpStream::connect(self.addr).await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let mut client = WireClient::connect(self.addr).await;
            client.send(&json!({"msgid": 1, "id": self.id, "password": "pw", "ext": 1})).await;
            match client.recv_within(Duration::from_secs(5)).await {
                Some(ack) if ack["msgid"] == 2 && ack["errno"] == 0 => self.client = Some(client),
                // errno 2 while the server still holds the old session: try again.
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Sends `frame` and waits for the ACK echoing `cid`; on a lost connection
    /// or no answer, connects again and sends the same frame (same `cid`) again.
    async fn send_acknowledged(&mut self, frame: &Value, cid: &str) {
        loop {
            self.connect().await;
            let client = self.client.as_mut().expect("connected");
            client.send(frame).await;
            loop {
                let Some(reply) = client.recv_within(Duration::from_secs(5)).await else { break };
                if reply["msgid"] == 11 && reply["cid"] == json!(cid) {
                    assert_eq!(reply["errno"], 0, "chat refused: {reply}");
                    return;
                }
                if reply["msgid"] == 12 {
                    client.send(&json!({"msgid": 13})).await;
                } else {
                    self.pushes.push(reply);
                }
            }
            self.client = None;
            self.reconnects += 1;
        }
    }
}

/// Sends the stream from `from` to `to`, counting acknowledged chats in `acked`.
async fn stream(addr: SocketAddr, from: i64, to: i64, acked: Arc<AtomicUsize>) -> usize {
    let mut sender = Peer::new(addr, from);
    for n in 1..=N {
        let cid = format!("stream-{n}");
        let frame = json!({"msgid": 6, "to": to, "msg": text(n), "cid": cid});
        sender.send_acknowledged(&frame, &cid).await;
        acked.store(n, Ordering::SeqCst);
        tokio::time::sleep(GAP).await;
    }
    sender.reconnects
}

/// Waits until `acked` reaches `n`.
fn wait_acked(acked: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + DEADLINE;
    while acked.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "the sender got only {} ACKs", acked.load(Ordering::SeqCst));
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The numbers of the chats in `out`, in the order printed (lines `... said: n=0007/300`).
fn numbers_shown(out: &str) -> Vec<usize> {
    out.lines()
        .filter_map(|line| line.split_once(" said: n=").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split('/').next().and_then(|n| n.parse().ok()))
        .collect()
}

/// What arrived of the stream.
#[derive(Debug)]
struct Tally {
    lost: usize,
    duplicates: usize,
    out_of_order: usize,
}

fn tally(shown: &[usize]) -> Tally {
    let mut seen = vec![0usize; N + 1];
    for &n in shown {
        if let Some(count) = seen.get_mut(n) {
            *count += 1;
        }
    }
    let lost = (1..=N).filter(|&n| seen[n] == 0).count();
    let duplicates = seen.iter().map(|&c| c.saturating_sub(1)).sum();
    let out_of_order = shown.windows(2).filter(|w| w[1] <= w[0]).count();
    Tally { lost, duplicates, out_of_order }
}

/// Logs `user` in on a console connected to `addr`.
fn console_logged_in(addr: SocketAddr, user: i64) -> ConsoleProcess {
    let mut console = ConsoleProcess::start(addr);
    console.lines(&["1", &user.to_string(), "pw"]);
    console.expect_out(&format!("current login user => id:{user}"));
    console.expect_out("show command list >>>");
    console
}

/// Waits until the console has printed the last chat of the stream, then ends
/// its input and returns what it printed, after it exited 0.
fn finish(console: &mut ConsoleProcess) -> String {
    let deadline = Instant::now() + DEADLINE;
    while !numbers_shown(&console.stdout()).contains(&N) {
        assert!(Instant::now() < deadline, "the console never showed chat {N}\n{}", console.transcript());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Anything still on its way (a repeat would be) has time to be printed.
    std::thread::sleep(Duration::from_millis(500));
    console.close_stdin();
    let status = console.wait_exit(EXIT_WAIT);
    assert!(status.success(), "{status:?}\n{}", console.transcript());
    console.stdout()
}

/// Checks and reports the console's output of a stream.
fn assert_every_chat_once_in_order(fault: &str, console: &ConsoleProcess, out: &str) {
    let shown = numbers_shown(out);
    let t = tally(&shown);
    println!(
        "{fault}: sent {N}, printed {} lines of the stream: lost {}, duplicates {}, out of order {}",
        shown.len(),
        t.lost,
        t.duplicates,
        t.out_of_order
    );
    assert!(
        t.lost == 0 && t.duplicates == 0 && t.out_of_order == 0,
        "{fault}: {t:?}\n{}",
        console.transcript()
    );
    let err = console.stderr();
    println!("{fault}: what the console said on stderr:\n{}", err.trim_end());
    assert!(err.contains("; reconnecting"), "{fault}: the console did not say it lost the connection\n{err}");
    assert!(
        err.contains("connected to the server again (session resumed)"),
        "{fault}: the console did not say it resumed\n{err}"
    );
}

#[test]
fn a_cut_connection_under_a_receiving_console_loses_nothing_and_repeats_nothing() {
    let rt = runtime();
    let server = ServerProcess::start_sqlite(&[]);
    let proxy = rt.block_on(TcpProxy::start(server.addr));
    let alice = rt.block_on(register(server.addr, "alice"));
    let bob = rt.block_on(register(server.addr, "bob"));
    let mut console = console_logged_in(proxy.addr, bob);

    let acked = Arc::new(AtomicUsize::new(0));
    let sender = rt.spawn(stream(server.addr, alice, bob, Arc::clone(&acked)));
    wait_acked(&acked, N / 3);
    proxy.set_up(false);
    let cut_at = acked.load(Ordering::SeqCst);
    std::thread::sleep(OUTAGE);
    let back_at = acked.load(Ordering::SeqCst);
    proxy.set_up(true);
    let up = Instant::now();
    assert!(back_at > cut_at, "chats were stored while the console was away ({cut_at} -> {back_at})");
    console.expect_err("connected to the server again");
    let resumed_after = up.elapsed();
    rt.block_on(sender).expect("sender");

    let out = finish(&mut console);
    println!(
        "proxy cut after chat {cut_at}, back after chat {back_at}; resumed {resumed_after:?} after the proxy was up"
    );
    assert_every_chat_once_in_order("connection cut", &console, &out);
}

/// Starts `chat-server` on `addr` with the SQLite database `db`, logging into `logs`.
fn server_on(addr: SocketAddr, db: &std::path::Path, logs: tempdir::TempDir) -> ServerProcess {
    let log = std::fs::File::create(logs.path().join("server.log")).expect("log file");
    let child = Command::new(bin("chat-server"))
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .current_dir(logs.path())
        .env("RUST_LOG", "info")
        .env(CHEAP_HASH[0], CHEAP_HASH[1])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn chat-server");
    let mut server = ServerProcess { addr, child, dir: logs };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("chat-server exited early with {status}; log:\n{}", server.log());
        }
        assert!(Instant::now() < deadline, "chat-server does not listen on {addr}; log:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

#[test]
fn a_server_killed_and_restarted_under_a_receiving_console_loses_nothing_and_repeats_nothing() {
    let rt = runtime();
    let data = tempdir::TempDir::new("chat-resume-db");
    let db = data.path().join("chat.db");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let mut first = server_on(addr, &db, tempdir::TempDir::new("chat-resume-first"));
    let alice = rt.block_on(register(addr, "alice"));
    let bob = rt.block_on(register(addr, "bob"));
    let mut console = console_logged_in(addr, bob);

    let acked = Arc::new(AtomicUsize::new(0));
    let sender = rt.spawn(stream(addr, alice, bob, Arc::clone(&acked)));
    wait_acked(&acked, N / 3);
    first.signal("KILL");
    let killed_at = acked.load(Ordering::SeqCst);
    assert!(first.wait_exit(Duration::from_secs(10)).is_some(), "the server did not die");
    std::thread::sleep(OUTAGE);
    let second = server_on(addr, &db, tempdir::TempDir::new("chat-resume-second"));
    let up = Instant::now();
    console.expect_err("connected to the server again");
    let resumed_after = up.elapsed();
    let sender_reconnects = rt.block_on(sender).expect("sender");

    let out = finish(&mut console);
    println!(
        "server killed after chat {killed_at}; the sender connected again {sender_reconnects} time(s); \
         the console resumed {resumed_after:?} after the new server listened"
    );
    assert_every_chat_once_in_order("server killed and restarted", &console, &out);
    drop(second);
}

#[test]
fn a_cut_connection_under_a_sending_console_stores_and_delivers_each_chat_once() {
    let rt = runtime();
    let server = ServerProcess::start_sqlite(&[]);
    let proxy = rt.block_on(TcpProxy::start(server.addr));
    let alice = rt.block_on(register(server.addr, "alice"));
    let bob = rt.block_on(register(server.addr, "bob"));
    let mut console = console_logged_in(proxy.addr, bob);

    // The recipient, connected directly for the whole test.
    let mut recipient = Peer::new(server.addr, alice);
    rt.block_on(recipient.connect());
    // The whole script at once: the console reads a line only after the previous
    // chat's ACK, so most of it is still unread when the connection goes.
    let script: Vec<String> = (1..=N).map(|n| format!("chat:{alice}:{}", text(n))).collect();
    let script: Vec<&str> = script.iter().map(String::as_str).collect();
    console.lines(&script);
    let sent =
        |console: &ConsoleProcess| console.stdout().matches(&format!("sent to user {alice}\n")).count();
    let deadline = Instant::now() + DEADLINE;
    while sent(&console) < N / 3 {
        assert!(
            Instant::now() < deadline,
            "the console sent only {}\n{}",
            sent(&console),
            console.transcript()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    proxy.set_up(false);
    std::thread::sleep(OUTAGE);
    proxy.set_up(true);
    while sent(&console) < N {
        assert!(
            Instant::now() < deadline,
            "the console sent only {}\n{}",
            sent(&console),
            console.transcript()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Every push the recipient got, raw: the server must not have stored any chat twice.
    let pushes: Vec<Value> = rt.block_on(async {
        let mut pushes = std::mem::take(&mut recipient.pushes);
        let client = recipient.client.as_mut().expect("the recipient stays connected");
        while let Some(frame) = client.recv_within(Duration::from_secs(1)).await {
            pushes.push(frame);
        }
        pushes
    });
    let received: Vec<usize> = pushes
        .iter()
        .filter(|p| p["msgid"] == 6)
        .filter_map(|p| p["msg"].as_str())
        .filter_map(|m| m.strip_prefix("n=").and_then(|m| m.split('/').next()).and_then(|n| n.parse().ok()))
        .collect();
    let t = tally(&received);
    println!(
        "console sending through a cut: {N} chats typed, {} pushes received: lost {}, duplicates {}, out of order {}",
        received.len(),
        t.lost,
        t.duplicates,
        t.out_of_order
    );
    assert!(t.lost == 0 && t.duplicates == 0 && t.out_of_order == 0, "{t:?}\n{}", console.transcript());
    assert_eq!(sent(&console), N, "each chat reported sent once\n{}", console.transcript());
    println!("what the console said on stderr:\n{}", console.stderr().trim_end());
    assert!(console.stderr().contains("; reconnecting"), "{}", console.transcript());
    console.close_stdin();
    assert!(console.wait_exit(EXIT_WAIT).success(), "{}", console.transcript());
}
