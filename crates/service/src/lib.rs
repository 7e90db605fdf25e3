//! The chat service: sessions, dispatch and the handlers.
//!
//! It does no I/O of its own: storage and cross-node routing go through the
//! [`Store`], [`Log`] and [`Broker`] ports, and clients are reached only through their
//! connection's bounded [`chat_net::Outbound`] queue. `chat-net` calls it
//! through the [`chat_net::Handler`] impl in `dispatch.rs`.

mod control;
mod delivery;
mod dispatch;
mod durable;
mod error;
mod gates;
mod handlers;
mod inbox;
mod journal;
mod limits;
mod password;
mod presence;
mod receipts;
mod sessions;

use std::sync::Arc;
use std::time::Duration;

pub use chat_ports::{
    Broker, BrokerError, Control, Log, MemoryThrottle, OfflineMessage, Sink, Store, StoreError, Throttle,
    UserRecord,
};
pub use delivery::Delivery;
pub use dispatch::Conn;
pub use durable::NODE_PROTOCOL;
pub use error::ServiceError;
pub use password::{HashCost, Passwords};
pub use sessions::{Delivered, Refused, Sessions};

/// Limits and settings of the service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// argon2id cost.
    pub hash_cost: HashCost,
    /// How many password hashes may run at once.
    pub hash_concurrency: usize,
    /// Longest chat message, in bytes.
    pub max_message_bytes: usize,
    /// Frames a login in progress may hold back for its client.
    pub pending_limit: usize,
    /// Requests per second a connection may send on average (token bucket refill).
    pub rate_per_sec: f64,
    /// Requests a connection may send in a burst (token bucket size).
    pub rate_burst: f64,
    /// Refused requests in a row after which a flooding connection is closed.
    pub abuse_limit: u32,
    /// Failed logins after which a connection is closed.
    pub login_failures_per_conn: u32,
    /// Failed logins for one account from one client address after which that account is
    /// locked for that address for `login_lockout` (other addresses are not affected).
    pub login_failures_per_user: u32,
    /// Failed logins from one client address, whatever the accounts, after which the
    /// address's logins are refused for `login_lockout`.
    pub login_failures_per_addr: u32,
    /// How long failed logins count, and so how long a lock lasts.
    pub login_lockout: Duration,
    /// Connections per client address on this node (0: no limit).
    pub max_connections_per_ip: usize,
    /// Connections without a login per client address on this node (0: no limit).
    pub unauth_per_ip: usize,
    /// Connections without a login on this node from which it is under pressure: then the
    /// login deadline is `login_timeout_pressed`.
    pub unauth_pressure: usize,
    /// The login deadline while the node is under pressure.
    pub login_timeout_pressed: Duration,
    /// Registrations per client address within `registration_window` (0: no limit).
    pub registrations_per_ip: u32,
    /// How long registrations count.
    pub registration_window: Duration,
    /// Client addresses not limited per address (the balancers themselves: without the PROXY
    /// protocol every client comes from there).
    pub limits_exempt: Vec<chat_net::AddrRange>,
    /// Members a group may have.
    pub max_group_members: usize,
    /// Most stored messages an original client's LOGIN ack carries (the rest follow as pushes).
    pub offline_in_ack: usize,
    /// How often acknowledged cursors are written (the most a node crash makes come again).
    pub cursor_flush: Duration,
    /// Messages older than this are purged.
    pub retention: Duration,
    /// Messages kept per conversation (older ones are purged).
    pub retention_per_conversation: u64,
    /// How often the purge runs.
    pub purge_interval: Duration,
    /// How long a resume token lives after the login that issued it.
    pub resume_ttl: Duration,
    /// Most messages in a HISTORY page.
    pub history_page_max: usize,
    /// Most messages per group-commit transaction.
    pub batch_max_messages: usize,
    /// How long a chat may wait for company before its transaction starts, when the
    /// pipeline is idle (ARCHITECTURE.md, "The cost of an append"); zero: never waits.
    pub commit_linger: Duration,
    /// A connection that is not logged in is closed after this long.
    pub login_timeout: Duration,
    /// An extension client silent this long is pinged, and closed if silent twice as long.
    pub ping_interval: Duration,
    /// Sessions one user may have at once, on all nodes (extension clients; an original
    /// client's session is the only one).
    pub max_sessions_per_user: usize,
    /// How long after a session joined a user other nodes hold it reads its conversations
    /// again (what they routed before they heard of it).
    pub settle_after: Duration,
    /// How long a user whose last session was lost (not logged out) must stay away before
    /// its friends are told it went offline (a reconnect within it is not announced).
    pub presence_debounce: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            hash_cost: HashCost::default(),
            hash_concurrency: 2,
            max_message_bytes: 60 * 1024,
            pending_limit: 1024,
            rate_per_sec: 50.0,
            rate_burst: 200.0,
            abuse_limit: 1000,
            login_failures_per_conn: 5,
            login_failures_per_user: 10,
            login_failures_per_addr: 50,
            login_lockout: Duration::from_secs(60),
            max_connections_per_ip: 100,
            unauth_per_ip: 20,
            unauth_pressure: 1000,
            login_timeout_pressed: Duration::from_secs(10),
            registrations_per_ip: 10,
            registration_window: Duration::from_secs(3600),
            limits_exempt: ["127.0.0.1", "::1"]
                .iter()
                .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
                .map(chat_net::AddrRange::one)
                .collect(),
            max_group_members: 1000,
            offline_in_ack: 1000,
            cursor_flush: Duration::from_secs(1),
            retention: Duration::from_secs(30 * 24 * 3600),
            retention_per_conversation: 100_000,
            purge_interval: Duration::from_secs(600),
            resume_ttl: Duration::from_secs(7 * 24 * 3600),
            history_page_max: 100,
            batch_max_messages: 1000,
            commit_linger: Duration::from_millis(2),
            login_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(30),
            max_sessions_per_user: 10,
            settle_after: Duration::from_secs(1),
            presence_debounce: Duration::from_secs(3),
        }
    }
}

/// One node's chat service.
pub struct Service {
    store: Arc<dyn Store>,
    log: Arc<dyn Log>,
    control: Arc<dyn Control>,
    broker: Arc<dyn Broker>,
    delivery: Arc<Delivery>,
    journal: journal::Journal,
    known_users: handlers::KnownUsers,
    passwords: Passwords,
    addresses: limits::Addresses,
    throttles: limits::Throttles,
    gates: gates::Gates,
    config: ServiceConfig,
}

/// Text of chats accepted per group-commit transaction, at most.
const BATCH_MAX_BYTES: usize = 4 * 1024 * 1024;

impl Service {
    /// A service over these adapters. `delivery` must be the sink the broker was built with,
    /// over the same `log`; `control` is the same database's (blocks, friend requests, group
    /// ranks, accounts). Starts its background tasks (the group commit, the cursor flush,
    /// the retention purge): call it inside a tokio runtime.
    pub fn new(
        store: Arc<dyn Store>,
        log: Arc<dyn Log>,
        control: Arc<dyn Control>,
        broker: Arc<dyn Broker>,
        delivery: Arc<Delivery>,
        config: ServiceConfig,
    ) -> Result<Service, String> {
        let passwords = Passwords::new(config.hash_cost, config.hash_concurrency)?;
        let addresses = limits::Addresses::new(
            config.max_connections_per_ip,
            config.unauth_per_ip,
            config.limits_exempt.clone(),
        );
        let throttles = limits::Throttles::new(Arc::new(MemoryThrottle::default()), throttle_limits(&config));
        let limits = journal::BatchLimits {
            messages: config.batch_max_messages.max(1),
            bytes: BATCH_MAX_BYTES,
            linger: config.commit_linger,
        };
        let clock = Arc::new(handlers::Clock::default());
        let journal = journal::Journal::start(log.clone(), broker.clone(), delivery.clone(), clock, limits);
        spawn_upkeep(&delivery, &log, &config);
        presence::sweep_dead_nodes(
            broker.clone(),
            store.clone(),
            control.clone(),
            Arc::downgrade(&delivery),
            Duration::from_secs(1),
        );
        Ok(Service {
            store,
            log,
            control,
            broker,
            delivery,
            journal,
            known_users: handlers::KnownUsers::default(),
            passwords,
            addresses,
            throttles,
            gates: gates::Gates::default(),
            config,
        })
    }

    /// Counts failed logins and registrations in `counters` (the Redis ones, shared by every
    /// node of a cluster) instead of this node's memory.
    pub fn with_throttle(mut self, counters: Arc<dyn Throttle>) -> Service {
        self.throttles = limits::Throttles::new(counters, throttle_limits(&self.config));
        self
    }

    /// Writes every session's acknowledged cursors now (shutdown does, before logging out).
    pub async fn flush_cursors(&self) {
        self.delivery.flush_cursors().await;
    }

    /// This node's sessions.
    pub fn sessions(&self) -> &Sessions {
        self.delivery.sessions()
    }

    /// Marks every user still registered on this node offline (the last step of a
    /// shutdown whose connections did not all close in time). Only this node's users.
    pub async fn mark_all_offline(&self) {
        let users = self.sessions().users();
        if users.is_empty() {
            return;
        }
        for user in &users {
            let _ = self.broker.unsubscribe(*user).await;
            for _ in 0..self.sessions().count(*user) {
                let _ = self.broker.leave(*user).await;
            }
            let _ = self.broker.release(*user).await;
        }
        if let Err(e) = self.store.set_online(&users, false).await {
            tracing::warn!(error = %e, count = users.len(), "could not mark users offline at shutdown");
        }
    }
}

fn throttle_limits(config: &ServiceConfig) -> limits::ThrottleLimits {
    limits::ThrottleLimits {
        per_account_addr: config.login_failures_per_user.max(1),
        per_addr: config.login_failures_per_addr.max(1),
        login_window: config.login_lockout,
        registrations: config.registrations_per_ip,
        registration_window: config.registration_window,
    }
}

/// The periodic work of a node: writing acknowledged cursors every `cursor_flush`, and the
/// retention purge every `purge_interval`. The tasks hold only weak references: they end
/// with the service.
fn spawn_upkeep(delivery: &Arc<Delivery>, log: &Arc<dyn Log>, config: &ServiceConfig) {
    every(
        config.cursor_flush.max(Duration::from_millis(10)),
        Arc::downgrade(delivery),
        |delivery| async move {
            delivery.flush_cursors().await;
        },
    );
    let retention = i64::try_from(config.retention.as_millis()).unwrap_or(i64::MAX);
    let keep = i64::try_from(config.retention_per_conversation).unwrap_or(i64::MAX);
    every(config.purge_interval.max(Duration::from_secs(1)), Arc::downgrade(log), move |log| async move {
        let now = handlers::Clock::now_ms();
        match log.purge(now.saturating_sub(retention), keep, now).await {
            Ok(0) => {}
            Ok(gone) => tracing::info!(messages = gone, "retention purge"),
            Err(e) => tracing::warn!(error = %e, "retention purge failed; will retry"),
        }
    });
}

/// Runs `work` on `target` every `period` (a late tick is not made up for) while it lives.
fn every<T, F, Fut>(period: Duration, target: std::sync::Weak<T>, work: F)
where
    T: ?Sized + Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(target) = target.upgrade() else { return };
            work(target).await;
        }
    });
}
