//! The measured traffic over a set of logged-in connections: a pacer that
//! sends R messages a second by the clock (open loop), a writer and a reader
//! task per connection, and the bookkeeping of each run. Set-up (registering
//! and logging in) is `setup`'s job; printing tables is `report`'s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chat_net::Inbound;
use chat_proto::{GroupId, UserId};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::client::{Conn, WriteHalf};
use crate::mysql::{self, StatusReader, delta};
use crate::payload::{Stamp, group_chat, one_chat, parse_frame};
use crate::procfs::{CpuMeter, CpuUse, MachineMeter, ProcScan, Watched, cpu_time};
use crate::report::RunReport;
use crate::stats::{Counters, Delivery, Latencies, LatencySummary, Tracker, cores, us_per_delivery};

/// Messages queued per connection before the pacer counts the bench as behind.
const WRITE_QUEUE: usize = 4096;
/// Bytes gathered into one write.
const WRITE_BATCH: usize = 64 * 1024;

/// What kind of traffic a fleet sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One-to-one chat.
    Chat,
    /// Group chat: `groups` groups of `size` members.
    Group {
        /// Members per group.
        size: usize,
        /// Groups.
        groups: usize,
    },
}

/// A logged-in user and its connection, ready for traffic.
pub struct Ready {
    /// The connection (logged in, without the extension).
    pub conn: Conn,
    /// The user.
    pub id: UserId,
    /// Index of the address it connected to.
    pub node: usize,
    /// Its group and its slot (index) in the group.
    pub group: Option<(GroupId, u32)>,
}

/// A user as the pacer sees it.
struct Member {
    id: UserId,
    group: Option<(GroupId, u32)>,
    tx: mpsc::Sender<Bytes>,
}

/// The bookkeeping of one run, shared with the reader and writer tasks.
pub struct RunState {
    /// The run number carried in every message.
    pub run: u32,
    /// Group chat (msgid 10) rather than one-to-one (msgid 6).
    pub group: bool,
    /// Delivery bits.
    pub tracker: Tracker,
    /// Latency histograms.
    pub latencies: Latencies,
    /// Counters.
    pub counters: Counters,
}

impl RunState {
    /// Bookkeeping for up to `capacity` messages.
    pub fn new(run: u32, mode: Mode, capacity: u64) -> RunState {
        let (group, slots, expected) = match mode {
            Mode::Chat => (false, 1, 1),
            Mode::Group { size, .. } => (true, size as u32, size.saturating_sub(1) as u32),
        };
        RunState {
            run,
            group,
            tracker: Tracker::new(capacity, slots, expected),
            latencies: Latencies::default(),
            counters: Counters::default(),
        }
    }
}

/// Who a reader task reads for.
#[derive(Debug, Clone, Copy)]
pub struct Me {
    /// The user.
    pub id: UserId,
    /// Its group and slot.
    pub group: Option<(GroupId, u32)>,
}

/// Accounts for one frame a user received at `now_nanos`.
pub fn on_frame(st: &RunState, me: &Me, bytes: &[u8], now_nanos: u64) {
    let c = &st.counters;
    let Some(f) = parse_frame(bytes) else {
        Counters::bump(&c.malformed);
        return;
    };
    let chat = match f.msgid {
        6 | 10 => f.msgid,
        11 if f.errno == Some(14) => {
            Counters::bump(&c.refused);
            return;
        }
        _ => {
            Counters::bump(&c.other);
            return;
        }
    };
    let Some(stamp) = f.msg.as_deref().and_then(Stamp::parse) else {
        Counters::bump(&c.misrouted);
        return;
    };
    if stamp.run != st.run {
        Counters::bump(&c.stale);
        return;
    }
    let me_id = i64::from(me.id.0);
    let slot = match (chat, st.group, me.group) {
        (6, false, _) if f.to == Some(me_id) => Some(0),
        (10, true, Some((group, slot))) if f.groupid == Some(i64::from(group.0)) && f.id != Some(me_id) => {
            Some(slot)
        }
        _ => None,
    };
    let Some(slot) = slot else {
        Counters::bump(&c.misrouted);
        return;
    };
    match st.tracker.deliver(stamp.seq, slot) {
        Delivery::First { last } => {
            c.delivered.fetch_add(1, Ordering::Relaxed);
            let grace_end = c.grace_end_nanos.load(Ordering::Relaxed);
            if grace_end != 0 && now_nanos > grace_end {
                Counters::bump(&c.late);
            }
            c.last_delivery_nanos.fetch_max(now_nanos, Ordering::Relaxed);
            st.latencies.record(now_nanos.saturating_sub(stamp.sent_nanos) / 1000, last);
        }
        Delivery::Duplicate => Counters::bump(&c.duplicated),
        Delivery::Unknown => Counters::bump(&c.misrouted),
    }
}

/// A small, fast, seeded random number generator (xorshift64*), so runs are repeatable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Picks the recipient of a one-to-one message from `sender`: on another node with
/// probability `cross` (when there is one), else on the sender's node. Returns the
/// recipient's index and whether it is on another node.
pub fn pick_recipient(
    rng: &mut Rng,
    sender: usize,
    node_of: &[usize],
    by_node: &[Vec<usize>],
    cross: f64,
) -> (usize, bool) {
    let home = node_of[sender];
    let same = &by_node[home];
    let can_same = same.len() >= 2;
    let can_cross = by_node.iter().enumerate().any(|(k, v)| k != home && !v.is_empty());
    let go_cross = can_cross && (!can_same || rng.unit() < cross);
    if go_cross {
        loop {
            let k = rng.below(by_node.len());
            if k != home && !by_node[k].is_empty() {
                return (by_node[k][rng.below(by_node[k].len())], true);
            }
        }
    }
    loop {
        let r = same[rng.below(same.len())];
        if r != sender {
            return (r, false);
        }
    }
}

/// What to send in a run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Messages per second, all senders together.
    pub rate: f64,
    /// How long to send.
    pub duration: Duration,
    /// Bytes of each message's text.
    pub msg_bytes: usize,
    /// How long deliveries may take after the last send before they count as late.
    pub grace: Duration,
    /// After the grace period, how long to keep waiting for stragglers while they still
    /// arrive (at least one a second); what never arrives is lost.
    pub drain: Duration,
    /// Share of one-to-one messages to users on another address.
    pub cross: f64,
    /// Print a line a second on stderr.
    pub progress: bool,
    /// Seed of recipient choice.
    pub seed: u64,
}

impl Plan {
    /// Messages the run sends.
    pub fn total(&self) -> u64 {
        ((self.rate * self.duration.as_secs_f64()).round() as u64).max(1)
    }
}

/// The processes whose CPU a run measures.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// The chat-server nodes (their CPU is the server CPU).
    pub servers: Vec<Watched>,
    /// Others (nginx, Redis, MySQL): reported, not counted as server.
    pub others: Vec<Watched>,
    /// MySQL's global status counters, read before and after each run (`--mysql-status`).
    pub status: Option<StatusReader>,
}

/// The status counters now, or `None` (said on stderr) when they cannot be read.
async fn read_status(reader: Option<&StatusReader>) -> Option<mysql::Counters> {
    match reader?.read().await {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("warning: cannot read MySQL's status: {e:#}");
            None
        }
    }
}

/// Logged-in connections with their reader and writer tasks.
pub struct Fleet {
    mode: Mode,
    nodes: Vec<String>,
    placement: String,
    members: Vec<Member>,
    node_of: Vec<usize>,
    by_node: Vec<Vec<usize>>,
    epoch: Instant,
    state: watch::Sender<Arc<RunState>>,
    closing: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    runs: u32,
}

fn nanos_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

async fn read_loop(
    conn_frames: crate::client::Frames,
    me: Me,
    state: watch::Receiver<Arc<RunState>>,
    epoch: Instant,
    closing: Arc<AtomicBool>,
) {
    let mut frames = conn_frames;
    loop {
        let item = frames.next().await;
        let now = nanos_since(epoch);
        let st = state.borrow();
        match item {
            Some(Ok(Inbound::Frame(bytes))) => on_frame(&st, &me, &bytes, now),
            Some(Ok(Inbound::TooLong)) => Counters::bump(&st.counters.malformed),
            Some(Err(_)) | None => {
                if !closing.load(Ordering::Relaxed) {
                    Counters::bump(&st.counters.disconnects);
                }
                return;
            }
        }
    }
}

async fn write_loop(
    mut write: WriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    state: watch::Receiver<Arc<RunState>>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut broken = false;
    while let Some(first) = rx.recv().await {
        let mut n = 1u64;
        buf.clear();
        buf.extend_from_slice(&first);
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(more) => {
                    buf.extend_from_slice(&more);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        if !broken && (write.write_all(&buf).await.is_err() || write.flush_tls().await.is_err()) {
            broken = true;
        }
        if broken {
            state.borrow().counters.write_errors.fetch_add(n, Ordering::Relaxed);
        }
    }
    let _ = write.shutdown().await;
}

impl Fleet {
    /// Starts the reader and writer tasks of logged-in connections.
    pub fn start(
        mode: Mode,
        nodes: Vec<String>,
        placement: String,
        epoch: Instant,
        ready: Vec<Ready>,
    ) -> Fleet {
        let (state, _) = watch::channel(Arc::new(RunState::new(0, mode, 0)));
        let closing = Arc::new(AtomicBool::new(false));
        let mut by_node = vec![Vec::new(); nodes.len().max(1)];
        let mut members = Vec::with_capacity(ready.len());
        let mut node_of = Vec::with_capacity(ready.len());
        let mut tasks = Vec::with_capacity(ready.len() * 2);
        for (i, r) in ready.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel(WRITE_QUEUE);
            let me = Me { id: r.id, group: r.group };
            tasks.push(tokio::spawn(read_loop(r.conn.frames, me, state.subscribe(), epoch, closing.clone())));
            tasks.push(tokio::spawn(write_loop(r.conn.write, rx, state.subscribe())));
            let node = r.node.min(by_node.len() - 1);
            by_node[node].push(i);
            node_of.push(node);
            members.push(Member { id: r.id, group: r.group, tx });
        }
        Fleet { mode, nodes, placement, members, node_of, by_node, epoch, state, closing, tasks, runs: 0 }
    }

    /// Users in the fleet.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Sends `plan`'s traffic, waits for the deliveries, and reports.
    pub async fn run(&mut self, plan: &Plan, watch: &Watch) -> RunReport {
        self.runs += 1;
        let total = plan.total();
        let state = Arc::new(RunState::new(self.runs, self.mode, total));
        self.state.send_replace(state.clone());
        let c = &state.counters;
        let expected_each = u64::from(state.tracker.expected());
        let mut rng = Rng::new(plan.seed ^ u64::from(self.runs));
        let status_before = read_status(watch.status.as_ref()).await;
        let servers = CpuMeter::start(&watch.servers);
        let others = CpuMeter::start(&watch.others);
        let bench_start = cpu_time(None).unwrap_or_default();
        let machine = MachineMeter::start();
        let procs = ProcScan::start();
        let start = Instant::now();
        let start_nanos = nanos_since(self.epoch);
        let mut progress = Progress::new(start, plan.rate);
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let (mut issued, mut crossed) = (0u64, 0u64);
        let n = self.members.len();
        while issued < total {
            tick.tick().await;
            let due = ((start.elapsed().as_secs_f64() * plan.rate) as u64).min(total);
            while issued < due {
                let sender = (issued % n as u64) as usize;
                let stamp = Stamp { run: self.runs, seq: issued, sent_nanos: nanos_since(self.epoch) };
                let text = stamp.encode(plan.msg_bytes);
                let frame = match (self.mode, self.members[sender].group) {
                    (Mode::Group { .. }, Some((group, _))) => group_chat(group.0, &text),
                    _ => {
                        let (to, cross) =
                            pick_recipient(&mut rng, sender, &self.node_of, &self.by_node, plan.cross);
                        crossed += u64::from(cross);
                        one_chat(self.members[to].id.0, &text)
                    }
                };
                match self.members[sender].tx.try_send(Bytes::from(frame)) {
                    Ok(()) => Counters::bump(&c.sent),
                    Err(mpsc::error::TrySendError::Full(_)) => Counters::bump(&c.backlog),
                    Err(mpsc::error::TrySendError::Closed(_)) => Counters::bump(&c.write_errors),
                }
                issued += 1;
            }
            if plan.progress {
                progress.maybe_print(&state, expected_each, &servers);
            }
        }
        let send_s = start.elapsed().as_secs_f64();
        let sent = Counters::get(&c.sent);
        let expected = sent * expected_each;
        let send_end = Instant::now();
        let grace_end = nanos_since(self.epoch) + plan.grace.as_nanos() as u64;
        c.grace_end_nanos.store(grace_end, Ordering::Relaxed);
        let (mut seen, mut seen_at) = (Counters::get(&c.delivered), Instant::now());
        loop {
            let delivered = Counters::get(&c.delivered);
            if delivered >= expected {
                break;
            }
            if delivered > seen {
                (seen, seen_at) = (delivered, Instant::now());
            }
            let waited = send_end.elapsed();
            let stalled = seen_at.elapsed() >= Duration::from_secs(1);
            if waited >= plan.grace && (stalled || waited >= plan.grace + plan.drain) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            if plan.progress {
                progress.maybe_print(&state, expected_each, &servers);
            }
        }
        let wall_s = start.elapsed().as_secs_f64();
        let bench_cpu_s = cpu_time(None).unwrap_or_default().saturating_sub(bench_start).as_secs_f64();
        let servers = servers.read();
        let others = others.read();
        let machine = machine.read();
        let mut exclude: Vec<u32> = watch.servers.iter().chain(&watch.others).map(|w| w.pid).collect();
        exclude.push(std::process::id());
        let (background_s, background_top) = procs.read(&exclude, 3);
        let status_after = read_status(watch.status.as_ref()).await;
        let mysql = status_before.zip(status_after).map(|(a, b)| delta(&a, &b));
        let delivered = state.tracker.delivered(total);
        let last = Counters::get(&c.last_delivery_nanos);
        let delivered_s = last.saturating_sub(start_nanos) as f64 / 1e9;
        let server_cpu_s: Option<f64> =
            if servers.is_empty() { None } else { servers.iter().map(|u| u.cpu_s).sum() };
        let (latency, last_member) = state.latencies.summaries();
        let (cross, cross_actual, group_size, groups) = match self.mode {
            Mode::Chat => {
                let direct = self.nodes.len() > 1;
                (
                    direct.then_some(plan.cross),
                    direct.then(|| crossed as f64 / issued.max(1) as f64),
                    None,
                    None,
                )
            }
            Mode::Group { size, groups } => (None, None, Some(size), Some(groups)),
        };
        RunReport {
            mode: match self.mode {
                Mode::Chat => "chat".into(),
                Mode::Group { .. } => "group".into(),
            },
            rate: plan.rate,
            duration_s: plan.duration.as_secs_f64(),
            users: n,
            nodes: self.nodes.clone(),
            placement: self.placement.clone(),
            cross,
            cross_actual,
            group_size,
            groups,
            msg_bytes: plan.msg_bytes,
            sent,
            sent_per_s: if send_s > 0.0 { sent as f64 / send_s } else { 0.0 },
            backlog: Counters::get(&c.backlog),
            expected,
            delivered,
            lost: expected.saturating_sub(delivered),
            duplicated: Counters::get(&c.duplicated),
            late: Counters::get(&c.late),
            stale: Counters::get(&c.stale),
            misrouted: Counters::get(&c.misrouted),
            malformed: Counters::get(&c.malformed),
            refused: Counters::get(&c.refused),
            other_frames: Counters::get(&c.other),
            disconnects: Counters::get(&c.disconnects),
            write_errors: Counters::get(&c.write_errors),
            delivered_per_s: if delivered_s > 0.0 { delivered as f64 / delivered_s } else { 0.0 },
            latency,
            last_member: matches!(self.mode, Mode::Group { .. }).then_some(last_member),
            server_cpu_s,
            server_us_per_delivery: server_cpu_s.and_then(|s| us_per_delivery(s, delivered)),
            server_cores: server_cpu_s.map(|s| cores(s, wall_s)),
            servers,
            others,
            bench_cpu_s,
            bench_cores: cores(bench_cpu_s, wall_s),
            wall_s,
            machine,
            background_s: Some(background_s),
            background_top,
            mysql,
        }
    }

    /// Closes every connection (the server logs the users out) and waits for the tasks.
    pub async fn close(self) {
        self.closing.store(true, Ordering::Relaxed);
        drop(self.members);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// The once-a-second progress line.
struct Progress {
    start: Instant,
    rate: f64,
    next: Duration,
    sent: u64,
    delivered: u64,
    bench_cpu: Duration,
    server_cpu: f64,
}

impl Progress {
    fn new(start: Instant, rate: f64) -> Progress {
        Progress {
            start,
            rate,
            next: Duration::from_secs(1),
            sent: 0,
            delivered: 0,
            bench_cpu: cpu_time(None).unwrap_or_default(),
            server_cpu: 0.0,
        }
    }

    fn maybe_print(&mut self, st: &RunState, expected_each: u64, servers: &CpuMeter) {
        let t = self.start.elapsed();
        if t < self.next {
            return;
        }
        self.next += Duration::from_secs(1);
        let c = &st.counters;
        let sent = Counters::get(&c.sent);
        let delivered = Counters::get(&c.delivered);
        let bench_cpu = cpu_time(None).unwrap_or_default();
        let server_cpu: f64 = servers.read().iter().filter_map(|u: &CpuUse| u.cpu_s).sum();
        let w: LatencySummary = st.latencies.take_window();
        eprintln!(
            "[{:5.1}s] target {:.0}/s  sent {}/s  delivered {}/s  pending {}  p50 {:.2} ms  p99 {:.2} ms  max {:.1} ms  \
             servers {:.0}%  bench {:.0}%  refused {}  disconnects {}",
            t.as_secs_f64(),
            self.rate,
            sent - self.sent,
            delivered - self.delivered,
            (sent * expected_each).saturating_sub(delivered),
            w.p50_ms,
            w.p99_ms,
            w.max_ms,
            (server_cpu - self.server_cpu) * 100.0,
            bench_cpu.saturating_sub(self.bench_cpu).as_secs_f64() * 100.0,
            Counters::get(&c.refused),
            Counters::get(&c.disconnects),
        );
        self.sent = sent;
        self.delivered = delivered;
        self.bench_cpu = bench_cpu;
        self.server_cpu = server_cpu;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(id: i32, group: Option<(i32, u32)>) -> Me {
        Me { id: UserId(id), group: group.map(|(g, s)| (GroupId(g), s)) }
    }

    fn chat(run: u32, seq: u64, to: i32) -> String {
        let msg = Stamp { run, seq, sent_nanos: 1_000_000 }.encode(32);
        format!(r#"{{"id":1,"msg":"{msg}","msgid":6,"name":"a","time":"t","to":{to}}}"#)
    }

    #[test]
    fn one_to_one_frames_are_counted() {
        let st = RunState::new(2, Mode::Chat, 10);
        let alice = me(7, None);
        on_frame(&st, &alice, chat(2, 3, 7).as_bytes(), 3_000_000);
        on_frame(&st, &alice, chat(2, 3, 7).as_bytes(), 3_000_000);
        on_frame(&st, &alice, chat(1, 4, 7).as_bytes(), 3_000_000);
        on_frame(&st, &alice, chat(2, 5, 8).as_bytes(), 3_000_000);
        on_frame(&st, &alice, chat(2, 50, 7).as_bytes(), 3_000_000);
        on_frame(&st, &alice, b"{not json", 3_000_000);
        on_frame(&st, &alice, br#"{"errmsg":"slow down","errno":14,"msgid":11,"re":0}"#, 0);
        on_frame(&st, &alice, br#"{"msgid":12}"#, 0);
        on_frame(&st, &alice, br#"{"id":1,"msg":"hello","msgid":6,"to":7}"#, 0);
        let c = &st.counters;
        assert_eq!(st.tracker.delivered(10), 1);
        assert_eq!(Counters::get(&c.delivered), 1);
        assert_eq!(Counters::get(&c.duplicated), 1);
        assert_eq!(Counters::get(&c.stale), 1);
        assert_eq!(Counters::get(&c.misrouted), 3);
        assert_eq!(Counters::get(&c.malformed), 1);
        assert_eq!(Counters::get(&c.refused), 1);
        assert_eq!(Counters::get(&c.other), 1);
        let (all, _) = st.latencies.summaries();
        assert_eq!(all.count, 1);
        assert!((all.max_ms - 2.0).abs() < 0.01, "{all:?}");
    }

    #[test]
    fn deliveries_after_the_grace_period_are_late() {
        let st = RunState::new(1, Mode::Chat, 10);
        let bob = me(8, None);
        st.counters.grace_end_nanos.store(5_000_000, Ordering::Relaxed);
        on_frame(&st, &bob, chat(1, 0, 8).as_bytes(), 4_000_000);
        on_frame(&st, &bob, chat(1, 1, 8).as_bytes(), 6_000_000);
        assert_eq!(Counters::get(&st.counters.delivered), 2);
        assert_eq!(Counters::get(&st.counters.late), 1);
    }

    #[test]
    fn group_frames_fill_slots() {
        let st = RunState::new(1, Mode::Group { size: 3, groups: 1 }, 4);
        let msg = Stamp { run: 1, seq: 0, sent_nanos: 0 }.encode(16);
        let frame = |from: i32, group: i32| {
            format!(r#"{{"groupid":{group},"id":{from},"msg":"{msg}","msgid":10,"name":"a","time":"t"}}"#)
        };
        on_frame(&st, &me(11, Some((5, 1))), frame(10, 5).as_bytes(), 1_000);
        on_frame(&st, &me(12, Some((5, 2))), frame(10, 5).as_bytes(), 9_000_000);
        on_frame(&st, &me(12, Some((5, 2))), frame(10, 6).as_bytes(), 9_000_000);
        on_frame(&st, &me(10, Some((5, 0))), frame(10, 5).as_bytes(), 9_000_000);
        assert_eq!(st.tracker.delivered(4), 2);
        assert_eq!(Counters::get(&st.counters.misrouted), 2);
        let (all, last) = st.latencies.summaries();
        assert_eq!((all.count, last.count), (2, 1));
        assert!((last.max_ms - 9.0).abs() < 0.01, "{last:?}");
    }

    #[test]
    fn recipients_follow_the_cross_share() {
        // Users 0..10 alternate between two nodes.
        let node_of: Vec<usize> = (0..10).map(|i| i % 2).collect();
        let by_node = vec![vec![0, 2, 4, 6, 8], vec![1, 3, 5, 7, 9]];
        let mut rng = Rng::new(1);
        for sender in 0..10 {
            for _ in 0..100 {
                let (r, cross) = pick_recipient(&mut rng, sender, &node_of, &by_node, 1.0);
                assert!(cross && node_of[r] != node_of[sender]);
                let (r, cross) = pick_recipient(&mut rng, sender, &node_of, &by_node, 0.0);
                assert!(!cross && node_of[r] == node_of[sender] && r != sender);
            }
        }
        let crossed =
            (0..10_000).filter(|i| pick_recipient(&mut rng, i % 10, &node_of, &by_node, 0.3).1).count();
        assert!((2_700..3_300).contains(&crossed), "{crossed}");
    }

    #[test]
    fn recipients_with_one_node_or_a_lonely_user() {
        let mut rng = Rng::new(7);
        let (r, cross) = pick_recipient(&mut rng, 0, &[0, 0], &[vec![0, 1]], 1.0);
        assert_eq!((r, cross), (1, false));
        // User 2 is alone on node 1: it must write across.
        let (r, cross) = pick_recipient(&mut rng, 2, &[0, 0, 1], &[vec![0, 1], vec![2]], 0.0);
        assert!(cross && r < 2);
    }

    #[test]
    fn rng_is_uniform_enough() {
        let mut rng = Rng::new(42);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[rng.below(4)] += 1;
        }
        assert!(counts.iter().all(|c| (9_000..11_000).contains(c)), "{counts:?}");
        assert!((0..1000).map(|_| rng.unit()).all(|u| (0.0..1.0).contains(&u)));
    }

    #[test]
    fn plan_total() {
        let plan = Plan {
            rate: 2500.0,
            duration: Duration::from_secs(4),
            msg_bytes: 64,
            grace: Duration::from_secs(1),
            drain: Duration::from_secs(1),
            cross: 0.5,
            progress: false,
            seed: 1,
        };
        assert_eq!(plan.total(), 10_000);
    }
}
