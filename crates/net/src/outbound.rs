//! A connection's bounded outbound queue.
//!
//! Whoever wants to write to a client (its own request handler, another
//! user's chat, the broker's receive loop) pushes a frame with
//! [`Outbound::try_send`], which never waits: a full queue means the client is
//! not reading, and the caller decides what to do (the service disconnects it
//! and keeps the message offline). One writer task drains the queue.

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
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

/// The sending side of a connection's queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbound {
    tx: mpsc::Sender<Out>,
    pub(crate) closer: CancellationToken,
}

/// The receiving side, owned by the writer task (or by a test).
#[derive(Debug)]
pub struct OutboundRx {
    pub(crate) rx: mpsc::Receiver<Out>,
    pub(crate) closer: CancellationToken,
}

impl Outbound {
    /// A queue of at most `capacity` frames.
    pub fn channel(capacity: usize) -> (Outbound, OutboundRx) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let closer = CancellationToken::new();
        (Outbound { tx, closer: closer.clone() }, OutboundRx { rx, closer })
    }

    /// Queues a frame (without delimiter) without waiting.
    pub fn try_send(&self, frame: Bytes) -> Result<(), SendError> {
        if self.closer.is_cancelled() {
            return Err(SendError::Closed);
        }
        self.tx.try_send(Out::Frame(frame)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    /// Waits until every frame queued so far has been written to the socket.
    /// Returns false if the connection closed first.
    pub async fn flushed(&self) -> bool {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Out::Flushed(done)).await.is_err() {
            return false;
        }
        tokio::select! {
            r = wait => r.is_ok(),
            () = self.closer.cancelled() => false,
        }
    }

    /// Asks the connection to close now, dropping whatever is still queued.
    pub fn close(&self) {
        self.closer.cancel();
    }

    /// Whether the connection has been closed.
    pub fn is_closed(&self) -> bool {
        self.closer.is_cancelled() || self.tx.is_closed()
    }

    /// Whether two handles lead to the same connection.
    pub fn same_connection(&self, other: &Outbound) -> bool {
        self.tx.same_channel(&other.tx)
    }
}

impl OutboundRx {
    /// Receives the next frame, acknowledging flush markers as if written.
    /// For tests and in-memory clients.
    pub async fn recv(&mut self) -> Option<Bytes> {
        loop {
            tokio::select! {
                item = self.rx.recv() => match item? {
                    Out::Frame(frame) => return Some(frame),
                    Out::Flushed(done) => { let _ = done.send(()); }
                },
                () = self.closer.cancelled() => return None,
            }
        }
    }

    /// Takes a frame if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        loop {
            match self.rx.try_recv().ok()? {
                Out::Frame(frame) => return Some(frame),
                Out::Flushed(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Whether the connection was told to close.
    pub fn is_closed(&self) -> bool {
        self.closer.is_cancelled()
    }
}
