//! The accept loop and the per-connection reader and writer tasks.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, debug_span, info, warn};

use crate::codec::{FrameCodec, Inbound};
use crate::outbound::{Out, Outbound, OutboundRx};

/// Whether to keep reading from a connection after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Close the connection after what is queued has been written.
    Close,
}

/// What the network layer calls for each connection.
pub trait Handler: Send + Sync + 'static {
    /// Per-connection state, owned by the connection's reader task.
    type Conn: Send + 'static;

    /// A connection was accepted.
    fn open(&self, id: u64, peer: SocketAddr, out: Outbound) -> Self::Conn;

    /// One inbound frame (or an over-long one).
    fn frame(&self, conn: &mut Self::Conn, frame: Inbound) -> impl Future<Output = Flow> + Send;

    /// The node is shutting down: say goodbye through the queue if the client understands it.
    fn shutting_down(&self, conn: &mut Self::Conn);

    /// Called every [`NetConfig::idle_check`] with the time since the last inbound frame
    /// (to close idle connections and ping silent ones).
    fn idle(&self, conn: &mut Self::Conn, quiet_for: Duration) -> Flow;

    /// The connection is over, for whatever reason: clean up. `unwritten` holds the
    /// frames that were queued for the client but never reached its socket.
    fn close(&self, conn: Self::Conn, unwritten: Vec<Bytes>) -> impl Future<Output = ()> + Send;
}

/// Limits of the network layer.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Longest inbound frame in bytes.
    pub max_frame: usize,
    /// Frames queued per connection before the client counts as not reading.
    pub outbound_queue: usize,
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// How long a closing connection may take to write what is queued.
    pub linger: Duration,
    /// How often [`Handler::idle`] runs for each connection.
    pub idle_check: Duration,
    /// TCP keepalive idle time (dead peers of clients that cannot answer pings are found by TCP).
    pub keepalive: Option<Duration>,
    /// Sent to a connection refused because the node is full, before closing it.
    pub refusal: Option<Bytes>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            max_frame: 64 * 1024,
            outbound_queue: 1024,
            max_connections: 20_000,
            linger: Duration::from_secs(2),
            idle_check: Duration::from_secs(5),
            keepalive: Some(Duration::from_secs(60)),
            refusal: None,
        }
    }
}

/// Accepts connections until `shutdown` fires, then waits for every
/// connection task (each of which runs [`Handler::close`]).
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    config: NetConfig,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(config.max_connections));
    // Shared, not cloned into every connection's task.
    let config = Arc::new(config);
    let next_id = AtomicU64::new(1);
    // One heartbeat for all connections instead of a timer and a shutdown waiter in each:
    // it changes every `idle_check` (idle checks) and turns true at shutdown.
    let (beat_tx, beat) = watch::channel(false);
    tokio::spawn({
        let (shutdown, period) = (shutdown.clone(), config.idle_check);
        async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(period) => beat_tx.send_modify(|_| {}),
                    () = shutdown.cancelled() => {
                        beat_tx.send_replace(true);
                        break;
                    }
                }
            }
        }
    });
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            warn!(%peer, limit = config.max_connections, "connection limit reached; refusing");
            if let Some(refusal) = config.refusal.clone() {
                // Best effort and never waiting: the socket buffer of a new connection is empty.
                let mut line = refusal.to_vec();
                line.push(b'\n');
                let _ = stream.try_write(&line);
            }
            drop(stream);
            continue;
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let handler = handler.clone();
        let config = Arc::clone(&config);
        let beat = beat.clone();
        // Debug level: an enabled span per connection costs resident memory (its formatted
        // fields live as long as the connection); info events name the connection themselves.
        let span = debug_span!("conn", id, %peer);
        tracker.spawn(
            async move {
                run_connection(stream, peer, id, handler, config, beat).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

async fn run_connection<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    handler: Arc<H>,
    config: Arc<NetConfig>,
    mut beat: watch::Receiver<bool>,
) {
    debug!(conn = id, %peer, "connected");
    let _ = stream.set_nodelay(true);
    if let Some(idle) = config.keepalive {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(Duration::from_secs(10))
            .with_retries(3);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    }
    let (read, write) = stream.into_split();
    let (out, rx) = Outbound::channel(config.outbound_queue);
    let writer = tokio::spawn(write_loop(write, rx));
    let mut conn = handler.open(id, peer, out.clone());
    let mut frames = FramedRead::with_capacity(read, FrameCodec::new(config.max_frame), 128);
    // Whether the peer is still there to read what is queued (a goodbye, a last error).
    let mut peer_reading = true;
    let mut last_inbound = tokio::time::Instant::now();
    loop {
        let next = tokio::select! {
            biased;
            () = out.closer_cancelled() => break,
            changed = beat.changed() => {
                if changed.is_err() || *beat.borrow() {
                    handler.shutting_down(&mut conn);
                    break;
                }
                if handler.idle(&mut conn, last_inbound.elapsed()) == Flow::Close {
                    break;
                }
                continue;
            }
            next = frames.next() => next,
        };
        match next {
            Some(Ok(inbound)) => {
                last_inbound = tokio::time::Instant::now();
                // Boxed: the handler's future is large, and an idle connection should not
                // carry room for it.
                if Box::pin(handler.frame(&mut conn, inbound)).await == Flow::Close {
                    break;
                }
            }
            Some(Err(e)) => {
                debug!(error = %e, "read failed");
                peer_reading = false;
                break;
            }
            None => {
                peer_reading = false;
                break;
            }
        }
    }
    // Boxed, like the handler's futures: the closing steps need no room while the connection lives.
    Box::pin(async move {
        if peer_reading {
            // Let the writer finish what is queued, for a bounded time.
            let flushed = tokio::time::timeout(config.linger, out.flushed()).await;
            if !matches!(flushed, Ok(true)) {
                debug!("closing with frames unwritten");
            }
        }
        out.close();
        let unwritten = writer.await.unwrap_or_default();
        handler.close(conn, unwritten).await;
        info!(conn = id, %peer, "disconnected");
    })
    .await;
}

impl Outbound {
    async fn closer_cancelled(&self) {
        self.closer.cancelled().await;
    }
}

/// Whether the peer has closed its side with nothing left to read: a non-blocking
/// peek reads end-of-stream. (Our clients never half-close, so a FIN means gone.)
fn peer_has_closed(write: &tokio::net::tcp::OwnedWriteHalf) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    let stream: &TcpStream = write.as_ref();
    matches!(socket2::SockRef::from(stream).peek(&mut byte), Ok(0))
}

/// Drains the queue into the socket, everything queued in one write.
/// Returns the frames that never reached the socket.
async fn write_loop(mut write: tokio::net::tcp::OwnedWriteHalf, mut rx: OutboundRx) -> Vec<Bytes> {
    let mut buf = BytesMut::new();
    let mut items: Vec<Out> = Vec::new();
    let mut batch: Vec<Bytes> = Vec::new();
    let mut waiting: Vec<tokio::sync::oneshot::Sender<()>> = Vec::new();
    'writing: while rx.drain_into(&mut items).await {
        for item in items.drain(..) {
            match item {
                Out::Frame(frame) => {
                    buf.reserve(frame.len() + 1);
                    buf.put_slice(&frame);
                    buf.put_u8(b'\n');
                    batch.push(frame);
                }
                Out::Flushed(done) => waiting.push(done),
            }
        }
        if !buf.is_empty() {
            if peer_has_closed(&write) {
                // The client sent FIN and nothing after it: what we would write now is lost.
                debug!("peer closed; keeping the batch unwritten");
                rx.close();
                break 'writing;
            }
            let written = tokio::select! {
                r = write.write_all(&buf) => r,
                () = rx.closer.cancelled() => Err(std::io::ErrorKind::ConnectionAborted.into()),
            };
            if let Err(e) = written {
                debug!(error = %e, "write failed");
                rx.close();
                break 'writing;
            }
            rx.wrote(batch.len());
            buf.clear();
            batch.clear();
            // Give memory back after a burst, so idle connections stay small.
            if buf.capacity() > 16 * 1024 {
                buf = BytesMut::new();
            }
            if batch.capacity() > 64 {
                batch = Vec::new();
            }
            if items.capacity() > 64 {
                items = Vec::new();
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
    let _ = write.shutdown().await;
    // What was in the failed batch or is still queued never reached the client.
    batch.extend(rx.finish());
    batch
}
