//! A connection's bounded outbound queue.
//!
//! Whoever wants to write to a client (its own request handler, another
//! user's chat, the broker's receive loop) pushes a frame with
//! [`Outbound::try_send`], which never waits: a full queue means the client is
//! not reading, and the caller decides what to do (the service disconnects it
//! and keeps the message offline). One writer task drains the queue, taking
//! everything queued at once.
//!
//! The queue is a `VecDeque` under a mutex rather than a channel: it costs
//! nothing while empty (an idle connection holds no slots), grows with a burst
//! and gives its memory back once drained.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

/// What the writer task gets.
#[derive(Debug)]
pub(crate) enum Out {
    Frame(Bytes),
    /// Reply once everything queued before this has been written to the socket.
    Flushed(oneshot::Sender<()>),
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The client is not reading fast enough.
    #[error("outbound queue is full")]
    Full,
    /// The connection is gone.
    #[error("connection is closed")]
    Closed,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Out>,
    /// Frames in `items` (flush markers do not count against the capacity).
    frames: usize,
    /// The writer is gone: nothing queued from now on would ever be written.
    finished: bool,
    /// Frames ever queued; the n-th frame queued has index n.
    queued: u64,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// Set by `close` (a plain flag: `CancellationToken::is_cancelled` takes a lock).
    closed: AtomicBool,
    /// Wakes the writer (a permit is kept if it is not waiting, so no wake-up is lost).
    ready: Notify,
    capacity: usize,
    /// Frames ever written to the socket (in queue order), so frame n was written once this is ≥ n.
    written: AtomicU64,
}

/// The sending side of a connection's queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbound {
    shared: Arc<Shared>,
    pub(crate) closer: CancellationToken,
}

/// The receiving side, owned by the writer task (or by a test).
#[derive(Debug)]
pub struct OutboundRx {
    shared: Arc<Shared>,
    pub(crate) closer: CancellationToken,
}

/// Capacity kept by an empty queue; more is given back.
const KEEP: usize = 16;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics under this lock; a poisoned one still holds a consistent queue.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Outbound {
    /// A queue of at most `capacity` frames.
    pub fn channel(capacity: usize) -> (Outbound, OutboundRx) {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            closed: AtomicBool::new(false),
            ready: Notify::new(),
            capacity: capacity.max(1),
            written: AtomicU64::new(0),
        });
        let closer = CancellationToken::new();
        (Outbound { shared: Arc::clone(&shared), closer: closer.clone() }, OutboundRx { shared, closer })
    }

    /// Queues `item`; for a frame (`bounded`), returns its index (see [`Outbound::written`]).
    fn push(&self, item: Out, bounded: bool) -> Result<u64, SendError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        let index = {
            let mut queue = self.shared.lock();
            if queue.finished {
                return Err(SendError::Closed);
            }
            if bounded {
                if queue.frames >= self.shared.capacity {
                    return Err(SendError::Full);
                }
                queue.frames += 1;
                queue.queued += 1;
            }
            queue.items.push_back(item);
            queue.queued
        };
        self.shared.ready.notify_one();
        Ok(index)
    }

    /// Queues a frame (without delimiter) without waiting.
    pub fn try_send(&self, frame: Bytes) -> Result<(), SendError> {
        self.push(Out::Frame(frame), true).map(drop)
    }

    /// As [`Outbound::try_send`], returning the frame's index: it has reached the socket
    /// once [`Outbound::written`] is at least that.
    pub fn try_send_indexed(&self, frame: Bytes) -> Result<u64, SendError> {
        self.push(Out::Frame(frame), true)
    }

    /// The most frames the queue holds.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// How many more frames the queue takes now.
    pub fn room(&self) -> usize {
        self.shared.capacity.saturating_sub(self.shared.lock().frames)
    }

    /// How many frames have been written to the socket so far (frames go out in queue order).
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Acquire)
    }

    /// Waits until every frame queued so far has been written to the socket.
    /// Returns false if the connection closed first.
    pub async fn flushed(&self) -> bool {
        let (done, wait) = oneshot::channel();
        if self.push(Out::Flushed(done), false).is_err() {
            return false;
        }
        tokio::select! {
            r = wait => r.is_ok(),
            () = self.closer.cancelled() => false,
        }
    }

    /// Asks the connection to close now, dropping whatever is still queued.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.closer.cancel();
        self.shared.ready.notify_one();
    }

    /// Whether the connection has been closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire) || self.shared.lock().finished
    }

    /// Whether two handles lead to the same connection.
    pub fn same_connection(&self, other: &Outbound) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl OutboundRx {
    /// Moves everything queued into `into` (in order); waits while the queue is empty.
    /// Returns false once the connection is closed.
    pub(crate) async fn drain_into(&mut self, into: &mut Vec<Out>) -> bool {
        loop {
            if self.shared.closed.load(Ordering::Acquire) {
                return false;
            }
            {
                let mut queue = self.shared.lock();
                if !queue.items.is_empty() {
                    into.extend(queue.items.drain(..));
                    queue.frames = 0;
                    if queue.items.capacity() > KEEP {
                        queue.items.shrink_to(KEEP);
                    }
                    return true;
                }
            }
            tokio::select! {
                () = self.shared.ready.notified() => {}
                () = self.closer.cancelled() => return false,
            }
        }
    }

    /// Counts `n` more frames as written to the socket.
    pub(crate) fn wrote(&self, n: usize) {
        self.shared.written.fetch_add(n as u64, Ordering::Release);
    }

    /// Closes the connection from the writer's side (a failed write, a peer gone).
    pub(crate) fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.closer.cancel();
    }

    /// Marks the writer gone and returns the frames that will never be written.
    pub(crate) fn finish(&mut self) -> Vec<Bytes> {
        let mut queue = self.shared.lock();
        queue.finished = true;
        queue.frames = 0;
        queue
            .items
            .drain(..)
            .filter_map(|item| match item {
                Out::Frame(frame) => Some(frame),
                Out::Flushed(_) => None,
            })
            .collect()
    }

    /// Receives the next frame, acknowledging flush markers as if written.
    /// For tests and in-memory clients.
    pub async fn recv(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.try_recv() {
                return Some(frame);
            }
            tokio::select! {
                () = self.shared.ready.notified() => {}
                () = self.closer.cancelled() => return self.try_recv(),
            }
        }
    }

    /// Takes a frame if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        let mut queue = self.shared.lock();
        while let Some(item) = queue.items.pop_front() {
            match item {
                Out::Frame(frame) => {
                    queue.frames -= 1;
                    // Taken by a test or in-memory client counts as written.
                    self.shared.written.fetch_add(1, Ordering::Release);
                    return Some(frame);
                }
                Out::Flushed(done) => {
                    let _ = done.send(());
                }
            }
        }
        None
    }

    /// Whether the connection was told to close.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_in_order_and_closed_after_finish() {
        let (out, mut rx) = Outbound::channel(2);
        out.try_send(Bytes::from_static(b"a")).expect("room");
        out.try_send(Bytes::from_static(b"b")).expect("room");
        assert_eq!(out.try_send(Bytes::from_static(b"c")), Err(SendError::Full));
        let mut got = Vec::new();
        assert!(rx.drain_into(&mut got).await);
        assert_eq!(got.len(), 2);
        out.try_send(Bytes::from_static(b"d")).expect("room again after a drain");
        assert_eq!(out.try_send_indexed(Bytes::from_static(b"e")), Ok(4), "indexes count every frame queued");
        assert_eq!(
            rx.finish(),
            vec![Bytes::from_static(b"d"), Bytes::from_static(b"e")],
            "unwritten frames come back"
        );
        assert_eq!(out.try_send(Bytes::from_static(b"f")), Err(SendError::Closed));
    }

    #[tokio::test]
    async fn an_empty_queue_gives_its_memory_back() {
        let (out, mut rx) = Outbound::channel(10_000);
        for _ in 0..1000 {
            out.try_send(Bytes::from_static(b"x")).expect("room");
        }
        let mut got = Vec::new();
        assert!(rx.drain_into(&mut got).await);
        assert!(rx.shared.lock().items.capacity() <= KEEP);
    }

    #[tokio::test]
    async fn a_wake_up_is_never_lost() {
        let (out, mut rx) = Outbound::channel(8);
        let writer = tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < 100 {
                let mut batch = Vec::new();
                if !rx.drain_into(&mut batch).await {
                    break;
                }
                got.extend(batch);
            }
            got.len()
        });
        for _ in 0..100 {
            while out.try_send(Bytes::from_static(b"x")).is_err() {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(writer.await.expect("writer"), 100);
    }
}
