//! Per-connection and per-account limits: the request token bucket and the
//! failed-login counters.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chat_proto::UserId;

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(burst: f64) -> TokenBucket {
        TokenBucket { tokens: burst, last: Instant::now() }
    }

    /// Takes a token if there is one.
    pub(crate) fn take(&mut self, rate: f64, burst: f64) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * rate;
        self.tokens = (self.tokens + earned).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Failed logins per account on this node; an account with too many is locked for a while.
pub(crate) struct LoginFailures {
    limit: u32,
    lockout: Duration,
    map: Mutex<HashMap<UserId, (u32, Instant)>>,
}

/// Entries kept before expired ones are swept (bounds memory under a flood of ids).
const SWEEP_AT: usize = 100_000;

impl LoginFailures {
    pub(crate) fn new(limit: u32, lockout: Duration) -> LoginFailures {
        LoginFailures { limit, lockout, map: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, (u32, Instant)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the account is locked now.
    pub(crate) fn locked(&self, user: UserId) -> bool {
        self.lock().get(&user).is_some_and(|(n, since)| *n >= self.limit && since.elapsed() < self.lockout)
    }

    /// Counts a failure; the window restarts once the lockout has passed.
    pub(crate) fn failed(&self, user: UserId) {
        let mut map = self.lock();
        if map.len() >= SWEEP_AT {
            let lockout = self.lockout;
            map.retain(|_, (_, since)| since.elapsed() < lockout);
        }
        let entry = map.entry(user).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.lockout {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// A successful login clears the account's failures.
    pub(crate) fn succeeded(&self, user: UserId) {
        self.lock().remove(&user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let mut b = TokenBucket::new(3.0);
        assert!((0..3).all(|_| b.take(0.0, 3.0)));
        assert!(!b.take(0.0, 3.0));
        b.last -= Duration::from_millis(500);
        assert!(b.take(2.0, 3.0), "half a second at 2/s earns one token");
        assert!(!b.take(2.0, 3.0));
    }

    #[test]
    fn accounts_lock_after_the_limit_and_unlock_on_success() {
        let f = LoginFailures::new(3, Duration::from_secs(60));
        let u = UserId(1);
        for _ in 0..2 {
            f.failed(u);
        }
        assert!(!f.locked(u));
        f.failed(u);
        assert!(f.locked(u));
        assert!(!f.locked(UserId(2)), "other accounts are not affected");
        f.succeeded(u);
        assert!(!f.locked(u));
    }
}
