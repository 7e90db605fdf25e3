//! Logged messages as frames: the push a client gets for a [`LoggedMessage`]
//! (extension form with `mid` and `seq`, or the original's form without), and
//! [`Item`], a logged message on its way to sessions (from this node's journal,
//! or parsed from a frame another node published).

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
}

impl Item {
    /// The item of a frame another node published; `None` for a frame without `mid` and
    /// `seq` (from a node that does not log messages).
    pub(crate) fn parse(frame: Bytes) -> Option<Item> {
        let head: Head = serde_json::from_slice(&frame).ok()?;
        head.mid?;
        let seq = head.seq?;
        let sender = UserId(head.id);
        let conv = match (head.groupid, head.to) {
            (Some(group), _) => ConvId::group(GroupId(group)),
            (None, Some(to)) => ConvId::direct(sender, UserId(to)),
            (None, None) => return None,
        };
        Some(Item { conv, seq, sender, frame })
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
}
