//! Checks over `chat_proto::decode_request` and the reply encoders: decoding
//! any frame returns (never panics), a decoded request carries exactly the
//! values the frame's JSON holds, an error names a msgid only when the frame
//! had that msgid, and every reply built from arbitrary strings is valid JSON
//! that reads back to the same strings.
//!
//! Not here: framing (see `frames.rs`). This file is also compiled into
//! `crates/proto/tests/fuzz_regressions.rs`, so it uses only chat-proto's own
//! dependencies.

use chat_proto::{
    Ack, ChatPush, DecodeError, ErrorCode, FriendEntry, GroupChatPush, GroupEntry, GroupId, LoginOk,
    MemberEntry, MsgId, Notice, Request, Role, UserId, ack_error, decode_request, encode, list_ack,
};
use serde_json::{Map, Value};

/// Decodes one frame, checks the outcome against the frame's JSON, and
/// returns the outcome.
pub fn check_frame(frame: &[u8]) -> Result<Request, DecodeError> {
    let outcome = decode_request(frame);
    let json: Option<Value> = serde_json::from_slice(frame).ok();
    let obj = json.as_ref().and_then(Value::as_object);
    match &outcome {
        Ok(request) => {
            let Some(obj) = obj else { panic!("{request:?} decoded from a frame that is not a JSON object") };
            check_request(request, obj);
        }
        Err(e) => {
            assert!(!e.reason.is_empty(), "an error without a reason");
            if let Some(n) = e.msgid {
                let sent = obj.and_then(|o| o.get("msgid"));
                assert!(
                    sent.and_then(Value::as_f64) == Some(n as f64),
                    "error names msgid {n}, frame has {sent:?}"
                );
            } else if let Some(n) = obj.and_then(|o| o.get("msgid")).and_then(Value::as_i64) {
                panic!("an error without a msgid for a frame with msgid {n}: {e}");
            }
        }
    }
    outcome
}

/// [`check_frame`], then [`check_replies`] with the frame's text and with
/// every text field of the request it decodes to.
pub fn check_frame_and_replies(frame: &[u8]) -> Result<Request, DecodeError> {
    let outcome = check_frame(frame);
    check_replies(&String::from_utf8_lossy(frame));
    if let Ok(request) = &outcome {
        for text in strings_of(request) {
            check_replies(&text);
        }
    }
    outcome
}

/// The frame's JSON value for `key` is the number `n`, exactly.
fn same_number(obj: &Map<String, Value>, key: &str, n: i64) {
    let sent = obj.get(key);
    assert!(sent.and_then(Value::as_f64) == Some(n as f64), "`{key}` decoded as {n} from {sent:?}");
}

/// The frame's JSON value for `key` is the string `s`, exactly.
fn same_string(obj: &Map<String, Value>, key: &str, s: &str) {
    assert_eq!(obj.get(key).and_then(Value::as_str), Some(s), "`{key}` decoded as {s:?}");
}

/// Whether the frame's `ext` value opts in: `true` or a positive integer.
fn opts_in(obj: &Map<String, Value>) -> Option<bool> {
    match obj.get("ext") {
        None => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(v) if v.as_i64().is_some() => v.as_i64().map(|n| n > 0),
        // Floats and numbers past i64: only "not positive" is certain.
        Some(v) if v.as_f64().is_some_and(|f| f <= 0.0) => Some(false),
        Some(v) if v.is_number() => None,
        Some(_) => Some(false),
    }
}

fn check_request(request: &Request, obj: &Map<String, Value>) {
    same_number(obj, "msgid", request.msgid().number().into());
    match request {
        Request::Login { id, password, ext } => {
            same_number(obj, "id", id.0.into());
            same_string(obj, "password", password);
            check_ext(obj, *ext);
        }
        Request::LoginByName { name, password, ext } => {
            assert!(obj.get("id").is_none(), "a LOGIN with an id decoded as by name");
            same_string(obj, "name", name);
            same_string(obj, "password", password);
            check_ext(obj, *ext);
        }
        Request::FindUser { name } => same_string(obj, "name", name),
        Request::Register { name, password, ext } => {
            same_string(obj, "name", name);
            same_string(obj, "password", password);
            check_ext(obj, *ext);
        }
        Request::OneChat { to, msg, cid } => {
            same_number(obj, "to", to.0.into());
            same_string(obj, "msg", msg);
            check_cid(obj, cid.as_deref());
        }
        Request::AddFriend { friend } => same_number(obj, "friendid", friend.0.into()),
        Request::CreateGroup { name, desc } => {
            same_string(obj, "groupname", name);
            match obj.get("groupdesc") {
                None | Some(Value::Null) => assert_eq!(desc, "", "groupdesc decoded from nothing"),
                Some(_) => same_string(obj, "groupdesc", desc),
            }
        }
        Request::AddGroup { group } => same_number(obj, "groupid", group.0.into()),
        Request::GroupChat { group, msg, cid } => {
            same_number(obj, "groupid", group.0.into());
            same_string(obj, "msg", msg);
            check_cid(obj, cid.as_deref());
        }
        Request::Resume { token, acks } => {
            same_string(obj, "token", token);
            assert!(acks.len() <= chat_proto::MAX_ACKS, "too many acks accepted");
        }
        Request::Received { acks } => assert!(acks.len() <= chat_proto::MAX_ACKS, "too many acks accepted"),
        Request::History { .. } | Request::Loginout | Request::Pong | Request::List | Request::LogoutAll => {}
        // Issue 21's requests: their `id` names the other user.
        Request::Block { user }
        | Request::Unblock { user }
        | Request::FriendRequest { user }
        | Request::FriendAnswer { user, .. }
        | Request::RemoveFriend { user } => same_number(obj, "id", user.0.into()),
        Request::LeaveGroup { group } | Request::DeleteGroup { group } => {
            same_number(obj, "groupid", group.0.into())
        }
        Request::Kick { group, user } | Request::SetAdmin { group, user, .. } => {
            same_number(obj, "groupid", group.0.into());
            same_number(obj, "id", user.0.into());
        }
        Request::EditGroup { group, .. } => same_number(obj, "groupid", group.0.into()),
        Request::ChangePassword { old, new } => {
            same_string(obj, "password", old);
            same_string(obj, "newpassword", new);
        }
        Request::DeleteAccount { password } => same_string(obj, "password", password),
        Request::Blocked | Request::SetWriters { .. } | Request::FriendRequests => {}
        // Issue 20's read state and typing: a conversation (checked by the decoder), a seq.
        Request::MarkRead { seq, .. } => same_number(obj, "seq", *seq),
        Request::Reads { .. } | Request::Typing { .. } => {}
    }
}

fn check_cid(obj: &Map<String, Value>, cid: Option<&str>) {
    match cid {
        None => assert!(matches!(obj.get("cid"), None | Some(Value::Null)), "cid dropped"),
        Some(c) => {
            same_string(obj, "cid", c);
            assert!(!c.is_empty() && c.len() <= chat_proto::MAX_CID_BYTES, "cid out of bounds accepted");
        }
    }
}

fn check_ext(obj: &Map<String, Value>, ext: bool) {
    if let Some(expected) = opts_in(obj) {
        assert_eq!(ext, expected, "ext decoded as {ext} from {:?}", obj.get("ext"));
    }
}

/// The text fields of a request.
pub fn strings_of(request: &Request) -> Vec<String> {
    match request {
        Request::Login { password, .. } => vec![password.clone()],
        Request::LoginByName { name, password, .. } => vec![name.clone(), password.clone()],
        Request::FindUser { name } => vec![name.clone()],
        Request::Register { name, password, .. } => vec![name.clone(), password.clone()],
        Request::OneChat { msg, .. } | Request::GroupChat { msg, .. } => vec![msg.clone()],
        Request::CreateGroup { name, desc } => vec![name.clone(), desc.clone()],
        _ => vec![],
    }
}

/// Parses a reply the encoders produced; it must be a JSON object.
fn parse(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(obj)) => obj,
        Ok(other) => panic!("a reply that is not an object: {other}"),
        Err(e) => panic!("a reply that is not JSON ({e}): {text:?}"),
    }
}

/// A nested list element of the original form: a JSON string holding an object.
fn nested(v: &Value) -> Map<String, Value> {
    match v {
        Value::String(text) => parse(text),
        other => panic!("a nested element that is not a string: {other}"),
    }
}

fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> &'a Value {
    obj.get(key).unwrap_or_else(|| panic!("no `{key}` in {obj:?}"))
}

fn first<'a>(obj: &'a Map<String, Value>, key: &str) -> &'a Value {
    match field(obj, key) {
        Value::Array(items) if items.len() == 1 => &items[0],
        other => panic!("`{key}` is not a one-element list: {other}"),
    }
}

/// How deep a JSON value nests.
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Every reply type, built with `s` in each text field, is JSON that reads
/// back to `s`.
pub fn check_replies(s: &str) {
    let text = Value::String(s.to_owned());

    let push = ChatPush {
        id: UserId(i32::MIN),
        mid: Some(i64::MAX),
        msg: s.into(),
        msgid: MsgId::OneChat.number(),
        name: s.into(),
        seq: None,
        time: s.into(),
        to: UserId(i32::MAX),
    };
    let back: ChatPush = match serde_json::from_str(&encode(&push)) {
        Ok(back) => back,
        Err(e) => panic!("ChatPush does not read back ({e})"),
    };
    assert_eq!(back, push);
    let group_push = GroupChatPush {
        groupid: GroupId(i32::MAX),
        id: UserId(-1),
        mid: None,
        msg: s.into(),
        msgid: MsgId::GroupChat.number(),
        name: s.into(),
        seq: Some(1),
        time: s.into(),
    };
    let back: GroupChatPush = match serde_json::from_str(&encode(&group_push)) {
        Ok(back) => back,
        Err(e) => panic!("GroupChatPush does not read back ({e})"),
    };
    assert_eq!(back, group_push);

    let ack = parse(&encode(&Ack::error(i64::MIN, ErrorCode::BadRequest, s)));
    assert_eq!(field(&ack, "errmsg"), &text);
    assert_eq!(field(&ack, "re"), &Value::from(i64::MIN));
    let ack = parse(&ack_error(MsgId::LoginAck, ErrorCode::Invalid, s));
    assert_eq!(field(&ack, "errmsg"), &text);
    let notice = parse(&encode(&Notice::new(ErrorCode::Closing, s)));
    assert_eq!(field(&notice, "errmsg"), &text);

    let friend = FriendEntry { id: UserId(2), name: s.into(), online: true };
    let group = GroupEntry {
        id: GroupId(3),
        name: s.into(),
        desc: s.into(),
        members: vec![MemberEntry { id: UserId(1), name: s.into(), online: false, role: Role::Creator }],
    };
    let ok = LoginOk {
        id: UserId(1),
        name: s.into(),
        friends: vec![friend.clone()],
        groups: vec![group.clone()],
        offline: vec![s.into()],
        resume: Some(s.into()),
        unread: vec![],
        reads: Default::default(),
    };

    // The original form: nested lists hold JSON text, the offline text as it is.
    let ack = parse(&ok.encode(false));
    assert_eq!(field(&ack, "name"), &text);
    assert_eq!(field(&nested(first(&ack, "friends")), "name"), &text);
    let g = nested(first(&ack, "groups"));
    assert_eq!(field(&g, "groupname"), &text);
    assert_eq!(field(&g, "groupdesc"), &text);
    assert_eq!(field(&nested(first(&g, "users")), "name"), &text);
    assert_eq!(first(&ack, "offlinemsg"), &text);

    // The extension form: objects, and the offline text as JSON when it is JSON.
    let stored: Option<Value> = serde_json::from_str(s).ok();
    // Stored texts are frames the server encoded, a few levels deep. A text
    // nested to serde_json's limit (128) would nest past it inside the ack.
    if stored.as_ref().is_none_or(|v| depth(v) <= 100) {
        let ack = parse(&ok.encode(true));
        assert_eq!(field(&ack, "name"), &text);
        assert_eq!(field(first(&ack, "friends").as_object().unwrap_or(&Map::new()), "name"), &text);
        let g = first(&ack, "groups").as_object().cloned().unwrap_or_default();
        assert_eq!(field(&g, "groupname"), &text);
        assert_eq!(field(&g, "groupdesc"), &text);
        assert_eq!(field(first(&g, "users").as_object().unwrap_or(&Map::new()), "name"), &text);
        // Compared after the same write and read as the ack's: serde_json
        // reads floats to within an ulp, so `2222…2` may read back one ulp off.
        let again = stored.as_ref().and_then(|v| serde_json::from_str::<Value>(&v.to_string()).ok());
        assert_eq!(first(&ack, "offlinemsg"), again.as_ref().unwrap_or(&text));
    }

    let list = parse(&list_ack(&[friend], &[group], &[], &Default::default()));
    assert_eq!(field(first(&list, "friends").as_object().unwrap_or(&Map::new()), "name"), &text);
    let g = first(&list, "groups").as_object().cloned().unwrap_or_default();
    assert_eq!(field(&g, "groupname"), &text);
    assert_eq!(field(first(&g, "users").as_object().unwrap_or(&Map::new()), "name"), &text);
}
