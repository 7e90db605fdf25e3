//! What the user types, parsed: the top menu, the login and register prompts,
//! and the commands after login.
//!
//! Pure functions over one line of input; no I/O, no network. Every way a
//! line can be wrong is an [`InputError`] whose text tells the user what to
//! type instead.

use std::fmt;

use chat_proto::{
    GroupId, HistoryFrom, MAX_DESC_CHARS, MAX_NAME_CHARS, MAX_PASSWORD_CHARS, MsgId, Peer, UserId,
};

/// Longest line the client accepts, in bytes. The server reads frames of up
/// to 64 KiB; this leaves room for the JSON around a message.
pub const MAX_INPUT_BYTES: usize = 60 * 1024;

/// Messages in a history page when the command names no page size: about a
/// screenful. The server caps pages at its own `history_page_max` (100).
pub const DEFAULT_HISTORY_PAGE: u32 = 20;

/// A choice at the top menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuChoice {
    /// 1: log in.
    Login,
    /// 2: register a new account.
    Register,
    /// 3: quit.
    Quit,
}

/// A command typed after login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `help`: the command list.
    Help,
    /// `chat:friendid:message`.
    Chat {
        /// The recipient.
        to: UserId,
        /// The text, as typed.
        msg: String,
    },
    /// `addfriend:friendid`.
    AddFriend {
        /// The new friend.
        friend: UserId,
    },
    /// `creategroup:groupname:groupdesc`.
    CreateGroup {
        /// The group's name.
        name: String,
        /// Its description (may be empty).
        desc: String,
    },
    /// `addgroup:groupid`.
    AddGroup {
        /// The group to join.
        group: GroupId,
    },
    /// `groupchat:groupid:message`.
    GroupChat {
        /// The group.
        group: GroupId,
        /// The text, as typed.
        msg: String,
    },
    /// `lists`: show the friend and group lists again.
    Lists,
    /// `history:<userid>` or `history:g<groupid>`, optionally `:before:<mid>`
    /// or `:after:<mid>`, optionally `:<pagesize>`.
    History {
        /// The conversation.
        peer: Peer,
        /// Where the page starts.
        from: HistoryFrom,
        /// At most this many messages.
        limit: u32,
    },
    /// `loginout`: log out and go back to the menu.
    Loginout,
    /// A command of issue 21 (`control.rs`): blocks, friend requests, groups, the account.
    Ctl(crate::control::Ctl),
    /// `finduser:name`: the user with exactly that name (extension).
    FindUser {
        /// The name.
        name: String,
    },
    /// `addfriend:name`: find the user by name, then add them as a friend.
    AddFriendByName {
        /// The new friend's name.
        name: String,
    },
    /// `logoutall`: end every session of this account, on every device, and go back to the menu.
    LogoutAll,
    /// `reads:userid` or `greads:groupid`: how far each member read and received (extension).
    Reads {
        /// The conversation.
        peer: Peer,
    },
}

/// Who logs in, as typed at the `userid:` prompt: an id, or (extension) a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    /// A number.
    Id(UserId),
    /// Anything else: the account's name.
    Name(String),
}

impl Command {
    /// The request msgid this command sends, or `None` for local commands.
    pub fn msgid(&self) -> Option<MsgId> {
        Some(match self {
            Command::Help => return None,
            Command::Chat { .. } => MsgId::OneChat,
            Command::AddFriend { .. } => MsgId::AddFriend,
            Command::CreateGroup { .. } => MsgId::CreateGroup,
            Command::AddGroup { .. } => MsgId::AddGroup,
            Command::GroupChat { .. } => MsgId::GroupChat,
            Command::Lists => MsgId::List,
            Command::History { .. } => MsgId::History,
            Command::Loginout => MsgId::Loginout,
            Command::Ctl(c) => c.msgid(),
            Command::FindUser { .. } | Command::AddFriendByName { .. } => MsgId::FindUser,
            Command::LogoutAll => MsgId::LogoutAll,
            Command::Reads { .. } => MsgId::Reads,
        })
    }
}

/// Why a line was not accepted. `Display` is the message shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// Nothing was typed where something is needed.
    Empty {
        /// What was asked for, e.g. "menu choice".
        what: &'static str,
    },
    /// The line is longer than [`MAX_INPUT_BYTES`].
    LineTooLong,
    /// The menu choice is not 1, 2 or 3.
    BadMenuChoice(String),
    /// An id is not a positive number.
    BadId {
        /// Which id, e.g. "friendid".
        what: &'static str,
        /// What was typed.
        text: String,
    },
    /// A name is longer than the server allows.
    NameTooLong {
        /// "username" or "groupname".
        what: &'static str,
    },
    /// A group description is longer than the server allows.
    DescTooLong,
    /// A password is longer than the server allows.
    PasswordTooLong,
    /// A chat message is empty or only blanks.
    EmptyMessage,
    /// A message id (in `history:...:before:<mid>`) is not a positive number.
    BadMessageId(String),
    /// A known command without the `:` parts it needs.
    Usage {
        /// The command name.
        command: &'static str,
        /// Its format.
        usage: &'static str,
    },
    /// Not a command at all.
    UnknownCommand {
        /// The command part of the line.
        name: String,
        /// The line looks like a command with spaces instead of `:`.
        spaced: Option<&'static str>,
    },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Empty { what } => write!(f, "invalid input! the {what} is empty"),
            InputError::LineTooLong => {
                write!(f, "invalid input! the line is too long (at most {MAX_INPUT_BYTES} bytes)")
            }
            InputError::BadMenuChoice(text) => {
                write!(f, "invalid input! `{}` is not a choice: type 1, 2 or 3", excerpt(text))
            }
            InputError::BadId { what, text } => {
                write!(f, "invalid input! {what} must be a positive number, not `{}`", excerpt(text))
            }
            InputError::NameTooLong { what } => {
                write!(f, "invalid input! the {what} is too long (at most {MAX_NAME_CHARS} characters)")
            }
            InputError::DescTooLong => {
                write!(f, "invalid input! the groupdesc is too long (at most {MAX_DESC_CHARS} characters)")
            }
            InputError::PasswordTooLong => {
                write!(f, "invalid input! the password is too long (at most {MAX_PASSWORD_CHARS} characters)")
            }
            InputError::EmptyMessage => write!(f, "invalid input! the message is empty"),
            InputError::BadMessageId(text) => {
                write!(f, "invalid input! a message id must be a positive number, not `{}`", excerpt(text))
            }
            InputError::Usage { command, usage } => write!(f, "{command} command invalid! format: {usage}"),
            InputError::UnknownCommand { name, spaced: Some(usage) } => write!(
                f,
                "invalid input command! `{}` is not a command; arguments go after `:`, e.g. {usage}",
                excerpt(name)
            ),
            InputError::UnknownCommand { name, spaced: None } => {
                write!(
                    f,
                    "invalid input command! `{}` is not a command (type help for the list)",
                    excerpt(name)
                )
            }
        }
    }
}

impl std::error::Error for InputError {}

/// At most 40 characters of what the user typed, for error messages.
fn excerpt(text: &str) -> String {
    const MAX: usize = 40;
    let clean: String = text.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    if clean.chars().count() <= MAX {
        clean
    } else {
        let cut: String = clean.chars().take(MAX).collect();
        format!("{cut}...")
    }
}

/// Rejects lines over [`MAX_INPUT_BYTES`].
fn check_length(line: &str) -> Result<(), InputError> {
    if line.len() > MAX_INPUT_BYTES { Err(InputError::LineTooLong) } else { Ok(()) }
}

/// The top menu: `1`, `2` or `3` (or the words `login`, `register`, `quit`).
pub fn parse_menu_choice(line: &str) -> Result<MenuChoice, InputError> {
    check_length(line)?;
    let choice = line.trim();
    match choice.to_ascii_lowercase().as_str() {
        "" => Err(InputError::Empty { what: "menu choice" }),
        "1" | "login" => Ok(MenuChoice::Login),
        "2" | "register" => Ok(MenuChoice::Register),
        "3" | "quit" | "exit" => Ok(MenuChoice::Quit),
        _ => Err(InputError::BadMenuChoice(choice.to_owned())),
    }
}

/// A positive 32-bit id, surrounding blanks ignored.
fn parse_id(text: &str, what: &'static str) -> Result<i32, InputError> {
    let trimmed = text.trim();
    match trimmed.parse::<i32>() {
        Ok(n) if n > 0 => Ok(n),
        _ if trimmed.is_empty() => Err(InputError::Empty { what }),
        _ => Err(InputError::BadId { what, text: trimmed.to_owned() }),
    }
}

/// Whether `text` is meant as a number: only digits, signs and dots (a name has something else).
fn numeric(text: &str) -> bool {
    text.trim().chars().all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.'))
}

/// The `userid:` prompt, which also takes the account's name (a name made only of digits
/// is taken as an id).
pub fn parse_account(line: &str) -> Result<Account, InputError> {
    check_length(line)?;
    if numeric(line) {
        return parse_id(line, "userid").map(|id| Account::Id(UserId(id)));
    }
    parse_name(line, "username").map(Account::Name)
}

/// A user or group name: blanks around it dropped, not empty, not too long.
fn parse_name(text: &str, what: &'static str) -> Result<String, InputError> {
    let name = text.trim();
    if name.is_empty() {
        return Err(InputError::Empty { what });
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(InputError::NameTooLong { what });
    }
    Ok(name.to_owned())
}

/// The `username:` prompt at registration.
pub fn parse_username(line: &str) -> Result<String, InputError> {
    check_length(line)?;
    parse_name(line, "username")
}

/// The `userpassword:` prompt. Taken as typed (blanks are part of a password).
pub fn parse_password(line: &str) -> Result<String, InputError> {
    check_length(line)?;
    if line.is_empty() {
        return Err(InputError::Empty { what: "password" });
    }
    if line.chars().count() > MAX_PASSWORD_CHARS {
        return Err(InputError::PasswordTooLong);
    }
    Ok(line.to_owned())
}

/// A chat text: as typed, but not empty or only blanks.
fn parse_message(text: &str) -> Result<String, InputError> {
    if text.trim().is_empty() { Err(InputError::EmptyMessage) } else { Ok(text.to_owned()) }
}

const CHAT_USAGE: &str = "chat:friendid:message";
const ADDFRIEND_USAGE: &str = "addfriend:friendid or addfriend:name";
const FINDUSER_USAGE: &str = "finduser:name";
const CREATEGROUP_USAGE: &str = "creategroup:groupname:groupdesc";
const ADDGROUP_USAGE: &str = "addgroup:groupid";
const GROUPCHAT_USAGE: &str = "groupchat:groupid:message";
const READS_USAGE: &str = "reads:userid";
const GREADS_USAGE: &str = "greads:groupid";
const HISTORY_USAGE: &str =
    "history:userid or history:ggroupid, then :before:mid or :after:mid and :pagesize if you like";

/// The format of a command that takes arguments, by its name.
fn usage_of(name: &str) -> Option<&'static str> {
    Some(match name {
        "chat" => CHAT_USAGE,
        "addfriend" => ADDFRIEND_USAGE,
        "creategroup" => CREATEGROUP_USAGE,
        "addgroup" => ADDGROUP_USAGE,
        "groupchat" => GROUPCHAT_USAGE,
        "history" => HISTORY_USAGE,
        "finduser" => FINDUSER_USAGE,
        "reads" => READS_USAGE,
        "greads" => GREADS_USAGE,
        _ => return None,
    })
}

/// The arguments of `history:`: `<target>[:before:<mid>|:after:<mid>][:<pagesize>]`,
/// where the target is a userid or `g` and a groupid.
fn parse_history(arg: &str) -> Result<Command, InputError> {
    let usage = InputError::Usage { command: "history", usage: HISTORY_USAGE };
    let parts: Vec<&str> = arg.split(':').map(str::trim).collect();
    let (target, rest) = parts.split_first().ok_or(usage.clone())?;
    let peer = match target.strip_prefix(['g', 'G']) {
        Some(group) => Peer::Group(GroupId(parse_id(group, "groupid")?)),
        None => Peer::User(UserId(parse_id(target, "userid")?)),
    };
    let mid = |text: &str| match text.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(InputError::BadMessageId(text.to_owned())),
    };
    let (from, rest) = match rest {
        [word, at, rest @ ..] if word.eq_ignore_ascii_case("before") => (HistoryFrom::Before(mid(at)?), rest),
        [word, at, rest @ ..] if word.eq_ignore_ascii_case("after") => (HistoryFrom::After(mid(at)?), rest),
        [word] if word.eq_ignore_ascii_case("before") || word.eq_ignore_ascii_case("after") => {
            return Err(usage);
        }
        rest => (HistoryFrom::Latest, rest),
    };
    let limit = match rest {
        [] => DEFAULT_HISTORY_PAGE,
        [size] => parse_id(size, "page size")?.unsigned_abs(),
        _ => return Err(usage),
    };
    Ok(Command::History { peer, from, limit })
}

/// A command line after login. The line is split at its first `:` into the
/// command and its argument, as the original did; messages may contain `:`.
/// An empty line is an error here; the console skips blank lines itself.
pub fn parse_command(line: &str) -> Result<Command, InputError> {
    check_length(line)?;
    let (name, arg) = match line.split_once(':') {
        Some((name, arg)) => (name, Some(arg)),
        None => (line, None),
    };
    let name = name.trim().to_ascii_lowercase();
    let usage = |command: &'static str, usage: &'static str| InputError::Usage { command, usage };
    if let Some(ctl) = crate::control::parse(&name, arg) {
        return ctl.map(Command::Ctl);
    }
    match (name.as_str(), arg) {
        ("", None) => Err(InputError::Empty { what: "command" }),
        // Like the original, anything after `help:` or `loginout:` is ignored.
        ("help", _) => Ok(Command::Help),
        ("loginout", _) => Ok(Command::Loginout),
        ("lists", _) => Ok(Command::Lists),
        ("history", Some(arg)) => parse_history(arg),
        ("chat", Some(arg)) => {
            let (to, msg) = arg.split_once(':').ok_or(usage("chat", CHAT_USAGE))?;
            Ok(Command::Chat { to: UserId(parse_id(to, "friendid")?), msg: parse_message(msg)? })
        }
        ("addfriend", Some(arg)) if numeric(arg) => {
            Ok(Command::AddFriend { friend: UserId(parse_id(arg, "friendid")?) })
        }
        ("addfriend", Some(arg)) => Ok(Command::AddFriendByName { name: parse_name(arg, "username")? }),
        ("finduser", Some(arg)) => Ok(Command::FindUser { name: parse_name(arg, "username")? }),
        ("logoutall", _) => Ok(Command::LogoutAll),
        ("reads", Some(arg)) => Ok(Command::Reads { peer: Peer::User(UserId(parse_id(arg, "userid")?)) }),
        ("greads", Some(arg)) => Ok(Command::Reads { peer: Peer::Group(GroupId(parse_id(arg, "groupid")?)) }),
        ("reads", None) => Err(usage("reads", READS_USAGE)),
        ("greads", None) => Err(usage("greads", GREADS_USAGE)),
        ("creategroup", Some(arg)) => {
            let (name, desc) = arg.split_once(':').ok_or(usage("creategroup", CREATEGROUP_USAGE))?;
            let name = parse_name(name, "groupname")?;
            if desc.chars().count() > MAX_DESC_CHARS {
                return Err(InputError::DescTooLong);
            }
            Ok(Command::CreateGroup { name, desc: desc.to_owned() })
        }
        ("addgroup", Some(arg)) => Ok(Command::AddGroup { group: GroupId(parse_id(arg, "groupid")?) }),
        ("groupchat", Some(arg)) => {
            let (group, msg) = arg.split_once(':').ok_or(usage("groupchat", GROUPCHAT_USAGE))?;
            Ok(Command::GroupChat { group: GroupId(parse_id(group, "groupid")?), msg: parse_message(msg)? })
        }
        ("chat", None) => Err(usage("chat", CHAT_USAGE)),
        ("addfriend", None) => Err(usage("addfriend", ADDFRIEND_USAGE)),
        ("creategroup", None) => Err(usage("creategroup", CREATEGROUP_USAGE)),
        ("addgroup", None) => Err(usage("addgroup", ADDGROUP_USAGE)),
        ("groupchat", None) => Err(usage("groupchat", GROUPCHAT_USAGE)),
        ("history", None) => Err(usage("history", HISTORY_USAGE)),
        ("finduser", None) => Err(usage("finduser", FINDUSER_USAGE)),
        (other, _) => {
            // `chat 2 hello`: a known command followed by a blank instead of `:`.
            let first = other.split_whitespace().next().unwrap_or_default();
            Err(InputError::UnknownCommand { name: other.to_owned(), spaced: usage_of(first) })
        }
    }
}

/// What Tab completes after login: the command names, with their `:`.
const COMPLETIONS: [&str; 11] = [
    "help",
    "chat:",
    "addfriend:",
    "finduser:",
    "creategroup:",
    "addgroup:",
    "groupchat:",
    "lists",
    "history:",
    "loginout",
    "logoutall",
];

/// Completions for the text before the cursor (byte `pos`), replacing the
/// line from its start: command names that begin with what is typed, while
/// the cursor is still in the command part.
pub fn complete_command(line: &str, pos: usize) -> Vec<String> {
    let before = line.get(..pos).unwrap_or(line);
    if before.contains(':') {
        return Vec::new();
    }
    let word = before.trim_start().to_ascii_lowercase();
    COMPLETIONS
        .iter()
        .chain(crate::control::COMPLETIONS.iter())
        .filter(|c| c.starts_with(&word))
        .map(|c| (*c).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        parse_command(line).unwrap_or_else(|e| panic!("{line:?} should parse: {e}"))
    }

    fn err(line: &str) -> InputError {
        match parse_command(line) {
            Ok(c) => panic!("{line:?} should be rejected, got {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn menu_choices() {
        assert_eq!(parse_menu_choice("1"), Ok(MenuChoice::Login));
        assert_eq!(parse_menu_choice(" 2 "), Ok(MenuChoice::Register));
        assert_eq!(parse_menu_choice("3\r"), Ok(MenuChoice::Quit));
        assert_eq!(parse_menu_choice("Login"), Ok(MenuChoice::Login));
        assert_eq!(parse_menu_choice("quit"), Ok(MenuChoice::Quit));
        assert_eq!(parse_menu_choice(""), Err(InputError::Empty { what: "menu choice" }));
        assert_eq!(parse_menu_choice("   "), Err(InputError::Empty { what: "menu choice" }));
        assert_eq!(parse_menu_choice("abc"), Err(InputError::BadMenuChoice("abc".into())));
        assert_eq!(parse_menu_choice("4"), Err(InputError::BadMenuChoice("4".into())));
        assert_eq!(parse_menu_choice("1.0"), Err(InputError::BadMenuChoice("1.0".into())));
        assert_eq!(parse_menu_choice(&"1".repeat(MAX_INPUT_BYTES + 1)), Err(InputError::LineTooLong));
        let shown = parse_menu_choice("x".repeat(500).as_str()).map_err(|e| e.to_string());
        assert!(shown.is_err_and(|s| s.len() < 120), "long input is cut in the message");
    }

    #[test]
    fn accounts_by_id_or_name() {
        assert_eq!(parse_account(" 7 "), Ok(Account::Id(UserId(7))));
        assert_eq!(parse_account(" bob "), Ok(Account::Name("bob".into())));
        assert_eq!(parse_account("zhang san"), Ok(Account::Name("zhang san".into())));
        assert_eq!(parse_account("1x"), Ok(Account::Name("1x".into())));
        assert_eq!(parse_account(""), Err(InputError::Empty { what: "userid" }));
        for bad in ["0", "-1", "2147483648", "6.7"] {
            assert_eq!(parse_account(bad), Err(InputError::BadId { what: "userid", text: bad.into() }));
        }
        assert_eq!(parse_command("addfriend:bob"), Ok(Command::AddFriendByName { name: "bob".into() }));
        assert_eq!(parse_command("addfriend: 5 "), Ok(Command::AddFriend { friend: UserId(5) }));
        assert_eq!(parse_command("finduser:bob"), Ok(Command::FindUser { name: "bob".into() }));
        assert_eq!(parse_command("logoutall"), Ok(Command::LogoutAll));
        assert_eq!(parse_command("addfriend:bob").map(|c| c.msgid()), Ok(Some(MsgId::FindUser)));
    }

    #[test]
    fn names_and_passwords() {
        assert_eq!(parse_username(" zhang san "), Ok("zhang san".into()));
        assert_eq!(parse_username("张三"), Ok("张三".into()));
        assert_eq!(parse_username(""), Err(InputError::Empty { what: "username" }));
        assert_eq!(parse_username(&"n".repeat(MAX_NAME_CHARS)), Ok("n".repeat(MAX_NAME_CHARS)));
        assert_eq!(
            parse_username(&"n".repeat(MAX_NAME_CHARS + 1)),
            Err(InputError::NameTooLong { what: "username" })
        );
        // Characters, not bytes: 50 CJK characters are 150 bytes and still fine.
        assert!(parse_username(&"张".repeat(MAX_NAME_CHARS)).is_ok());
        assert_eq!(parse_password(" p w "), Ok(" p w ".into()));
        assert_eq!(parse_password(""), Err(InputError::Empty { what: "password" }));
        assert_eq!(parse_password(&"p".repeat(MAX_PASSWORD_CHARS + 1)), Err(InputError::PasswordTooLong));
        assert_eq!(parse_password(&"p".repeat(MAX_INPUT_BYTES + 1)), Err(InputError::LineTooLong));
    }

    #[test]
    fn every_command() {
        assert_eq!(ok("help"), Command::Help);
        assert_eq!(ok("help:anything"), Command::Help);
        assert_eq!(ok("lists"), Command::Lists);
        assert_eq!(ok("loginout"), Command::Loginout);
        assert_eq!(ok(" LOGINOUT "), Command::Loginout);
        assert_eq!(ok("chat:2:hello"), Command::Chat { to: UserId(2), msg: "hello".into() });
        assert_eq!(ok("chat: 2 :a:b:c"), Command::Chat { to: UserId(2), msg: "a:b:c".into() });
        assert_eq!(ok("chat:2: spaced "), Command::Chat { to: UserId(2), msg: " spaced ".into() });
        assert_eq!(ok("addfriend:5"), Command::AddFriend { friend: UserId(5) });
        assert_eq!(
            ok("creategroup:g1:a group"),
            Command::CreateGroup { name: "g1".into(), desc: "a group".into() }
        );
        assert_eq!(ok("creategroup:g1:"), Command::CreateGroup { name: "g1".into(), desc: String::new() });
        assert_eq!(ok("creategroup:g1:d:e"), Command::CreateGroup { name: "g1".into(), desc: "d:e".into() });
        assert_eq!(ok("addgroup:3"), Command::AddGroup { group: GroupId(3) });
        assert_eq!(ok("groupchat:3:hi all"), Command::GroupChat { group: GroupId(3), msg: "hi all".into() });
        assert_eq!(ok("chat:2:你好"), Command::Chat { to: UserId(2), msg: "你好".into() });
    }

    #[test]
    fn msgids_of_commands() {
        assert_eq!(Command::Help.msgid(), None);
        assert_eq!(ok("chat:2:x").msgid(), Some(MsgId::OneChat));
        assert_eq!(ok("addfriend:2").msgid(), Some(MsgId::AddFriend));
        assert_eq!(ok("creategroup:g:d").msgid(), Some(MsgId::CreateGroup));
        assert_eq!(ok("addgroup:2").msgid(), Some(MsgId::AddGroup));
        assert_eq!(ok("groupchat:2:x").msgid(), Some(MsgId::GroupChat));
        assert_eq!(ok("lists").msgid(), Some(MsgId::List));
        assert_eq!(ok("loginout").msgid(), Some(MsgId::Loginout));
        assert_eq!(ok("history:2").msgid(), Some(MsgId::History));
    }

    #[test]
    fn history_commands() {
        let history = |peer, from, limit| Command::History { peer, from, limit };
        let (bob, devs) = (Peer::User(UserId(2)), Peer::Group(GroupId(5)));
        assert_eq!(ok("history:2"), history(bob, HistoryFrom::Latest, DEFAULT_HISTORY_PAGE));
        assert_eq!(ok("history:g5"), history(devs, HistoryFrom::Latest, DEFAULT_HISTORY_PAGE));
        assert_eq!(ok("HISTORY: G5 "), history(devs, HistoryFrom::Latest, DEFAULT_HISTORY_PAGE));
        assert_eq!(ok("history:2:50"), history(bob, HistoryFrom::Latest, 50));
        assert_eq!(
            ok("history:2:before:1042"),
            history(bob, HistoryFrom::Before(1042), DEFAULT_HISTORY_PAGE)
        );
        assert_eq!(ok("history:g5:before:1042:10"), history(devs, HistoryFrom::Before(1042), 10));
        assert_eq!(ok("history:2:after:7"), history(bob, HistoryFrom::After(7), DEFAULT_HISTORY_PAGE));
        assert_eq!(ok("history:2:After:7:3"), history(bob, HistoryFrom::After(7), 3));

        let usage = InputError::Usage { command: "history", usage: HISTORY_USAGE };
        assert_eq!(err("history"), usage);
        assert_eq!(err("history:2:before"), usage);
        assert_eq!(err("history:2:10:20"), usage);
        assert_eq!(err("history:2:before:9:10:11"), usage);
        assert_eq!(err("history:"), InputError::Empty { what: "userid" });
        assert_eq!(err("history:g"), InputError::Empty { what: "groupid" });
        assert_eq!(err("history:bob"), InputError::BadId { what: "userid", text: "bob".into() });
        assert_eq!(err("history:gx"), InputError::BadId { what: "groupid", text: "x".into() });
        assert_eq!(err("history:2:0"), InputError::BadId { what: "page size", text: "0".into() });
        assert_eq!(err("history:2:before:x"), InputError::BadMessageId("x".into()));
        assert_eq!(err("history:2:after:-1"), InputError::BadMessageId("-1".into()));
        assert!(err("history:2:before:x").to_string().contains("message id must be a positive number"));
        assert!(err("history").to_string().starts_with("history command invalid! format: history:userid"));
    }

    #[test]
    fn missing_colons() {
        let usage = |command, usage| InputError::Usage { command, usage };
        assert_eq!(err("chat"), usage("chat", CHAT_USAGE));
        assert_eq!(err("chat:2"), usage("chat", CHAT_USAGE));
        assert_eq!(err("addfriend"), usage("addfriend", ADDFRIEND_USAGE));
        assert_eq!(err("creategroup"), usage("creategroup", CREATEGROUP_USAGE));
        assert_eq!(err("creategroup:g"), usage("creategroup", CREATEGROUP_USAGE));
        assert_eq!(err("addgroup"), usage("addgroup", ADDGROUP_USAGE));
        assert_eq!(err("groupchat"), usage("groupchat", GROUPCHAT_USAGE));
        assert_eq!(err("groupchat:3"), usage("groupchat", GROUPCHAT_USAGE));
        assert_eq!(err("chat:2").to_string(), "chat command invalid! format: chat:friendid:message");
    }

    #[test]
    fn bad_ids() {
        let bad = |what, text: &str| InputError::BadId { what, text: text.into() };
        assert_eq!(err("chat:abc:hi"), bad("friendid", "abc"));
        assert_eq!(err("chat:0:hi"), bad("friendid", "0"));
        assert_eq!(err("chat::hi"), InputError::Empty { what: "friendid" });
        assert_eq!(ok("addfriend:x"), Command::AddFriendByName { name: "x".into() }, "a name");
        assert_eq!(err("addfriend:"), InputError::Empty { what: "friendid" });
        assert_eq!(err("addfriend:-3"), bad("friendid", "-3"));
        assert_eq!(err("addgroup:1e3"), bad("groupid", "1e3"));
        assert_eq!(err("groupchat:g:hi"), bad("groupid", "g"));
        assert_eq!(err("addgroup:99999999999"), bad("groupid", "99999999999"));
    }

    #[test]
    fn empty_and_too_long_parts() {
        assert_eq!(err("chat:2:"), InputError::EmptyMessage);
        assert_eq!(err("chat:2:   "), InputError::EmptyMessage);
        assert_eq!(err("groupchat:3:"), InputError::EmptyMessage);
        assert_eq!(err("creategroup::desc"), InputError::Empty { what: "groupname" });
        assert_eq!(
            err(&format!("creategroup:{}:d", "g".repeat(MAX_NAME_CHARS + 1))),
            InputError::NameTooLong { what: "groupname" }
        );
        assert_eq!(
            err(&format!("creategroup:g:{}", "d".repeat(MAX_DESC_CHARS + 1))),
            InputError::DescTooLong
        );
        assert_eq!(err(&format!("chat:2:{}", "x".repeat(MAX_INPUT_BYTES))), InputError::LineTooLong);
        assert!(parse_command(&format!("chat:2:{}", "x".repeat(MAX_INPUT_BYTES - 7))).is_ok());
        assert_eq!(err(""), InputError::Empty { what: "command" });
    }

    #[test]
    fn completion_of_command_names() {
        assert_eq!(complete_command("ch", 2), vec!["chat:".to_owned()]);
        assert_eq!(complete_command("add", 3), vec!["addfriend:".to_owned(), "addgroup:".to_owned()]);
        assert_eq!(complete_command("", 0).len(), 11 + crate::control::COMPLETIONS.len());
        assert_eq!(complete_command("unb", 3), vec!["unblock:".to_owned()]);
        assert_eq!(complete_command("hi", 2), vec!["history:".to_owned()]);
        assert!(complete_command("chat:2", 6).is_empty());
        assert!(complete_command("zz", 2).is_empty());
        assert_eq!(complete_command("lo", 99), vec!["loginout".to_owned(), "logoutall".to_owned()]);
    }

    #[test]
    fn unknown_commands() {
        assert_eq!(err("hello"), InputError::UnknownCommand { name: "hello".into(), spaced: None });
        assert_eq!(err("foo:bar"), InputError::UnknownCommand { name: "foo".into(), spaced: None });
        assert_eq!(
            err("chat 2 hi"),
            InputError::UnknownCommand { name: "chat 2 hi".into(), spaced: Some(CHAT_USAGE) }
        );
        assert_eq!(
            err("addfriend 2"),
            InputError::UnknownCommand { name: "addfriend 2".into(), spaced: Some(ADDFRIEND_USAGE) }
        );
        assert!(err("hello").to_string().starts_with("invalid input command!"));
        assert!(err("chat 2 hi").to_string().contains("chat:friendid:message"));
    }
}
