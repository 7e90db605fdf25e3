//! Helpers for the operations tests: a minimal HTTP/1.1 GET for the admin listener, and the
//! value of one metric in Prometheus' text format.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET path` on `addr`: the status code and the body, or `None` if nothing answers.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await.ok()?.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// Polls `GET path` until it answers `status`, for up to `timeout`; panics with the last answer.
pub async fn wait_status(addr: SocketAddr, path: &str, status: u16, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        last = http_get(addr, path).await;
        if let Some((code, body)) = &last
            && *code == status
        {
            return body.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("GET {path} on {addr} did not answer {status} within {timeout:?}; last answer: {last:?}");
}

/// The value of the sample `name` (with its labels, e.g. `chat_deliveries_total{route="local"}`)
/// in a Prometheus text page; panics if it is missing.
pub fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} is not in the page:\n{page}"))
}
