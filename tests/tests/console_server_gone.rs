//! The server goes away under an idle console: the client says so (with the
//! server's NOTICE when one came first) and, when someone is logged in, exits
//! with a non-zero status without waiting for input (the original exited
//! silently with 255). At the menu, where servers close idle connections, it
//! connects again for the next login and fails only if that is impossible.

#[path = "console_support.rs"]
mod support;

use chat_tests::ServerProcess;
use serde_json::json;
use support::{ConsoleProcess, EXIT_WAIT, FakeServer, login_ok};

#[test]
fn a_notice_and_a_close_are_reported_and_the_client_exits_nonzero() {
    let server = FakeServer::start();
    let mut client = ConsoleProcess::start(server.addr);
    let mut conn = server.accept();
    client.lines(&["1", "1", "pw"]);
    conn.answer_login(&login_ok(1, "alice"));
    client.expect_out("current login user => id:1 name:alice");

    conn.send(&json!({"errmsg": "server is shutting down", "errno": 15, "msgid": 14}));
    client.expect_err("server notice: server is shutting down (errno 15)");
    conn.close();
    let status = client.wait_exit(EXIT_WAIT);
    assert!(!status.success(), "exit status must be non-zero: {status:?}\n{}", client.transcript());
    client.expect_err("the server closed the connection: server is shutting down");
}

#[test]
fn a_close_at_the_menu_is_reported_and_the_next_login_connects_again() {
    // Servers close connections that do not log in for a while; the user at
    // the menu is told, and the next login connects again.
    let server = FakeServer::start();
    let mut client = ConsoleProcess::start(server.addr);
    let conn = server.accept();
    client.expect_out("3. quit");
    conn.close();
    client.expect_err(
        "the server closed the connection; it is opened again for the next login or registration",
    );
    assert!(client.running(), "an idle close at the menu does not end the client\n{}", client.transcript());
    client.lines(&["1", "1", "pw"]);
    let mut again = server.accept();
    again.answer_login(&login_ok(1, "alice"));
    client.expect_out("current login user => id:1 name:alice");

    // Once logged in, a close ends the client.
    again.close();
    let status = client.wait_exit(EXIT_WAIT);
    assert!(!status.success(), "{status:?}\n{}", client.transcript());
    client.expect_err("the server closed the connection");
}

#[test]
fn a_server_gone_for_good_is_reported_at_the_next_login() {
    let server = FakeServer::start();
    let mut client = ConsoleProcess::start(server.addr);
    let conn = server.accept();
    client.expect_out("3. quit");
    drop(server);
    conn.close();
    client.expect_err("the server closed the connection;");
    client.lines(&["1", "1", "pw"]);
    let status = client.wait_exit(EXIT_WAIT);
    assert!(!status.success(), "{status:?}\n{}", client.transcript());
    client.expect_err("connect server error");
}

#[test]
fn a_real_server_killed_under_a_logged_in_client() {
    let server = ServerProcess::start_sqlite(&[]);
    let mut client = ConsoleProcess::start(server.addr);
    client.lines(&["2", "gone-user", "pw"]);
    let registered = client.expect_out(" , do not forget it!");
    let id = registered
        .rsplit("userid is ")
        .next()
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_default()
        .to_owned();
    client.lines(&["1", &id, "pw"]);
    client.expect_out("current login user =>");

    server.signal("KILL");
    let status = client.wait_exit(EXIT_WAIT);
    assert!(!status.success(), "{status:?}\n{}", client.transcript());
    let err = client.stderr();
    assert!(
        err.contains("the server closed the connection") || err.contains("lost the connection to the server"),
        "{}",
        client.transcript()
    );
}
