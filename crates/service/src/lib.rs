//! The chat service: sessions, dispatch and the handlers.

pub use chat_ports::{Broker, BrokerError, OfflineMessage, Sink, Store, StoreError, UserRecord};
