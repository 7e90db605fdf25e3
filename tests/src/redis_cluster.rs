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

/// A base port with six ports and their six bus ports (port + 10000) free.
fn free_base() -> u16 {
    let seed = (std::process::id() % 97) as u16;
    (0..400u16)
        .map(|i| 20000 + (seed * 41 + i * 13) % 5000)
        .find(|base| {
            (0..6).all(|i| {
                std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                    && std::net::TcpListener::bind(("127.0.0.1", base + 10000 + i)).is_ok()
            })
        })
        .expect("six free ports (and bus ports) for a Redis Cluster")
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
    /// Starts the cluster and waits until every node says `cluster_state:ok`.
    pub fn start() -> RedisCluster {
        let cluster = RedisCluster { dir: TempDir::new("chat-redis-cluster"), base: free_base() };
        let out = Command::new("bash")
            .arg(script())
            .args(["up", "--dir"])
            .arg(cluster.dir.path())
            .args(["--port", &cluster.base.to_string()])
            .output()
            .unwrap_or_else(|e| panic!("cannot run deploy/redis-cluster.sh: {e}"));
        assert!(
            out.status.success(),
            "deploy/redis-cluster.sh up failed (is redis-server installed? apt-get install -y redis-server): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
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
    }
}
