//! `chat-server adopt-original`: takes over the original C++ server's MySQL database, in
//! place or into a new one (docs/MIGRATING.md). The database work is chat-model's
//! [`Adopter`]; this file hashes the passwords with the service's own hasher and the node's
//! `CHAT_HASH_*` settings, shows the progress on stderr, and prints the summary on stdout.
//! It never prints or logs a password.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chat_model::adopt::{Adopter, Secret, Start};
use chat_service::{HashCost, Passwords};

use crate::settings::Settings;

/// Users hashed and committed together: a run that is killed loses at most this much work.
const CHUNK: usize = 32;

/// The arguments of `adopt-original` (the database is the global `--database-url`).
#[derive(Debug, clap::Args)]
pub struct AdoptArgs {
    /// Copy into this new, empty database (mysql://USER:PASS@HOST:PORT/DB) and leave the
    /// source untouched; without it the database is adopted in place.
    #[arg(long, value_name = "URL")]
    pub into: Option<String>,
    /// With --into: hash every password now and stop, while the original keeps serving; run
    /// again without --prepare, once the original is stopped, to carry the rest (and the
    /// users registered meanwhile).
    #[arg(long, requires = "into")]
    pub prepare: bool,
}

/// Runs the adoption and prints its summary.
pub async fn run(settings: &Settings, args: &AdoptArgs) -> anyhow::Result<()> {
    let cost = HashCost {
        memory_kib: settings.hash_memory_kib,
        iterations: settings.hash_iterations,
        parallelism: settings.hash_parallelism,
    };
    let passwords = Passwords::new(cost, settings.hash_concurrency).map_err(|e| anyhow::anyhow!(e))?;
    let mut adopter = match Adopter::start(&settings.database_url, args.into.as_deref()).await? {
        Start::Done { source, finished_at, dropped } => {
            let target = crate::redact(args.into.as_deref().unwrap_or(&settings.database_url));
            let from = if source == "in place" { "in place".to_string() } else { format!("from {source}") };
            println!("{target} was adopted already ({from}, {}): nothing to do", ago(finished_at));
            if !dropped.is_empty() {
                println!(
                    "dropped the original's leftover tables {} (a run was stopped right after finishing)",
                    dropped.join(", ")
                );
            }
            return Ok(());
        }
        Start::Ready(adopter) => adopter,
    };

    let total = adopter.users_total();
    let before = adopter.users_carried_before();
    if before > 0 {
        eprintln!(
            "resuming: {before} of {total} users were carried by an earlier run and are not hashed again"
        );
    }
    let pending = adopter.users_pending();
    let started = Instant::now();
    let mut progress = Progress::new(pending);
    while adopter.users_pending() > 0 {
        let secrets = adopter.next_secrets(CHUNK).await?;
        let mut hashing = tokio::task::JoinSet::new();
        for Secret { id, password } in secrets {
            let passwords = passwords.clone();
            hashing.spawn(async move { (id, passwords.hash(password).await) });
        }
        let mut hashed = Vec::with_capacity(CHUNK);
        while let Some(joined) = hashing.join_next().await {
            let (id, hash) = joined?;
            let hash = hash.map_err(|e| anyhow::anyhow!("hashing the password of user {id} failed: {e}"))?;
            hashed.push((id, hash));
        }
        hashed.sort_unstable_by_key(|(id, _)| *id);
        adopter.store_users(&hashed).await?;
        progress.set(pending - adopter.users_pending());
    }
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    let line = format!(
        "passwords: {pending} hashed with argon2id (m={} KiB, t={}, p={}) in {secs:.1} s{}",
        cost.memory_kib,
        cost.iterations,
        cost.parallelism,
        if pending > 0 && secs > 0.0 {
            format!(", {:.1} a second", pending as f64 / secs)
        } else {
            String::new()
        },
    );
    if args.prepare {
        adopter.prepared().await?;
        println!("{line}");
        println!(
            "prepared: every user is carried into {}; stop the original's nodes, then run the same command without --prepare",
            crate::redact(args.into.as_deref().unwrap_or_default())
        );
        return Ok(());
    }
    let retention =
        Duration::try_from_secs_f64(settings.retention_days * 24.0 * 3600.0).unwrap_or(Duration::MAX);
    let summary = adopter.finish(retention).await?;
    print!("{summary}");
    println!("{line}");
    Ok(())
}

/// How long ago a unix-milliseconds time was, in words.
fn ago(ms: i64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let secs = (now - ms).max(0) / 1000;
    match secs {
        0..120 => format!("finished {secs} s ago"),
        120..7200 => format!("finished {} min ago", secs / 60),
        7200..172_800 => format!("finished {} h ago", secs / 3600),
        _ => format!("finished {} days ago", secs / 86_400),
    }
}

/// A progress bar on stderr: redrawn in place on a terminal, a line every tenth otherwise
/// (logs, CI), so that minutes of hashing never look like a hang.
struct Progress {
    total: usize,
    done: usize,
    started: Instant,
    tty: bool,
    tenths: usize,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let progress = Progress {
            total,
            done: 0,
            started: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            tenths: 0,
        };
        if total > 0 {
            eprintln!(
                "hashing the passwords of {total} users (commits every {CHUNK}; safe to interrupt and run again)"
            );
        }
        progress
    }

    fn set(&mut self, done: usize) {
        self.done = done.min(self.total);
        if self.total == 0 {
            return;
        }
        let line = self.line();
        if self.tty {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
        } else {
            let tenths = self.done * 10 / self.total;
            if tenths > self.tenths {
                self.tenths = tenths;
                eprintln!("{line}");
            }
        }
    }

    fn line(&self) -> String {
        const WIDTH: usize = 30;
        let filled = self.done * WIDTH / self.total.max(1);
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = if self.done > 0 && self.done < self.total {
            let left = elapsed / self.done as f64 * (self.total - self.done) as f64;
            format!(", about {} left", words(left))
        } else {
            String::new()
        };
        format!(
            "[{}{}] {}/{} users ({}%){eta}",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            self.done,
            self.total,
            self.done * 100 / self.total.max(1)
        )
    }

    fn finish(&mut self) {
        if self.tty && self.total > 0 {
            eprintln!();
        }
    }
}

fn words(secs: f64) -> String {
    if secs < 90.0 { format!("{secs:.0} s") } else { format!("{:.0} min", secs / 60.0) }
}
