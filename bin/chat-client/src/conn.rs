//! The connection to the server: a reader task that cuts the byte stream into
//! frames and decodes them, and a writer task that sends queued frames.
//!
//! The reader answers PING itself, so keepalives work while the user is
//! typing or the console is waiting. It knows nothing of menus or printing:
//! everything else it hands to the console as [`NetEvent`]s.

use std::sync::Arc;
use std::time::Duration;

use chat_net::{FrameCodec, Inbound};
use chat_tls::ClientConfig;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

use crate::incoming::{Incoming, decode};
use crate::request;

/// Largest frame the client reads; anything longer is reported and skipped.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Frames waiting to be written.
const OUTGOING_QUEUE: usize = 64;
/// Decoded frames waiting for the console; when full, reading pauses.
const EVENT_QUEUE: usize = 1024;
/// A connection silent this long is probed by TCP keepalive...
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// ...every this long, and given up after this many unanswered probes...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 3;
/// ...and data written but not acknowledged by the peer for this long ends it too.
#[cfg(target_os = "linux")]
const UNACKED_WRITE_LIMIT: Duration = Duration::from_secs(30);

/// What the connection tells the console.
#[derive(Debug)]
pub enum NetEvent {
    /// A frame from the server (never a PING: those are answered here).
    Frame(Incoming),
    /// The connection is gone: `None` for a clean close by the server, else why.
    Closed(Option<String>),
}

/// A live connection: frames go out through `outgoing`, events come in on `events`.
pub struct Connection {
    /// Frames to send (JSON text without delimiter).
    pub outgoing: mpsc::Sender<String>,
    /// Frames and the end of the connection.
    pub events: mpsc::Receiver<NetEvent>,
}

/// Connects to `addr` (`HOST:PORT`) within `timeout`, over TLS with `tls` (the server's
/// certificate checked against HOST), and starts the reader and writer tasks.
pub async fn connect(
    addr: &str,
    timeout: Duration,
    tls: Option<&Arc<ClientConfig>>,
) -> std::io::Result<Connection> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(result) => result?,
        Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")),
    };
    // Chat frames are small and interactive.
    let _ = stream.set_nodelay(true);
    // A peer that vanished without a FIN or RST (a node powered off, a network
    // gone) would otherwise be noticed only after minutes of retransmissions; the
    // protocol has no client-to-server ping. Best effort: without these the
    // connection still works.
    let sock = socket2::SockRef::from(&stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    let _ = sock.set_tcp_keepalive(&keepalive);
    #[cfg(target_os = "linux")]
    let _ = sock.set_tcp_user_timeout(Some(UNACKED_WRITE_LIMIT));
    let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    match tls {
        Some(config) => {
            let host = host_of(addr);
            let tls = match tokio::time::timeout(timeout, chat_tls::connect(config.clone(), host, stream))
                .await
            {
                Ok(result) => result.map_err(|e| std::io::Error::new(e.kind(), format!("TLS: {e}")))?,
                Err(_) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"));
                }
            };
            let (read, write) = tokio::io::split(tls);
            tokio::spawn(write_frames(write, outgoing_rx, events_tx.clone()));
            tokio::spawn(read_frames(read, outgoing.clone(), events_tx));
        }
        None => {
            let (read, write) = stream.into_split();
            tokio::spawn(write_frames(write, outgoing_rx, events_tx.clone()));
            tokio::spawn(read_frames(read, outgoing.clone(), events_tx));
        }
    }
    Ok(Connection { outgoing, events })
}

/// HOST of `HOST:PORT` (without the brackets of an IPv6 address): the name the server's
/// certificate must carry.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

async fn read_frames<R: AsyncRead + Unpin>(
    read: R,
    outgoing: mpsc::Sender<String>,
    events: mpsc::Sender<NetEvent>,
) {
    let mut frames = FramedRead::new(read, FrameCodec::new(MAX_FRAME));
    loop {
        let event = match frames.next().await {
            Some(Ok(Inbound::Frame(bytes))) => match decode(&bytes) {
                Incoming::Ping => {
                    // A full queue means the server is not reading our frames; the
                    // pong would not help then.
                    let _ = outgoing.try_send(request::pong());
                    continue;
                }
                frame => NetEvent::Frame(frame),
            },
            Some(Ok(Inbound::TooLong)) => NetEvent::Frame(Incoming::TooLong),
            Some(Err(e)) => NetEvent::Closed(Some(e.to_string())),
            None => NetEvent::Closed(None),
        };
        let last = matches!(event, NetEvent::Closed(_));
        if events.send(event).await.is_err() || last {
            return;
        }
    }
}

async fn write_frames<W: AsyncWrite + Unpin>(
    mut write: W,
    mut frames: mpsc::Receiver<String>,
    events: mpsc::Sender<NetEvent>,
) {
    while let Some(frame) = frames.recv().await {
        let mut bytes = frame.into_bytes();
        bytes.push(b'\n');
        // Flushed: over TLS a record may otherwise wait for the next write.
        let sent = async {
            write.write_all(&bytes).await?;
            write.flush().await
        };
        if let Err(e) = sent.await {
            let _ = events.send(NetEvent::Closed(Some(format!("cannot send: {e}")))).await;
            return;
        }
    }
    let _ = write.shutdown().await;
}
