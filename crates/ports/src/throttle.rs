//! The throttle port: counters that expire, keyed by what is being limited (failed logins per
//! account and address, per address; registrations per address), shared by every node of a
//! cluster so that spreading attempts over nodes gains nothing. Adapters: [`MemoryThrottle`]
//! here (one node), and the Redis one in `chat-broker`.
//! Not here: what is counted and what the limits are (the service's `limits.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::BrokerError;

/// Expiring counters.
#[async_trait]
pub trait Throttle: Send + Sync + 'static {
    /// Counts one for `key` and returns its count. The first count starts a window of
    /// `window`; when it ends the key starts again from zero (a fixed window).
    async fn hit(&self, key: &str, window: Duration) -> Result<u64, BrokerError>;
    /// `key`'s count now (0 if it has none, or its window ended).
    async fn count(&self, key: &str) -> Result<u64, BrokerError>;
    /// Forgets `key`.
    async fn clear(&self, key: &str) -> Result<(), BrokerError>;
}

/// Keys kept before expired ones are swept (bounds memory under a flood of keys).
const SWEEP_AT: usize = 100_000;

/// The counters of one node, in memory (the single-node default).
#[derive(Default)]
pub struct MemoryThrottle {
    map: Mutex<HashMap<String, (u64, Instant)>>,
}

impl MemoryThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Instant)>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Throttle for MemoryThrottle {
    async fn hit(&self, key: &str, window: Duration) -> Result<u64, BrokerError> {
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= SWEEP_AT {
            map.retain(|_, (_, until)| *until > now);
        }
        let entry = map.entry(key.to_owned()).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += 1;
        Ok(entry.0)
    }

    async fn count(&self, key: &str) -> Result<u64, BrokerError> {
        let now = Instant::now();
        Ok(self.lock().get(key).filter(|(_, until)| *until > now).map_or(0, |(n, _)| *n))
    }

    async fn clear(&self, key: &str) -> Result<(), BrokerError> {
        self.lock().remove(key);
        Ok(())
    }
}

/// The behaviour every [`Throttle`] adapter must have; `key` must be unused by anyone else.
pub async fn contract(throttle: &dyn Throttle, key: &str) {
    let window = Duration::from_millis(400);
    assert_eq!(throttle.count(key).await, Ok(0), "an unknown key counts 0");
    for n in 1..=3 {
        assert_eq!(throttle.hit(key, window).await, Ok(n));
    }
    assert_eq!(throttle.count(key).await, Ok(3));
    let other = format!("{key}:other");
    assert_eq!(throttle.hit(&other, window).await, Ok(1), "keys count apart");
    throttle.clear(key).await.expect("clear");
    assert_eq!(throttle.count(key).await, Ok(0), "cleared");
    assert_eq!(throttle.hit(key, window).await, Ok(1));
    tokio::time::sleep(window + Duration::from_millis(200)).await;
    assert_eq!(throttle.count(key).await, Ok(0), "the window ended");
    assert_eq!(throttle.hit(key, window).await, Ok(1), "a new window");
    throttle.clear(key).await.expect("clear");
    throttle.clear(&other).await.expect("clear");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_throttle_keeps_the_contract() {
        contract(&MemoryThrottle::default(), "k").await;
    }
}
