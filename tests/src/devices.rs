//! One user's several sessions (issue 20), seen from the clients: a [`Device`] is an
//! extension client that logs in or resumes and keeps every chat pushed to it, so a test can
//! say what each session showed, in which order, and whether anything came twice.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::WireClient;

/// A chat as one session showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// The sender.
    pub from: i64,
    /// The other side of a one-to-one chat (`to`), as the push says.
    pub to: i64,
    /// Its id in the log.
    pub mid: i64,
    /// Its place in its conversation.
    pub seq: i64,
    /// The text.
    pub msg: String,
}

/// One session of a user: an extension client over TCP.
pub struct Device {
    /// The connection.
    pub client: WireClient,
    /// The session's resume token.
    pub token: String,
    /// Every chat pushed to this session, in arrival order (across its resumes).
    pub shown: Vec<Shown>,
    /// Frames that were neither chats nor awaited answers (notices, late acks).
    pub other: Vec<Value>,
}

impl Device {
    /// Logs `id` in with password `pw` and the extension on `addr`; panics unless errno 0.
    pub async fn login(addr: SocketAddr, id: i64) -> Device {
        let (device, ack) = Device::try_login(addr, json!({"msgid":1,"id":id,"password":"pw","ext":1})).await;
        assert_eq!(ack["errno"], 0, "login of {id} on {addr}: {ack}");
        device
    }

    /// Sends `request` (a LOGIN or a RESUME) on a new connection; the device and the answer.
    pub async fn try_login(addr: SocketAddr, request: Value) -> (Device, Value) {
        let mut client = WireClient::connect(addr).await;
        client.send(&request).await;
        let ack = client.recv().await;
        let token = ack["resume"].as_str().unwrap_or_default().to_owned();
        (Device { client, token, shown: Vec::new(), other: Vec::new() }, ack)
    }

    /// Resumes this device's session on a new connection to `addr`, acknowledging `acks`
    /// (what it has). Returns the answer; on errno 0 the device reads from the new connection.
    pub async fn resume(&mut self, addr: SocketAddr, acks: Value) -> Value {
        let mut client = WireClient::connect(addr).await;
        client.send(&json!({"msgid":17,"token":self.token,"acks":acks})).await;
        let ack = client.recv().await;
        if ack["errno"] == 0 {
            self.client = client;
        }
        ack
    }

    /// Reads what comes for up to `within`, until `enough` says the chats shown suffice.
    /// Returns whether `enough` was met.
    pub async fn read_until(&mut self, within: Duration, enough: impl Fn(&[Shown]) -> bool) -> bool {
        let deadline = Instant::now() + within;
        while !enough(&self.shown) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.client.recv_within(left.min(Duration::from_millis(200))).await {
                Some(frame) => self.keep(frame),
                None if Instant::now() >= deadline => return false,
                None => {}
            }
        }
        true
    }

    /// Reads whatever comes within `within`.
    pub async fn drain(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while let Some(frame) =
            self.client.recv_within(deadline.saturating_duration_since(Instant::now())).await
        {
            self.keep(frame);
        }
    }

    /// Sends a one-to-one chat with a `cid` and waits for its ACK (keeping what comes first).
    pub async fn chat(&mut self, to: i64, msg: &str, cid: &str) -> Value {
        self.client.send(&json!({"msgid":6,"to":to,"msg":msg,"cid":cid})).await;
        loop {
            let frame = self.client.recv().await;
            if frame["msgid"] == 11 && frame["cid"] == cid {
                return frame;
            }
            self.keep(frame);
        }
    }

    /// Sends a request and returns its answer: the first frame with `msgid` `answer`, or an
    /// ACK (11) naming the request's msgid (keeping what comes first).
    pub async fn ask(&mut self, request: Value, answer: i64) -> Value {
        let re = request["msgid"].clone();
        self.client.send(&request).await;
        loop {
            let frame = self.client.recv().await;
            if frame["msgid"] == answer || (frame["msgid"] == 11 && frame["re"] == re) {
                return frame;
            }
            self.keep(frame);
        }
    }

    /// Acknowledges, for the conversation with `peer`, everything up to `seq`.
    pub async fn received(&mut self, peer: i64, seq: i64) {
        self.client.send(&json!({"msgid":18,"acks":[{"id":peer,"seq":seq}]})).await;
    }

    /// Waits up to `within` for a frame other than a chat that `want` accepts (one kept
    /// already, or a new one), and takes it out of `other`.
    pub async fn expect(&mut self, within: Duration, want: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(at) = self.other.iter().position(&want) {
                return Some(self.other.remove(at));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if let Some(frame) = self.client.recv_within(left).await {
                self.keep(frame);
            }
        }
    }

    /// The frames with this `msgid` kept in `other` (after a [`drain`](Self::drain)).
    pub fn kept(&self, msgid: i64) -> Vec<&Value> {
        self.other.iter().filter(|f| f["msgid"] == msgid).collect()
    }

    fn keep(&mut self, frame: Value) {
        if frame["msgid"] == 6 {
            self.shown.push(Shown {
                from: frame["id"].as_i64().unwrap_or_default(),
                to: frame["to"].as_i64().unwrap_or_default(),
                mid: frame["mid"].as_i64().unwrap_or_default(),
                seq: frame["seq"].as_i64().unwrap_or_default(),
                msg: frame["msg"].as_str().unwrap_or_default().to_owned(),
            });
        } else if frame["msgid"] != 12 {
            self.other.push(frame);
        }
    }

    /// The chats from `from` this session showed.
    pub fn from(&self, from: i64) -> Vec<&Shown> {
        self.shown.iter().filter(|s| s.from == from).collect()
    }

    /// The highest seq of the conversation with `peer` up to which this session has every
    /// message (what a client acknowledges and resumes with).
    pub fn contiguous(&self, peer: i64) -> i64 {
        let mut seqs: Vec<i64> =
            self.shown.iter().filter(|s| s.from == peer || s.to == peer).map(|s| s.seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        let mut last = 0;
        for seq in seqs {
            if seq != last + 1 {
                break;
            }
            last = seq;
        }
        last
    }
}

/// Asserts that `device` showed `from`'s chats `texts` exactly once each, in this order, with
/// their seqs growing (`who` names the session in the failure).
pub fn assert_once_in_order(who: &str, device: &Device, from: i64, texts: &[String]) {
    let got: Vec<&Shown> = device.from(from);
    let mut mids: Vec<i64> = got.iter().map(|s| s.mid).collect();
    mids.sort_unstable();
    let before = mids.len();
    mids.dedup();
    assert_eq!(before, mids.len(), "{who}: {} chats came twice", before - mids.len());
    let shown: Vec<&str> = got.iter().map(|s| s.msg.as_str()).collect();
    let want: Vec<&str> = texts.iter().map(String::as_str).collect();
    if shown != want {
        let missing: Vec<&&str> = want.iter().filter(|t| !shown.contains(t)).take(10).collect();
        panic!(
            "{who}: showed {} of {} chats, in another order or with gaps; first missing: {missing:?}",
            shown.len(),
            want.len()
        );
    }
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq), "{who}: seqs out of order");
}
