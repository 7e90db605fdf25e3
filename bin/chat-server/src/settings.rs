//! Configuration: defaults, then a TOML file, then `CHAT_*` environment
//! variables, then command-line flags (each beats the one before).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Deserialize;

/// A chat-cluster node.
#[derive(Debug, Parser)]
#[command(name = "chat-server", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file (see deploy/chat-server.example.toml).
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on [env: CHAT_LISTEN] [default: 127.0.0.1:6000].
    #[arg(long, value_name = "ADDR", global = true)]
    pub listen: Option<String>,
    /// `sqlite://PATH` or `mysql://USER:PASS@HOST:PORT/DB` [env: CHAT_DATABASE_URL] [default: sqlite://data/chat.db].
    #[arg(long, value_name = "URL", global = true)]
    pub database_url: Option<String>,
    /// Redis URL (`redis://HOST:PORT`, or a Redis Cluster: `redis-cluster://HOST:PORT?node=HOST:PORT`);
    /// without it the node runs alone with the in-process broker [env: CHAT_REDIS_URL].
    #[arg(long, value_name = "URL", global = true)]
    pub redis_url: Option<String>,
    /// This node's name in the cluster [env: CHAT_NODE_NAME] [default: the listen address].
    #[arg(long, value_name = "NAME", global = true)]
    pub node_name: Option<String>,
    /// Log filter, e.g. `info` or `chat_service=debug` [env: CHAT_LOG; RUST_LOG wins] [default: info].
    #[arg(long, value_name = "FILTER", global = true)]
    pub log: Option<String>,
    /// Longest inbound frame in bytes [env: CHAT_MAX_FRAME_BYTES] [default: 65536].
    #[arg(long, value_name = "BYTES", global = true)]
    pub max_frame_bytes: Option<usize>,
    /// Most connections served at once [env: CHAT_MAX_CONNECTIONS] [default: 20000].
    #[arg(long, value_name = "N", global = true)]
    pub max_connections: Option<usize>,
    /// Admin HTTP listener for /metrics, /healthz and /readyz, e.g. 127.0.0.1:9100; off unless set
    /// [env: CHAT_ADMIN_LISTEN].
    #[arg(long, value_name = "ADDR", global = true)]
    pub admin_listen: Option<String>,
    /// Log lines as `text` or `json` (one object a line) [env: CHAT_LOG_FORMAT] [default: text].
    #[arg(long, value_name = "FORMAT", global = true)]
    pub log_format: Option<String>,
    /// PEM certificate chain: serve TLS on the client port (with --tls-key) [env: CHAT_TLS_CERT].
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_cert: Option<String>,
    /// PEM private key of --tls-cert [env: CHAT_TLS_KEY].
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_key: Option<String>,
    /// WebSocket listener for browsers (the endpoint at /ws and the web client at /), e.g.
    /// 127.0.0.1:6080; off unless set [env: CHAT_WS_LISTEN].
    #[arg(long, value_name = "ADDR", global = true)]
    pub ws_listen: Option<String>,
    /// Expect the PROXY protocol (v1 or v2) from the balancers in `proxy_from` on the client and
    /// WebSocket listeners (and X-Forwarded-For on the WebSocket one); connections from other
    /// addresses are closed [env: CHAT_PROXY_PROTOCOL] [default: off].
    #[arg(long, global = true)]
    pub proxy_protocol: bool,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve clients (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Take over the original C++ server's MySQL database (--database-url): in place, or
    /// copied --into a new one; see docs/MIGRATING.md.
    AdoptOriginal(crate::adopt::AdoptArgs),
    /// Print the effective configuration (secrets redacted) and exit; non-zero on an error.
    /// Opens no socket and no database.
    CheckConfig,
}

/// Every setting, after all layers.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Settings {
    pub listen: String,
    pub database_url: String,
    pub database_pool: usize,
    pub redis_url: Option<String>,
    pub channel_prefix: String,
    pub node_name: Option<String>,
    pub lease_secs: u64,
    pub redis_receive_capacity: usize,
    pub log: String,
    pub max_frame_bytes: usize,
    pub max_connections: usize,
    pub outbound_queue: usize,
    pub max_message_bytes: usize,
    pub hash_memory_kib: u32,
    pub hash_iterations: u32,
    pub hash_parallelism: u32,
    pub hash_concurrency: usize,
    pub shutdown_timeout_secs: u64,
    pub rate_per_sec: f64,
    pub rate_burst: f64,
    pub abuse_limit: u32,
    pub login_failures_per_conn: u32,
    pub login_failures_per_user: u32,
    pub login_lockout_secs: f64,
    pub max_group_members: usize,
    pub offline_in_ack: usize,
    pub cursor_flush_secs: f64,
    pub retention_days: f64,
    pub retention_per_conversation: u64,
    pub purge_interval_secs: f64,
    pub resume_ttl_secs: f64,
    pub history_page_max: usize,
    pub max_sessions_per_user: usize,
    pub presence_debounce_secs: f64,
    pub batch_max_messages: usize,
    pub commit_linger_ms: f64,
    pub login_timeout_secs: f64,
    pub ping_interval_secs: f64,
    pub keepalive_secs: f64,
    pub worker_threads: usize,
    pub admin_listen: Option<String>,
    pub unready_delay_secs: f64,
    pub log_format: String,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub ws_listen: Option<String>,
    /// Origins whose pages may open a WebSocket besides the listener's own (`*`: any).
    #[serde(default)]
    pub ws_allowed_origins: Vec<String>,
    /// Whether the listeners expect the PROXY protocol from `proxy_from`.
    pub proxy_protocol: bool,
    /// Addresses or networks of the balancers (allowed to send PROXY headers and
    /// X-Forwarded-For; exempt from the per-address limits).
    pub proxy_from: Vec<String>,
    /// Failed logins from one address (any accounts) per `login_lockout_secs`.
    pub login_failures_per_addr: u32,
    /// Connections per client address (0: no limit).
    pub max_connections_per_ip: usize,
    /// Connections without a login per client address (0: no limit).
    pub unauth_per_ip: usize,
    /// Connections without a login from which the node is under pressure.
    pub unauth_pressure: usize,
    /// The login deadline under pressure.
    pub login_timeout_pressed_secs: f64,
    /// Registrations per client address per `registration_window_secs` (0: no limit).
    pub registrations_per_ip: u32,
    /// How long registrations count.
    pub registration_window_secs: f64,
}

impl Settings {
    /// `proxy_from`, parsed (checked at load).
    pub fn proxy_from(&self) -> Vec<chat_net::AddrRange> {
        self.proxy_from.iter().filter_map(|r| r.parse().ok()).collect()
    }

    /// Layers defaults, the file, the environment and the flags.
    pub fn load(cli: &Cli) -> Result<Settings, config::ConfigError> {
        use config::{Config, Environment, File};
        let mut builder = Config::builder()
            .set_default("listen", "127.0.0.1:6000")?
            .set_default("database_url", "sqlite://data/chat.db")?
            .set_default("database_pool", 16)?
            .set_default("channel_prefix", "")?
            .set_default("lease_secs", 10)?
            .set_default("redis_receive_capacity", 16384)?
            .set_default("log", "info")?
            .set_default("max_frame_bytes", 64 * 1024)?
            .set_default("max_connections", 20_000)?
            .set_default("outbound_queue", 1024)?
            .set_default("max_message_bytes", 60 * 1024)?
            .set_default("hash_memory_kib", 19 * 1024)?
            .set_default("hash_iterations", 2)?
            .set_default("hash_parallelism", 1)?
            .set_default("hash_concurrency", 2)?
            .set_default("shutdown_timeout_secs", 10)?
            .set_default("rate_per_sec", 50.0)?
            .set_default("rate_burst", 200.0)?
            .set_default("abuse_limit", 1000)?
            .set_default("login_failures_per_conn", 5)?
            .set_default("login_failures_per_user", 10)?
            .set_default("login_lockout_secs", 60.0)?
            .set_default("max_group_members", 1000)?
            .set_default("offline_in_ack", 1000)?
            .set_default("cursor_flush_secs", 1.0)?
            .set_default("retention_days", 30.0)?
            .set_default("retention_per_conversation", 100_000)?
            .set_default("purge_interval_secs", 600.0)?
            .set_default("resume_ttl_secs", 7.0 * 24.0 * 3600.0)?
            .set_default("history_page_max", 100)?
            .set_default("max_sessions_per_user", 10)?
            .set_default("presence_debounce_secs", 3.0)?
            .set_default("batch_max_messages", 1000)?
            .set_default("commit_linger_ms", 2.0)?
            .set_default("login_timeout_secs", 60.0)?
            .set_default("ping_interval_secs", 30.0)?
            .set_default("keepalive_secs", 60.0)?
            .set_default("worker_threads", 0)?
            .set_default("unready_delay_secs", 0.0)?
            .set_default("log_format", "text")?
            .set_default("proxy_protocol", false)?
            .set_default("proxy_from", vec!["127.0.0.1", "::1"])?
            .set_default("login_failures_per_addr", 50)?
            .set_default("max_connections_per_ip", 100)?
            .set_default("unauth_per_ip", 20)?
            .set_default("unauth_pressure", 1000)?
            .set_default("login_timeout_pressed_secs", 10.0)?
            .set_default("registrations_per_ip", 10)?
            .set_default("registration_window_secs", 3600.0)?;
        if let Some(path) = &cli.config {
            builder = builder.add_source(File::from(path.as_path()).required(true));
        }
        builder = builder
            .add_source(
                Environment::with_prefix("CHAT")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("ws_allowed_origins")
                    .with_list_parse_key("proxy_from"),
            )
            .set_override_option("listen", cli.listen.clone())?
            .set_override_option("database_url", cli.database_url.clone())?
            .set_override_option("redis_url", cli.redis_url.clone())?
            .set_override_option("node_name", cli.node_name.clone())?
            .set_override_option("log", cli.log.clone())?
            .set_override_option("max_frame_bytes", cli.max_frame_bytes.map(|n| n as u64))?
            .set_override_option("max_connections", cli.max_connections.map(|n| n as u64))?
            .set_override_option("admin_listen", cli.admin_listen.clone())?
            .set_override_option("log_format", cli.log_format.clone())?
            .set_override_option("tls_cert", cli.tls_cert.clone())?
            .set_override_option("tls_key", cli.tls_key.clone())?
            .set_override_option("ws_listen", cli.ws_listen.clone())?
            .set_override_option("proxy_protocol", cli.proxy_protocol.then_some(true))?;
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.check()?;
        Ok(settings)
    }

    /// What is allowed but probably a mistake, one line each: check-config prints these on
    /// stderr (and still exits 0), a starting node logs them.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(url) = &self.redis_url
            && let Some(seeds) = cluster_seeds(url)
            && seeds < 2
        {
            warnings.push(
                "redis_url lists a single Redis Cluster node: a node that restarts while that Redis node is \
                 down cannot reach the cluster; list several with ?node=host:port&node=host:port"
                    .to_owned(),
            );
        }
        warnings
    }

    fn check(&self) -> Result<(), config::ConfigError> {
        let bad = |m: String| Err(config::ConfigError::Message(m));
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad(format!("listen: `{}` is not an address like 127.0.0.1:6000", self.listen));
        }
        if !(self.database_url.starts_with("sqlite://") || self.database_url.starts_with("mysql://")) {
            return bad("database_url must start with sqlite:// or mysql://".into());
        }
        // One Redis, or a Redis Cluster (fred's cluster URL; sharded pub/sub): ARCHITECTURE.md.
        const REDIS_SCHEMES: [&str; 4] = ["redis://", "rediss://", "redis-cluster://", "rediss-cluster://"];
        if let Some(url) = &self.redis_url
            && !REDIS_SCHEMES.iter().any(|scheme| url.starts_with(scheme))
        {
            return bad(
                "redis_url must start with redis:// or rediss:// (one Redis), or redis-cluster:// or \
                 rediss-cluster:// (a Redis Cluster)"
                    .into(),
            );
        }
        if self.max_frame_bytes < 1024 {
            return bad("max_frame_bytes must be at least 1024".into());
        }
        for (name, v) in [
            ("database_pool", self.database_pool),
            ("max_connections", self.max_connections),
            ("outbound_queue", self.outbound_queue),
            ("hash_concurrency", self.hash_concurrency),
            ("redis_receive_capacity", self.redis_receive_capacity),
            ("offline_in_ack", self.offline_in_ack),
            ("history_page_max", self.history_page_max),
            ("max_sessions_per_user", self.max_sessions_per_user),
            ("batch_max_messages", self.batch_max_messages),
            ("retention_per_conversation", usize::try_from(self.retention_per_conversation).unwrap_or(1)),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        for (name, v) in [
            ("rate_per_sec", self.rate_per_sec),
            ("rate_burst", self.rate_burst),
            ("login_lockout_secs", self.login_lockout_secs),
            ("login_timeout_secs", self.login_timeout_secs),
            ("ping_interval_secs", self.ping_interval_secs),
            ("keepalive_secs", self.keepalive_secs),
            ("cursor_flush_secs", self.cursor_flush_secs),
            ("retention_days", self.retention_days),
            ("purge_interval_secs", self.purge_interval_secs),
            ("resume_ttl_secs", self.resume_ttl_secs),
            ("login_timeout_pressed_secs", self.login_timeout_pressed_secs),
            ("registration_window_secs", self.registration_window_secs),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} must be a positive number"));
            }
        }
        if !(self.commit_linger_ms.is_finite() && (0.0..=1000.0).contains(&self.commit_linger_ms)) {
            return bad("commit_linger_ms must be a number from 0 to 1000".into());
        }
        if self.rate_burst < 1.0 {
            return bad("rate_burst must be at least 1".into());
        }
        if let Some(admin) = &self.admin_listen
            && admin.parse::<std::net::SocketAddr>().is_err()
        {
            return bad(format!("admin_listen: `{admin}` is not an address like 127.0.0.1:9100"));
        }
        if let Some(ws) = &self.ws_listen
            && ws.parse::<std::net::SocketAddr>().is_err()
        {
            return bad(format!("ws_listen: `{ws}` is not an address like 127.0.0.1:6080"));
        }
        if let Some(o) = self.ws_allowed_origins.iter().find(|o| *o != "*" && !o.contains("://")) {
            return bad(format!("ws_allowed_origins: `{o}` is not an origin like https://chat.example.com"));
        }
        if !(self.unready_delay_secs.is_finite() && self.unready_delay_secs >= 0.0) {
            return bad("unready_delay_secs must be zero or more".into());
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return bad(format!("log_format: `{}` is neither text nor json", self.log_format));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("tls_cert and tls_key go together: give both or neither".into());
        }
        if let Some(e) = self.proxy_from.iter().find_map(|r| r.parse::<chat_net::AddrRange>().err()) {
            return bad(format!("proxy_from: {e}"));
        }
        if self.lease_secs < 2 {
            return bad("lease_secs must be at least 2".into());
        }
        Ok(())
    }
}

/// How many distinct nodes a Redis Cluster URL names (`redis-cluster://[cred@]host:port?node=host:port&…`);
/// `None` for a URL of one Redis.
fn cluster_seeds(url: &str) -> Option<usize> {
    let rest = url.strip_prefix("redis-cluster://").or_else(|| url.strip_prefix("rediss-cluster://"))?;
    let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host).trim_end_matches('/');
    let mut seeds: std::collections::BTreeSet<&str> = query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("node="))
        .filter(|node| !node.is_empty())
        .collect();
    if !host.is_empty() {
        seeds.insert(host);
    }
    Some(seeds.len())
}

#[cfg(test)]
mod tests {
    use super::cluster_seeds;

    #[test]
    fn cluster_urls_are_counted_by_their_distinct_nodes() {
        assert_eq!(cluster_seeds("redis://127.0.0.1:6379"), None);
        assert_eq!(cluster_seeds("redis-cluster://127.0.0.1:7000"), Some(1));
        assert_eq!(cluster_seeds("rediss-cluster://u:p@h:7000/"), Some(1));
        assert_eq!(cluster_seeds("redis-cluster://h:7000?node=h:7000"), Some(1));
        assert_eq!(cluster_seeds("redis-cluster://u:p@h:7000?node=h:7001&node=h:7002"), Some(3));
    }
}
