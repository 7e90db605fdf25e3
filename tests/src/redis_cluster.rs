//! A Redis Cluster of a test's own (3 masters, 3 replicas, deploy/redis-cluster.sh on free
//! ports, data in a temporary directory), for the drills that kill a master or move slots.
//! Stopped and deleted on drop. The shared, undisturbed cluster of `make test-services` is
//! [`crate::redis_cluster_url`].

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::tempdir::TempDir;

/// A running Redis Cluster of six `redis-server` processes.
pub struct RedisCluster {
    dir: TempDir,
    base: u16,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/redis-cluster.sh")
}

/// Where the clusters of concurrent test processes reserve their base ports.
fn reservations() -> PathBuf {
    std::env::temp_dir().join("chat-redis-cluster-ports")
}

/// A base port, a multiple of 8 (so that two clusters' ranges never interleave), with its six
/// ports and their six bus ports (port + 10000) free, reserved for this process by a file that
/// only one process can create: a port found free can otherwise be found free by a concurrent
/// test process too (CI saw two drills start on overlapping ranges). A reservation whose
/// process is gone is taken over. `skip` moves past bases that failed to start.
fn reserve_base(skip: u16) -> u16 {
    let dir = reservations();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let seed = (std::process::id() % 625) as u16;
    let free = |base: u16| {
        (0..6).all(|i| {
            std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", base + 10000 + i)).is_ok()
        })
    };
    let reserve = |base: u16| {
        let file = dir.join(base.to_string());
        if let Ok(pid) = std::fs::read_to_string(&file) {
            let alive = std::path::Path::new("/proc").join(pid.trim()).exists();
            if alive {
                return false;
            }
            let _ = std::fs::remove_file(&file);
        }
        std::fs::File::create_new(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, std::process::id().to_string().as_bytes()))
            .is_ok()
    };
    (0..625u16)
        .map(|i| 20000 + 8 * ((seed + skip * 7 + i * 7) % 625))
        .find(|&base| free(base) && reserve(base))
        .expect("six free ports (and bus ports) for a Redis Cluster")
}

fn release_base(base: u16) {
    let _ = std::fs::remove_file(reservations().join(base.to_string()));
}

/// A slot field of CLUSTER NODES (`5461-10922` or `42`) as an inclusive range; `None` for a
/// slot being migrated (`[42->-id]`).
fn slot_range(field: &str) -> Option<(u16, u16)> {
    match field.split_once('-') {
        _ if field.starts_with('[') => None,
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => field.parse().ok().map(|s| (s, s)),
    }
}

impl RedisCluster {
    /// Starts the cluster and waits until every node says `cluster_state:ok`. A base whose
    /// ports another process took between the check and the start is given up for another.
    pub fn start() -> RedisCluster {
        let mut failures = String::new();
        for attempt in 0..4 {
            let cluster =
                RedisCluster { dir: TempDir::new("chat-redis-cluster"), base: reserve_base(attempt) };
            let out = Command::new("bash")
                .arg(script())
                .args(["up", "--dir"])
                .arg(cluster.dir.path())
                .args(["--port", &cluster.base.to_string()])
                .output()
                .unwrap_or_else(|e| panic!("cannot run deploy/redis-cluster.sh: {e}"));
            if out.status.success() {
                return cluster;
            }
            let text =
                format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            let taken = text.contains("is in use");
            failures.push_str(&text);
            drop(cluster);
            if !taken {
                break;
            }
        }
        panic!(
            "deploy/redis-cluster.sh up failed (is redis-server installed? apt-get install -y redis-server): {failures}"
        )
    }

    /// The URL the nodes are given.
    pub fn url(&self) -> String {
        format!("redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}", self.base, self.base + 1)
    }

    /// A URL naming one node only: the seed, [`seed`](Self::seed).
    pub fn seed_url(&self) -> String {
        format!("redis-cluster://127.0.0.1:{}", self.seed())
    }

    /// The port of the first node, a master when the cluster starts.
    pub fn seed(&self) -> u16 {
        self.base
    }

    fn ports(&self) -> impl Iterator<Item = u16> + use<> {
        let base = self.base;
        (0..6).map(move |i| base + i)
    }

    /// Runs `redis-cli -p port args…` and returns its output; panics on an error reply.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(out.status.success() && !text.starts_with("ERR"), "redis-cli -p {port} {args:?}: {text}");
        text
    }

    /// The ports of the nodes that answer ROLE with `master` now.
    pub fn masters(&self) -> Vec<u16> {
        self.ports()
            .filter(|p| {
                Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "role"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).starts_with("master"))
            })
            .collect()
    }

    /// How many slots the master on `port` serves now.
    pub fn slots_of(&self, port: u16) -> usize {
        let shards = self.cli(port, &["cluster", "nodes"]);
        let me = shards.lines().find(|l| l.contains("myself")).expect("CLUSTER NODES has myself");
        me.split(' ').skip(8).filter_map(slot_range).map(|(a, b)| usize::from(b - a) + 1).sum()
    }

    /// The hash slot of `key` (or channel), as the cluster computes it.
    pub fn slot_of(&self, key: &str) -> u16 {
        let slot = self.cli(self.base, &["cluster", "keyslot", key]);
        slot.parse().unwrap_or_else(|e| panic!("CLUSTER KEYSLOT {key}: {slot}: {e}"))
    }

    /// The port of the master serving `slot` now.
    pub fn owner_of(&self, slot: u16) -> u16 {
        let nodes = self.cli(self.base, &["cluster", "nodes"]);
        let serves = |range: &&str| slot_range(range).is_some_and(|(a, b)| (a..=b).contains(&slot));
        nodes
            .lines()
            .map(|line| line.split(' ').collect::<Vec<_>>())
            .find(|f| f.len() > 8 && f[2].contains("master") && f[8..].iter().any(serves))
            .and_then(|f| f[1].split([':', '@']).nth(1).and_then(|p| p.parse().ok()))
            .unwrap_or_else(|| panic!("no master serves slot {slot}: {nodes}"))
    }

    /// SIGKILLs the master on `port` and waits (up to 15 s) until every slot is served again,
    /// by a promoted replica. Returns how long the cluster took to heal.
    pub fn kill_master(&self, port: u16) -> Duration {
        let pid_file = self.dir.path().join(port.to_string()).join("redis.pid");
        let pid =
            std::fs::read_to_string(&pid_file).unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()));
        let killed = Command::new("kill").args(["-KILL", pid.trim()]).status().expect("kill");
        assert!(killed.success(), "SIGKILL of the master on {port}");
        let started = Instant::now();
        let survivor = self.ports().find(|p| *p != port).expect("another node");
        loop {
            let masters = self.masters();
            let served: usize = masters.iter().map(|m| self.slots_of(*m)).sum();
            let ok = self.cli(survivor, &["cluster", "info"]).contains("cluster_state:ok");
            if ok && served == 16384 && masters.len() == 3 {
                return started.elapsed();
            }
            assert!(started.elapsed() < Duration::from_secs(15), "no replica took over the master on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Moves `slots` slots from the master on `from` to the master on `to` with
    /// `redis-cli --cluster reshard` (keys included, MIGRATE by MIGRATE), as an operator would.
    pub fn reshard(&self, from: u16, to: u16, slots: usize) {
        let from_id = self.cli(from, &["cluster", "myid"]);
        let to_id = self.cli(to, &["cluster", "myid"]);
        let out = Command::new("redis-cli")
            .args(["--cluster", "reshard", &format!("127.0.0.1:{}", self.base)])
            .args(["--cluster-from", &from_id, "--cluster-to", &to_id])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster reshard");
        assert!(
            out.status.success(),
            "reshard failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).args(["down", "--dir"]).arg(self.dir.path()).output();
        release_base(self.base);
    }
}
