//! TLS for the client port, over rustls (with the `ring` provider: no C toolchain beyond
//! what `ring` builds, no OpenSSL). The server side is a [`chat_net::Transport`]
//! ([`TlsTransport`]) beside plain TCP, feeding the same handler; the console client uses
//! [`client_config`]. Loading the files is separate ([`server_config`]), so
//! `chat-server check-config` can check them without opening a socket.
//!
//! A plaintext client on the TLS port is told so in one plaintext line and closed, rather
//! than left waiting for a handshake it will never make: a TLS ClientHello starts with the
//! byte 0x16, a chat frame with `{`.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use chat_net::{Peer, PeerWrite, Transport, socket_peer_has_closed};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::debug;

/// The console's TLS configuration (see [`client_config`]).
pub use rustls::ClientConfig;

/// Why TLS could not be set up. Displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file cannot be read or holds no usable PEM item.
    #[error("{what} {path}: {reason}")]
    File {
        /// Which file (`tls_cert`, `tls_key`, `ca_file`).
        what: &'static str,
        /// Its path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificate and key together (a key that does not match, say).
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

fn file_error(what: &'static str, path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File { what, path: path.display().to_string(), reason: reason.to_string() }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file, at least one.
fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = fs::read(path).map_err(|e| file_error(what, path, e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, format!("not PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The server's configuration from a PEM certificate chain and its PEM private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates("tls_cert", cert)?;
    let pem = fs::read(key).map_err(|e| file_error("tls_key", key, e))?;
    let key_der = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| file_error("tls_key", key, format!("no PEM private key in it ({e})")))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The console's configuration: trusting the certificates in `ca_file` (a private CA or a
/// self-signed server certificate), or else the system's trust store at
/// `/etc/ssl/certs/ca-certificates.crt`.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let path = ca_file.unwrap_or(Path::new(SYSTEM_CA_FILE));
    let mut roots = RootCertStore::empty();
    for cert in certificates("ca_file", path)? {
        roots.add(cert).map_err(|e| file_error("ca_file", path, e))?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Debian's and Ubuntu's bundle of trusted CAs (package ca-certificates).
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A client's TLS session over TCP.
pub type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Connects TLS over `stream`, checking the server's certificate against `host` (a DNS name or an IP).
pub async fn connect(config: Arc<ClientConfig>, host: &str, stream: TcpStream) -> io::Result<ClientStream> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("bad server name {host}: {e}")))?;
    TlsConnector::from(config).connect(name, stream).await
}

/// How long a client may take to start and finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// TLS on the client port, as a [`Transport`] for `chat_net::serve_with`.
pub struct TlsTransport {
    acceptor: TlsAcceptor,
    /// Sent, in plaintext and followed by LF, to a client that speaks plaintext to this port.
    refusal: Bytes,
    /// Called for every failed handshake (a metric).
    on_failure: Box<dyn Fn() + Send + Sync>,
}

impl TlsTransport {
    /// Serves `config`; `refusal` is the line a plaintext client gets before it is closed.
    pub fn new(
        config: Arc<ServerConfig>,
        refusal: Bytes,
        on_failure: Box<dyn Fn() + Send + Sync>,
    ) -> TlsTransport {
        TlsTransport { acceptor: TlsAcceptor::from(config), refusal, on_failure }
    }

    async fn handshake(&self, stream: TcpStream, peer: SocketAddr) -> Result<TlsStream<TcpStream>, String> {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) => return Err("closed before a handshake".into()),
            Ok(_) if first[0] != TLS_HANDSHAKE => {
                let mut stream = stream;
                let mut line = self.refusal.to_vec();
                line.push(b'\n');
                // Bounded by the caller's timeout; the client gets the line, then EOF.
                let _ = stream.write_all(&line).await;
                let _ = stream.shutdown().await;
                return Err(format!("plaintext on the TLS port from {peer}"));
            }
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        self.acceptor.accept(stream).await.map_err(|e| e.to_string())
    }
}

impl Transport for TlsTransport {
    type Read = ReadHalf<TlsStream<TcpStream>>;
    type Write = TlsWrite;

    async fn open(&self, stream: TcpStream, peer: &mut Peer) -> Option<(Self::Read, TlsWrite)> {
        let peer = peer.addr;
        // A second handle on the socket, for the writer's peek (the TLS stream owns the first).
        let probe = socket2::SockRef::from(&stream).try_clone().ok();
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.handshake(stream, peer)).await {
            Ok(Ok(tls)) => {
                let (read, write) = tokio::io::split(tls);
                Some((read, TlsWrite { write, probe }))
            }
            Ok(Err(why)) => {
                (self.on_failure)();
                debug!(%peer, error = %why, "TLS handshake failed");
                None
            }
            Err(_) => {
                (self.on_failure)();
                debug!(%peer, "no TLS handshake in time");
                None
            }
        }
    }
}

/// The writing half of a server-side TLS session, with a handle to peek at its socket.
pub struct TlsWrite {
    write: WriteHalf<TlsStream<TcpStream>>,
    probe: Option<socket2::Socket>,
}

impl PeerWrite for TlsWrite {
    fn peer_has_closed(&self) -> bool {
        self.probe.as_ref().is_some_and(|s| socket_peer_has_closed(socket2::SockRef::from(s)))
    }
}

impl AsyncWrite for TlsWrite {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.write).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
        let (cert, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        fs::write(&cert, key.cert.pem()).expect("write cert");
        fs::write(&key_path, key.signing_key.serialize_pem()).expect("write key");
        (cert, key_path)
    }

    #[test]
    fn loads_a_certificate_and_explains_bad_files() {
        let dir = std::env::temp_dir().join(format!("chat-tls-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let (cert, key) = self_signed(&dir);
        assert!(server_config(&cert, &key).is_ok());
        assert!(client_config(Some(&cert)).is_ok());
        let missing =
            server_config(&dir.join("nope.pem"), &key).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(missing.starts_with("tls_cert ") && missing.contains("nope.pem"), "{missing}");
        let swapped = server_config(&key, &cert).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(swapped.contains("tls_cert"), "{swapped}");
        let _ = fs::remove_dir_all(&dir);
    }
}
