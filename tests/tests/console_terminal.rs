//! The console on a terminal (a pseudo-terminal from util-linux `script`):
//! prompts, a prompt naming the logged-in user, a masked password, a chat
//! arriving while a line is half typed printed above it with the line
//! redrawn, history on the Up arrow, and Ctrl-D logging out and exiting 0.
//!
//! Keys are typed one at a time, at a person's pace; keys that arrive in
//! bursts (a paste, an input method) while chats arrive are in console_burst.rs.

#[path = "console_support.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use chat_tests::bin;
use serde_json::json;
use support::{ConsoleProcess, EXIT_WAIT, FakeServer, login_ok};

/// The client under `script`, which gives it a pseudo-terminal as stdin and stdout.
fn on_a_terminal(server: &FakeServer) -> ConsoleProcess {
    let found = Command::new("script").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "this test needs `script` (util-linux) to give the client a pseudo-terminal");
    let client = format!("{} console {}", bin("chat-client").display(), server.addr);
    let mut command = Command::new("script");
    command.args(["--quiet", "--return", "--command", &client, "/dev/null"]).env("TERM", "xterm");
    ConsoleProcess::spawn(command)
}

/// Types `keys` one character at a time (an escape sequence counts as one key).
fn type_keys(client: &mut ConsoleProcess, keys: &str) {
    let mut rest = keys;
    while !rest.is_empty() {
        let len = if rest.starts_with('\x1b') { 3 } else { rest.chars().next().map_or(1, char::len_utf8) };
        let (key, tail) = rest.split_at(len.min(rest.len()));
        client.keys(key);
        std::thread::sleep(Duration::from_millis(20));
        rest = tail;
    }
}

#[test]
fn line_editing_prompts_and_messages_above_the_line() {
    let server = FakeServer::start();
    let mut client = on_a_terminal(&server);
    let mut conn = server.accept();

    client.expect_out("choice: ");
    type_keys(&mut client, "1\r");
    client.expect_out("userid: ");
    type_keys(&mut client, "1\r");
    client.expect_out("userpassword: ");
    type_keys(&mut client, "s3cret\r");
    let login = conn.answer_login(&login_ok(1, "alice"));
    assert_eq!(login["password"], json!("s3cret"));
    client.expect_out("current login user => id:1 name:alice");
    client.expect_out("[1]alice> ");
    assert!(!client.stdout().contains("s3cret"), "the password is masked:\n{}", client.transcript());

    // A chat arrives while "cha" is typed: it is printed, then the line comes back as it was.
    type_keys(&mut client, "cha");
    client.expect_out("cha");
    conn.send(&json!({"id": 2, "msg": "hi there", "msgid": 6, "name": "bob", "time": "t", "to": 1}));
    client.expect_out("t [2]bob said: hi there");
    client.expect_out("[1]alice> cha");
    type_keys(&mut client, "t:2:yo\r");
    let chat = conn.ack(6);
    assert_eq!(chat["msg"], json!("yo"));
    client.expect_out("sent to user 2");

    // Up arrow recalls the last command.
    client.expect_out("[1]alice> ");
    type_keys(&mut client, "\x1b[A\r");
    let again = conn.ack(6);
    assert_eq!((again["to"].clone(), again["msg"].clone()), (json!(2), json!("yo")));
    client.expect_out("sent to user 2");

    // Ctrl-D on an empty line logs out and exits 0.
    client.expect_out("[1]alice> ");
    type_keys(&mut client, "\x04");
    conn.ack(3);
    let status = client.wait_exit(EXIT_WAIT);
    assert!(status.success(), "{status:?}\n{}", client.transcript());
    client.expect_out("logged out");
}
