//! What the server sends, decoded: one frame into one [`Incoming`].
//!
//! Pure and forgiving: any byte string gives some `Incoming`, at worst
//! [`Incoming::Malformed`] with a reason. Both shapes of the login ack are
//! read (the original's lists of JSON *strings*, absent when empty, and the
//! extension's lists of objects). The extension's delivery fields (`mid`
//! and `seq` on pushes, `cid` on acks, `resume` and `unread` on the login
//! ack) are read when present and simply absent otherwise. Printing is
//! `format`'s business.

use chat_proto::{GroupId, MsgId, Peer, UserId};
use serde_json::{Map, Value};

/// An error the server reported (`errno` ≠ 0 with `errmsg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The error number.
    pub errno: i64,
    /// The server's text.
    pub errmsg: String,
}

/// One friend in a login ack or list ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Friend {
    /// The friend's id.
    pub id: UserId,
    /// The friend's name.
    pub name: String,
    /// `online` or `offline`, as the server spells it.
    pub state: String,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's id.
    pub id: UserId,
    /// The member's name.
    pub name: String,
    /// `online` or `offline`.
    pub state: String,
    /// `creator` or `normal`.
    pub role: String,
}

/// One group with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The group's id.
    pub id: GroupId,
    /// Its name.
    pub name: String,
    /// Its description.
    pub desc: String,
    /// Its members.
    pub members: Vec<Member>,
}

/// How many messages of one conversation wait unread (extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unread {
    /// The conversation.
    pub peer: Peer,
    /// Messages from others the server has not had acknowledged.
    pub count: u64,
}

/// The friend and group lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lists {
    /// Friends with their state.
    pub friends: Vec<Friend>,
    /// Groups with their members.
    pub groups: Vec<Group>,
    /// Unread counts per conversation (extension; empty from the original server).
    pub unread: Vec<Unread>,
    /// Why some entries could not be read (they are left out above).
    pub unreadable: Vec<String>,
}

/// A successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginInfo {
    /// Who is logged in.
    pub id: UserId,
    /// Their name.
    pub name: String,
    /// Friends and groups.
    pub lists: Lists,
    /// Messages stored while offline, oldest first, each decoded like a live frame.
    pub offline: Vec<Incoming>,
    /// The token to RESUME this session with after a lost connection (extension).
    pub resume: Option<String>,
}

/// Where a message sits in the server's log (extension pushes and history carry it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logged {
    /// The message's id in the log: unique, growing.
    pub mid: i64,
    /// Its place in its conversation: 1, 2, 3, ...
    pub seq: i64,
}

/// A one-to-one chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// The sender.
    pub from: UserId,
    /// The recipient, when the frame names one (the original's frames do).
    pub to: Option<UserId>,
    /// The sender's name.
    pub name: String,
    /// Server time as sent.
    pub time: String,
    /// The text.
    pub msg: String,
    /// Its place in the log, when the server sent `mid` and `seq`.
    pub logged: Option<Logged>,
}

/// A group chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLine {
    /// The group.
    pub group: GroupId,
    /// The sender.
    pub from: UserId,
    /// The sender's name.
    pub name: String,
    /// Server time as sent.
    pub time: String,
    /// The text.
    pub msg: String,
    /// Its place in the log, when the server sent `mid` and `seq`.
    pub logged: Option<Logged>,
}

/// One page of a conversation's history (extension HISTORY_ACK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The messages, oldest first, each decoded like a push.
    pub messages: Vec<Incoming>,
    /// Whether the page was cut at its limit (there is more in its direction).
    pub more: bool,
}

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// LOGIN_MSG_ACK (2).
    LoginAck(Result<LoginInfo, ServerError>),
    /// REG_MSG_ACK (5): the new user id.
    RegAck(Result<UserId, ServerError>),
    /// ACK (11) for request `re`; a successful CREATE_GROUP carries the group id.
    Ack {
        /// The msgid of the request answered (0: a frame the server could not read).
        re: i64,
        /// Success (with a group id for CREATE_GROUP) or the error.
        outcome: Result<Option<GroupId>, ServerError>,
        /// A chat's client message id, echoed (extension).
        cid: Option<String>,
    },
    /// LIST_ACK (16).
    ListAck(Result<Lists, ServerError>),
    /// HISTORY_ACK (20).
    HistoryAck(Result<HistoryPage, ServerError>),
    /// FIND_USER_ACK (51): the user with that name.
    FoundUser(Result<Found, ServerError>),
    /// PRESENCE (53): a friend came online or went offline.
    Presence {
        /// Who.
        id: UserId,
        /// Their name.
        name: String,
        /// `online` or `offline`.
        state: String,
    },
    /// RECEIPT (55): `reader` read (or received) the conversation `peer` up to `seq`.
    Receipt {
        /// The conversation, as this user names it.
        peer: Peer,
        /// Who read it.
        reader: UserId,
        /// Up to here.
        seq: i64,
        /// `"what":"read"` (else `"recv"`, delivered).
        read: bool,
    },
    /// TYPING (58): `id` is typing (or paused) to this user, or in `group`.
    Typing {
        /// The group, for a group conversation.
        group: Option<GroupId>,
        /// Who types.
        id: UserId,
        /// `typing` (else `paused`).
        typing: bool,
    },
    /// READS_ACK (57): each member's read mark and cursor.
    Reads(Result<Vec<Reads>, ServerError>),
    /// A forwarded ONE_CHAT (6).
    Chat(ChatLine),
    /// A forwarded GROUP_CHAT (10).
    GroupChat(GroupLine),
    /// PING (12): answer with PONG at once.
    Ping,
    /// NOTICE (14): the server is about to close the connection.
    Notice(ServerError),
    /// EVENT (47): something changed (a friend request, a member removed, …), as sent.
    Event(Value),
    /// BLOCKED_ACK (33) or FRIEND_REQUESTS_ACK (39), as sent (`control.rs` shows them).
    Listing(Value),
    /// A JSON object with a msgid this client does not handle.
    Unknown {
        /// That msgid.
        msgid: i64,
    },
    /// A frame that could not be read.
    Malformed {
        /// What is wrong with it.
        reason: String,
        /// The start of the frame, for the user.
        excerpt: String,
    },
    /// A frame over the client's size limit, skipped.
    TooLong,
}

impl Incoming {
    /// Whether this frame is the server's answer to a request with msgid `sent`.
    /// An error ack with `re` 0 answers whatever was sent: the server could not
    /// even read the frame.
    pub fn answers(&self, sent: MsgId) -> bool {
        let re_zero_error = matches!(self, Incoming::Ack { re: 0, outcome: Err(_), .. });
        re_zero_error
            || match (sent, self) {
                (MsgId::Login, Incoming::LoginAck(_)) => true,
                (MsgId::Reg, Incoming::RegAck(_)) => true,
                (MsgId::List, Incoming::ListAck(_)) => true,
                (MsgId::History, Incoming::HistoryAck(_)) => true,
                (MsgId::Blocked, Incoming::Listing(v)) => v["msgid"] == MsgId::BlockedAck.number(),
                (MsgId::FriendRequests, Incoming::Listing(v)) => {
                    v["msgid"] == MsgId::FriendRequestsAck.number()
                }
                (MsgId::FindUser, Incoming::FoundUser(_)) => true,
                (MsgId::Reads, Incoming::Reads(_)) => true,
                (_, Incoming::Ack { re, .. }) => *re == i64::from(sent.number()),
                _ => false,
            }
    }
}

/// One member's marks in a READS_ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reads {
    /// The member.
    pub id: UserId,
    /// Read up to here (0: nothing marked).
    pub read: i64,
    /// Received up to here (0: nothing acknowledged).
    pub recv: i64,
}

/// A user found by name (FIND_USER_ACK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Their id.
    pub id: UserId,
    /// Their name.
    pub name: String,
    /// `online` or `offline`.
    pub state: String,
}

/// At most 80 characters of a frame, for reports.
fn excerpt(frame: &[u8]) -> String {
    const MAX: usize = 80;
    let text = String::from_utf8_lossy(frame);
    let mut out: String = text.chars().take(MAX).collect();
    if text.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    out
}

fn malformed(reason: impl Into<String>, frame: &[u8]) -> Incoming {
    Incoming::Malformed { reason: reason.into(), excerpt: excerpt(frame) }
}

/// An integral JSON number (`7` or `7.0`).
fn integer(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// Field access with reasons for the user.
struct Obj<'a>(&'a Map<String, Value>);

impl Obj<'_> {
    fn int(&self, key: &str) -> Result<i64, String> {
        match self.0.get(key) {
            None => Err(format!("missing `{key}`")),
            Some(v) => integer(v).ok_or_else(|| format!("`{key}` is not an integer")),
        }
    }

    fn id(&self, key: &str) -> Result<i32, String> {
        i32::try_from(self.int(key)?).map_err(|_| format!("`{key}` is out of range"))
    }

    fn string(&self, key: &str) -> Result<String, String> {
        match self.0.get(key) {
            None => Err(format!("missing `{key}`")),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("`{key}` is not a string")),
        }
    }

    /// An optional integer: absent, null or not an integer is `None`.
    fn opt_int(&self, key: &str) -> Option<i64> {
        self.0.get(key).and_then(integer)
    }

    /// `mid` and `seq`, when both are there.
    fn logged(&self) -> Option<Logged> {
        Some(Logged { mid: self.opt_int("mid")?, seq: self.opt_int("seq")? })
    }

    /// A string that may be missing (then empty); a number is shown as one.
    fn lenient(&self, key: &str) -> String {
        match self.0.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        }
    }

    /// `errno` 0 (or absent) is success; anything else an error with `errmsg`.
    fn error(&self) -> Result<(), ServerError> {
        let errno = self.0.get("errno").and_then(integer).unwrap_or(0);
        if errno == 0 {
            return Ok(());
        }
        let errmsg = match self.0.get("errmsg") {
            Some(Value::String(s)) => s.clone(),
            Some(v @ Value::Number(_)) => v.to_string(),
            _ => format!("error {errno}"),
        };
        Err(ServerError { errno, errmsg })
    }
}

/// Decodes one frame (without its delimiter).
pub fn decode(frame: &[u8]) -> Incoming {
    let value: Value = match serde_json::from_slice(frame) {
        Ok(v) => v,
        Err(e) => return malformed(format!("not JSON: {e}"), frame),
    };
    decode_value(&value, frame)
}

/// Decodes a parsed frame; `frame` is only used for the excerpt in reports.
fn decode_value(value: &Value, frame: &[u8]) -> Incoming {
    let Value::Object(map) = value else {
        return malformed("not a JSON object", frame);
    };
    let obj = Obj(map);
    let msgid = match obj.int("msgid") {
        Ok(n) => n,
        Err(reason) => return malformed(reason, frame),
    };
    let decoded = match MsgId::from_number(msgid) {
        Some(MsgId::LoginAck) => login_ack(&obj).map(Incoming::LoginAck),
        Some(MsgId::RegAck) => Ok(Incoming::RegAck(match obj.error() {
            Err(e) => Err(e),
            Ok(()) => Ok(UserId(match obj.id("id") {
                Ok(id) => id,
                Err(reason) => return malformed(format!("register reply: {reason}"), frame),
            })),
        })),
        Some(MsgId::Ack) => obj.int("re").map(|re| Incoming::Ack {
            re,
            outcome: obj.error().map(|()| obj.id("groupid").ok().map(GroupId)),
            cid: obj.string("cid").ok(),
        }),
        Some(MsgId::ListAck) => match obj.error() {
            Err(e) => Ok(Incoming::ListAck(Err(e))),
            Ok(()) => Ok(Incoming::ListAck(Ok(lists(&obj)))),
        },
        Some(MsgId::HistoryAck) => match obj.error() {
            Err(e) => Ok(Incoming::HistoryAck(Err(e))),
            Ok(()) => Ok(Incoming::HistoryAck(Ok(HistoryPage {
                messages: array(&obj, "messages").iter().map(offline_item).collect(),
                more: matches!(obj.0.get("more"), Some(Value::Bool(true))),
            }))),
        },
        Some(MsgId::FindUserAck) => match obj.error() {
            Err(e) => Ok(Incoming::FoundUser(Err(e))),
            Ok(()) => obj.id("id").map(|id| {
                Incoming::FoundUser(Ok(Found {
                    id: UserId(id),
                    name: obj.lenient("name"),
                    state: obj.lenient("state"),
                }))
            }),
        },
        Some(MsgId::Presence) => obj.id("id").map(|id| Incoming::Presence {
            id: UserId(id),
            name: obj.lenient("name"),
            state: obj.lenient("state"),
        }),
        Some(MsgId::Receipt) => obj.id("reader").and_then(|reader| {
            Ok(Incoming::Receipt {
                peer: conversation(&obj)?,
                reader: UserId(reader),
                seq: obj.int("seq")?,
                read: obj.lenient("what") != "recv",
            })
        }),
        Some(MsgId::Typing) => obj.id("id").map(|id| Incoming::Typing {
            group: obj.id("groupid").ok().map(GroupId),
            id: UserId(id),
            typing: obj.lenient("state") != "paused",
        }),
        Some(MsgId::ReadsAck) => match obj.error() {
            Err(e) => Ok(Incoming::Reads(Err(e))),
            Ok(()) => Ok(Incoming::Reads(Ok(array(&obj, "reads")
                .iter()
                .filter_map(|item| {
                    let map = item.as_object()?;
                    let o = Obj(map);
                    Some(Reads {
                        id: UserId(o.id("id").ok()?),
                        read: o.opt_int("read").unwrap_or(0),
                        recv: o.opt_int("recv").unwrap_or(0),
                    })
                })
                .collect()))),
        },
        Some(MsgId::OneChat) => chat(&obj).map(Incoming::Chat),
        Some(MsgId::GroupChat) => group_chat(&obj).map(Incoming::GroupChat),
        Some(MsgId::Ping) => Ok(Incoming::Ping),
        Some(MsgId::Event) => Ok(Incoming::Event(value.clone())),
        Some(MsgId::BlockedAck | MsgId::FriendRequestsAck) => Ok(Incoming::Listing(value.clone())),
        Some(MsgId::Notice) => Ok(Incoming::Notice(
            obj.error().err().unwrap_or(ServerError { errno: 0, errmsg: obj.lenient("errmsg") }),
        )),
        _ => Ok(Incoming::Unknown { msgid }),
    };
    decoded.unwrap_or_else(|reason| {
        let what = match msgid {
            2 => "login reply",
            6 => "chat message",
            10 => "group message",
            11 => "reply",
            20 => "history reply",
            _ => "message",
        };
        malformed(format!("{what}: {reason}"), frame)
    })
}

/// The conversation a frame names: `groupid` (a group) or `id` (a user).
fn conversation(obj: &Obj<'_>) -> Result<Peer, String> {
    match obj.id("groupid") {
        Ok(group) => Ok(Peer::Group(GroupId(group))),
        Err(_) => obj.id("id").map(|id| Peer::User(UserId(id))),
    }
}

fn chat(obj: &Obj<'_>) -> Result<ChatLine, String> {
    Ok(ChatLine {
        from: UserId(obj.id("id")?),
        to: obj.id("to").ok().map(UserId),
        msg: obj.string("msg")?,
        name: obj.lenient("name"),
        time: obj.lenient("time"),
        logged: obj.logged(),
    })
}

fn group_chat(obj: &Obj<'_>) -> Result<GroupLine, String> {
    Ok(GroupLine {
        group: GroupId(obj.id("groupid")?),
        from: UserId(obj.id("id")?),
        msg: obj.string("msg")?,
        name: obj.lenient("name"),
        time: obj.lenient("time"),
        logged: obj.logged(),
    })
}

fn login_ack(obj: &Obj<'_>) -> Result<Result<LoginInfo, ServerError>, String> {
    if let Err(e) = obj.error() {
        return Ok(Err(e));
    }
    let offline = match obj.0.get("offlinemsg") {
        Some(Value::Array(items)) => items.iter().map(offline_item).collect(),
        _ => Vec::new(),
    };
    Ok(Ok(LoginInfo {
        id: UserId(obj.id("id")?),
        name: obj.lenient("name"),
        lists: lists(obj),
        offline,
        resume: obj.string("resume").ok().filter(|token| !token.is_empty()),
    }))
}

/// One stored message: a forwarded frame as an object, or its text as a string.
fn offline_item(item: &Value) -> Incoming {
    match item {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(v) => decode_value(&v, text.as_bytes()),
            Err(_) => malformed("stored message is not JSON", text.as_bytes()),
        },
        other => decode_value(other, other.to_string().as_bytes()),
    }
}

/// A list element: an object, or (original form) a string holding one.
fn entry(item: &Value) -> Result<Map<String, Value>, String> {
    match item {
        Value::Object(map) => Ok(map.clone()),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(format!("not an object: {}", excerpt(text.as_bytes()))),
        },
        other => Err(format!("not an object: {}", excerpt(other.to_string().as_bytes()))),
    }
}

fn array<'a>(obj: &Obj<'a>, key: &str) -> &'a [Value] {
    match obj.0.get(key) {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

fn lists(obj: &Obj<'_>) -> Lists {
    let mut lists = Lists::default();
    for item in array(obj, "friends") {
        match entry(item).and_then(|m| friend(&Obj(&m))) {
            Ok(f) => lists.friends.push(f),
            Err(reason) => lists.unreadable.push(format!("friend: {reason}")),
        }
    }
    for item in array(obj, "groups") {
        match entry(item).and_then(|m| group(&Obj(&m), &mut lists.unreadable)) {
            Ok(g) => lists.groups.push(g),
            Err(reason) => lists.unreadable.push(format!("group: {reason}")),
        }
    }
    for item in array(obj, "unread") {
        match entry(item).and_then(|m| unread(&Obj(&m))) {
            Ok(u) => lists.unread.push(u),
            Err(reason) => lists.unreadable.push(format!("unread count: {reason}")),
        }
    }
    lists
}

/// `{"count":3,"id":2}` or `{"count":1,"groupid":5}`.
fn unread(obj: &Obj<'_>) -> Result<Unread, String> {
    let count = u64::try_from(obj.int("count")?).map_err(|_| "`count` is negative".to_owned())?;
    let peer = match (obj.0.contains_key("id"), obj.0.contains_key("groupid")) {
        (true, false) => Peer::User(UserId(obj.id("id")?)),
        (false, true) => Peer::Group(GroupId(obj.id("groupid")?)),
        _ => return Err("names neither one user nor one group".to_owned()),
    };
    Ok(Unread { peer, count })
}

fn friend(obj: &Obj<'_>) -> Result<Friend, String> {
    Ok(Friend { id: UserId(obj.id("id")?), name: obj.lenient("name"), state: obj.lenient("state") })
}

fn group(obj: &Obj<'_>, unreadable: &mut Vec<String>) -> Result<Group, String> {
    let id = GroupId(obj.id("id")?);
    let mut members = Vec::new();
    for item in array(obj, "users") {
        let member = entry(item).and_then(|m| {
            let m = Obj(&m);
            Ok(Member {
                id: UserId(m.id("id")?),
                name: m.lenient("name"),
                state: m.lenient("state"),
                role: m.lenient("role"),
            })
        });
        match member {
            Ok(m) => members.push(m),
            Err(reason) => unreadable.push(format!("member of group {id}: {reason}")),
        }
    }
    Ok(Group { id, name: obj.lenient("groupname"), desc: obj.lenient("groupdesc"), members })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Incoming {
        decode(s.as_bytes())
    }

    fn reason(i: Incoming) -> String {
        match i {
            Incoming::Malformed { reason, .. } => reason,
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    const EXT_LOGIN: &str = r#"{"errno":0,"friends":[{"id":2,"name":"b","state":"online"}],"groups":[{"groupdesc":"d","groupname":"g","id":3,"users":[{"id":1,"name":"a","role":"creator","state":"online"}]}],"id":1,"msgid":2,"name":"a","offlinemsg":[{"id":2,"msg":"x","msgid":6,"name":"b","time":"t","to":1},"not json"]}"#;
    const ORIGINAL_LOGIN: &str = r#"{"errno":0,"friends":["{\"id\":2,\"name\":\"b\",\"state\":\"online\"}"],"groups":["{\"groupdesc\":\"d\",\"groupname\":\"g\",\"id\":3,\"users\":[\"{\\\"id\\\":1,\\\"name\\\":\\\"a\\\",\\\"role\\\":\\\"creator\\\",\\\"state\\\":\\\"online\\\"}\"]}"],"id":1,"msgid":2,"name":"a","offlinemsg":["{\"id\":2,\"msg\":\"x\",\"msgid\":6,\"name\":\"b\",\"time\":\"t\",\"to\":1}"]}"#;

    fn expected_lists() -> Lists {
        Lists {
            friends: vec![Friend { id: UserId(2), name: "b".into(), state: "online".into() }],
            groups: vec![Group {
                id: GroupId(3),
                name: "g".into(),
                desc: "d".into(),
                members: vec![Member {
                    id: UserId(1),
                    name: "a".into(),
                    state: "online".into(),
                    role: "creator".into(),
                }],
            }],
            unread: vec![],
            unreadable: vec![],
        }
    }

    fn chat_x() -> Incoming {
        Incoming::Chat(ChatLine {
            from: UserId(2),
            to: Some(UserId(1)),
            name: "b".into(),
            time: "t".into(),
            msg: "x".into(),
            logged: None,
        })
    }

    #[test]
    fn login_ack_both_forms() {
        let Incoming::LoginAck(Ok(ext)) = d(EXT_LOGIN) else { panic!("ext form") };
        assert_eq!(ext.id, UserId(1));
        assert_eq!(ext.name, "a");
        assert_eq!(ext.lists, expected_lists());
        assert_eq!(ext.offline.len(), 2);
        assert_eq!(ext.offline[0], chat_x());
        assert!(reason(ext.offline[1].clone()).contains("stored message is not JSON"));

        let Incoming::LoginAck(Ok(orig)) = d(ORIGINAL_LOGIN) else { panic!("original form") };
        assert_eq!(orig.lists, expected_lists());
        assert_eq!(orig.offline, vec![chat_x()]);

        // The original leaves out empty lists.
        let Incoming::LoginAck(Ok(bare)) = d(r#"{"errno":0,"id":1,"msgid":2,"name":"a"}"#) else { panic!() };
        assert_eq!(bare.lists, Lists::default());
        assert!(bare.offline.is_empty());
    }

    #[test]
    fn login_ack_with_unreadable_entries_keeps_the_rest() {
        let Incoming::LoginAck(Ok(info)) = d(
            r#"{"errno":0,"friends":[5,{"name":"x"},{"id":2,"name":"b","state":"online"}],"groups":[{"id":3,"users":["junk"]}],"id":1,"msgid":2,"name":"a"}"#,
        ) else {
            panic!()
        };
        assert_eq!(info.lists.friends.len(), 1);
        assert_eq!(info.lists.groups.len(), 1);
        assert_eq!(info.lists.unreadable.len(), 3, "{:?}", info.lists.unreadable);
    }

    #[test]
    fn errors_on_every_ack() {
        assert_eq!(
            d(r#"{"errmsg":"id or password is invalid!","errno":1,"msgid":2}"#),
            Incoming::LoginAck(Err(ServerError { errno: 1, errmsg: "id or password is invalid!".into() }))
        );
        assert_eq!(
            d(r#"{"errmsg":"注册失败!","errno":1,"msgid":5}"#),
            Incoming::RegAck(Err(ServerError { errno: 1, errmsg: "注册失败!".into() }))
        );
        assert_eq!(d(r#"{"errno":0,"id":7,"msgid":5}"#), Incoming::RegAck(Ok(UserId(7))));
        assert_eq!(
            d(r#"{"errmsg":"no such user","errno":5,"msgid":11,"re":6}"#),
            Incoming::Ack {
                re: 6,
                outcome: Err(ServerError { errno: 5, errmsg: "no such user".into() }),
                cid: None
            }
        );
        assert_eq!(
            d(r#"{"errno":0,"msgid":11,"re":7}"#),
            Incoming::Ack { re: 7, outcome: Ok(None), cid: None }
        );
        assert_eq!(
            d(r#"{"errno":0,"groupid":4,"msgid":11,"re":8}"#),
            Incoming::Ack { re: 8, outcome: Ok(Some(GroupId(4))), cid: None }
        );
        assert_eq!(
            d(r#"{"errno":9,"msgid":11,"re":6}"#),
            Incoming::Ack {
                re: 6,
                outcome: Err(ServerError { errno: 9, errmsg: "error 9".into() }),
                cid: None
            }
        );
        assert_eq!(
            d(r#"{"errmsg":"bye","errno":15,"msgid":14}"#),
            Incoming::Notice(ServerError { errno: 15, errmsg: "bye".into() })
        );
        assert_eq!(
            d(r#"{"errmsg":"x","errno":3,"msgid":16}"#),
            Incoming::ListAck(Err(ServerError { errno: 3, errmsg: "x".into() }))
        );
    }

    #[test]
    fn list_ack() {
        let text = r#"{"errno":0,"friends":[{"id":2,"name":"b","state":"online"}],"groups":[{"groupdesc":"d","groupname":"g","id":3,"users":[{"id":1,"name":"a","role":"creator","state":"online"}]}],"msgid":16}"#;
        assert_eq!(d(text), Incoming::ListAck(Ok(expected_lists())));
        assert_eq!(d(r#"{"errno":0,"msgid":16}"#), Incoming::ListAck(Ok(Lists::default())));
    }

    #[test]
    fn chats() {
        assert_eq!(
            d(r#"{"id":1,"msg":"hi","msgid":6,"name":"a","time":"2024-01-01 12:00:00","to":2}"#),
            Incoming::Chat(ChatLine {
                from: UserId(1),
                to: Some(UserId(2)),
                name: "a".into(),
                time: "2024-01-01 12:00:00".into(),
                msg: "hi".into(),
                logged: None,
            })
        );
        assert_eq!(
            d(r#"{"groupid":3,"id":1,"msg":"hi","msgid":10,"name":"a","time":"t"}"#),
            Incoming::GroupChat(GroupLine {
                group: GroupId(3),
                from: UserId(1),
                name: "a".into(),
                time: "t".into(),
                msg: "hi".into(),
                logged: None,
            })
        );
        // The original's client aborted on these; we name what is missing.
        assert_eq!(reason(d(r#"{"id":1,"msgid":6}"#)), "chat message: missing `msg`");
        assert_eq!(reason(d(r#"{"msg":"x","msgid":6}"#)), "chat message: missing `id`");
        assert_eq!(reason(d(r#"{"id":1,"msg":"x","msgid":10}"#)), "group message: missing `groupid`");
        assert_eq!(reason(d(r#"{"id":"1","msg":"x","msgid":6}"#)), "chat message: `id` is not an integer");
        // Missing name and time are shown empty rather than dropping the text.
        assert!(matches!(d(r#"{"id":1,"msg":"x","msgid":6}"#), Incoming::Chat(_)));
    }

    #[test]
    fn garbage_never_panics() {
        assert!(reason(d("hello")).starts_with("not JSON"));
        assert!(reason(d("{")).starts_with("not JSON"));
        assert_eq!(reason(d("[1,2]")), "not a JSON object");
        assert_eq!(reason(d("42")), "not a JSON object");
        assert_eq!(reason(d("{}")), "missing `msgid`");
        assert_eq!(reason(d(r#"{"msgid":"2"}"#)), "`msgid` is not an integer");
        assert_eq!(reason(d(r#"{"msgid":11}"#)), "reply: missing `re`");
        assert_eq!(reason(d(r#"{"errno":0,"msgid":2}"#)), "login reply: missing `id`");
        assert_eq!(d(r#"{"msgid":99}"#), Incoming::Unknown { msgid: 99 });
        assert_eq!(d(r#"{"msgid":1}"#), Incoming::Unknown { msgid: 1 });
        assert_eq!(d(r#"{"msgid":12}"#), Incoming::Ping);
        assert_eq!(d(r#"{"msgid":6.0,"id":1.0,"msg":"m"}"#).clone(), {
            Incoming::Chat(ChatLine {
                from: UserId(1),
                to: None,
                name: String::new(),
                time: String::new(),
                msg: "m".into(),
                logged: None,
            })
        });
        assert!(matches!(d(&"[".repeat(100_000)), Incoming::Malformed { .. }));
        assert!(matches!(decode(&[0xff, 0xfe, b'{']), Incoming::Malformed { .. }));
        let long = reason(d(&format!("x{}", "y".repeat(10_000))));
        assert!(long.len() < 200);
        let Incoming::Malformed { excerpt, .. } = d(&"z".repeat(1000)) else { panic!() };
        assert_eq!(excerpt.chars().count(), 83);
    }

    #[test]
    fn which_frame_answers_which_request() {
        let ack = |re| Incoming::Ack { re, outcome: Ok(None), cid: None };
        let err0 =
            Incoming::Ack { re: 0, outcome: Err(ServerError { errno: 4, errmsg: "bad".into() }), cid: None };
        assert!(ack(6).answers(MsgId::OneChat));
        assert!(!ack(7).answers(MsgId::OneChat));
        assert!(!ack(0).answers(MsgId::OneChat), "a success with re 0 answers nothing");
        assert!(err0.answers(MsgId::OneChat));
        assert!(err0.answers(MsgId::Login));
        assert!(d(EXT_LOGIN).answers(MsgId::Login));
        assert!(!d(EXT_LOGIN).answers(MsgId::Reg));
        assert!(Incoming::RegAck(Ok(UserId(1))).answers(MsgId::Reg));
        assert!(Incoming::ListAck(Ok(Lists::default())).answers(MsgId::List));
        assert!(ack(15).answers(MsgId::List));
        assert!(ack(1).answers(MsgId::Login));
        assert!(ack(3).answers(MsgId::Loginout));
        assert!(!chat_x().answers(MsgId::OneChat));
        assert!(
            Incoming::HistoryAck(Ok(HistoryPage { messages: vec![], more: false })).answers(MsgId::History)
        );
        assert!(ack(19).answers(MsgId::History));
        assert!(
            !Incoming::HistoryAck(Ok(HistoryPage { messages: vec![], more: false })).answers(MsgId::List)
        );
    }

    #[test]
    fn the_delivery_extension() {
        // A push with its place in the log.
        let Incoming::Chat(c) =
            d(r#"{"id":1,"mid":1042,"msg":"hi","msgid":6,"name":"a","seq":9,"time":"t","to":2}"#)
        else {
            panic!("a chat")
        };
        assert_eq!((c.to, c.logged), (Some(UserId(2)), Some(Logged { mid: 1042, seq: 9 })));
        let Incoming::GroupChat(g) =
            d(r#"{"groupid":3,"id":1,"mid":1043,"msg":"hi all","msgid":10,"name":"a","seq":4,"time":"t"}"#)
        else {
            panic!("a group chat")
        };
        assert_eq!(g.logged, Some(Logged { mid: 1043, seq: 4 }));
        // Half of it, or a mistyped one, is no place at all: shown, never deduplicated.
        let Incoming::Chat(c) = d(r#"{"id":1,"mid":5,"msg":"x","msgid":6,"seq":"9"}"#) else { panic!() };
        assert_eq!(c.logged, None);

        // The ack of a stored chat echoes the cid.
        assert_eq!(
            d(r#"{"cid":"c-17","errno":0,"mid":1042,"msgid":11,"re":6,"seq":9}"#),
            Incoming::Ack { re: 6, outcome: Ok(None), cid: Some("c-17".into()) }
        );

        // The extension login ack: the token and the unread counts.
        let Incoming::LoginAck(Ok(info)) = d(
            r#"{"errno":0,"friends":[],"groups":[],"id":1,"msgid":2,"name":"a","offlinemsg":[],"resume":"9f0c","unread":[{"count":3,"id":2},{"count":1,"groupid":5},{"count":-1,"id":4},{"count":1}]}"#,
        ) else {
            panic!("a login")
        };
        assert_eq!(info.resume.as_deref(), Some("9f0c"));
        assert_eq!(
            info.lists.unread,
            vec![
                Unread { peer: Peer::User(UserId(2)), count: 3 },
                Unread { peer: Peer::Group(GroupId(5)), count: 1 }
            ]
        );
        assert_eq!(info.lists.unreadable.len(), 2, "{:?}", info.lists.unreadable);
        let Incoming::LoginAck(Ok(bare)) = d(r#"{"errno":0,"id":1,"msgid":2,"name":"a","resume":""}"#) else {
            panic!()
        };
        assert_eq!(bare.resume, None, "an empty token is no token");

        // A history page, its messages decoded like pushes.
        let Incoming::HistoryAck(Ok(page)) = d(
            r#"{"errno":0,"messages":[{"id":1,"mid":1042,"msg":"hi","msgid":6,"name":"a","seq":9,"time":"t","to":2},7],"more":true,"msgid":20}"#,
        ) else {
            panic!("a history page")
        };
        assert!(page.more);
        assert_eq!(page.messages.len(), 2);
        assert!(
            matches!(&page.messages[0], Incoming::Chat(c) if c.logged == Some(Logged { mid: 1042, seq: 9 }))
        );
        assert!(matches!(page.messages[1], Incoming::Malformed { .. }));
        assert_eq!(
            d(r#"{"errmsg":"not a member","errno":7,"msgid":20}"#),
            Incoming::HistoryAck(Err(ServerError { errno: 7, errmsg: "not a member".into() }))
        );
        assert_eq!(
            d(r#"{"errno":0,"msgid":20}"#),
            Incoming::HistoryAck(Ok(HistoryPage { messages: vec![], more: false }))
        );
    }
}
