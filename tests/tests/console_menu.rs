//! The console's menu and prompts against bad input: non-numeric choices,
//! empty lines, over-long names and lines get a clear message each, nothing
//! is sent, and the client neither loops nor hangs (the original looped
//! forever on the first two, W11). Also the command line: `--help`, both
//! address forms, and a server that cannot be reached.

#[path = "console_support.rs"]
mod support;

use std::time::Duration;

use support::{ConsoleProcess, EXIT_WAIT, FakeServer};

#[test]
fn bad_menu_input_gets_a_message_and_nothing_is_sent() {
    let server = FakeServer::start();
    let mut client = ConsoleProcess::start(server.addr);
    let mut conn = server.accept();
    client.expect_out("1. login\n2. register\n3. quit\n");

    client.line("abc");
    client.expect_err("invalid input! `abc` is not a choice: type 1, 2 or 3");
    client.line("");
    client.expect_err("invalid input! the menu choice is empty");
    client.line("9");
    client.expect_err("`9` is not a choice");
    client.line(&"1".repeat(100_000));
    client.expect_err("the line is too long");

    // Register: an over-long and an empty name are refused before anything is sent.
    client.lines(&["2", &"n".repeat(51)]);
    client.expect_err("the username is too long (at most 50 characters)");
    client.lines(&["2", "   "]);
    client.expect_err("the username is empty");
    client.lines(&["2", "alice", ""]);
    client.expect_err("the password is empty");

    // Login: a number must be a positive id (anything else is an account name).
    client.lines(&["1", "0"]);
    client.expect_err("userid must be a positive number, not `0`");
    client.lines(&["1", ""]);
    client.expect_err("the userid is empty");
    client.lines(&["1", "-5"]);
    client.expect_err("userid must be a positive number, not `-5`");

    client.line("3");
    let status = client.wait_exit(EXIT_WAIT);
    assert!(status.success(), "quit exits 0: {status:?}\n{}", client.transcript());
    assert_eq!(conn.recv_within(Duration::from_millis(500)), None, "nothing was sent for bad input");
    // Each bad line costs one message, not a loop of them.
    assert_eq!(client.stderr().matches("invalid input!").count(), 10, "{}", client.transcript());
    assert!(client.stdout().matches("1. login").count() < 20, "no menu loop:\n{}", client.transcript());
}

#[test]
fn end_of_input_at_the_menu_exits_zero() {
    let server = FakeServer::start();
    let mut client = ConsoleProcess::start(server.addr);
    let _conn = server.accept();
    client.expect_out("3. quit");
    client.close_stdin();
    let status = client.wait_exit(EXIT_WAIT);
    assert!(status.success(), "{status:?}\n{}", client.transcript());
}

#[test]
fn the_original_two_argument_form_connects() {
    let server = FakeServer::start();
    let port = server.addr.port().to_string();
    let mut client = ConsoleProcess::start_args(&["console", "127.0.0.1", &port]);
    let _conn = server.accept();
    client.line("3");
    assert!(client.wait_exit(EXIT_WAIT).success(), "{}", client.transcript());
}

#[test]
fn an_unreachable_server_is_reported_with_a_nonzero_status() {
    // A port that was free a moment ago: nothing listens there.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let mut client = ConsoleProcess::start(addr);
    let status = client.wait_exit(EXIT_WAIT);
    assert!(!status.success(), "{}", client.transcript());
    client.expect_err("connect server error");
}

#[test]
fn help_explains_subcommands_and_options() {
    let mut top = ConsoleProcess::start_args(&["--help"]);
    assert!(top.wait_exit(EXIT_WAIT).success());
    let text = top.stdout();
    for needle in ["console", "Usage", "--help"] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
    let mut sub = ConsoleProcess::start_args(&["console", "--help"]);
    assert!(sub.wait_exit(EXIT_WAIT).success());
    let text = sub.stdout();
    for needle in [
        "HOST:PORT",
        "PORT",
        "--plain",
        "--timeout",
        "chat:friendid:message",
        "addfriend:friendid",
        "creategroup:groupname:groupdesc",
        "addgroup:groupid",
        "groupchat:groupid:message",
        "lists",
        "loginout",
    ] {
        assert!(text.contains(needle), "console --help lacks {needle}:\n{text}");
    }
    let mut bad = ConsoleProcess::start_args(&["console", "127.0.0.1:6000", "7000"]);
    assert!(!bad.wait_exit(EXIT_WAIT).success(), "{}", bad.transcript());
}
