//! The server goes away under an idle console: the client says so (with the
//! server's NOTICE when one came first) and, when someone is logged in,
//! reconnects by itself, resuming the session (the original exited silently
//! with 255); when the server stays away longer than `--reconnect-for`, it
//! gives up and exits with a non-zero status. At the menu, where servers close
//! idle connections, it connects again for the next login and fails only if
//! that is impossible. The whole delivery story (no loss, no repeat across
//! the reconnection) is in console_resume*.rs.

#[path = "console_support.rs"]
mod support;

use chat_tests::ServerProcess;
use serde_json::json;
use support::{ConsoleProcess, EXIT_WAIT, FakeServer, login_ok};

#[test]
fn a_notice_and_a_close_are_reported_and_the_client_resumes() {
    let server = FakeServer::start();
    let mut client = ConsoleProcess::start(server.addr);
    let mut conn = server.accept();
    client.lines(&["1", "1", "pw"]);
    let mut ack = login_ok(1, "alice");
    ack["resume"] = json!("token-1");
    conn.answer_login(&ack);
    client.expect_out("current login user => id:1 name:alice");

    conn.send(&json!({"errmsg": "server is shutting down", "errno": 15, "msgid": 14}));
    client.expect_err("server notice: server is shutting down (errno 15)");
    conn.close();
    client.expect_err("the server closed the connection: server is shutting down; reconnecting");

    // It comes back by itself with the token, and goes on.
    let mut again = server.accept();
    let resume = again.recv_msgid(17);
    assert_eq!((resume["token"].clone(), resume["acks"].clone()), (json!("token-1"), json!([])), "{resume}");
    again.send(&ack);
    client.expect_err("connected to the server again (session resumed)");
    assert!(client.running(), "{}", client.transcript());
    client.line("chat:2:still here");
    let chat = again.ack(6);
    assert_eq!(chat["msg"], json!("still here"));
    client.expect_out("sent to user 2");
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

    // Once logged in, a close is got over: without a resume token (this server
    // gave none), by logging in again with the password typed at the menu.
    again.close();
    client.expect_err("the server closed the connection; reconnecting");
    let mut third = server.accept();
    let login = third.answer_login(&login_ok(1, "alice"));
    assert_eq!((login["id"].clone(), login["password"].clone()), (json!(1), json!("pw")));
    client.expect_err("connected to the server again (logged in again)");
    client.close_stdin();
    third.ack(3);
    assert!(client.wait_exit(EXIT_WAIT).success(), "{}", client.transcript());
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
fn a_real_server_killed_for_good_under_a_logged_in_client() {
    let server = ServerProcess::start_sqlite(&[]);
    let addr = server.addr.to_string();
    let mut client = ConsoleProcess::start_args(&["console", &addr, "--reconnect-for", "2"]);
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
    // It tries for the two seconds it was given, then gives up.
    client.expect_err("; reconnecting");
    let status = client.wait_exit(EXIT_WAIT);
    assert!(!status.success(), "{status:?}\n{}", client.transcript());
    client.expect_err("could not get the connection to the server back within 2 s (cannot connect: ");
}
