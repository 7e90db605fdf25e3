//! The console's commands of issue 21 ("users in control"): blocking, who may write to
//! me, friend requests, group management and the account. Parsing, the request frames,
//! and the texts shown; pure, like `command.rs`, `request.rs` and `format.rs`.

use chat_proto::{GroupId, MAX_DESC_CHARS, MAX_NAME_CHARS, MsgId, UserId};
use serde_json::{Value, json};

use crate::command::InputError;

/// A command of issue 21.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ctl {
    /// `block:userid`.
    Block(UserId),
    /// `unblock:userid`.
    Unblock(UserId),
    /// `blocked`: the blocked users and who may write to me.
    Blocked,
    /// `writers:anyone` or `writers:friends`.
    Writers(bool),
    /// `friendrequest:userid`: ask to be friends (both ways, once accepted).
    FriendRequest(UserId),
    /// `accept:userid`.
    Accept(UserId),
    /// `decline:userid`.
    Decline(UserId),
    /// `removefriend:userid`.
    RemoveFriend(UserId),
    /// `requests`: friend requests waiting, both ways.
    Requests,
    /// `leavegroup:groupid`.
    LeaveGroup(GroupId),
    /// `kick:groupid:userid`.
    Kick(GroupId, UserId),
    /// `renamegroup:groupid:name`.
    Rename(GroupId, String),
    /// `describegroup:groupid:description`.
    Describe(GroupId, String),
    /// `deletegroup:groupid` (asks for confirmation).
    DeleteGroup(GroupId),
    /// `admin:groupid:userid` or `unadmin:groupid:userid`.
    Admin(GroupId, UserId, bool),
    /// `passwd` (asks for the old and the new password).
    Passwd,
    /// `deleteaccount` (asks for the password and a confirmation).
    DeleteAccount,
}

/// `(name, what it does, format)` of each command, for `help`.
pub const HELP: [(&str, &str, &str); 17] = [
    ("block", "refuse a user's chats and friend requests", "block:userid"),
    ("unblock", "lift a block", "unblock:userid"),
    ("blocked", "the users you block and who may write to you", "blocked"),
    ("writers", "who may write to you: anyone or friends only", "writers:anyone or writers:friends"),
    ("friendrequest", "ask a user to be friends (both ways once accepted)", "friendrequest:userid"),
    ("accept", "accept a friend request", "accept:userid"),
    ("decline", "decline a friend request", "decline:userid"),
    ("removefriend", "end a friendship (both ways)", "removefriend:userid"),
    ("requests", "friend requests waiting for you and those you sent", "requests"),
    ("leavegroup", "leave a group", "leavegroup:groupid"),
    ("kick", "remove a member (owner and admins)", "kick:groupid:userid"),
    ("renamegroup", "rename a group (owner and admins)", "renamegroup:groupid:groupname"),
    ("describegroup", "change a group's description (owner and admins)", "describegroup:groupid:groupdesc"),
    ("deletegroup", "delete a group (owner; asks to confirm)", "deletegroup:groupid"),
    ("admin", "name a group admin, or unadmin: to take it back (owner)", "admin:groupid:userid"),
    ("passwd", "change your password (asks for the old and the new one)", "passwd"),
    ("deleteaccount", "delete your account (asks for the password; cannot be undone)", "deleteaccount"),
];

/// What Tab completes.
pub const COMPLETIONS: [&str; 18] = [
    "block:",
    "unblock:",
    "blocked",
    "writers:",
    "friendrequest:",
    "accept:",
    "decline:",
    "removefriend:",
    "requests",
    "leavegroup:",
    "kick:",
    "renamegroup:",
    "describegroup:",
    "deletegroup:",
    "admin:",
    "unadmin:",
    "passwd",
    "deleteaccount",
];

fn id(text: &str, what: &'static str) -> Result<i32, InputError> {
    let trimmed = text.trim();
    match trimmed.parse::<i32>() {
        Ok(n) if n > 0 => Ok(n),
        _ if trimmed.is_empty() => Err(InputError::Empty { what }),
        _ => Err(InputError::BadId { what, text: trimmed.to_owned() }),
    }
}

fn usage(name: &str) -> InputError {
    let (command, usage) = HELP
        .iter()
        .find(|(n, _, _)| *n == name || (name == "unadmin" && *n == "admin"))
        .map_or(("?", "?"), |(n, _, u)| (*n, *u));
    InputError::Usage { command, usage }
}

/// The command `name` with its argument (what follows the first `:`), if it is one of
/// issue 21's; `None` if `name` is not.
pub fn parse(name: &str, arg: Option<&str>) -> Option<Result<Ctl, InputError>> {
    let user = |arg: Option<&str>| id(arg.ok_or(usage(name))?, "userid").map(UserId);
    let group = |arg: Option<&str>| id(arg.ok_or(usage(name))?, "groupid").map(GroupId);
    let pair = |arg: Option<&str>| -> Result<(GroupId, String), InputError> {
        let (g, rest) = arg.and_then(|a| a.split_once(':')).ok_or(usage(name))?;
        Ok((GroupId(id(g, "groupid")?), rest.to_owned()))
    };
    Some(match name {
        "block" => user(arg).map(Ctl::Block),
        "unblock" => user(arg).map(Ctl::Unblock),
        "blocked" => Ok(Ctl::Blocked),
        "writers" => match arg.map(|a| a.trim().to_ascii_lowercase()).as_deref() {
            Some("anyone") => Ok(Ctl::Writers(false)),
            Some("friends") => Ok(Ctl::Writers(true)),
            _ => Err(usage(name)),
        },
        "friendrequest" => user(arg).map(Ctl::FriendRequest),
        "accept" => user(arg).map(Ctl::Accept),
        "decline" => user(arg).map(Ctl::Decline),
        "removefriend" => user(arg).map(Ctl::RemoveFriend),
        "requests" => Ok(Ctl::Requests),
        "leavegroup" => group(arg).map(Ctl::LeaveGroup),
        "deletegroup" => group(arg).map(Ctl::DeleteGroup),
        "kick" | "admin" | "unadmin" => pair(arg).and_then(|(g, u)| {
            let u = UserId(id(&u, "userid")?);
            Ok(match name {
                "kick" => Ctl::Kick(g, u),
                other => Ctl::Admin(g, u, other == "admin"),
            })
        }),
        "renamegroup" => pair(arg).and_then(|(g, n)| {
            let n = n.trim().to_owned();
            if n.is_empty() {
                return Err(InputError::Empty { what: "groupname" });
            }
            if n.chars().count() > MAX_NAME_CHARS {
                return Err(InputError::NameTooLong { what: "groupname" });
            }
            Ok(Ctl::Rename(g, n))
        }),
        "describegroup" => pair(arg).and_then(|(g, d)| {
            if d.chars().count() > MAX_DESC_CHARS {
                return Err(InputError::DescTooLong);
            }
            Ok(Ctl::Describe(g, d))
        }),
        "passwd" => Ok(Ctl::Passwd),
        "deleteaccount" => Ok(Ctl::DeleteAccount),
        _ => return None,
    })
}

impl Ctl {
    /// The request's msgid.
    pub fn msgid(&self) -> MsgId {
        match self {
            Ctl::Block(_) => MsgId::Block,
            Ctl::Unblock(_) => MsgId::Unblock,
            Ctl::Blocked => MsgId::Blocked,
            Ctl::Writers(_) => MsgId::SetWriters,
            Ctl::FriendRequest(_) => MsgId::FriendRequest,
            Ctl::Accept(_) | Ctl::Decline(_) => MsgId::FriendAnswer,
            Ctl::RemoveFriend(_) => MsgId::RemoveFriend,
            Ctl::Requests => MsgId::FriendRequests,
            Ctl::LeaveGroup(_) => MsgId::LeaveGroup,
            Ctl::Kick(..) => MsgId::Kick,
            Ctl::Rename(..) | Ctl::Describe(..) => MsgId::EditGroup,
            Ctl::DeleteGroup(_) => MsgId::DeleteGroup,
            Ctl::Admin(..) => MsgId::SetAdmin,
            Ctl::Passwd => MsgId::ChangePassword,
            Ctl::DeleteAccount => MsgId::DeleteAccount,
        }
    }

    /// The command's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Ctl::Block(_) => "block",
            Ctl::Unblock(_) => "unblock",
            Ctl::Blocked => "blocked",
            Ctl::Writers(_) => "writers",
            Ctl::FriendRequest(_) => "friendrequest",
            Ctl::Accept(_) => "accept",
            Ctl::Decline(_) => "decline",
            Ctl::RemoveFriend(_) => "removefriend",
            Ctl::Requests => "requests",
            Ctl::LeaveGroup(_) => "leavegroup",
            Ctl::Kick(..) => "kick",
            Ctl::Rename(..) => "renamegroup",
            Ctl::Describe(..) => "describegroup",
            Ctl::DeleteGroup(_) => "deletegroup",
            Ctl::Admin(_, _, true) => "admin",
            Ctl::Admin(_, _, false) => "unadmin",
            Ctl::Passwd => "passwd",
            Ctl::DeleteAccount => "deleteaccount",
        }
    }

    /// The request frame; `secrets` are the passwords `passwd` (old, new) and `deleteaccount`
    /// (the password, twice the same) asked for.
    pub fn frame(&self, secrets: (&str, &str)) -> String {
        let msgid = self.msgid().number();
        let v = match self {
            Ctl::Block(u) | Ctl::Unblock(u) | Ctl::FriendRequest(u) | Ctl::RemoveFriend(u) => {
                json!({ "id": u, "msgid": msgid })
            }
            Ctl::Accept(u) => json!({ "accept": true, "id": u, "msgid": msgid }),
            Ctl::Decline(u) => json!({ "accept": false, "id": u, "msgid": msgid }),
            Ctl::Blocked | Ctl::Requests => json!({ "msgid": msgid }),
            Ctl::Writers(friends) => {
                json!({ "msgid": msgid, "writers": if *friends { "friends" } else { "anyone" } })
            }
            Ctl::LeaveGroup(g) | Ctl::DeleteGroup(g) => json!({ "groupid": g, "msgid": msgid }),
            Ctl::Kick(g, u) => json!({ "groupid": g, "id": u, "msgid": msgid }),
            Ctl::Rename(g, n) => json!({ "groupid": g, "groupname": n, "msgid": msgid }),
            Ctl::Describe(g, d) => json!({ "groupdesc": d, "groupid": g, "msgid": msgid }),
            Ctl::Admin(g, u, admin) => json!({ "admin": admin, "groupid": g, "id": u, "msgid": msgid }),
            Ctl::Passwd => json!({ "msgid": msgid, "newpassword": secrets.1, "password": secrets.0 }),
            Ctl::DeleteAccount => json!({ "msgid": msgid, "password": secrets.0 }),
        };
        v.to_string()
    }

    /// What a success did.
    pub fn success(&self) -> String {
        match self {
            Ctl::Block(u) => format!("user {u} is blocked: their chats and requests are refused"),
            Ctl::Unblock(u) => format!("user {u} is no longer blocked"),
            Ctl::Writers(true) => "only your friends may write to you now".to_owned(),
            Ctl::Writers(false) => "anyone you do not block may write to you now".to_owned(),
            Ctl::FriendRequest(u) => format!("friend request sent to user {u}"),
            Ctl::Accept(u) => format!("user {u} is now your friend, both ways"),
            Ctl::Decline(u) => format!("declined user {u}'s friend request"),
            Ctl::RemoveFriend(u) => format!("user {u} is no longer your friend"),
            Ctl::LeaveGroup(g) => format!("left group {g}"),
            Ctl::Kick(g, u) => format!("removed user {u} from group {g}"),
            Ctl::Rename(g, n) => format!("group {g} is now called {n}"),
            Ctl::Describe(g, _) => format!("group {g}'s description changed"),
            Ctl::DeleteGroup(g) => format!("group {g} deleted"),
            Ctl::Admin(g, u, true) => format!("user {u} is an admin of group {g}"),
            Ctl::Admin(g, u, false) => format!("user {u} is no longer an admin of group {g}"),
            Ctl::Passwd => "password changed; your other sessions were ended".to_owned(),
            Ctl::DeleteAccount => "account deleted".to_owned(),
            Ctl::Blocked | Ctl::Requests => "ok".to_owned(),
        }
    }
}

fn people(list: &Value) -> String {
    let names: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| format!("{} {}", u["id"], crate::format::clean(u["name"].as_str().unwrap_or_default())))
        .collect();
    if names.is_empty() { "nobody".to_owned() } else { names.join(", ") }
}

/// The answer to `blocked` (BLOCKED_ACK) or `requests` (FRIEND_REQUESTS_ACK), as text.
pub fn listing(v: &Value) -> String {
    if v["msgid"] == MsgId::BlockedAck.number() {
        let writers = if v["writers"] == "friends" { "friends only" } else { "anyone" };
        format!("blocked: {}\nwho may write to you: {writers}", people(&v["users"]))
    } else {
        format!(
            "friend requests waiting for you: {}\nyour requests waiting: {}\n(accept:userid or decline:userid)",
            people(&v["incoming"]),
            people(&v["outgoing"])
        )
    }
}

/// An EVENT (47) as a line for the user.
pub fn event(v: &Value) -> String {
    let id = &v["id"];
    let g = &v["groupid"];
    let name = crate::format::clean(v["name"].as_str().unwrap_or_default());
    match v["event"].as_str().unwrap_or_default() {
        "friend-request" => {
            format!("user {id} ({name}) asks to be your friend (accept:{id} or decline:{id})")
        }
        "friend-accepted" => format!("user {id} ({name}) is now your friend, both ways"),
        "friend-declined" => format!("user {id} declined your friend request"),
        "friend-removed" => format!("user {id} is no longer your friend"),
        "member-removed" => format!("user {id} was removed from group {g}"),
        "member-left" => format!("user {id} left group {g}"),
        "owner-changed" => format!("user {id} now owns group {g}"),
        "admin-changed" if v["admin"] == true => format!("user {id} is now an admin of group {g}"),
        "admin-changed" => format!("user {id} is no longer an admin of group {g}"),
        "group-changed" => {
            let mut text = format!("group {g} changed:");
            if let Some(n) = v["groupname"].as_str() {
                text.push_str(&format!(" name {}", crate::format::clean(n)));
            }
            if let Some(d) = v["groupdesc"].as_str() {
                text.push_str(&format!(" description {}", crate::format::clean(d)));
            }
            text
        }
        "group-deleted" => format!("group {g} was deleted"),
        other => format!("server event {}", crate::format::clean(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::{Request, decode_request};

    fn ok(name: &str, arg: Option<&str>) -> Ctl {
        match parse(name, arg) {
            Some(Ok(c)) => c,
            other => panic!("{name}:{arg:?} -> {other:?}"),
        }
    }

    #[test]
    fn commands_become_frames_the_server_reads() {
        let cases = [
            (ok("block", Some("2")), Request::Block { user: UserId(2) }),
            (ok("unblock", Some(" 2 ")), Request::Unblock { user: UserId(2) }),
            (ok("writers", Some("friends")), Request::SetWriters { friends_only: true }),
            (ok("accept", Some("3")), Request::FriendAnswer { user: UserId(3), accept: true }),
            (ok("decline", Some("3")), Request::FriendAnswer { user: UserId(3), accept: false }),
            (ok("kick", Some("5:3")), Request::Kick { group: GroupId(5), user: UserId(3) }),
            (
                ok("unadmin", Some("5:3")),
                Request::SetAdmin { group: GroupId(5), user: UserId(3), admin: false },
            ),
            (
                ok("renamegroup", Some("5:new name")),
                Request::EditGroup { group: GroupId(5), name: Some("new name".into()), desc: None },
            ),
            (ok("leavegroup", Some("5")), Request::LeaveGroup { group: GroupId(5) }),
            (ok("blocked", None), Request::Blocked),
        ];
        for (cmd, want) in cases {
            let frame = cmd.frame(("", ""));
            assert_eq!(decode_request(frame.as_bytes()), Ok(want), "{frame}");
        }
        assert_eq!(
            decode_request(Ctl::Passwd.frame(("old", "new")).as_bytes()),
            Ok(Request::ChangePassword { old: "old".into(), new: "new".into() })
        );
        assert!(parse("chat", Some("1:x")).is_none(), "not ours");
        assert!(matches!(parse("kick", Some("5")), Some(Err(InputError::Usage { .. }))));
        assert!(matches!(parse("block", Some("x")), Some(Err(InputError::BadId { .. }))));
        assert!(matches!(parse("writers", Some("nobody")), Some(Err(InputError::Usage { .. }))));
    }

    #[test]
    fn events_read_as_sentences() {
        let v = json!({"event":"friend-request","id":2,"msgid":47,"name":"bob"});
        assert_eq!(event(&v), "user 2 (bob) asks to be your friend (accept:2 or decline:2)");
        let v = json!({"event":"member-removed","groupid":5,"id":3,"msgid":47});
        assert_eq!(event(&v), "user 3 was removed from group 5");
        let v = json!({"errno":0,"msgid":33,"users":[{"id":2,"name":"b"}],"writers":"friends"});
        assert_eq!(listing(&v), "blocked: 2 b\nwho may write to you: friends only");
    }
}
