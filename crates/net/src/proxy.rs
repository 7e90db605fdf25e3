//! The PROXY protocol (v1 text and v2 binary, as HAProxy specifies it and nginx's stream
//! module, HAProxy and cloud load balancers send it): which addresses may send it
//! ([`AddrRange`]), a strict parser of one header ([`parse`]) and the reader that takes exactly
//! the header's bytes off a socket and nothing after them ([`read_header`]).
//! Not here: what the address is used for (the accept loop records it; the limits use it).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The v2 signature: the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included (the specification's bound).
const V1_MAX: usize = 107;
/// The longest v2 header accepted (16 fixed bytes and the addresses and TLVs after them).
/// The TLVs that balancers add (AWS, GCP, Azure ids, SSL details) fit easily.
const V2_MAX: usize = 16 + 2048;
/// How long a header that has started may take to arrive in full.
pub const HEADER_WAIT: Duration = Duration::from_secs(5);

/// An address or a network (`10.0.0.0/8`, `fd00::/8`, `127.0.0.1`): who may send a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    net: IpAddr,
    prefix: u8,
}

impl AddrRange {
    /// Exactly one address.
    pub fn one(ip: IpAddr) -> AddrRange {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        AddrRange { net: ip, prefix }
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for AddrRange {
    type Err = String;

    fn from_str(s: &str) -> Result<AddrRange, String> {
        let bad = || format!("`{s}` is not an address or a network like 10.0.0.0/8");
        let (ip, prefix) = match s.trim().split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (s.trim(), None),
        };
        let ip = canonical(ip.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => p.parse::<u8>().map_err(|_| bad())?,
            Some(_) => return Err(bad()),
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(AddrRange { net: ip, prefix })
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; any other address as it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The connection is a client's, from this address.
    Client(SocketAddr),
    /// The proxy's own connection (v2 LOCAL, a health check) or an address family we do not
    /// carry (v1 UNKNOWN, v2 UNSPEC or a Unix socket): the connection is the proxy's own.
    Local,
}

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The bytes are not a header the specification allows; the text says what is wrong.
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
    /// The header did not arrive in full in time.
    #[error("PROXY header incomplete after {0:?}")]
    Timeout(Duration),
    /// The socket failed or closed in the middle of a header.
    #[error("connection lost during the PROXY header: {0}")]
    Io(String),
}

/// What the first bytes of a connection are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not a PROXY header at all (a client speaking its protocol directly).
    NotProxy,
    /// A header may be coming; more bytes are needed.
    Incomplete,
    /// A complete header of this many bytes.
    Done(usize, Header),
}

/// Parses the header at the start of `buf` (which may hold more bytes after it).
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    const V1_START: &[u8] = b"PROXY ";
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] && n > 0 {
        return if n < V2_SIGNATURE.len() { Ok(Parsed::Incomplete) } else { parse_v2(buf) };
    }
    let n = buf.len().min(V1_START.len());
    if n > 0 && buf[..n] == V1_START[..n] {
        return if n < V1_START.len() { Ok(Parsed::Incomplete) } else { parse_v1(buf) };
    }
    Ok(Parsed::NotProxy)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        if window.len() >= V1_MAX || window.contains(&b'\n') {
            return Err(ProxyError::Malformed("v1 line longer than 107 bytes or without CRLF"));
        }
        return Ok(Parsed::Incomplete);
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| ProxyError::Malformed("v1 line is not ASCII"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let header = match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Header::Local,
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let ip = match *family {
                "TCP4" => IpAddr::V4(
                    Ipv4Addr::from_str(src).map_err(|_| ProxyError::Malformed("v1 source is not IPv4"))?,
                ),
                _ => IpAddr::V6(
                    Ipv6Addr::from_str(src).map_err(|_| ProxyError::Malformed("v1 source is not IPv6"))?,
                ),
            };
            let dst_ok = match *family {
                "TCP4" => Ipv4Addr::from_str(dst).is_ok(),
                _ => Ipv6Addr::from_str(dst).is_ok(),
            };
            if !dst_ok {
                return Err(ProxyError::Malformed("v1 destination is not of the family"));
            }
            let port = v1_port(sport)?;
            v1_port(dport)?;
            Header::Client(SocketAddr::new(ip, port))
        }
        _ => return Err(ProxyError::Malformed("v1 line is not PROXY TCP4|TCP6|UNKNOWN with 4 fields")),
    };
    Ok(Parsed::Done(end + 2, header))
}

/// A v1 port: decimal digits only (no sign, no blanks), no leading zero, 0..=65535.
fn v1_port(s: &str) -> Result<u16, ProxyError> {
    let digits = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits || (s.len() > 1 && s.starts_with('0')) {
        return Err(ProxyError::Malformed("v1 port is not a decimal number"));
    }
    s.parse().map_err(|_| ProxyError::Malformed("v1 port is over 65535"))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if buf.len() < 16 {
        return Ok(Parsed::Incomplete);
    }
    let (ver_cmd, family) = (buf[12], buf[13]);
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Malformed("v2 version is not 2"));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyError::Malformed("v2 command is neither LOCAL nor PROXY")),
    };
    if 16 + len > V2_MAX {
        return Err(ProxyError::Malformed("v2 header longer than accepted"));
    }
    if buf.len() < 16 + len {
        return Ok(Parsed::Incomplete);
    }
    let body = &buf[16..16 + len];
    let header = match family {
        // LOCAL carries no meaningful address, whatever the family says.
        _ if local => Header::Local,
        // TCP over IPv4: source, destination, source port, destination port.
        0x11 => {
            if len < 12 {
                return Err(ProxyError::Malformed("v2 TCP4 addresses are short"));
            }
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Header::Client(SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([body[8], body[9]])))
        }
        0x21 => {
            if len < 36 {
                return Err(ProxyError::Malformed("v2 TCP6 addresses are short"));
            }
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            Header::Client(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        // UNSPEC, or a Unix stream socket: the connection is the proxy's own.
        0x00 | 0x31 => Header::Local,
        _ => return Err(ProxyError::Malformed("v2 family is not TCP over IPv4 or IPv6")),
    };
    Ok(Parsed::Done(16 + len, header))
}

/// Reads a header from the start of `stream`, consuming exactly its bytes: `Ok(None)` if the
/// connection does not start with one (nothing is consumed then), or sends nothing for `wait`
/// (a direct connection whose client waits, or one that closed). A header that has started
/// must be complete within [`HEADER_WAIT`].
pub async fn read_header(stream: &mut TcpStream, wait: Duration) -> Result<Option<Header>, ProxyError> {
    let mut buf = vec![0u8; V2_MAX];
    let first = match tokio::time::timeout(wait, stream.peek(&mut buf)).await {
        Err(_) | Ok(Ok(0)) => return Ok(None),
        Ok(Ok(n)) => n,
        Ok(Err(e)) => return Err(ProxyError::Io(e.to_string())),
    };
    let deadline = tokio::time::Instant::now() + HEADER_WAIT;
    let mut seen = first;
    loop {
        match parse(&buf[..seen])? {
            Parsed::NotProxy => return Ok(None),
            Parsed::Done(len, header) => {
                // Exactly the header: what follows it is the client's and stays in the socket.
                let mut header_bytes = vec![0u8; len];
                stream.read_exact(&mut header_bytes).await.map_err(|e| ProxyError::Io(e.to_string()))?;
                return Ok(Some(header));
            }
            Parsed::Incomplete => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(ProxyError::Timeout(HEADER_WAIT));
                }
                // A peek returns at once while any byte is buffered: wait a little for the
                // rest instead of spinning (a balancer sends its header in one segment).
                tokio::time::sleep(Duration::from_millis(5)).await;
                seen = match stream.peek(&mut buf).await {
                    Ok(0) => return Err(ProxyError::Io("closed".into())),
                    Ok(n) => n,
                    Err(e) => return Err(ProxyError::Io(e.to_string())),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend([0x20 | cmd, family]);
        h.extend((body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        let h = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 8000\r\n{\"msgid\":1}";
        assert_eq!(parse(h), Ok(Parsed::Done(42, Header::Client("192.0.2.7:51234".parse().expect("addr")))));
        let h = b"PROXY TCP6 2001:db8::7 2001:db8::1 443 8000\r\n";
        assert_eq!(
            parse(h),
            Ok(Parsed::Done(h.len(), Header::Client("[2001:db8::7]:443".parse().expect("a"))))
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Ok(Parsed::Done(15, Header::Local)));
        assert_eq!(parse(b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n").map(|_| ()), Ok(()));
    }

    #[test]
    fn v1_strictness() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 8000\n"[..],
            b"PROXY TCP4 192.0.2.7  10.0.0.1 51234 8000\r\n",
            b"PROXY TCP4 2001:db8::7 10.0.0.1 51234 8000\r\n",
            b"PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 +1 8000\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 01 8000\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 65536 8000\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 1\r\n",
            b"PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n",
            b"PROXY tcp4 192.0.2.7 10.0.0.1 1 2\r\n",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let long = [&b"PROXY UNKNOWN "[..], &[b'x'; 100]].concat();
        assert!(parse(&long).is_err(), "no CRLF within 107 bytes");
    }

    #[test]
    fn prefixes_are_incomplete_and_other_bytes_are_not_proxy() {
        let full = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 8000\r\n";
        for n in 1..full.len() {
            assert_eq!(parse(&full[..n]), Ok(Parsed::Incomplete), "{n}");
        }
        let v2 = v2(1, 0x11, &[192, 0, 2, 7, 10, 0, 0, 1, 0xc8, 0x22, 0x1f, 0x40]);
        for n in 1..v2.len() {
            assert_eq!(parse(&v2[..n]), Ok(Parsed::Incomplete), "{n}");
        }
        assert_eq!(parse(b"{\"msgid\":1}\n"), Ok(Parsed::NotProxy));
        assert_eq!(parse(b"GET /ws HTTP/1.1\r\n"), Ok(Parsed::NotProxy));
        assert_eq!(parse(&[0x16, 3, 1]), Ok(Parsed::NotProxy), "a TLS ClientHello");
        assert_eq!(parse(b"PROX!"), Ok(Parsed::NotProxy));
    }

    #[test]
    fn v2_families_and_commands() {
        let tcp4 = v2(1, 0x11, &[192, 0, 2, 7, 10, 0, 0, 1, 0xc8, 0x22, 0x1f, 0x40]);
        assert_eq!(parse(&tcp4), Ok(Parsed::Done(28, Header::Client("192.0.2.7:51234".parse().expect("a")))));
        let mut body = vec![0u8; 36];
        body[..16].copy_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().expect("v6").octets());
        body[32..34].copy_from_slice(&443u16.to_be_bytes());
        // A TLV after the addresses is skipped.
        body.extend([0x04, 0x00, 0x01, 0xff]);
        let tcp6 = v2(1, 0x21, &body);
        assert_eq!(
            parse(&tcp6),
            Ok(Parsed::Done(56, Header::Client("[2001:db8::7]:443".parse().expect("a"))))
        );
        assert_eq!(parse(&v2(0, 0x11, &[0; 12])), Ok(Parsed::Done(28, Header::Local)), "LOCAL");
        assert_eq!(parse(&v2(1, 0x00, &[])), Ok(Parsed::Done(16, Header::Local)), "UNSPEC");
        assert!(parse(&v2(1, 0x12, &[0; 12])).is_err(), "UDP");
        assert!(parse(&v2(1, 0x11, &[0; 11])).is_err(), "short");
        assert!(parse(&v2(2, 0x11, &[0; 12])).is_err(), "command 2");
        let mut v1_in_v2 = v2(1, 0x11, &[0; 12]);
        v1_in_v2[12] = 0x11;
        assert!(parse(&v1_in_v2).is_err(), "version 1 in a v2 header");
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend([0x21, 0x11, 0xff, 0xff]);
        assert!(parse(&huge).is_err(), "65535 bytes of TLVs");
    }

    /// Fuzz-style: random bytes, and mutations of valid headers, never panic, and whatever
    /// parses as complete is at most the bytes given.
    #[test]
    fn malformed_headers_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let valid: Vec<Vec<u8>> = vec![
            b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 8000\r\n".to_vec(),
            b"PROXY TCP6 2001:db8::7 2001:db8::1 443 8000\r\n".to_vec(),
            v2(1, 0x11, &[192, 0, 2, 7, 10, 0, 0, 1, 0xc8, 0x22, 0x1f, 0x40]),
            v2(1, 0x21, &[7; 40]),
        ];
        for round in 0..20_000 {
            let mut bytes = if round % 2 == 0 {
                valid[(next() % valid.len() as u64) as usize].clone()
            } else {
                let len = (next() % 120) as usize;
                let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if next() % 2 == 0 {
                    let prefix: &[u8] = if next() % 2 == 0 { b"PROXY " } else { &V2_SIGNATURE };
                    b.splice(0..0, prefix.iter().copied());
                }
                b
            };
            for _ in 0..(next() % 4) {
                if bytes.is_empty() {
                    break;
                }
                let at = (next() % bytes.len() as u64) as usize;
                match next() % 3 {
                    0 => bytes[at] = next() as u8,
                    1 => bytes.truncate(at),
                    _ => bytes.insert(at, next() as u8),
                }
            }
            if let Ok(Parsed::Done(len, _)) = parse(&bytes) {
                assert!(len <= bytes.len());
            }
        }
    }

    #[test]
    fn ranges() {
        let r: AddrRange = "10.0.0.0/8".parse().expect("range");
        assert!(r.contains("10.9.8.7".parse().expect("ip")));
        assert!(r.contains("::ffff:10.1.1.1".parse().expect("mapped")));
        assert!(!r.contains("11.0.0.1".parse().expect("ip")));
        let one: AddrRange = "::1".parse().expect("one");
        assert!(one.contains("::1".parse().expect("ip")) && !one.contains("::2".parse().expect("ip")));
        let all: AddrRange = "0.0.0.0/0".parse().expect("all");
        assert!(all.contains("203.0.113.9".parse().expect("ip")));
        for bad in ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/+8", "host", "::/129"] {
            assert!(bad.parse::<AddrRange>().is_err(), "{bad}");
        }
    }
}
