//! The user's side of the console: reading lines and printing text.
//!
//! On a terminal, lines are read with rustyline (editing, history, command
//! completion, a masked password prompt) on a thread of their own, and all
//! output goes through rustyline's external printer, so that text arriving
//! while the user types is printed above the line being edited. Without a
//! terminal, lines are read plainly from stdin and printed plainly, with no
//! prompts and no escape codes. Either way the console asks for one line at a
//! time, so it decides when input is read. What the lines mean is not known here.

use std::borrow::Cow;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;

use nix::sys::termios::{SetArg, Termios, tcgetattr, tcsetattr};
use rustyline::completion::Completer;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Config, Editor, ExternalPrinter, Helper};
use tokio::sync::mpsc;

use crate::command::{MAX_INPUT_BYTES, complete_command};

/// One answer to a request for a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEvent {
    /// A line, without its line end.
    Line(String),
    /// A line longer than [`MAX_INPUT_BYTES`], dropped.
    TooLong,
    /// End of input (Ctrl-D, or the end of a piped stdin).
    Eof,
    /// Ctrl-C while editing.
    Interrupted,
    /// Reading failed.
    Failed(String),
}

/// What to read next.
enum InputRequest {
    /// Read a line after `prompt`; `secret` masks what is typed; `commands`
    /// turns on completion of command names.
    Read { prompt: String, secret: bool, commands: bool },
    /// Remember a line in the history.
    History(String),
}

/// The reading side: ask for a line, then await it on [`Input::next`].
pub struct Input {
    requests: std_mpsc::Sender<InputRequest>,
    events: mpsc::Receiver<InputEvent>,
}

impl Input {
    /// Asks the input thread for one line. The prompt is shown on a terminal only.
    pub fn request(&self, prompt: &str, secret: bool, commands: bool) {
        let request = InputRequest::Read { prompt: prompt.to_owned(), secret, commands };
        // If the thread is gone, `next` reports that.
        let _ = self.requests.send(request);
    }

    /// Adds a line to the editing history (a no-op without a terminal).
    pub fn add_history(&self, line: &str) {
        let _ = self.requests.send(InputRequest::History(line.to_owned()));
    }

    /// The answer to the last request.
    pub async fn next(&mut self) -> InputEvent {
        self.events.recv().await.unwrap_or_else(|| InputEvent::Failed("the input thread stopped".to_owned()))
    }
}

/// The printing side.
pub struct Output {
    printer: Option<Printer>,
}

/// Printing while the line editor owns the terminal: lines go to a thread of their own that
/// hands them to rustyline's external printer, which blocks until the editor reads them; so
/// the console never waits on it (it waited for ever when it printed while no line was being
/// read — at exit after the terminal hung up, say — and the printer's buffer was full).
struct Printer {
    lines: std_mpsc::Sender<String>,
    /// The editor is inside `readline` (the terminal is in raw mode, the prompt is shown).
    editing: Arc<AtomicBool>,
}

impl Output {
    /// Prints normal output (stdout without a terminal).
    pub fn info(&self, text: &str) {
        self.print(text, false);
    }

    /// Prints an error or a report (stderr without a terminal).
    pub fn error(&self, text: &str) {
        self.print(text, true);
    }

    fn print(&self, text: &str, error: bool) {
        let mut line = String::with_capacity(text.len() + 1);
        line.push_str(text);
        if !line.ends_with('\n') {
            line.push('\n');
        }
        if let Some(printer) = &self.printer
            && printer.editing.load(Ordering::Acquire)
        {
            // A printer thread that is gone has lost the terminal; there is nowhere else to write.
            let _ = printer.lines.send(line);
            return;
        }
        // Output that cannot be written (a closed pipe) is dropped.
        if error {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    }

    /// Whether output goes to a terminal through the line editor.
    pub fn is_terminal(&self) -> bool {
        self.printer.is_some()
    }
}

/// The terminal's settings at start-up, put back when the process leaves
/// while the line editor may still have the terminal in raw mode.
pub struct TerminalGuard {
    saved: Option<Termios>,
}

impl TerminalGuard {
    /// Restores the saved terminal settings, if any; true if there were some.
    pub fn restore(&self) -> bool {
        let Some(saved) = &self.saved else { return false };
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, saved);
        // Bracketed paste, which the editor turns on while reading.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(b"\x1b[?2004l");
        let _ = out.flush();
        true
    }
}

/// Opens the console's input and output: the line editor when stdin and
/// stdout are terminals and `plain` is false, plain lines otherwise.
pub fn open(plain: bool) -> (Input, Output, TerminalGuard) {
    let (requests, requests_rx) = std_mpsc::channel();
    let (events_tx, events) = mpsc::channel(4);
    let input = Input { requests, events };
    let terminal = !plain && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if let Some((editor, mut printer)) = terminal.then(editor).flatten() {
        let saved = tcgetattr(std::io::stdin()).ok();
        let editing = Arc::new(AtomicBool::new(false));
        let (lines, lines_rx) = std_mpsc::channel::<String>();
        std::thread::spawn(move || {
            while let Ok(line) = lines_rx.recv() {
                if printer.print(line).is_err() {
                    return;
                }
            }
        });
        let flag = editing.clone();
        std::thread::spawn(move || edit_lines(editor, requests_rx, events_tx, flag));
        return (input, Output { printer: Some(Printer { lines, editing }) }, TerminalGuard { saved });
    }
    std::thread::spawn(move || plain_lines(requests_rx, events_tx));
    (input, Output { printer: None }, TerminalGuard { saved: None })
}

type LineEditor = Editor<ConsoleHelper, DefaultHistory>;

/// The editor and its printer, or `None` when the terminal cannot do line editing.
fn editor() -> Option<(LineEditor, Box<dyn ExternalPrinter + Send>)> {
    let config = Config::builder().auto_add_history(false).max_history_size(1000).ok()?.build();
    let mut editor = LineEditor::with_config(config).ok()?;
    editor.set_helper(Some(ConsoleHelper::default()));
    let printer = editor.create_external_printer().ok()?;
    Some((editor, Box::new(printer)))
}

fn edit_lines(
    mut editor: LineEditor,
    requests: std_mpsc::Receiver<InputRequest>,
    events: mpsc::Sender<InputEvent>,
    editing: Arc<AtomicBool>,
) {
    while let Ok(request) = requests.recv() {
        let (prompt, secret, commands) = match request {
            InputRequest::History(line) => {
                let _ = editor.add_history_entry(line);
                continue;
            }
            InputRequest::Read { prompt, secret, commands } => (prompt, secret, commands),
        };
        if let Some(helper) = editor.helper_mut() {
            helper.masking = secret;
            helper.commands = commands;
        }
        editing.store(true, Ordering::Release);
        let read = editor.readline(&prompt);
        editing.store(false, Ordering::Release);
        let event = match read {
            Ok(line) if line.len() > MAX_INPUT_BYTES => InputEvent::TooLong,
            Ok(line) => InputEvent::Line(line),
            Err(rustyline::error::ReadlineError::Eof) => InputEvent::Eof,
            Err(rustyline::error::ReadlineError::Interrupted) => InputEvent::Interrupted,
            Err(e) => InputEvent::Failed(e.to_string()),
        };
        if events.blocking_send(event).is_err() {
            return;
        }
    }
}

fn plain_lines(requests: std_mpsc::Receiver<InputRequest>, events: mpsc::Sender<InputEvent>) {
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    while let Ok(request) = requests.recv() {
        if let InputRequest::History(_) = request {
            continue;
        }
        let event = match read_bounded_line(&mut stdin, MAX_INPUT_BYTES) {
            Ok(event) => event,
            Err(e) => InputEvent::Failed(e.to_string()),
        };
        if events.blocking_send(event).is_err() {
            return;
        }
    }
}

/// Reads one line of at most `max` bytes (without `\n` or `\r\n`). A longer
/// line is consumed and reported as [`InputEvent::TooLong`] without being
/// buffered whole; a last line without `\n` still counts; bytes that are not
/// UTF-8 are replaced.
pub fn read_bounded_line<R: BufRead>(reader: &mut R, max: usize) -> std::io::Result<InputEvent> {
    let mut line = Vec::new();
    let mut too_long = false;
    let mut read_any = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if !read_any {
                return Ok(InputEvent::Eof);
            }
            break;
        }
        read_any = true;
        let newline = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..newline.unwrap_or(buf.len())];
        if !too_long {
            if line.len() + chunk.len() > max + 1 {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = newline.map_or(buf.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            break;
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if too_long || line.len() > max {
        return Ok(InputEvent::TooLong);
    }
    Ok(InputEvent::Line(String::from_utf8_lossy(&line).into_owned()))
}

/// Masks passwords and completes command names.
#[derive(Default)]
struct ConsoleHelper {
    masking: bool,
    commands: bool,
}

impl Completer for ConsoleHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        if !self.commands {
            return Ok((0, Vec::new()));
        }
        Ok((0, complete_command(line, pos)))
    }
}

impl Hinter for ConsoleHelper {
    type Hint = String;
}

impl Validator for ConsoleHelper {}

impl Highlighter for ConsoleHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if self.masking { Cow::Owned("*".repeat(line.chars().count())) } else { Cow::Borrowed(line) }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, kind: CmdKind) -> bool {
        self.masking && kind != CmdKind::MoveCursor
    }
}

impl Helper for ConsoleHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<InputEvent> {
        // A tiny buffer so that lines straddle reads.
        let mut reader = std::io::BufReader::with_capacity(3, input);
        let mut out = Vec::new();
        loop {
            match read_bounded_line(&mut reader, max).expect("read") {
                InputEvent::Eof => return out,
                event => out.push(event),
            }
        }
    }

    fn line(s: &str) -> InputEvent {
        InputEvent::Line(s.to_owned())
    }

    #[test]
    fn plain_lines_are_cut_at_line_ends() {
        assert_eq!(lines(b"1\n22\r\n\nlast", 10), vec![line("1"), line("22"), line(""), line("last")]);
        assert_eq!(lines(b"", 10), vec![]);
        assert_eq!(lines(b"\n", 10), vec![line("")]);
    }

    #[test]
    fn long_lines_are_dropped_and_reading_goes_on() {
        assert_eq!(
            lines(b"abcd\nabcde\nabcdefghij\nok\n", 4),
            vec![line("abcd"), InputEvent::TooLong, InputEvent::TooLong, line("ok")]
        );
        assert_eq!(lines(b"abcd\r\n", 4), vec![line("abcd")]);
        assert_eq!(lines(b"abcdefgh", 4), vec![InputEvent::TooLong]);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced() {
        assert_eq!(lines(b"a\xffb\n", 10), vec![line("a\u{fffd}b")]);
    }
}
