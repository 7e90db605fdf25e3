//! chat-bench: a load generator for chat-cluster. It speaks the wire protocol
//! like any client, sends by the clock (open loop), and measures per message
//! delivery, loss, duplicates and latency, plus the servers' CPU and memory
//! from /proc. See `chat-bench --help` and deploy/bench.sh.

mod append;
mod churn;
mod cli;
mod client;
mod devices;
mod durability;
mod fleet;
mod idle;
mod mysql;
mod payload;
mod procfs;
mod report;
mod setup;
#[cfg(test)]
mod smoke;
mod stats;
mod suite;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Serialize;

use crate::cli::{Cli, Command, SweepMode, Target};
use crate::fleet::{Fleet, Mode, Ready, Watch};
use crate::procfs::parse_watched;
use crate::report::{SweepReport, idle_text, sweep_text};
use crate::setup::{Setup, unique_prefix};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.check() {
        eprintln!("chat-bench: {e:#}");
        return ExitCode::from(2);
    }
    if let Err(e) = procfs::raise_nofile() {
        eprintln!("chat-bench: warning: cannot raise the open-file limit: {e:#}");
    }
    let runtime = if cli.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads).enable_all().build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chat-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn setup_of(t: &Target) -> anyhow::Result<Setup> {
    let tls = if t.tls { Some(chat_tls::client_config(t.ca_file.as_deref())?) } else { None };
    Ok(Setup {
        nodes: t.nodes.clone(),
        prefix: t.name_prefix.clone().unwrap_or_else(unique_prefix),
        concurrency: t.concurrency,
        tls,
        ws: t.ws,
        proxy: t.proxy,
    })
}

/// The processes to watch, and MySQL's status counters when asked (read once here, so that
/// an unreachable MySQL fails the command before any load).
async fn watch_of(t: &Target) -> anyhow::Result<Watch> {
    let status = match &t.mysql_status {
        Some(url) => {
            let reader = mysql::StatusReader::new(url)?;
            reader.read().await?;
            Some(reader)
        }
        None => None,
    };
    Ok(Watch {
        servers: parse_watched(&t.pids, "server")?,
        others: parse_watched(&t.watch, "other")?,
        status,
    })
}

fn placement(t: &Target) -> String {
    if t.nodes.len() > 1 {
        "users placed on the given nodes round robin".into()
    } else {
        "one address: placement is the balancer's (nginx round robin alternates)".into()
    }
}

/// Prints `text` for people and, with `--json`, `value` for machines on stdout.
fn emit<T: Serialize>(json: bool, text: &str, value: &T) -> anyhow::Result<()> {
    if json {
        eprint!("{text}");
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{text}");
    }
    Ok(())
}

/// Busy cores of the whole machine under which a run may start.
const QUIET_CORES: f64 = 0.3;

/// Waits (at most `limit`) until the whole machine is nearly idle, so that a run does
/// not start in the middle of somebody's build; says so when it gives up.
async fn wait_for_quiet(limit: Duration) {
    let start = Instant::now();
    let mut busy = 0.0;
    while start.elapsed() < limit {
        let meter = procfs::MachineMeter::start();
        let t = Instant::now();
        tokio::time::sleep(Duration::from_millis(500)).await;
        busy = meter.read().map_or(0.0, |m| stats::cores(m.busy_s, t.elapsed().as_secs_f64()));
        if busy < QUIET_CORES {
            return;
        }
    }
    eprintln!("machine still busy ({busy:.2} cores) after {:.0} s; running anyway", limit.as_secs_f64());
}

/// How a sweep goes from rate to rate.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    /// The p99 bound (ms) of a passing rate.
    max_p99_ms: f64,
    /// Quiet between two rates.
    pause: Duration,
    /// Longest wait for a quiet machine before each rate.
    settle: Duration,
    /// Stop after the first rate that does not pass.
    stop_after_fail: bool,
}

impl Pacing {
    /// One run, no waiting: `chat` and `group`.
    fn single(max_p99_ms: f64) -> Pacing {
        Pacing { max_p99_ms, pause: Duration::ZERO, settle: Duration::ZERO, stop_after_fail: false }
    }
}

async fn sweep(
    target: &Target,
    fleet_mode: Mode,
    ready: Vec<Ready>,
    plans: Vec<fleet::Plan>,
    pacing: Pacing,
) -> anyhow::Result<SweepReport> {
    let Pacing { max_p99_ms, pause, settle, stop_after_fail } = pacing;
    let watch = watch_of(target).await?;
    let epoch = Instant::now();
    let mut fleet = Fleet::start(fleet_mode, target.nodes.clone(), placement(target), epoch, ready);
    let mut rows = Vec::with_capacity(plans.len());
    let mode = match fleet_mode {
        Mode::Chat => "chat",
        Mode::Group { .. } => "group",
    };
    for (i, plan) in plans.iter().enumerate() {
        if i > 0 && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        if !settle.is_zero() {
            wait_for_quiet(settle).await;
        }
        eprintln!(
            "{mode}: {:.0} msgs/s for {:.0} s over {} users",
            plan.rate,
            plan.duration.as_secs_f64(),
            fleet.len()
        );
        let row = fleet.run(plan, &watch).await;
        eprint!("{}", report::runs_table(std::slice::from_ref(&row), None).to_text());
        let failed = !row.passes(max_p99_ms);
        rows.push(row);
        if failed && stop_after_fail && i + 1 < plans.len() {
            eprintln!("{mode}: {:.0} msgs/s did not pass; the higher rates are not run", plan.rate);
            break;
        }
    }
    fleet.close().await;
    if let Some(status) = watch.status {
        status.close().await;
    }
    Ok(SweepReport::new(mode, max_p99_ms, rows))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Chat(a) => {
            let ready = setup_of(&a.target)?.chat_users(a.load.users).await?;
            let plan = a.timing.plan(a.rate, a.load.cross, a.target.quiet);
            let s = sweep(&a.target, Mode::Chat, ready, vec![plan], Pacing::single(50.0)).await?;
            let text = sweep_text(&s);
            let row = s.rows.into_iter().next();
            emit(a.target.json, &text, &row)
        }
        Command::Group(a) => {
            let (size, groups) = (a.load.group_size, a.load.groups);
            let ready = setup_of(&a.target)?.group_users(groups, size).await?;
            let plan = a.timing.plan(a.rate, 0.0, a.target.quiet);
            let s = sweep(&a.target, Mode::Group { size, groups }, ready, vec![plan], Pacing::single(100.0))
                .await?;
            let text = sweep_text(&s);
            let row = s.rows.into_iter().next();
            emit(a.target.json, &text, &row)
        }
        Command::Sweep(a) => {
            let setup = setup_of(&a.target)?;
            let (mode, ready, cross) = match a.mode {
                SweepMode::Chat => (Mode::Chat, setup.chat_users(a.chat.users).await?, a.chat.cross),
                SweepMode::Group => {
                    let (size, groups) = (a.group.group_size, a.group.groups);
                    (Mode::Group { size, groups }, setup.group_users(groups, size).await?, 0.0)
                }
            };
            let plans = a.rates.iter().map(|r| a.timing.plan(*r, cross, a.target.quiet)).collect();
            let s = sweep(
                &a.target,
                mode,
                ready,
                plans,
                Pacing {
                    max_p99_ms: a.max_p99_ms,
                    pause: Duration::from_secs_f64(a.pause),
                    settle: Duration::from_secs_f64(a.settle),
                    stop_after_fail: a.stop_after_fail,
                },
            )
            .await?;
            emit(a.target.json, &sweep_text(&s), &s)
        }
        Command::Idle(a) => {
            let servers = parse_watched(&a.target.pids, "server")?;
            let r =
                idle::idle(&setup_of(&a.target)?, a.users, Duration::from_secs_f64(a.hold), &servers).await?;
            emit(a.target.json, &idle_text(&r), &r)
        }
        Command::Append(a) => {
            let status = mysql::StatusReader::new(&a.mysql_url)?;
            let plan = append::AppendPlan {
                url: a.mysql_url.clone(),
                table: a.table.clone(),
                counter: (a.counter_table.clone(), a.counter_column.clone()),
                variants: a.variants.clone(),
                transactions: a.transactions,
                users: a.users,
                msg_bytes: a.msg_bytes,
                mysql: parse_watched(&a.pids, "mysql")?,
                status: Some(status.clone()),
            };
            let result = append::run(&plan).await;
            status.close().await;
            let suite = result?;
            let text = format!(
                "columns: {}\n{}",
                suite.columns.join(", "),
                append::append_table(&suite.runs).to_text()
            );
            emit(a.json, &text, &suite)
        }
        Command::Connect(a) => {
            let servers = parse_watched(&a.target.pids, "server")?;
            let r = churn::churn(&setup_of(&a.target)?, a.users, a.conns, &servers).await?;
            emit(a.target.json, &churn::connect_text(&r), &r)
        }
        Command::Sessions(a) => {
            let servers = parse_watched(&a.target.pids, "server")?;
            let duration = Duration::from_secs(a.duration);
            let rows =
                devices::sessions(&setup_of(&a.target)?, a.pairs, &a.sessions, a.rate, duration, &servers)
                    .await?;
            emit(a.target.json, &devices::sessions_text(&rows), &rows)
        }
        Command::Presence(a) => {
            let servers = parse_watched(&a.target.pids, "server")?;
            let rows = devices::presence(&setup_of(&a.target)?, &a.friends, a.cycles, &servers).await?;
            emit(a.target.json, &devices::presence_text(&rows), &rows)
        }
        Command::Report(a) => {
            let (suite, problems) = suite::Suite::load(&a.dir);
            print!("{}", suite.markdown(&problems));
            Ok(())
        }
    }
}
