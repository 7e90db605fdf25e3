//! Decoding one inbound frame into a typed [`Request`].
//!
//! The decoder checks shapes and types only; whether a request is allowed is
//! the service's business. Fields a client sends about itself (`id`, `name`,
//! `time` in chats) are accepted and ignored: the server knows who is talking.

use serde_json::{Map, Value};

use crate::{GroupId, MAX_ACKS, MAX_CID_BYTES, MsgId, Peer, UserId};

/// One request from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// LOGIN (1). `ext` opts the connection in to the protocol extension.
    Login { id: UserId, password: String, ext: bool },
    /// Extension: LOGIN naming the account by its exact name instead of its id.
    LoginByName { name: String, password: String, ext: bool },
    /// Extension: look a user up by exact name.
    FindUser { name: String },
    /// Extension: end every session of the user, everywhere, and their resume tokens.
    LogoutAll,
    /// LOGINOUT (3). The `id` the client sends is ignored.
    Loginout,
    /// REG (4). `ext` opts the connection in to the protocol extension.
    Register { name: String, password: String, ext: bool },
    /// ONE_CHAT (6). `cid`: the client's own id for the message (extension), echoed in its ack.
    OneChat { to: UserId, msg: String, cid: Option<String> },
    /// ADD_FRIEND (7).
    AddFriend { friend: UserId },
    /// CREATE_GROUP (8).
    CreateGroup { name: String, desc: String },
    /// ADD_GROUP (9).
    AddGroup { group: GroupId },
    /// GROUP_CHAT (10).
    GroupChat { group: GroupId, msg: String, cid: Option<String> },
    /// PONG (13), an extension client's answer to a ping.
    Pong,
    /// LIST (15): the friend and group lists again.
    List,
    /// RESUME (17): log in again with a resume token, acknowledging what the client has.
    Resume { token: String, acks: Vec<(Peer, i64)> },
    /// RECEIVED (18): cumulative acknowledgements, the highest seq received per conversation.
    Received { acks: Vec<(Peer, i64)> },
    /// HISTORY (19): a page of one conversation.
    History { peer: Peer, from: HistoryFrom, limit: Option<u32> },
    /// BLOCK (30): block `user` (`"id"`).
    Block { user: UserId },
    /// UNBLOCK (31).
    Unblock { user: UserId },
    /// BLOCKED (32): the blocked users and the "who may write to me" setting.
    Blocked,
    /// SET_WRITERS (34): `"writers":"friends"` (true) or `"anyone"` (false).
    SetWriters { friends_only: bool },
    /// FRIEND_REQUEST (35): ask `user` to be friends.
    FriendRequest { user: UserId },
    /// FRIEND_ANSWER (36): accept or decline `user`'s request.
    FriendAnswer { user: UserId, accept: bool },
    /// REMOVE_FRIEND (37).
    RemoveFriend { user: UserId },
    /// FRIEND_REQUESTS (38): the pending requests, both ways.
    FriendRequests,
    /// LEAVE_GROUP (40).
    LeaveGroup { group: GroupId },
    /// KICK (41): remove `user` from `group`.
    Kick { group: GroupId, user: UserId },
    /// EDIT_GROUP (42): a new name and/or description (at least one).
    EditGroup { group: GroupId, name: Option<String>, desc: Option<String> },
    /// DELETE_GROUP (43).
    DeleteGroup { group: GroupId },
    /// SET_ADMIN (44): name `user` an admin of `group` (`admin`), or take the rank away.
    SetAdmin { group: GroupId, user: UserId, admin: bool },
    /// CHANGE_PASSWORD (45): the old password and the new one.
    ChangePassword { old: String, new: String },
    /// DELETE_ACCOUNT (46): the password, again.
    DeleteAccount { password: String },
    /// MARK_READ (54): the user has read `peer`'s conversation up to `seq`.
    MarkRead { peer: Peer, seq: i64 },
    /// READS (56): each member's read mark and cursor in `peer`'s conversation.
    Reads { peer: Peer },
    /// TYPING (58): the user is typing (`true`) or paused in `peer`'s conversation. Never answered.
    Typing { peer: Peer, typing: bool },
}

/// Where a HISTORY page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryFrom {
    /// The newest messages.
    Latest,
    /// Messages older than this message id.
    Before(i64),
    /// Messages newer than this message id.
    After(i64),
}

impl Request {
    /// The msgid this request came with.
    pub fn msgid(&self) -> MsgId {
        match self {
            Request::Login { .. } | Request::LoginByName { .. } => MsgId::Login,
            Request::FindUser { .. } => MsgId::FindUser,
            Request::LogoutAll => MsgId::LogoutAll,
            Request::Loginout => MsgId::Loginout,
            Request::Register { .. } => MsgId::Reg,
            Request::OneChat { .. } => MsgId::OneChat,
            Request::AddFriend { .. } => MsgId::AddFriend,
            Request::CreateGroup { .. } => MsgId::CreateGroup,
            Request::AddGroup { .. } => MsgId::AddGroup,
            Request::GroupChat { .. } => MsgId::GroupChat,
            Request::Pong => MsgId::Pong,
            Request::List => MsgId::List,
            Request::Resume { .. } => MsgId::Resume,
            Request::Received { .. } => MsgId::Received,
            Request::History { .. } => MsgId::History,
            Request::Block { .. } => MsgId::Block,
            Request::Unblock { .. } => MsgId::Unblock,
            Request::Blocked => MsgId::Blocked,
            Request::SetWriters { .. } => MsgId::SetWriters,
            Request::FriendRequest { .. } => MsgId::FriendRequest,
            Request::FriendAnswer { .. } => MsgId::FriendAnswer,
            Request::RemoveFriend { .. } => MsgId::RemoveFriend,
            Request::FriendRequests => MsgId::FriendRequests,
            Request::LeaveGroup { .. } => MsgId::LeaveGroup,
            Request::Kick { .. } => MsgId::Kick,
            Request::EditGroup { .. } => MsgId::EditGroup,
            Request::DeleteGroup { .. } => MsgId::DeleteGroup,
            Request::SetAdmin { .. } => MsgId::SetAdmin,
            Request::ChangePassword { .. } => MsgId::ChangePassword,
            Request::DeleteAccount { .. } => MsgId::DeleteAccount,
            Request::MarkRead { .. } => MsgId::MarkRead,
            Request::Reads { .. } => MsgId::Reads,
            Request::Typing { .. } => MsgId::Typing,
        }
    }
}

/// Why a frame is not a request. `msgid` is set when the frame named a msgid,
/// so that the error can be answered on that request's ack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DecodeError {
    /// The request's msgid, when the frame got that far.
    pub msgid: Option<i64>,
    /// What is wrong, readable by a person.
    pub reason: String,
}

impl DecodeError {
    fn new(msgid: Option<i64>, reason: impl Into<String>) -> Self {
        DecodeError { msgid, reason: reason.into() }
    }
}

/// Decodes one frame (without its delimiter) into a request.
pub fn decode_request(frame: &[u8]) -> Result<Request, DecodeError> {
    let value: Value =
        serde_json::from_slice(frame).map_err(|e| DecodeError::new(None, format!("not JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(DecodeError::new(None, "a request must be a JSON object"));
    };
    let number = match obj.get("msgid") {
        None => return Err(DecodeError::new(None, "missing field `msgid`")),
        Some(v) => integer(v).ok_or_else(|| DecodeError::new(None, "`msgid` must be an integer"))?,
    };
    let fields = Fields { obj: &obj, msgid: number };
    let request = match MsgId::from_number(number) {
        // The original client always sends `id`; a `name` without an `id` is the extension's.
        Some(MsgId::Login) if !obj.contains_key("id") && obj.contains_key("name") => Request::LoginByName {
            name: fields.string("name")?,
            password: fields.string("password")?,
            ext: fields.ext(),
        },
        Some(MsgId::Login) => Request::Login {
            id: UserId(fields.id("id")?),
            password: fields.string("password")?,
            ext: fields.ext(),
        },
        Some(MsgId::FindUser) => Request::FindUser { name: fields.string("name")? },
        Some(MsgId::LogoutAll) => Request::LogoutAll,
        Some(MsgId::Loginout) => Request::Loginout,
        Some(MsgId::Reg) => Request::Register {
            name: fields.string("name")?,
            password: fields.string("password")?,
            ext: fields.ext(),
        },
        Some(MsgId::OneChat) => {
            Request::OneChat { to: UserId(fields.id("to")?), msg: fields.string("msg")?, cid: fields.cid()? }
        }
        Some(MsgId::AddFriend) => Request::AddFriend { friend: UserId(fields.id("friendid")?) },
        Some(MsgId::CreateGroup) => Request::CreateGroup {
            name: fields.string("groupname")?,
            desc: fields.optional_string("groupdesc")?,
        },
        Some(MsgId::AddGroup) => Request::AddGroup { group: GroupId(fields.id("groupid")?) },
        Some(MsgId::GroupChat) => Request::GroupChat {
            group: GroupId(fields.id("groupid")?),
            msg: fields.string("msg")?,
            cid: fields.cid()?,
        },
        Some(MsgId::Pong) => Request::Pong,
        Some(MsgId::List) => Request::List,
        Some(MsgId::Resume) => Request::Resume { token: fields.string("token")?, acks: fields.acks()? },
        Some(MsgId::Received) => Request::Received { acks: fields.acks()? },
        Some(MsgId::History) => {
            let from = match (fields.optional_i64("before")?, fields.optional_i64("after")?) {
                (None, None) => HistoryFrom::Latest,
                (Some(before), None) => HistoryFrom::Before(before),
                (None, Some(after)) => HistoryFrom::After(after),
                (Some(_), Some(_)) => return Err(fields.err("give `before` or `after`, not both".into())),
            };
            let limit =
                fields.optional_i64("limit")?.map(|n| u32::try_from(n.clamp(0, 1 << 20)).unwrap_or(0));
            Request::History { peer: peer(fields.obj, &fields)?, from, limit }
        }
        Some(MsgId::Block) => Request::Block { user: UserId(fields.id("id")?) },
        Some(MsgId::Unblock) => Request::Unblock { user: UserId(fields.id("id")?) },
        Some(MsgId::Blocked) => Request::Blocked,
        Some(MsgId::SetWriters) => match fields.string("writers")?.as_str() {
            "anyone" => Request::SetWriters { friends_only: false },
            "friends" => Request::SetWriters { friends_only: true },
            _ => return Err(fields.err("`writers` must be \"anyone\" or \"friends\"".into())),
        },
        Some(MsgId::FriendRequest) => Request::FriendRequest { user: UserId(fields.id("id")?) },
        Some(MsgId::FriendAnswer) => {
            Request::FriendAnswer { user: UserId(fields.id("id")?), accept: fields.flag("accept")? }
        }
        Some(MsgId::RemoveFriend) => Request::RemoveFriend { user: UserId(fields.id("id")?) },
        Some(MsgId::FriendRequests) => Request::FriendRequests,
        Some(MsgId::LeaveGroup) => Request::LeaveGroup { group: GroupId(fields.id("groupid")?) },
        Some(MsgId::Kick) => {
            Request::Kick { group: GroupId(fields.id("groupid")?), user: UserId(fields.id("id")?) }
        }
        Some(MsgId::EditGroup) => {
            let name = fields.maybe_string("groupname")?;
            let desc = fields.maybe_string("groupdesc")?;
            if name.is_none() && desc.is_none() {
                return Err(fields.err("give `groupname`, `groupdesc` or both".into()));
            }
            Request::EditGroup { group: GroupId(fields.id("groupid")?), name, desc }
        }
        Some(MsgId::DeleteGroup) => Request::DeleteGroup { group: GroupId(fields.id("groupid")?) },
        Some(MsgId::SetAdmin) => Request::SetAdmin {
            group: GroupId(fields.id("groupid")?),
            user: UserId(fields.id("id")?),
            admin: fields.flag("admin")?,
        },
        Some(MsgId::ChangePassword) => {
            Request::ChangePassword { old: fields.string("password")?, new: fields.string("newpassword")? }
        }
        Some(MsgId::DeleteAccount) => Request::DeleteAccount { password: fields.string("password")? },
        Some(MsgId::MarkRead) => {
            let seq = fields.optional_i64("seq")?.ok_or_else(|| fields.err("missing field `seq`".into()))?;
            Request::MarkRead { peer: peer(fields.obj, &fields)?, seq }
        }
        Some(MsgId::Reads) => Request::Reads { peer: peer(fields.obj, &fields)? },
        Some(MsgId::Typing) => {
            let typing = match fields.maybe_string("state")?.as_deref() {
                None | Some("typing") => true,
                Some("paused") => false,
                Some(_) => return Err(fields.err("`state` must be \"typing\" or \"paused\"".into())),
            };
            Request::Typing { peer: peer(fields.obj, &fields)?, typing }
        }
        _ => return Err(DecodeError::new(Some(number), format!("msgid {number} is not a request"))),
    };
    Ok(request)
}

/// The conversation an object names: `{"id":N}` (a user) or `{"groupid":N}` (a group).
fn peer(obj: &Map<String, Value>, outer: &Fields<'_>) -> Result<Peer, DecodeError> {
    let fields = Fields { obj, msgid: outer.msgid };
    match (obj.contains_key("id"), obj.contains_key("groupid")) {
        (true, false) => Ok(Peer::User(UserId(fields.id("id")?))),
        (false, true) => Ok(Peer::Group(GroupId(fields.id("groupid")?))),
        _ => Err(outer.err("name a conversation with `id` (a user) or `groupid` (a group)".into())),
    }
}

/// An integral JSON number: `7` and `7.0` are, `7.5` and `"7"` are not.
fn integer(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    // Exactly representable, integral, and inside i64: the original accepted `1.0`.
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

struct Fields<'a> {
    obj: &'a Map<String, Value>,
    msgid: i64,
}

impl Fields<'_> {
    fn err(&self, reason: String) -> DecodeError {
        DecodeError::new(Some(self.msgid), reason)
    }

    fn id(&self, key: &str) -> Result<i32, DecodeError> {
        let v = self.obj.get(key).ok_or_else(|| self.err(format!("missing field `{key}`")))?;
        let n = integer(v).ok_or_else(|| self.err(format!("`{key}` must be an integer")))?;
        i32::try_from(n).map_err(|_| self.err(format!("`{key}` is out of range")))
    }

    fn string(&self, key: &str) -> Result<String, DecodeError> {
        match self.obj.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(self.err(format!("`{key}` must be a string"))),
            None => Err(self.err(format!("missing field `{key}`"))),
        }
    }

    fn optional_string(&self, key: &str) -> Result<String, DecodeError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(_) => self.string(key),
        }
    }

    /// A string that may be absent (`None`), but is a string when present.
    fn maybe_string(&self, key: &str) -> Result<Option<String>, DecodeError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.string(key).map(Some),
        }
    }

    /// A required yes/no: `true`/`false`, or an integer (non-zero is yes).
    fn flag(&self, key: &str) -> Result<bool, DecodeError> {
        match self.obj.get(key) {
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => {
                integer(v).map(|n| n != 0).ok_or_else(|| self.err(format!("`{key}` must be true or false")))
            }
            None => Err(self.err(format!("missing field `{key}`"))),
        }
    }

    fn optional_i64(&self, key: &str) -> Result<Option<i64>, DecodeError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => integer(v).map(Some).ok_or_else(|| self.err(format!("`{key}` must be an integer"))),
        }
    }

    /// A chat's optional client message id: a string of 1 to [`MAX_CID_BYTES`] bytes.
    fn cid(&self) -> Result<Option<String>, DecodeError> {
        match self.obj.get("cid") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_CID_BYTES => Ok(Some(s.clone())),
            Some(_) => Err(self.err(format!("`cid` must be a string of 1 to {MAX_CID_BYTES} bytes"))),
        }
    }

    /// `"acks": [{"id":2,"seq":17}, {"groupid":5,"seq":30}]`; absent means none.
    fn acks(&self) -> Result<Vec<(Peer, i64)>, DecodeError> {
        let list = match self.obj.get("acks") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(list)) if list.len() <= MAX_ACKS => list,
            Some(_) => return Err(self.err(format!("`acks` must be an array of at most {MAX_ACKS} objects"))),
        };
        list.iter()
            .map(|item| {
                let Value::Object(obj) = item else {
                    return Err(self.err("each of `acks` must be an object".into()));
                };
                let inner = Fields { obj, msgid: self.msgid };
                let seq = inner.optional_i64("seq")?.ok_or_else(|| self.err("an ack needs `seq`".into()))?;
                Ok((peer(obj, self)?, seq))
            })
            .collect()
    }

    /// `"ext": 1` or `"ext": true` opts in to the extension.
    fn ext(&self) -> bool {
        match self.obj.get("ext") {
            Some(Value::Bool(b)) => *b,
            Some(v) => integer(v).is_some_and(|n| n > 0),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Request {
        decode_request(s.as_bytes()).expect("decodes")
    }

    fn err(s: &str) -> DecodeError {
        decode_request(s.as_bytes()).expect_err("is rejected")
    }

    #[test]
    fn decodes_the_original_clients_requests() {
        assert_eq!(
            ok(r#"{"id":1,"msgid":1,"password":"pw"}"#),
            Request::Login { id: UserId(1), password: "pw".into(), ext: false }
        );
        assert_eq!(ok(r#"{"id":1,"msgid":3}"#), Request::Loginout);
        assert_eq!(
            ok(r#"{"msgid":4,"name":"zhang san","password":"pw"}"#),
            Request::Register { name: "zhang san".into(), password: "pw".into(), ext: false }
        );
        assert_eq!(
            ok(r#"{"id":1,"msg":"hi","msgid":6,"name":"a","time":"2024-01-01 00:00:00","to":2}"#),
            Request::OneChat { to: UserId(2), msg: "hi".into(), cid: None }
        );
        assert_eq!(ok(r#"{"friendid":2,"id":1,"msgid":7}"#), Request::AddFriend { friend: UserId(2) });
        assert_eq!(
            ok(r#"{"groupdesc":"d","groupname":"g","id":1,"msgid":8}"#),
            Request::CreateGroup { name: "g".into(), desc: "d".into() }
        );
        assert_eq!(ok(r#"{"groupid":3,"id":1,"msgid":9}"#), Request::AddGroup { group: GroupId(3) });
        assert_eq!(
            ok(r#"{"groupid":3,"id":1,"msg":"m","msgid":10,"name":"a","time":"t"}"#),
            Request::GroupChat { group: GroupId(3), msg: "m".into(), cid: None }
        );
    }

    #[test]
    fn decodes_the_delivery_extension() {
        assert_eq!(
            ok(r#"{"cid":"c-1","msg":"hi","msgid":6,"to":2}"#),
            Request::OneChat { to: UserId(2), msg: "hi".into(), cid: Some("c-1".into()) }
        );
        assert_eq!(
            ok(r#"{"acks":[{"id":2,"seq":17},{"groupid":5,"seq":30}],"msgid":17,"token":"t"}"#),
            Request::Resume {
                token: "t".into(),
                acks: vec![(Peer::User(UserId(2)), 17), (Peer::Group(GroupId(5)), 30)]
            }
        );
        assert_eq!(ok(r#"{"msgid":18}"#), Request::Received { acks: vec![] });
        assert_eq!(
            ok(r#"{"groupid":5,"before":100,"limit":20,"msgid":19}"#),
            Request::History {
                peer: Peer::Group(GroupId(5)),
                from: HistoryFrom::Before(100),
                limit: Some(20)
            }
        );
        assert_eq!(
            ok(r#"{"id":2,"msgid":19}"#),
            Request::History { peer: Peer::User(UserId(2)), from: HistoryFrom::Latest, limit: None }
        );
        for bad in [
            r#"{"cid":"","msg":"hi","msgid":6,"to":2}"#,
            r#"{"cid":5,"msg":"hi","msgid":6,"to":2}"#,
            r#"{"msgid":18,"acks":[{"seq":1}]}"#,
            r#"{"msgid":18,"acks":[{"id":1,"groupid":2,"seq":1}]}"#,
            r#"{"msgid":18,"acks":[{"id":1}]}"#,
            r#"{"msgid":18,"acks":{"id":1}}"#,
            r#"{"msgid":17}"#,
            r#"{"msgid":19}"#,
            r#"{"msgid":19,"id":2,"before":1,"after":2}"#,
        ] {
            assert!(decode_request(bad.as_bytes()).is_err(), "{bad}");
        }
        let long = format!(r#"{{"cid":"{}","msg":"hi","msgid":6,"to":2}}"#, "x".repeat(65));
        err(&long);
    }

    #[test]
    fn decodes_the_control_requests() {
        assert_eq!(ok(r#"{"msgid":30,"id":2}"#), Request::Block { user: UserId(2) });
        assert_eq!(ok(r#"{"msgid":34,"writers":"friends"}"#), Request::SetWriters { friends_only: true });
        assert_eq!(
            ok(r#"{"msgid":36,"id":2,"accept":false}"#),
            Request::FriendAnswer { user: UserId(2), accept: false }
        );
        assert_eq!(
            ok(r#"{"msgid":41,"groupid":3,"id":2}"#),
            Request::Kick { group: GroupId(3), user: UserId(2) }
        );
        assert_eq!(
            ok(r#"{"msgid":42,"groupid":3,"groupdesc":"d"}"#),
            Request::EditGroup { group: GroupId(3), name: None, desc: Some("d".into()) }
        );
        assert_eq!(
            ok(r#"{"msgid":45,"password":"a","newpassword":"b","id":9}"#),
            Request::ChangePassword { old: "a".into(), new: "b".into() }
        );
        for bad in [
            r#"{"msgid":30}"#,
            r#"{"msgid":34,"writers":"nobody"}"#,
            r#"{"msgid":36,"id":2}"#,
            r#"{"msgid":42,"groupid":3}"#,
            r#"{"msgid":44,"groupid":3,"id":2,"admin":"yes"}"#,
            r#"{"msgid":46}"#,
            r#"{"msgid":33}"#,
            r#"{"msgid":47}"#,
        ] {
            assert!(decode_request(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn decodes_the_devices_extension() {
        assert_eq!(
            ok(r#"{"msgid":1,"name":"bob","password":"pw","ext":1}"#),
            Request::LoginByName { name: "bob".into(), password: "pw".into(), ext: true }
        );
        assert_eq!(
            ok(r#"{"id":3,"msgid":1,"name":"bob","password":"pw"}"#),
            Request::Login { id: UserId(3), password: "pw".into(), ext: false },
            "an id wins: the original client's frames keep their meaning"
        );
        assert_eq!(ok(r#"{"msgid":50,"name":"bob"}"#), Request::FindUser { name: "bob".into() });
        assert_eq!(ok(r#"{"msgid":52}"#), Request::LogoutAll);
        assert_eq!(err(r#"{"msgid":50}"#).msgid, Some(50));
        assert_eq!(err(r#"{"msgid":1,"name":5,"password":"pw"}"#).msgid, Some(1));
        assert_eq!(err(r#"{"msgid":51}"#).msgid, Some(51), "an answer is not a request");
    }

    #[test]
    fn decodes_read_state_and_typing() {
        assert_eq!(
            ok(r#"{"msgid":54,"id":2,"seq":17}"#),
            Request::MarkRead { peer: Peer::User(UserId(2)), seq: 17 }
        );
        assert_eq!(
            ok(r#"{"msgid":54,"groupid":5,"seq":30,"reader":9}"#),
            Request::MarkRead { peer: Peer::Group(GroupId(5)), seq: 30 },
            "a client never names the reader"
        );
        assert_eq!(ok(r#"{"msgid":56,"id":2}"#), Request::Reads { peer: Peer::User(UserId(2)) });
        assert_eq!(
            ok(r#"{"msgid":58,"id":2}"#),
            Request::Typing { peer: Peer::User(UserId(2)), typing: true }
        );
        assert_eq!(
            ok(r#"{"msgid":58,"groupid":5,"state":"paused"}"#),
            Request::Typing { peer: Peer::Group(GroupId(5)), typing: false }
        );
        for bad in [
            r#"{"msgid":54,"id":2}"#,
            r#"{"msgid":54,"seq":2}"#,
            r#"{"msgid":54,"id":2,"seq":"3"}"#,
            r#"{"msgid":56}"#,
            r#"{"msgid":58,"id":2,"state":"sleeping"}"#,
            r#"{"msgid":58,"state":"typing"}"#,
            r#"{"msgid":55}"#,
            r#"{"msgid":57}"#,
        ] {
            assert!(decode_request(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn opt_in_and_integral_floats() {
        assert_eq!(
            ok(r#"{"id":1.0,"msgid":1.0,"password":"pw","ext":1}"#),
            Request::Login { id: UserId(1), password: "pw".into(), ext: true }
        );
        assert_eq!(err(r#"{"id":6.7,"msgid":1,"password":"pw"}"#).msgid, Some(1));
    }

    #[test]
    fn rejects_every_malformed_shape() {
        for bad in [
            "",
            "\0",
            "hello",
            "[1,2]",
            "42",
            "null",
            r#"{"id":1}"#,
            r#"{"msgid":"1"}"#,
            r#"{"msgid":1,"id":1}"#,
            r#"{"msgid":1,"id":"1","password":"p"}"#,
            r#"{"msgid":6,"msg":"x"}"#,
            r#"{"msgid":4,"name":5,"password":"p"}"#,
            r#"{"msgid":1,"id":99999999999999999999999,"password":"p"}"#,
            r#"{"msgid":1,"id":4294967296,"password":"p"}"#,
            r#"{"msgid":2}"#,
            r#"{"msgid":5}"#,
            r#"{"msgid":99}"#,
            r#"{"msgid":-1}"#,
            r#"{"msgid":1e300}"#,
        ] {
            err(bad);
        }
        let deep = "[".repeat(10_000);
        err(&deep);
    }

    #[test]
    fn duplicate_keys_take_the_last_value_and_are_still_checked() {
        assert_eq!(err(r#"{"msgid":6,"to":2,"msgid":7}"#).reason, "missing field `friendid`");
    }
}
