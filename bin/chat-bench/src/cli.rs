//! The command line: subcommands, their options, and the checks of values
//! clap cannot express. No I/O here.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::fleet::Plan;

/// Load generator for chat-cluster: speaks the wire protocol like any client.
#[derive(Debug, Parser)]
#[command(name = "chat-bench", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads of the bench's own runtime (1: single-threaded, the cheapest).
    #[arg(long, global = true, default_value_t = 1)]
    pub threads: usize,
    /// What to measure.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One-to-one chat at one rate.
    Chat(ChatArgs),
    /// Group chat at one rate.
    Group(GroupArgs),
    /// One run per rate, on the same logged-in users; marks the highest passing rate.
    Sweep(SweepArgs),
    /// Hold N idle logged-in connections and report the servers' memory per connection.
    Idle(IdleArgs),
    /// Render the Markdown results of a `deploy/bench.sh` suite from its JSON files.
    Report(ReportArgs),
    /// The bare append: the server's message rows inserted by a minimal loop, no server.
    Append(AppendArgs),
    /// Connection churn: connect, log in, log out and close, N times; the nodes' CPU per connection.
    Connect(ConnectArgs),
    /// Chats to users with K sessions each, beside the same load to users with one (issue 20).
    Sessions(SessionsArgs),
    /// A user with F friends online logs in and out N times, beside F = 0 (issue 20).
    Presence(PresenceArgs),
}

/// Where the servers are and how to report.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Addresses to connect to, used round robin: the nodes themselves, or one nginx address.
    #[arg(long, value_delimiter = ',', required = true, value_name = "ADDR[,ADDR..]")]
    pub nodes: Vec<String>,
    /// Server processes whose CPU counts as the server's: PID or NAME=PID, comma-separated.
    #[arg(long, alias = "pid", default_value = "", value_name = "PID,..")]
    pub pids: String,
    /// Other processes to report CPU for (not counted as server): NAME=PID, comma-separated.
    #[arg(long, default_value = "", value_name = "NAME=PID,..")]
    pub watch: String,
    /// Print the report as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// No progress line every second.
    #[arg(long)]
    pub quiet: bool,
    /// Prefix of user names (default: unique per process).
    #[arg(long, value_name = "TEXT")]
    pub name_prefix: Option<String>,
    /// Registrations and logins in flight at once.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub concurrency: usize,
    /// Connect over TLS (the nodes run with --tls-cert/--tls-key); the server's certificate
    /// is checked against the HOST of each address.
    #[arg(long)]
    pub tls: bool,
    /// PEM file of the certificates to trust with --tls (a private CA, or the bench's
    /// self-signed server certificate); default: the system's trust store.
    #[arg(long, value_name = "PEM", requires = "tls")]
    pub ca_file: Option<PathBuf>,
    /// Connect over WebSocket: the addresses are the nodes' `ws_listen` (or nginx's web port),
    /// each frame one text message at `ws://ADDR/ws`.
    #[arg(long, conflicts_with = "tls")]
    pub ws: bool,
    /// Start each connection with a PROXY protocol v1 header naming an address of its own
    /// (10.x.y.z), as nginx's `proxy_protocol on;` does: the nodes (run with proxy_protocol,
    /// this host in proxy_from) count each connection under its own address.
    #[arg(long)]
    pub proxy: bool,
    /// Read MySQL's global status counters (statements, prepares, commits, fsyncs) before
    /// and after each run over this URL (`mysql://USER:PASS@HOST:PORT/DB`).
    #[arg(long, value_name = "URL")]
    pub mysql_status: Option<String>,
}

/// Who talks one-to-one.
#[derive(Debug, Clone, Args)]
pub struct ChatLoad {
    /// Users (connections), spread over the addresses round robin.
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Share of messages to a user on another address (with several addresses given).
    #[arg(long, default_value_t = 0.5, value_name = "F")]
    pub cross: f64,
}

/// Who talks in groups.
#[derive(Debug, Clone, Args)]
pub struct GroupLoad {
    /// Members per group (each message is delivered to the other G-1).
    #[arg(long, default_value_t = 10, value_name = "G")]
    pub group_size: usize,
    /// Groups (users = groups × group size).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub groups: usize,
}

/// Message size and timing of a run.
#[derive(Debug, Clone, Args)]
pub struct Timing {
    /// Bytes of each message's text.
    #[arg(long, default_value_t = 64, value_name = "B")]
    pub msg_bytes: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0, value_name = "S")]
    pub duration: f64,
    /// Seconds deliveries may take after the last send; later ones count as late.
    #[arg(long, default_value_t = 3.0, value_name = "S")]
    pub grace: f64,
    /// Seconds to keep waiting after the grace period while late deliveries still arrive
    /// (at least one a second); what has not arrived then counts as lost.
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    pub drain: f64,
    /// Seed of the recipient choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `chat`.
#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub load: ChatLoad,
    #[command(flatten)]
    pub timing: Timing,
    /// Messages per second, all users together.
    #[arg(long, value_name = "R")]
    pub rate: f64,
}

/// `connect`.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub target: Target,
    /// Users registered first; the connections log them in in turn.
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Connections opened, logged in, logged out and closed.
    #[arg(long, default_value_t = 5000, value_name = "N")]
    pub conns: usize,
}

/// `sessions`.
#[derive(Debug, Clone, Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Sender → recipient pairs.
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Sessions per recipient, one run each (new users each run).
    #[arg(long, value_delimiter = ',', default_value = "1,3", value_name = "K[,K..]")]
    pub sessions: Vec<usize>,
    /// Chats per second, all pairs together.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Seconds of traffic per run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
}

/// `presence`.
#[derive(Debug, Clone, Args)]
pub struct PresenceArgs {
    #[command(flatten)]
    pub target: Target,
    /// Friends of the user (all online), one run each; 0 is the plain login/logout cycle.
    #[arg(long, value_delimiter = ',', default_value = "0,200", value_name = "F[,F..]")]
    pub friends: Vec<usize>,
    /// Login + logout cycles per run.
    #[arg(long, default_value_t = 50)]
    pub cycles: usize,
}

/// `group`.
#[derive(Debug, Clone, Args)]
pub struct GroupArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub load: GroupLoad,
    #[command(flatten)]
    pub timing: Timing,
    /// Group messages per second, all senders together (deliveries/s = R × (G-1)).
    #[arg(long, value_name = "R")]
    pub rate: f64,
}

/// What a sweep sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SweepMode {
    /// One-to-one.
    Chat,
    /// Group chat.
    Group,
}

/// `sweep`.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub target: Target,
    /// One-to-one or group chat.
    #[arg(long, value_enum, default_value_t = SweepMode::Chat)]
    pub mode: SweepMode,
    #[command(flatten)]
    pub chat: ChatLoad,
    #[command(flatten)]
    pub group: GroupLoad,
    #[command(flatten)]
    pub timing: Timing,
    /// Rates to run, in messages per second.
    #[arg(long, value_delimiter = ',', required = true, value_name = "R1,R2,..")]
    pub rates: Vec<f64>,
    /// A rate passes with zero loss and p99 (to the last member, for groups) under this.
    #[arg(long, default_value_t = 50.0, value_name = "MS")]
    pub max_p99_ms: f64,
    /// Seconds of quiet between two rates.
    #[arg(long, default_value_t = 1.0, value_name = "S")]
    pub pause: f64,
    /// Before each rate, wait up to this many seconds for the whole machine to be
    /// nearly idle (under 0.3 busy cores), so a run does not start inside someone's build (0: don't).
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    pub settle: f64,
    /// Stop after the first rate that does not pass (the rates after it are not run).
    #[arg(long)]
    pub stop_after_fail: bool,
}

/// `idle`.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub target: Target,
    /// Connections to log in and hold.
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Seconds to hold them.
    #[arg(long, default_value_t = 10.0, value_name = "S")]
    pub hold: f64,
}

/// `append`.
#[derive(Debug, Clone, Args)]
pub struct AppendArgs {
    /// The database to append in (`mysql://USER:PASS@HOST:PORT/DB`), migrated by
    /// `chat-server migrate` and used for nothing else: the loop adds rows there and
    /// drops and recreates its reference table `BareAppendLog`.
    #[arg(long, value_name = "URL")]
    pub mysql_url: String,
    /// The server's message table.
    #[arg(long, default_value = "Message", value_name = "TABLE")]
    pub table: String,
    /// The table holding each conversation's counter (its key is `id`).
    #[arg(long, default_value = "Conversation", value_name = "TABLE")]
    pub counter_table: String,
    /// The counter's column, bumped once per conversation per transaction.
    #[arg(long, default_value = "lastseq", value_name = "COLUMN")]
    pub counter_column: String,
    /// What to run, in order: `message:ROWS` (the message table, ROWS per transaction, with
    /// the counter bump) or `log:ROWS` (a log clustered on (conv, seq), nothing else).
    #[arg(long, value_delimiter = ',', default_value = "message:100,log:100", value_name = "KIND:ROWS,..")]
    pub variants: Vec<crate::append::Variant>,
    /// Transactions measured per variant.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub transactions: u64,
    /// Users the conversations are between (each pair is one conversation).
    #[arg(long, default_value_t = 200)]
    pub users: u32,
    /// Bytes of each message's text.
    #[arg(long, default_value_t = 64, value_name = "B")]
    pub msg_bytes: usize,
    /// MySQL's server process(es), whose CPU is measured: PID or NAME=PID.
    #[arg(long, default_value = "", value_name = "PID,..")]
    pub pids: String,
    /// Print the report as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// `report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Folder with the suite's JSON files (cross.json, same.json, nginx.json, group10.json, group50.json, idle.json;
    /// with baseline.txt naming a baseline server, also cross-baseline.json and group50-baseline.json).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

fn positive(name: &str, v: f64) -> anyhow::Result<()> {
    ensure!(v.is_finite() && v > 0.0, "--{name} must be a positive number (got {v})");
    Ok(())
}

impl Target {
    fn check(&self) -> anyhow::Result<()> {
        ensure!(!self.nodes.is_empty(), "--nodes needs at least one address");
        for n in &self.nodes {
            ensure!(n.contains(':') && !n.trim().is_empty(), "--nodes: `{n}` is not HOST:PORT");
        }
        ensure!(self.concurrency >= 1, "--concurrency must be at least 1");
        if let Some(p) = &self.name_prefix {
            ensure!(!p.is_empty() && p.len() <= 30, "--name-prefix must have 1 to 30 characters");
        }
        Ok(())
    }
}

impl ChatLoad {
    fn check(&self) -> anyhow::Result<()> {
        ensure!(self.users >= 2, "--users must be at least 2");
        ensure!((0.0..=1.0).contains(&self.cross), "--cross must be between 0 and 1");
        Ok(())
    }
}

impl GroupLoad {
    fn check(&self) -> anyhow::Result<()> {
        ensure!(self.group_size >= 2, "--group-size must be at least 2");
        ensure!(self.groups >= 1, "--groups must be at least 1");
        Ok(())
    }
}

impl Timing {
    fn check(&self) -> anyhow::Result<()> {
        ensure!((1..=60_000).contains(&self.msg_bytes), "--msg-bytes must be between 1 and 60000");
        positive("duration", self.duration)?;
        ensure!(self.grace.is_finite() && self.grace >= 0.0, "--grace must not be negative");
        ensure!(self.drain.is_finite() && self.drain >= 0.0, "--drain must not be negative");
        Ok(())
    }

    /// The plan of a run at `rate` (cross share `cross`).
    pub fn plan(&self, rate: f64, cross: f64, quiet: bool) -> Plan {
        Plan {
            rate,
            duration: Duration::from_secs_f64(self.duration),
            msg_bytes: self.msg_bytes,
            grace: Duration::from_secs_f64(self.grace),
            drain: Duration::from_secs_f64(self.drain),
            cross,
            progress: !quiet,
            seed: self.seed,
        }
    }
}

impl Cli {
    /// Checks what clap cannot.
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!((1..=64).contains(&self.threads), "--threads must be between 1 and 64");
        match &self.command {
            Command::Chat(a) => {
                a.target.check()?;
                a.load.check()?;
                a.timing.check()?;
                positive("rate", a.rate)
            }
            Command::Group(a) => {
                a.target.check()?;
                a.load.check()?;
                a.timing.check()?;
                positive("rate", a.rate)
            }
            Command::Sweep(a) => {
                a.target.check()?;
                match a.mode {
                    SweepMode::Chat => a.chat.check()?,
                    SweepMode::Group => a.group.check()?,
                }
                a.timing.check()?;
                for r in &a.rates {
                    positive("rates", *r)?;
                }
                positive("max-p99-ms", a.max_p99_ms)?;
                ensure!(a.pause.is_finite() && a.pause >= 0.0, "--pause must not be negative");
                ensure!(a.settle.is_finite() && a.settle >= 0.0, "--settle must not be negative");
                Ok(())
            }
            Command::Idle(a) => {
                a.target.check()?;
                ensure!(a.users >= 1, "--users must be at least 1");
                positive("hold", a.hold)
            }
            Command::Append(a) => {
                ensure!(!a.variants.is_empty(), "--variants needs at least one");
                ensure!(a.transactions >= 1, "--transactions must be at least 1");
                ensure!(a.users >= 2, "--users must be at least 2");
                ensure!((1..=60_000).contains(&a.msg_bytes), "--msg-bytes must be between 1 and 60000");
                Ok(())
            }
            Command::Connect(a) => {
                a.target.check()?;
                ensure!(a.users >= 1, "--users must be at least 1");
                ensure!(a.conns >= 1, "--conns must be at least 1");
                Ok(())
            }
            Command::Sessions(a) => {
                a.target.check()?;
                ensure!(a.pairs >= 1, "--pairs must be at least 1");
                ensure!(
                    a.sessions.iter().all(|&k| (1..=10).contains(&k)),
                    "--sessions must be between 1 and 10"
                );
                ensure!(a.duration >= 1, "--duration must be at least 1");
                ensure!(a.rate >= 1, "--rate must be at least 1");
                Ok(())
            }
            Command::Presence(a) => {
                a.target.check()?;
                ensure!(!a.friends.is_empty(), "--friends needs at least one count");
                ensure!(a.cycles >= 1, "--cycles must be at least 1");
                Ok(())
            }
            Command::Report(a) => {
                if !a.dir.is_dir() {
                    bail!("--dir {}: not a folder", a.dir.display());
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> anyhow::Result<Cli> {
        let cli = Cli::try_parse_from(std::iter::once("chat-bench").chain(args.split_whitespace()))?;
        cli.check()?;
        Ok(cli)
    }

    #[test]
    fn chat_with_defaults() {
        let cli = parse("chat --nodes 127.0.0.1:6100,127.0.0.1:6102 --rate 5000").expect("parses");
        assert_eq!(cli.threads, 1);
        let Command::Chat(a) = cli.command else { panic!("not chat") };
        assert_eq!(a.target.nodes, ["127.0.0.1:6100", "127.0.0.1:6102"]);
        assert_eq!((a.load.users, a.load.cross, a.timing.msg_bytes), (200, 0.5, 64));
        assert_eq!(a.timing.plan(a.rate, a.load.cross, false).total(), 50_000);
    }

    #[test]
    fn sweep_lists_and_modes() {
        let cli = parse(
            "--threads 2 sweep --mode group --group-size 50 --groups 4 --nodes h:1 --rates 500,1100 --max-p99-ms 100 --json",
        )
        .expect("parses");
        assert_eq!(cli.threads, 2);
        let Command::Sweep(a) = cli.command else { panic!("not sweep") };
        assert_eq!(a.mode, SweepMode::Group);
        assert_eq!(a.rates, [500.0, 1100.0]);
        assert_eq!((a.group.group_size, a.group.groups), (50, 4));
        assert!(a.target.json);
    }

    #[test]
    fn idle_defaults() {
        let cli = parse("idle --nodes 127.0.0.1:6100 --pid node-a=123").expect("parses");
        let Command::Idle(a) = cli.command else { panic!("not idle") };
        assert_eq!((a.users, a.hold), (10_000, 10.0));
        assert_eq!(a.target.pids, "node-a=123");
    }

    #[test]
    fn tls_with_a_ca_file() {
        let cli = parse("chat --nodes 127.0.0.1:6100 --rate 10 --tls --ca-file bench/run/tls/cert.pem")
            .expect("parses");
        let Command::Chat(a) = cli.command else { panic!("not chat") };
        assert!(a.target.tls);
        assert_eq!(a.target.ca_file, Some(PathBuf::from("bench/run/tls/cert.pem")));
        let plain = parse("chat --nodes 127.0.0.1:6100 --rate 10").expect("parses");
        let Command::Chat(a) = plain.command else { panic!("not chat") };
        assert!(!a.target.tls && a.target.ca_file.is_none());
    }

    #[test]
    fn append_defaults_and_status() {
        let cli = parse("append --mysql-url mysql://u:p@127.0.0.1:3306/db --pids mysql=9").expect("parses");
        let Command::Append(a) = cli.command else { panic!("not append") };
        assert_eq!(
            (a.table.as_str(), a.counter_column.as_str(), a.transactions),
            ("Message", "lastseq", 1000)
        );
        assert_eq!(a.variants.len(), 2);
        let cli = parse("sweep --nodes h:1 --rates 200,1000 --stop-after-fail --mysql-status mysql://u@h/db")
            .expect("parses");
        let Command::Sweep(a) = cli.command else { panic!("not sweep") };
        assert!(a.stop_after_fail);
        assert_eq!(a.target.mysql_status.as_deref(), Some("mysql://u@h/db"));
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            "chat --nodes h:1 --rate 0",
            "chat --nodes h:1 --rate -5",
            "chat --nodes h:1 --rate 10 --cross 1.5",
            "chat --nodes h:1 --rate 10 --users 1",
            "chat --nodes nohost --rate 10",
            "chat --nodes h:1 --rate 10 --msg-bytes 0",
            "chat --nodes h:1 --rate 10 --duration 0",
            "chat --rate 10",
            "group --nodes h:1 --rate 10 --group-size 1",
            "sweep --nodes h:1 --rates 10,x",
            "sweep --nodes h:1 --rates 10,0",
            "idle --nodes h:1 --users 0",
            "--threads 0 idle --nodes h:1",
            "report --dir /nonexistent/dir",
            "chat --nodes h:1 --rate 10 --ca-file cert.pem",
            "append --mysql-url mysql://u@h/db --variants heap:10",
            "append --mysql-url mysql://u@h/db --transactions 0",
            "append --variants log:10",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
