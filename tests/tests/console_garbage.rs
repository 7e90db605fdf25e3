//! A fake server sends the console everything a server should not: text that
//! is not JSON, wrong shapes, unknown msgids, chats with fields missing,
//! frames glued together, a huge frame, and a login ack in the original's
//! string-nested form with an offline message that is not JSON. The client
//! says what it could not read, answers PING, shows every good frame, and
//! keeps working (the original aborted on most of these, W11).

#[path = "console_support.rs"]
mod support;

use serde_json::json;
use support::{ConsoleProcess, EXIT_WAIT, FakeServer};

#[test]
fn garbage_is_reported_and_the_client_carries_on() {
    let server = FakeServer::start();
    let mut client = ConsoleProcess::start(server.addr);
    let mut conn = server.accept();

    client.lines(&["1", "1", "pw"]);
    // The original's form: nested lists are arrays of JSON strings.
    let login = conn.answer_login(&json!({
        "errno": 0,
        "friends": [r#"{"id":2,"name":"bob","state":"online"}"#],
        "groups": [r#"{"groupdesc":"desc","groupname":"g","id":3,"users":["{\"id\":1,\"name\":\"alice\",\"role\":\"creator\",\"state\":\"online\"}"]}"#],
        "id": 1,
        "msgid": 2,
        "name": "alice",
        "offlinemsg": [
            r#"{"id":2,"msg":"while you were away","msgid":6,"name":"bob","time":"2024-01-01 09:00:00","to":1}"#,
            "{\"id\":2,\"msg\":\"broken",
        ],
    }));
    assert_eq!(login["id"], json!(1));
    assert_eq!(login["password"], json!("pw"));
    client.expect_out(
        "======================login user======================\n\
         current login user => id:1 name:alice\n\
         ----------------------friend list---------------------\n\
         2 bob online\n\
         ----------------------group list----------------------\n\
         3 g desc\n    \
         1 alice online creator\n\
         ======================================================\n\
         2024-01-01 09:00:00 [2]bob said: while you were away\n",
    );
    client.expect_err("could not read an offline message (stored message is not JSON)");
    client.expect_out("show command list >>>");

    conn.send_raw(b"this is not json\n");
    client.expect_err("could not read a message from the server (not JSON");
    conn.send_raw(b"[1,2]\n");
    client.expect_err("(not a JSON object): [1,2]");
    conn.send_raw(b"{\"msgid\":\"6\"}\n");
    client.expect_err("`msgid` is not an integer");
    conn.send_raw(b"{\"msgid\":99,\"x\":1}\n");
    client.expect_err("unknown msgid 99");
    conn.send_raw(b"{\"id\":2,\"msgid\":6}\n");
    client.expect_err("chat message: missing `msg`");
    conn.send_raw(b"{\"msg\":\"x\",\"msgid\":10,\"id\":2}\n");
    client.expect_err("group message: missing `groupid`");

    // A PING is answered at once with a PONG.
    conn.send_raw(b"{\"msgid\":12}\n");
    assert_eq!(conn.recv_msgid(13), json!({"msgid": 13}));

    // Many frames in one write, NUL- and LF-delimited, with garbage between them.
    let mut burst = Vec::new();
    for i in 0..200 {
        burst.extend_from_slice(
            format!(r#"{{"id":2,"msg":"burst {i}","msgid":6,"name":"bob","time":"t","to":1}}"#).as_bytes(),
        );
        burst.push(if i % 2 == 0 { b'\n' } else { 0 });
        if i == 100 {
            burst.extend_from_slice(b"}{garbage\n");
        }
    }
    conn.send_raw(&burst);
    client.expect_out("t [2]bob said: burst 0\n");
    client.expect_out("t [2]bob said: burst 100\n");
    client.expect_out("t [2]bob said: burst 199\n");
    client.expect_err("(not JSON");

    // A message far longer than the original's 1024-byte buffer.
    let long = "x".repeat(200_000);
    conn.send(&json!({"id": 2, "msg": long, "msgid": 6, "name": "bob", "time": "t", "to": 1}));
    client.expect_out(&format!("t [2]bob said: {long}\n"));
    // A group chat, and text that would drive a terminal is shown escaped.
    conn.send(&json!({"groupid": 3, "id": 2, "msg": "hi\u{1b}[2J all\nfake line", "msgid": 10, "name": "bob", "time": "t"}));
    client.expect_out("群消息[3]:t [2]bob said: hi\\u{1b}[2J all\\nfake line\n");

    // Still working: a command goes out and its error comes back.
    client.line("chat:2:are you there?");
    let chat = conn.recv_msgid(6);
    assert_eq!((chat["to"].clone(), chat["msg"].clone()), (json!(2), json!("are you there?")));
    conn.send(&json!({"errmsg": "user 2 is not a friend of yours", "errno": 7, "msgid": 11, "re": 6}));
    client.expect_err("chat failed: user 2 is not a friend of yours (errno 7)");
    client.line("chat:2:again");
    conn.ack(6);
    client.expect_out("sent to user 2");

    // The end of input logs out first, then exits 0.
    client.close_stdin();
    conn.ack(3);
    let status = client.wait_exit(EXIT_WAIT);
    assert!(status.success(), "{status:?}\n{}", client.transcript());
    client.expect_out("logged out");
    assert!(!client.stdout().contains('\u{1b}'), "no escape codes in plain mode");
}
