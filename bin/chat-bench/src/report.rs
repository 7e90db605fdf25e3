//! What a run, a sweep and an idle hold report, as data (JSON for machines)
//! and as tables (text for people, Markdown for bench/RESULTS.md), and the
//! comparison with the targets of issue 6. No I/O here.

use serde::{Deserialize, Serialize};

use crate::procfs::{CpuUse, MachineUse};
use crate::stats::LatencySummary;

/// The result of one measured run at one rate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// `chat` (one-to-one) or `group`.
    pub mode: String,
    /// Messages per second asked for.
    pub rate: f64,
    /// Seconds of sending.
    pub duration_s: f64,
    /// Logged-in users.
    pub users: usize,
    /// Addresses connected to.
    pub nodes: Vec<String>,
    /// How users were placed on nodes.
    pub placement: String,
    /// Share of one-to-one messages asked to go to a user on another address.
    pub cross: Option<f64>,
    /// Share that did (as addressed by the bench).
    pub cross_actual: Option<f64>,
    /// Members per group.
    pub group_size: Option<usize>,
    /// Groups.
    pub groups: Option<usize>,
    /// Bytes of each message's text.
    pub msg_bytes: usize,
    /// Messages handed to the connections.
    pub sent: u64,
    /// Messages sent per second (over the sending time).
    pub sent_per_s: f64,
    /// Messages the bench could not hand over in time (its own backlog).
    pub backlog: u64,
    /// Deliveries expected (sent × recipients per message).
    pub expected: u64,
    /// First copies delivered.
    pub delivered: u64,
    /// Expected deliveries that never arrived (waiting went on while stragglers still came).
    pub lost: u64,
    /// Extra copies.
    pub duplicated: u64,
    /// Deliveries that arrived, but after the grace period.
    #[serde(default)]
    pub late: u64,
    /// Chats of an earlier run that arrived during this one.
    pub stale: u64,
    /// Chats at the wrong user or group, or with a foreign text.
    pub misrouted: u64,
    /// Unreadable frames.
    pub malformed: u64,
    /// Requests refused for their rate (errno 14).
    pub refused: u64,
    /// Other frames.
    pub other_frames: u64,
    /// Connections closed by the server.
    pub disconnects: u64,
    /// Failed writes.
    pub write_errors: u64,
    /// Deliveries per second, from the start to the last delivery.
    pub delivered_per_s: f64,
    /// Latency of every delivery.
    pub latency: LatencySummary,
    /// Latency to the last recipient of each message (group chat).
    pub last_member: Option<LatencySummary>,
    /// CPU seconds of the given server processes together.
    pub server_cpu_s: Option<f64>,
    /// Server CPU microseconds per delivered message.
    pub server_us_per_delivery: Option<f64>,
    /// Server cores busy on average.
    pub server_cores: Option<f64>,
    /// Each server process.
    pub servers: Vec<CpuUse>,
    /// Other watched processes (nginx, Redis, MySQL), not counted as server.
    pub others: Vec<CpuUse>,
    /// The bench's own CPU seconds.
    pub bench_cpu_s: f64,
    /// The bench's cores busy on average.
    pub bench_cores: f64,
    /// Seconds from the first send to the end of the grace wait.
    pub wall_s: f64,
    /// The whole machine over the run (everything, the bench and other people's work included).
    #[serde(default)]
    pub machine: Option<MachineUse>,
    /// CPU seconds of every other process (neither watched nor the bench) over the run.
    #[serde(default)]
    pub background_s: Option<f64>,
    /// The busiest of those.
    #[serde(default)]
    pub background_top: Vec<CpuUse>,
    /// MySQL's global status counters over the run (`--mysql-status`): what grew, by name.
    #[serde(default)]
    pub mysql: Option<crate::mysql::Counters>,
}

impl RunReport {
    /// The latency that decides whether a rate passes: to the last member for groups.
    pub fn decisive_latency(&self) -> &LatencySummary {
        self.last_member.as_ref().unwrap_or(&self.latency)
    }

    /// Nothing lost, duplicated or misdelivered, and the decisive p99 under `max_p99_ms`.
    pub fn passes(&self, max_p99_ms: f64) -> bool {
        self.sent > 0
            && self.lost == 0
            && self.duplicated == 0
            && self.late == 0
            && self.misrouted == 0
            && self.backlog == 0
            && self.decisive_latency().p99_ms < max_p99_ms
    }
}

/// One row per rate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// `chat` or `group`.
    pub mode: String,
    /// The p99 bound (ms) of a passing rate.
    pub max_p99_ms: f64,
    /// The highest passing rate, if any.
    pub best_rate: Option<f64>,
    /// The runs, in the order given.
    pub rows: Vec<RunReport>,
}

impl SweepReport {
    /// A sweep over `rows`, marking the highest rate that passes.
    pub fn new(mode: &str, max_p99_ms: f64, rows: Vec<RunReport>) -> SweepReport {
        let best_rate = best_row(&rows, max_p99_ms).map(|i| rows[i].rate);
        SweepReport { mode: mode.to_owned(), max_p99_ms, best_rate, rows }
    }

    /// The row of the best rate.
    pub fn best(&self) -> Option<&RunReport> {
        best_row(&self.rows, self.max_p99_ms).map(|i| &self.rows[i])
    }
}

/// Index of the highest-rate row that passes.
pub fn best_row(rows: &[RunReport], max_p99_ms: f64) -> Option<usize> {
    rows.iter()
        .enumerate()
        .filter(|(_, r)| r.passes(max_p99_ms))
        .max_by(|(_, a), (_, b)| a.rate.total_cmp(&b.rate))
        .map(|(i, _)| i)
}

/// Resident memory of one server before and with the idle connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RssRow {
    /// Its label.
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// VmRSS before the bench connected (KiB).
    pub before_kib: u64,
    /// VmRSS with all connections logged in and idle, at the end of the hold (KiB).
    pub after_kib: u64,
}

/// The result of an idle hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdleReport {
    /// Addresses connected to.
    pub nodes: Vec<String>,
    /// Connections logged in and held.
    pub users: usize,
    /// Seconds held.
    pub hold_s: f64,
    /// Seconds registering and logging in took.
    pub setup_s: f64,
    /// Connections the server closed during the hold.
    pub disconnects: u64,
    /// Each watched server.
    pub rss: Vec<RssRow>,
    /// Growth of all watched servers together (KiB).
    pub delta_kib: i64,
    /// Growth per connection (KiB).
    pub kib_per_conn: f64,
}

/// Growth per connection in KiB.
pub fn kib_per_conn(rows: &[RssRow], users: usize) -> (i64, f64) {
    let delta: i64 = rows.iter().map(|r| r.after_kib as i64 - r.before_kib as i64).sum();
    let per = if users > 0 { delta as f64 / users as f64 } else { 0.0 };
    (delta, per)
}

/// A table for text or Markdown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Column titles.
    pub headers: Vec<String>,
    /// Cells, row by row.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Aligned plain text (first column left-aligned, the others right-aligned).
    pub fn to_text(&self) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(n) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, w) in widths.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = w - cell.chars().count().min(*w);
                if i > 0 {
                    s.push_str("  ");
                }
                if i == 0 {
                    s.push_str(cell);
                    s.extend(std::iter::repeat_n(' ', pad));
                } else {
                    s.extend(std::iter::repeat_n(' ', pad));
                    s.push_str(cell);
                }
            }
            s.trim_end().to_owned() + "\n"
        };
        let mut out = line(&self.headers);
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }

    /// A Markdown table.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("| {} |\n", self.headers.join(" | "));
        out.push('|');
        for i in 0..self.headers.len() {
            out.push_str(if i == 0 { "---|" } else { "---:|" });
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

fn cores_of(uses: &[CpuUse], wall_s: f64) -> Option<f64> {
    let total: Option<f64> = uses.iter().map(|u| u.cpu_s).sum();
    total.map(|t| crate::stats::cores(t, wall_s))
}

/// Share of the processes' CPU spent in the kernel.
pub fn kernel_share(uses: &[CpuUse]) -> Option<f64> {
    let total: f64 = uses.iter().filter_map(|u| u.cpu_s).sum();
    let sys: f64 = uses.iter().filter_map(|u| u.sys_s).sum();
    (total > 0.0).then(|| sys / total)
}

/// The name deploy/bench.sh gives the MySQL server in `--watch`.
pub const MYSQL: &str = "mysql";

/// CPU microseconds per delivered message of the watched processes called `name`
/// (e.g. MySQL's), like the servers' `server_us_per_delivery`.
pub fn other_us_per_delivery(r: &RunReport, name: &str) -> Option<f64> {
    let cpu: Option<f64> = r.others.iter().filter(|o| o.name == name).map(|o| o.cpu_s).sum();
    let watched = r.others.iter().any(|o| o.name == name);
    cpu.filter(|_| watched).and_then(|s| crate::stats::us_per_delivery(s, r.delivered))
}

/// The table of a sweep (or of one run: a sweep of one row). `*` marks the best rate.
pub fn runs_table(rows: &[RunReport], best: Option<f64>) -> Table {
    let group = rows.iter().any(|r| r.last_member.is_some());
    let mut others: Vec<String> = Vec::new();
    for r in rows {
        for o in &r.others {
            if !others.contains(&o.name) {
                others.push(o.name.clone());
            }
        }
    }
    let mut headers: Vec<String> = [
        "rate/s", "sent/s", "deliv/s", "lost", "late", "dup", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms",
        "max ms",
    ]
    .map(String::from)
    .to_vec();
    if group {
        headers.push("last p99 ms".into());
    }
    let mysql = rows.iter().any(|r| r.others.iter().any(|o| o.name == MYSQL));
    headers.push("srv µs/msg".into());
    if mysql {
        headers.push("mysql µs/msg".into());
    }
    headers.extend(["srv cores", "srv kernel %"].map(String::from));
    headers.extend(others.iter().map(|o| format!("{o} cores")));
    headers.extend(["bench cores", "other procs cores", "machine busy/idle cores"].map(String::from));
    let rows = rows
        .iter()
        .map(|r| {
            let mark = if best == Some(r.rate) { " *" } else { "" };
            let l = &r.latency;
            let mut cells = vec![
                format!("{:.0}{mark}", r.rate),
                format!("{:.0}", r.sent_per_s),
                format!("{:.0}", r.delivered_per_s),
                r.lost.to_string(),
                r.late.to_string(),
                r.duplicated.to_string(),
                ms(l.p50_ms),
                ms(l.p90_ms),
                ms(l.p99_ms),
                ms(l.p999_ms),
                ms(l.max_ms),
            ];
            if group {
                cells.push(r.last_member.map_or_else(|| "-".into(), |s| ms(s.p99_ms)));
            }
            cells.push(opt(r.server_us_per_delivery, 1));
            if mysql {
                cells.push(opt(other_us_per_delivery(r, MYSQL), 1));
            }
            cells.push(opt(r.server_cores, 2));
            cells.push(opt(kernel_share(&r.servers).map(|f| f * 100.0), 0));
            for name in &others {
                let uses: Vec<CpuUse> = r.others.iter().filter(|o| &o.name == name).cloned().collect();
                cells.push(if uses.is_empty() { "-".into() } else { opt(cores_of(&uses, r.wall_s), 2) });
            }
            cells.push(format!("{:.2}", r.bench_cores));
            cells.push(opt(r.background_s.map(|s| crate::stats::cores(s, r.wall_s)), 2));
            cells.push(r.machine.map_or_else(
                || "-".into(),
                |m| {
                    let c = |s: f64| crate::stats::cores(s, r.wall_s);
                    format!("{:.2}/{:.2}", c(m.busy_s), c(m.idle_s))
                },
            ));
            cells
        })
        .collect();
    Table { headers, rows }
}

/// Two sweeps of the same load side by side (`labels` name them in the headers), one row
/// per rate either tried: deliveries/s, lost, the decisive p99, and the servers' and MySQL's
/// CPU per delivered message. `-` where a sweep did not try that rate.
pub fn compare_table(labels: [&str; 2], sweeps: [&SweepReport; 2]) -> Table {
    let mut rates: Vec<f64> = sweeps.iter().flat_map(|s| s.rows.iter().map(|r| r.rate)).collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    let group = sweeps.iter().any(|s| s.rows.iter().any(|r| r.last_member.is_some()));
    let p99 = if group { "last p99 ms" } else { "p99 ms" };
    type Cell = fn(&RunReport) -> String;
    let metrics: [(&str, Cell); 5] = [
        ("deliv/s", |r| format!("{:.0}", r.delivered_per_s)),
        ("lost", |r| r.lost.to_string()),
        (p99, |r| ms(r.decisive_latency().p99_ms)),
        ("srv µs/msg", |r| opt(r.server_us_per_delivery, 1)),
        ("mysql µs/msg", |r| opt(other_us_per_delivery(r, MYSQL), 1)),
    ];
    let mut headers = vec!["rate/s".to_owned()];
    for (name, _) in &metrics {
        headers.extend(labels.iter().map(|l| format!("{name} {l}")));
    }
    let rows = rates
        .iter()
        .map(|rate| {
            let runs = sweeps.map(|s| s.rows.iter().find(|r| r.rate == *rate));
            let mut cells = vec![format!("{rate:.0}")];
            for (_, cell) in &metrics {
                cells.extend(runs.iter().map(|r| r.map_or_else(|| "-".to_owned(), cell)));
            }
            cells
        })
        .collect();
    Table { headers, rows }
}

/// Lines about anything unusual in the runs (refusals, disconnects, foreign frames, ...).
pub fn anomalies(rows: &[RunReport]) -> Vec<String> {
    let mut out = Vec::new();
    for r in rows {
        let mut parts = Vec::new();
        for (n, what) in [
            (r.backlog, "not handed over (bench backlog)"),
            (r.stale, "stale (earlier run)"),
            (r.misrouted, "misrouted"),
            (r.malformed, "malformed frames"),
            (r.refused, "refused for rate (errno 14)"),
            (r.other_frames, "other frames"),
            (r.disconnects, "disconnects"),
            (r.write_errors, "write errors"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let busy: Vec<String> = r
            .background_top
            .iter()
            .filter_map(|u| {
                let c = crate::stats::cores(u.cpu_s?, r.wall_s);
                (c >= 0.05).then(|| format!("{} {c:.2}", u.name))
            })
            .collect();
        if !busy.is_empty() {
            parts.push(format!("other processes busy (cores): {}", busy.join(", ")));
        }
        if !parts.is_empty() {
            out.push(format!("rate {:.0}: {}", r.rate, parts.join("; ")));
        }
    }
    out
}

/// The human summary of a sweep.
pub fn sweep_text(s: &SweepReport) -> String {
    let mut out = runs_table(&s.rows, s.best_rate).to_text();
    for line in anomalies(&s.rows) {
        out.push_str(&format!("  {line}\n"));
    }
    match s.best_rate {
        Some(rate) => out.push_str(&format!(
            "* highest rate with zero loss and p99 < {} ms: {rate:.0} msgs/s\n",
            s.max_p99_ms
        )),
        None => out.push_str(&format!("no rate had zero loss and p99 < {} ms\n", s.max_p99_ms)),
    }
    out
}

/// The human summary of an idle hold.
pub fn idle_text(r: &IdleReport) -> String {
    let table = Table {
        headers: ["process", "pid", "before KiB", "with conns KiB", "delta KiB"].map(String::from).to_vec(),
        rows: r
            .rss
            .iter()
            .map(|x| {
                vec![
                    x.name.clone(),
                    x.pid.to_string(),
                    x.before_kib.to_string(),
                    x.after_kib.to_string(),
                    (x.after_kib as i64 - x.before_kib as i64).to_string(),
                ]
            })
            .collect(),
    };
    format!(
        "{}{} idle logged-in connections (set up in {:.1} s, held {:.0} s, {} closed by the server): {:.2} KiB each\n",
        table.to_text(),
        r.users,
        r.setup_s,
        r.hold_s,
        r.disconnects,
        r.kib_per_conn
    )
}

/// One line of the targets table.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The target, in words.
    pub target: String,
    /// What was measured, in words.
    pub measured: String,
    /// Met or not; `None` when there is no measurement.
    pub met: Option<bool>,
}

impl Verdict {
    fn cells(&self) -> Vec<String> {
        let mark = match self.met {
            Some(true) => "✔",
            Some(false) => "✘",
            None => "?",
        };
        vec![self.target.clone(), self.measured.clone(), mark.to_owned()]
    }
}

/// The targets table.
pub fn verdicts_table(v: &[Verdict]) -> Table {
    Table {
        headers: ["target", "measured", "met"].map(String::from).to_vec(),
        rows: v.iter().map(Verdict::cells).collect(),
    }
}

/// What one run reached, for a verdict: its rate, deliveries/s, decisive p99 and whatever it lost.
fn reached(r: &RunReport) -> String {
    let p99 = if r.last_member.is_some() { "last-member p99" } else { "p99" };
    let mut out = format!(
        "{:.0} msgs/s: {:.0} deliveries/s, {p99} {} ms, {} lost",
        r.rate,
        r.delivered_per_s,
        ms(r.decisive_latency().p99_ms),
        r.lost
    );
    for (n, what) in [
        (r.late, "late"),
        (r.duplicated, "duplicated"),
        (r.misrouted, "misrouted"),
        (r.backlog, "not handed over"),
    ] {
        if n > 0 {
            out.push_str(&format!(", {n} {what}"));
        }
    }
    out
}

/// The row that delivered the most per second.
fn most_delivered(rows: &[RunReport]) -> Option<&RunReport> {
    rows.iter().max_by(|a, b| a.delivered_per_s.total_cmp(&b.delivered_per_s))
}

/// Highest rate passing `max_p99_ms` compared with `min_rate`. The measurement says
/// what the next rate tried reached, or, when none passed, what the sweep reached at all.
pub fn rate_verdict(target: &str, sweep: Option<&SweepReport>, max_p99_ms: f64, min_rate: f64) -> Verdict {
    let Some(s) = sweep else {
        return Verdict { target: target.into(), measured: "not measured".into(), met: None };
    };
    let best = best_row(&s.rows, max_p99_ms).map(|i| &s.rows[i]);
    let measured = match best {
        Some(r) => {
            let next = s.rows.iter().filter(|x| x.rate > r.rate).min_by(|a, b| a.rate.total_cmp(&b.rate));
            let tail = match next {
                Some(n) => format!("; next rate tried, {}", reached(n)),
                None => "; no higher rate tried".to_owned(),
            };
            format!("{:.0} msgs/s (p99 {} ms, 0 lost){tail}", r.rate, ms(r.decisive_latency().p99_ms))
        }
        None => {
            let mut out = format!("no rate tried had zero loss and p99 < {max_p99_ms} ms");
            let lowest = s.rows.iter().min_by(|a, b| a.rate.total_cmp(&b.rate));
            if let Some(l) = lowest {
                out.push_str(&format!("; lowest, {}", reached(l)));
            }
            if let Some(m) = most_delivered(&s.rows).filter(|m| lowest.is_none_or(|l| !std::ptr::eq(*m, l))) {
                out.push_str(&format!("; most delivered, {}", reached(m)));
            }
            out
        }
    };
    Verdict { target: target.into(), measured, met: Some(best.is_some_and(|r| r.rate >= min_rate)) }
}

/// Server CPU per delivery at the sweep's best rate (else its first row) against `max_us`.
pub fn cpu_verdict(target: &str, sweep: Option<&SweepReport>, max_us: f64) -> Verdict {
    let row = sweep.and_then(|s| s.best().or(s.rows.first()));
    match row.and_then(|r| r.server_us_per_delivery.map(|us| (r, us))) {
        Some((r, us)) => {
            // The nodes' system time alone: what no user-space change can take away.
            let kernel = kernel_share(&r.servers)
                .map(|k| format!(" ({:.1} µs of it in the kernel)", us * k))
                .unwrap_or_default();
            Verdict {
                target: target.into(),
                measured: format!("{us:.1} µs at {:.0} msgs/s{kernel}", r.rate),
                met: Some(us <= max_us),
            }
        }
        None => Verdict { target: target.into(), measured: "not measured".into(), met: None },
    }
}

/// A group row with at least `min_per_s` deliveries/s, no loss and last-member p99 under
/// `max_p99_ms`. Short of it, the measurement also says the most any rate delivered.
pub fn group_verdict(target: &str, sweep: Option<&SweepReport>, min_per_s: f64, max_p99_ms: f64) -> Verdict {
    let Some(s) = sweep else {
        return Verdict { target: target.into(), measured: "not measured".into(), met: None };
    };
    let good = |r: &&RunReport| r.passes(max_p99_ms);
    let best = s.rows.iter().filter(good).max_by(|a, b| a.delivered_per_s.total_cmp(&b.delivered_per_s));
    let met = best.is_some_and(|r| r.delivered_per_s >= min_per_s);
    let mut measured = match best {
        Some(r) => format!(
            "{:.0} deliveries/s at {:.0} msgs/s (last-member p99 {} ms, 0 lost)",
            r.delivered_per_s,
            r.rate,
            ms(r.decisive_latency().p99_ms)
        ),
        None if max_p99_ms.is_finite() => {
            format!("no rate tried had zero loss and last-member p99 < {max_p99_ms} ms")
        }
        None => "no rate tried had zero loss".to_owned(),
    };
    if !met && let Some(m) = most_delivered(&s.rows).filter(|m| best.is_none_or(|b| !std::ptr::eq(*m, b))) {
        measured.push_str(&format!("; most delivered, {}", reached(m)));
    }
    Verdict { target: target.into(), measured, met: Some(met) }
}

/// Idle memory per connection against `max_kib`.
pub fn idle_verdict(target: &str, idle: Option<&IdleReport>, max_kib: f64) -> Verdict {
    match idle {
        Some(r) if r.users > 0 => Verdict {
            target: target.into(),
            measured: format!("{:.2} KiB per connection ({} connections)", r.kib_per_conn, r.users),
            met: Some(r.kib_per_conn <= max_kib),
        },
        _ => Verdict { target: target.into(), measured: "not measured".into(), met: None },
    }
}

/// The servers' CPU per delivered message of `with` against `without`: both, and the
/// difference in per cent of `without`.
pub fn cpu_difference(without: Option<&RunReport>, with: Option<&RunReport>) -> Option<(f64, f64, f64)> {
    let a = without?.server_us_per_delivery?;
    let b = with?.server_us_per_delivery?;
    (a > 0.0).then(|| (a, b, (b - a) / a * 100.0))
}

/// What something costs in server CPU per message (`with` against `without`, `what` naming
/// the two), met when it adds at most `max_pct` per cent; `None` for `max_pct` makes it
/// informational (met stays `None` and the caller marks it so).
pub fn overhead_verdict(
    target: &str,
    what: [&str; 2],
    without: Option<&RunReport>,
    with: Option<&RunReport>,
    max_pct: Option<f64>,
) -> Verdict {
    match cpu_difference(without, with) {
        Some((a, b, d)) => Verdict {
            target: target.into(),
            measured: format!("{b:.1} µs/msg {}, {a:.1} µs/msg {}: {d:+.1} %", what[1], what[0]),
            met: max_pct.map(|max| d <= max),
        },
        None => Verdict { target: target.into(), measured: "not measured".into(), met: None },
    }
}

/// Labelled runs of one load in one table: the usual columns of [`runs_table`] after a
/// first column naming each run.
pub fn labelled_runs_table(runs: &[(&str, &RunReport)]) -> Table {
    let rows: Vec<RunReport> = runs.iter().map(|(_, r)| (*r).clone()).collect();
    let mut t = runs_table(&rows, None);
    t.headers.insert(0, "run".into());
    for (cells, (label, _)) in t.rows.iter_mut().zip(runs) {
        cells.insert(0, (*label).to_owned());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rate: f64, lost: u64, p99: f64) -> RunReport {
        RunReport {
            mode: "chat".into(),
            rate,
            sent: (rate * 10.0) as u64,
            lost,
            delivered_per_s: rate,
            latency: LatencySummary {
                count: 10,
                p50_ms: 1.0,
                p90_ms: 2.0,
                p99_ms: p99,
                p999_ms: p99,
                max_ms: p99,
            },
            server_us_per_delivery: Some(rate / 1000.0),
            ..RunReport::default()
        }
    }

    #[test]
    fn best_is_the_highest_passing_rate() {
        let rows =
            vec![row(5000.0, 0, 1.0), row(20000.0, 0, 40.0), row(10000.0, 0, 2.0), row(30000.0, 5, 1.0)];
        assert_eq!(best_row(&rows, 50.0), Some(1));
        assert_eq!(best_row(&rows, 10.0), Some(2));
        assert_eq!(best_row(&rows, 0.5), None);
        let s = SweepReport::new("chat", 50.0, rows);
        assert_eq!(s.best_rate, Some(20000.0));
        assert_eq!(s.best().map(|r| r.rate), Some(20000.0));
    }

    #[test]
    fn duplicates_or_nothing_sent_fail() {
        let mut r = row(100.0, 0, 1.0);
        assert!(r.passes(50.0));
        r.duplicated = 1;
        assert!(!r.passes(50.0));
        assert!(!RunReport::default().passes(50.0));
    }

    #[test]
    fn group_rows_pass_on_the_last_member() {
        let mut r = row(1000.0, 0, 5.0);
        r.last_member = Some(LatencySummary { p99_ms: 150.0, ..LatencySummary::default() });
        assert!(!r.passes(100.0));
        assert!(r.passes(200.0));
    }

    #[test]
    fn verdicts() {
        let s = SweepReport::new("chat", 50.0, vec![row(10000.0, 0, 3.0), row(20000.0, 0, 12.0)]);
        assert_eq!(rate_verdict("x", Some(&s), 50.0, 20000.0).met, Some(true));
        assert_eq!(rate_verdict("x", Some(&s), 10.0, 20000.0).met, Some(false));
        assert_eq!(rate_verdict("x", None, 10.0, 1.0).met, None);
        // 20 µs at the best row (20000).
        assert_eq!(cpu_verdict("x", Some(&s), 25.0).met, Some(true));
        assert_eq!(cpu_verdict("x", Some(&s), 10.0).met, Some(false));
        let mut with_cpu = row(20000.0, 0, 12.0);
        with_cpu.server_us_per_delivery = Some(30.0);
        with_cpu.servers = vec![CpuUse { name: "n".into(), pid: 1, cpu_s: Some(4.0), sys_s: Some(3.0) }];
        let s2 = SweepReport::new("chat", 50.0, vec![with_cpu]);
        assert_eq!(
            cpu_verdict("x", Some(&s2), 10.0).measured,
            "30.0 µs at 20000 msgs/s (22.5 µs of it in the kernel)"
        );
        assert_eq!(group_verdict("x", Some(&s), 15000.0, 100.0).met, Some(true));
        assert_eq!(group_verdict("x", Some(&s), 50000.0, 100.0).met, Some(false));
        let idle = IdleReport { users: 10, kib_per_conn: 3.5, ..IdleReport::default() };
        assert_eq!(idle_verdict("x", Some(&idle), 4.0).met, Some(true));
        assert_eq!(idle_verdict("x", None, 4.0).met, None);
    }

    #[test]
    fn kernel_share_of_cpu() {
        let u = |cpu, sys| CpuUse { name: "n".into(), pid: 1, cpu_s: Some(cpu), sys_s: Some(sys) };
        assert_eq!(kernel_share(&[u(1.0, 0.5), u(3.0, 1.5)]), Some(0.5));
        assert_eq!(kernel_share(&[u(0.0, 0.0)]), None);
        assert_eq!(kernel_share(&[]), None);
    }

    #[test]
    fn per_connection_memory() {
        let rows = vec![
            RssRow { name: "a".into(), pid: 1, before_kib: 1000, after_kib: 41000 },
            RssRow { name: "b".into(), pid: 2, before_kib: 500, after_kib: 400 },
        ];
        assert_eq!(kib_per_conn(&rows, 10_000), (39_900, 3.99));
        assert_eq!(kib_per_conn(&rows, 0), (39_900, 0.0));
    }

    #[test]
    fn tables_render() {
        let t = Table { headers: vec!["a".into(), "bb".into()], rows: vec![vec!["xyz".into(), "1".into()]] };
        assert_eq!(t.to_text(), "a    bb\nxyz   1\n");
        assert_eq!(t.to_markdown(), "| a | bb |\n|---|---:|\n| xyz | 1 |\n");
        let mut rows = vec![row(5000.0, 0, 1.0), row(10000.0, 0, 2.0)];
        rows[1].last_member = Some(LatencySummary::default());
        rows[1].others = vec![CpuUse { name: "redis".into(), pid: 9, cpu_s: Some(1.0), sys_s: None }];
        let table = runs_table(&rows, Some(10000.0));
        assert!(table.rows.iter().all(|r| r.len() == table.headers.len()), "{table:?}");
        let text = table.to_text();
        assert!(text.contains("10000 *"), "{text}");
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn mysql_cpu_per_message() {
        let mut r = row(10000.0, 0, 2.0);
        r.delivered = 100_000;
        assert_eq!(other_us_per_delivery(&r, MYSQL), None);
        r.others = vec![
            CpuUse { name: "redis".into(), pid: 2, cpu_s: Some(9.0), sys_s: None },
            CpuUse { name: MYSQL.into(), pid: 3, cpu_s: Some(1.5), sys_s: None },
        ];
        assert_eq!(other_us_per_delivery(&r, MYSQL), Some(15.0));
        let table = runs_table(std::slice::from_ref(&r), None);
        assert!(table.rows.iter().all(|row| row.len() == table.headers.len()), "{table:?}");
        let at = table.headers.iter().position(|h| h == "mysql µs/msg").expect("a mysql column");
        assert_eq!(table.headers[at - 1], "srv µs/msg");
        assert_eq!(table.rows[0][at], "15.0");
        // Not watched: no column.
        let plain = runs_table(&[row(10000.0, 0, 2.0)], None);
        assert!(!plain.headers.iter().any(|h| h == "mysql µs/msg"));
    }

    #[test]
    fn side_by_side_rows_fill_their_headers() {
        let mut a = vec![row(5000.0, 0, 1.0), row(20000.0, 3, 80.0)];
        a[1].others = vec![CpuUse { name: MYSQL.into(), pid: 3, cpu_s: Some(2.0), sys_s: None }];
        a[1].delivered = 200_000;
        let b = vec![row(20000.0, 0, 20.0), row(30000.0, 0, 700.0)];
        let (a, b) = (SweepReport::new("chat", 50.0, a), SweepReport::new("chat", 50.0, b));
        let t = compare_table(["durable", "baseline"], [&a, &b]);
        assert!(t.rows.iter().all(|r| r.len() == t.headers.len()), "{t:?}");
        assert_eq!(t.headers[..3], ["rate/s", "deliv/s durable", "deliv/s baseline"]);
        let rates: Vec<&str> = t.rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(rates, ["5000", "20000", "30000"]);
        assert_eq!(t.rows[0][2], "-");
        assert_eq!(t.rows[1][3..7], ["3", "0", "80.00", "20.00"]);
        assert_eq!(t.rows[1][9..11], ["10.0", "-"]);
        assert!(t.to_markdown().lines().all(|l| l.matches('|').count() == t.headers.len() + 1));
    }

    #[test]
    fn verdicts_short_of_a_target_say_what_was_reached() {
        let mut slow = row(30000.0, 0, 700.0);
        slow.delivered_per_s = 28000.0;
        let s = SweepReport::new("chat", 50.0, vec![row(10000.0, 0, 3.0), slow.clone()]);
        let v = rate_verdict("x", Some(&s), 50.0, 20000.0);
        assert_eq!(v.met, Some(false));
        assert_eq!(
            v.measured,
            "10000 msgs/s (p99 3.00 ms, 0 lost); next rate tried, 30000 msgs/s: 28000 deliveries/s, p99 700 ms, 0 lost"
        );
        let mut lossy = row(5000.0, 7, 3.0);
        lossy.late = 2;
        let none = SweepReport::new("chat", 50.0, vec![lossy, slow]);
        assert_eq!(
            rate_verdict("x", Some(&none), 50.0, 20000.0).measured,
            "no rate tried had zero loss and p99 < 50 ms; lowest, 5000 msgs/s: 5000 deliveries/s, p99 3.00 ms, \
             7 lost, 2 late; most delivered, 30000 msgs/s: 28000 deliveries/s, p99 700 ms, 0 lost"
        );
        let mut g = vec![row(500.0, 0, 5.0), row(3000.0, 0, 900.0)];
        for (r, d) in g.iter_mut().zip([24000.0, 98000.0]) {
            r.delivered_per_s = d;
            r.last_member = Some(r.latency);
        }
        let gs = SweepReport::new("group", 100.0, g);
        let v = group_verdict("x", Some(&gs), 50000.0, 100.0);
        assert_eq!(v.met, Some(false));
        assert_eq!(
            v.measured,
            "24000 deliveries/s at 500 msgs/s (last-member p99 5.00 ms, 0 lost); most delivered, \
             3000 msgs/s: 98000 deliveries/s, last-member p99 900 ms, 0 lost"
        );
        assert!(!group_verdict("x", Some(&gs), 20000.0, 100.0).measured.contains("most delivered"));
    }

    #[test]
    fn reports_round_trip_through_json() {
        let s = SweepReport::new("chat", 50.0, vec![row(5000.0, 0, 1.0)]);
        let text = serde_json::to_string(&s).expect("serializes");
        let back: SweepReport = serde_json::from_str(&text).expect("deserializes");
        assert_eq!(back, s);
    }
}
