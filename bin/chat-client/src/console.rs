//! The console: the original client's menu flow and commands, driven by the
//! lines the user types, the frames the server sends and signals; and the
//! delivery extension's client side: acknowledging what was shown, dropping
//! what comes again, and getting a lost connection back by itself.
//!
//! One request is in flight at a time: after sending, the console waits for
//! the server's answer (the extension answers every request) and shows the
//! outcome before it asks for the next line, so piped scripts run in order.
//! Chats and reports that arrive meanwhile are printed as they come.
//!
//! When the connection of a logged-in user is lost, the console says so and
//! reconnects with backoff (`backoff`), resuming the session with its token
//! and how far each conversation was received (`inbox`); if the token is
//! refused it logs in with the password it was given. A chat whose ACK was
//! lost is sent again with the same `cid` (the server stores it once), a
//! command typed meanwhile waits for the connection, and after
//! `reconnect_for` without one the console gives up. When the server closes
//! the connection while nobody is logged in (servers close connections that
//! do not log in for a while), the console says so and connects again for the
//! next login or registration. Parsing lines, decoding frames and wording
//! output live in `command`, `incoming` and `format`; this module only decides
//! what happens next.

use std::future::pending;
use std::time::Duration;

use chat_proto::{ErrorCode, MsgId, UserId};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::{Instant, sleep_until};

use crate::backoff::Backoff;
use crate::command::{Account, parse_account, parse_username};
use crate::command::{Command, InputError, MenuChoice, parse_command, parse_menu_choice, parse_password};
use crate::conn::{self, Connection, NetEvent};
use crate::control::Ctl;
use crate::format;
use crate::inbox::{self, Inbox};
use crate::incoming::{Incoming, LoginInfo, ServerError};
use crate::notes::Notes;
use crate::random::Rng;
use crate::request::{self, Cids};
use crate::terminal::{Input, InputEvent, Output};

/// How the server's NOTICE begins when another device logged the account out everywhere.
const LOGGED_OUT_EVERYWHERE: &str = "logged out everywhere";

/// How long to wait for the answer to the logout on the way out.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(2);
/// After the end of piped input, how long to keep printing what arrives.
const EOF_GRACE: Duration = Duration::from_millis(300);

/// How the console ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The process exit status.
    pub code: i32,
    /// A last message for stderr, printed once the terminal is restored.
    pub message: Option<String>,
}

/// Why the console stops what it is doing.
enum Stop {
    /// End of input (Ctrl-D, or the end of piped stdin).
    Eof,
    /// Ctrl-C, SIGINT, SIGTERM or SIGHUP.
    Interrupted,
    /// The connection is gone for good; the text says how.
    Gone(String),
    /// The lost session cannot be had back without the user: back to the menu.
    LoggedOut,
}

/// What happened while waiting.
enum Event {
    Input(InputEvent),
    /// A frame that is not a chat (chats are shown as they arrive).
    Frame(Incoming),
    /// The connection closed and is not got back by itself (nobody is logged
    /// in, or reconnecting is off); the text says how.
    Closed(String),
    /// The logged-in user's connection was lost; reconnecting has begun.
    Lost,
    /// The connection is back, with the session.
    Back,
    Timeout,
}

/// Whether the command loop goes on.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    LoggedOut,
}

/// What to do with a request whose connection is lost before its answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnLost {
    /// Send it again once the connection is back: it is idempotent (chats
    /// carry a `cid`; lists and history only read).
    Resend,
    /// Say the outcome is unknown: doing it twice could differ from once.
    Report,
}

/// The logged-in user.
struct Session {
    id: UserId,
    name: String,
    /// Kept in memory to log in again when the server no longer knows the
    /// resume token (expired, or the log that held it was lost).
    password: String,
    /// The resume token from the last login ack, if the server gave one.
    token: Option<String>,
}

/// A lost connection being got back.
struct Lost {
    /// When it was lost (giving up is counted from here).
    since: Instant,
    /// When the next attempt is due.
    retry_at: Instant,
    backoff: Backoff,
    /// Why the last attempt failed, for the message when giving up.
    why: String,
    /// Whether the user was told the account is still held (errno 2).
    told_held: bool,
}

/// The connection to the server.
enum Link {
    Up(Connection),
    /// None, and nobody logged in: one is opened for the next login or registration.
    Idle,
    /// Lost under a logged-in user, being got back.
    Lost(Lost),
}

/// Why a reconnection attempt failed.
enum Failure {
    /// The server answered the RESUME or LOGIN with an error.
    Refused(ServerError),
    /// No connection, no answer, or the connection closed; the text says which.
    Other(String),
}

/// The signals that end the console cleanly.
struct Signals(Vec<Signal>);

impl Signals {
    fn install() -> Signals {
        let kinds = [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup()];
        Signals(kinds.into_iter().filter_map(|kind| signal(kind).ok()).collect())
    }

    async fn recv(&mut self) {
        if self.0.is_empty() {
            return pending().await;
        }
        let waits = self.0.iter_mut().map(|s| Box::pin(s.recv()));
        if futures::future::select_all(waits).await.0.is_none() {
            pending::<()>().await;
        }
    }
}

/// Where and how to connect.
pub struct Settings {
    /// `HOST:PORT`.
    pub addr: String,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long to wait for the answer to a request.
    pub reply_timeout: Duration,
    /// How long to keep trying to get a lost connection back; zero: do not try.
    pub reconnect_for: Duration,
    /// TLS to the server, if asked for (`--tls`).
    pub tls: Option<std::sync::Arc<chat_tls::ClientConfig>>,
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => pending().await,
    }
}

/// Connects, sends `frame` (a RESUME or LOGIN) and waits for its login ack.
async fn handshake(settings: &Settings, frame: String) -> Result<(Connection, LoginInfo), Failure> {
    let mut conn = conn::connect(&settings.addr, settings.connect_timeout, settings.tls.as_ref())
        .await
        .map_err(|e| Failure::Other(format!("cannot connect: {e}")))?;
    if conn.outgoing.send(frame).await.is_err() {
        return Err(Failure::Other("cannot send".to_owned()));
    }
    let deadline = Instant::now() + settings.reply_timeout;
    let mut notice = None;
    loop {
        let event = match tokio::time::timeout_at(deadline, conn.events.recv()).await {
            Err(_) => return Err(Failure::Other("no answer from the server".to_owned())),
            Ok(event) => event,
        };
        match event {
            Some(NetEvent::Frame(Incoming::LoginAck(Ok(info)))) => return Ok((conn, info)),
            Some(NetEvent::Frame(Incoming::LoginAck(Err(e)))) => return Err(Failure::Refused(e)),
            Some(NetEvent::Frame(Incoming::Ack { outcome: Err(e), .. })) => return Err(Failure::Refused(e)),
            // A server that is full or shutting down says so before it closes.
            Some(NetEvent::Frame(Incoming::Notice(e))) => notice = Some(format::clean(&e.errmsg)),
            // Nothing else comes before the ack.
            Some(NetEvent::Frame(_)) => {}
            Some(NetEvent::Closed(_)) | None => {
                let why = match notice {
                    Some(notice) => format!("the server closed the connection: {notice}"),
                    None => "the server closed the connection".to_owned(),
                };
                return Err(Failure::Other(why));
            }
        }
    }
}

/// The console over one connection at a time.
pub struct Console {
    settings: Settings,
    link: Link,
    input: Input,
    out: Output,
    signals: Signals,
    session: Option<Session>,
    /// The last NOTICE, to explain a close that follows it.
    notice: Option<String>,
    /// What this session has shown and owes acknowledgements for.
    inbox: Inbox,
    /// Names seen, and the receipts and typing told (issue 20).
    notes: Notes,
    cids: Cids,
    rng: Rng,
}

impl Console {
    /// A console over a connection to `settings.addr`, reading from `input` and printing to `out`.
    pub fn new(settings: Settings, conn: Connection, input: Input, out: Output) -> Console {
        let signals = Signals::install();
        let mut rng = Rng::from_os();
        let cids = Cids::new(rng.next_u64());
        Console {
            settings,
            link: Link::Up(conn),
            input,
            out,
            signals,
            session: None,
            notice: None,
            inbox: Inbox::default(),
            notes: Notes::default(),
            cids,
            rng,
        }
    }

    /// Runs until the user quits, input ends or the server goes away.
    pub async fn run(mut self) -> Exit {
        let stop = match self.menu().await {
            Ok(()) => return Exit { code: 0, message: None },
            Err(stop) => stop,
        };
        match stop {
            Stop::Gone(message) => Exit { code: 1, message: Some(message) },
            Stop::Eof | Stop::Interrupted | Stop::LoggedOut => {
                if matches!(stop, Stop::Eof) && !self.out.is_terminal() && self.session.is_some() {
                    self.grace().await;
                }
                self.logout_on_exit().await;
                Exit { code: 0, message: None }
            }
        }
    }

    /// The top menu, until `3`.
    async fn menu(&mut self) -> Result<(), Stop> {
        let mut show_menu = true;
        loop {
            if show_menu {
                self.out.info(format::MENU);
            }
            show_menu = true;
            match self.read_line("choice: ", false).await?.and_then(|line| parse_menu_choice(&line)) {
                Ok(MenuChoice::Login) => self.login().await?,
                Ok(MenuChoice::Register) => self.register().await?,
                Ok(MenuChoice::Quit) => return Ok(()),
                Err(e) => {
                    self.out.error(&e.to_string());
                    show_menu = false;
                }
            }
        }
    }

    async fn login(&mut self) -> Result<(), Stop> {
        // An id, as the original asks for, or (extension) the account's name.
        let Some(account) = self.ask("userid: ", false, parse_account).await? else { return Ok(()) };
        let Some(password) = self.ask("userpassword: ", true, parse_password).await? else { return Ok(()) };
        let frame = match &account {
            Account::Id(id) => request::login(*id, &password),
            Account::Name(name) => request::login_by_name(name, &password),
        };
        match self.request(frame, MsgId::Login, None, OnLost::Report).await? {
            None => Ok(()),
            Some(Incoming::LoginAck(Ok(info))) => {
                self.out.info(&format::login_screen(&info));
                self.notes.learn_lists(&info.lists);
                self.notes.learn(info.id, &info.name);
                for message in &info.offline {
                    match format::offline(message) {
                        Ok(text) => self.out.info(&text),
                        Err(text) => self.out.error(&text),
                    }
                }
                self.out.info(&format::help());
                // The replay of what waits for the user follows the ack; a new
                // session starts counting from nothing shown.
                self.inbox = Inbox::default();
                self.session = Some(Session { id: info.id, name: info.name, password, token: info.resume });
                match self.commands().await {
                    // Told already; the menu follows.
                    Err(Stop::LoggedOut) => Ok(()),
                    other => other,
                }
            }
            Some(Incoming::LoginAck(Err(e)) | Incoming::Ack { outcome: Err(e), .. }) => {
                self.out.error(&format::login_failed(&e));
                Ok(())
            }
            Some(other) => {
                self.out.error(&format!("unexpected answer to login: {other:?}"));
                Ok(())
            }
        }
    }

    /// Asks for one value at a prompt; a bad answer is reported and gives `None`.
    async fn ask<T>(
        &mut self,
        prompt: &str,
        secret: bool,
        parse: fn(&str) -> Result<T, InputError>,
    ) -> Result<Option<T>, Stop> {
        match self.read_line(prompt, secret).await?.and_then(|line| parse(&line)) {
            Ok(value) => Ok(Some(value)),
            Err(e) => {
                self.out.error(&e.to_string());
                Ok(None)
            }
        }
    }

    async fn register(&mut self) -> Result<(), Stop> {
        let Some(name) = self.ask("username: ", false, parse_username).await? else { return Ok(()) };
        let Some(password) = self.ask("userpassword: ", true, parse_password).await? else { return Ok(()) };
        match self.request(request::register(&name, &password), MsgId::Reg, None, OnLost::Report).await? {
            None => {}
            Some(Incoming::RegAck(Ok(id))) => self.out.info(&format::registered(id)),
            Some(Incoming::RegAck(Err(e)) | Incoming::Ack { outcome: Err(e), .. }) => {
                self.out.error(&format::failure("register", &e))
            }
            Some(other) => self.out.error(&format!("unexpected answer to register: {other:?}")),
        }
        Ok(())
    }

    /// The commands after login, until `loginout`.
    async fn commands(&mut self) -> Result<(), Stop> {
        while let Some(session) = &self.session {
            let prompt = format::prompt(session.id, &session.name);
            let line = match self.read_line(&prompt, false).await? {
                Ok(line) => line,
                Err(e) => {
                    self.out.error(&e.to_string());
                    continue;
                }
            };
            // A blank line does nothing, as in a shell.
            if line.trim().is_empty() {
                continue;
            }
            self.input.add_history(&line);
            match parse_command(&line) {
                Ok(cmd) => {
                    if self.execute(cmd).await? == Flow::LoggedOut {
                        return Ok(());
                    }
                }
                Err(e) => self.out.error(&e.to_string()),
            }
        }
        Ok(())
    }

    /// Sends one command and shows its outcome.
    async fn execute(&mut self, cmd: Command) -> Result<Flow, Stop> {
        let (Some(session), Some(sent)) = (&self.session, cmd.msgid()) else {
            self.out.info(&format::help());
            return Ok(Flow::Continue);
        };
        // Issue 21's commands that ask something first (`control.rs`).
        if let Command::Ctl(ctl @ (Ctl::Passwd | Ctl::DeleteAccount | Ctl::DeleteGroup(_))) = &cmd {
            return self.execute_asking(ctl.clone()).await;
        }
        let chat = matches!(cmd, Command::Chat { .. } | Command::GroupChat { .. });
        let cid = chat.then(|| self.cids.next_cid());
        let Some(frame) = request::command(&cmd, session.id, &session.name, cid.as_deref()) else {
            return Ok(Flow::Continue);
        };
        let what = format::command_name(&cmd);
        if let Command::AddFriendByName { name } = &cmd {
            // Two steps: the id of that name, then ADD_FRIEND with it.
            match self.request(frame, sent, None, OnLost::Report).await? {
                Some(Incoming::FoundUser(Ok(found))) => {
                    let Some(session) = &self.session else { return Ok(Flow::Continue) };
                    let add = Command::AddFriend { friend: found.id };
                    let Some(frame) = request::command(&add, session.id, &session.name, None) else {
                        return Ok(Flow::Continue);
                    };
                    match self.request(frame, MsgId::AddFriend, None, OnLost::Report).await? {
                        Some(Incoming::Ack { outcome: Ok(_), .. }) => self.out.info(&format!(
                            "user {} (id {}) is now your friend (lists shows your lists)",
                            format::clean(name),
                            found.id
                        )),
                        Some(Incoming::Ack { outcome: Err(e), .. }) => {
                            self.out.error(&format::failure(what, &e))
                        }
                        Some(other) => self.out.error(&format!("unexpected answer to {what}: {other:?}")),
                        None => {}
                    }
                }
                Some(Incoming::FoundUser(Err(e)) | Incoming::Ack { outcome: Err(e), .. }) => {
                    self.out.error(&format::failure(what, &e))
                }
                Some(other) => self.out.error(&format!("unexpected answer to {what}: {other:?}")),
                None => {}
            }
            return Ok(Flow::Continue);
        }
        if matches!(cmd, Command::Loginout | Command::LogoutAll) {
            // What was shown is acknowledged (and marked read) before the session ends.
            self.flush_acks().await;
            self.flush_marks().await;
            match self.request(frame, sent, None, OnLost::Report).await? {
                Some(Incoming::Ack { outcome: Err(e), .. }) => self.out.error(&format::failure(what, &e)),
                Some(_) => self.out.info(&format::success(&cmd, None)),
                None => {}
            }
            self.session = None;
            // Anything pushed after the flush comes again at the next login.
            self.inbox = Inbox::default();
            if matches!(self.link, Link::Lost(_)) {
                self.link = Link::Idle;
            }
            return Ok(Flow::LoggedOut);
        }
        if cmd == Command::Lists {
            // The counts in the answer come from the acknowledged cursors: acknowledge
            // what was shown first, so that it is not counted as unread.
            self.flush_acks().await;
        }
        let on_lost = match cmd {
            Command::Chat { .. } | Command::GroupChat { .. } | Command::Lists | Command::History { .. } => {
                OnLost::Resend
            }
            _ => OnLost::Report,
        };
        match self.request(frame, sent, cid.as_deref(), on_lost).await? {
            None => {}
            Some(Incoming::ListAck(Ok(lists))) => {
                self.notes.learn_lists(&lists);
                self.out.info(&format::lists(&lists))
            }
            Some(Incoming::Reads(Ok(list))) => {
                if let Command::Reads { peer } = cmd {
                    self.out.info(&format::reads(peer, &list, |id| self.notes.name(id)));
                }
            }
            Some(Incoming::Listing(v)) => self.out.info(&crate::control::listing(&v)),
            Some(Incoming::FoundUser(Ok(found))) => self.out.info(&format::found(&found)),
            Some(Incoming::HistoryAck(Ok(page))) => {
                if let Command::History { peer, from, limit } = cmd {
                    self.out.info(&format::history(peer, from, limit, &page));
                }
            }
            Some(Incoming::Ack { outcome: Ok(groupid), .. })
                if !matches!(cmd, Command::Lists | Command::History { .. }) =>
            {
                self.out.info(&format::success(&cmd, groupid))
            }
            Some(
                Incoming::Ack { outcome: Err(e), .. }
                | Incoming::ListAck(Err(e))
                | Incoming::HistoryAck(Err(e))
                | Incoming::FoundUser(Err(e))
                | Incoming::Reads(Err(e)),
            ) => self.out.error(&format::failure(what, &e)),
            Some(other) => self.out.error(&format!("unexpected answer to {what}: {other:?}")),
        }
        Ok(Flow::Continue)
    }

    /// `passwd`, `deleteaccount` and `deletegroup`: ask for the passwords or a confirmation,
    /// then send. A deleted account goes back to the menu.
    async fn execute_asking(&mut self, ctl: Ctl) -> Result<Flow, Stop> {
        let nothing = (String::new(), String::new());
        let secrets = match &ctl {
            Ctl::Passwd => {
                let Some(old) = self.ask("old password: ", true, parse_password).await? else {
                    return Ok(Flow::Continue);
                };
                let Some(new) = self.ask("new password: ", true, parse_password).await? else {
                    return Ok(Flow::Continue);
                };
                let Some(again) = self.ask("new password again: ", true, parse_password).await? else {
                    return Ok(Flow::Continue);
                };
                if new != again {
                    self.out.error("passwd: the two new passwords differ; nothing changed");
                    return Ok(Flow::Continue);
                }
                (old, new)
            }
            Ctl::DeleteAccount => {
                let Some(password) = self.ask("userpassword: ", true, parse_password).await? else {
                    return Ok(Flow::Continue);
                };
                if !self.confirm("delete your account for good (it cannot be undone)? type yes: ").await? {
                    return Ok(Flow::Continue);
                }
                (password, String::new())
            }
            Ctl::DeleteGroup(g) => {
                let prompt = format!("delete group {g} and its messages for every member? type yes: ");
                if !self.confirm(&prompt).await? {
                    return Ok(Flow::Continue);
                }
                nothing
            }
            _ => nothing,
        };
        let frame = ctl.frame((&secrets.0, &secrets.1));
        match self.request(frame, ctl.msgid(), None, OnLost::Report).await? {
            Some(Incoming::Ack { outcome: Ok(_), .. }) => {
                self.out.info(&ctl.success());
                if ctl == Ctl::Passwd
                    && let Some(session) = &mut self.session
                {
                    // The old token ended; a lost connection logs in with the new password.
                    session.password = secrets.1;
                    session.token = None;
                }
                if ctl == Ctl::DeleteAccount {
                    self.session = None;
                    self.inbox = Inbox::default();
                    if matches!(self.link, Link::Lost(_)) {
                        self.link = Link::Idle;
                    }
                    return Ok(Flow::LoggedOut);
                }
            }
            Some(Incoming::Ack { outcome: Err(e), .. }) => self.out.error(&format::failure(ctl.name(), &e)),
            Some(other) => self.out.error(&format!("unexpected answer to {}: {other:?}", ctl.name())),
            None => {}
        }
        Ok(Flow::Continue)
    }

    /// Asks a yes/no question; only `yes` is yes.
    async fn confirm(&mut self, prompt: &str) -> Result<bool, Stop> {
        let yes = matches!(self.read_line(prompt, false).await?, Ok(line) if line.trim().eq_ignore_ascii_case("yes"));
        if !yes {
            self.out.info("cancelled; nothing changed");
        }
        Ok(yes)
    }

    /// Sends a frame and waits for its answer (an ACK must echo `cid` if it
    /// carries one); `None` (already reported) when none comes in time or the
    /// connection was lost before it and `on_lost` says not to send it again.
    async fn request(
        &mut self,
        frame: String,
        sent: MsgId,
        cid: Option<&str>,
        on_lost: OnLost,
    ) -> Result<Option<Incoming>, Stop> {
        self.send(&frame).await?;
        let timeout = self.settings.reply_timeout;
        let mut deadline = Instant::now() + timeout;
        loop {
            // No answer can come while the connection is being got back.
            let until = matches!(self.link, Link::Up(_)).then_some(deadline);
            match self.next_event(false, until).await? {
                Event::Frame(frame) if frame.answers(sent) && echoes(&frame, cid) => return Ok(Some(frame)),
                Event::Frame(frame) => self.show(frame),
                Event::Lost if on_lost == OnLost::Report => {
                    let what = format::request_name(sent);
                    self.out.error(&format::lost_before_answer(what));
                    return Ok(None);
                }
                Event::Back => {
                    self.send(&frame).await?;
                    deadline = Instant::now() + timeout;
                }
                Event::Closed(text) => return Err(Stop::Gone(text)),
                Event::Timeout => {
                    self.out.error(&format!(
                        "no answer from the server within {} s; it may still act on the request",
                        timeout.as_secs_f32()
                    ));
                    return Ok(None);
                }
                Event::Lost | Event::Input(_) => {}
            }
        }
    }

    /// Sends a frame: on a connection opened again if the server closed an
    /// idle one at the menu, or, under a logged-in user whose connection was
    /// lost, once it is back.
    async fn send(&mut self, frame: &str) -> Result<(), Stop> {
        loop {
            match &mut self.link {
                Link::Up(conn) => {
                    if conn.outgoing.send(frame.to_owned()).await.is_ok() {
                        return Ok(());
                    }
                    // The writer is gone, so the frame was not written: safe to send again.
                    match self.connection_closed(Some("cannot send".to_owned())) {
                        Event::Closed(text) => return Err(Stop::Gone(text)),
                        _ => continue,
                    }
                }
                Link::Idle => {
                    let addr = &self.settings.addr;
                    let conn = conn::connect(addr, self.settings.connect_timeout, self.settings.tls.as_ref())
                        .await
                        .map_err(|e| Stop::Gone(format!("connect server error: {addr}: {e}")))?;
                    self.link = Link::Up(conn);
                }
                Link::Lost(_) => self.wait_until_back().await?,
            }
        }
    }

    /// Waits, showing what arrives, until the lost connection is back.
    async fn wait_until_back(&mut self) -> Result<(), Stop> {
        self.out.error(format::WAITING);
        while matches!(self.link, Link::Lost(_)) {
            match self.next_event(false, None).await? {
                Event::Frame(frame) => self.show(frame),
                Event::Closed(text) => return Err(Stop::Gone(text)),
                Event::Back | Event::Lost | Event::Input(_) | Event::Timeout => {}
            }
        }
        Ok(())
    }

    /// One line from the user, showing what arrives meanwhile. A line that
    /// is too long is an `Err` the caller reports.
    async fn read_line(&mut self, prompt: &str, secret: bool) -> Result<Result<String, InputError>, Stop> {
        self.input.request(prompt, secret, self.session.is_some());
        loop {
            match self.next_event(true, None).await? {
                Event::Input(InputEvent::Line(line)) => return Ok(Ok(line)),
                Event::Input(InputEvent::TooLong) => return Ok(Err(InputError::LineTooLong)),
                Event::Input(InputEvent::Eof) => return Err(Stop::Eof),
                Event::Input(InputEvent::Interrupted) => return Err(Stop::Interrupted),
                Event::Input(InputEvent::Failed(e)) => {
                    self.out.error(&format!("cannot read input: {e}"));
                    return Err(Stop::Eof);
                }
                Event::Frame(frame) => self.show(frame),
                Event::Closed(text) if self.session.is_none() => {
                    self.out.error(&format!("{text}; it is opened again for the next login or registration"));
                }
                Event::Closed(text) => return Err(Stop::Gone(text)),
                Event::Lost | Event::Back | Event::Timeout => {}
            }
        }
    }

    /// The next thing that happens: a frame that is not a chat, a line (when
    /// `reading`), the loss or return of the connection, a signal, or the
    /// deadline. Meanwhile chats are shown (once each), acknowledgements go
    /// out when due, and a lost connection is tried again when its time comes.
    async fn next_event(&mut self, reading: bool, deadline: Option<Instant>) -> Result<Event, Stop> {
        enum Woke {
            Net(Option<NetEvent>),
            Input(InputEvent),
            Signal,
            Acks,
            Marks,
            Retry,
            Timeout,
        }
        loop {
            let (acks_at, marks_at, retry_at) = match &self.link {
                Link::Up(_) if self.session.is_some() => (self.inbox.due(), self.inbox.marks_due(), None),
                Link::Up(_) => (None, None, None),
                Link::Lost(lost) => (None, None, Some(lost.retry_at)),
                Link::Idle => (None, None, None),
            };
            let link = &mut self.link;
            let net = async {
                match link {
                    Link::Up(conn) => conn.events.recv().await,
                    _ => pending().await,
                }
            };
            let woke = tokio::select! {
                // Frames first, so that what the server said before is shown before the next line is acted on.
                biased;
                event = net => Woke::Net(event),
                () = self.signals.recv() => Woke::Signal,
                line = self.input.next(), if reading => Woke::Input(line),
                () = sleep_until_some(acks_at) => Woke::Acks,
                () = sleep_until_some(marks_at) => Woke::Marks,
                () = sleep_until_some(retry_at) => Woke::Retry,
                () = sleep_until_some(deadline) => Woke::Timeout,
            };
            match woke {
                Woke::Net(Some(NetEvent::Frame(frame @ (Incoming::Chat(_) | Incoming::GroupChat(_))))) => {
                    self.deliver(frame);
                    if self.inbox.batch_full() {
                        self.flush_acks().await;
                    }
                }
                Woke::Net(Some(NetEvent::Frame(frame))) => return Ok(Event::Frame(frame)),
                Woke::Net(Some(NetEvent::Closed(why))) => return Ok(self.connection_closed(why)),
                Woke::Net(None) => return Ok(self.connection_closed(None)),
                Woke::Input(line) => return Ok(Event::Input(line)),
                Woke::Signal => return Err(Stop::Interrupted),
                Woke::Acks => self.flush_acks().await,
                Woke::Marks => self.flush_marks().await,
                Woke::Retry => {
                    if self.try_reconnect().await? {
                        return Ok(Event::Back);
                    }
                }
                Woke::Timeout => return Ok(Event::Timeout),
            }
        }
    }

    /// Shows a chat unless it was shown before (by its place in the log); what another user
    /// sent and is shown is read (a read mark follows within [`inbox::MARK_DELAY`]).
    fn deliver(&mut self, frame: Incoming) {
        let me = self.session.as_ref().map(|s| s.id);
        let from = match &frame {
            Incoming::Chat(c) => Some((c.from, c.name.clone())),
            Incoming::GroupChat(g) => Some((g.from, g.name.clone())),
            _ => None,
        };
        if let Some((id, name)) = &from {
            self.notes.learn(*id, name);
            self.notes.spoke(*id);
        }
        if let Some((peer, seq)) = me.and_then(|me| inbox::place(&frame, me)) {
            let now = Instant::now();
            if !self.inbox.receive(peer, seq, now) {
                return;
            }
            if from.is_some_and(|(id, _)| Some(id) != me) {
                self.inbox.read(peer, seq, now);
            }
        }
        self.show(frame);
    }

    /// Sends the read marks owed (MARK_READ, one per conversation); their ACKs are not awaited.
    async fn flush_marks(&mut self) {
        let Link::Up(conn) = &self.link else { return };
        for (peer, seq) in self.inbox.take_marks() {
            let send = conn.outgoing.send(request::mark_read(peer, seq));
            if tokio::time::timeout(self.settings.reply_timeout, send).await.is_err() {
                return;
            }
        }
    }

    /// Sends the acknowledgements owed, if any.
    async fn flush_acks(&mut self) {
        let Link::Up(conn) = &self.link else { return };
        let acks = self.inbox.take_acks();
        if acks.is_empty() {
            return;
        }
        // If this fails the connection is going: the acks go with the RESUME,
        // or the server pushes those messages again and they are dropped here.
        let send = conn.outgoing.send(request::received(&acks));
        let _ = tokio::time::timeout(self.settings.reply_timeout, send).await;
    }

    /// The connection closed (`why`, if not cleanly): under a logged-in user,
    /// start getting it back ([`Event::Lost`]); otherwise [`Event::Closed`].
    fn connection_closed(&mut self, why: Option<String>) -> Event {
        let text = self.gone_text(why);
        // Logged out on every device (LOGOUT_ALL from another one): the session is over,
        // nothing to get back.
        if self.notice.as_deref().is_some_and(|n| n.starts_with(LOGGED_OUT_EVERYWHERE)) {
            self.session = None;
        }
        self.notice = None;
        if self.session.is_none() || self.settings.reconnect_for.is_zero() {
            self.link = Link::Idle;
            return Event::Closed(text);
        }
        self.out.error(&format::connection_lost(&text));
        let now = Instant::now();
        let mut backoff = Backoff::default();
        let retry_at = now + backoff.next_delay(self.rng.unit());
        self.link = Link::Lost(Lost { since: now, retry_at, backoff, why: text, told_held: false });
        Event::Lost
    }

    /// One attempt to get the lost connection back: RESUME with the token (or
    /// LOGIN with the password when there is none). `Ok(true)` when it is
    /// back; `Ok(false)` when the next attempt is scheduled; an error when
    /// the time is up ([`Stop::Gone`]), the user interrupts, or the session
    /// cannot be had back ([`Stop::LoggedOut`]).
    async fn try_reconnect(&mut self) -> Result<bool, Stop> {
        let (Link::Lost(lost), Some(session)) = (&self.link, &self.session) else { return Ok(false) };
        if lost.since.elapsed() >= self.settings.reconnect_for {
            return Err(Stop::Gone(format::gave_up(self.settings.reconnect_for, &lost.why)));
        }
        let resuming = session.token.is_some();
        let frame = match &session.token {
            Some(token) => request::resume(token, &self.inbox.resume_acks()),
            None => request::login(session.id, &session.password),
        };
        let result = tokio::select! {
            biased;
            () = self.signals.recv() => return Err(Stop::Interrupted),
            result = handshake(&self.settings, frame) => result,
        };
        let (Link::Lost(lost), Some(session)) = (&mut self.link, &mut self.session) else { return Ok(false) };
        let failure = match result {
            Ok((conn, info)) => {
                // A resume answers with the same token; a login with a new one.
                session.token = info.resume.or(session.token.take());
                self.link = Link::Up(conn);
                self.inbox.reconnected();
                self.out.error(&format::reconnected(resuming));
                return Ok(true);
            }
            Err(failure) => failure,
        };
        let now = Instant::now();
        match failure {
            Failure::Refused(e) if resuming && e.errno == i64::from(ErrorCode::BadToken.number()) => {
                // The server no longer knows the session: log in with the password, at once.
                self.out.error(&format::token_refused(&e));
                session.token = None;
                lost.why = format::clean(&e.errmsg);
                lost.retry_at = now;
            }
            Failure::Refused(e) if !resuming && e.errno == i64::from(ErrorCode::Invalid.number()) => {
                // The password no longer works: only the user can go on.
                self.out.error(&format::session_over(&e));
                self.session = None;
                self.link = Link::Idle;
                return Err(Stop::LoggedOut);
            }
            Failure::Refused(e) => {
                // Errno 2: a node that died still holds the account until its lease
                // expires; 13, 14, 15: the server is busy. All pass with time.
                if e.errno == i64::from(ErrorCode::InUse.number()) && !lost.told_held {
                    lost.told_held = true;
                    self.out.error(format::STILL_HELD);
                }
                lost.why = format!("{} (errno {})", format::clean(&e.errmsg), e.errno);
                lost.retry_at = now + lost.backoff.next_delay(self.rng.unit());
            }
            Failure::Other(why) => {
                lost.why = why;
                lost.retry_at = now + lost.backoff.next_delay(self.rng.unit());
            }
        }
        Ok(false)
    }

    /// Prints a frame nobody was waiting for.
    fn show(&mut self, frame: Incoming) {
        if let Incoming::Notice(e) = &frame {
            self.notice = Some(format::clean(&e.errmsg));
        }
        let me = self.session.as_ref().map_or(UserId(0), |s| s.id);
        let note = match &frame {
            Incoming::Receipt { peer, reader, seq, read } => {
                self.notes.receipt(me, *peer, *reader, *seq, *read)
            }
            Incoming::Typing { group, id, typing } => self.notes.typing(*id, *group, *typing, Instant::now()),
            Incoming::Presence { id, name, .. } => {
                self.notes.learn(*id, name);
                None
            }
            _ => None,
        };
        if let Some(text) = note {
            self.out.info(&text);
        }
        match format::unsolicited(&frame) {
            Some(Ok(text)) => self.out.info(&text),
            Some(Err(text)) => self.out.error(&text),
            None => {}
        }
    }

    fn gone_text(&self, why: Option<String>) -> String {
        match (&self.notice, why) {
            (Some(notice), _) => format!("the server closed the connection: {notice}"),
            (None, None) => "the server closed the connection".to_owned(),
            (None, Some(why)) => format!("lost the connection to the server: {why}"),
        }
    }

    /// After piped input ends: print what is still arriving for a moment.
    async fn grace(&mut self) {
        let deadline = Instant::now() + EOF_GRACE;
        loop {
            match self.next_event(false, Some(deadline)).await {
                Ok(Event::Frame(frame)) => self.show(frame),
                Ok(Event::Back) => {}
                _ => return,
            }
        }
    }

    /// Logs out (if logged in and connected) on the way out, after
    /// acknowledging what was shown, briefly waiting for the answer.
    async fn logout_on_exit(&mut self) {
        let Some(session) = self.session.take() else { return };
        if !matches!(self.link, Link::Up(_)) {
            self.out.error("not connected: leaving without logging out");
            return;
        }
        self.flush_acks().await;
        self.flush_marks().await;
        let Some(frame) = request::command(&Command::Loginout, session.id, &session.name, None) else {
            return;
        };
        if self.send(&frame).await.is_err() {
            return;
        }
        let deadline = Instant::now() + LOGOUT_TIMEOUT;
        loop {
            // Nobody is logged in any more, so a lost connection is just closed.
            match self.next_event(false, Some(deadline)).await {
                Ok(Event::Frame(frame)) if frame.answers(MsgId::Loginout) => {
                    match frame {
                        Incoming::Ack { outcome: Err(e), .. } => {
                            self.out.error(&format::failure("loginout", &e))
                        }
                        _ => self.out.info(&format::success(&Command::Loginout, None)),
                    }
                    return;
                }
                Ok(Event::Frame(frame)) => self.show(frame),
                Ok(Event::Timeout) => {
                    self.out.error("no answer to the logout; leaving anyway");
                    return;
                }
                Ok(Event::Input(_) | Event::Back | Event::Lost) => {}
                // Gone or interrupted again: nothing more to do.
                Ok(Event::Closed(_)) | Err(_) => return,
            }
        }
    }
}

/// Whether `frame` is the answer to a chat sent with `cid`: an ACK that echoes
/// a different `cid` answers another chat (it is shown as a late reply).
fn echoes(frame: &Incoming, cid: Option<&str>) -> bool {
    match (frame, cid) {
        (Incoming::Ack { cid: Some(echoed), .. }, Some(cid)) => echoed == cid,
        _ => true,
    }
}
