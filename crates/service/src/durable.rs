//! Logged messages as frames: the push a client gets for a [`LoggedMessage`]
//! (extension form with `mid` and `seq`, or the original's form without), and
//! [`Item`], a logged message on its way to sessions (from this node's journal,
//! or parsed from a frame another node published), with the versioned form in which
//! nodes publish it to each other ([`NODE_PROTOCOL`]). Not the transport (`chat-broker`).

use bytes::Bytes;
use chat_ports::LoggedMessage;
use chat_proto::{ChatPush, ConvId, GroupChatPush, GroupId, MsgId, Peer, TIME_FORMAT, UserId, encode};
use serde::Deserialize;

/// `created_at` (unix ms) as the original's `YYYY-MM-DD HH:MM:SS`, server local time.
pub(crate) fn time_text(created_at: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_millis_opt(created_at)
        .single()
        .map(|t| t.format(TIME_FORMAT).to_string())
        .unwrap_or_default()
}

/// The push of `m`: with `mid` and `seq` for extension clients (`ext`), exactly the
/// original's shape otherwise. `time` is `m.created_at` as [`time_text`] gives it
/// (callers on the hot path cache it per second).
pub(crate) fn push_frame_at(m: &LoggedMessage, ext: bool, time: String) -> Bytes {
    let (mid, seq) = if ext { (Some(m.mid), Some(m.seq)) } else { (None, None) };
    let text = if let Some(group) = m.conv.as_group() {
        encode(&GroupChatPush {
            groupid: group,
            id: m.sender,
            mid,
            msg: m.body.clone(),
            msgid: MsgId::GroupChat.number(),
            name: m.sender_name.clone(),
            seq,
            time,
        })
    } else {
        let to = match m.conv.peer_of(m.sender) {
            Some(Peer::User(to)) => to,
            _ => m.sender,
        };
        encode(&ChatPush {
            id: m.sender,
            mid,
            msg: m.body.clone(),
            msgid: MsgId::OneChat.number(),
            name: m.sender_name.clone(),
            seq,
            time,
            to,
        })
    };
    Bytes::from(text)
}

/// [`push_frame_at`] with the time formatted here.
pub(crate) fn push_frame(m: &LoggedMessage, ext: bool) -> Bytes {
    push_frame_at(m, ext, time_text(m.created_at))
}

/// The version of the frames nodes publish to each other on users' channels. Version 1 is
/// v0.1.0's: the extension push exactly as a client gets it, without `v`. From version 2 on
/// the frame carries `"v":<version>` as its last key (keys stay in alphabetical order).
///
/// The rule (ARCHITECTURE.md, "Upgrades"): a node reads every version from the previous
/// release's on; a newer version may only add keys, and the keys it shares with older ones
/// keep their meaning, so a node reads a version newer than its own by the keys it knows (and
/// v0.1.0, which has no notion of `v`, ignores keys it does not know). A node passes to its
/// clients only the push keys it knows, never `v`.
pub const NODE_PROTOCOL: u32 = 2;

/// The end of a published frame of version [`NODE_PROTOCOL`] (a test pins the two together).
const PUBLISHED_END: &[u8] = br#","v":2}"#;

/// The keys of a push (one-to-one and group) that this node knows and passes on to clients.
const PUSH_KEYS: [&str; 9] = ["groupid", "id", "mid", "msg", "msgid", "name", "seq", "time", "to"];

/// A logged message on its way to sessions: its place, its sender and its extension frame
/// (which is also what travels between nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub(crate) conv: ConvId,
    pub(crate) seq: i64,
    pub(crate) sender: UserId,
    pub(crate) frame: Bytes,
}

/// The keys of a published frame that place it; the text is not read.
#[derive(Deserialize)]
struct Head {
    id: i32,
    #[serde(default)]
    to: Option<i32>,
    #[serde(default)]
    groupid: Option<i32>,
    #[serde(default)]
    mid: Option<i64>,
    #[serde(default)]
    seq: Option<i64>,
    /// The node protocol version; absent in version 1.
    #[serde(default)]
    v: Option<u64>,
}

impl Item {
    /// The item of a frame another node published, of any [`NODE_PROTOCOL`] version; `None`
    /// for a frame without `mid` and `seq` (from a node that does not log messages).
    pub(crate) fn parse(published: Bytes) -> Option<Item> {
        let head: Head = serde_json::from_slice(&published).ok()?;
        head.mid?;
        let seq = head.seq?;
        let sender = UserId(head.id);
        let conv = match (head.groupid, head.to) {
            (Some(group), _) => ConvId::group(GroupId(group)),
            (None, Some(to)) => ConvId::direct(sender, UserId(to)),
            (None, None) => return None,
        };
        let frame = match head.v {
            // Version 1 (v0.1.0): the client's frame itself.
            None => published,
            // This version, as `published` writes it: the frame with `,"v":2` cut out.
            Some(v) if v == u64::from(NODE_PROTOCOL) && published.ends_with(PUBLISHED_END) => {
                let mut frame = Vec::with_capacity(published.len());
                frame.extend_from_slice(&published[..published.len() - PUBLISHED_END.len()]);
                frame.push(b'}');
                Bytes::from(frame)
            }
            // Another layout or a newer version: the keys this node knows, and only those.
            Some(_) => {
                let mut map: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(&published).ok()?;
                map.retain(|key, _| PUSH_KEYS.contains(&key.as_str()));
                Bytes::from(encode(&map))
            }
        };
        Some(Item { conv, seq, sender, frame })
    }

    /// What this node publishes for the item to other nodes: its frame with
    /// `"v":`[`NODE_PROTOCOL`] as the last key.
    pub(crate) fn published(&self) -> Bytes {
        let Some(open) = self.frame.strip_suffix(b"}") else {
            return self.frame.clone();
        };
        let mut out = Vec::with_capacity(self.frame.len() + PUBLISHED_END.len());
        out.extend_from_slice(open);
        out.extend_from_slice(PUBLISHED_END);
        Bytes::from(out)
    }

    /// The frame in the original's shape (no `mid`, no `seq`).
    pub(crate) fn original(&self) -> Bytes {
        match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&self.frame) {
            Ok(mut map) => {
                map.remove("mid");
                map.remove("seq");
                Bytes::from(encode(&map))
            }
            Err(_) => self.frame.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(conv: ConvId) -> LoggedMessage {
        LoggedMessage {
            mid: 41,
            conv,
            seq: 7,
            sender: UserId(1),
            sender_name: "a".into(),
            body: "hi \"x\"".into(),
            created_at: 0,
        }
    }

    #[test]
    fn frames_round_trip_through_items() {
        let direct = logged(ConvId::direct(UserId(1), UserId(2)));
        let frame = push_frame_at(&direct, true, "t".into());
        assert_eq!(
            &frame[..],
            br#"{"id":1,"mid":41,"msg":"hi \"x\"","msgid":6,"name":"a","seq":7,"time":"t","to":2}"#
        );
        let item = Item::parse(frame).expect("a logged frame parses");
        assert_eq!((item.conv, item.seq, item.sender), (direct.conv, 7, UserId(1)));
        assert_eq!(
            &item.original()[..],
            br#"{"id":1,"msg":"hi \"x\"","msgid":6,"name":"a","time":"t","to":2}"#
        );
        assert_eq!(push_frame_at(&direct, false, "t".into()), item.original());

        let group = logged(ConvId::group(GroupId(3)));
        let item = Item::parse(push_frame_at(&group, true, "t".into())).expect("parses");
        assert_eq!(item.conv, ConvId::group(GroupId(3)));
        assert!(Item::parse(Bytes::from_static(br#"{"id":1,"msg":"x","msgid":6,"to":2}"#)).is_none());
    }

    #[test]
    fn the_published_end_is_this_version() {
        assert_eq!(PUBLISHED_END, format!(r#","v":{NODE_PROTOCOL}}}"#).as_bytes());
    }

    /// What a node of this version publishes says its version as the last key, and reads
    /// back as exactly the frame a client gets (no `v`).
    #[test]
    fn published_frames_carry_the_version_and_read_back_without_it() {
        for conv in [ConvId::direct(UserId(1), UserId(2)), ConvId::group(GroupId(3))] {
            let frame = push_frame_at(&logged(conv), true, "t".into());
            let item = Item { conv, seq: 7, sender: UserId(1), frame };
            let published = item.published();
            assert!(published.ends_with(br#","v":2}"#), "{published:?}");
            let read = Item::parse(published).expect("a published frame parses");
            assert_eq!(read, item);
        }
    }

    /// Version 1 is v0.1.0's frame: the extension push itself, read and passed on unchanged.
    #[test]
    fn version_1_frames_of_the_previous_release_are_read() {
        let v1: &[u8] = br#"{"id":1,"mid":41,"msg":"hi","msgid":6,"name":"a","seq":7,"time":"t","to":2}"#;
        let item = Item::parse(Bytes::from_static(v1)).expect("a version 1 frame parses");
        assert_eq!((item.conv, item.seq, &item.frame[..]), (ConvId::direct(UserId(1), UserId(2)), 7, v1));
    }

    /// A newer version, or `v` elsewhere than last: read by the keys this node knows, and
    /// only those reach clients. (This is also how v0.1.0, with no `v` in its `Head`, reads a
    /// version 2 frame: serde ignores keys a struct does not name.)
    #[test]
    fn newer_versions_are_read_by_the_keys_this_node_knows() {
        let newer: &[u8] = br#"{"future":{"x":1},"groupid":3,"id":1,"mid":41,"msg":"hi","msgid":10,"name":"a","seq":7,"time":"t","v":9}"#;
        let item = Item::parse(Bytes::from_static(newer)).expect("a newer frame parses");
        assert_eq!((item.conv, item.seq, item.sender), (ConvId::group(GroupId(3)), 7, UserId(1)));
        assert_eq!(
            &item.frame[..],
            br#"{"groupid":3,"id":1,"mid":41,"msg":"hi","msgid":10,"name":"a","seq":7,"time":"t"}"#
        );
        let v_first: &[u8] =
            br#"{"v":2,"id":1,"mid":41,"msg":"hi","msgid":6,"name":"a","seq":7,"time":"t","to":2}"#;
        let item = Item::parse(Bytes::from_static(v_first)).expect("parses");
        assert_eq!(
            &item.frame[..],
            br#"{"id":1,"mid":41,"msg":"hi","msgid":6,"name":"a","seq":7,"time":"t","to":2}"#
        );
    }
}
