//! The bench's frames: the `msg` text that carries each message's identity
//! and send time, the request frames the bench writes, and a fast, lenient
//! reading of the frames a server sends. No I/O here.

use std::borrow::Cow;

use serde::Deserialize;

/// What a bench message's `msg` says about itself: `"<run>:<seq>:<send_nanos>:<padding>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Which measured run sent it (a sweep reuses its connections).
    pub run: u32,
    /// Its number within the run, from 0.
    pub seq: u64,
    /// When it was handed to the writer, in nanoseconds since the bench's epoch.
    pub sent_nanos: u64,
}

impl Stamp {
    /// The `msg` text, padded with `x` to `len` bytes (never cut below the stamp itself).
    pub fn encode(&self, len: usize) -> String {
        let mut s = format!("{}:{}:{}:", self.run, self.seq, self.sent_nanos);
        if s.len() < len {
            s.extend(std::iter::repeat_n('x', len - s.len()));
        }
        s
    }

    /// Reads a `msg` text; `None` if it is not one of ours.
    pub fn parse(msg: &str) -> Option<Stamp> {
        let mut parts = msg.splitn(4, ':');
        let run = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        let sent_nanos = parts.next()?.parse().ok()?;
        parts.next()?;
        Some(Stamp { run, seq, sent_nanos })
    }
}

/// A one-to-one chat request, newline-terminated. `msg` must need no JSON escaping
/// (a [`Stamp`] never does).
pub fn one_chat(to: i32, msg: &str) -> String {
    format!("{{\"msgid\":6,\"to\":{to},\"msg\":\"{msg}\"}}\n")
}

/// A group chat request, newline-terminated (same rule for `msg`).
pub fn group_chat(group: i32, msg: &str) -> String {
    format!("{{\"msgid\":10,\"groupid\":{group},\"msg\":\"{msg}\"}}\n")
}

/// A frame from a server, with only the keys the bench looks at.
#[derive(Debug, Deserialize, PartialEq)]
pub struct ServerFrame<'a> {
    /// The message id.
    pub msgid: i64,
    /// Error number of acks.
    #[serde(default)]
    pub errno: Option<i64>,
    /// Sender of a forwarded chat; the user id in acks.
    #[serde(default)]
    pub id: Option<i64>,
    /// Recipient of a forwarded one-to-one chat.
    #[serde(default)]
    pub to: Option<i64>,
    /// Group of a forwarded group chat, or of a created group.
    #[serde(default)]
    pub groupid: Option<i64>,
    /// What an ACK answers.
    #[serde(default)]
    pub re: Option<i64>,
    /// The chat text.
    #[serde(default, borrow)]
    pub msg: Option<Cow<'a, str>>,
    /// Error text.
    #[serde(default, borrow)]
    pub errmsg: Option<Cow<'a, str>>,
}

/// Reads one server frame; `None` if it is not a JSON object with an integer msgid.
pub fn parse_frame(bytes: &[u8]) -> Option<ServerFrame<'_>> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_and_pads() {
        let s = Stamp { run: 3, seq: 12345, sent_nanos: 987_654_321 };
        let text = s.encode(64);
        assert_eq!(text.len(), 64);
        assert!(text.starts_with("3:12345:987654321:xxx"));
        assert_eq!(Stamp::parse(&text), Some(s));
    }

    #[test]
    fn stamp_longer_than_the_size_is_not_cut() {
        let s = Stamp { run: 1, seq: 1, sent_nanos: 1_000_000_000_000 };
        let text = s.encode(4);
        assert_eq!(text, "1:1:1000000000000:");
        assert_eq!(Stamp::parse(&text), Some(s));
    }

    #[test]
    fn foreign_text_is_not_a_stamp() {
        for text in ["", "hello", "1:2", "1:2:3", "a:2:3:", "1:-2:3:", "1:2:3x:", "99999999999:1:1:"] {
            assert_eq!(Stamp::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn request_frames_are_json() {
        let msg = Stamp { run: 0, seq: 7, sent_nanos: 9 }.encode(20);
        for (frame, msgid) in [(one_chat(42, &msg), 6), (group_chat(5, &msg), 10)] {
            assert!(frame.ends_with('\n'));
            let v: serde_json::Value = serde_json::from_str(frame.trim_end()).expect("json");
            assert_eq!(v["msgid"], msgid);
            assert_eq!(v["msg"], msg.as_str());
        }
    }

    #[test]
    fn forwarded_chats_parse() {
        let f = parse_frame(
            br#"{"id":1,"msg":"0:5:77:xx","msgid":6,"name":"a","time":"2026-11-26 20:00:00","to":2}"#,
        )
        .expect("parses");
        assert_eq!((f.msgid, f.id, f.to), (6, Some(1), Some(2)));
        assert_eq!(
            Stamp::parse(f.msg.as_deref().unwrap_or("")),
            Some(Stamp { run: 0, seq: 5, sent_nanos: 77 })
        );

        let g = parse_frame(br#"{"groupid":3,"id":1,"msg":"h\"i","msgid":10,"name":"a","time":"t"}"#)
            .expect("escaped text parses too");
        assert_eq!((g.msgid, g.groupid, g.msg.as_deref()), (10, Some(3), Some("h\"i")));
    }

    #[test]
    fn acks_parse() {
        let a = parse_frame(br#"{"errno":0,"groupid":12,"msgid":11,"re":8}"#).expect("parses");
        assert_eq!((a.msgid, a.errno, a.groupid, a.re), (11, Some(0), Some(12), Some(8)));
        let r = parse_frame(br#"{"errmsg":"too many requests; slow down","errno":14,"msgid":11,"re":0}"#)
            .expect("parses");
        assert_eq!(r.errmsg.as_deref(), Some("too many requests; slow down"));
    }

    #[test]
    fn malformed_frames_are_none() {
        for bad in
            [&b""[..], b"{", b"[]", b"{\"id\":1}", b"{\"msgid\":\"6\"}", b"\xff\xfe", b"{\"msgid\":6.5}"]
        {
            assert!(parse_frame(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
