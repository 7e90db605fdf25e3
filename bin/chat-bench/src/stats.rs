//! Bookkeeping of one measured run: which deliveries of which message arrived
//! (bit per recipient, so loss and duplicates are exact), and latency
//! histograms of bounded size. Shared by the reader tasks; no I/O here.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// What one arriving frame meant for the bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The first copy for this recipient; `last` when it completes the message.
    First {
        /// All recipients of the message have it now.
        last: bool,
    },
    /// This recipient had it already.
    Duplicate,
    /// No such message or recipient slot in this run.
    Unknown,
}

/// Per-message, per-recipient delivery bits for a run of at most `capacity` messages.
#[derive(Debug)]
pub struct Tracker {
    /// Recipients each message should reach.
    expected: u32,
    /// Recipient slots per message (a group's size: the sender's own slot stays empty).
    slots: u32,
    /// 64-bit words per message.
    words: usize,
    capacity: u64,
    bits: Vec<AtomicU64>,
    /// Deliveries per message so far (to see the last one); empty when `expected` is 1.
    counts: Vec<AtomicU32>,
}

impl Tracker {
    /// Room for `capacity` messages, each with `slots` recipient slots of which `expected` are filled.
    pub fn new(capacity: u64, slots: u32, expected: u32) -> Tracker {
        let slots = slots.max(1);
        let words = slots.div_ceil(64) as usize;
        let n = capacity as usize * words;
        let counts =
            if expected > 1 { (0..capacity).map(|_| AtomicU32::new(0)).collect() } else { Vec::new() };
        Tracker {
            expected,
            slots,
            words,
            capacity,
            bits: (0..n).map(|_| AtomicU64::new(0)).collect(),
            counts,
        }
    }

    /// Recipients per message.
    pub fn expected(&self) -> u32 {
        self.expected
    }

    /// Records that recipient `slot` got message `seq`.
    pub fn deliver(&self, seq: u64, slot: u32) -> Delivery {
        if seq >= self.capacity || slot >= self.slots {
            return Delivery::Unknown;
        }
        let word = seq as usize * self.words + slot as usize / 64;
        let mask = 1u64 << (slot % 64);
        if self.bits[word].fetch_or(mask, Ordering::Relaxed) & mask != 0 {
            return Delivery::Duplicate;
        }
        let last = match self.counts.get(seq as usize) {
            Some(count) => count.fetch_add(1, Ordering::Relaxed) + 1 == self.expected,
            None => true,
        };
        Delivery::First { last }
    }

    /// First copies received for messages `0..upto`.
    pub fn delivered(&self, upto: u64) -> u64 {
        let end = upto.min(self.capacity) as usize * self.words;
        self.bits[..end].iter().map(|w| u64::from(w.load(Ordering::Relaxed).count_ones())).sum()
    }
}

/// Latency histograms (microseconds): every delivery, the last recipient of each
/// message, and the current progress window.
#[derive(Debug)]
pub struct Latencies {
    inner: Mutex<Hists>,
}

#[derive(Debug)]
struct Hists {
    all: Histogram<u64>,
    last: Histogram<u64>,
    window: Histogram<u64>,
}

/// Longest latency a histogram holds (longer ones count as this): 10 minutes in µs.
const MAX_US: u64 = 600_000_000;

fn histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts; a failure here is a programming error.
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies { inner: Mutex::new(Hists { all: histogram(), last: histogram(), window: histogram() }) }
    }
}

impl Latencies {
    fn lock(&self) -> std::sync::MutexGuard<'_, Hists> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one delivery's latency; `last` when it completed its message.
    pub fn record(&self, micros: u64, last: bool) {
        let v = micros.clamp(1, MAX_US);
        let mut h = self.lock();
        h.all.saturating_record(v);
        h.window.saturating_record(v);
        if last {
            h.last.saturating_record(v);
        }
    }

    /// Summary of the window since the last call, which starts a new window.
    pub fn take_window(&self) -> LatencySummary {
        let mut h = self.lock();
        let s = LatencySummary::of(&h.window);
        h.window.reset();
        s
    }

    /// Summaries of all deliveries and of last recipients.
    pub fn summaries(&self) -> (LatencySummary, LatencySummary) {
        let h = self.lock();
        (LatencySummary::of(&h.all), LatencySummary::of(&h.last))
    }
}

/// Percentiles of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarises a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Counters of one run, bumped by the reader and writer tasks.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages handed to a connection's writer.
    pub sent: AtomicU64,
    /// Messages the pacer could not hand over (the connection's queue was full).
    pub backlog: AtomicU64,
    /// First copies received (the tracker's count, kept as a counter for progress lines).
    pub delivered: AtomicU64,
    /// Copies of a message a recipient had already.
    pub duplicated: AtomicU64,
    /// Chats from an earlier run (a sweep's previous rate).
    pub stale: AtomicU64,
    /// Chats that reached the wrong user or group, or carried a foreign or unknown stamp.
    pub misrouted: AtomicU64,
    /// Frames that were not JSON objects with an integer msgid, or over-long.
    pub malformed: AtomicU64,
    /// Requests the server refused for their rate (errno 14).
    pub refused: AtomicU64,
    /// Any other frame (errors, notices, pings).
    pub other: AtomicU64,
    /// Connections the server closed.
    pub disconnects: AtomicU64,
    /// Writes that failed (the message never reached the server).
    pub write_errors: AtomicU64,
    /// First copies that arrived after the grace period (counted as delivered, and late).
    pub late: AtomicU64,
    /// When the grace period ends, in nanoseconds since the epoch (0: not yet known).
    pub grace_end_nanos: AtomicU64,
    /// When the latest first copy arrived, in nanoseconds since the epoch.
    pub last_delivery_nanos: AtomicU64,
}

impl Counters {
    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Adds one to a counter.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// CPU microseconds per delivered message.
pub fn us_per_delivery(cpu_s: f64, delivered: u64) -> Option<f64> {
    (delivered > 0).then(|| cpu_s * 1e6 / delivered as f64)
}

/// Average cores busy: CPU seconds over wall seconds.
pub fn cores(cpu_s: f64, wall_s: f64) -> f64 {
    if wall_s > 0.0 { cpu_s / wall_s } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_to_one_tracking() {
        let t = Tracker::new(10, 1, 1);
        assert_eq!(t.deliver(3, 0), Delivery::First { last: true });
        assert_eq!(t.deliver(3, 0), Delivery::Duplicate);
        assert_eq!(t.deliver(10, 0), Delivery::Unknown);
        assert_eq!(t.deliver(3, 1), Delivery::Unknown);
        assert_eq!(t.delivered(10), 1);
        assert_eq!(t.delivered(3), 0);
        assert_eq!(t.delivered(1000), 1);
    }

    #[test]
    fn group_tracking_sees_the_last_member() {
        // A group of 70 (two words per message); the sender is slot 5.
        let t = Tracker::new(4, 70, 69);
        let others: Vec<u32> = (0..70).filter(|s| *s != 5).collect();
        for (i, slot) in others.iter().enumerate() {
            let last = i == others.len() - 1;
            assert_eq!(t.deliver(2, *slot), Delivery::First { last }, "slot {slot}");
        }
        assert_eq!(t.deliver(2, 69), Delivery::Duplicate);
        assert_eq!(t.deliver(2, 70), Delivery::Unknown);
        assert_eq!(t.delivered(4), 69);
        assert_eq!(t.deliver(1, 64), Delivery::First { last: false });
        assert_eq!(t.delivered(4), 70);
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let l = Latencies::default();
        for us in 1..=10_000u64 {
            l.record(us, us % 2 == 0);
        }
        let (all, last) = l.summaries();
        assert_eq!(all.count, 10_000);
        assert_eq!(last.count, 5_000);
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.002 + 0.001;
        assert!(close(all.p50_ms, 5.0), "{all:?}");
        assert!(close(all.p90_ms, 9.0), "{all:?}");
        assert!(close(all.p99_ms, 9.9), "{all:?}");
        assert!(close(all.p999_ms, 9.99), "{all:?}");
        assert!(close(all.max_ms, 10.0), "{all:?}");
        let w = l.take_window();
        assert_eq!(w.count, 10_000);
        assert_eq!(l.take_window().count, 0);
    }

    #[test]
    fn latencies_out_of_range_are_clamped() {
        let l = Latencies::default();
        l.record(0, true);
        l.record(u64::MAX, true);
        let (all, _) = l.summaries();
        assert_eq!(all.count, 2);
        assert!(all.max_ms >= 599_000.0);
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(Latencies::default().summaries().0, LatencySummary::default());
    }

    #[test]
    fn cpu_math() {
        assert_eq!(us_per_delivery(2.0, 0), None);
        assert_eq!(us_per_delivery(0.5, 100_000), Some(5.0));
        assert_eq!(cores(3.0, 2.0), 1.5);
        assert_eq!(cores(3.0, 0.0), 0.0);
    }
}
