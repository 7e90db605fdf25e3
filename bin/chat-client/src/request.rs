//! The frames this client sends, as compact JSON text (no delimiter).
//!
//! Pure. LOGIN and REG carry `"ext":1` so that the server answers every
//! request. Requests also carry the `id` (and `name` in chats) the original
//! server required; ours ignores them and uses the session's identity.
//! Chats carry a `cid` from [`Cids`], so that one resent after a lost
//! connection is stored and delivered once.

use chat_proto::{HistoryFrom, MAX_ACKS, MsgId, Peer, UserId};
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

/// LOGIN (1) by the account's name instead of its id (extension).
pub fn login_by_name(name: &str, password: &str) -> String {
    text(&json!({ "ext": 1, "msgid": MsgId::Login.number(), "name": name, "password": password }))
}

/// REG (4), opting in to the extension.
pub fn register(name: &str, password: &str) -> String {
    text(&json!({ "ext": 1, "msgid": MsgId::Reg.number(), "name": name, "password": password }))
}

/// PONG (13), the answer to a PING.
pub fn pong() -> String {
    text(&json!({ "msgid": MsgId::Pong.number() }))
}

/// RESUME (17): the session again with `token`, and how far each conversation was received.
pub fn resume(token: &str, acks: &[(Peer, i64)]) -> String {
    text(&json!({ "acks": acks_json(acks), "msgid": MsgId::Resume.number(), "token": token }))
}

/// RECEIVED (18): each conversation received up to its seq.
pub fn received(acks: &[(Peer, i64)]) -> String {
    text(&json!({ "acks": acks_json(acks), "msgid": MsgId::Received.number() }))
}

/// MARK_READ (54): the conversation is read up to `seq`.
pub fn mark_read(peer: Peer, seq: i64) -> String {
    text(&match peer {
        Peer::User(id) => json!({ "id": id, "msgid": MsgId::MarkRead.number(), "seq": seq }),
        Peer::Group(group) => json!({ "groupid": group, "msgid": MsgId::MarkRead.number(), "seq": seq }),
    })
}

/// `[{"id":2,"seq":17},{"groupid":5,"seq":30}]`, at most what the server reads in one frame.
fn acks_json(acks: &[(Peer, i64)]) -> Value {
    acks.iter()
        .take(MAX_ACKS)
        .map(|&(peer, seq)| match peer {
            Peer::User(id) => json!({ "id": id, "seq": seq }),
            Peer::Group(group) => json!({ "groupid": group, "seq": seq }),
        })
        .collect()
}

/// Client message ids for this run: a random prefix and a counter, e.g.
/// `5f3a9c0e1b7d2a64-17`. The prefix keeps them apart from other runs of the
/// same user: the server answers a repeated `cid` with the first copy's ack
/// for as long as that copy is retained, so a collision would swallow a chat.
pub struct Cids {
    prefix: String,
    next: u64,
}

impl Cids {
    /// Ids starting with `seed` in hex.
    pub fn new(seed: u64) -> Cids {
        Cids { prefix: format!("{seed:016x}"), next: 1 }
    }

    /// A fresh id (well under `MAX_CID_BYTES`).
    pub fn next_cid(&mut self) -> String {
        let cid = format!("{}-{}", self.prefix, self.next);
        self.next += 1;
        cid
    }
}

/// The request for a command typed by user `me` (called `my_name`); `None`
/// for commands that stay local (`help`). Chats carry `cid` when given.
pub fn command(cmd: &Command, me: UserId, my_name: &str, cid: Option<&str>) -> Option<String> {
    let msgid = cmd.msgid()?.number();
    let mut v = match cmd {
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
        Command::History { peer, from, limit } => {
            let mut v = match peer {
                Peer::User(id) => json!({ "id": id, "limit": limit, "msgid": msgid }),
                Peer::Group(group) => json!({ "groupid": group, "limit": limit, "msgid": msgid }),
            };
            match from {
                HistoryFrom::Latest => {}
                HistoryFrom::Before(mid) => v["before"] = json!(mid),
                HistoryFrom::After(mid) => v["after"] = json!(mid),
            }
            v
        }
        Command::Loginout => json!({ "id": me, "msgid": msgid }),
        // `passwd` and `deleteaccount` are framed by the console, with what it asked for.
        Command::Ctl(c) => return Some(c.frame(("", ""))),
        Command::FindUser { name } | Command::AddFriendByName { name } => {
            json!({ "msgid": msgid, "name": name })
        }
        Command::LogoutAll => json!({ "msgid": msgid }),
        Command::Reads { peer: Peer::User(id) } => json!({ "id": id, "msgid": msgid }),
        Command::Reads { peer: Peer::Group(group) } => json!({ "groupid": group, "msgid": msgid }),
    };
    if let (Command::Chat { .. } | Command::GroupChat { .. }, Some(cid)) = (cmd, cid) {
        v["cid"] = json!(cid);
    }
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
            let frame = command(&cmd, me, "a", None).unwrap_or_default();
            assert!(!frame.contains('\n'), "a frame is one line: {frame}");
            assert_eq!(decoded(&frame), want);
        }
        assert_eq!(command(&Command::Help, me, "a", None), None);
        assert_eq!(
            command(&Command::Chat { to: UserId(2), msg: "hi".into() }, me, "a", None).unwrap_or_default(),
            r#"{"id":1,"msg":"hi","msgid":6,"name":"a","to":2}"#
        );
    }

    #[test]
    fn delivery_frames_are_what_the_server_reads() {
        let me = UserId(1);
        let mut cids = Cids::new(0xfeed);
        let (c1, c2) = (cids.next_cid(), cids.next_cid());
        assert_eq!((c1.as_str(), c2.as_str()), ("000000000000feed-1", "000000000000feed-2"));
        assert!(Cids::new(u64::MAX).next_cid().len() <= chat_proto::MAX_CID_BYTES);
        let chat = Command::Chat { to: UserId(2), msg: "hi".into() };
        assert_eq!(
            decoded(&command(&chat, me, "a", Some(&c1)).unwrap_or_default()),
            Request::OneChat { to: UserId(2), msg: "hi".into(), cid: Some(c1.clone()) }
        );
        let group = Command::GroupChat { group: GroupId(3), msg: "m".into() };
        assert_eq!(
            decoded(&command(&group, me, "a", Some(&c2)).unwrap_or_default()),
            Request::GroupChat { group: GroupId(3), msg: "m".into(), cid: Some(c2) }
        );
        // Only chats carry one.
        assert!(!command(&Command::Lists, me, "a", Some(&c1)).unwrap_or_default().contains("cid"));

        let acks = [(Peer::User(UserId(2)), 17), (Peer::Group(GroupId(5)), 30)];
        assert_eq!(received(&acks), r#"{"acks":[{"id":2,"seq":17},{"groupid":5,"seq":30}],"msgid":18}"#);
        assert_eq!(decoded(&received(&acks)), Request::Received { acks: acks.to_vec() });
        assert_eq!(
            decoded(&resume("9f0c", &acks)),
            Request::Resume { token: "9f0c".into(), acks: acks.to_vec() }
        );
        assert_eq!(decoded(&resume("t", &[])), Request::Resume { token: "t".into(), acks: vec![] });

        for (peer, from, limit) in [
            (Peer::User(UserId(2)), HistoryFrom::Latest, 20),
            (Peer::Group(GroupId(5)), HistoryFrom::Before(1042), 50),
            (Peer::User(UserId(2)), HistoryFrom::After(7), 1),
        ] {
            let frame = command(&Command::History { peer, from, limit }, me, "a", None).unwrap_or_default();
            assert_eq!(decoded(&frame), Request::History { peer, from, limit: Some(limit) });
        }
    }
}
