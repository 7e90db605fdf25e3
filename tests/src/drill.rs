//! Fault drills for durable delivery (issue 10): a two-node cluster on MySQL and its own
//! Redis behind nginx, extension clients that do what docs/PROTOCOL.md asks of a client
//! (acknowledge in batches, drop a `mid` already seen, resume, resend what was not
//! acknowledged with the same `cid`), steady one-to-one and group traffic, and the
//! [`Ledger`]: what was acknowledged to a sender and never reached a recipient.
//!
//! Not a benchmark: the sizes prove the point and no more. A drill reads as its fault:
//! [`Drill::start`], [`Drill::traffic`], the fault, [`Drill::finish`], the counts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::redis_cluster::RedisCluster;
use crate::{Nginx, RedisServer, ServerProcess, TcpProxy, WireClient, mysql_url, tempdir::TempDir, unique};

/// The nodes' presence lease: a killed node's users are free again within it.
pub const LEASE_SECS: u64 = 2;
/// How long nothing may arrive at any client before the ledger is taken.
pub const QUIET: Duration = Duration::from_secs(2);
/// The bound on every wait of a drill (acknowledgements, the drain).
pub const BOUND: Duration = Duration::from_secs(30);
/// Every client's password.
const PASSWORD: &str = "pw";
/// A recipient acknowledges after this many new messages (or at the next tick).
const ACK_EVERY: usize = 50;
/// The client's clock: acknowledgements and due resends.
const TICK: Duration = Duration::from_millis(100);
/// A chat refused with errno 13 is sent again after this.
const RESEND_AFTER: Duration = Duration::from_millis(200);

/// Which node: the one the senders start on, or the one the recipients start on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Node "a": the senders' node.
    Senders,
    /// Node "b": the recipients' node.
    Recipients,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Senders => 0,
            Side::Recipients => 1,
        }
    }
}

/// What a drill starts.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Names the drill in its summary line.
    pub name: &'static str,
    /// Users who send, logged in on the senders' node.
    pub senders: usize,
    /// Users who only receive, logged in on the recipients' node.
    pub recipients: usize,
    /// The first this many senders are in the group too (with every recipient) and post to it.
    pub group_senders: usize,
    /// The nodes reach MySQL through a [`TcpProxy`] the drill can cut.
    pub mysql_proxy: bool,
    /// Extra environment for the recipients' node.
    pub recipients_node_env: Vec<(&'static str, String)>,
    /// The nodes share a Redis Cluster of the drill's own instead of one Redis.
    pub redis_cluster: bool,
    /// The nodes' Redis Cluster URL names one node only ([`RedisCluster::seed`]), not two.
    pub one_seed: bool,
    /// The nodes' `chat-server`: this workspace's unless set (another release's binary).
    pub program: Option<PathBuf>,
    /// The nodes' database: the tests' MySQL database ([`mysql_url`]) unless set.
    pub database: Option<String>,
    /// nginx sends the PROXY protocol and the nodes expect it (deploy/nginx.conf); off for
    /// a release that does not speak it (v0.1.0).
    pub proxy_protocol: bool,
}

impl Setup {
    /// 12 senders (4 of them in the group) and 12 recipients, nothing special.
    pub fn new(name: &'static str) -> Setup {
        Setup {
            name,
            senders: 12,
            recipients: 12,
            group_senders: 4,
            mysql_proxy: false,
            recipients_node_env: Vec::new(),
            redis_cluster: false,
            one_seed: false,
            program: None,
            database: None,
            proxy_protocol: true,
        }
    }

    /// The extra environment of a side's node.
    fn node_env(&self, side: Side) -> Vec<(&'static str, String)> {
        let mut env = match side {
            Side::Senders => Vec::new(),
            Side::Recipients => self.recipients_node_env.clone(),
        };
        if self.proxy_protocol {
            // nginx (deploy/nginx.conf) sends the PROXY protocol.
            env.push(("CHAT_PROXY_PROTOCOL", "true".to_string()));
        }
        env
    }

    /// The same, on a Redis Cluster (3 masters, 3 replicas) of the drill's own.
    pub fn on_redis_cluster(name: &'static str) -> Setup {
        Setup { redis_cluster: true, ..Setup::new(name) }
    }

    /// On a Redis Cluster whose URL names one node only (the seed, a master at the start).
    pub fn on_redis_cluster_one_seed(name: &'static str) -> Setup {
        Setup { one_seed: true, ..Setup::on_redis_cluster(name) }
    }
}

/// Steady traffic: every sender, at a fixed rate, to its two recipients in turn and, for
/// the group senders, every `group_every`-th chat to the group.
#[derive(Debug, Clone, Copy)]
pub struct Traffic {
    /// Chats per second per sender.
    pub rate_per_sender: f64,
    /// How long.
    pub duration: Duration,
    /// Every n-th chat of a group sender goes to the group.
    pub group_every: u64,
}

impl Traffic {
    /// 15 chats a second per sender for 4 s, a third of the group senders' to the group.
    pub fn steady() -> Traffic {
        Traffic { rate_per_sender: 15.0, duration: Duration::from_secs(4), group_every: 3 }
    }

    fn chats_per_sender(&self) -> u64 {
        (self.rate_per_sender * self.duration.as_secs_f64()).round() as u64
    }
}

/// Where a chat goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One-to-one, to this user.
    User(i64),
    /// To this group.
    Group(i64),
}

/// A conversation as a client names it: the other user, or the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Conv {
    User(i64),
    Group(i64),
}

impl Conv {
    fn ack(self, seq: i64) -> Value {
        match self {
            Conv::User(id) => json!({"id": id, "seq": seq}),
            Conv::Group(id) => json!({"groupid": id, "seq": seq}),
        }
    }
}

/// What one client went through: the proof that a fault reached it, and what it saw.
#[derive(Debug, Default, Clone)]
pub struct ClientStats {
    /// The user.
    pub id: i64,
    /// Sessions after the first (by RESUME or, after errno 17, by LOGIN).
    pub reconnects: u32,
    /// Of those, by RESUME.
    pub resumes: u32,
    /// RESUME or LOGIN answered errno 2 (the account still held) and retried.
    pub in_use: u32,
    /// RESUME answered errno 17 (then LOGIN with the password).
    pub bad_token: u32,
    /// Chats answered errno 13 (then sent again).
    pub refused: u32,
    /// Chats written again with the same `cid` (after errno 13 or a lost connection).
    pub resent: u32,
    /// Abortive closes by the drill ([`Drill::reset`]).
    pub resets: u32,
    /// NOTICEs that the node closes the connection (errno 15: shutting down, or taken over).
    pub closing_notices: u32,
    /// Bytes the server had written that the client never read, over its resets.
    pub discarded_bytes: usize,
    /// Pushes of a `mid` the client already had (dropped, as the protocol says).
    pub dropped_by_mid: u32,
    /// A message that arrived again under another `mid`: a duplicate the user would see.
    pub duplicates: u32,
    /// Messages that came after a higher `seq` of their conversation.
    pub out_of_order: u32,
    /// A `cid` acknowledged twice with different `mid`s (stored twice).
    pub cid_conflicts: u32,
    /// Answers no drill expects (an errno other than 0, 2, 13, 17; a frame out of place).
    pub errors: Vec<String>,
}

/// One chat a client was asked to send.
#[derive(Debug, Clone)]
struct Sent {
    cid: String,
    body: String,
    target: Target,
    /// The first ACK with errno 0: (`mid`, `seq`).
    ack: Option<(i64, i64)>,
    /// Times written.
    writes: u32,
    /// The connection it was last written on.
    conn: u64,
}

/// One message a client received (after dropping a `mid` seen before).
#[derive(Debug, Clone)]
struct Got {
    conv: Conv,
    seq: i64,
    body: String,
}

/// A client's record, shared between its task and the drill.
#[derive(Debug, Default)]
struct Book {
    sent: Vec<Sent>,
    got: HashMap<i64, Got>,
    /// body → mid: a body seen under a second mid is a duplicate.
    bodies: HashMap<String, i64>,
    /// Highest seq received per conversation.
    last_seq: HashMap<Conv, i64>,
    /// Highest seq acknowledged to the server per conversation.
    acked_to: HashMap<Conv, i64>,
    /// Messages received since the last RECEIVED.
    since_ack: usize,
    last_arrival: Option<Instant>,
    /// Logged in on a live connection now.
    online: bool,
    order_examples: Vec<String>,
    stats: ClientStats,
}

impl Book {
    fn acked(&self) -> usize {
        self.sent.iter().filter(|s| s.ack.is_some()).count()
    }

    fn unacked(&self) -> impl Iterator<Item = usize> + '_ {
        self.sent.iter().enumerate().filter(|(_, s)| s.ack.is_none()).map(|(i, _)| i)
    }

    /// What a RESUME claims per conversation (see [`Claims`]).
    fn claims(&self, claims: Claims) -> Vec<Value> {
        if claims == Claims::Nothing {
            return Vec::new();
        }
        let mut all: Vec<(&Conv, &i64)> = self.last_seq.iter().collect();
        all.sort();
        all.into_iter().map(|(c, &s)| c.ack(s)).collect()
    }

    /// The RECEIVED frame for what arrived since the last one, if anything did.
    fn take_acks(&mut self) -> Option<Value> {
        let mut acks = Vec::new();
        for (&conv, &seq) in &self.last_seq {
            let to = self.acked_to.entry(conv).or_insert(0);
            if seq > *to {
                *to = seq;
                acks.push(conv.ack(seq));
            }
        }
        self.since_ack = 0;
        (!acks.is_empty()).then(|| json!({"msgid": 18, "acks": acks}))
    }
}

/// What a client claims to have when it resumes (both are what PROTOCOL.md allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claims {
    /// The highest seq it holds per conversation.
    Held,
    /// Nothing (`"acks":[]`): the server's cursors alone decide the replay, as saved every
    /// `cursor_flush_secs` (a killed node's last ones are gone), and the client drops by
    /// `mid` what comes again.
    Nothing,
}

/// The drill's handle on one extension client; the connection lives in the client's task.
#[derive(Clone)]
pub struct DurableClient {
    /// The user.
    pub id: i64,
    book: Arc<Mutex<Book>>,
    cmds: mpsc::Sender<Cmd>,
}

enum Cmd {
    /// Write chat number n of the book (unless acknowledged or in flight already).
    Chat(usize),
    /// Stop reading the connection (the server's frames pile up unread) until `Read` or `Reset`.
    Stall,
    /// Read again.
    Read,
    /// Close abortively and reconnect.
    Reset,
    /// Flush acknowledgements and end the task.
    Stop,
}

fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
    book.lock().unwrap_or_else(|e| e.into_inner())
}

impl DurableClient {
    /// Queues a chat; the client sends it now if connected, else after its reconnect, and
    /// again with the same `cid` until it is acknowledged.
    pub async fn chat(&self, target: Target) {
        let n = {
            let mut book = lock(&self.book);
            let n = book.sent.len();
            let cid = format!("c{n}");
            let body = format!("{}/{cid}", self.id);
            book.sent.push(Sent { cid, body, target, ack: None, writes: 0, conn: 0 });
            n
        };
        let _ = self.cmds.send(Cmd::Chat(n)).await;
    }

    /// Chats acknowledged with errno 0 so far.
    pub fn acked(&self) -> usize {
        lock(&self.book).acked()
    }

    /// A copy of what the client went through so far.
    pub fn stats(&self) -> ClientStats {
        lock(&self.book).stats.clone()
    }

    /// Stops reading its connection (a client that does not keep up): the server's frames
    /// pile up in the socket and in the node's queue, unread and unacknowledged.
    pub async fn stall(&self) {
        let _ = self.cmds.send(Cmd::Stall).await;
    }

    /// Reads again after [`DurableClient::stall`].
    pub async fn unstall(&self) {
        let _ = self.cmds.send(Cmd::Read).await;
    }

    /// Closes the connection abortively (SO_LINGER 0: what the server wrote to it and the
    /// client had not read is gone) and reconnects through nginx with RESUME.
    pub async fn reset(&self) {
        let _ = self.cmds.send(Cmd::Reset).await;
    }
}

/// One TCP connection to a node or to nginx: LF-delimited JSON both ways.
struct Link {
    stream: TcpStream,
    buf: Vec<u8>,
    /// How much of `buf` holds no LF.
    scanned: usize,
}

impl Link {
    async fn connect(addr: SocketAddr) -> Option<Link> {
        let stream =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await.ok()?.ok()?;
        let _ = stream.set_nodelay(true);
        Some(Link { stream, buf: Vec::new(), scanned: 0 })
    }

    async fn write(&mut self, frames: &[Value]) -> bool {
        let mut bytes = Vec::new();
        for frame in frames {
            bytes.extend(frame.to_string().into_bytes());
            bytes.push(b'\n');
        }
        self.stream.write_all(&bytes).await.is_ok()
    }

    /// The next frame, `None` when the connection ends. Cancel-safe (nothing read is lost
    /// when a `select!` drops it).
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(pos) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=self.scanned + pos).collect();
                self.scanned = 0;
                let text = &line[..line.len() - 1];
                return Some(
                    serde_json::from_slice(text)
                        .unwrap_or_else(|_| json!({"not json": String::from_utf8_lossy(text).into_owned()})),
                );
            }
            self.scanned = self.buf.len();
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next frame within `timeout`.
    async fn next_within(&mut self, timeout: Duration) -> Option<Value> {
        tokio::time::timeout(timeout, self.next()).await.ok().flatten()
    }

    /// Closes abortively: SO_LINGER 0, then drop (an RST; unread bytes are gone). Returns
    /// how many bytes the server had sent that were never read.
    async fn abort(self) -> usize {
        let mut peek = vec![0u8; 4 << 20];
        let pending = tokio::time::timeout(Duration::from_millis(50), self.stream.peek(&mut peek))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        let _ = self.stream.set_zero_linger();
        pending + self.buf.len()
    }
}

/// A client logged in but not running yet: setup requests (group, joins) go here.
struct Setting {
    id: i64,
    link: Link,
    token: String,
}

impl Setting {
    async fn login(addr: SocketAddr, id: i64) -> Setting {
        let mut link = Link::connect(addr).await.unwrap_or_else(|| panic!("connect {addr}"));
        assert!(link.write(&[json!({"msgid":1,"id":id,"password":PASSWORD,"ext":1})]).await);
        let ack = link.next_within(crate::WAIT).await.unwrap_or_else(|| panic!("no LOGIN ack for {id}"));
        assert_eq!(ack["errno"], 0, "login {id}: {ack}");
        let token = ack["resume"].as_str().unwrap_or_else(|| panic!("no resume token: {ack}")).to_owned();
        Setting { id, link, token }
    }

    /// Sends a request and returns its ACK (msgid 11 with `re` = its msgid).
    async fn request(&mut self, req: Value) -> Value {
        assert!(self.link.write(std::slice::from_ref(&req)).await);
        loop {
            let frame =
                self.link.next_within(crate::WAIT).await.unwrap_or_else(|| panic!("no answer to {req}"));
            if frame["msgid"] == 11 && frame["re"] == req["msgid"] {
                return frame;
            }
        }
    }

    /// Starts the client's task; it reconnects to `reconnect` (nginx).
    fn run(self, reconnect: SocketAddr, claims: Claims) -> (DurableClient, JoinHandle<()>) {
        let book = Arc::new(Mutex::new(Book { online: true, ..Book::default() }));
        lock(&book).stats.id = self.id;
        let (tx, rx) = mpsc::channel(100_000);
        let runner = Runner {
            id: self.id,
            book: book.clone(),
            cmds: rx,
            token: Some(self.token),
            claims,
            reconnect,
            inflight: VecDeque::new(),
            retry: VecDeque::new(),
            conn: 1,
        };
        let task = tokio::spawn(runner.run(self.link));
        (DurableClient { id: self.id, book, cmds: tx }, task)
    }
}

/// How a live connection ended.
enum End {
    Lost,
    Reset,
    Stop,
}

/// A client's task: the connection, the resends, the acknowledgements, the reconnects.
struct Runner {
    id: i64,
    book: Arc<Mutex<Book>>,
    cmds: mpsc::Receiver<Cmd>,
    token: Option<String>,
    claims: Claims,
    reconnect: SocketAddr,
    /// Chats written on this connection and not answered yet, oldest first.
    inflight: VecDeque<usize>,
    /// Chats refused with errno 13, and when to send them again.
    retry: VecDeque<(Instant, usize)>,
    /// The current connection's number.
    conn: u64,
}

impl Runner {
    fn book(&self) -> MutexGuard<'_, Book> {
        lock(&self.book)
    }

    async fn run(mut self, first: Link) {
        let mut link = Some(first);
        loop {
            let mut live = match link.take() {
                Some(l) => l,
                None => match self.open().await {
                    Some(l) => l,
                    None => return,
                },
            };
            let end = if self.resend_all(&mut live).await { self.live(&mut live).await } else { End::Lost };
            self.book().online = false;
            match end {
                End::Lost => {}
                End::Reset => {
                    let discarded = live.abort().await;
                    let mut book = self.book();
                    book.stats.resets += 1;
                    book.stats.discarded_bytes += discarded;
                }
                End::Stop => return,
            }
        }
    }

    /// Whether a Stop came while offline (chats queued meanwhile are resent from the book).
    fn stop_requested(&mut self) -> bool {
        while let Ok(cmd) = self.cmds.try_recv() {
            if matches!(cmd, Cmd::Stop) {
                return true;
            }
        }
        self.cmds.is_closed()
    }

    /// Reconnects through nginx and resumes (or logs in after errno 17), waiting out errno 2
    /// and 13 with backoff. `None` if the drill stopped the client meanwhile.
    async fn open(&mut self) -> Option<Link> {
        let mut backoff = Duration::from_millis(50);
        let grow = |b: Duration| (b * 3 / 2).min(Duration::from_millis(500));
        loop {
            if self.stop_requested() {
                return None;
            }
            let Some(mut link) = Link::connect(self.reconnect).await else {
                tokio::time::sleep(backoff).await;
                backoff = grow(backoff);
                continue;
            };
            loop {
                if self.stop_requested() {
                    return None;
                }
                let req = match &self.token {
                    Some(token) => json!({"msgid":17,"token":token,"acks":self.book().claims(self.claims)}),
                    None => json!({"msgid":1,"id":self.id,"password":PASSWORD,"ext":1}),
                };
                if !link.write(&[req]).await {
                    break;
                }
                let Some(ack) = link.next_within(crate::WAIT).await else { break };
                let errno = ack["errno"].as_i64().unwrap_or(-1);
                match errno {
                    0 => {
                        let resumed = self.token.is_some();
                        self.token = ack["resume"].as_str().map(str::to_owned);
                        self.conn += 1;
                        let mut book = self.book();
                        book.stats.reconnects += 1;
                        book.stats.resumes += u32::from(resumed);
                        book.online = true;
                        return Some(link);
                    }
                    2 => self.book().stats.in_use += 1,
                    17 => {
                        self.book().stats.bad_token += 1;
                        self.token = None;
                        continue;
                    }
                    13 => {}
                    _ => self.book().stats.errors.push(format!("login answered {ack}")),
                }
                tokio::time::sleep(backoff).await;
                backoff = grow(backoff);
            }
            tokio::time::sleep(backoff).await;
            backoff = grow(backoff);
        }
    }

    /// A new session: everything not acknowledged goes out again, oldest first, same `cid`.
    async fn resend_all(&mut self, link: &mut Link) -> bool {
        self.inflight.clear();
        self.retry.clear();
        let unacked: Vec<usize> = self.book().unacked().collect();
        self.write_chats(link, &unacked).await
    }

    async fn write_chats(&mut self, link: &mut Link, chats: &[usize]) -> bool {
        let mut frames = Vec::new();
        {
            let conn = self.conn;
            let mut book = lock(&self.book);
            for &n in chats {
                let sent = &mut book.sent[n];
                if sent.ack.is_some() || (sent.conn == conn && self.inflight.contains(&n)) {
                    continue;
                }
                let mut frame = match sent.target {
                    Target::User(to) => json!({"msgid":6,"to":to}),
                    Target::Group(g) => json!({"msgid":10,"groupid":g}),
                };
                frame["msg"] = json!(sent.body);
                frame["cid"] = json!(sent.cid);
                sent.writes += 1;
                sent.conn = conn;
                let again = sent.writes > 1;
                self.inflight.push_back(n);
                frames.push(frame);
                book.stats.resent += u32::from(again);
            }
        }
        frames.is_empty() || link.write(&frames).await
    }

    async fn live(&mut self, link: &mut Link) -> End {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                cmd = self.cmds.recv() => match cmd {
                    Some(Cmd::Chat(n)) => {
                        if !self.write_chats(link, &[n]).await {
                            return End::Lost;
                        }
                    }
                    Some(Cmd::Stall) => {
                        if let Some(end) = self.stalled(link).await {
                            return end;
                        }
                    }
                    Some(Cmd::Read) => {}
                    Some(Cmd::Reset) => return End::Reset,
                    Some(Cmd::Stop) | None => {
                        self.flush_acks(link).await;
                        return End::Stop;
                    }
                },
                frame = link.next() => match frame {
                    Some(frame) => {
                        if !self.handle(link, frame).await {
                            return End::Lost;
                        }
                    }
                    None => return End::Lost,
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    let mut due = Vec::new();
                    while self.retry.front().is_some_and(|(at, _)| *at <= now) {
                        due.extend(self.retry.pop_front().map(|(_, n)| n));
                    }
                    if !self.write_chats(link, &due).await || !self.flush_acks(link).await {
                        return End::Lost;
                    }
                }
            }
        }
    }

    /// Not reading: only commands, until `Read` (then `None`) or the end of the connection.
    async fn stalled(&mut self, link: &mut Link) -> Option<End> {
        loop {
            match self.cmds.recv().await {
                Some(Cmd::Chat(n)) => {
                    if !self.write_chats(link, &[n]).await {
                        return Some(End::Lost);
                    }
                }
                Some(Cmd::Stall) => {}
                Some(Cmd::Read) => return None,
                Some(Cmd::Reset) => return Some(End::Reset),
                Some(Cmd::Stop) | None => return Some(End::Stop),
            }
        }
    }

    async fn flush_acks(&mut self, link: &mut Link) -> bool {
        let frame = self.book().take_acks();
        match frame {
            Some(frame) => link.write(&[frame]).await,
            None => true,
        }
    }

    /// One frame from the server; false if the connection failed while answering it.
    async fn handle(&mut self, link: &mut Link, frame: Value) -> bool {
        match frame["msgid"].as_i64() {
            Some(11) if frame["re"] == 6 || frame["re"] == 10 => self.chat_answered(&frame),
            Some(6 | 10) if frame.get("mid").is_some() => {
                if self.received(&frame) >= ACK_EVERY {
                    return self.flush_acks(link).await;
                }
            }
            Some(12) => return link.write(&[json!({"msgid":13})]).await,
            // Issue 20: the peers' RECEIVED come back as "recv" receipts; the drill's clients,
            // like any client that shows no receipts, pass over them.
            Some(55) if frame["what"] == "recv" => {}
            // A node stopping gracefully (or a takeover) says so, then closes; the client resumes.
            Some(14) if frame["errno"] == 15 => self.book().stats.closing_notices += 1,
            _ => self.book().stats.errors.push(format!("unexpected frame {frame}")),
        }
        true
    }

    /// The answer to a chat in flight: the one its `cid` names (chats pipeline, and one
    /// refused before it was stored may be answered before earlier ones), else the oldest.
    fn chat_answered(&mut self, ack: &Value) {
        let named = ack["cid"].as_str().and_then(|cid| cid.strip_prefix('c')?.parse::<usize>().ok());
        let at = match named {
            Some(n) => self.inflight.iter().position(|&i| i == n),
            None => (!self.inflight.is_empty()).then_some(0),
        };
        let Some(n) = at.and_then(|at| self.inflight.remove(at)) else {
            self.book().stats.errors.push(format!("an answer to no chat in flight: {ack}"));
            return;
        };
        let mut book = lock(&self.book);
        match ack["errno"].as_i64() {
            Some(0) => {
                let ids = (ack["mid"].as_i64(), ack["seq"].as_i64());
                let sent = &mut book.sent[n];
                let (Some(mid), Some(seq)) = ids else {
                    book.stats.errors.push(format!("an ACK without mid and seq: {ack}"));
                    return;
                };
                if ack["cid"].as_str() != Some(sent.cid.as_str()) {
                    let cid = sent.cid.clone();
                    book.stats.errors.push(format!("ACK for {cid} carries another cid: {ack}"));
                    return;
                }
                match sent.ack {
                    None => sent.ack = Some((mid, seq)),
                    Some((first, _)) if first != mid => book.stats.cid_conflicts += 1,
                    Some(_) => {}
                }
            }
            Some(13) => {
                book.stats.refused += 1;
                self.retry.push_back((Instant::now() + RESEND_AFTER, n));
            }
            _ => {
                let cid = book.sent[n].cid.clone();
                book.stats.errors.push(format!("chat {cid} answered {ack}"));
            }
        }
    }

    /// A push; returns how many messages arrived since the last RECEIVED.
    fn received(&mut self, push: &Value) -> usize {
        let (mid, seq) = (push["mid"].as_i64().unwrap_or(0), push["seq"].as_i64().unwrap_or(0));
        let sender = push["id"].as_i64().unwrap_or(0);
        let conv = match push["groupid"].as_i64() {
            Some(g) => Conv::Group(g),
            None if sender == self.id => Conv::User(push["to"].as_i64().unwrap_or(0)),
            None => Conv::User(sender),
        };
        let body = push["msg"].as_str().unwrap_or_default().to_owned();
        let mut book = lock(&self.book);
        book.last_arrival = Some(Instant::now());
        if book.got.contains_key(&mid) {
            book.stats.dropped_by_mid += 1;
            return book.since_ack;
        }
        if book.bodies.insert(body.clone(), mid).is_some() {
            book.stats.duplicates += 1;
        }
        let last = book.last_seq.get(&conv).copied().unwrap_or(0);
        if seq <= last {
            book.stats.out_of_order += 1;
            if book.order_examples.len() < 5 {
                book.order_examples
                    .push(format!("user {} got {conv:?} seq {seq} (mid {mid}) after seq {last}", self.id));
            }
        } else {
            book.last_seq.insert(conv, seq);
        }
        book.got.insert(mid, Got { conv, seq, body });
        book.since_ack += 1;
        book.since_ack
    }
}

/// A running traffic generator.
pub struct TrafficRun {
    tasks: Vec<JoinHandle<()>>,
    planned: usize,
}

impl TrafficRun {
    /// Chats the generator will have queued when it ends.
    pub fn planned(&self) -> usize {
        self.planned
    }
}

/// What the drill's nodes route through.
enum DrillRedis {
    Single(RedisServer),
    Cluster(RedisCluster),
}

/// A two-node cluster, its clients and the group they share.
pub struct Drill {
    setup: Setup,
    started: Instant,
    /// The cluster's own Redis, or Redis Cluster when the setup asked for one.
    redis: DrillRedis,
    /// Between the nodes and MySQL, when the setup asks for it.
    pub mysql_proxy: Option<TcpProxy>,
    nodes: [ServerProcess; 2],
    /// Nodes [`Drill::replace`] stopped (kept for their logs).
    retired: Vec<ServerProcess>,
    /// The nodes' database URL (through the proxy, if any) and Redis URL.
    database: String,
    redis_url: String,
    /// The nodes' channel and key prefix.
    prefix: String,
    /// nginx in front of both nodes: where clients reconnect.
    pub nginx: Nginx,
    /// The senders, logged in on the senders' node at the start.
    pub senders: Vec<DurableClient>,
    /// The recipients, logged in on the recipients' node at the start.
    pub recipients: Vec<DurableClient>,
    /// The group: the first `group_senders` senders and every recipient.
    pub group: i64,
    group_members: Vec<i64>,
    tasks: Vec<JoinHandle<()>>,
    owed_at_fault: Option<usize>,
}

/// The MySQL server's address, from [`mysql_url`].
fn mysql_addr() -> SocketAddr {
    let url = mysql_url();
    let rest = url.trim_start_matches("mysql://");
    let hostport = rest.split_once('@').map_or(rest, |(_, r)| r).split('/').next().unwrap_or_default();
    hostport
        .replace("localhost", "127.0.0.1")
        .parse()
        .unwrap_or_else(|e| panic!("MySQL address in {url}: {e}"))
}

/// The MySQL URL with the proxy in place of the server.
fn proxied_url(proxy: &TcpProxy) -> String {
    let url = mysql_url();
    let (creds, rest) =
        url.trim_start_matches("mysql://").split_once('@').expect("mysql url with credentials");
    let (_, db) = rest.split_once('/').expect("mysql url with a database");
    // prefer_socket=false: mysql_async would otherwise switch to the local socket and bypass the proxy.
    format!("mysql://{creds}@{}/{db}?prefer_socket=false", proxy.addr)
}

/// Starts a drill node (in a blocking task: the start waits, and the proxy must keep running):
/// `program` on `addr` (a free port if `None`).
async fn start_node(
    program: PathBuf,
    addr: Option<SocketAddr>,
    name: &'static str,
    database: String,
    redis: String,
    prefix: String,
    extra: Vec<(&'static str, String)>,
) -> ServerProcess {
    tokio::task::spawn_blocking(move || {
        let lease = LEASE_SECS.to_string();
        let mut env: Vec<(&str, &str)> = vec![
            ("CHAT_CHANNEL_PREFIX", &prefix),
            ("CHAT_LEASE_SECS", &lease),
            ("CHAT_CURSOR_FLUSH_SECS", "0.2"),
            // The drill's own resends and acknowledgements must never meet the rate limit.
            ("CHAT_RATE_PER_SEC", "100000"),
            ("CHAT_RATE_BURST", "100000"),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        let addr = addr.unwrap_or_else(|| format!("127.0.0.1:{}", crate::free_port()).parse().expect("addr"));
        ServerProcess::launch(
            &program,
            addr,
            TempDir::new(&format!("chat-drill-{name}")),
            &["--database-url", &database, "--redis-url", &redis, "--node-name", name],
            &env,
        )
    })
    .await
    .expect("start a node")
}

async fn register_all(addr: SocketAddr, prefix: &str, n: usize) -> Vec<i64> {
    let names: Vec<String> = (0..n).map(|_| unique(prefix)).collect();
    futures::future::join_all(
        names.iter().map(|name| async move { WireClient::connect(addr).await.register(name).await }),
    )
    .await
}

impl Drill {
    /// Starts Redis, MySQL's proxy if asked, the two nodes and nginx; registers and logs in
    /// the users (senders on node a, recipients on node b, directly), makes the group, and
    /// starts every client's task (even-numbered clients resume claiming what they hold,
    /// odd-numbered ones claiming nothing: see [`Claims`]).
    pub async fn start(setup: Setup) -> Drill {
        let started = Instant::now();
        let redis = if setup.redis_cluster {
            DrillRedis::Cluster(RedisCluster::start())
        } else {
            DrillRedis::Single(RedisServer::start())
        };
        let redis_url = match &redis {
            DrillRedis::Single(r) => r.url(),
            DrillRedis::Cluster(c) if setup.one_seed => c.seed_url(),
            DrillRedis::Cluster(c) => c.url(),
        };
        let mysql_proxy = if setup.mysql_proxy { Some(TcpProxy::start(mysql_addr()).await) } else { None };
        let database = match (&mysql_proxy, &setup.database) {
            (Some(proxy), None) => proxied_url(proxy),
            (None, Some(url)) => url.clone(),
            (None, None) => mysql_url(),
            (Some(_), Some(_)) => panic!("a drill's own database through the MySQL proxy is not supported"),
        };
        let program = setup.program.clone().unwrap_or_else(|| crate::bin("chat-server"));
        let prefix = format!("{}:", unique("drill"));
        let (a, b) = tokio::join!(
            start_node(
                program.clone(),
                None,
                "a",
                database.clone(),
                redis_url.clone(),
                prefix.clone(),
                setup.node_env(Side::Senders)
            ),
            start_node(
                program,
                None,
                "b",
                database.clone(),
                redis_url.clone(),
                prefix.clone(),
                setup.node_env(Side::Recipients)
            ),
        );
        let nginx = Nginx::start_with([a.addr, b.addr], setup.proxy_protocol);

        let (sender_ids, recipient_ids) = tokio::join!(
            register_all(a.addr, "s", setup.senders),
            register_all(b.addr, "r", setup.recipients),
        );
        let (mut senders, mut recipients) = tokio::join!(
            futures::future::join_all(sender_ids.iter().map(|&id| Setting::login(a.addr, id))),
            futures::future::join_all(recipient_ids.iter().map(|&id| Setting::login(b.addr, id))),
        );

        let group_senders = setup.group_senders.clamp(1, senders.len());
        let created =
            senders[0].request(json!({"msgid":8,"groupname":unique("g"),"groupdesc":"drill"})).await;
        let group = created["groupid"].as_i64().unwrap_or_else(|| panic!("create the group: {created}"));
        for member in senders[1..group_senders].iter_mut().chain(recipients.iter_mut()) {
            let joined = member.request(json!({"msgid":9,"groupid":group})).await;
            assert_eq!(joined["errno"], 0, "join the group: {joined}");
        }
        let group_members: Vec<i64> =
            senders[..group_senders].iter().chain(recipients.iter()).map(|c| c.id).collect();

        let mut tasks = Vec::new();
        let mut run = |list: Vec<Setting>| -> Vec<DurableClient> {
            list.into_iter()
                .enumerate()
                .map(|(i, c)| {
                    let claims = if i % 2 == 0 { Claims::Held } else { Claims::Nothing };
                    let (client, task) = c.run(nginx.addr, claims);
                    tasks.push(task);
                    client
                })
                .collect()
        };
        let senders = run(senders);
        let recipients = run(recipients);
        Drill {
            setup,
            started,
            redis,
            mysql_proxy,
            nodes: [a, b],
            retired: Vec::new(),
            database,
            redis_url,
            prefix,
            nginx,
            senders,
            recipients,
            group,
            group_members,
            tasks,
            owed_at_fault: None,
        }
    }

    /// The pub/sub channel of every recipient.
    pub fn recipient_channels(&self) -> Vec<String> {
        self.recipients
            .iter()
            .map(|c| chat_broker::channel_of(&self.prefix, chat_proto::UserId(c.id as i32)))
            .collect()
    }

    /// The drill's own Redis; panics on a drill on a Redis Cluster.
    pub fn redis(&mut self) -> &mut RedisServer {
        match &mut self.redis {
            DrillRedis::Single(r) => r,
            DrillRedis::Cluster(_) => panic!("this drill runs on a Redis Cluster"),
        }
    }

    /// The drill's own Redis Cluster; panics on a drill on one Redis.
    pub fn redis_cluster(&self) -> &RedisCluster {
        match &self.redis {
            DrillRedis::Cluster(c) => c,
            DrillRedis::Single(_) => panic!("this drill runs on one Redis"),
        }
    }

    /// Ends a Redis Cluster drill: takes the ledger (nothing lost, duplicated or out of order),
    /// checks that both nodes noticed the slot map change, and that every user can log in
    /// again within the lease (plus 2 s) once the clients are gone.
    pub async fn finish_after_a_slot_map_change(&mut self, traffic: TrafficRun) {
        let ledger = self.finish(traffic).await;
        ledger.assert_nothing_lost();
        for side in [Side::Senders, Side::Recipients] {
            let log = self.node(side).log();
            assert!(
                log.contains("Redis Cluster slots changed owner"),
                "the {side:?} node noticed the new slot owners:\n{log}"
            );
        }
        let again = self.log_everyone_in_again().await;
        assert!(again < Duration::from_secs(LEASE_SECS + 2), "logging everyone in again took {again:?}");
    }

    /// After [`finish`](Self::finish) (every client gone): logs every user in again with a
    /// password through nginx, retrying while presence says another session holds the user
    /// (errno 2), and returns how long the slowest one took. A claim left behind (a stale
    /// presence key) would hold a user until its node's lease ran out.
    pub async fn log_everyone_in_again(&self) -> Duration {
        let started = Instant::now();
        let ids: Vec<i64> = self.clients().map(|c| c.id).collect();
        let nginx = self.nginx.addr;
        let logins = ids.into_iter().map(|id| async move {
            loop {
                let mut client = WireClient::connect(nginx).await;
                let ack = client.login(id, true).await;
                if ack["errno"] == 0 {
                    return;
                }
                assert_eq!(ack["errno"], 2, "user {id} cannot log in again: {ack}");
                assert!(started.elapsed() < BOUND, "user {id} still held by a stale session after {BOUND:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        futures::future::join_all(logins).await;
        started.elapsed()
    }

    /// Registers a user on each node, then logs them in (each on its own node, directly) and
    /// has them chat across the nodes both ways, again and again until a round works: the
    /// login acknowledged and each chat pushed to the other node's user within a second.
    /// Returns when that happened; panics after [`BOUND`].
    pub async fn serving_again(&self) -> Instant {
        let addrs = [self.node(Side::Senders).addr, self.node(Side::Recipients).addr];
        let mut ids = [0; 2];
        for (id, addr) in ids.iter_mut().zip(addrs) {
            *id = WireClient::connect(addr).await.register(&unique("probe")).await;
        }
        let started = Instant::now();
        let mut refusals = 0;
        loop {
            assert!(
                started.elapsed() < BOUND,
                "the nodes did not serve again within {BOUND:?} ({refusals} tries failed)"
            );
            if Self::probe(addrs, ids).await {
                return Instant::now();
            }
            refusals += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One round of [`serving_again`](Self::serving_again): whether it all worked.
    async fn probe(addrs: [SocketAddr; 2], ids: [i64; 2]) -> bool {
        let mut clients = Vec::with_capacity(2);
        for (id, addr) in ids.into_iter().zip(addrs) {
            let mut client = WireClient::connect(addr).await;
            if client.login(id, false).await["errno"] != 0 {
                return false;
            }
            clients.push(client);
        }
        for (from, to) in [(0, 1), (1, 0)] {
            let body = unique("probe");
            clients[from].send(&json!({"msgid":6,"to":ids[to],"msg":body})).await;
            let pushed = async {
                loop {
                    match clients[to].recv_within(Duration::from_secs(1)).await {
                        Some(frame) if frame["msg"] == body.as_str() => return true,
                        Some(_) => continue,
                        None => return false,
                    }
                }
            };
            if !pushed.await {
                return false;
            }
        }
        true
    }

    /// The node a side started on (or its replacement, after [`Drill::replace`]).
    pub fn node(&self, side: Side) -> &ServerProcess {
        &self.nodes[side.index()]
    }

    /// The nodes [`Drill::replace`] stopped, oldest first.
    pub fn retired(&self) -> &[ServerProcess] {
        &self.retired
    }

    /// Replaces a side's node the way an operator upgrades one: SIGTERM (the node drains:
    /// its clients get a NOTICE and resume through nginx on the other node), waits for it to
    /// exit, starts `program` with the same name, settings and address, and reloads nginx so
    /// that it sends new connections there again at once. Returns how long the side had no
    /// node.
    pub async fn replace(&mut self, side: Side, program: &Path) -> Duration {
        let started = Instant::now();
        let old = &mut self.nodes[side.index()];
        old.signal("TERM");
        let status = tokio::task::block_in_place(|| old.wait_exit(BOUND));
        assert!(status.is_some(), "the node on {} did not exit within {BOUND:?} of SIGTERM", old.addr);
        let name = match side {
            Side::Senders => "a",
            Side::Recipients => "b",
        };
        let extra = self.setup.node_env(side);
        let new = start_node(
            program.to_owned(),
            Some(old.addr),
            name,
            self.database.clone(),
            self.redis_url.clone(),
            self.prefix.clone(),
            extra,
        )
        .await;
        let gone = started.elapsed();
        let old = std::mem::replace(&mut self.nodes[side.index()], new);
        self.retired.push(old);
        tokio::task::block_in_place(|| self.nginx.reload());
        gone
    }

    /// Every client's connection is reset at once and resumes through nginx, which spreads
    /// them over both nodes again (as new logins would, over time).
    pub async fn reset_everyone(&self) {
        futures::future::join_all(self.clients().map(DurableClient::reset)).await;
    }

    /// SIGKILLs a side's node and asserts it is gone (killed by signal 9).
    pub fn kill(&mut self, side: Side) {
        use std::os::unix::process::ExitStatusExt;
        let node = &mut self.nodes[side.index()];
        node.signal("KILL");
        let status = node.wait_exit(Duration::from_secs(5)).expect("the killed node exits");
        assert_eq!(status.signal(), Some(9), "the node died of SIGKILL: {status}");
    }

    /// Where sender `i` sends its `n`-th chat: its two recipients in turn, and every
    /// `group_every`-th chat of a group sender to the group.
    fn target(&self, i: usize, n: u64, group_every: u64) -> Target {
        if i < self.setup.group_senders && n % group_every == group_every - 1 {
            return Target::Group(self.group);
        }
        let r = &self.recipients;
        Target::User(r[(2 * i + (n % 2) as usize) % r.len()].id)
    }

    /// Starts steady traffic from every sender.
    pub fn traffic(&self, traffic: Traffic) -> TrafficRun {
        let per_sender = traffic.chats_per_sender();
        let period = Duration::from_secs_f64(1.0 / traffic.rate_per_sender);
        let tasks = self
            .senders
            .iter()
            .enumerate()
            .map(|(i, sender)| {
                let targets: Vec<Target> =
                    (0..per_sender).map(|n| self.target(i, n, traffic.group_every)).collect();
                let sender = sender.clone();
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(period);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    for target in targets {
                        tick.tick().await;
                        sender.chat(target).await;
                    }
                })
            })
            .collect();
        TrafficRun { tasks, planned: per_sender as usize * self.senders.len() }
    }

    /// Every sender queues `per_sender` chats at once (to its recipients and the group alike).
    pub async fn burst(&self, per_sender: u64, group_every: u64) {
        for (i, sender) in self.senders.iter().enumerate() {
            for n in 0..per_sender {
                sender.chat(self.target(i, n, group_every)).await;
            }
        }
    }

    /// Chats acknowledged so far, over all senders.
    pub fn acked(&self) -> usize {
        self.senders.iter().map(DurableClient::acked).sum()
    }

    /// Waits until `n` chats are acknowledged: the fault then strikes mid-stream.
    pub async fn wait_acked(&self, n: usize) {
        let deadline = Instant::now() + BOUND;
        while self.acked() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} chats acknowledged within {BOUND:?}",
                self.acked()
            );
            // Fine-grained: a fault struck right after the ACKs must find chats still in flight.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Chats written to a node and not acknowledged yet, now, over all senders.
    pub fn in_flight(&self) -> usize {
        let unanswered =
            |c: &DurableClient| lock(&c.book).sent.iter().filter(|s| s.writes > 0 && s.ack.is_none()).count();
        self.senders.iter().map(unanswered).sum()
    }

    /// Deliveries acknowledged to a sender and not received yet, now: called right before
    /// the fault, it says how much the fault caught on its way (the summary shows it).
    pub fn owed(&mut self) -> usize {
        let owed = self.ledger().lost;
        self.owed_at_fault = Some(owed);
        owed
    }

    /// Every recipient stops reading (see [`DurableClient::stall`]).
    pub async fn stall_recipients(&self) {
        futures::future::join_all(self.recipients.iter().map(DurableClient::stall)).await;
    }

    /// Every recipient reads again.
    pub async fn unstall_recipients(&self) {
        futures::future::join_all(self.recipients.iter().map(DurableClient::unstall)).await;
    }

    /// Every recipient's connection is reset at once (see [`DurableClient::reset`]).
    pub async fn reset_recipients(&self) {
        futures::future::join_all(self.recipients.iter().map(DurableClient::reset)).await;
    }

    fn clients(&self) -> impl Iterator<Item = &DurableClient> {
        self.senders.iter().chain(self.recipients.iter())
    }

    /// Ends the traffic, waits until every chat is acknowledged and the clients have been
    /// quiet for [`QUIET`] (both bounded), and takes the ledger; prints its summary line.
    pub async fn finish(&mut self, traffic: TrafficRun) -> Ledger {
        for task in traffic.tasks {
            task.await.expect("traffic task");
        }
        let deadline = Instant::now() + BOUND;
        while self.clients().any(|c| lock(&c.book).unacked().next().is_some()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let drained = self.wait_quiet().await;
        let mut ledger = self.ledger();
        ledger.drained = drained;
        if ledger.lost > 0 {
            // Not the verdict (that is taken above): whether what was lost live comes with a fresh RESUME.
            let lossy: Vec<DurableClient> =
                self.clients().filter(|c| ledger.lost_by_user.contains_key(&c.id)).cloned().collect();
            for client in &lossy {
                client.reset().await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.wait_quiet().await;
            ledger.recovered_by_resume = Some(ledger.lost - self.ledger().lost);
        }
        for client in self.clients() {
            let _ = client.cmds.send(Cmd::Stop).await;
        }
        println!("{}", ledger.summary());
        ledger
    }

    /// Waits until every client is online and nothing arrived for [`QUIET`], up to [`BOUND`];
    /// false if the bound came first.
    async fn wait_quiet(&self) -> bool {
        let deadline = Instant::now() + BOUND;
        while Instant::now() < deadline {
            let all_online = self.clients().all(|c| lock(&c.book).online);
            let last = self.clients().filter_map(|c| lock(&c.book).last_arrival).max();
            if all_online && last.is_none_or(|t| t.elapsed() >= QUIET) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// What was acknowledged against what arrived, now.
    fn ledger(&self) -> Ledger {
        let books: HashMap<i64, MutexGuard<'_, Book>> =
            self.clients().map(|c| (c.id, lock(&c.book))).collect();
        let mut l = Ledger {
            name: self.setup.name,
            elapsed: self.started.elapsed(),
            owed_at_fault: self.owed_at_fault,
            ..Ledger::default()
        };
        for (&sender, book) in &books {
            for sent in &book.sent {
                l.chats += 1;
                let Some((mid, seq)) = sent.ack else {
                    l.unacked += 1;
                    continue;
                };
                l.acked += 1;
                let to: Vec<i64> = match sent.target {
                    Target::User(to) => vec![to],
                    Target::Group(_) => {
                        l.group_chats += 1;
                        self.group_members.iter().copied().filter(|&m| m != sender).collect()
                    }
                };
                for user in to {
                    l.expected += 1;
                    let Some(got) = books.get(&user).and_then(|b| b.got.get(&mid)) else {
                        l.lost += 1;
                        *l.lost_by_user.entry(user).or_default() += 1;
                        if l.lost_examples.len() < 10 {
                            l.lost_examples.push(format!(
                                "user {user} never got mid {mid} (seq {seq}, {:?}) from {sender} ({})",
                                sent.target, sent.cid
                            ));
                        }
                        continue;
                    };
                    l.received += 1;
                    let conv = match sent.target {
                        Target::User(_) => Conv::User(sender),
                        Target::Group(g) => Conv::Group(g),
                    };
                    if (got.conv, got.seq, &got.body) != (conv, seq, &sent.body) {
                        l.errors.push(format!(
                            "user {user}: mid {mid} came as {got:?}; {sender} sent {:?} acknowledged as seq {seq}",
                            sent.body
                        ));
                    }
                }
            }
        }
        for book in books.values() {
            let s = &book.stats;
            l.duplicates += s.duplicates;
            l.out_of_order += s.out_of_order;
            l.cid_conflicts += s.cid_conflicts;
            l.dropped_by_mid += s.dropped_by_mid;
            l.refused += s.refused;
            l.resent += s.resent;
            l.reconnects += s.reconnects;
            l.in_use += s.in_use;
            l.resets += s.resets;
            l.closing_notices += s.closing_notices;
            l.errors.extend(s.errors.iter().map(|e| format!("user {}: {e}", s.id)));
            l.order_examples.extend(book.order_examples.iter().cloned());
        }
        l.senders = self.senders.iter().map(|c| books[&c.id].stats.clone()).collect();
        l.recipients = self.recipients.iter().map(|c| books[&c.id].stats.clone()).collect();
        l
    }
}

impl Drop for Drill {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What a drill counted: chats acknowledged to senders against what reached recipients.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The drill.
    pub name: &'static str,
    /// Chats the senders were asked to send.
    pub chats: usize,
    /// Of those, acknowledged group chats.
    pub group_chats: usize,
    /// Acknowledged with errno 0.
    pub acked: usize,
    /// Never acknowledged (within the bound).
    pub unacked: usize,
    /// (acknowledged message, recipient) pairs: the deliveries owed.
    pub expected: usize,
    /// Of those, arrived.
    pub received: usize,
    /// Of those, never arrived: acknowledged and lost.
    pub lost: usize,
    /// Lost per recipient.
    pub lost_by_user: BTreeMap<i64, usize>,
    /// Messages a user would have seen twice (same message, second `mid`).
    pub duplicates: u32,
    /// Messages after a higher `seq` of their conversation.
    pub out_of_order: u32,
    /// `cid`s acknowledged with two different `mid`s.
    pub cid_conflicts: u32,
    /// Redelivered pushes the clients dropped by `mid` (expected after a resume).
    pub dropped_by_mid: u32,
    /// Chats answered errno 13.
    pub refused: u32,
    /// Chats written again with the same `cid`.
    pub resent: u32,
    /// Sessions after the first.
    pub reconnects: u32,
    /// errno 2 answers waited out.
    pub in_use: u32,
    /// Abortive closes.
    pub resets: u32,
    /// NOTICEs that a node closes the connection (errno 15).
    pub closing_notices: u32,
    /// Unexpected answers and mismatches.
    pub errors: Vec<String>,
    /// A few of the lost deliveries.
    pub lost_examples: Vec<String>,
    /// A few of the order violations.
    pub order_examples: Vec<String>,
    /// Acknowledged deliveries not yet received when the fault struck (see [`Drill::owed`]).
    pub owed_at_fault: Option<usize>,
    /// When something was lost: how much of it a fresh RESUME brought after all.
    pub recovered_by_resume: Option<usize>,
    /// The senders' stats.
    pub senders: Vec<ClientStats>,
    /// The recipients' stats.
    pub recipients: Vec<ClientStats>,
    /// From the drill's start to the ledger.
    pub elapsed: Duration,
    /// Every client was online and quiet for [`QUIET`] before the ledger was taken.
    pub drained: bool,
}

impl Ledger {
    /// One line: what was owed, what was lost, and what the fault cost on the way.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "drill {}: {} chats ({} group) acked {}/{}; deliveries {} expected, {} received; \
             lost {}, duplicates {}, out of order {} | dropped by mid {}, refused (13) {}, resent {}, \
             reconnects {} (errno 2 waits {}), resets {}; {:.1} s",
            self.name,
            self.chats,
            self.group_chats,
            self.acked,
            self.chats,
            self.expected,
            self.received,
            self.lost,
            self.duplicates,
            self.out_of_order,
            self.dropped_by_mid,
            self.refused,
            self.resent,
            self.reconnects,
            self.in_use,
            self.resets,
            self.elapsed.as_secs_f64(),
        );
        if !self.drained {
            let _ = write!(s, "; NOT drained within {BOUND:?} (clients offline or still receiving)");
        }
        if let Some(n) = self.owed_at_fault {
            let _ = write!(s, "; owed at the fault {n}");
        }
        if let Some(n) = self.recovered_by_resume {
            let _ = write!(s, "; {n} of the lost came with a fresh RESUME");
        }
        s
    }

    /// The verdict: every acknowledged chat reached every recipient once, in order.
    pub fn assert_nothing_lost(&self) {
        let mut detail = String::new();
        for line in self.lost_examples.iter().chain(&self.order_examples).chain(self.errors.iter().take(10)) {
            let _ = writeln!(detail, "  {line}");
        }
        let _ = writeln!(detail, "  lost per recipient: {:?}", self.lost_by_user);
        let clean = self.unacked == 0
            && self.lost == 0
            && self.duplicates == 0
            && self.out_of_order == 0
            && self.cid_conflicts == 0
            && self.errors.is_empty();
        assert!(
            clean,
            "{}\n  unacked {}, cid conflicts {}, errors {}\n{detail}",
            self.summary(),
            self.unacked,
            self.cid_conflicts,
            self.errors.len()
        );
    }
}
