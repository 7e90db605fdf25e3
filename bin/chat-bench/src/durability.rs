//! Issue 19's part of bench/RESULTS.md: what durability costs beside the at-most-once
//! baseline, measured in one suite run — the targets and whether each is met, the
//! nodes' and MySQL's CPU per rate beside the baseline's, MySQL's statements,
//! commits and fsyncs per chat, the bare append, and one node on SQLite. Computed
//! from the suite's JSON files; no I/O here.

use std::fmt::Write as _;

use crate::append::{AppendReport, append_table};
use crate::mysql::per;
use crate::report::{
    MYSQL, RunReport, SweepReport, Table, Verdict, group_verdict, other_us_per_delivery, rate_verdict,
};
use crate::suite::Suite;

/// A cost target: nodes + MySQL of the durable run against the baseline's nodes, at one rate.
pub struct CostTarget {
    /// Messages per second of the row.
    pub rate: f64,
    /// The bound on the ratio.
    pub max_ratio: f64,
}

/// The cost targets of issue 19 (cross-node, against the at-most-once baseline).
pub const COST_TARGETS: [CostTarget; 3] = [
    CostTarget { rate: 1_000.0, max_ratio: 2.5 },
    CostTarget { rate: 5_000.0, max_ratio: 2.0 },
    CostTarget { rate: 20_000.0, max_ratio: 1.5 },
];

/// MySQL round trips (`Questions`) per chat at 5,000 msgs/s and above.
pub const MAX_QUESTIONS_PER_CHAT: f64 = 0.5;
/// Rates from which the bound on round trips holds.
pub const QUESTIONS_FROM_RATE: f64 = 5_000.0;
/// Statement prepares (`Com_stmt_prepare`) per chat, at every cross-node rate.
pub const MAX_PREPARES_PER_CHAT: f64 = 0.05;
/// MySQL CPU per chat at 20,000 msgs/s against the bare append into the same table.
pub const MAX_MYSQL_VS_BARE: f64 = 1.5;
/// The highest passing durable rate against the baseline's.
pub const MIN_BEST_RATE_SHARE: f64 = 0.75;

/// The rows per transaction of the bare-append row the server is compared with.
pub const BARE_BATCH: usize = 100;

fn row_at(sweep: Option<&SweepReport>, rate: f64) -> Option<&RunReport> {
    sweep?.rows.iter().find(|r| r.rate == rate)
}

fn mysql_cpu_s(r: &RunReport) -> Option<f64> {
    let cpu: Option<f64> = r.others.iter().filter(|o| o.name == MYSQL).map(|o| o.cpu_s).sum();
    cpu.filter(|_| r.others.iter().any(|o| o.name == MYSQL))
}

fn cores(cpu_s: Option<f64>, r: &RunReport) -> String {
    cpu_s.map_or_else(|| "-".into(), |s| format!("{:.2}", crate::stats::cores(s, r.wall_s)))
}

/// Nodes + MySQL CPU per delivered message of `durable`, the nodes' of `baseline`, and their ratio.
pub fn cost_ratio(durable: &RunReport, baseline: &RunReport) -> Option<(f64, f64, f64)> {
    let d = durable.server_us_per_delivery? + other_us_per_delivery(durable, MYSQL)?;
    let b = baseline.server_us_per_delivery?;
    (b > 0.0).then(|| (d, b, d / b))
}

fn not_measured(target: String) -> Verdict {
    Verdict { target, measured: "not measured".into(), met: None }
}

/// Nodes + MySQL at `t.rate` against the baseline's nodes at the same rate.
pub fn cost_verdict(
    durable: Option<&SweepReport>,
    baseline: Option<&SweepReport>,
    t: &CostTarget,
) -> Verdict {
    let target = format!(
        "cross-node at {} msgs/s: nodes + MySQL CPU ≤ {}× the baseline's nodes'",
        thousands(t.rate),
        t.max_ratio
    );
    let (Some(d), Some(b)) = (row_at(durable, t.rate), row_at(baseline, t.rate)) else {
        return not_measured(target);
    };
    let Some((dus, bus, ratio)) = cost_ratio(d, b) else { return not_measured(target) };
    let measured = format!(
        "{ratio:.2}×: nodes {} + MySQL {} cores ({dus:.1} µs/msg) against the baseline's nodes {} cores \
         ({bus:.1} µs/msg)",
        cores(d.server_cpu_s, d),
        cores(mysql_cpu_s(d), d),
        cores(b.server_cpu_s, b),
    );
    Verdict { target, measured, met: Some(ratio <= t.max_ratio) }
}

/// The durable row at `rate` passes (0 lost, p99 under `max_p99_ms`).
pub fn row_verdict(target: &str, sweep: Option<&SweepReport>, rate: f64, max_p99_ms: f64) -> Verdict {
    let Some(r) = row_at(sweep, rate) else { return not_measured(target.into()) };
    let mut measured = format!("p99 {:.2} ms, {} lost", r.decisive_latency().p99_ms, r.lost);
    for (n, what) in [(r.late, "late"), (r.duplicated, "duplicated"), (r.misrouted, "misrouted")] {
        if n > 0 {
            let _ = write!(measured, ", {n} {what}");
        }
    }
    let _ = write!(measured, "; {:.0} deliveries/s", r.delivered_per_s);
    Verdict { target: target.into(), measured, met: Some(r.passes(max_p99_ms)) }
}

/// The highest passing durable rate against the baseline's.
pub fn best_rate_verdict(durable: Option<&SweepReport>, baseline: Option<&SweepReport>) -> Verdict {
    let target = format!(
        "cross-node: the highest rate with 0 lost and p99 < 50 ms ≥ {MIN_BEST_RATE_SHARE}× the baseline's"
    );
    let (Some(d), Some(b)) = (durable, baseline) else { return not_measured(target) };
    let show = |r: Option<f64>| r.map_or_else(|| "none".to_owned(), |r| format!("{r:.0} msgs/s"));
    let measured = format!("durable {}, baseline {}", show(d.best_rate), show(b.best_rate));
    let met = match (d.best_rate, b.best_rate) {
        (Some(d), Some(b)) => d >= MIN_BEST_RATE_SHARE * b,
        (None, Some(_)) => false,
        (_, None) => {
            return Verdict { target, measured: format!("{measured} (the baseline passed none)"), met: None };
        }
    };
    let tried = b.rows.iter().map(|r| r.rate).fold(0.0, f64::max);
    let note = if b.best_rate == Some(tried) { " (the baseline passed every rate tried)" } else { "" };
    Verdict { target, measured: format!("{measured}{note}"), met: Some(met) }
}

/// `counter` per chat over the rows of `sweep` from `from_rate` up, against `max`: met when
/// every such row is within it; the measurement lists each row.
pub fn counter_verdict(
    target: &str,
    sweep: Option<&SweepReport>,
    counter: &str,
    from_rate: f64,
    max: f64,
) -> Verdict {
    let Some(s) = sweep else { return not_measured(target.into()) };
    let rows: Vec<(f64, Option<f64>)> = s
        .rows
        .iter()
        .filter(|r| r.rate >= from_rate)
        .map(|r| (r.rate, per(r.mysql.as_ref(), counter, r.sent)))
        .collect();
    if rows.is_empty() || rows.iter().all(|(_, v)| v.is_none()) {
        return not_measured(target.into());
    }
    let measured = rows
        .iter()
        .map(|(rate, v)| {
            format!("{}: {}", thousands(*rate), v.map_or_else(|| "-".into(), |v| format!("{v:.3}")))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let met = rows.iter().all(|(_, v)| v.is_some_and(|v| v <= max));
    Verdict { target: target.into(), measured: format!("per chat at {measured}"), met: Some(met) }
}

/// The bare-append run the server's MySQL CPU is compared with: the message table, [`BARE_BATCH`] rows.
pub fn bare_message_row(runs: &[AppendReport]) -> Option<&AppendReport> {
    runs.iter().find(|r| r.kind == "message" && r.batch == BARE_BATCH)
}

/// MySQL CPU per chat of the durable cross-node row at 20,000 against the bare append.
pub fn mysql_vs_bare_verdict(durable: Option<&SweepReport>, bare: Option<&AppendReport>) -> Verdict {
    let target = format!(
        "MySQL CPU per chat at 20,000 msgs/s ≤ {MAX_MYSQL_VS_BARE}× the bare append into the same table \
         ({BARE_BATCH} rows per transaction)"
    );
    let server = row_at(durable, 20_000.0).and_then(|r| other_us_per_delivery(r, MYSQL));
    let bare_us = bare.and_then(|b| b.mysql_us_per_row);
    let (Some(s), Some(b)) = (server, bare_us) else { return not_measured(target) };
    if b <= 0.0 {
        return not_measured(target);
    }
    Verdict {
        target,
        measured: format!("{:.2}×: {s:.1} µs per chat through the server, {b:.1} µs per row bare", s / b),
        met: Some(s / b <= MAX_MYSQL_VS_BARE),
    }
}

/// 1,000-style thousands for rates in target lines.
fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Suite {
    /// The targets of issue 19, in its order.
    pub fn durability_verdicts(&self) -> Vec<Verdict> {
        let (cross, base) = (self.cross.as_ref(), self.cross_baseline.as_ref());
        let mut v: Vec<Verdict> = COST_TARGETS[..2].iter().map(|t| cost_verdict(cross, base, t)).collect();
        v.push(row_verdict("cross-node at 20,000 msgs/s: 0 lost, p99 < 50 ms", cross, 20_000.0, 50.0));
        v.push(cost_verdict(cross, base, &COST_TARGETS[2]));
        v.push(best_rate_verdict(cross, base));
        v.push(counter_verdict(
            "MySQL round trips (Questions) ≤ 0.5 per chat at 5,000 msgs/s and above (cross-node)",
            cross,
            "Questions",
            QUESTIONS_FROM_RATE,
            MAX_QUESTIONS_PER_CHAT,
        ));
        v.push(counter_verdict(
            "statement prepares (Com_stmt_prepare) ≤ 0.05 per chat (cross-node, every rate)",
            cross,
            "Com_stmt_prepare",
            0.0,
            MAX_PREPARES_PER_CHAT,
        ));
        v.push(mysql_vs_bare_verdict(cross, self.append.as_ref().and_then(|a| bare_message_row(&a.runs))));
        v.push(rate_verdict(
            "SQLite, one node (same-node): ≥ 20,000 msgs/s with 0 lost and p99 < 50 ms",
            self.sqlite.as_ref(),
            50.0,
            20_000.0,
        ));
        v.push(row_verdict(
            "same-node on MySQL at 10,000 msgs/s: p99 < 10 ms (0 lost)",
            self.same.as_ref(),
            10_000.0,
            10.0,
        ));
        // Counted at the sweep's own bound (the last member's p99 under 100 ms), as issue 10's
        // group target is: a rate that delivers everything seconds late has not kept up.
        v.push(group_verdict(
            "groups of 50: the durable rate ≥ 50,000 deliveries/s, 0 lost (last-member p99 < 100 ms)",
            self.group50.as_ref(),
            50_000.0,
            100.0,
        ));
        v
    }

    /// "The cost of durability" section: cores per rate beside the baseline, MySQL's
    /// counters per chat, the bare append, and one node on SQLite.
    pub fn durability_section(&self, out: &mut String) {
        out.push_str("\n## The cost of durability (issue 19)\n\n");
        out.push_str(
            "Cross-node one-to-one from 200 msgs/s up, this commit's durable server beside the \
             at-most-once baseline in the same run (the sweeps above, same users and rates). CPU \
             from /proc of each node process and of mariadbd over each run; \"µs/msg\" is CPU per \
             delivered message, and the ratio compares nodes + MySQL with the baseline's nodes \
             (at one rate, the same ratio as their cores).\n\n",
        );
        match (&self.cross, &self.cross_baseline) {
            (Some(d), Some(b)) => out.push_str(&cost_table(d, b).to_markdown()),
            (Some(d), None) => {
                out.push_str("No baseline in this run: the durable side alone.\n\n");
                out.push_str(&cost_table(d, &SweepReport::default()).to_markdown());
            }
            _ => out.push_str("Not measured.\n"),
        }
        out.push_str(
            "\n### MySQL's work per chat\n\n`SHOW GLOBAL STATUS` deltas over each run divided by \
             the chats sent (the counters are the whole server's: anything else using this \
             MariaDB at the time counts too; the bench's own two readings add 2 Questions per \
             run). Questions are the statements clients sent (round trips; a stored procedure's \
             inner statements are not counted); Com_commit counts COMMIT statements, Handler_commit \
             every commit inside the engine, stored procedures' included.\n\n",
        );
        let sweeps = [
            ("durable, cross-node", &self.cross),
            ("baseline, cross-node", &self.cross_baseline),
            ("durable, same-node", &self.same),
            ("durable, groups of 50", &self.group50),
        ];
        let present: Vec<(&str, &SweepReport)> =
            sweeps.iter().filter_map(|(l, s)| s.as_ref().map(|s| (*l, s))).collect();
        if present.iter().any(|(_, s)| s.rows.iter().any(|r| r.mysql.is_some())) {
            out.push_str(&counters_table(&present).to_markdown());
        } else {
            out.push_str("Not measured (no `--mysql-status` in these runs).\n");
        }
        out.push_str("\n### The bare append\n\n");
        match &self.append {
            Some(a) => {
                out.push_str(
                    "The rows the server stores, inserted by a minimal loop (`chat-bench append`) \
                     on one connection in a database of their own migrated by `chat-server \
                     migrate`: the message table as the migrations leave it, one multi-row \
                     INSERT and one UPDATE of the conversations' counters per transaction, and \
                     for reference a log clustered on (conv, seq) with nothing else (no other \
                     index, no counter). Prepared statements, one transaction at a time; MySQL's \
                     CPU from /proc.\n\n",
                );
                let _ = writeln!(out, "Columns (and how the loop fills them): {}.\n", a.columns.join(", "));
                out.push_str(&append_table(&a.runs).to_markdown());
                if let (Some(bare), Some(r)) =
                    (bare_message_row(&a.runs), row_at(self.cross.as_ref(), 20_000.0))
                    && let (Some(b), Some(s)) = (bare.mysql_us_per_row, other_us_per_delivery(r, MYSQL))
                {
                    let _ = writeln!(
                        out,
                        "\nThrough the server at 20,000 msgs/s MySQL spent {s:.1} µs per chat; the bare \
                         append into the same table {b:.1} µs per row ({} rows per transaction).",
                        bare.batch
                    );
                }
            }
            None => out.push_str("Not measured.\n"),
        }
        out.push_str(
            "\n### One node on SQLite (the embedded default)\n\nOne node with a SQLite database \
             (no database URL: the default `data/chat.db`, here under bench/run/sqlite/) and the in-process broker (no Redis), with \
             its default worker threads (one per core, unless BENCH_SQLITE_WORKERS says otherwise), every message to a user on \
             the same node, rates up until one fails.\n\n",
        );
        crate::suite::sweep_section(out, self.sqlite.as_ref());
    }
}

/// One row per rate of the durable sweep: its nodes' and MySQL's cores and CPU per message,
/// the baseline's, their ratio, and both p99s.
pub fn cost_table(durable: &SweepReport, baseline: &SweepReport) -> Table {
    let headers = [
        "rate/s",
        "nodes cores",
        "MySQL cores",
        "nodes + MySQL µs/msg",
        "p99 ms",
        "baseline nodes cores",
        "baseline MySQL cores",
        "baseline nodes µs/msg",
        "baseline p99 ms",
        "ratio",
    ]
    .map(String::from)
    .to_vec();
    let mut rates: Vec<f64> = durable.rows.iter().chain(&baseline.rows).map(|r| r.rate).collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    let dash = || "-".to_owned();
    let rows = rates
        .iter()
        .map(|rate| {
            let d = durable.rows.iter().find(|r| r.rate == *rate);
            let b = baseline.rows.iter().find(|r| r.rate == *rate);
            let mut cells = vec![format!("{rate:.0}")];
            match d {
                Some(d) => cells.extend([
                    cores(d.server_cpu_s, d),
                    cores(mysql_cpu_s(d), d),
                    d.server_us_per_delivery
                        .zip(other_us_per_delivery(d, MYSQL))
                        .map_or_else(dash, |(a, m)| format!("{:.1}", a + m)),
                    format!("{:.2}", d.latency.p99_ms),
                ]),
                None => cells.extend([dash(), dash(), dash(), dash()]),
            }
            match b {
                Some(b) => cells.extend([
                    cores(b.server_cpu_s, b),
                    cores(mysql_cpu_s(b), b),
                    b.server_us_per_delivery.map_or_else(dash, |v| format!("{v:.1}")),
                    format!("{:.2}", b.latency.p99_ms),
                ]),
                None => cells.extend([dash(), dash(), dash(), dash()]),
            }
            cells.push(
                d.zip(b)
                    .and_then(|(d, b)| cost_ratio(d, b))
                    .map_or_else(dash, |(_, _, r)| format!("{r:.2}×")),
            );
            cells
        })
        .collect();
    Table { headers, rows }
}

/// MySQL's counters per chat, one row per run of each labelled sweep.
pub fn counters_table(sweeps: &[(&str, &SweepReport)]) -> Table {
    let mut headers = vec!["run".to_owned(), "rate/s".to_owned(), "chats".to_owned()];
    headers.extend(crate::mysql::COUNTERS.iter().map(|c| format!("{c}/chat")));
    let mut rows = Vec::new();
    for (label, s) in sweeps {
        for r in &s.rows {
            let mut cells = vec![(*label).to_owned(), format!("{:.0}", r.rate), r.sent.to_string()];
            cells.extend(crate::mysql::COUNTERS.iter().map(|c| {
                per(r.mysql.as_ref(), c, r.sent).map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
            }));
            rows.push(cells);
        }
    }
    Table { headers, rows }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::Counters;
    use crate::procfs::CpuUse;
    use crate::stats::LatencySummary;

    /// A one-to-one run: `srv` and `mysql` µs per message, `questions` and `prepares` per chat.
    fn run(rate: f64, p99: f64, srv: f64, mysql: Option<f64>, status: Option<(f64, f64)>) -> RunReport {
        let n = (rate * 10.0) as u64;
        let mut others = vec![CpuUse { name: "redis".into(), pid: 2, cpu_s: Some(0.1), sys_s: None }];
        if let Some(m) = mysql {
            others.push(CpuUse { name: MYSQL.into(), pid: 3, cpu_s: Some(m * n as f64 / 1e6), sys_s: None });
        }
        RunReport {
            mode: "chat".into(),
            rate,
            sent: n,
            expected: n,
            delivered: n,
            delivered_per_s: rate,
            wall_s: 10.0,
            latency: LatencySummary { count: n, p99_ms: p99, ..LatencySummary::default() },
            server_cpu_s: Some(srv * n as f64 / 1e6),
            server_us_per_delivery: Some(srv),
            others,
            mysql: status.map(|(q, p)| {
                Counters::from([
                    ("Questions".to_owned(), (q * n as f64) as u64),
                    ("Com_stmt_prepare".to_owned(), (p * n as f64) as u64),
                ])
            }),
            ..RunReport::default()
        }
    }

    #[test]
    fn cost_is_nodes_and_mysql_against_the_baselines_nodes() {
        let d = SweepReport::new(
            "chat",
            50.0,
            vec![run(1000.0, 5.0, 100.0, Some(140.0), None), run(5000.0, 9.0, 60.0, Some(50.0), None)],
        );
        let b = SweepReport::new(
            "chat",
            50.0,
            vec![run(1000.0, 1.0, 100.0, Some(1.0), None), run(5000.0, 1.0, 50.0, Some(1.0), None)],
        );
        let v = cost_verdict(Some(&d), Some(&b), &COST_TARGETS[0]);
        assert_eq!(v.met, Some(true), "{v:?}");
        assert!(
            v.measured.starts_with("2.40×: nodes 0.10 + MySQL 0.14 cores (240.0 µs/msg)"),
            "{}",
            v.measured
        );
        // 2.2 > 2: not met.
        let v = cost_verdict(Some(&d), Some(&b), &COST_TARGETS[1]);
        assert_eq!(v.met, Some(false));
        assert!(v.measured.starts_with("2.20×"), "{}", v.measured);
        assert_eq!(
            cost_verdict(Some(&d), Some(&b), &COST_TARGETS[1]).target,
            "cross-node at 5,000 msgs/s: nodes + MySQL CPU ≤ 2× the baseline's nodes'"
        );
        // Within a looser bound it is met.
        assert_eq!(
            cost_verdict(Some(&d), Some(&b), &CostTarget { rate: 5000.0, max_ratio: 2.5 }).met,
            Some(true)
        );
        assert_eq!(cost_verdict(Some(&d), Some(&b), &COST_TARGETS[2]).met, None);
        assert_eq!(cost_verdict(Some(&d), None, &COST_TARGETS[0]).met, None);
        let t = cost_table(&d, &b);
        assert!(t.rows.iter().all(|r| r.len() == t.headers.len()), "{t:?}");
        assert_eq!(t.rows[0].last().map(String::as_str), Some("2.40×"));
    }

    #[test]
    fn counters_per_chat_from_a_rate_up() {
        let d = SweepReport::new(
            "chat",
            50.0,
            vec![
                run(200.0, 5.0, 1.0, None, Some((3.0, 0.0))),
                run(5000.0, 5.0, 1.0, None, Some((0.4, 0.01))),
                run(20000.0, 5.0, 1.0, None, Some((0.5, 0.06))),
            ],
        );
        let q = counter_verdict("q", Some(&d), "Questions", 5000.0, 0.5);
        assert_eq!(q.met, Some(true), "{q:?}");
        assert_eq!(q.measured, "per chat at 5,000: 0.400, 20,000: 0.500");
        let p = counter_verdict("p", Some(&d), "Com_stmt_prepare", 0.0, 0.05);
        assert_eq!(p.met, Some(false));
        assert_eq!(counter_verdict("x", Some(&d), "Com_commit", 0.0, 1.0).met, None);
        let t = counters_table(&[("durable", &d)]);
        assert!(t.rows.iter().all(|r| r.len() == t.headers.len()), "{t:?}");
        assert_eq!(t.rows[0][3], "3.000");
    }

    #[test]
    fn best_rate_and_bare_append() {
        let d = SweepReport::new(
            "chat",
            50.0,
            vec![run(10000.0, 20.0, 1.0, Some(30.0), None), run(20000.0, 80.0, 1.0, Some(30.0), None)],
        );
        let b = SweepReport::new(
            "chat",
            50.0,
            vec![run(10000.0, 2.0, 1.0, None, None), run(20000.0, 3.0, 1.0, None, None)],
        );
        let v = best_rate_verdict(Some(&d), Some(&b));
        assert_eq!(v.met, Some(false));
        assert_eq!(
            v.measured,
            "durable 10000 msgs/s, baseline 20000 msgs/s (the baseline passed every rate tried)"
        );
        let bare = AppendReport {
            kind: "message".into(),
            batch: 100,
            mysql_us_per_row: Some(20.0),
            ..AppendReport::default()
        };
        let v = mysql_vs_bare_verdict(Some(&d), Some(&bare));
        assert_eq!(v.met, Some(true), "{v:?}");
        assert_eq!(v.measured, "1.50×: 30.0 µs per chat through the server, 20.0 µs per row bare");
        assert_eq!(mysql_vs_bare_verdict(Some(&d), None).met, None);
        assert_eq!(row_verdict("x", Some(&d), 20000.0, 50.0).met, Some(false));
        assert_eq!(
            row_verdict("x", Some(&d), 10000.0, 50.0).measured,
            "p99 20.00 ms, 0 lost; 10000 deliveries/s"
        );
        assert_eq!(thousands(20000.0), "20,000");
        assert_eq!(thousands(200.0), "200");
    }
}
