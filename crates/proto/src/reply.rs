//! Frames the server sends: acks, errors, forwarded chats, notices.
//!
//! Every frame is a compact JSON object whose keys come out in alphabetical
//! order, as the original's nlohmann::json emitted them (structs list their
//! fields alphabetically; `serde_json::Map` is a sorted map).

use serde::Serialize;
use serde_json::{Value, json};

use crate::{GroupId, MsgId, Peer, UserId};

/// Stable error numbers carried in `errno`. 1 and 2 are the original's; the
/// rest belong to the extension (docs/PROTOCOL.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// Bad id or password at login; registration failed (the original's errno 1).
    Invalid = 1,
    /// The account is logged in elsewhere (the original's errno 2).
    InUse = 2,
    /// The request needs a logged-in connection.
    NotLoggedIn = 3,
    /// The frame is not a well-formed request.
    BadRequest = 4,
    /// No user has that id.
    UnknownUser = 5,
    /// No group has that id.
    UnknownGroup = 6,
    /// Only members of the group may do that.
    NotMember = 7,
    /// The name is taken.
    NameTaken = 8,
    /// A name, password, message or description is empty, too long or not allowed.
    InvalidInput = 9,
    /// The frame is longer than the server's limit.
    FrameTooLong = 10,
    /// This connection is already logged in.
    AlreadyLoggedIn = 11,
    /// Something failed inside the server; the log has the detail.
    Internal = 12,
    /// A service the server needs (the database) is unavailable; try again.
    Unavailable = 13,
    /// Too many requests; slow down.
    RateLimited = 14,
    /// The server is shutting down or closing this connection.
    Closing = 15,
    /// A limit was reached (the group is full).
    LimitReached = 16,
    /// A RESUME's token is unknown or expired (log in again with the password).
    BadToken = 17,
    /// A limit per client address: connections, connections waiting to log in, or
    /// registrations from the client's address (a NOTICE before a close, or a REG_ACK).
    AddressLimit = 18,
    /// The recipient does not accept chats or requests from the sender (blocked, or friends only).
    Refused = 20,
    /// The sender blocked the recipient (unblock first).
    YouBlocked = 21,
    /// There is no friend request from that user.
    NoRequest = 22,
    /// Only the group's owner (or its admins) may do that.
    NotAllowed = 23,
    /// The password given is wrong (CHANGE_PASSWORD, DELETE_ACCOUNT).
    WrongPassword = 24,
    /// The account has `max_sessions_per_user` sessions already (an extension login).
    SessionLimit = 30,
}

impl ErrorCode {
    /// The number on the wire.
    pub fn number(self) -> u8 {
        self as u8
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.number())
    }
}

/// Serializes a frame to compact JSON (no delimiter; the codec adds it).
pub fn encode<T: Serialize>(frame: &T) -> String {
    // Serializing our own plain structs and maps cannot fail.
    serde_json::to_string(frame).unwrap_or_default()
}

/// A forwarded ONE_CHAT (6), as the recipient gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ChatPush {
    /// The sender's id (from the session, never from the request).
    pub id: UserId,
    /// Extension: the message's id in the server's log (absent for the original client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid: Option<i64>,
    /// The text.
    pub msg: String,
    /// Always 6.
    pub msgid: u8,
    /// The sender's name.
    pub name: String,
    /// Extension: the message's place in its conversation, 1, 2, 3, … without gaps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// Server time, `YYYY-MM-DD HH:MM:SS`.
    pub time: String,
    /// The recipient.
    pub to: UserId,
}

/// A forwarded GROUP_CHAT (10), as each member gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct GroupChatPush {
    /// The group.
    pub groupid: GroupId,
    /// The sender's id.
    pub id: UserId,
    /// Extension: the message's id in the server's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid: Option<i64>,
    /// The text.
    pub msg: String,
    /// Always 10.
    pub msgid: u8,
    /// The sender's name.
    pub name: String,
    /// Extension: the message's place in the group's conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// Server time, `YYYY-MM-DD HH:MM:SS`.
    pub time: String,
}

/// Extension ACK (11): the outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ack {
    /// A chat's client message id, echoed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// Why it failed, for people; absent on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errmsg: Option<String>,
    /// 0 on success, else an [`ErrorCode`] number.
    pub errno: u8,
    /// The new group's id, on a successful CREATE_GROUP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groupid: Option<GroupId>,
    /// A stored chat's id in the server's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mid: Option<i64>,
    /// Always 11.
    pub msgid: u8,
    /// The msgid of the request this answers (0 when the frame had none).
    pub re: i64,
    /// A stored chat's place in its conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

impl Ack {
    /// A success for request `re`.
    pub fn ok(re: MsgId) -> Ack {
        Ack {
            cid: None,
            errmsg: None,
            errno: 0,
            groupid: None,
            mid: None,
            msgid: MsgId::Ack.number(),
            re: re.number().into(),
            seq: None,
        }
    }

    /// A failure for request `re`.
    pub fn error(re: i64, code: ErrorCode, errmsg: impl Into<String>) -> Ack {
        Ack {
            cid: None,
            errmsg: Some(errmsg.into()),
            errno: code.number(),
            groupid: None,
            mid: None,
            msgid: MsgId::Ack.number(),
            re,
            seq: None,
        }
    }
}

/// An error on an ack of its own: LOGIN_MSG_ACK (2) or REG_MSG_ACK (5).
pub fn ack_error(ack: MsgId, code: ErrorCode, errmsg: &str) -> String {
    encode(&json!({ "errmsg": errmsg, "errno": code.number(), "msgid": ack.number() }))
}

/// REG_MSG_ACK success: `{"errno":0,"id":N,"msgid":5}`.
pub fn reg_ok(id: UserId) -> String {
    encode(&json!({ "errno": 0, "id": id, "msgid": MsgId::RegAck.number() }))
}

/// FIND_USER_ACK (extension): `{"errno":0,"id":N,"msgid":51,"name":"…","state":"online"}`.
pub fn find_user_ok(id: UserId, name: &str, online: bool) -> String {
    encode(
        &json!({ "errno": 0, "id": id, "msgid": MsgId::FindUserAck.number(), "name": name, "state": state(online) }),
    )
}

/// PRESENCE (extension): `{"id":N,"msgid":53,"name":"…","state":"online"}` (or `offline`).
pub fn presence_push(id: UserId, name: &str, online: bool) -> String {
    encode(&json!({ "id": id, "msgid": MsgId::Presence.number(), "name": name, "state": state(online) }))
}

/// `online` or `offline`, as the original spells presence.
fn state(online: bool) -> &'static str {
    if online { "online" } else { "offline" }
}

/// A group member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The user who created the group.
    Creator,
    /// Everyone who joined it.
    Normal,
}

impl Role {
    /// The original's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Creator => "creator",
            Role::Normal => "normal",
        }
    }
}

/// One friend in a login ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FriendEntry {
    /// The friend's id.
    pub id: UserId,
    /// The friend's name.
    pub name: String,
    /// Whether the friend is online.
    pub online: bool,
}

/// One member of a group in a login ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEntry {
    /// The member's id.
    pub id: UserId,
    /// The member's name.
    pub name: String,
    /// Whether the member is online.
    pub online: bool,
    /// Creator or normal member.
    pub role: Role,
}

/// One group in a login ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// The group's id.
    pub id: GroupId,
    /// Its unique name.
    pub name: String,
    /// Its description.
    pub desc: String,
    /// Its members, the logged-in user included.
    pub members: Vec<MemberEntry>,
}

/// A successful LOGIN_MSG_ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOk {
    /// The user's id.
    pub id: UserId,
    /// The user's name.
    pub name: String,
    /// Friends with their state.
    pub friends: Vec<FriendEntry>,
    /// Groups with their members.
    pub groups: Vec<GroupEntry>,
    /// Stored frames, oldest first, each the JSON text the user would have got live.
    pub offline: Vec<String>,
    /// Extension: the token a reconnecting client RESUMEs with.
    pub resume: Option<String>,
    /// Extension: unread messages per conversation (only those with some).
    pub unread: Vec<Unread>,
    /// Extension: the user's read marks, and the other users' in its one-to-one conversations.
    pub reads: ReadState,
}

/// The read state an extension LOGIN ack and LIST_ACK carry (issue 20).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadState {
    /// The user's own read marks: `"read":[{"id":2,"seq":17},{"groupid":5,"seq":30}]`.
    pub read: Vec<(Peer, i64)>,
    /// For each one-to-one conversation, the other user's marks: `"receipts":[{"id":2,"read":17,"recv":18}]`.
    pub receipts: Vec<PeerReads>,
}

/// One user's marks in a conversation: how far it read and how far it received (its cursor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerReads {
    /// The user.
    pub id: UserId,
    /// Its read mark (0: none).
    pub read: i64,
    /// Its cursor, what it acknowledged receiving (0: none).
    pub recv: i64,
}

impl PeerReads {
    fn to_json(self) -> Value {
        json!({ "id": self.id, "read": self.read, "recv": self.recv })
    }
}

/// `{"id":N}` or `{"groupid":N}` with `key: value` beside it.
fn peer_json(peer: Peer, key: &str, value: Value) -> Value {
    let mut map = serde_json::Map::new();
    match peer {
        Peer::User(id) => map.insert("id".into(), json!(id)),
        Peer::Group(group) => map.insert("groupid".into(), json!(group)),
    };
    map.insert(key.into(), value);
    Value::Object(map)
}

/// RECEIPT (55), extension: `reader` read (`"what":"read"`) or received (`"recv"`) the
/// conversation the receiving user names `peer` up to `seq`.
pub fn receipt_push(peer: Peer, reader: UserId, seq: i64, read: bool) -> String {
    let mut v = peer_json(peer, "reader", json!(reader));
    if let Some(map) = v.as_object_mut() {
        map.insert("msgid".into(), MsgId::Receipt.number().into());
        map.insert("seq".into(), seq.into());
        map.insert("what".into(), if read { "read" } else { "recv" }.into());
    }
    encode(&v)
}

/// TYPING (58) as forwarded: `{"id":typer,"msgid":58,"state":"typing"}`, with `groupid` in a group.
pub fn typing_push(group: Option<GroupId>, typer: UserId, typing: bool) -> String {
    let state = if typing { "typing" } else { "paused" };
    match group {
        Some(group) => {
            encode(&json!({ "groupid": group, "id": typer, "msgid": MsgId::Typing.number(), "state": state }))
        }
        None => encode(&json!({ "id": typer, "msgid": MsgId::Typing.number(), "state": state })),
    }
}

/// READS_ACK (57): each member's marks in the conversation `peer`.
pub fn reads_ack(peer: Peer, reads: &[PeerReads]) -> String {
    let list: Vec<Value> = reads.iter().map(|r| r.to_json()).collect();
    let mut v = peer_json(peer, "reads", Value::Array(list));
    if let Some(map) = v.as_object_mut() {
        map.insert("errno".into(), 0.into());
        map.insert("msgid".into(), MsgId::ReadsAck.number().into());
    }
    encode(&v)
}

/// How many messages of one conversation the user has not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unread {
    /// The conversation.
    pub peer: Peer,
    /// Messages from others after the user's cursor.
    pub count: u64,
}

impl Unread {
    fn to_json(self) -> Value {
        match self.peer {
            Peer::User(id) => json!({ "count": self.count, "id": id }),
            Peer::Group(group) => json!({ "count": self.count, "groupid": group }),
        }
    }
}

/// LIST_ACK (16), extension only: `{"errno":0,"friends":[..],"groups":[..],"msgid":16,"read":[..],"receipts":[..],"unread":[..]}` with objects.
pub fn list_ack(
    friends: &[FriendEntry],
    groups: &[GroupEntry],
    unread: &[Unread],
    reads: &ReadState,
) -> String {
    let ok = LoginOk {
        id: UserId(0),
        name: String::new(),
        friends: friends.to_vec(),
        groups: groups.to_vec(),
        offline: vec![],
        resume: None,
        unread: unread.to_vec(),
        reads: reads.clone(),
    };
    let mut v: Value = serde_json::from_str(&ok.encode(true)).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.remove("id");
        map.remove("name");
        map.remove("offlinemsg");
        map.insert("msgid".into(), MsgId::ListAck.number().into());
    }
    encode(&v)
}

impl LoginOk {
    /// The ack frame. The original form nests lists as arrays of JSON *strings*
    /// and leaves empty lists out; the extension form nests objects.
    pub fn encode(&self, ext: bool) -> String {
        let nest = |v: Value| if ext { v } else { Value::String(encode(&v)) };
        let mut ack = serde_json::Map::new();
        ack.insert("errno".into(), 0.into());
        ack.insert("id".into(), json!(self.id));
        ack.insert("msgid".into(), MsgId::LoginAck.number().into());
        ack.insert("name".into(), self.name.clone().into());
        let friends: Vec<Value> = self
            .friends
            .iter()
            .map(|f| nest(json!({ "id": f.id, "name": f.name, "state": state(f.online) })))
            .collect();
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|g| {
                let users: Vec<Value> = g
                    .members
                    .iter()
                    .map(|m| {
                        nest(json!({ "id": m.id, "name": m.name, "role": m.role.as_str(), "state": state(m.online) }))
                    })
                    .collect();
                nest(json!({ "groupdesc": g.desc, "groupname": g.name, "id": g.id, "users": users }))
            })
            .collect();
        let offline: Vec<Value> = self
            .offline
            .iter()
            .map(|text| match serde_json::from_str::<Value>(text) {
                Ok(v) if ext => v,
                _ => Value::String(text.clone()),
            })
            .collect();
        for (key, list) in [("friends", friends), ("groups", groups), ("offlinemsg", offline)] {
            if ext || !list.is_empty() {
                ack.insert(key.into(), Value::Array(list));
            }
        }
        if ext {
            if let Some(token) = &self.resume {
                ack.insert("resume".into(), token.clone().into());
            }
            ack.insert("unread".into(), self.unread.iter().map(|u| u.to_json()).collect());
            let read: Vec<Value> =
                self.reads.read.iter().map(|&(p, seq)| peer_json(p, "seq", seq.into())).collect();
            ack.insert("read".into(), Value::Array(read));
            ack.insert("receipts".into(), self.reads.receipts.iter().map(|r| r.to_json()).collect());
        }
        encode(&ack)
    }
}

/// Extension NOTICE (14): the server is closing this connection, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// Why, for people.
    pub errmsg: String,
    /// The [`ErrorCode`] number.
    pub errno: u8,
    /// Always 14.
    pub msgid: u8,
}

impl Notice {
    /// A notice with a code and a readable reason.
    pub fn new(code: ErrorCode, errmsg: impl Into<String>) -> Notice {
        Notice { errmsg: errmsg.into(), errno: code.number(), msgid: MsgId::Notice.number() }
    }
}

/// Extension PING (12).
pub fn ping() -> String {
    encode(&json!({ "msgid": MsgId::Ping.number() }))
}

/// Extension HISTORY_ACK (20): a page of a conversation, oldest first, each message
/// as its push (own messages included); `more` says whether the page was cut at the limit.
pub fn history_ack(messages: &[String], more: bool) -> String {
    let messages: Vec<Value> = messages.iter().filter_map(|m| serde_json::from_str(m).ok()).collect();
    encode(&json!({ "errno": 0, "messages": messages, "more": more, "msgid": MsgId::HistoryAck.number() }))
}

/// Extension ACK (11) of a success that issued a new resume token (CHANGE_PASSWORD).
pub fn ack_with_resume(re: MsgId, token: &str) -> String {
    encode(&json!({ "errno": 0, "msgid": MsgId::Ack.number(), "re": re.number(), "resume": token }))
}

fn user_list(users: &[(UserId, String)]) -> Vec<Value> {
    users.iter().map(|(id, name)| json!({ "id": id, "name": name })).collect()
}

/// BLOCKED_ACK (33): the users the client blocks and who may write to it.
pub fn blocked_ack(users: &[(UserId, String)], writers: &str) -> String {
    encode(&json!({
        "errno": 0, "msgid": MsgId::BlockedAck.number(), "users": user_list(users), "writers": writers
    }))
}

/// FRIEND_REQUESTS_ACK (39): the requests waiting for the client and those it sent, oldest first.
pub fn requests_ack(incoming: &[(UserId, String)], outgoing: &[(UserId, String)]) -> String {
    encode(&json!({
        "errno": 0, "incoming": user_list(incoming), "msgid": MsgId::FriendRequestsAck.number(),
        "outgoing": user_list(outgoing)
    }))
}

/// EVENT (47): `{"event":kind,"msgid":47,...fields}`; `fields` must be a JSON object.
pub fn event(kind: &str, fields: Value) -> String {
    let mut map = match fields {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    map.insert("event".into(), kind.into());
    map.insert("msgid".into(), MsgId::Event.number().into());
    encode(&map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_frames_are_pinned() {
        assert_eq!(
            event("friend-request", json!({"id": 2, "name": "b"})),
            r#"{"event":"friend-request","id":2,"msgid":47,"name":"b"}"#
        );
        assert_eq!(
            blocked_ack(&[(UserId(2), "b".into())], "friends"),
            r#"{"errno":0,"msgid":33,"users":[{"id":2,"name":"b"}],"writers":"friends"}"#
        );
        assert_eq!(
            requests_ack(&[(UserId(2), "b".into())], &[]),
            r#"{"errno":0,"incoming":[{"id":2,"name":"b"}],"msgid":39,"outgoing":[]}"#
        );
        assert_eq!(
            ack_with_resume(MsgId::ChangePassword, "t"),
            r#"{"errno":0,"msgid":11,"re":45,"resume":"t"}"#
        );
    }

    fn sample() -> LoginOk {
        LoginOk {
            id: UserId(1),
            name: "a".into(),
            friends: vec![FriendEntry { id: UserId(2), name: "b".into(), online: true }],
            groups: vec![GroupEntry {
                id: GroupId(3),
                name: "g".into(),
                desc: "d".into(),
                members: vec![MemberEntry {
                    id: UserId(1),
                    name: "a".into(),
                    online: true,
                    role: Role::Creator,
                }],
            }],
            offline: vec![r#"{"id":2,"msg":"x","msgid":6,"name":"b","time":"t","to":1}"#.into()],
            resume: Some("tok".into()),
            unread: vec![Unread { peer: Peer::Group(GroupId(3)), count: 2 }],
            reads: ReadState {
                read: vec![(Peer::User(UserId(2)), 17), (Peer::Group(GroupId(3)), 30)],
                receipts: vec![PeerReads { id: UserId(2), read: 17, recv: 18 }],
            },
        }
    }

    #[test]
    fn login_ack_original_shape_nests_strings() {
        assert_eq!(
            sample().encode(false),
            r#"{"errno":0,"friends":["{\"id\":2,\"name\":\"b\",\"state\":\"online\"}"],"groups":["{\"groupdesc\":\"d\",\"groupname\":\"g\",\"id\":3,\"users\":[\"{\\\"id\\\":1,\\\"name\\\":\\\"a\\\",\\\"role\\\":\\\"creator\\\",\\\"state\\\":\\\"online\\\"}\"]}"],"id":1,"msgid":2,"name":"a","offlinemsg":["{\"id\":2,\"msg\":\"x\",\"msgid\":6,\"name\":\"b\",\"time\":\"t\",\"to\":1}"]}"#
        );
    }

    #[test]
    fn login_ack_original_leaves_out_empty_lists() {
        let empty = LoginOk {
            id: UserId(1),
            name: "a".into(),
            friends: vec![],
            groups: vec![],
            offline: vec![],
            resume: None,
            unread: vec![],
            reads: ReadState::default(),
        };
        assert_eq!(empty.encode(false), r#"{"errno":0,"id":1,"msgid":2,"name":"a"}"#);
        assert_eq!(
            empty.encode(true),
            r#"{"errno":0,"friends":[],"groups":[],"id":1,"msgid":2,"name":"a","offlinemsg":[],"read":[],"receipts":[],"unread":[]}"#
        );
    }

    #[test]
    fn login_ack_extension_nests_objects() {
        let v: Value = serde_json::from_str(&sample().encode(true)).expect("json");
        assert_eq!(v["friends"][0]["state"], "online");
        assert_eq!(v["groups"][0]["users"][0]["role"], "creator");
        assert_eq!(v["offlinemsg"][0]["msg"], "x");
        assert_eq!(v["resume"], "tok");
        assert_eq!(v["unread"][0], json!({"count":2,"groupid":3}));
        assert_eq!(v["read"], json!([{"id":2,"seq":17},{"groupid":3,"seq":30}]));
        assert_eq!(v["receipts"], json!([{"id":2,"read":17,"recv":18}]));
        for key in ["resume", "read", "receipts"] {
            assert!(!sample().encode(false).contains(key), "the original client gets no extension keys");
        }
    }

    #[test]
    fn pinned_error_frames() {
        assert_eq!(
            ack_error(MsgId::LoginAck, ErrorCode::Invalid, crate::ERRMSG_LOGIN_INVALID),
            r#"{"errmsg":"id or password is invalid!","errno":1,"msgid":2}"#
        );
        assert_eq!(
            ack_error(MsgId::LoginAck, ErrorCode::InUse, crate::ERRMSG_ACCOUNT_IN_USE),
            r#"{"errmsg":"this account is using, input another!","errno":2,"msgid":2}"#
        );
        assert_eq!(
            ack_error(MsgId::RegAck, ErrorCode::Invalid, crate::ERRMSG_REG_FAILED),
            r#"{"errmsg":"注册失败!","errno":1,"msgid":5}"#
        );
        assert_eq!(reg_ok(UserId(7)), r#"{"errno":0,"id":7,"msgid":5}"#);
        let codes = [
            (ErrorCode::Invalid, 1),
            (ErrorCode::InUse, 2),
            (ErrorCode::NotLoggedIn, 3),
            (ErrorCode::BadRequest, 4),
            (ErrorCode::UnknownUser, 5),
            (ErrorCode::UnknownGroup, 6),
            (ErrorCode::NotMember, 7),
            (ErrorCode::NameTaken, 8),
            (ErrorCode::InvalidInput, 9),
            (ErrorCode::FrameTooLong, 10),
            (ErrorCode::AlreadyLoggedIn, 11),
            (ErrorCode::Internal, 12),
            (ErrorCode::Unavailable, 13),
            (ErrorCode::RateLimited, 14),
            (ErrorCode::Closing, 15),
            (ErrorCode::LimitReached, 16),
            (ErrorCode::BadToken, 17),
            (ErrorCode::AddressLimit, 18),
            (ErrorCode::Refused, 20),
            (ErrorCode::YouBlocked, 21),
            (ErrorCode::NoRequest, 22),
            (ErrorCode::NotAllowed, 23),
            (ErrorCode::WrongPassword, 24),
            (ErrorCode::SessionLimit, 30),
        ];
        for (code, n) in codes {
            assert_eq!(code.number(), n);
        }
        assert_eq!(encode(&Ack::ok(MsgId::AddFriend)), r#"{"errno":0,"msgid":11,"re":7}"#);
        assert_eq!(
            presence_push(UserId(7), "bob", false),
            r#"{"id":7,"msgid":53,"name":"bob","state":"offline"}"#
        );
        assert_eq!(
            find_user_ok(UserId(7), "bob", true),
            r#"{"errno":0,"id":7,"msgid":51,"name":"bob","state":"online"}"#
        );
        assert_eq!(
            encode(&Ack::error(10, ErrorCode::NotMember, "x")),
            r#"{"errmsg":"x","errno":7,"msgid":11,"re":10}"#
        );
        assert_eq!(ping(), r#"{"msgid":12}"#);
        assert_eq!(
            list_ack(&[], &[], &[], &ReadState::default()),
            r#"{"errno":0,"friends":[],"groups":[],"msgid":16,"read":[],"receipts":[],"unread":[]}"#
        );
        let stored = Ack { cid: Some("c1".into()), mid: Some(9), seq: Some(3), ..Ack::ok(MsgId::OneChat) };
        assert_eq!(encode(&stored), r#"{"cid":"c1","errno":0,"mid":9,"msgid":11,"re":6,"seq":3}"#);
    }

    #[test]
    fn read_state_and_typing_frames_are_pinned() {
        assert_eq!(
            receipt_push(Peer::User(UserId(1)), UserId(1), 17, true),
            r#"{"id":1,"msgid":55,"reader":1,"seq":17,"what":"read"}"#
        );
        assert_eq!(
            receipt_push(Peer::Group(GroupId(5)), UserId(2), 9, false),
            r#"{"groupid":5,"msgid":55,"reader":2,"seq":9,"what":"recv"}"#
        );
        assert_eq!(typing_push(None, UserId(1), true), r#"{"id":1,"msgid":58,"state":"typing"}"#);
        assert_eq!(
            typing_push(Some(GroupId(5)), UserId(1), false),
            r#"{"groupid":5,"id":1,"msgid":58,"state":"paused"}"#
        );
        assert_eq!(
            reads_ack(
                Peer::User(UserId(2)),
                &[
                    PeerReads { id: UserId(1), read: 17, recv: 18 },
                    PeerReads { id: UserId(2), read: 9, recv: 9 }
                ]
            ),
            r#"{"errno":0,"id":2,"msgid":57,"reads":[{"id":1,"read":17,"recv":18},{"id":2,"read":9,"recv":9}]}"#
        );
        assert_eq!(
            reads_ack(Peer::Group(GroupId(5)), &[]),
            r#"{"errno":0,"groupid":5,"msgid":57,"reads":[]}"#
        );
    }

    #[test]
    fn pushes_have_the_original_keys_in_order() {
        let push = ChatPush {
            id: UserId(1),
            mid: None,
            msg: "hi \"x\" \\ 你好 😀\n".into(),
            msgid: 6,
            name: "a".into(),
            seq: None,
            time: "2024-01-01 00:00:00".into(),
            to: UserId(2),
        };
        assert_eq!(
            encode(&push),
            r#"{"id":1,"msg":"hi \"x\" \\ 你好 😀\n","msgid":6,"name":"a","time":"2024-01-01 00:00:00","to":2}"#
        );
        let mut g = GroupChatPush {
            groupid: GroupId(3),
            id: UserId(1),
            mid: None,
            msg: "m".into(),
            msgid: 10,
            name: "a".into(),
            seq: None,
            time: "t".into(),
        };
        assert_eq!(encode(&g), r#"{"groupid":3,"id":1,"msg":"m","msgid":10,"name":"a","time":"t"}"#);
        (g.mid, g.seq) = (Some(40), Some(2));
        assert_eq!(
            encode(&g),
            r#"{"groupid":3,"id":1,"mid":40,"msg":"m","msgid":10,"name":"a","seq":2,"time":"t"}"#
        );
    }
}
