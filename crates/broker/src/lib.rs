//! The two adapters of the `Broker` port: [`RedisBroker`] for a cluster of nodes sharing one
//! Redis, and [`LocalHub`]/[`LocalBroker`] for the single-node default (and for tests that
//! need several "nodes" in one process).
//! This crate does no session bookkeeping: what a delivered frame means is the `Sink`'s business.

mod channel;
mod local;
mod redis;
mod scripts;
mod throttle;

pub use channel::{channel_of, user_of_channel};
pub use local::{LocalBroker, LocalHub};
pub use redis::{RedisBroker, RedisConfig};
pub use throttle::RedisThrottle;
