//! WebSocket (RFC 6455) for the browser, over tokio-tungstenite: a [`chat_net::Transport`]
//! ([`WsTransport`]) on a listener of its own, feeding the same handler as TCP and TLS, and
//! the embedded web client served on the same listener ([`web`]).
//!
//! One request per text message, one reply frame per text message: the transport turns each
//! inbound text message into one LF-ended line for `chat-net`'s codec (so the frame limit, the
//! rate limit, pings and the slow-reader rule are the TCP ones, applied by the same code), and
//! each LF-ended frame the writer sends into one text message. It does not know JSON.
//!
//! The HTTP side is only what a browser needs: `GET /ws` with `Upgrade: websocket` (its
//! `Origin` checked) becomes a WebSocket; `GET /`, `/app.js`, `/app.css` return the client;
//! anything else a 404. Every plain HTTP answer closes its connection.

pub mod web;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use chat_net::{Peer, PeerWrite, Transport, socket_peer_has_closed};
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::debug;

/// How long a client may take to send its HTTP request head.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest HTTP request head we read.
const MAX_HEAD: usize = 16 * 1024;
/// How long closing a WebSocket may wait for a peer that does not read.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// The path of the WebSocket endpoint.
pub const WS_PATH: &str = "/ws";
/// The reason sent with the close frame that refuses a binary message.
pub const BINARY_REFUSAL: &str = "binary messages are not accepted: send each JSON request as a text message";

/// What a connection refused because the node is full gets on this listener (`chat-net`
/// writes it raw; the LF it appends after it is ignored once the client has read the answer).
pub const FULL: &str = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\n\r\nserver is full; try again later\n";

/// The reason sent with the close frame (1009) that ends a connection whose message is too
/// big to read at all (over four times the frame limit, and over 64 KiB).
pub const TOO_BIG: &str = "message too big";

/// Settings of the WebSocket listener.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// Longest frame (text message) in bytes that is handled: longer ones are answered with
    /// the usual errno 10, like an over-long TCP frame.
    pub max_frame: usize,
    /// Origins (`scheme://host[:port]`) whose pages may open a WebSocket, besides the page this
    /// listener serves itself (an `Origin` naming the request's own `Host`). `*` allows any.
    /// A request without `Origin` (not a browser) is allowed.
    pub allowed_origins: Vec<String>,
}

/// WebSocket on a listener of its own, as a [`Transport`] for `chat_net::serve_with`.
pub struct WsTransport {
    config: WsConfig,
    ws: WebSocketConfig,
}

impl WsTransport {
    /// A transport with these settings.
    pub fn new(config: WsConfig) -> WsTransport {
        // Messages up to 4× the frame limit reach the codec, which answers errno 10 and keeps
        // the connection; beyond that tungstenite refuses to buffer them and the connection
        // closes (1009), so a message is never held in memory beyond a bound.
        let cap = config.max_frame.saturating_mul(4).max(64 * 1024);
        let ws = WebSocketConfig::default().max_message_size(Some(cap)).max_frame_size(Some(cap));
        WsTransport { config, ws }
    }

    /// Whether a page from `origin` may open a WebSocket on a listener reached as `host`.
    pub fn origin_allowed(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        let origin = origin.trim_end_matches('/');
        if let Some(host) = host
            && let Some((_, rest)) = origin.split_once("://")
            && rest.eq_ignore_ascii_case(host)
        {
            return true;
        }
        self.config
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }

    async fn accept(&self, mut stream: TcpStream, relayed: &mut Peer) -> Option<(WsRead, WsWrite)> {
        let mut buf = Vec::with_capacity(1024);
        let head_len = loop {
            let mut chunk = [0u8; 2048];
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = find_head_end(&buf) {
                break end;
            }
            if buf.len() > MAX_HEAD {
                respond(
                    &mut stream,
                    "431 Request Header Fields Too Large",
                    "text/plain",
                    b"request head too large\n",
                    &[],
                )
                .await;
                return None;
            }
        };
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut request = httparse::Request::new(&mut headers);
        if !matches!(request.parse(&buf[..head_len]), Ok(httparse::Status::Complete(_))) {
            respond(&mut stream, "400 Bad Request", "text/plain", b"bad request\n", &[]).await;
            return None;
        }
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(str::trim)
        };
        if relayed.may_forward
            && let Some(client) = forwarded_for(request.headers)
        {
            relayed.via = Some(relayed.addr);
            relayed.addr = SocketAddr::new(client, 0);
        }
        let peer = relayed.addr;
        let path = request.path.unwrap_or("/").split('?').next().unwrap_or("/");
        let method = request.method.unwrap_or("");
        let upgrade = header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
        if method != "GET" && method != "HEAD" {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                b"only GET\n",
                &["Allow: GET, HEAD"],
            )
            .await;
            return None;
        }
        if !upgrade {
            if path == WS_PATH {
                let body = b"this is the WebSocket endpoint: connect with a WebSocket client\n";
                respond(&mut stream, "426 Upgrade Required", "text/plain", body, &["Upgrade: websocket"])
                    .await;
                return None;
            }
            let (status, kind, body) = match web::asset(path) {
                Some((kind, body)) => ("200 OK", kind, body),
                None => ("404 Not Found", "text/plain; charset=utf-8", &b"not found\n"[..]),
            };
            let body = if method == "HEAD" { &b""[..] } else { body };
            respond(&mut stream, status, kind, body, web::HEADERS).await;
            return None;
        }
        if path != WS_PATH {
            respond(&mut stream, "404 Not Found", "text/plain", b"the WebSocket endpoint is /ws\n", &[])
                .await;
            return None;
        }
        if header("sec-websocket-version") != Some("13") {
            respond(
                &mut stream,
                "426 Upgrade Required",
                "text/plain",
                b"WebSocket version 13 only\n",
                &["Sec-WebSocket-Version: 13"],
            )
            .await;
            return None;
        }
        let Some(key) = header("sec-websocket-key") else {
            respond(&mut stream, "400 Bad Request", "text/plain", b"no Sec-WebSocket-Key\n", &[]).await;
            return None;
        };
        let origin = header("origin");
        if !self.origin_allowed(origin, header("host")) {
            debug!(%peer, origin = origin.unwrap_or(""), "WebSocket origin refused");
            respond(&mut stream, "403 Forbidden", "text/plain", b"origin not allowed\n", &[]).await;
            return None;
        }
        let accept = format!("Sec-WebSocket-Accept: {}", derive_accept_key(key.as_bytes()));
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{accept}\r\n\r\n"
        );
        if stream.write_all(head.as_bytes()).await.is_err() {
            return None;
        }
        // A second handle on the socket, for the writer's peek (the WebSocket owns the first).
        let probe = socket2::SockRef::from(&stream).try_clone().ok();
        let rest = buf.split_off(head_len);
        let ws = WebSocketStream::from_partially_read(stream, rest, Role::Server, Some(self.ws)).await;
        debug!(%peer, "WebSocket open");
        Some(halves(ws, probe))
    }
}

/// The two byte-stream halves over one WebSocket (either role).
fn halves(ws: WebSocketStream<TcpStream>, probe: Option<socket2::Socket>) -> (WsRead, WsWrite) {
    let shared = Arc::new(Mutex::new(ws));
    (
        WsRead { ws: shared.clone(), pending: Vec::new(), pos: 0, done: false },
        WsWrite { ws: shared, probe, closing: None },
    )
}

/// The client's side (chat-bench): a WebSocket to `ws://{host}/ws` over `stream`, as the same
/// two halves: LF-ended frames written go out as text messages, text messages come in as lines.
pub async fn connect(
    stream: TcpStream,
    host: &str,
) -> Result<(WsRead, WsWrite), tokio_tungstenite::tungstenite::Error> {
    let probe = socket2::SockRef::from(&stream).try_clone().ok();
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{host}{WS_PATH}"), stream).await?;
    Ok(halves(ws, probe))
}

/// The client's address from `X-Forwarded-For`, as the proxy in front of us wrote it: the
/// last entry of the last such header (what that proxy saw; entries before it came from the
/// client and prove nothing). `None` without one, or if that entry is not an address.
pub fn forwarded_for(headers: &[httparse::Header<'_>]) -> Option<std::net::IpAddr> {
    let value = headers.iter().rev().find(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))?.value;
    let last = std::str::from_utf8(value).ok()?.rsplit(',').next()?.trim();
    last.parse().ok().map(chat_net::proxy::canonical)
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Writes a complete HTTP/1.1 answer and closes (best effort: the client may be gone).
async fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &[u8], extra: &[&str]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut all = head.into_bytes();
    all.extend_from_slice(body);
    let _ = stream.write_all(&all).await;
    let _ = stream.shutdown().await;
}

impl Transport for WsTransport {
    type Read = WsRead;
    type Write = WsWrite;

    async fn open(&self, stream: TcpStream, peer: &mut Peer) -> Option<(WsRead, WsWrite)> {
        let addr = peer.addr;
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.accept(stream, peer)).await {
            Ok(pair) => pair,
            Err(_) => {
                debug!(peer = %addr, "no HTTP request in time");
                None
            }
        }
    }
}

type Shared = Arc<Mutex<WebSocketStream<TcpStream>>>;

fn lock(ws: &Shared) -> MutexGuard<'_, WebSocketStream<TcpStream>> {
    // Nothing panics while holding it; a poisoned lock still guards a usable stream.
    ws.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn io_error(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    match e {
        tokio_tungstenite::tungstenite::Error::Io(e) => e,
        other => io::Error::other(other),
    }
}

/// The reading side: each text message comes out as one LF-ended line.
pub struct WsRead {
    ws: Shared,
    pending: Vec<u8>,
    pos: usize,
    done: bool,
}

impl WsRead {
    /// One text message as one line: CR, LF and NUL (whitespace or invalid in JSON) become
    /// spaces, so a message is exactly one frame for the codec.
    fn line(&mut self, text: &[u8]) {
        self.pending.clear();
        self.pending.extend(text.iter().map(|&b| if matches!(b, b'\n' | b'\r' | b'\0') { b' ' } else { b }));
        self.pending.push(b'\n');
        self.pos = 0;
    }

    /// Ends the connection with a close frame saying why, queued and flushed as far as the
    /// socket takes it; the writer's shutdown finishes the flush.
    fn refuse(&mut self, cx: &mut Context<'_>, code: CloseCode, reason: &'static str) {
        let mut ws = lock(&self.ws);
        let frame = CloseFrame { code, reason: reason.into() };
        if let Poll::Ready(Ok(())) = Pin::new(&mut *ws).poll_ready(cx) {
            let _ = Pin::new(&mut *ws).start_send(Message::Close(Some(frame)));
            let _ = Pin::new(&mut *ws).poll_flush(cx);
        }
    }
}

impl AsyncRead for WsRead {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pos < this.pending.len() {
                let n = buf.remaining().min(this.pending.len() - this.pos);
                buf.put_slice(&this.pending[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.done {
                return Poll::Ready(Ok(()));
            }
            let next = Pin::new(&mut *lock(&this.ws)).poll_next(cx);
            match next {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.done = true,
                Poll::Ready(Some(Ok(Message::Text(text)))) => this.line(text.as_bytes()),
                Poll::Ready(Some(Ok(Message::Binary(_)))) => {
                    debug!("binary WebSocket message refused");
                    this.refuse(cx, CloseCode::Unsupported, BINARY_REFUSAL);
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, BINARY_REFUSAL)));
                }
                // Ping (tungstenite queues the pong), pong, close (the stream ends next).
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(e)))) => {
                    debug!(error = %e, "WebSocket message too big");
                    this.refuse(cx, CloseCode::Size, TOO_BIG);
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, TOO_BIG)));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(io_error(e))),
            }
        }
    }
}

/// The writing side: each LF-ended frame goes out as one text message.
pub struct WsWrite {
    ws: Shared,
    probe: Option<socket2::Socket>,
    /// Bounds the close handshake with a peer that does not read.
    closing: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl PeerWrite for WsWrite {
    fn peer_has_closed(&self) -> bool {
        self.probe.as_ref().is_some_and(|s| socket_peer_has_closed(socket2::SockRef::from(s)))
    }
}

impl AsyncWrite for WsWrite {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut ws = lock(&self.ws);
        let mut used = 0;
        while used < buf.len() {
            match Pin::new(&mut *ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) if used == 0 => return Poll::Ready(Err(io_error(e))),
                Poll::Ready(Err(_)) | Poll::Pending => break,
            }
            let rest = &buf[used..];
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let text = Bytes::copy_from_slice(&rest[..end])
                .try_into()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "an outbound frame is not UTF-8"))?;
            if let Err(e) = Pin::new(&mut *ws).start_send(Message::Text(text)) {
                return if used == 0 { Poll::Ready(Err(io_error(e))) } else { Poll::Ready(Ok(used)) };
            }
            used += (end + 1).min(rest.len());
        }
        if used == 0 { Poll::Pending } else { Poll::Ready(Ok(used)) }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *lock(&self.ws)).poll_flush(cx).map_err(io_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Poll::Ready(r) = Pin::new(&mut *lock(&this.ws)).poll_close(cx) {
            return Poll::Ready(r.or(Ok(())));
        }
        let timer = this.closing.get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_TIMEOUT)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let t = WsTransport::new(WsConfig {
            max_frame: 1024,
            allowed_origins: vec!["https://chat.example.com".into()],
        });
        assert!(t.origin_allowed(None, Some("127.0.0.1:8080")));
        assert!(t.origin_allowed(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080")));
        assert!(t.origin_allowed(Some("https://chat.example.com"), Some("10.0.0.1:8080")));
        assert!(!t.origin_allowed(Some("http://evil.example"), Some("127.0.0.1:8080")));
        assert!(!t.origin_allowed(Some("null"), Some("127.0.0.1:8080")));
        let any = WsTransport::new(WsConfig { max_frame: 1024, allowed_origins: vec!["*".into()] });
        assert!(any.origin_allowed(Some("http://evil.example"), None));
    }

    #[test]
    fn forwarded_for_takes_what_the_proxy_appended() {
        let h = |v: &'static str| httparse::Header { name: "X-Forwarded-For", value: v.as_bytes() };
        let ip = |s: &str| s.parse::<std::net::IpAddr>().ok();
        assert_eq!(forwarded_for(&[h("127.0.0.5")]), ip("127.0.0.5"));
        // A client's own header comes first; the proxy appended the address it saw.
        assert_eq!(forwarded_for(&[h("6.6.6.6, 203.0.113.9")]), ip("203.0.113.9"));
        assert_eq!(forwarded_for(&[h("1.1.1.1"), h("2001:db8::1")]), ip("2001:db8::1"));
        assert_eq!(forwarded_for(&[h("::ffff:10.0.0.1")]), ip("10.0.0.1"));
        assert_eq!(forwarded_for(&[h("203.0.113.9, unknown")]), None);
        assert_eq!(forwarded_for(&[]), None);
    }

    #[test]
    fn head_end() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest"), Some(27));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
