//! Decoding one inbound frame into a typed [`Request`].
//!
//! The decoder checks shapes and types only; whether a request is allowed is
//! the service's business. Fields a client sends about itself (`id`, `name`,
//! `time` in chats) are accepted and ignored: the server knows who is talking.

use serde_json::{Map, Value};

use crate::{GroupId, MsgId, UserId};

/// One request from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// LOGIN (1). `ext` opts the connection in to the protocol extension.
    Login { id: UserId, password: String, ext: bool },
    /// LOGINOUT (3). The `id` the client sends is ignored.
    Loginout,
    /// REG (4). `ext` opts the connection in to the protocol extension.
    Register { name: String, password: String, ext: bool },
    /// ONE_CHAT (6).
    OneChat { to: UserId, msg: String },
    /// ADD_FRIEND (7).
    AddFriend { friend: UserId },
    /// CREATE_GROUP (8).
    CreateGroup { name: String, desc: String },
    /// ADD_GROUP (9).
    AddGroup { group: GroupId },
    /// GROUP_CHAT (10).
    GroupChat { group: GroupId, msg: String },
    /// PONG (13), an extension client's answer to a ping.
    Pong,
    /// LIST (15): the friend and group lists again.
    List,
}

impl Request {
    /// The msgid this request came with.
    pub fn msgid(&self) -> MsgId {
        match self {
            Request::Login { .. } => MsgId::Login,
            Request::Loginout => MsgId::Loginout,
            Request::Register { .. } => MsgId::Reg,
            Request::OneChat { .. } => MsgId::OneChat,
            Request::AddFriend { .. } => MsgId::AddFriend,
            Request::CreateGroup { .. } => MsgId::CreateGroup,
            Request::AddGroup { .. } => MsgId::AddGroup,
            Request::GroupChat { .. } => MsgId::GroupChat,
            Request::Pong => MsgId::Pong,
            Request::List => MsgId::List,
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
        Some(MsgId::Login) => Request::Login {
            id: UserId(fields.id("id")?),
            password: fields.string("password")?,
            ext: fields.ext(),
        },
        Some(MsgId::Loginout) => Request::Loginout,
        Some(MsgId::Reg) => Request::Register {
            name: fields.string("name")?,
            password: fields.string("password")?,
            ext: fields.ext(),
        },
        Some(MsgId::OneChat) => Request::OneChat { to: UserId(fields.id("to")?), msg: fields.string("msg")? },
        Some(MsgId::AddFriend) => Request::AddFriend { friend: UserId(fields.id("friendid")?) },
        Some(MsgId::CreateGroup) => Request::CreateGroup {
            name: fields.string("groupname")?,
            desc: fields.optional_string("groupdesc")?,
        },
        Some(MsgId::AddGroup) => Request::AddGroup { group: GroupId(fields.id("groupid")?) },
        Some(MsgId::GroupChat) => {
            Request::GroupChat { group: GroupId(fields.id("groupid")?), msg: fields.string("msg")? }
        }
        Some(MsgId::Pong) => Request::Pong,
        Some(MsgId::List) => Request::List,
        _ => return Err(DecodeError::new(Some(number), format!("msgid {number} is not a request"))),
    };
    Ok(request)
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
            Request::OneChat { to: UserId(2), msg: "hi".into() }
        );
        assert_eq!(ok(r#"{"friendid":2,"id":1,"msgid":7}"#), Request::AddFriend { friend: UserId(2) });
        assert_eq!(
            ok(r#"{"groupdesc":"d","groupname":"g","id":1,"msgid":8}"#),
            Request::CreateGroup { name: "g".into(), desc: "d".into() }
        );
        assert_eq!(ok(r#"{"groupid":3,"id":1,"msgid":9}"#), Request::AddGroup { group: GroupId(3) });
        assert_eq!(
            ok(r#"{"groupid":3,"id":1,"msg":"m","msgid":10,"name":"a","time":"t"}"#),
            Request::GroupChat { group: GroupId(3), msg: "m".into() }
        );
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
