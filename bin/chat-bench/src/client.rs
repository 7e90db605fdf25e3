//! One bench user's connection during set-up: connect, register, log in,
//! create or join a group, log out, each waiting for its reply. The measured
//! traffic does not go through here (see `fleet`), only the requests whose
//! answers the set-up needs. A connection is plain TCP or, with `--tls`, TLS
//! (rustls, through chat-tls) or, with `--ws`, WebSocket (chat-ws: one frame per text
//! message); the halves are an enum, so the plain path stays tokio's own split TCP halves,
//! with one `match` per poll.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, bail};
use chat_net::{FrameCodec, Inbound};
use chat_proto::{GroupId, UserId};
use chat_tls::{ClientConfig, ClientStream};
use futures::StreamExt;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::FramedRead;

use crate::payload::parse_frame;

/// Longest frame the bench reads from a server (a login ack with big lists is the largest).
pub const MAX_FRAME: usize = 1024 * 1024;
/// How long connecting (and the TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a set-up step may wait for its reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// Frames of other kinds tolerated while waiting for a reply.
const MAX_SKIPPED: usize = 1000;
/// The password of every bench user.
pub const PASSWORD: &str = "bench-password";

/// The frames a server sends on one connection.
pub type Frames = FramedRead<ReadHalf, FrameCodec>;

/// The reading half of a connection.
pub enum ReadHalf {
    /// Plain TCP.
    Plain(OwnedReadHalf),
    /// TLS over TCP.
    Tls(tokio::io::ReadHalf<ClientStream>),
    /// WebSocket over TCP.
    Ws(chat_ws::WsRead),
}

/// The writing half of a connection.
pub enum WriteHalf {
    /// Plain TCP.
    Plain(OwnedWriteHalf),
    /// TLS over TCP.
    Tls(tokio::io::WriteHalf<ClientStream>),
    /// WebSocket over TCP.
    Ws(chat_ws::WsWrite),
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Plain(r) => Pin::new(r).poll_read(cx, buf),
            ReadHalf::Tls(r) => Pin::new(r).poll_read(cx, buf),
            ReadHalf::Ws(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Plain(w) => Pin::new(w).poll_write(cx, buf),
            WriteHalf::Tls(w) => Pin::new(w).poll_write(cx, buf),
            WriteHalf::Ws(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(w) => Pin::new(w).poll_flush(cx),
            WriteHalf::Tls(w) => Pin::new(w).poll_flush(cx),
            WriteHalf::Ws(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(w) => Pin::new(w).poll_shutdown(cx),
            WriteHalf::Tls(w) => Pin::new(w).poll_shutdown(cx),
            WriteHalf::Ws(w) => Pin::new(w).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Plain(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            WriteHalf::Tls(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            WriteHalf::Ws(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WriteHalf::Plain(w) => w.is_write_vectored(),
            WriteHalf::Tls(w) => w.is_write_vectored(),
            WriteHalf::Ws(w) => w.is_write_vectored(),
        }
    }
}

impl WriteHalf {
    /// Pushes out what TLS still holds of the last write (rustls keeps the records a full
    /// socket did not take, until the next write or a flush) or what tungstenite buffered of
    /// the last messages; nothing to do on plain TCP.
    pub async fn flush_tls(&mut self) -> io::Result<()> {
        match self {
            WriteHalf::Plain(_) => Ok(()),
            WriteHalf::Tls(w) => w.flush().await,
            WriteHalf::Ws(w) => w.flush().await,
        }
    }
}

/// HOST of `HOST:PORT` (without the brackets of an IPv6 address): the name the server's
/// certificate must carry.
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

/// The fields of a reply that set-up looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Error number (0: success).
    pub errno: i64,
    /// `id` of a REG or LOGIN ack.
    pub id: Option<i64>,
    /// `groupid` of a CREATE_GROUP ack.
    pub groupid: Option<i64>,
    /// Error text, if any.
    pub errmsg: String,
}

/// A PROXY protocol v1 header naming client `i` as `10.x.y.z` (an address of its own, so
/// that each connection is counted under its own address by the node's per-address limits)
/// talking to `addr`, as nginx's `proxy_protocol on;` writes it.
pub fn proxy_header(i: usize, addr: &str) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "0"));
    let [_, b, c, d] = u32::try_from(i % (1 << 24)).unwrap_or(0).to_be_bytes();
    format!("PROXY TCP4 10.{b}.{c}.{d} {host} {} {port}\r\n", 1024 + i % 60_000)
}

/// A connection to a node.
pub struct Conn {
    /// The frames the server sends.
    pub frames: Frames,
    /// Where requests go.
    pub write: WriteHalf,
    /// Opted in to the protocol extension.
    ext: bool,
}

impl Conn {
    /// Connects to `addr` (`HOST:PORT`), over TLS with `tls` (the server's certificate
    /// checked against HOST), or over WebSocket (`ws://HOST:PORT/ws`) with `ws`. `proxy`: a
    /// PROXY protocol header written first, as a balancer would (see [`proxy_header`]).
    pub async fn connect(
        addr: &str,
        tls: Option<&Arc<ClientConfig>>,
        ws: bool,
        proxy: Option<&str>,
    ) -> anyhow::Result<Conn> {
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {addr}: timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        if let Some(header) = proxy {
            stream.write_all(header.as_bytes()).await.context("writing the PROXY header")?;
        }
        let (read, write) = match tls {
            None if ws => {
                let (read, write) = tokio::time::timeout(CONNECT_TIMEOUT, chat_ws::connect(stream, addr))
                    .await
                    .with_context(|| format!("WebSocket handshake with {addr}: timed out"))?
                    .with_context(|| format!("WebSocket handshake with {addr}"))?;
                (ReadHalf::Ws(read), WriteHalf::Ws(write))
            }
            None => {
                let (read, write) = stream.into_split();
                (ReadHalf::Plain(read), WriteHalf::Plain(write))
            }
            Some(config) => {
                let tls = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    chat_tls::connect(config.clone(), host_of(addr), stream),
                )
                .await
                .with_context(|| format!("TLS handshake with {addr}: timed out"))?
                .with_context(|| format!("TLS handshake with {addr}"))?;
                let (read, write) = tokio::io::split(tls);
                (ReadHalf::Tls(read), WriteHalf::Tls(write))
            }
        };
        Ok(Conn { frames: FramedRead::new(read, FrameCodec::new(MAX_FRAME)), write, ext: false })
    }

    /// Writes one JSON request and its delimiter.
    async fn send(&mut self, request: serde_json::Value) -> anyhow::Result<()> {
        let mut bytes = request.to_string().into_bytes();
        bytes.push(b'\n');
        self.write.write_all(&bytes).await.context("writing a request")?;
        self.write.flush_tls().await.context("writing a request")
    }

    /// Waits for the reply with this msgid (and, for ACKs, this `re`), answering pings.
    async fn reply(&mut self, msgid: i64, re: Option<i64>) -> anyhow::Result<Reply> {
        let wait = async {
            let mut skipped = 0;
            loop {
                let bytes = match self.frames.next().await {
                    Some(Ok(Inbound::Frame(bytes))) => bytes,
                    Some(Ok(Inbound::TooLong)) => bail!("the server sent a frame over {MAX_FRAME} bytes"),
                    Some(Err(e)) => return Err(anyhow::Error::new(e).context("reading a reply")),
                    None => bail!("the server closed the connection"),
                };
                let Some(frame) = parse_frame(&bytes) else {
                    bail!("malformed frame from the server: {}", String::from_utf8_lossy(&bytes));
                };
                if frame.msgid == 12 {
                    self.send(json!({"msgid": 13})).await?;
                    continue;
                }
                if frame.msgid == 14 {
                    bail!("the server is closing the connection: {}", frame.errmsg.as_deref().unwrap_or(""));
                }
                if frame.msgid == msgid && (re.is_none() || frame.re == re) {
                    return Ok(Reply {
                        errno: frame.errno.unwrap_or(0),
                        id: frame.id,
                        groupid: frame.groupid,
                        errmsg: frame.errmsg.map(|s| s.into_owned()).unwrap_or_default(),
                    });
                }
                // A rate-limit or other refusal of this very request also comes as an ACK with re 0.
                if frame.msgid == 11 && frame.errno.unwrap_or(0) != 0 {
                    bail!(
                        "request refused: errno {:?} {}",
                        frame.errno,
                        frame.errmsg.as_deref().unwrap_or("")
                    );
                }
                skipped += 1;
                if skipped > MAX_SKIPPED {
                    bail!("no reply with msgid {msgid} among {MAX_SKIPPED} frames");
                }
            }
        };
        tokio::time::timeout(REPLY_TIMEOUT, wait)
            .await
            .with_context(|| format!("no reply with msgid {msgid} within {REPLY_TIMEOUT:?}"))?
    }

    /// Registers `name`; `ext` opts this connection in to the extension.
    pub async fn register(&mut self, name: &str, ext: bool) -> anyhow::Result<UserId> {
        let mut req = json!({"msgid": 4, "name": name, "password": PASSWORD});
        if ext {
            req["ext"] = json!(1);
            self.ext = true;
        }
        self.send(req).await?;
        let reply = self.reply(5, None).await?;
        if reply.errno != 0 {
            bail!("registering {name}: errno {} {}", reply.errno, reply.errmsg);
        }
        let id = reply.id.context("REG ack without an id")?;
        Ok(UserId(i32::try_from(id).context("user id out of range")?))
    }

    /// Logs in, retrying while the account is still logged in elsewhere (errno 2:
    /// a set-up connection that has just logged out).
    pub async fn login(&mut self, id: UserId, ext: bool) -> anyhow::Result<()> {
        let mut req = json!({"msgid": 1, "id": id.0, "password": PASSWORD});
        if ext || self.ext {
            req["ext"] = json!(1);
            self.ext = true;
        }
        for _ in 0..100 {
            self.send(req.clone()).await?;
            let reply = self.reply(2, None).await?;
            match reply.errno {
                0 => return Ok(()),
                2 => tokio::time::sleep(Duration::from_millis(100)).await,
                n => bail!("logging in user {}: errno {n} {}", id.0, reply.errmsg),
            }
        }
        bail!("user {} stayed logged in elsewhere for 10 s", id.0)
    }

    /// An extension request answered by ACK (11) with `re` = its msgid.
    async fn acked(&mut self, req: serde_json::Value, re: i64) -> anyhow::Result<Reply> {
        if !self.ext {
            bail!("msgid {re} needs an extension connection to be acknowledged");
        }
        self.send(req).await?;
        let reply = self.reply(11, Some(re)).await?;
        if reply.errno != 0 {
            bail!("request {re} refused: errno {} {}", reply.errno, reply.errmsg);
        }
        Ok(reply)
    }

    /// Creates a group (extension connections only).
    pub async fn create_group(&mut self, name: &str) -> anyhow::Result<GroupId> {
        let reply = self.acked(json!({"msgid": 8, "groupname": name, "groupdesc": "chat-bench"}), 8).await?;
        let id = reply.groupid.context("CREATE_GROUP ack without a groupid")?;
        Ok(GroupId(i32::try_from(id).context("group id out of range")?))
    }

    /// Joins a group (extension connections only).
    pub async fn join_group(&mut self, group: GroupId) -> anyhow::Result<()> {
        self.acked(json!({"msgid": 9, "groupid": group.0}), 9).await.map(|_| ())
    }

    /// Adds a friend, one direction (extension connections only).
    pub async fn add_friend(&mut self, friend: UserId) -> anyhow::Result<()> {
        self.acked(json!({"msgid": 7, "friendid": friend.0}), 7).await.map(|_| ())
    }

    /// Logs out and waits for the server to confirm (extension connections only).
    pub async fn logout(&mut self) -> anyhow::Result<()> {
        self.acked(json!({"msgid": 3}), 3).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_header_names_an_address_per_client() {
        assert_eq!(proxy_header(0, "127.0.0.1:6100"), "PROXY TCP4 10.0.0.0 127.0.0.1 1024 6100\r\n");
        assert_eq!(proxy_header(70_000, "127.0.0.1:6102"), "PROXY TCP4 10.1.17.112 127.0.0.1 11024 6102\r\n");
    }

    #[test]
    fn the_certificate_name_is_the_host() {
        assert_eq!(host_of("127.0.0.1:6100"), "127.0.0.1");
        assert_eq!(host_of("chat.example:443"), "chat.example");
        assert_eq!(host_of("[::1]:6100"), "::1");
    }
}
