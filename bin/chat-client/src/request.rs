//! The frames this client sends, as compact JSON text (no delimiter).
//!
//! Pure. LOGIN and REG carry `"ext":1` so that the server answers every
//! request. Requests also carry the `id` (and `name` in chats) the original
//! server required; ours ignores them and uses the session's identity.

use chat_proto::{MsgId, UserId};
use serde_json::{Value, json};

use crate::command::Command;

fn text(v: &Value) -> String {
    // serde_json's map is sorted, so keys come out in the original's order.
    v.to_string()
}

/// LOGIN (1), opting in to the extension.
pub fn login(id: UserId, password: &str) -> String {
    text(&json!({ "ext": 1, "id": id, "msgid": MsgId::Login.number(), "password": password }))
}

/// REG (4), opting in to the extension.
pub fn register(name: &str, password: &str) -> String {
    text(&json!({ "ext": 1, "msgid": MsgId::Reg.number(), "name": name, "password": password }))
}

/// PONG (13), the answer to a PING.
pub fn pong() -> String {
    text(&json!({ "msgid": MsgId::Pong.number() }))
}

/// The request for a command typed by user `me` (called `my_name`); `None`
/// for commands that stay local (`help`).
pub fn command(cmd: &Command, me: UserId, my_name: &str) -> Option<String> {
    let msgid = cmd.msgid()?.number();
    let v = match cmd {
        Command::Help => return None,
        Command::Chat { to, msg } => {
            json!({ "id": me, "msg": msg, "msgid": msgid, "name": my_name, "to": to })
        }
        Command::AddFriend { friend } => json!({ "friendid": friend, "id": me, "msgid": msgid }),
        Command::CreateGroup { name, desc } => {
            json!({ "groupdesc": desc, "groupname": name, "id": me, "msgid": msgid })
        }
        Command::AddGroup { group } => json!({ "groupid": group, "id": me, "msgid": msgid }),
        Command::GroupChat { group, msg } => {
            json!({ "groupid": group, "id": me, "msg": msg, "msgid": msgid, "name": my_name })
        }
        Command::Lists => json!({ "msgid": msgid }),
        Command::Loginout => json!({ "id": me, "msgid": msgid }),
    };
    Some(text(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::{GroupId, Request, decode_request};

    fn decoded(frame: &str) -> Request {
        decode_request(frame.as_bytes()).unwrap_or_else(|e| panic!("server cannot read {frame}: {e}"))
    }

    #[test]
    fn frames_are_what_the_server_reads() {
        assert_eq!(login(UserId(1), "pw"), r#"{"ext":1,"id":1,"msgid":1,"password":"pw"}"#);
        assert_eq!(
            decoded(&login(UserId(1), "pw")),
            Request::Login { id: UserId(1), password: "pw".into(), ext: true }
        );
        assert_eq!(
            decoded(&register("a \"b\"", "p")),
            Request::Register { name: "a \"b\"".into(), password: "p".into(), ext: true }
        );
        assert_eq!(decoded(&pong()), Request::Pong);
        let me = UserId(1);
        let cases = [
            (
                Command::Chat { to: UserId(2), msg: "hi\n你好".into() },
                Request::OneChat { to: UserId(2), msg: "hi\n你好".into(), cid: None },
            ),
            (Command::AddFriend { friend: UserId(2) }, Request::AddFriend { friend: UserId(2) }),
            (
                Command::CreateGroup { name: "g".into(), desc: "d".into() },
                Request::CreateGroup { name: "g".into(), desc: "d".into() },
            ),
            (Command::AddGroup { group: GroupId(3) }, Request::AddGroup { group: GroupId(3) }),
            (
                Command::GroupChat { group: GroupId(3), msg: "m".into() },
                Request::GroupChat { group: GroupId(3), msg: "m".into(), cid: None },
            ),
            (Command::Lists, Request::List),
            (Command::Loginout, Request::Loginout),
        ];
        for (cmd, want) in cases {
            let frame = command(&cmd, me, "a").unwrap_or_default();
            assert!(!frame.contains('\n'), "a frame is one line: {frame}");
            assert_eq!(decoded(&frame), want);
        }
        assert_eq!(command(&Command::Help, me, "a"), None);
        assert_eq!(
            command(&Command::Chat { to: UserId(2), msg: "hi".into() }, me, "a").unwrap_or_default(),
            r#"{"id":1,"msg":"hi","msgid":6,"name":"a","to":2}"#
        );
    }
}
