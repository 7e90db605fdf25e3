//! The chat service: sessions, dispatch and the handlers.

pub mod ports;

pub use ports::{Broker, BrokerError, OfflineMessage, Sink, Store, StoreError, UserRecord};
