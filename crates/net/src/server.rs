//! The accept loop and the per-connection reader and writer tasks. What a connection's
//! bytes travel over after the accept is a [`Transport`]: [`Plain`] TCP here, TLS in `chat-tls`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, debug_span, info, warn};

use crate::codec::{FrameCodec, Inbound};
use crate::outbound::{Out, Outbound, OutboundRx};
use crate::proxy::{self, AddrRange, Header};

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The client's address: the socket's peer, or what an allowed proxy said it relayed.
    pub addr: SocketAddr,
    /// The socket's own peer, when a proxy relayed the connection.
    pub via: Option<SocketAddr>,
    /// The socket's peer is an allowed proxy that sent no PROXY header: a transport with a
    /// forwarding header of its own (WebSocket's `X-Forwarded-For`) may take the address from it.
    pub may_forward: bool,
}

impl Peer {
    /// A direct connection from `addr`.
    pub fn direct(addr: SocketAddr) -> Peer {
        Peer { addr, via: None, may_forward: false }
    }
}

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

    /// A connection was accepted from `peer` (the client's real address, when an allowed
    /// proxy said it). [`Flow::Close`] refuses it: it is closed once what the handler queued
    /// (a NOTICE saying why) is written, and [`Handler::close`] still runs.
    fn open(&self, id: u64, peer: SocketAddr, out: Outbound) -> (Self::Conn, Flow);

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

/// Turns an accepted TCP connection into the two byte streams a connection reads and writes
/// (plain TCP, or a TLS session after its handshake).
pub trait Transport: Send + Sync + 'static {
    /// What the reader task reads frames from.
    type Read: AsyncRead + Send + Unpin + 'static;
    /// What the writer task writes to.
    type Write: PeerWrite;

    /// Sets the connection up; `None` closes it (the transport logged and answered as it saw fit).
    /// Runs in the connection's task, so a slow handshake holds up nobody else. A transport
    /// that learns the client's address (a forwarding header from an allowed proxy, when
    /// `peer.may_forward`) updates `peer.addr`.
    fn open(
        &self,
        stream: TcpStream,
        peer: &mut Peer,
    ) -> impl Future<Output = Option<(Self::Read, Self::Write)>> + Send;
}

/// The writing side of a connection.
pub trait PeerWrite: AsyncWrite + Send + Unpin + 'static {
    /// Whether the peer has closed its side with nothing left to read (then what we would
    /// write now is lost, and is kept unwritten).
    fn peer_has_closed(&self) -> bool;
}

/// Plain TCP.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Transport for Plain {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;

    async fn open(&self, stream: TcpStream, _peer: &mut Peer) -> Option<(OwnedReadHalf, OwnedWriteHalf)> {
        Some(stream.into_split())
    }
}

impl PeerWrite for OwnedWriteHalf {
    fn peer_has_closed(&self) -> bool {
        let stream: &TcpStream = self.as_ref();
        socket_peer_has_closed(socket2::SockRef::from(stream))
    }
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
    /// The PROXY protocol, when on: who may send a header.
    pub proxy: Option<ProxyConfig>,
}

/// The PROXY protocol (v1 and v2) on a listener.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The addresses allowed to connect and send a header (the balancers). A connection from
    /// anywhere else is closed at once. One from here without a header is the proxy host's
    /// own (a health check, a local tool) and keeps the socket's address.
    pub from: Vec<AddrRange>,
    /// How long a connection from an allowed address may stay silent before it counts as one
    /// without a header (a balancer sends its header with the connect).
    pub wait: Duration,
}

impl ProxyConfig {
    /// Whether `ip` may send a header.
    pub fn allows(&self, ip: std::net::IpAddr) -> bool {
        self.from.iter().any(|r| r.contains(ip))
    }
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
            proxy: None,
        }
    }
}

/// How many connections the kernel queues for a listener before it is accepted from. Tokio's
/// `bind` asks for 128: a node restarted behind a balancer, or a balancer relaying a burst,
/// overflows that in a moment, and each connection dropped from a full queue waits for a SYN-ACK
/// retransmission (1 s, 3 s, 7 s, ...). Linux caps it at `net.core.somaxconn` (4096 by default).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `addr` (a `host:port`, the first address it resolves to that binds) with
/// [`LISTEN_BACKLOG`].
pub async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for sa in tokio::net::lookup_host(addr).await? {
        let socket = if sa.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        // As std's and tokio's `bind` do on Unix: a restarted node rebinds at once.
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        match socket.bind(sa).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr} resolves to no address"))
    }))
}

/// Accepts connections until `shutdown` fires, then waits for every
/// connection task (each of which runs [`Handler::close`]).
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    config: NetConfig,
    shutdown: CancellationToken,
) {
    serve_with(listener, Arc::new(Plain), handler, config, shutdown).await;
}

/// As [`serve`], with each accepted connection set up by `transport`.
pub async fn serve_with<H: Handler, T: Transport>(
    listener: TcpListener,
    transport: Arc<T>,
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
        let transport = transport.clone();
        let config = Arc::clone(&config);
        let beat = beat.clone();
        // Debug level: an enabled span per connection costs resident memory (its formatted
        // fields live as long as the connection); info events name the connection themselves.
        // `client`: the real address, once a PROXY header or a forwarding header said it.
        let span = debug_span!("conn", id, %peer, client = tracing::field::Empty);
        tracker.spawn(
            async move {
                run_connection(stream, peer, id, &*transport, handler, config, beat).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

async fn run_connection<H: Handler, T: Transport>(
    mut stream: TcpStream,
    socket_peer: SocketAddr,
    id: u64,
    transport: &T,
    handler: Arc<H>,
    config: Arc<NetConfig>,
    mut beat: watch::Receiver<bool>,
) {
    debug!(conn = id, peer = %socket_peer, "connected");
    let _ = stream.set_nodelay(true);
    if let Some(idle) = config.keepalive {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(Duration::from_secs(10))
            .with_retries(3);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    }
    let mut peer = Peer::direct(socket_peer);
    if let Some(proxy) = &config.proxy {
        let Some(relayed) = Box::pin(relayed_peer(&mut stream, socket_peer, proxy, id)).await else { return };
        peer = relayed;
    }
    // Boxed: a handshake's state needs no room once the connection is up.
    let Some((read, write)) = Box::pin(transport.open(stream, &mut peer)).await else { return };
    if peer.addr != socket_peer {
        tracing::Span::current().record("client", tracing::field::display(peer.addr));
    }
    let peer = peer.addr;
    let (out, rx) = Outbound::channel(config.outbound_queue);
    let writer = tokio::spawn(write_loop(write, rx));
    let (mut conn, opened) = handler.open(id, peer, out.clone());
    let mut frames = FramedRead::with_capacity(read, FrameCodec::new(config.max_frame), 128);
    // Whether the peer is still there to read what is queued (a goodbye, a last error).
    let mut peer_reading = true;
    let mut last_inbound = tokio::time::Instant::now();
    loop {
        // Refused at open: straight to the closing steps (what was queued is written).
        if opened == Flow::Close {
            break;
        }
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
        info!(conn = id, %peer, via = %socket_peer, "disconnected");
    })
    .await;
}

/// The PROXY protocol step of a connection: who the client is, or `None` to close it (a
/// connection from an address not allowed to send a header, or a header that does not parse),
/// with one log line.
async fn relayed_peer(
    stream: &mut TcpStream,
    socket_peer: SocketAddr,
    proxy: &ProxyConfig,
    id: u64,
) -> Option<Peer> {
    if !proxy.allows(socket_peer.ip()) {
        info!(conn = id, peer = %socket_peer, "connection from an address not in proxy_from; closing");
        return None;
    }
    match proxy::read_header(stream, proxy.wait).await {
        Ok(Some(Header::Client(addr))) => Some(Peer { addr, via: Some(socket_peer), may_forward: false }),
        // The proxy's own connection (a health check): its own address.
        Ok(Some(Header::Local)) => Some(Peer::direct(socket_peer)),
        Ok(None) => Some(Peer { may_forward: true, ..Peer::direct(socket_peer) }),
        Err(e) => {
            info!(conn = id, peer = %socket_peer, error = %e, "bad PROXY header; closing");
            None
        }
    }
}

impl Outbound {
    async fn closer_cancelled(&self) {
        self.closer.cancelled().await;
    }
}

/// Whether the peer has closed its side with nothing left to read: a non-blocking
/// peek reads end-of-stream. (Our clients never half-close, so a FIN means gone.)
pub fn socket_peer_has_closed(socket: socket2::SockRef<'_>) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    matches!(socket.peek(&mut byte), Ok(0))
}

/// Drains the queue into the socket, everything queued in one write.
/// Returns the frames that never reached the socket.
async fn write_loop<W: PeerWrite>(mut write: W, mut rx: OutboundRx) -> Vec<Bytes> {
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
            if write.peer_has_closed() {
                // The client sent FIN and nothing after it: what we would write now is lost.
                debug!("peer closed; keeping the batch unwritten");
                rx.close();
                break 'writing;
            }
            // Flushed too: a TLS transport may keep records back until it is (on plain TCP
            // a flush does nothing), and "written" must mean on the socket.
            let written = tokio::select! {
                r = async {
                    write.write_all(&buf).await?;
                    write.flush().await
                } => r,
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
