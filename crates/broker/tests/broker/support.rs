//! Test helpers: a sink that records what it is given, and polling with a deadline.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chat_ports::Sink;
use chat_proto::UserId;

/// Records every delivered frame. Optionally stalls the first delivery (to provoke lag).
#[derive(Default)]
pub struct RecordingSink {
    frames: Mutex<Vec<(UserId, Bytes)>>,
    stall_first: bool,
    released: AtomicBool,
    resyncs: AtomicUsize,
    lost: Mutex<Vec<UserId>>,
}

impl RecordingSink {
    /// A sink whose first delivery blocks the calling thread until [`release`](Self::release)
    /// (at most 10 s).
    pub fn stalling() -> Self {
        RecordingSink { stall_first: true, ..RecordingSink::default() }
    }

    /// Lets a stalled first delivery return.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    /// Everything delivered so far, in order.
    pub fn frames(&self) -> Vec<(UserId, Bytes)> {
        self.frames.lock().expect("sink lock").clone()
    }

    /// Waits until at least `n` frames arrived, or panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<(UserId, Bytes)> {
        let frames = eventually(within, || {
            let frames = self.frames();
            (frames.len() >= n).then_some(frames)
        })
        .await;
        frames.unwrap_or_else(|| panic!("expected {n} frames within {within:?}, got {:?}", self.frames()))
    }

    /// How many times the broker asked for a resync (messages may have been missed).
    pub fn resyncs(&self) -> usize {
        self.resyncs.load(Ordering::SeqCst)
    }

    /// The users whose claim the broker said this node lost, in order.
    pub fn lost(&self) -> Vec<UserId> {
        self.lost.lock().expect("sink lock").clone()
    }

    /// Whether a frame with exactly these bytes arrived for `user`.
    pub fn has(&self, user: UserId, frame: &[u8]) -> bool {
        self.frames().iter().any(|(u, f)| *u == user && f.as_ref() == frame)
    }
}

impl Sink for RecordingSink {
    fn resync(&self) {
        self.resyncs.fetch_add(1, Ordering::SeqCst);
    }

    fn claim_lost(&self, user: UserId) {
        self.lost.lock().expect("sink lock").push(user);
    }

    fn deliver(&self, user: UserId, frame: Bytes) {
        let first = {
            let mut frames = self.frames.lock().expect("sink lock");
            frames.push((user, frame));
            frames.len() == 1
        };
        if first && self.stall_first {
            // Deliberately blocks the receive loop so that the broadcast buffer overflows.
            // `block_in_place` hands this worker's other tasks (fred's reader may be among them)
            // to another thread, so only the receive loop stalls. Needs a multi-thread runtime.
            tokio::task::block_in_place(|| {
                let deadline = Instant::now() + Duration::from_secs(10);
                while !self.released.load(Ordering::SeqCst) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
        }
    }
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `within`.
pub async fn eventually<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lets in-flight deliveries land before asserting that nothing more arrived.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}
