//! How long to wait before the next reconnection attempt: exponential
//! backoff with jitter.
//!
//! Pure: the caller supplies the randomness and does the waiting.

use std::time::Duration;

/// The first delay after a lost connection.
pub const FIRST: Duration = Duration::from_millis(100);
/// The longest delay between two attempts.
pub const MAX: Duration = Duration::from_secs(5);

/// Delays that double from `first` up to `max`, each scaled by a random
/// factor in `[0.5, 1]` ("equal jitter"). The doubling keeps a client from
/// hammering a server that is down; the jitter spreads the clients of a node
/// that died, which all lose their connections at the same moment, so they
/// do not come back at the same moment either; the floor of one half keeps
/// each client's own pace predictable.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    attempts: u32,
}

impl Backoff {
    /// Delays from `first` doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max: max.max(first), attempts: 0 }
    }

    /// The delay before the next attempt; `unit` is a random number in `[0, 1)`.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        // 2^20 times the first delay is past any sensible maximum.
        let factor = 1u32 << self.attempts.min(20);
        self.attempts = self.attempts.saturating_add(1);
        let nominal = self.first.saturating_mul(factor).min(self.max);
        nominal.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new(FIRST, MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_maximum() {
        let mut b = Backoff::default();
        // With the largest factor (unit near 1) the delays are the nominal ones.
        let top: Vec<u128> = (0..10).map(|_| b.next_delay(1.0).as_millis()).collect();
        assert_eq!(top, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]);
        for _ in 0..100 {
            assert_eq!(b.next_delay(1.0), MAX, "stays at the maximum, never overflows");
        }
    }

    #[test]
    fn jitter_stays_between_half_and_whole() {
        let mut rng = crate::random::Rng::with_seed(1);
        let mut b = Backoff::default();
        for attempt in 0..12u32 {
            let nominal = (FIRST * (1 << attempt)).min(MAX);
            let d = b.next_delay(rng.unit());
            assert!(
                d >= nominal / 2 && d <= nominal,
                "attempt {attempt}: {d:?} outside {nominal:?}/2..={nominal:?}"
            );
        }
        // Two clients that lost their connection together come back apart.
        let mut a = Backoff::default();
        let mut c = Backoff::default();
        let (mut ra, mut rc) = (crate::random::Rng::with_seed(2), crate::random::Rng::with_seed(3));
        let apart = (0..8).filter(|_| a.next_delay(ra.unit()) != c.next_delay(rc.unit())).count();
        assert!(apart >= 7, "{apart} of 8 delays differ");
        let mut b = Backoff::default();
        assert_eq!(b.next_delay(0.0), FIRST / 2);
        assert_eq!(b.next_delay(5.0), FIRST * 2, "a unit out of range is clamped");
    }
}
