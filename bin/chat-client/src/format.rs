//! Everything the console prints, as text: the menu, the login screen, chat
//! lines in the original's formats, command outcomes, errors and help.
//!
//! Pure functions returning `String`s without a trailing newline; where the
//! text goes (stdout, stderr, above the line being edited) is the console's
//! business. Text that came from other people is passed through [`clean`] so
//! that it can neither fake extra lines nor send escape codes to a terminal.

use std::fmt::Write as _;

use chat_proto::{GroupId, UserId};

use crate::command::Command;
use crate::incoming::{ChatLine, GroupLine, Incoming, Lists, LoginInfo, ServerError};

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

/// The friend and group sections of the login screen, also shown by `lists`.
pub fn lists(lists: &Lists) -> String {
    let mut out = String::from("----------------------friend list---------------------\n");
    if lists.friends.is_empty() {
        out.push_str("(no friends yet: addfriend:friendid)\n");
    }
    for f in &lists.friends {
        let _ = writeln!(out, "{} {} {}", f.id, clean(&f.name), clean(&f.state));
    }
    out.push_str("----------------------group list----------------------\n");
    if lists.groups.is_empty() {
        out.push_str("(no groups yet: creategroup:groupname:groupdesc or addgroup:groupid)\n");
    }
    for g in &lists.groups {
        let _ = writeln!(out, "{} {} {}", g.id, clean(&g.name), clean(&g.desc));
        for m in &g.members {
            let _ = writeln!(out, "    {} {} {} {}", m.id, clean(&m.name), clean(&m.state), clean(&m.role));
        }
    }
    for why in &lists.unreadable {
        let _ = writeln!(out, "(could not read an entry: {})", clean(why));
    }
    out.push_str("======================================================");
    out
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
    const COMMANDS: [(&str, &str, &str); 8] = [
        ("help", "show this command list", "help"),
        ("chat", "send a message to a user", "chat:friendid:message"),
        ("addfriend", "add a friend", "addfriend:friendid"),
        ("creategroup", "create a group (you get its id)", "creategroup:groupname:groupdesc"),
        ("addgroup", "join a group", "addgroup:groupid"),
        ("groupchat", "send a message to a group", "groupchat:groupid:message"),
        ("lists", "show your friend and group lists again", "lists"),
        ("loginout", "log out and go back to the menu", "loginout"),
    ];
    let mut out = String::from("show command list >>> \n");
    for (name, what, format) in COMMANDS {
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
        Command::Lists | Command::Help => "ok".to_owned(),
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
        Command::Loginout => "loginout",
    }
}

/// How a frame that was not awaited is shown: `Ok` for normal output, `Err`
/// for a report on stderr, `None` for nothing at all.
pub fn unsolicited(frame: &Incoming) -> Option<Result<String, String>> {
    Some(match frame {
        Incoming::Chat(c) => Ok(chat_line(c)),
        Incoming::GroupChat(g) => Ok(group_line(g)),
        Incoming::Notice(e) => Err(format!("server notice: {} (errno {})", clean(&e.errmsg), e.errno)),
        Incoming::Unknown { msgid } => {
            Err(format!("ignored a message from the server with unknown msgid {msgid}"))
        }
        Incoming::Malformed { reason, excerpt } => {
            Err(format!("could not read a message from the server ({}): {}", clean(reason), clean(excerpt)))
        }
        Incoming::TooLong => Err("a message from the server was too long and was skipped".to_owned()),
        // The server's answer to our keepalive replies; nothing to tell.
        Incoming::Ping | Incoming::Ack { re: 13, .. } => return None,
        Incoming::Ack { re: 0, outcome: Err(e) } => {
            Err(format!("the server could not read a request: {} (errno {})", clean(&e.errmsg), e.errno))
        }
        Incoming::Ack { re, outcome: Err(e) } => {
            Err(format!("late error for request {re}: {} (errno {})", clean(&e.errmsg), e.errno))
        }
        Incoming::Ack { re, outcome: Ok(_) } => Err(format!("late success reply for request {re}")),
        Incoming::LoginAck(_) | Incoming::RegAck(_) | Incoming::ListAck(_) => {
            Err("ignored a late reply from the server".to_owned())
        }
    })
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
    use crate::incoming::{Friend, Group, Member, decode};

    fn info(lists: Lists) -> LoginInfo {
        LoginInfo { id: UserId(1), name: "alice".into(), lists, offline: vec![] }
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
            name: "a".into(),
            time: "2024-01-01 12:00:00".into(),
            msg: "hi".into(),
        };
        assert_eq!(chat_line(&c), "2024-01-01 12:00:00 [1]a said: hi");
        let g = GroupLine {
            group: GroupId(3),
            from: UserId(1),
            name: "a".into(),
            time: "2024-01-01 12:00:00".into(),
            msg: "hi: all".into(),
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
            name: "x\n[9]admin".into(),
            time: "t".into(),
            msg: "m\n2024 [9]admin said: give me your password".into(),
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
        ] {
            assert!(h.contains(format), "help lacks {format}");
        }
    }
}
