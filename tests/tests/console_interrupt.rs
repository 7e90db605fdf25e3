//! Ctrl-C (SIGINT) and SIGTERM leave cleanly: a logged-in console logs out
//! first and exits 0; at the menu it just exits 0.

#[path = "console_support.rs"]
mod support;

use std::time::Duration;

use support::{ConsoleProcess, EXIT_WAIT, FakeServer, login_ok};

fn interrupt_logged_in(sig: &str) {
    let server = FakeServer::start();
    let mut client = ConsoleProcess::start(server.addr);
    let mut conn = server.accept();
    client.lines(&["1", "1", "pw"]);
    conn.answer_login(&login_ok(1, "alice"));
    client.expect_out("show command list >>>");

    client.signal(sig);
    conn.ack(3);
    let status = client.wait_exit(EXIT_WAIT);
    assert!(status.success(), "SIG{sig} exits 0: {status:?}\n{}", client.transcript());
    client.expect_out("logged out");
}

#[test]
fn sigint_logs_out_then_exits_zero() {
    interrupt_logged_in("INT");
}

#[test]
fn sigterm_logs_out_then_exits_zero() {
    interrupt_logged_in("TERM");
}

#[test]
fn sigint_at_the_menu_exits_zero_without_sending() {
    let server = FakeServer::start();
    let mut client = ConsoleProcess::start(server.addr);
    let mut conn = server.accept();
    client.expect_out("3. quit");
    client.signal("INT");
    let status = client.wait_exit(EXIT_WAIT);
    assert!(status.success(), "{status:?}\n{}", client.transcript());
    assert_eq!(conn.recv_within(Duration::from_millis(300)), None);
}
