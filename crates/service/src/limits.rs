//! Per-connection, per-address and per-account limits: the request token bucket; the
//! connections of each client address on this node ([`Addresses`]); and the throttles of
//! failed logins (per account and address, per address) and of registrations (per address),
//! counted through the [`Throttle`] port so that every node of a cluster shares them.
//!
//! Addresses are the clients' real ones (a PROXY header or X-Forwarded-For from an allowed
//! balancer, see `chat_net::proxy`); IPv6 addresses count by their /64, which one subscriber
//! usually holds whole. The balancers' own addresses (`proxy_from`) are exempt from the
//! per-address limits: without the PROXY protocol every client comes from there.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_net::AddrRange;
use chat_ports::Throttle;
use chat_proto::UserId;

use crate::ServiceError;

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

/// What the per-address limits count an address as: an IPv4 address (an IPv4-mapped IPv6
/// one included) by itself, an IPv6 address by its /64.
pub(crate) fn addr_key(ip: IpAddr) -> IpAddr {
    match chat_net::proxy::canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// Where a connection stands with the per-address limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted {
    /// The address the limits count ([`addr_key`]).
    pub(crate) key: IpAddr,
    /// A balancer's own address: not limited per address.
    pub(crate) exempt: bool,
}

/// Why a connection was refused at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `max_connections_per_ip`.
    Connections,
    /// `unauth_per_ip`.
    Unauthenticated,
}

impl Refused {
    /// What the client is told.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Refused::Connections => "too many connections from your address; closing",
            Refused::Unauthenticated => "too many connections waiting to log in from your address; closing",
        }
    }

    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Refused::Connections => "connections",
            Refused::Unauthenticated => "unauthenticated",
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    conns: usize,
    unauth: usize,
}

/// The connections of each client address on this node, and how many are not logged in.
pub(crate) struct Addresses {
    max_conns: usize,
    max_unauth: usize,
    exempt: Vec<AddrRange>,
    map: Mutex<HashMap<IpAddr, Count>>,
    /// Connections without a login on this node, exempt addresses included (the pressure).
    unauth_total: AtomicUsize,
}

impl Addresses {
    /// Limits of `max_conns` connections and `max_unauth` connections without a login per
    /// address (0: no limit); `exempt` addresses are not limited.
    pub(crate) fn new(max_conns: usize, max_unauth: usize, exempt: Vec<AddrRange>) -> Addresses {
        Addresses { max_conns, max_unauth, exempt, map: Mutex::default(), unauth_total: AtomicUsize::new(0) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Count>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How the limits see `ip`.
    pub(crate) fn classify(&self, ip: IpAddr) -> Counted {
        Counted { key: addr_key(ip), exempt: self.exempt.iter().any(|r| r.contains(ip)) }
    }

    /// A new connection, not logged in: counted, or refused (then nothing is counted).
    pub(crate) fn open(&self, who: Counted) -> Result<(), Refused> {
        if !who.exempt {
            let mut map = self.lock();
            let count = map.entry(who.key).or_default();
            if self.max_conns > 0 && count.conns >= self.max_conns {
                drop_if_empty(&mut map, who.key);
                return Err(Refused::Connections);
            }
            if self.max_unauth > 0 && count.unauth >= self.max_unauth {
                drop_if_empty(&mut map, who.key);
                return Err(Refused::Unauthenticated);
            }
            count.conns += 1;
            count.unauth += 1;
        }
        self.unauth_total.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A counted connection logged in.
    pub(crate) fn logged_in(&self, who: Counted) {
        self.unauth_total.fetch_sub(1, Ordering::Relaxed);
        if !who.exempt
            && let Some(count) = self.lock().get_mut(&who.key)
        {
            count.unauth = count.unauth.saturating_sub(1);
        }
    }

    /// A counted connection logged out (and stays, or is closing).
    pub(crate) fn logged_out(&self, who: Counted) {
        self.unauth_total.fetch_add(1, Ordering::Relaxed);
        if !who.exempt {
            self.lock().entry(who.key).or_default().unauth += 1;
        }
    }

    /// A counted connection, not logged in (any more), closed.
    pub(crate) fn closed(&self, who: Counted) {
        self.unauth_total.fetch_sub(1, Ordering::Relaxed);
        if who.exempt {
            return;
        }
        let mut map = self.lock();
        if let Some(count) = map.get_mut(&who.key) {
            count.conns = count.conns.saturating_sub(1);
            count.unauth = count.unauth.saturating_sub(1);
        }
        drop_if_empty(&mut map, who.key);
    }

    /// Connections without a login on this node now.
    pub(crate) fn unauthenticated(&self) -> usize {
        self.unauth_total.load(Ordering::Relaxed)
    }
}

fn drop_if_empty(map: &mut HashMap<IpAddr, Count>, key: IpAddr) {
    if map.get(&key).is_some_and(|c| c.conns == 0 && c.unauth == 0) {
        map.remove(&key);
    }
}

/// The limits the [`Throttles`] apply.
#[derive(Debug, Clone)]
pub(crate) struct ThrottleLimits {
    /// Failed logins for one account from one address within `login_window`.
    pub(crate) per_account_addr: u32,
    /// Failed logins from one address, whatever the accounts, within `login_window`.
    pub(crate) per_addr: u32,
    /// How long failed logins count.
    pub(crate) login_window: Duration,
    /// Registrations from one address within `registration_window` (0: no limit).
    pub(crate) registrations: u32,
    /// How long registrations count.
    pub(crate) registration_window: Duration,
}

/// Failed logins and registrations, counted cluster-wide through the [`Throttle`] port. If
/// the counters cannot be reached, nothing is refused (logged): logins keep working while
/// Redis is down, as they do without it.
pub(crate) struct Throttles {
    counters: Arc<dyn Throttle>,
    limits: ThrottleLimits,
}

impl Throttles {
    pub(crate) fn new(counters: Arc<dyn Throttle>, limits: ThrottleLimits) -> Throttles {
        Throttles { counters, limits }
    }

    async fn count(&self, key: &str) -> u64 {
        self.counters.count(key).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "throttle counters unavailable; not throttling");
            0
        })
    }

    async fn hit(&self, key: &str, window: Duration) -> u64 {
        self.counters.hit(key, window).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "throttle counters unavailable; not counting");
            0
        })
    }

    /// Whether `user` may try a password from `who` now; if so, the pair's failures so far.
    pub(crate) async fn login_allowed(&self, user: UserId, who: Counted) -> Result<u64, ServiceError> {
        let failed = self.count(&pair_key(user, who)).await;
        if failed >= u64::from(self.limits.per_account_addr) {
            return Err(ServiceError::RateLimited(
                "too many failed logins for this account from your address; try again later".into(),
            ));
        }
        if !who.exempt && self.count(&addr_login_key(who)).await >= u64::from(self.limits.per_addr) {
            return Err(ServiceError::RateLimited(
                "too many failed logins from your address; try again later".into(),
            ));
        }
        Ok(failed)
    }

    /// A wrong password (or unknown account) for `user` from `who`.
    pub(crate) async fn login_failed(&self, user: UserId, who: Counted) {
        self.hit(&pair_key(user, who), self.limits.login_window).await;
        if !who.exempt {
            self.hit(&addr_login_key(who), self.limits.login_window).await;
        }
    }

    /// The right password for `user` from `who`: that pair starts afresh (the address's own
    /// count stays: logging in to one's own account does not buy guesses at others).
    pub(crate) async fn login_succeeded(&self, user: UserId, who: Counted) {
        if let Err(e) = self.counters.clear(&pair_key(user, who)).await {
            tracing::warn!(error = %e, "throttle counters unavailable; failures stay counted");
        }
    }

    /// Counts a registration from `who`, or refuses it beyond the limit.
    pub(crate) async fn registration(&self, who: Counted) -> Result<(), ServiceError> {
        if who.exempt || self.limits.registrations == 0 {
            return Ok(());
        }
        let n = self.hit(&format!("reg:{}", who.key), self.limits.registration_window).await;
        if n > u64::from(self.limits.registrations) {
            return Err(ServiceError::AddressLimit(
                "too many registrations from your address; try again later".into(),
            ));
        }
        Ok(())
    }
}

fn pair_key(user: UserId, who: Counted) -> String {
    format!("login:{}:{}", user.0, who.key)
}

fn addr_login_key(who: Counted) -> String {
    format!("login:{}", who.key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_ports::MemoryThrottle;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let mut b = TokenBucket::new(3.0);
        assert!((0..3).all(|_| b.take(0.0, 3.0)));
        assert!(!b.take(0.0, 3.0));
        b.last -= Duration::from_millis(500);
        assert!(b.take(2.0, 3.0), "half a second at 2/s earns one token");
        assert!(!b.take(2.0, 3.0));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(addr_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(addr_key(ip("2001:db8:1:2:bbbb::9")), addr_key(ip("2001:db8:1:2::7")));
        assert_ne!(addr_key(ip("2001:db8:1:3::1")), addr_key(ip("2001:db8:1:2::1")));
        assert_eq!(addr_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(addr_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn addresses_limit_connections_and_logins_in_waiting() {
        let a = Addresses::new(3, 2, vec!["127.0.0.1".parse().expect("range")]);
        let x = a.classify(ip("192.0.2.1"));
        assert_eq!((a.open(x), a.open(x)), (Ok(()), Ok(())));
        assert_eq!(a.open(x), Err(Refused::Unauthenticated), "two wait to log in already");
        a.logged_in(x);
        assert_eq!(a.open(x), Ok(()));
        a.logged_in(x);
        assert_eq!(a.open(x), Err(Refused::Connections), "three connections");
        // Another address of the same /64 is the same address; another /64 is not.
        let y = a.classify(ip("2001:db8::1"));
        assert_eq!(a.open(y), Ok(()));
        assert_eq!(a.open(a.classify(ip("2001:db8::2"))), Ok(()));
        assert_eq!(a.open(a.classify(ip("2001:db8::3"))), Err(Refused::Unauthenticated));
        // The balancer's own address is not limited, but counts towards the pressure.
        let lb = a.classify(ip("127.0.0.1"));
        assert!((0..10).all(|_| a.open(lb).is_ok()));
        assert_eq!(a.unauthenticated(), 1 + 2 + 10);
        a.logged_out(x);
        a.closed(x);
        assert_eq!(a.open(x), Ok(()), "a closed connection gives its place back");
        for _ in 0..10 {
            a.closed(lb);
        }
        assert_eq!(a.unauthenticated(), 1 + 2 + 1);
    }

    fn throttles(registrations: u32) -> Throttles {
        let limits = ThrottleLimits {
            per_account_addr: 3,
            per_addr: 5,
            login_window: Duration::from_secs(60),
            registrations,
            registration_window: Duration::from_secs(60),
        };
        Throttles::new(Arc::new(MemoryThrottle::default()), limits)
    }

    #[tokio::test]
    async fn failed_logins_lock_the_pair_and_then_the_address_but_not_the_owner() {
        let t = throttles(0);
        let a = Addresses::new(0, 0, vec!["127.0.0.1".parse().expect("range")]);
        let (attacker, owner) = (a.classify(ip("192.0.2.66")), a.classify(ip("198.51.100.7")));
        let victim = UserId(1);
        for _ in 0..3 {
            assert!(t.login_allowed(victim, attacker).await.is_ok());
            t.login_failed(victim, attacker).await;
        }
        assert!(t.login_allowed(victim, attacker).await.is_err(), "the pair is locked");
        assert!(t.login_allowed(victim, owner).await.is_ok(), "the owner from elsewhere is not");
        assert!(t.login_allowed(UserId(2), attacker).await.is_ok());
        t.login_failed(UserId(2), attacker).await;
        t.login_failed(UserId(3), attacker).await;
        let refused = t.login_allowed(UserId(4), attacker).await;
        assert!(matches!(refused, Err(ServiceError::RateLimited(m)) if m.contains("from your address")));
        // A success clears the pair, not the address.
        t.login_succeeded(victim, owner).await;
        assert!(t.login_allowed(UserId(5), attacker).await.is_err());
        // The balancer's own address is throttled per account only.
        let lb = a.classify(ip("127.0.0.1"));
        for n in 0..10 {
            t.login_failed(UserId(100 + n), lb).await;
        }
        assert!(t.login_allowed(UserId(200), lb).await.is_ok());
    }

    #[tokio::test]
    async fn registrations_per_address() {
        let t = throttles(2);
        let a = Addresses::new(0, 0, Vec::new());
        let (x, y) = (a.classify(ip("192.0.2.1")), a.classify(ip("192.0.2.2")));
        assert!(t.registration(x).await.is_ok() && t.registration(x).await.is_ok());
        assert!(matches!(t.registration(x).await, Err(ServiceError::AddressLimit(_))));
        assert!(t.registration(y).await.is_ok(), "another address");
    }
}
