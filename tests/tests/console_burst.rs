//! The console on a terminal when keys come in bursts: a paste, a fast typist
//! or an input method writes many characters in one write, while chats arrive
//! and are printed above the line being typed. What the screen shows is read
//! back from a tmux pane, so a line that holds the text in its buffer but does
//! not show it fails here (kkawakam/rustyline#976: with an external printer,
//! rustyline 17 showed only the first character of a burst until the next key).
//!
//! Not covered here: line editing keys and history (console_terminal.rs).

#[path = "console_support.rs"]
mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use chat_tests::{WAIT, bin};
use serde_json::json;
use support::{FakeConn, FakeServer, login_ok};

/// The pane's width; the line typed here is longer than one row, so it wraps.
const COLUMNS: usize = 160;
/// The pane's height: room for the ten chats and the line below them.
const ROWS: usize = 30;

/// What bob has typed, key by key, when the chats arrive.
const TYPED: &str = "chat:1:half-typed rep";
/// bob's prompt once logged in.
const PROMPT: &str = "[2]bob> ";
/// The first burst: the rest of the word.
const WORD: &str = "ly";
/// The last burst: what an input method commits in one go.
const CJK: &str = "你好世界，这是一条测试消息";

/// The middle burst: 200 ASCII characters, as a paste.
fn paste() -> String {
    let text: String =
        " pack my box with five dozen liquor jugs 0123456789".chars().cycle().take(200).collect();
    assert_eq!(text.len(), 200);
    text
}

/// A `chat-client console` in a detached tmux session on a server of its own
/// (its own socket), so tests run side by side; the server is killed on drop.
struct Pane {
    socket: String,
}

impl Pane {
    /// Starts the client against `server` in a `COLUMNS` x `ROWS` pane.
    fn start(server: &FakeServer, name: &str) -> Pane {
        let found = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
        assert!(found, "this test needs tmux (`apt-get install -y tmux`, or `bash deploy/tools-setup.sh`)");
        let pane = Pane { socket: format!("chat-tests-{}-{name}", std::process::id()) };
        // If the client dies, its last words stay on the screen for the failure message.
        let client = format!(
            "'{}' console {}; echo \"[chat-client exited with $?]\"; sleep 600",
            bin("chat-client").display(),
            server.addr
        );
        let (columns, rows) = (COLUMNS.to_string(), ROWS.to_string());
        pane.tmux(&["new-session", "-d", "-x", &columns, "-y", &rows, "-s", "console", &client]);
        pane
    }

    /// Runs a tmux command on this pane's server; panics if it fails.
    fn tmux(&self, args: &[&str]) -> String {
        let output: Output = Command::new("tmux")
            // No user configuration: key bindings or options there would change what the client sees.
            .args(["-f", "/dev/null", "-L", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux");
        assert!(
            output.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Types `text` one character at a time, as a person types.
    fn type_slowly(&self, text: &str) {
        for c in text.chars() {
            self.burst(&c.to_string());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Writes `text` to the client's terminal in one write.
    fn burst(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "console", "-l", text]);
    }

    /// Presses Enter.
    fn enter(&self) {
        self.tmux(&["send-keys", "-t", "console", "Enter"]);
    }

    /// The visible screen, one string per row. Rows tmux marked as wrapped
    /// are joined (`-J`), and spaces written at a row's end are kept (`-N`),
    /// so that a line continued on the next row can be joined exactly.
    fn screen(&self) -> Vec<String> {
        let text = self.tmux(&["capture-pane", "-p", "-J", "-N", "-t", "console"]);
        text.lines().map(str::to_owned).collect()
    }

    /// Waits until `ok` holds for the screen; panics after [`WAIT`] showing
    /// the screen and saying what was awaited.
    fn wait_for(&self, what: &str, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("the screen did not show {what} within {WAIT:?}; it shows:\n{}", screen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the line being edited shows `prompt` followed by `line`.
    fn wait_for_line(&self, prompt: &str, line: &str) -> Vec<String> {
        let expected = format!("{prompt}{line}");
        let what = format!("the input line {expected:?}");
        self.wait_for(&what, |screen| input_line(screen, prompt).as_deref() == Some(expected.trim_end()))
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        // Ends the session and the client in it.
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).env_remove("TMUX").output();
    }
}

/// The line being edited as the screen shows it: the last row that starts
/// with `prompt` and the rows below it, joined, without trailing blanks.
/// `None` if a row that the line continues from does not fill the width of
/// the pane: then the screen breaks the line where the text has no break.
/// (A wide character that does not fit at the end of a row leaves a blank
/// column and also gives `None`; the texts here are laid out to avoid that.)
fn input_line(screen: &[String], prompt: &str) -> Option<String> {
    let start = screen.iter().rposition(|row| row.starts_with(prompt))?;
    let rows: Vec<&str> = screen[start..].iter().map(String::as_str).collect();
    let end = rows.iter().rposition(|row| !row.trim_end().is_empty()).unwrap_or(0);
    let continued = &rows[..end];
    if continued.iter().any(|row| columns(row) == 0 || !columns(row).is_multiple_of(COLUMNS)) {
        return None;
    }
    Some(rows[..=end].concat().trim_end().to_owned())
}

/// The columns a row takes on the terminal: two for the wide characters of
/// East Asian scripts used here, one for the others.
fn columns(text: &str) -> usize {
    let wide = |c: char| {
        matches!(c, '\u{1100}'..='\u{115f}' | '\u{2e80}'..='\u{a4cf}' | '\u{ac00}'..='\u{d7a3}'
            | '\u{f900}'..='\u{faff}' | '\u{fe30}'..='\u{fe4f}' | '\u{ff00}'..='\u{ff60}' | '\u{ffe0}'..='\u{ffe6}')
    };
    text.chars().map(|c| if wide(c) { 2 } else { 1 }).sum()
}

/// How the console prints chat number `n` from alice.
fn chat_from_alice(n: usize) -> String {
    format!("t [1]alice said: message {n} from alice")
}

/// The fake server pushes chat number `n` from alice to bob.
fn send_chat(conn: &mut FakeConn, n: usize) {
    let msg = format!("message {n} from alice");
    conn.send(&json!({"id": 1, "msg": msg, "msgid": 6, "name": "alice", "time": "t", "to": 2}));
}

/// Logs bob in through the menu and types `TYPED` key by key.
fn log_in_and_start_typing(pane: &Pane, server: &FakeServer) -> FakeConn {
    let mut conn = server.accept();
    pane.wait_for_line("choice: ", "");
    pane.type_slowly("1");
    pane.enter();
    pane.wait_for_line("userid: ", "");
    pane.type_slowly("2");
    pane.enter();
    pane.wait_for_line("userpassword: ", "");
    pane.type_slowly("pw");
    pane.enter();
    conn.answer_login(&login_ok(2, "bob"));
    pane.wait_for_line(PROMPT, "");
    pane.type_slowly(TYPED);
    pane.wait_for_line(PROMPT, TYPED);
    conn
}

/// The chats from alice numbered `chats` are on the screen in order, each
/// on a row of its own, and right below the last of them the input line
/// starts: nothing was printed into or below the line being edited.
fn assert_chats_above_the_line(screen: &[String], chats: std::ops::RangeInclusive<usize>) {
    let shown = || screen.join("\n");
    let mut next = 0;
    for n in chats {
        let chat = chat_from_alice(n);
        let at = screen[next..].iter().position(|row| row.trim_end() == chat);
        let at = at.unwrap_or_else(|| panic!("chat {n} is not on a row of its own, in order:\n{}", shown()));
        next += at + 1;
    }
    let line = screen[next..].iter().position(|row| !row.trim_end().is_empty()).map(|at| next + at);
    let prompt = screen.iter().rposition(|row| row.starts_with(PROMPT));
    assert!(line.is_some() && line == prompt, "the input line follows the last chat:\n{}", shown());
}

/// Enter sends the whole line: the server receives the chat to alice with
/// every character typed, and the console reports it sent.
fn enter_sends(pane: &Pane, conn: &mut FakeConn, msg: &str) {
    pane.enter();
    let chat = conn.ack(6);
    assert_eq!((chat["to"].clone(), chat["msg"].clone()), (json!(1), json!(msg)), "the chat sent: {chat}");
    pane.wait_for("the chat reported sent", |screen| {
        screen.iter().any(|row| row.trim_end() == "sent to user 1")
    });
}

#[test]
fn bursts_after_chats_show_every_character() {
    let server = FakeServer::start();
    let pane = Pane::start(&server, "after");
    let mut conn = log_in_and_start_typing(&pane, &server);

    // Two chats arrive: printed above, and the half-typed line comes back as it was.
    send_chat(&mut conn, 1);
    send_chat(&mut conn, 2);
    pane.wait_for("both chats", |screen| screen.iter().any(|row| row.trim_end() == chat_from_alice(2)));
    let screen = pane.wait_for_line(PROMPT, TYPED);
    assert_chats_above_the_line(&screen, 1..=2);

    // Each burst shows whole, not just its first character.
    let mut line = TYPED.to_owned();
    for burst in [WORD.to_owned(), paste(), CJK.to_owned()] {
        pane.burst(&burst);
        line.push_str(&burst);
        pane.wait_for_line(PROMPT, &line);
    }
    // The line is wider than the pane: it wrapped, and the joined rows read as typed.
    assert!(columns(&format!("{PROMPT}{line}")) > COLUMNS);
    let screen = pane.screen();
    assert_chats_above_the_line(&screen, 1..=2);

    enter_sends(&pane, &mut conn, line.trim_start_matches("chat:1:"));
}

#[test]
fn bursts_between_ten_chats_show_every_character() {
    let server = FakeServer::start();
    let pane = Pane::start(&server, "between");
    let mut conn = log_in_and_start_typing(&pane, &server);

    // Chats and bursts interleaved, with no waiting in between: the printer
    // and the keys race for the terminal as they would for a busy user.
    let paste = paste();
    send_chat(&mut conn, 1);
    send_chat(&mut conn, 2);
    pane.burst(WORD);
    send_chat(&mut conn, 3);
    send_chat(&mut conn, 4);
    send_chat(&mut conn, 5);
    pane.burst(&paste);
    send_chat(&mut conn, 6);
    send_chat(&mut conn, 7);
    pane.burst(CJK);
    send_chat(&mut conn, 8);
    send_chat(&mut conn, 9);
    send_chat(&mut conn, 10);

    let line = format!("{TYPED}{WORD}{paste}{CJK}");
    pane.wait_for("all ten chats", |screen| screen.iter().any(|row| row.trim_end() == chat_from_alice(10)));
    let screen = pane.wait_for_line(PROMPT, &line);
    assert_chats_above_the_line(&screen, 1..=10);

    enter_sends(&pane, &mut conn, line.trim_start_matches("chat:1:"));
}
