//! What the bench reads about processes from /proc: CPU time and resident
//! memory. Parsing is pure (and tested); reading is one small file per call.
//! Not responsible for deciding which processes matter (the caller names them).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// A process the bench watches, with a label for reports (`node`, `redis`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Watched {
    /// What to call it in a report.
    pub name: String,
    /// Its process id.
    pub pid: u32,
}

/// Parses `1234`, `node=1234`, or a comma-separated list of them.
pub fn parse_watched(list: &str, default_name: &str) -> anyhow::Result<Vec<Watched>> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, pid) = match item.split_once('=') {
            Some((name, pid)) => (name.trim().to_owned(), pid.trim()),
            None => (default_name.to_owned(), item),
        };
        let pid: u32 = pid.parse().with_context(|| format!("`{item}` is not a pid or NAME=PID"))?;
        if pid == 0 {
            bail!("pid 0 is not a process");
        }
        out.push(Watched { name, pid });
    }
    Ok(out)
}

/// (utime, stime) in clock ticks, from the text of `/proc/<pid>/stat`.
///
/// The command name (field 2) is in parentheses and may hold spaces and
/// parentheses itself, so fields are counted from the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: state(3) ppid(4) ... utime(14) stime(15); index 0 here is field 3.
    let mut fields = rest.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// VmRSS in KiB, from the text of `/proc/<pid>/status`.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

/// Machine-wide CPU time from the first line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineTicks {
    /// user + nice + system + irq + softirq.
    pub busy: u64,
    /// idle + iowait.
    pub idle: u64,
    /// Taken by the hypervisor for other guests.
    pub steal: u64,
}

/// Parses the `cpu ` line of `/proc/stat`.
pub fn parse_machine_ticks(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    if v.len() < 4 {
        return None;
    }
    Some(MachineTicks { busy: at(0) + at(1) + at(2) + at(5) + at(6), idle: at(3) + at(4), steal: at(7) })
}

/// Busy and stolen cores of the whole machine over an interval.
#[derive(Debug, Clone, Copy)]
pub struct MachineMeter {
    start: Option<MachineTicks>,
}

/// What the whole machine did over an interval, in seconds of CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineUse {
    /// CPU seconds busy (every process and the kernel).
    pub busy_s: f64,
    /// CPU seconds idle.
    pub idle_s: f64,
    /// CPU seconds stolen by the hypervisor.
    pub steal_s: f64,
}

fn machine_ticks() -> Option<MachineTicks> {
    parse_machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

impl MachineMeter {
    /// Takes the starting reading.
    pub fn start() -> MachineMeter {
        MachineMeter { start: machine_ticks() }
    }

    /// What the machine did since [`MachineMeter::start`] (None if /proc/stat is unreadable).
    pub fn read(&self) -> Option<MachineUse> {
        let (a, b) = (self.start?, machine_ticks()?);
        let hz = ticks_per_sec() as f64;
        let secs = |x: u64, y: u64| y.saturating_sub(x) as f64 / hz;
        Some(MachineUse {
            busy_s: secs(a.busy, b.busy),
            idle_s: secs(a.idle, b.idle),
            steal_s: secs(a.steal, b.steal),
        })
    }
}

/// The command name and utime + stime (ticks) from the text of `/proc/<pid>/stat`.
pub fn parse_stat_name_ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    let (user, sys) = parse_stat_ticks(stat)?;
    Some((name, user + sys))
}

/// CPU ticks of every process on the machine, to find out afterwards who else was busy.
#[derive(Debug, Clone, Default)]
pub struct ProcScan {
    start: HashMap<u32, (String, u64)>,
}

fn scan_processes() -> HashMap<u32, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if let Some(found) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat_name_ticks)
        {
            out.insert(pid, found);
        }
    }
    out
}

/// Sums and ranks CPU use per process between two scans, leaving out `exclude`.
pub fn busiest(
    start: &HashMap<u32, (String, u64)>,
    end: &HashMap<u32, (String, u64)>,
    exclude: &[u32],
    hz: f64,
    top: usize,
) -> (f64, Vec<CpuUse>) {
    let mut uses: Vec<CpuUse> = end
        .iter()
        .filter(|(pid, _)| !exclude.contains(pid))
        .filter_map(|(pid, (name, t1))| {
            // A process that started during the interval counts from zero. (Kernel workers
            // rename themselves, so a pid seen before counts from its first reading.)
            let t0 = start.get(pid).map_or(0, |(_, t)| *t);
            let d = t1.saturating_sub(t0);
            (d > 0).then(|| CpuUse { name: name.clone(), pid: *pid, cpu_s: Some(d as f64 / hz), sys_s: None })
        })
        .collect();
    let total = uses.iter().filter_map(|u| u.cpu_s).sum();
    uses.sort_by(|a, b| b.cpu_s.unwrap_or(0.0).total_cmp(&a.cpu_s.unwrap_or(0.0)));
    uses.truncate(top);
    (total, uses)
}

impl ProcScan {
    /// Reads every process's CPU ticks now.
    pub fn start() -> ProcScan {
        ProcScan { start: scan_processes() }
    }

    /// CPU seconds of all processes but `exclude` since [`ProcScan::start`], and the `top` busiest.
    /// Processes that ended in between are not seen.
    pub fn read(&self, exclude: &[u32], top: usize) -> (f64, Vec<CpuUse>) {
        busiest(&self.start, &scan_processes(), exclude, ticks_per_sec() as f64, top)
    }
}

/// Clock ticks per second (`getconf CLK_TCK`).
fn ticks_per_sec() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(n)) if n > 0 => n as u64,
        _ => 100,
    }
}

/// CPU time in user and in kernel mode (all threads) a process has used so far; `None` for `self`.
pub fn cpu_split(pid: Option<u32>) -> anyhow::Result<(Duration, Duration)> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let (user, sys) = parse_stat_ticks(&text).with_context(|| format!("unexpected format of {path}"))?;
    let hz = ticks_per_sec() as f64;
    Ok((Duration::from_secs_f64(user as f64 / hz), Duration::from_secs_f64(sys as f64 / hz)))
}

/// CPU time (user + system, all threads) a process has used so far; `None` for `self`.
pub fn cpu_time(pid: Option<u32>) -> anyhow::Result<Duration> {
    cpu_split(pid).map(|(user, sys)| user + sys)
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_status_rss_kib(&text).with_context(|| format!("no VmRSS in {path}"))
}

/// CPU use of a set of processes over an interval.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    start: Vec<Option<(Duration, Duration)>>,
    watched: Vec<Watched>,
}

/// One process's CPU over an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    /// Its label.
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// CPU seconds used in the interval (None: the process could not be read).
    pub cpu_s: Option<f64>,
    /// Of which in the kernel (system calls, the loopback TCP stack, softirqs).
    #[serde(default)]
    pub sys_s: Option<f64>,
}

impl CpuMeter {
    /// Takes the starting reading of each process (unreadable ones report `None` later).
    pub fn start(watched: &[Watched]) -> CpuMeter {
        CpuMeter {
            start: watched.iter().map(|w| cpu_split(Some(w.pid)).ok()).collect(),
            watched: watched.to_vec(),
        }
    }

    /// CPU used by each process since [`CpuMeter::start`].
    pub fn read(&self) -> Vec<CpuUse> {
        self.watched
            .iter()
            .zip(&self.start)
            .map(|(w, start)| {
                let now = cpu_split(Some(w.pid)).ok();
                let (cpu_s, sys_s) = match (start, now) {
                    (Some((u0, s0)), Some((u1, s1))) => {
                        let sys = s1.saturating_sub(*s0).as_secs_f64();
                        (Some(u1.saturating_sub(*u0).as_secs_f64() + sys), Some(sys))
                    }
                    _ => (None, None),
                };
                CpuUse { name: w.name.clone(), pid: w.pid, cpu_s, sys_s }
            })
            .collect()
    }
}

/// Raises the soft limit on open files to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> anyhow::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(NOFILE)")?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("setrlimit(NOFILE)")?;
    }
    Ok(hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_count_from_the_last_parenthesis() {
        // Fields 14 and 15 are 250 and 50; the name has a space and a parenthesis.
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 4 0 100 \
                    200000000 5000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_ticks(stat), Some((250, 50)));
    }

    #[test]
    fn stat_ticks_of_garbage_is_none() {
        assert_eq!(parse_stat_ticks(""), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1 1 1 1 1 1 1 1 1 1 abc 5"), None);
    }

    #[test]
    fn machine_ticks_from_proc_stat() {
        let stat = "cpu  100 5 20 1000 7 1 2 3 0 0\ncpu0 50 0 10 500 3 0 1 1 0 0\nintr 1 2\n";
        assert_eq!(parse_machine_ticks(stat), Some(MachineTicks { busy: 128, idle: 1007, steal: 3 }));
        assert_eq!(parse_machine_ticks("cpu  1 2 3 4\n"), Some(MachineTicks { busy: 6, idle: 4, steal: 0 }));
        assert_eq!(parse_machine_ticks("cpu  1 x 3 4\n"), None);
        assert_eq!(parse_machine_ticks("cpu0 1 2 3 4\n"), None);
        assert!(MachineMeter::start().read().is_some());
    }

    #[test]
    fn name_and_ticks() {
        let stat = "77 (rust c) R 1 1 1 0 -1 0 0 0 0 0 30 12 0 0 20 0";
        assert_eq!(parse_stat_name_ticks(stat), Some(("rust c".into(), 42)));
        assert_eq!(parse_stat_name_ticks("77 rustc R"), None);
    }

    #[test]
    fn busiest_processes() {
        let map = |v: &[(u32, &str, u64)]| -> HashMap<u32, (String, u64)> {
            v.iter().map(|(p, n, t)| (*p, (n.to_string(), *t))).collect()
        };
        let start = map(&[(1, "a", 100), (2, "b", 50), (3, "c", 10), (9, "old", 5)]);
        let end = map(&[(1, "a", 150), (2, "b", 50), (3, "c", 210), (4, "new", 30), (9, "renamed", 7)]);
        let (total, top) = busiest(&start, &end, &[1], 100.0, 2);
        // c +200, new +30 (started during), renamed +2, b +0, a left out.
        assert!((total - 2.32).abs() < 1e-9, "{total}");
        assert_eq!(top.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["c", "new"]);
        assert_eq!(top[0].cpu_s, Some(2.0));
    }

    #[test]
    fn rss_from_status() {
        let status = "Name:\tchat-server\nVmPeak:\t  100 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_status_rss_kib(status), Some(12345));
        assert_eq!(parse_status_rss_kib("Name: x\n"), None);
        assert_eq!(parse_status_rss_kib("VmRSS: 12 MB\n"), None);
    }

    #[test]
    fn watched_lists() {
        let w = parse_watched("12, node=34 ,redis=56", "server").expect("parses");
        assert_eq!(
            w,
            vec![
                Watched { name: "server".into(), pid: 12 },
                Watched { name: "node".into(), pid: 34 },
                Watched { name: "redis".into(), pid: 56 },
            ]
        );
        assert!(parse_watched("", "x").expect("empty is fine").is_empty());
        assert!(parse_watched("abc", "x").is_err());
        assert!(parse_watched("n=", "x").is_err());
        assert!(parse_watched("0", "x").is_err());
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(cpu_time(None).is_ok());
    }
}
