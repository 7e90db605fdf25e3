//! The chat service: sessions, dispatch and the handlers.
//!
//! It does no I/O of its own: storage and cross-node routing go through the
//! [`Store`] and [`Broker`] ports, and clients are reached only through their
//! connection's bounded [`chat_net::Outbound`] queue. `chat-net` calls it
//! through the [`chat_net::Handler`] impl in `dispatch.rs`.

mod delivery;
mod dispatch;
mod error;
mod handlers;
mod limits;
mod password;
mod sessions;

use std::sync::Arc;
use std::time::Duration;

pub use chat_ports::{Broker, BrokerError, OfflineMessage, Sink, Store, StoreError, UserRecord};
pub use delivery::Delivery;
pub use dispatch::Conn;
pub use error::ServiceError;
pub use password::{HashCost, Passwords};
pub use sessions::{Delivered, Sessions};

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
    /// Failed logins for one account after which it is locked for `login_lockout`.
    pub login_failures_per_user: u32,
    /// How long an account stays locked after too many failed logins.
    pub login_lockout: Duration,
    /// Members a group may have.
    pub max_group_members: usize,
    /// Offline messages kept per user; senders beyond it get errno 16.
    pub max_offline_per_user: u64,
    /// A connection that is not logged in is closed after this long.
    pub login_timeout: Duration,
    /// An extension client silent this long is pinged, and closed if silent twice as long.
    pub ping_interval: Duration,
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
            login_lockout: Duration::from_secs(60),
            max_group_members: 1000,
            max_offline_per_user: 1000,
            login_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(30),
        }
    }
}

/// One node's chat service.
pub struct Service {
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    delivery: Arc<Delivery>,
    passwords: Passwords,
    login_failures: limits::LoginFailures,
    clock: handlers::Clock,
    config: ServiceConfig,
}

impl Service {
    /// A service over these adapters. `delivery` must be the sink the broker was built with.
    pub fn new(
        store: Arc<dyn Store>,
        broker: Arc<dyn Broker>,
        delivery: Arc<Delivery>,
        config: ServiceConfig,
    ) -> Result<Service, String> {
        let passwords = Passwords::new(config.hash_cost, config.hash_concurrency)?;
        let login_failures = limits::LoginFailures::new(config.login_failures_per_user, config.login_lockout);
        Ok(Service {
            store,
            broker,
            delivery,
            passwords,
            login_failures,
            clock: handlers::Clock::default(),
            config,
        })
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
            let _ = self.broker.release(*user).await;
        }
        if let Err(e) = self.store.set_online(&users, false).await {
            tracing::warn!(error = %e, count = users.len(), "could not mark users offline at shutdown");
        }
    }
}
