//! Everything the console prints, as text: the menu, the login screen, chat
//! lines in the original's formats, command outcomes, errors and help.
//!
//! Pure functions returning `String`s without a trailing newline; where the
//! text goes (stdout, stderr, above the line being edited) is the console's
//! business. Text that came from other people is passed through [`clean`] so
//! that it can neither fake extra lines nor send escape codes to a terminal.

use std::fmt::Write as _;
use std::time::Duration;

use chat_proto::{GroupId, HistoryFrom, MsgId, Peer, UserId};

use crate::command::{Command, DEFAULT_HISTORY_PAGE};
use crate::incoming::{ChatLine, GroupLine, HistoryPage, Incoming, Lists, LoginInfo, ServerError};

/// The top menu, printed before each choice.
pub const MENU: &str = "========================\n1. login\n2. register\n3. quit\n========================";

/// Control characters in `text` made visible (`\n`, `\t`, `\u{1b}`), so that a
/// message stays on one line and cannot drive the terminal.
pub fn clean(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// A one-to-one chat: `<time> [<id>]<name> said: <msg>`.
pub fn chat_line(c: &ChatLine) -> String {
    format!("{} [{}]{} said: {}", clean(&c.time), c.from, clean(&c.name), clean(&c.msg))
}

/// A group chat: `群消息[<groupid>]:<time> [<id>]<name> said: <msg>` (群消息 is "group message").
pub fn group_line(g: &GroupLine) -> String {
    format!("群消息[{}]:{} [{}]{} said: {}", g.group, clean(&g.time), g.from, clean(&g.name), clean(&g.msg))
}

/// ` (3 unread)` after a friend or group with unread messages, else nothing.
fn unread_mark(lists: &Lists, peer: Peer) -> String {
    match lists.unread.iter().find(|u| u.peer == peer) {
        Some(u) if u.count > 0 => format!(" ({} unread)", u.count),
        _ => String::new(),
    }
}

/// The friend and group sections of the login screen, also shown by `lists`,
/// with unread counts next to the friends and groups that have some, and on
/// lines of their own for conversations with people who are not friends.
pub fn lists(lists: &Lists) -> String {
    let mut out = String::from("----------------------friend list---------------------\n");
    if lists.friends.is_empty() {
        out.push_str("(no friends yet: addfriend:friendid)\n");
    }
    for f in &lists.friends {
        let unread = unread_mark(lists, Peer::User(f.id));
        let _ = writeln!(out, "{} {} {}{unread}", f.id, clean(&f.name), clean(&f.state));
    }
    out.push_str("----------------------group list----------------------\n");
    if lists.groups.is_empty() {
        out.push_str("(no groups yet: creategroup:groupname:groupdesc or addgroup:groupid)\n");
    }
    for g in &lists.groups {
        let unread = unread_mark(lists, Peer::Group(g.id));
        let _ = writeln!(out, "{} {} {}{unread}", g.id, clean(&g.name), clean(&g.desc));
        for m in &g.members {
            let _ = writeln!(out, "    {} {} {} {}", m.id, clean(&m.name), clean(&m.state), clean(&m.role));
        }
    }
    for u in lists.unread.iter().filter(|u| u.count > 0) {
        let listed = match u.peer {
            Peer::User(id) => lists.friends.iter().any(|f| f.id == id),
            Peer::Group(id) => lists.groups.iter().any(|g| g.id == id),
        };
        if !listed {
            let _ = writeln!(out, "({} unread from {})", u.count, conversation(u.peer));
        }
    }
    for why in &lists.unreadable {
        let _ = writeln!(out, "(could not read an entry: {})", clean(why));
    }
    out.push_str("======================================================");
    out
}

/// A conversation for people: `user 2` or `group 5`.
pub fn conversation(peer: Peer) -> String {
    match peer {
        Peer::User(id) => format!("user {id}"),
        Peer::Group(id) => format!("group {id}"),
    }
}

/// A conversation as `history:` takes it: `2` or `g5`.
fn history_target(peer: Peer) -> String {
    match peer {
        Peer::User(id) => id.to_string(),
        Peer::Group(id) => format!("g{id}"),
    }
}

/// A page of history: a header, the messages oldest first in the format of
/// incoming messages, and what to type for the next page in the same direction.
pub fn history(peer: Peer, from: HistoryFrom, limit: u32, page: &HistoryPage) -> String {
    let mut out = format!("----- history with {}, oldest first -----\n", conversation(peer));
    let mut mids = Vec::new();
    for message in &page.messages {
        match message {
            Incoming::Chat(c) => {
                mids.extend(c.logged.map(|l| l.mid));
                let _ = writeln!(out, "{}", chat_line(c));
            }
            Incoming::GroupChat(g) => {
                mids.extend(g.logged.map(|l| l.mid));
                let _ = writeln!(out, "{}", group_line(g));
            }
            other => {
                let _ = writeln!(out, "(could not read a message: {})", clean(&format!("{other:?}")));
            }
        }
    }
    if page.messages.is_empty() {
        out.push_str("(no messages)\n");
    }
    let size = if limit == DEFAULT_HISTORY_PAGE { String::new() } else { format!(":{limit}") };
    let target = history_target(peer);
    let next = match from {
        HistoryFrom::After(_) => {
            mids.last().map(|mid| ("newer", format!("history:{target}:after:{mid}{size}")))
        }
        HistoryFrom::Latest | HistoryFrom::Before(_) => {
            mids.first().map(|mid| ("older", format!("history:{target}:before:{mid}{size}")))
        }
    };
    match next {
        Some((which, command)) if page.more => {
            let _ = write!(out, "----- {which} messages: {command} -----");
        }
        _ if matches!(from, HistoryFrom::After(_)) => out.push_str("----- no newer messages -----"),
        _ => out.push_str("----- no older messages -----"),
    }
    out
}

/// The connection of a logged-in user was lost (`why`); the client gets it back by itself.
pub fn connection_lost(why: &str) -> String {
    format!("{why}; reconnecting (commands wait for the connection; the server keeps your messages)")
}

/// The connection is back: the session resumed (`resumed`) or a new login was made.
pub fn reconnected(resumed: bool) -> String {
    let how = if resumed { "session resumed" } else { "logged in again" };
    format!("connected to the server again ({how})")
}

/// A command waits for the lost connection to come back.
pub const WAITING: &str = "not connected: the command waits until the connection is back (Ctrl-C quits)";

/// The account is still held by the node that went away.
pub const STILL_HELD: &str =
    "the server still holds the session that was lost (errno 2); trying again until it lets go";

/// The resume token was refused; the client logs in with the password instead.
pub fn token_refused(e: &ServerError) -> String {
    format!(
        "the server did not resume the session: {} (errno {}); logging in again",
        clean(&e.errmsg),
        e.errno
    )
}

/// The lost session cannot be had again without the user.
pub fn session_over(e: &ServerError) -> String {
    format!("could not log in again: {} (errno {}); log in again from the menu", clean(&e.errmsg), e.errno)
}

/// Giving up on a lost connection after `window`.
pub fn gave_up(window: Duration, why: &str) -> String {
    format!(
        "could not get the connection to the server back within {} s ({why}); the server keeps your messages for your next login",
        window.as_secs()
    )
}

/// A request whose answer was lost with the connection.
pub fn lost_before_answer(what: &str) -> String {
    format!("the connection was lost before the answer to {what}: it may or may not have been done")
}

/// The screen after a successful login, as the original printed it: the
/// user, the friend list with states, the groups with members and roles.
/// Offline messages and help follow separately.
pub fn login_screen(info: &LoginInfo) -> String {
    format!(
        "======================login user======================\ncurrent login user => id:{} name:{}\n{}",
        info.id,
        clean(&info.name),
        lists(&info.lists)
    )
}

/// The help list, in English, with each command's format.
pub fn help() -> String {
    const COMMANDS: [(&str, &str, &str); 16] = [
        ("help", "show this command list", "help"),
        ("chat", "send a message to a user", "chat:friendid:message"),
        ("addfriend", "add a friend", "addfriend:friendid"),
        ("addfriend", "add a friend by their exact name", "addfriend:name"),
        ("finduser", "find a user by their exact name (id and state)", "finduser:name"),
        ("creategroup", "create a group (you get its id)", "creategroup:groupname:groupdesc"),
        ("addgroup", "join a group", "addgroup:groupid"),
        ("groupchat", "send a message to a group", "groupchat:groupid:message"),
        ("lists", "show your friend and group lists again (with unread counts)", "lists"),
        (
            "history",
            "the latest messages with a user, oldest first",
            "history:userid or history:userid:pagesize",
        ),
        ("history", "the same in a group", "history:ggroupid or history:ggroupid:pagesize"),
        ("history", "the page before (or after) a message id", "history:userid:before:mid (or :after:mid)"),
        ("reads", "how far you and a user read and received your chat", "reads:userid"),
        ("greads", "how far each member of a group read and received it", "greads:groupid"),
        ("loginout", "log out and go back to the menu", "loginout"),
        ("logoutall", "log out on every device of this account, then go back to the menu", "logoutall"),
    ];
    let mut out = String::from("show command list >>> \n");
    for (name, what, format) in COMMANDS.iter().chain(crate::control::HELP.iter()) {
        let _ = writeln!(out, "{name} : {what}, format {format}");
    }
    out.push_str("(Ctrl-D or Ctrl-C logs out and quits)\n");
    out
}

/// The prompt after login: who is logged in.
pub fn prompt(id: UserId, name: &str) -> String {
    format!("[{id}]{}> ", clean(name))
}

/// A server error after a failed request, e.g. `chat failed: no such user (errno 5)`.
pub fn failure(what: &str, e: &ServerError) -> String {
    format!("{what} failed: {} (errno {})", clean(&e.errmsg), e.errno)
}

/// A failed login, with the server's text in JSON quotes as the original printed it.
pub fn login_failed(e: &ServerError) -> String {
    format!("login failed: \"{}\"", clean(&e.errmsg))
}

/// A successful registration, in the original's words.
pub fn registered(id: UserId) -> String {
    format!("register success, userid is {id} , do not forget it!")
}

/// What a successful command did.
pub fn success(cmd: &Command, groupid: Option<GroupId>) -> String {
    match cmd {
        Command::Chat { to, .. } => format!("sent to user {to}"),
        Command::GroupChat { group, .. } => format!("sent to group {group}"),
        Command::AddFriend { friend } => format!("user {friend} is now your friend (lists shows your lists)"),
        Command::CreateGroup { name, .. } => match groupid {
            Some(id) => format!("group {} created, groupid is {id}", clean(name)),
            None => format!("group {} created (the server did not say its id; see lists)", clean(name)),
        },
        Command::AddGroup { group } => format!("joined group {group} (lists shows your lists)"),
        Command::Loginout => "logged out".to_owned(),
        Command::Ctl(c) => c.success(),
        Command::LogoutAll => "logged out everywhere (every device of this account)".to_owned(),
        Command::Lists | Command::History { .. } | Command::Help | Command::FindUser { .. } => {
            "ok".to_owned()
        }
        Command::AddFriendByName { name } => {
            format!("user {} is now your friend (lists shows your lists)", clean(name))
        }
        Command::Reads { .. } => "ok".to_owned(),
    }
}

/// The name of a command in failure messages.
pub fn command_name(cmd: &Command) -> &'static str {
    match cmd {
        Command::Help => "help",
        Command::Chat { .. } => "chat",
        Command::AddFriend { .. } => "addfriend",
        Command::CreateGroup { .. } => "creategroup",
        Command::AddGroup { .. } => "addgroup",
        Command::GroupChat { .. } => "groupchat",
        Command::Lists => "lists",
        Command::History { .. } => "history",
        Command::Loginout => "loginout",
        Command::Ctl(c) => c.name(),
        Command::FindUser { .. } => "finduser",
        Command::Reads { peer: Peer::User(_) } => "reads",
        Command::Reads { peer: Peer::Group(_) } => "greads",
        Command::AddFriendByName { .. } => "addfriend",
        Command::LogoutAll => "logoutall",
    }
}

/// A user found by name: `bob id:7 online` (addfriend takes the name or the id).
pub fn found(found: &crate::incoming::Found) -> String {
    format!("{} id:{} {}", clean(&found.name), found.id, clean(&found.state))
}

/// The name of a request in messages, by the msgid it was sent with.
pub fn request_name(sent: MsgId) -> &'static str {
    match sent {
        MsgId::Login => "login",
        MsgId::Reg => "register",
        MsgId::OneChat => "chat",
        MsgId::AddFriend => "addfriend",
        MsgId::CreateGroup => "creategroup",
        MsgId::AddGroup => "addgroup",
        MsgId::GroupChat => "groupchat",
        MsgId::List => "lists",
        MsgId::History => "history",
        MsgId::Loginout => "loginout",
        MsgId::FindUser => "finduser",
        MsgId::LogoutAll => "logoutall",
        _ => "the request",
    }
}

/// How a frame that was not awaited is shown: `Ok` for normal output, `Err`
/// for a report on stderr, `None` for nothing at all.
pub fn unsolicited(frame: &Incoming) -> Option<Result<String, String>> {
    Some(match frame {
        Incoming::Chat(c) => Ok(chat_line(c)),
        Incoming::GroupChat(g) => Ok(group_line(g)),
        Incoming::Presence { id, name, state } => Ok(if state == "online" {
            format!("{} [{id}] is online", clean(name))
        } else {
            format!("{} [{id}] went offline", clean(name))
        }),
        Incoming::Notice(e) => Err(format!("server notice: {} (errno {})", clean(&e.errmsg), e.errno)),
        Incoming::Event(v) => Ok(crate::control::event(v)),
        Incoming::Unknown { msgid } => {
            Err(format!("ignored a message from the server with unknown msgid {msgid}"))
        }
        Incoming::Malformed { reason, excerpt } => {
            Err(format!("could not read a message from the server ({}): {}", clean(reason), clean(excerpt)))
        }
        Incoming::TooLong => Err("a message from the server was too long and was skipped".to_owned()),
        // The server's answer to our keepalive replies, and to the read marks the console
        // sends as it shows messages; nothing to tell. Receipts and typing are the
        // console's (`notes.rs`: they need names and remember what they told).
        Incoming::Ping | Incoming::Ack { re: 13 | 54, outcome: Ok(_), .. } => return None,
        Incoming::Receipt { .. } | Incoming::Typing { .. } => return None,
        Incoming::Ack { re: 0, outcome: Err(e), .. } => {
            Err(format!("the server could not read a request: {} (errno {})", clean(&e.errmsg), e.errno))
        }
        Incoming::Ack { re, outcome: Err(e), .. } => {
            Err(format!("late error for request {re}: {} (errno {})", clean(&e.errmsg), e.errno))
        }
        Incoming::Ack { re, outcome: Ok(_), .. } => Err(format!("late success reply for request {re}")),
        Incoming::LoginAck(_)
        | Incoming::RegAck(_)
        | Incoming::ListAck(_)
        | Incoming::HistoryAck(_)
        | Incoming::Listing(_)
        | Incoming::FoundUser(_)
        | Incoming::Reads(_) => Err("ignored a late reply from the server".to_owned()),
    })
}

/// READS_ACK: one line per member, `name [id]: read up to 17, received up to 18`.
pub fn reads(peer: Peer, list: &[crate::incoming::Reads], name: impl Fn(UserId) -> String) -> String {
    let mut out = format!("----- reads in {} -----\n", conversation(peer));
    for r in list {
        let _ = writeln!(
            out,
            "{} [{}]: read up to {}, received up to {}",
            clean(&name(r.id)),
            r.id,
            r.read,
            r.recv
        );
    }
    out
}

/// An offline message on the login screen: chats in their usual form, anything
/// else as a report.
pub fn offline(frame: &Incoming) -> Result<String, String> {
    match frame {
        Incoming::Chat(c) => Ok(chat_line(c)),
        Incoming::GroupChat(g) => Ok(group_line(g)),
        Incoming::Malformed { reason, excerpt } => {
            Err(format!("could not read an offline message ({}): {}", clean(reason), clean(excerpt)))
        }
        other => Err(format!("skipped an offline message that is not a chat: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incoming::{Friend, Group, Logged, Member, Unread, decode};

    fn info(lists: Lists) -> LoginInfo {
        LoginInfo { id: UserId(1), name: "alice".into(), lists, offline: vec![], resume: None }
    }

    #[test]
    fn login_screen_is_the_originals() {
        let lists = Lists {
            friends: vec![
                Friend { id: UserId(2), name: "bob".into(), state: "online".into() },
                Friend { id: UserId(4), name: "dan".into(), state: "offline".into() },
            ],
            groups: vec![Group {
                id: GroupId(3),
                name: "g".into(),
                desc: "our group".into(),
                members: vec![
                    Member {
                        id: UserId(1),
                        name: "alice".into(),
                        state: "online".into(),
                        role: "creator".into(),
                    },
                    Member {
                        id: UserId(2),
                        name: "bob".into(),
                        state: "online".into(),
                        role: "normal".into(),
                    },
                ],
            }],
            unread: vec![],
            unreadable: vec![],
        };
        assert_eq!(
            login_screen(&info(lists)),
            "======================login user======================\n\
             current login user => id:1 name:alice\n\
             ----------------------friend list---------------------\n\
             2 bob online\n\
             4 dan offline\n\
             ----------------------group list----------------------\n\
             3 g our group\n    \
             1 alice online creator\n    \
             2 bob online normal\n\
             ======================================================"
        );
    }

    #[test]
    fn login_screen_from_both_ack_forms_is_the_same() {
        let ext = r#"{"errno":0,"friends":[{"id":2,"name":"b","state":"online"}],"groups":[{"groupdesc":"d","groupname":"g","id":3,"users":[{"id":1,"name":"a","role":"creator","state":"online"}]}],"id":1,"msgid":2,"name":"a","offlinemsg":[]}"#;
        let orig = r#"{"errno":0,"friends":["{\"id\":2,\"name\":\"b\",\"state\":\"online\"}"],"groups":["{\"groupdesc\":\"d\",\"groupname\":\"g\",\"id\":3,\"users\":[\"{\\\"id\\\":1,\\\"name\\\":\\\"a\\\",\\\"role\\\":\\\"creator\\\",\\\"state\\\":\\\"online\\\"}\"]}"],"id":1,"msgid":2,"name":"a"}"#;
        let screen = |text: &str| match decode(text.as_bytes()) {
            Incoming::LoginAck(Ok(info)) => login_screen(&info),
            other => panic!("not a login: {other:?}"),
        };
        assert_eq!(screen(ext), screen(orig));
        assert!(screen(ext).contains("\n2 b online\n"));
        assert!(screen(ext).contains("\n3 g d\n    1 a online creator\n"));
    }

    #[test]
    fn empty_lists_say_so() {
        let screen = login_screen(&info(Lists::default()));
        assert!(screen.contains("(no friends yet"));
        assert!(screen.contains("(no groups yet"));
        let with_bad = Lists { unreadable: vec!["friend: missing `id`".into()], ..Lists::default() };
        assert!(lists(&with_bad).contains("(could not read an entry: friend: missing `id`)"));
    }

    #[test]
    fn chat_lines_in_the_original_formats() {
        let c = ChatLine {
            from: UserId(1),
            to: Some(UserId(2)),
            name: "a".into(),
            time: "2024-01-01 12:00:00".into(),
            msg: "hi".into(),
            logged: Some(Logged { mid: 9, seq: 3 }),
        };
        assert_eq!(chat_line(&c), "2024-01-01 12:00:00 [1]a said: hi");
        let g = GroupLine {
            group: GroupId(3),
            from: UserId(1),
            name: "a".into(),
            time: "2024-01-01 12:00:00".into(),
            msg: "hi: all".into(),
            logged: None,
        };
        assert_eq!(group_line(&g), "群消息[3]:2024-01-01 12:00:00 [1]a said: hi: all");
    }

    #[test]
    fn hostile_text_is_made_visible() {
        assert_eq!(clean("plain 你好"), "plain 你好");
        assert_eq!(clean("two\nlines"), "two\\nlines");
        assert_eq!(clean("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(clean("a\tb\r\u{7f}\u{9b}"), "a\\tb\\r\\u{7f}\\u{9b}");
        let c = ChatLine {
            from: UserId(1),
            to: None,
            name: "x\n[9]admin".into(),
            time: "t".into(),
            msg: "m\n2024 [9]admin said: give me your password".into(),
            logged: None,
        };
        assert!(!chat_line(&c).contains('\n'));
    }

    #[test]
    fn outcomes_and_errors() {
        let e = ServerError { errno: 5, errmsg: "no such user".into() };
        assert_eq!(failure("chat", &e), "chat failed: no such user (errno 5)");
        let e = ServerError { errno: 1, errmsg: "id or password is invalid!".into() };
        assert_eq!(login_failed(&e), "login failed: \"id or password is invalid!\"");
        assert_eq!(registered(UserId(7)), "register success, userid is 7 , do not forget it!");
        let create = Command::CreateGroup { name: "g".into(), desc: String::new() };
        assert_eq!(success(&create, Some(GroupId(4))), "group g created, groupid is 4");
        assert!(success(&create, None).contains("created"));
        assert_eq!(success(&Command::Chat { to: UserId(2), msg: "x".into() }, None), "sent to user 2");
        assert_eq!(
            success(&Command::GroupChat { group: GroupId(3), msg: "x".into() }, None),
            "sent to group 3"
        );
        assert!(
            success(&Command::AddFriend { friend: UserId(2) }, None).starts_with("user 2 is now your friend")
        );
        assert!(success(&Command::AddGroup { group: GroupId(3) }, None).starts_with("joined group 3"));
        assert_eq!(success(&Command::Loginout, None), "logged out");
        assert_eq!(prompt(UserId(1), "alice"), "[1]alice> ");
    }

    #[test]
    fn unsolicited_frames() {
        let shown = |s: &str| unsolicited(&decode(s.as_bytes()));
        assert_eq!(
            shown(r#"{"id":1,"msg":"hi","msgid":6,"name":"a","time":"t","to":2}"#),
            Some(Ok("t [1]a said: hi".into()))
        );
        assert_eq!(shown(r#"{"msgid":12}"#), None);
        assert_eq!(shown(r#"{"errno":0,"msgid":11,"re":13}"#), None);
        assert_eq!(
            shown(r#"{"errmsg":"server is shutting down","errno":15,"msgid":14}"#),
            Some(Err("server notice: server is shutting down (errno 15)".into()))
        );
        assert_eq!(
            shown(r#"{"msgid":77}"#),
            Some(Err("ignored a message from the server with unknown msgid 77".into()))
        );
        let garbage = shown("garbage\u{1b}").and_then(Result::err).unwrap_or_default();
        assert!(garbage.starts_with("could not read a message from the server (not JSON"), "{garbage}");
        assert!(garbage.ends_with("garbage\\u{1b}"), "{garbage}");
        assert!(matches!(shown(r#"{"errmsg":"bad","errno":4,"msgid":11,"re":0}"#), Some(Err(_))));
        assert!(matches!(unsolicited(&Incoming::TooLong), Some(Err(_))));
    }

    #[test]
    fn offline_messages() {
        let chat = decode(br#"{"id":1,"msg":"hi","msgid":6,"name":"a","time":"t","to":2}"#);
        assert_eq!(offline(&chat), Ok("t [1]a said: hi".into()));
        let group = decode(br#"{"groupid":3,"id":1,"msg":"hi","msgid":10,"name":"a","time":"t"}"#);
        assert_eq!(offline(&group), Ok("群消息[3]:t [1]a said: hi".into()));
        assert!(offline(&decode(b"nope")).is_err());
    }

    #[test]
    fn help_lists_every_command() {
        let h = help();
        assert!(h.starts_with("show command list >>> \n"));
        for format in [
            "chat:friendid:message",
            "addfriend:friendid",
            "creategroup:groupname:groupdesc",
            "addgroup:groupid",
            "groupchat:groupid:message",
            "format loginout",
            "format lists",
            "format help",
            "history:userid",
            "history:ggroupid",
            "history:userid:before:mid",
        ] {
            assert!(h.contains(format), "help lacks {format}");
        }
    }

    #[test]
    fn unread_counts_next_to_friends_and_groups() {
        let lists = Lists {
            friends: vec![
                Friend { id: UserId(2), name: "bob".into(), state: "online".into() },
                Friend { id: UserId(4), name: "dan".into(), state: "offline".into() },
            ],
            groups: vec![Group { id: GroupId(3), name: "g".into(), desc: "d".into(), members: vec![] }],
            unread: vec![
                Unread { peer: Peer::User(UserId(2)), count: 3 },
                Unread { peer: Peer::Group(GroupId(3)), count: 1 },
                Unread { peer: Peer::User(UserId(7)), count: 2 },
                Unread { peer: Peer::Group(GroupId(9)), count: 5 },
                Unread { peer: Peer::User(UserId(4)), count: 0 },
            ],
            unreadable: vec![],
        };
        assert_eq!(
            super::lists(&lists),
            "----------------------friend list---------------------\n\
             2 bob online (3 unread)\n\
             4 dan offline\n\
             ----------------------group list----------------------\n\
             3 g d (1 unread)\n\
             (2 unread from user 7)\n\
             (5 unread from group 9)\n\
             ======================================================"
        );
    }

    #[test]
    fn history_pages_and_the_next_command() {
        let page = |frames: &[&str], more| HistoryPage {
            messages: frames.iter().map(|f| decode(f.as_bytes())).collect(),
            more,
        };
        let two = [
            r#"{"id":1,"mid":40,"msg":"hi","msgid":6,"name":"alice","seq":1,"time":"t1","to":2}"#,
            r#"{"id":2,"mid":41,"msg":"hello","msgid":6,"name":"bob","seq":2,"time":"t2","to":1}"#,
        ];
        let bob = Peer::User(UserId(2));
        assert_eq!(
            history(bob, HistoryFrom::Latest, DEFAULT_HISTORY_PAGE, &page(&two, true)),
            "----- history with user 2, oldest first -----\n\
             t1 [1]alice said: hi\n\
             t2 [2]bob said: hello\n\
             ----- older messages: history:2:before:40 -----"
        );
        let shown = history(bob, HistoryFrom::Before(40), 2, &page(&two, false));
        assert!(shown.ends_with("t2 [2]bob said: hello\n----- no older messages -----"), "{shown}");
        let shown = history(bob, HistoryFrom::After(10), 2, &page(&two, true));
        assert!(shown.ends_with("----- newer messages: history:2:after:41:2 -----"), "{shown}");
        let shown = history(bob, HistoryFrom::After(41), 2, &page(&[], false));
        assert!(shown.ends_with("(no messages)\n----- no newer messages -----"), "{shown}");
        let group =
            [r#"{"groupid":5,"id":2,"mid":50,"msg":"all","msgid":10,"name":"bob","seq":7,"time":"t"}"#];
        assert_eq!(
            history(Peer::Group(GroupId(5)), HistoryFrom::Latest, 1, &page(&group, true)),
            "----- history with group 5, oldest first -----\n\
             群消息[5]:t [2]bob said: all\n\
             ----- older messages: history:g5:before:50:1 -----"
        );
    }

    #[test]
    fn status_lines() {
        assert!(
            connection_lost("the server closed the connection")
                .starts_with("the server closed the connection; reconnecting")
        );
        assert_eq!(reconnected(true), "connected to the server again (session resumed)");
        assert_eq!(reconnected(false), "connected to the server again (logged in again)");
        let e = ServerError { errno: 17, errmsg: "unknown token".into() };
        assert!(token_refused(&e).contains("(errno 17); logging in again"));
        assert!(
            gave_up(Duration::from_secs(300), "connection refused")
                .contains("within 300 s (connection refused)")
        );
        assert!(lost_before_answer("addgroup").contains("addgroup: it may or may not have been done"));
    }
}
