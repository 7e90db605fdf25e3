//! The console's side of the delivery extension, frame by frame, against a
//! fake server that scripts exactly what a real one may do: pushes that come
//! again (shown once), RECEIVED in batches and before logging out, RESUME with
//! the token and the acks after a lost connection, a chat whose ACK was lost
//! sent again with the same `cid`, errno 17 (log in with the password) and 2
//! (try again), a command typed while disconnected, history pages and unread
//! counts. console_resume.rs shows the same against a real server.

#[path = "console_support.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{ConsoleProcess, EXIT_WAIT, FakeConn, FakeServer, login_ok};

/// A login ack for alice (id 1) with a resume token.
fn ack_with_token(token: &str) -> Value {
    let mut ack = login_ok(1, "alice");
    ack["resume"] = json!(token);
    ack
}

/// Alice logged in on a console, the server having given `token`.
fn logged_in(server: &FakeServer, token: &str) -> (ConsoleProcess, FakeConn) {
    let mut client = ConsoleProcess::start(server.addr);
    let mut conn = server.accept();
    client.lines(&["1", "1", "pw"]);
    conn.answer_login(&ack_with_token(token));
    client.expect_out("show command list >>>");
    (client, conn)
}

/// A push from bob (id 2) to alice with its place in the log.
fn chat(seq: i64) -> Value {
    json!({"id": 2, "mid": 1000 + seq, "msg": format!("m{seq}"), "msgid": 6, "name": "bob", "seq": seq, "time": "t", "to": 1})
}

/// How the console prints `chat(seq)`.
fn shown(seq: i64) -> String {
    format!("t [2]bob said: m{seq}\n")
}

/// The next frame the client sends that is not a PONG nor a read mark (MARK_READ, whose
/// timing is the client's; `marks_of_what_is_shown_go_out_debounced` looks at them).
fn next_request(conn: &mut FakeConn, within: Duration) -> Option<Value> {
    loop {
        let frame = conn.recv_within(within)?;
        if frame["msgid"] != 13 && frame["msgid"] != 54 {
            return Some(frame);
        }
    }
}

#[test]
fn marks_of_what_is_shown_go_out_debounced_and_receipts_and_typing_are_told_briefly() {
    let server = FakeServer::start();
    let (mut client, mut conn) = logged_in(&server, "tok");
    conn.send(&chat(1));
    conn.send(&chat(2));
    conn.send(&json!({"groupid": 5, "id": 2, "mid": 1100, "msg": "g1", "msgid": 10, "name": "bob", "seq": 1, "time": "t"}));
    // Alice's own message from another device (a carbon) is not marked: she wrote it.
    conn.send(&json!({"id": 1, "mid": 1101, "msg": "mine", "msgid": 6, "name": "alice", "seq": 3, "time": "t", "to": 2}));
    let pushed = Instant::now();
    client.expect_out(
        "群消息[5]:t [2]bob said: g1
",
    );
    // One MARK_READ per conversation, together, about half a second after the first.
    let mut marks = Vec::new();
    while marks.len() < 2 {
        let frame = conn.recv_within(Duration::from_secs(5)).expect("the read marks");
        if frame["msgid"] == 54 {
            marks.push(frame);
        }
    }
    let waited = pushed.elapsed();
    assert_eq!(
        marks,
        vec![json!({"id": 2, "msgid": 54, "seq": 2}), json!({"groupid": 5, "msgid": 54, "seq": 1})]
    );
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(3), "{waited:?}");
    for _ in 0..2 {
        conn.send(&json!({"errno": 0, "msgid": 11, "re": 54}));
    }

    // Bob read them: one line, once; "recv" and alice's own devices' marks say nothing.
    conn.send(&json!({"id": 2, "msgid": 55, "reader": 2, "seq": 2, "what": "recv"}));
    conn.send(&json!({"id": 2, "msgid": 55, "reader": 2, "seq": 2, "what": "read"}));
    conn.send(&json!({"id": 2, "msgid": 55, "reader": 2, "seq": 2, "what": "read"}));
    conn.send(&json!({"id": 2, "msgid": 55, "reader": 1, "seq": 3, "what": "read"}));
    // Bob types, refreshing: one line for the burst.
    conn.send(&json!({"id": 2, "msgid": 58, "state": "typing"}));
    conn.send(&json!({"id": 2, "msgid": 58, "state": "typing"}));
    conn.send(&json!({"groupid": 5, "id": 2, "msgid": 58, "state": "typing"}));
    client.expect_out("[bob read up to 2]\nbob is typing…\nbob is typing in group 5…\n");
    client.lines(&["reads:2"]);
    assert_eq!(request_skipping_acks(&mut conn, 56), json!({"id": 2, "msgid": 56}));
    conn.send(&json!({"errno": 0, "id": 2, "msgid": 57, "reads": [{"id": 1, "read": 2, "recv": 3}, {"id": 2, "read": 2, "recv": 2}]}));
    client.expect_out("----- reads in user 2 -----\nalice [1]: read up to 2, received up to 3\nbob [2]: read up to 2, received up to 2\n");
    let out = client.stdout();
    assert_eq!(out.matches("read up to").count(), 3, "{out}");
    assert!(!out.contains("late success") && !out.contains("late error"), "{out}");
    client.close_stdin();
    request_skipping_acks(&mut conn, 3);
    conn.send(&json!({"errno": 0, "msgid": 11, "re": 3}));
    assert!(client.wait_exit(EXIT_WAIT).success(), "{}", client.transcript());
}

/// The next request with `msgid`, passing over RECEIVED (whose timing is the client's).
fn request_skipping_acks(conn: &mut FakeConn, msgid: i64) -> Value {
    loop {
        let frame = next_request(conn, Duration::from_secs(10)).expect("a request");
        if frame["msgid"] != 18 {
            assert_eq!(frame["msgid"], json!(msgid), "unexpected frame {frame}");
            return frame;
        }
    }
}

#[test]
fn pushes_are_shown_once_and_acknowledged_cumulatively_in_batches() {
    let server = FakeServer::start();
    let (mut client, mut conn) = logged_in(&server, "tok");

    // Three chats, a group chat, and the second chat again (as a replay would).
    for frame in [chat(1), chat(2), chat(3)] {
        conn.send(&frame);
    }
    conn.send(&json!({"groupid": 5, "id": 2, "mid": 1100, "msg": "g1", "msgid": 10, "name": "bob", "seq": 1, "time": "t"}));
    conn.send(&chat(2));
    let pushed = Instant::now();
    client.expect_out("群消息[5]:t [2]bob said: g1\n");

    // One RECEIVED for all of them, half a second after the first.
    let received = next_request(&mut conn, Duration::from_secs(5)).expect("a RECEIVED");
    let waited = pushed.elapsed();
    assert_eq!(received, json!({"acks": [{"id": 2, "seq": 3}, {"groupid": 5, "seq": 1}], "msgid": 18}));
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "acks wait about 500 ms: {waited:?}"
    );

    // Sixty more at once: an ack after the fiftieth, the rest half a second later.
    let mut burst = Vec::new();
    for seq in 4..=63 {
        burst.extend_from_slice(chat(seq).to_string().as_bytes());
        burst.push(b'\n');
    }
    conn.send_raw(&burst);
    let first = next_request(&mut conn, Duration::from_secs(5)).expect("a RECEIVED after 50");
    assert_eq!(first, json!({"acks": [{"id": 2, "seq": 53}], "msgid": 18}));
    let second = next_request(&mut conn, Duration::from_secs(5)).expect("a RECEIVED for the rest");
    assert_eq!(second, json!({"acks": [{"id": 2, "seq": 63}], "msgid": 18}));

    client.expect_out(&shown(63));
    let out = client.stdout();
    for seq in 1..=63 {
        assert_eq!(out.matches(&shown(seq)).count(), 1, "chat {seq} shown once:\n{out}");
    }
    let order: Vec<usize> = (1..=63).map(|seq| out.find(&shown(seq)).unwrap_or_default()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order:\n{out}");

    // Pushes without a place in the log are shown as they come, and never acknowledged.
    conn.send(&json!({"id": 2, "msg": "plain", "msgid": 6, "name": "bob", "time": "t", "to": 1}));
    conn.send(&json!({"id": 2, "msg": "plain", "msgid": 6, "name": "bob", "time": "t", "to": 1}));
    client.expect_out("t [2]bob said: plain\nt [2]bob said: plain\n");
    assert_eq!(next_request(&mut conn, Duration::from_millis(800)), None);

    // The end of input: what was shown is acknowledged, then the logout.
    conn.send(&chat(64));
    client.expect_out(&shown(64));
    client.close_stdin();
    assert_eq!(
        next_request(&mut conn, Duration::from_secs(5)),
        Some(json!({"acks": [{"id": 2, "seq": 64}], "msgid": 18}))
    );
    // (And a read mark for what was shown since the last one, which next_request passes over.)
    request_skipping_acks(&mut conn, 3);
    conn.send(&json!({"errno": 0, "msgid": 11, "re": 3}));
    assert!(client.wait_exit(EXIT_WAIT).success(), "{}", client.transcript());
}

#[test]
fn after_a_lost_connection_the_console_resumes_and_sends_again_what_was_not_acknowledged() {
    let server = FakeServer::start();
    let (mut client, mut conn) = logged_in(&server, "tok");
    conn.send(&chat(7));
    client.expect_out(&shown(7));

    // A chat goes out; the connection drops before its ACK.
    client.line("chat:2:are you there?");
    let first = conn.recv_msgid(6);
    let cid = first["cid"].as_str().expect("the chat carries a cid").to_owned();
    assert!(!cid.is_empty() && cid.len() <= 64, "{cid}");
    conn.close();
    client.expect_err("the server closed the connection; reconnecting");

    // RESUME with the token and how far each conversation was received.
    let mut again = server.accept();
    let resume = again.recv_msgid(17);
    assert_eq!(resume, json!({"acks": [{"id": 2, "seq": 7}], "msgid": 17, "token": "tok"}));
    again.send(&ack_with_token("tok"));
    client.expect_err("connected to the server again (session resumed)");
    // The replay starts behind what was shown: 7 is dropped, 8 is new.
    again.send(&chat(7));
    again.send(&chat(8));
    // The same chat again, with the same cid; its ACK echoes it.
    let resent = request_skipping_acks(&mut again, 6);
    assert_eq!(resent, first, "sent again unchanged, same cid");
    again.send(&json!({"cid": cid, "errno": 0, "mid": 1009, "msgid": 11, "re": 6, "seq": 9}));
    // The replay came before the ACK, and is printed in that order.
    client.expect_out(&shown(8));
    client.expect_out("sent to user 2\n");

    // Another chat gets a new cid.
    client.line("chat:2:second");
    let next = request_skipping_acks(&mut again, 6);
    assert_ne!(next["cid"], json!(cid));
    again.send(&json!({"cid": next["cid"].clone(), "errno": 0, "msgid": 11, "re": 6}));
    client.expect_out("sent to user 2\n");
    let out = client.stdout();
    assert_eq!(out.matches(&shown(7)).count(), 1, "{out}");
    assert_eq!(out.matches("sent to user 2\n").count(), 2, "{out}");
    client.close_stdin();
    request_skipping_acks(&mut again, 3);
    again.send(&json!({"errno": 0, "msgid": 11, "re": 3}));
    assert!(client.wait_exit(EXIT_WAIT).success(), "{}", client.transcript());
    client.expect_out("logged out");
}

#[test]
fn a_refused_token_falls_back_to_the_password_and_a_held_account_is_tried_again() {
    let server = FakeServer::start();
    let (mut client, conn) = logged_in(&server, "old");
    conn.close();

    let mut second = server.accept();
    assert_eq!(second.recv_msgid(17)["token"], json!("old"));
    second.send(&json!({"errmsg": "unknown or expired resume token", "errno": 17, "msgid": 2}));
    client.expect_err(
        "the server did not resume the session: unknown or expired resume token (errno 17); logging in again",
    );

    // The password login meets an account still held by a node that died.
    let mut third = server.accept();
    let login = third.recv_msgid(1);
    assert_eq!(
        (login["id"].clone(), login["password"].clone(), login["ext"].clone()),
        (json!(1), json!("pw"), json!(1))
    );
    third.send(&json!({"errmsg": "this account is using, input another!", "errno": 2, "msgid": 2}));
    client.expect_err("the server still holds the session that was lost (errno 2)");

    let mut fourth = server.accept();
    fourth.recv_msgid(1);
    fourth.send(&ack_with_token("new"));
    client.expect_err("connected to the server again (logged in again)");

    // The next loss resumes with the new token.
    fourth.close();
    let mut fifth = server.accept();
    assert_eq!(fifth.recv_msgid(17)["token"], json!("new"));
    fifth.send(&ack_with_token("new"));
    client.expect_err("connected to the server again (session resumed)");
    assert_eq!(client.stderr().matches("the server still holds").count(), 1, "said once per loss");
}

#[test]
fn a_password_that_no_longer_works_sends_the_user_back_to_the_menu() {
    let server = FakeServer::start();
    let mut client = ConsoleProcess::start(server.addr);
    let mut conn = server.accept();
    client.lines(&["1", "1", "pw"]);
    // No token: the server is one without resume.
    conn.answer_login(&login_ok(1, "alice"));
    client.expect_out("show command list >>>");
    conn.close();
    let mut again = server.accept();
    again.recv_msgid(1);
    again.send(&json!({"errmsg": "id or password is invalid!", "errno": 1, "msgid": 2}));
    client.expect_err(
        "could not log in again: id or password is invalid! (errno 1); log in again from the menu",
    );
    client.expect_out("3. quit");
    // The menu works: quit.
    client.line("3");
    assert!(client.wait_exit(EXIT_WAIT).success(), "{}", client.transcript());
}

#[test]
fn a_command_typed_while_disconnected_waits_for_the_connection() {
    let server = FakeServer::start();
    let addr = server.addr;
    let (mut client, conn) = logged_in(&server, "tok");
    // The server goes away altogether: reconnecting is refused for a while.
    drop(server);
    conn.close();
    client.expect_err("; reconnecting");
    client.line("chat:2:typed while away");
    client.expect_err("not connected: the command waits until the connection is back");
    std::thread::sleep(Duration::from_millis(500));
    assert!(client.running(), "{}", client.transcript());

    let server = FakeServer::start_on(addr);
    let mut conn = server.accept();
    conn.recv_msgid(17);
    conn.send(&ack_with_token("tok"));
    let chat = conn.ack(6);
    assert_eq!(chat["msg"], json!("typed while away"));
    client.expect_out("sent to user 2\n");
}

#[test]
fn reconnecting_can_be_turned_off() {
    let server = FakeServer::start();
    let addr = server.addr.to_string();
    let mut client = ConsoleProcess::start_args(&["console", &addr, "--reconnect-for", "0"]);
    let mut conn = server.accept();
    client.lines(&["1", "1", "pw"]);
    conn.answer_login(&ack_with_token("tok"));
    client.expect_out("show command list >>>");
    conn.close();
    let status = client.wait_exit(EXIT_WAIT);
    assert!(!status.success(), "{status:?}\n{}", client.transcript());
    client.expect_err("the server closed the connection");
}

#[test]
fn history_pages_and_unread_counts() {
    let server = FakeServer::start();
    let mut client = ConsoleProcess::start(server.addr);
    let mut conn = server.accept();
    client.lines(&["1", "1", "pw"]);
    let mut ack = ack_with_token("tok");
    ack["friends"] = json!([{"id": 2, "name": "bob", "state": "online"}]);
    ack["groups"] = json!([{"groupdesc": "d", "groupname": "devs", "id": 5, "users": []}]);
    ack["unread"] = json!([{"count": 3, "id": 2}, {"count": 1, "groupid": 5}, {"count": 2, "id": 9}]);
    conn.answer_login(&ack);
    client.expect_out("2 bob online (3 unread)\n");
    client.expect_out("5 devs d (1 unread)\n");
    client.expect_out("(2 unread from user 9)\n");

    client.line("history:2");
    assert_eq!(conn.recv_msgid(19), json!({"id": 2, "limit": 20, "msgid": 19}));
    conn.send(&json!({"errno": 0, "messages": [
        {"id": 1, "mid": 40, "msg": "hi bob", "msgid": 6, "name": "alice", "seq": 1, "time": "t1", "to": 2},
        {"id": 2, "mid": 41, "msg": "hi alice", "msgid": 6, "name": "bob", "seq": 2, "time": "t2", "to": 1},
    ], "more": true, "msgid": 20}));
    client.expect_out(
        "----- history with user 2, oldest first -----\n\
         t1 [1]alice said: hi bob\n\
         t2 [2]bob said: hi alice\n\
         ----- older messages: history:2:before:40 -----\n",
    );
    client.line("history:2:before:40");
    assert_eq!(conn.recv_msgid(19), json!({"before": 40, "id": 2, "limit": 20, "msgid": 19}));
    conn.send(&json!({"errno": 0, "messages": [], "more": false, "msgid": 20}));
    client.expect_out("(no messages)\n----- no older messages -----\n");

    client.line("history:g5:after:7:10");
    assert_eq!(conn.recv_msgid(19), json!({"after": 7, "groupid": 5, "limit": 10, "msgid": 19}));
    conn.send(&json!({"errmsg": "not a member of this group", "errno": 7, "msgid": 11, "re": 19}));
    client.expect_err("history failed: not a member of this group (errno 7)");

    client.line("history:bob");
    client.expect_err("userid must be a positive number, not `bob`");
    // History shows what was said; it is not a delivery, so nothing is acknowledged.
    assert_eq!(next_request(&mut conn, Duration::from_millis(800)), None);
}
