//! A small pseudo-random generator for what needs spread, not secrecy: the
//! jitter of reconnect delays and the prefix of client message ids.
//!
//! Seeded from the operating system once per run; not for tokens or keys.

/// splitmix64: tiny, fast, and good enough to spread reconnects and make
/// the `cid` prefixes of two runs differ.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the operating system (the clock and the
    /// process id if that fails).
    pub fn from_os() -> Rng {
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_ok() {
            return Rng(u64::from_le_bytes(bytes));
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng(nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// A generator with a fixed seed (for tests).
    #[cfg(test)]
    pub fn with_seed(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        // The top 53 bits: exactly what an f64 holds.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_stay_in_range_and_spread() {
        let mut rng = Rng::with_seed(7);
        let draws: Vec<f64> = (0..10_000).map(|_| rng.unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let low = draws.iter().filter(|&&u| u < 0.5).count();
        assert!((4_500..5_500).contains(&low), "{low} of 10000 below 0.5");
        assert_ne!(Rng::from_os().next_u64(), Rng::from_os().next_u64());
    }
}
