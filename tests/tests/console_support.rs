//! Helpers for the console black-box tests (included by each `console_*.rs`
//! with `#[path]`): drive the real `chat-client` binary over pipes, and a
//! scriptable fake server for what a real server never sends.
//!
//! Compiled on its own as well (Cargo makes every file here a test target);
//! it holds no tests itself.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_tests::{WAIT, bin};
use serde_json::{Value, json};

/// One captured output stream and how far the test has read it.
struct Captured {
    text: Arc<Mutex<Vec<u8>>>,
    seen: usize,
}

impl Captured {
    fn spawn(mut source: impl Read + Send + 'static) -> Captured {
        let text = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&text);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match source.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => sink.lock().expect("capture lock").extend_from_slice(&chunk[..n]),
                }
            }
        });
        Captured { text, seen: 0 }
    }

    fn all(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().expect("capture lock")).into_owned()
    }
}

/// A `chat-client console` process with piped stdin, stdout and stderr (so
/// it runs in its plain, non-terminal mode). Killed on drop.
pub struct ConsoleProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Captured,
    err: Captured,
}

impl ConsoleProcess {
    /// `chat-client console <addr>`.
    pub fn start(addr: SocketAddr) -> ConsoleProcess {
        Self::start_args(&["console", &addr.to_string()])
    }

    /// `chat-client <args>`.
    pub fn start_args(args: &[&str]) -> ConsoleProcess {
        let mut command = Command::new(bin("chat-client"));
        command.args(args);
        Self::spawn(command)
    }

    /// Any command with piped stdin, stdout and stderr (e.g. the client under `script`).
    pub fn spawn(mut command: Command) -> ConsoleProcess {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chat-client");
        let stdin = child.stdin.take();
        let out = Captured::spawn(child.stdout.take().expect("stdout"));
        let err = Captured::spawn(child.stderr.take().expect("stderr"));
        ConsoleProcess { child, stdin, out, err }
    }

    /// Types one line.
    pub fn line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(line.as_bytes()).expect("write to client");
        stdin.write_all(b"\n").expect("write to client");
        stdin.flush().expect("flush");
    }

    /// Types raw keys (no line end added).
    pub fn keys(&mut self, keys: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(keys.as_bytes()).expect("write to client");
        stdin.flush().expect("flush");
    }

    /// Types several lines.
    pub fn lines(&mut self, lines: &[&str]) {
        for line in lines {
            self.line(line);
        }
    }

    /// Closes stdin (the end of piped input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Everything the client printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.out.all()
    }

    /// Everything the client printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.err.all()
    }

    /// Both streams, for failure messages.
    pub fn transcript(&self) -> String {
        format!("--- stdout ---\n{}\n--- stderr ---\n{}", self.stdout(), self.stderr())
    }

    fn expect_in(&mut self, stderr: bool, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let captured = if stderr { &self.err } else { &self.out };
            let text = captured.all();
            let unseen = text.get(captured.seen..).unwrap_or_default();
            if let Some(at) = unseen.find(needle) {
                let end = captured.seen + at + needle.len();
                let upto = text[captured.seen..end].to_owned();
                if stderr {
                    self.err.seen = end;
                } else {
                    self.out.seen = end;
                }
                return upto;
            }
            if Instant::now() > deadline {
                let stream = if stderr { "stderr" } else { "stdout" };
                panic!("client did not print {needle:?} on {stream} within {WAIT:?}\n{}", self.transcript());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until stdout shows `needle` after what earlier expectations
    /// consumed; returns the new text up to and including it.
    pub fn expect_out(&mut self, needle: &str) -> String {
        self.expect_in(false, needle)
    }

    /// The same on stderr.
    pub fn expect_err(&mut self, needle: &str) -> String {
        self.expect_in(true, needle)
    }

    /// Waits for the process to exit, panicking after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the capture threads drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            if Instant::now() > deadline {
                panic!("client did not exit within {timeout:?}\n{}", self.transcript());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal by name ("INT", "TERM", ...).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{sig} failed");
    }
}

impl Drop for ConsoleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fake server on 127.0.0.1 that a test scripts by hand.
pub struct FakeServer {
    listener: TcpListener,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl FakeServer {
    /// Listens on a free port.
    pub fn start() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        FakeServer { listener, addr }
    }

    /// Listens on `addr` (e.g. where an earlier fake server listened, to come back there).
    pub fn start_on(addr: SocketAddr) -> FakeServer {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        FakeServer { listener, addr }
    }

    /// The next connection, or panics after [`WAIT`].
    pub fn accept(&self) -> FakeConn {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).expect("blocking");
                    return FakeConn { stream, buf: Vec::new() };
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("no client connected within {WAIT:?}: {e}"),
            }
        }
    }
}

/// One client connection at the fake server.
pub struct FakeConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl FakeConn {
    /// The next frame the client sent (NUL or LF delimited), or `None` if
    /// nothing complete arrives within `timeout` or the client closed.
    pub fn recv_within(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n' || b == 0) {
                let frame: Vec<u8> = self.buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&frame[..frame.len() - 1]).into_owned();
                if text.trim().is_empty() {
                    continue;
                }
                let value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("client sent invalid JSON ({e}): {text}"));
                return Some(value);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next frame, or panics after [`WAIT`].
    pub fn recv(&mut self) -> Value {
        self.recv_within(WAIT).unwrap_or_else(|| panic!("client sent no frame within {WAIT:?}"))
    }

    /// The next frame, which must have this msgid.
    pub fn recv_msgid(&mut self, msgid: i64) -> Value {
        let frame = self.recv();
        assert_eq!(frame["msgid"], json!(msgid), "unexpected frame {frame}");
        frame
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to client");
    }

    /// Sends a JSON frame followed by LF.
    pub fn send(&mut self, frame: &Value) {
        let mut bytes = serde_json::to_vec(frame).expect("json");
        bytes.push(b'\n');
        self.send_raw(&bytes);
    }

    /// Expects LOGIN with the extension opt-in and answers `ack`.
    pub fn answer_login(&mut self, ack: &Value) -> Value {
        let login = self.recv_msgid(1);
        assert_eq!(login["ext"], json!(1), "the client opts in to the extension: {login}");
        self.send(ack);
        login
    }

    /// Expects a request with `msgid` and acknowledges it with success.
    pub fn ack(&mut self, msgid: i64) -> Value {
        let request = self.recv_msgid(msgid);
        self.send(&json!({"errno": 0, "msgid": 11, "re": msgid}));
        request
    }

    /// Closes the connection.
    pub fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// An extension login ack for user `id` called `name` with empty lists.
pub fn login_ok(id: i64, name: &str) -> Value {
    json!({"errno": 0, "friends": [], "groups": [], "id": id, "msgid": 2, "name": name, "offlinemsg": []})
}

/// How long a client may take to exit after being told to.
pub const EXIT_WAIT: Duration = Duration::from_secs(10);
