//! Every metric a node exports: its name, help text and type, in this one file.
//! Call sites elsewhere are one line (`metrics.chats_accepted.inc()`); this crate does no
//! I/O and knows no HTTP: the admin listener (`chat-admin`) renders [`Metrics::render`].
//!
//! The metrics live in a [`prometheus::Registry`] owned by this struct, not in a global one:
//! a process may hold several (tests do), and nothing here is `static`.

use prometheus::{
    Counter, Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Observes a histogram's time when stopped or dropped (`histogram.start_timer()`).
pub use prometheus::HistogramTimer;

/// Seconds; from 100 µs (an in-memory request) to 2.5 s (a database that struggles).
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// The highest request msgid counted by number (higher ones share the last counter).
const MAX_MSGID: usize = 20;

/// One node's metrics.
pub struct Metrics {
    registry: Registry,
    /// `chat_connections_open{kind="original"}`: connections that have not opted in to the extension.
    pub connections_original: IntGauge,
    /// `chat_connections_open{kind="extension"}`: connections that opted in (`"ext":1`).
    pub connections_extension: IntGauge,
    /// `chat_logins_total{result="ok"}` (LOGIN and RESUME).
    pub logins_ok: IntCounter,
    /// `chat_logins_total{result="failed"}`: wrong id, password or resume token.
    pub logins_failed: IntCounter,
    /// `chat_logins_total{result="refused"}`: refused by a limit (failed-login lockout).
    pub logins_refused: IntCounter,
    /// `chat_logins_total{result="error"}`: in use elsewhere, database or broker unavailable.
    pub logins_error: IntCounter,
    /// `chat_requests_total{msgid}`, indexed by msgid.
    requests: Vec<IntCounter>,
    /// `chat_chats_accepted_total`: chats stored, routed and acknowledged.
    pub chats_accepted: IntCounter,
    /// `chat_deliveries_total{route="local"}`: handed to a session on this node.
    pub deliveries_local: IntCounter,
    /// `chat_deliveries_total{route="remote"}`: published to the recipient's node.
    pub deliveries_remote: IntCounter,
    /// `chat_deliveries_total{route="stored"}`: recipient not connected anywhere; in the log only.
    pub deliveries_stored: IntCounter,
    /// `chat_deliveries_total{route="replayed"}`: read back from the log and pushed (login
    /// replay, gap catch-up).
    pub deliveries_replayed: IntCounter,
    /// `chat_publish_failures_total`: publishes to Redis that failed (retried, then left to catch-up).
    pub publish_failures: IntCounter,
    /// `chat_redis_lagged_total`: messages the Redis receive loop dropped (buffer overflow).
    pub redis_lagged: IntCounter,
    /// `chat_slow_readers_disconnected_total`: clients closed because their queue was full.
    pub slow_readers_disconnected: IntCounter,
    /// `chat_db_pool_in_use`: database connections checked out of the pool (at the scrape).
    pub db_pool_in_use: IntGauge,
    /// `chat_db_pool_waiting`: requests waiting for a database connection (at the scrape).
    pub db_pool_waiting: IntGauge,
    /// `chat_db_pool_checkouts_total`: database connections taken from the pool.
    pub db_pool_checkouts: IntCounter,
    /// `chat_db_pool_wait_seconds_total`: time those checkouts waited, in all (the mean wait
    /// is its rate over the checkouts' rate).
    pub db_pool_wait_seconds: Counter,
    /// `chat_request_duration_seconds`: one request's handling, from decode to answer
    /// (a chat's ends when it is queued for the journal; its store is `store_duration`).
    pub request_duration: Histogram,
    /// `chat_store_duration_seconds`: one group-commit transaction of the message log.
    pub store_duration: Histogram,
    /// `chat_tls_handshake_failures_total`: client connections whose TLS handshake failed.
    pub tls_handshake_failures: IntCounter,
    /// `chat_ready`: 1 while `/readyz` answers ready.
    pub ready: IntGauge,
    /// `chat_address_refusals_total{limit="connections"}`: connections refused by
    /// `max_connections_per_ip`.
    pub refused_connections_per_ip: IntCounter,
    /// `chat_address_refusals_total{limit="unauthenticated"}`: by `unauth_per_ip`.
    pub refused_unauth_per_ip: IntCounter,
    /// `chat_address_refusals_total{limit="registrations"}`: by `registrations_per_ip`.
    pub refused_registrations_per_ip: IntCounter,
    /// `chat_address_refusals_total{limit="logins"}`: logins refused by the failed-login
    /// throttle (per account and address, or per address).
    pub refused_logins_per_ip: IntCounter,
}

impl Metrics {
    /// A fresh set of metrics in a registry of its own.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let connections = IntGaugeVec::new(
            Opts::new("chat_connections_open", "Client connections open, by kind (original or extension)"),
            &["kind"],
        )
        .expect("valid metric");
        let logins = IntCounterVec::new(
            Opts::new(
                "chat_logins_total",
                "LOGIN and RESUME requests by result (ok, failed, refused, error)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let requests =
            IntCounterVec::new(Opts::new("chat_requests_total", "Requests decoded, by msgid"), &["msgid"])
                .expect("valid metric");
        let deliveries = IntCounterVec::new(
            Opts::new(
                "chat_deliveries_total",
                "Messages routed to a recipient, by route (local, remote, stored, replayed)",
            ),
            &["route"],
        )
        .expect("valid metric");
        let refusals = IntCounterVec::new(
            Opts::new(
                "chat_address_refusals_total",
                "Refusals by a limit per client address (connections, unauthenticated, registrations, logins)",
            ),
            &["limit"],
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let histogram = |name: &str, help: &str| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))
                .expect("valid metric")
        };
        let metrics = Metrics {
            connections_original: connections.with_label_values(&["original"]),
            connections_extension: connections.with_label_values(&["extension"]),
            logins_ok: logins.with_label_values(&["ok"]),
            logins_failed: logins.with_label_values(&["failed"]),
            logins_refused: logins.with_label_values(&["refused"]),
            logins_error: logins.with_label_values(&["error"]),
            requests: (0..=MAX_MSGID).map(|n| requests.with_label_values(&[&n.to_string()])).collect(),
            chats_accepted: counter("chat_chats_accepted_total", "Chats stored, routed and acknowledged"),
            deliveries_local: deliveries.with_label_values(&["local"]),
            deliveries_remote: deliveries.with_label_values(&["remote"]),
            deliveries_stored: deliveries.with_label_values(&["stored"]),
            deliveries_replayed: deliveries.with_label_values(&["replayed"]),
            publish_failures: counter(
                "chat_publish_failures_total",
                "Redis publishes that failed (retried; recipients catch up from the log)",
            ),
            redis_lagged: counter(
                "chat_redis_lagged_total",
                "Messages dropped by the Redis receive loop's buffer (sessions then read the log)",
            ),
            slow_readers_disconnected: counter(
                "chat_slow_readers_disconnected_total",
                "Clients disconnected because their outbound queue was full",
            ),
            db_pool_in_use: gauge("chat_db_pool_in_use", "Database connections checked out of the pool"),
            db_pool_waiting: gauge("chat_db_pool_waiting", "Requests waiting for a database connection"),
            db_pool_checkouts: counter(
                "chat_db_pool_checkouts_total",
                "Database connections taken from the pool",
            ),
            db_pool_wait_seconds: Counter::new(
                "chat_db_pool_wait_seconds_total",
                "Time spent waiting for a database connection from the pool, in all",
            )
            .expect("valid metric"),
            request_duration: histogram(
                "chat_request_duration_seconds",
                "Request handling time (a chat's ends when it is queued for the journal)",
            ),
            store_duration: histogram(
                "chat_store_duration_seconds",
                "Time of one group-commit append to the message log",
            ),
            tls_handshake_failures: counter(
                "chat_tls_handshake_failures_total",
                "Client connections whose TLS handshake failed or that spoke plaintext to the TLS port",
            ),
            ready: gauge("chat_ready", "1 while the node answers ready on /readyz"),
            refused_connections_per_ip: refusals.with_label_values(&["connections"]),
            refused_unauth_per_ip: refusals.with_label_values(&["unauthenticated"]),
            refused_registrations_per_ip: refusals.with_label_values(&["registrations"]),
            refused_logins_per_ip: refusals.with_label_values(&["logins"]),
            registry,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(connections),
            Box::new(logins),
            Box::new(requests),
            Box::new(deliveries),
            Box::new(refusals),
            Box::new(metrics.chats_accepted.clone()),
            Box::new(metrics.publish_failures.clone()),
            Box::new(metrics.redis_lagged.clone()),
            Box::new(metrics.slow_readers_disconnected.clone()),
            Box::new(metrics.db_pool_in_use.clone()),
            Box::new(metrics.db_pool_waiting.clone()),
            Box::new(metrics.db_pool_checkouts.clone()),
            Box::new(metrics.db_pool_wait_seconds.clone()),
            Box::new(metrics.request_duration.clone()),
            Box::new(metrics.store_duration.clone()),
            Box::new(metrics.tls_handshake_failures.clone()),
            Box::new(metrics.ready.clone()),
        ];
        for c in collectors {
            metrics.registry.register(c).expect("metric names are unique");
        }
        metrics
    }

    /// Counts one request of this msgid.
    pub fn request(&self, msgid: u8) {
        let i = usize::from(msgid).min(MAX_MSGID);
        if let Some(counter) = self.requests.get(i) {
            counter.inc();
        }
    }

    /// A connection opted in to the extension: it moves from `original` to `extension`.
    pub fn connection_opted_in(&self) {
        self.connections_original.dec();
        self.connections_extension.inc();
    }

    /// A connection closed.
    pub fn connection_closed(&self, ext: bool) {
        if ext { self.connections_extension.dec() } else { self.connections_original.dec() }
    }

    /// Moves a counter sampled from elsewhere (a total kept by another crate) up to `total`.
    pub fn sample(counter: &IntCounter, total: u64) {
        let now = counter.get();
        if total > now {
            counter.inc_by(total - now);
        }
    }

    /// As [`Metrics::sample`], for a counter of seconds.
    pub fn sample_seconds(counter: &Counter, total: f64) {
        let now = counter.get();
        if total > now {
            counter.inc_by(total - now);
        }
    }

    /// Everything, in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a metric family the encoder rejects is a bug.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            return format!("# encoding failed: {e}\n");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The content type of [`Metrics::render`].
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders_with_its_help() {
        let m = Metrics::new();
        m.request(6);
        m.request(200);
        m.chats_accepted.inc();
        m.connections_original.inc();
        m.connection_opted_in();
        m.request_duration.observe(0.001);
        Metrics::sample(&m.redis_lagged, 7);
        Metrics::sample(&m.redis_lagged, 5);
        let text = m.render();
        for line in [
            "chat_requests_total{msgid=\"6\"} 1",
            "chat_requests_total{msgid=\"20\"} 1",
            "chat_chats_accepted_total 1",
            "chat_connections_open{kind=\"extension\"} 1",
            "chat_connections_open{kind=\"original\"} 0",
            "chat_redis_lagged_total 7",
            "chat_request_duration_seconds_count 1",
            "# HELP chat_store_duration_seconds",
            "chat_deliveries_total{route=\"replayed\"} 0",
            "chat_logins_total{result=\"refused\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }
}
