//! The console: the original client's menu flow and commands, driven by the
//! lines the user types, the frames the server sends and signals.
//!
//! One request is in flight at a time: after sending, the console waits for
//! the server's answer (the extension answers every request) and shows the
//! outcome before it asks for the next line, so piped scripts run in order.
//! Chats and reports that arrive meanwhile are printed as they come.
//!
//! When the server closes the connection while nobody is logged in (servers
//! close connections that do not log in for a while), the console says so
//! and connects again for the next login or registration; when it closes it
//! under a logged-in user, or cannot be reached again, the console ends with
//! an error. Parsing
//! lines, decoding frames and wording output live in `command`, `incoming`
//! and `format`; this module only decides what happens next.

use std::future::pending;
use std::time::Duration;

use chat_proto::{MsgId, UserId};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::{Instant, sleep_until};

use crate::command::{Command, InputError, MenuChoice, parse_command, parse_menu_choice, parse_password};
use crate::command::{parse_user_id, parse_username};
use crate::conn::{self, Connection, NetEvent};
use crate::format;
use crate::incoming::Incoming;
use crate::request;
use crate::terminal::{Input, InputEvent, Output};

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
    /// The connection is gone; the text says how.
    Gone(String),
}

/// What happened while waiting.
enum Event {
    Input(InputEvent),
    Frame(Incoming),
    /// The connection closed; the text says how.
    Closed(String),
    Timeout,
}

/// Whether the command loop goes on.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    LoggedOut,
}

/// The logged-in user.
struct Session {
    id: UserId,
    name: String,
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
}

/// The console over one connection at a time.
pub struct Console {
    settings: Settings,
    /// `None` after the server closed an idle connection; opened again when needed.
    conn: Option<Connection>,
    input: Input,
    out: Output,
    signals: Signals,
    session: Option<Session>,
    /// The last NOTICE, to explain a close that follows it.
    notice: Option<String>,
}

impl Console {
    /// A console over a connection to `settings.addr`, reading from `input` and printing to `out`.
    pub fn new(settings: Settings, conn: Connection, input: Input, out: Output) -> Console {
        let signals = Signals::install();
        Console { settings, conn: Some(conn), input, out, signals, session: None, notice: None }
    }

    /// Runs until the user quits, input ends or the server goes away.
    pub async fn run(mut self) -> Exit {
        let stop = match self.menu().await {
            Ok(()) => return Exit { code: 0, message: None },
            Err(stop) => stop,
        };
        match stop {
            Stop::Gone(message) => Exit { code: 1, message: Some(message) },
            Stop::Eof | Stop::Interrupted => {
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
        let Some(id) = self.ask("userid: ", false, parse_user_id).await? else { return Ok(()) };
        let Some(password) = self.ask("userpassword: ", true, parse_password).await? else { return Ok(()) };
        match self.request(request::login(id, &password), MsgId::Login).await? {
            None => Ok(()),
            Some(Incoming::LoginAck(Ok(info))) => {
                self.out.info(&format::login_screen(&info));
                for message in &info.offline {
                    match format::offline(message) {
                        Ok(text) => self.out.info(&text),
                        Err(text) => self.out.error(&text),
                    }
                }
                self.out.info(&format::help());
                self.session = Some(Session { id: info.id, name: info.name });
                self.commands().await
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
        match self.request(request::register(&name, &password), MsgId::Reg).await? {
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
        let Some(frame) = request::command(&cmd, session.id, &session.name) else {
            return Ok(Flow::Continue);
        };
        let reply = self.request(frame, sent).await?;
        let what = format::command_name(&cmd);
        if cmd == Command::Loginout {
            match reply {
                Some(Incoming::Ack { outcome: Err(e), .. }) => self.out.error(&format::failure(what, &e)),
                Some(_) => self.out.info(&format::success(&cmd, None)),
                None => {}
            }
            self.session = None;
            return Ok(Flow::LoggedOut);
        }
        match reply {
            None => {}
            Some(Incoming::ListAck(Ok(lists))) => self.out.info(&format::lists(&lists)),
            Some(Incoming::Ack { outcome: Ok(groupid), .. }) if cmd != Command::Lists => {
                self.out.info(&format::success(&cmd, groupid))
            }
            Some(Incoming::Ack { outcome: Err(e), .. } | Incoming::ListAck(Err(e))) => {
                self.out.error(&format::failure(what, &e))
            }
            Some(other) => self.out.error(&format!("unexpected answer to {what}: {other:?}")),
        }
        Ok(Flow::Continue)
    }

    /// Sends a frame and waits for its answer; `None` (already reported) when none comes in time.
    async fn request(&mut self, frame: String, sent: MsgId) -> Result<Option<Incoming>, Stop> {
        self.send(frame).await?;
        let reply = self.await_reply(sent, self.settings.reply_timeout).await?;
        if reply.is_none() {
            self.out.error(&format!(
                "no answer from the server within {} s; it may still act on the request",
                self.settings.reply_timeout.as_secs_f32()
            ));
        }
        Ok(reply)
    }

    /// Sends a frame, connecting again first if the server closed an idle connection.
    async fn send(&mut self, frame: String) -> Result<(), Stop> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let addr = &self.settings.addr;
                let conn = conn::connect(addr, self.settings.connect_timeout)
                    .await
                    .map_err(|e| Stop::Gone(format!("connect server error: {addr}: {e}")))?;
                self.conn.insert(conn)
            }
        };
        if conn.outgoing.send(frame).await.is_err() {
            return Err(Stop::Gone(self.gone_text(Some("cannot send".to_owned()))));
        }
        Ok(())
    }

    async fn await_reply(&mut self, sent: MsgId, timeout: Duration) -> Result<Option<Incoming>, Stop> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next_event(false, Some(deadline)).await? {
                Event::Frame(frame) if frame.answers(sent) => return Ok(Some(frame)),
                Event::Frame(frame) => self.show(frame),
                Event::Closed(text) => return Err(Stop::Gone(text)),
                Event::Timeout => return Ok(None),
                Event::Input(_) => {}
            }
        }
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
                    self.conn = None;
                    self.notice = None;
                }
                Event::Closed(text) => return Err(Stop::Gone(text)),
                Event::Timeout => {}
            }
        }
    }

    /// The next thing that happens: a frame, a line (when `reading`), a
    /// signal, or the deadline.
    async fn next_event(&mut self, reading: bool, deadline: Option<Instant>) -> Result<Event, Stop> {
        enum Woke {
            Net(Option<NetEvent>),
            Input(InputEvent),
            Signal,
            Timeout,
        }
        let timer = async {
            match deadline {
                Some(deadline) => sleep_until(deadline).await,
                None => pending().await,
            }
        };
        let conn = &mut self.conn;
        let net = async {
            match conn {
                Some(conn) => conn.events.recv().await,
                None => pending().await,
            }
        };
        let woke = tokio::select! {
            // Frames first, so that what the server said before is shown before the next line is acted on.
            biased;
            event = net => Woke::Net(event),
            () = self.signals.recv() => Woke::Signal,
            line = self.input.next(), if reading => Woke::Input(line),
            () = timer => Woke::Timeout,
        };
        match woke {
            Woke::Net(Some(NetEvent::Frame(frame))) => Ok(Event::Frame(frame)),
            Woke::Net(Some(NetEvent::Closed(why))) => Ok(Event::Closed(self.gone_text(why))),
            Woke::Net(None) => Ok(Event::Closed(self.gone_text(None))),
            Woke::Input(line) => Ok(Event::Input(line)),
            Woke::Signal => Err(Stop::Interrupted),
            Woke::Timeout => Ok(Event::Timeout),
        }
    }

    /// Prints a frame nobody was waiting for.
    fn show(&mut self, frame: Incoming) {
        if let Incoming::Notice(e) = &frame {
            self.notice = Some(format::clean(&e.errmsg));
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
        while let Ok(Event::Frame(frame)) = self.next_event(false, Some(deadline)).await {
            self.show(frame);
        }
    }

    /// Logs out (if logged in) on the way out, briefly waiting for the answer.
    async fn logout_on_exit(&mut self) {
        let Some(session) = self.session.take() else { return };
        let Some(frame) = request::command(&Command::Loginout, session.id, &session.name) else { return };
        if self.send(frame).await.is_err() {
            return;
        }
        match self.await_reply(MsgId::Loginout, LOGOUT_TIMEOUT).await {
            Ok(Some(Incoming::Ack { outcome: Err(e), .. })) => {
                self.out.error(&format::failure("loginout", &e))
            }
            Ok(Some(_)) => self.out.info(&format::success(&Command::Loginout, None)),
            Ok(None) => self.out.error("no answer to the logout; leaving anyway"),
            // Gone or interrupted again: nothing more to do.
            Err(_) => {}
        }
    }
}
