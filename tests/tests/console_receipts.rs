//! Read receipts and typing (issue 20) through the real `chat-client` against a real
//! `chat-server`, over pipes: what bob's console shows it marks read, and alice's console
//! prints `[bob read up to 1]`; `reads:` lists both marks; bob typing on another device
//! prints `bob is typing…` once at alice's.

#[path = "console_support.rs"]
mod support;

use chat_tests::{ServerProcess, WireClient};
use serde_json::json;
use support::{ConsoleProcess, EXIT_WAIT};

fn register(client: &mut ConsoleProcess, name: &str) -> String {
    client.lines(&["2", name, "pw"]);
    client.expect_out("register success, userid is ");
    client.expect_out(" , do not forget it!").trim_end_matches(" , do not forget it!").to_owned()
}

#[test]
fn a_console_marks_what_it_shows_and_tells_receipts_and_typing() {
    let server = ServerProcess::start_sqlite(&[]);
    let mut alice = ConsoleProcess::start(server.addr);
    let alice_id = register(&mut alice, "alice");
    let bob_id = register(&mut alice, "bob");
    alice.lines(&["1", &alice_id, "pw"]);
    alice.expect_out("show command list >>>");
    alice.line(&format!("addfriend:{bob_id}"));
    alice.expect_out(&format!("user {bob_id} is now your friend"));
    let mut bob = ConsoleProcess::start(server.addr);
    bob.lines(&["1", &bob_id, "pw"]);
    bob.expect_out("show command list >>>");

    alice.line(&format!("chat:{bob_id}:are you there?"));
    alice.expect_out(&format!("sent to user {bob_id}"));
    bob.expect_out(&format!("[{alice_id}]alice said: are you there?\n"));
    // Bob's console marked it read (within half a second): alice's says so.
    alice.expect_out("[bob read up to 1]\n");

    bob.line(&format!("reads:{alice_id}"));
    bob.expect_out(&format!("----- reads in user {alice_id} -----\n"));
    bob.expect_out(&format!("bob [{bob_id}]: read up to 1"));

    // Bob types on another device (a raw extension client): alice's console says it once.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut device = WireClient::connect(server.addr).await;
        let bob_num: i64 = bob_id.parse().expect("id");
        assert_eq!(device.login(bob_num, true).await["errno"], 0);
        let alice_num: i64 = alice_id.parse().expect("id");
        device.send(&json!({"msgid":58,"id":alice_num,"state":"typing"})).await;
        device.send(&json!({"msgid":58,"id":alice_num,"state":"typing"})).await;
        alice.expect_out("bob is typing…\n");
    });
    alice.lines(&["loginout", "3"]);
    alice.expect_out("logged out");
    assert_eq!(alice.stdout().matches("is typing").count(), 1, "{}", alice.transcript());
    assert!(alice.wait_exit(EXIT_WAIT).success(), "{}", alice.transcript());
    bob.lines(&["loginout", "3"]);
    assert!(bob.wait_exit(EXIT_WAIT).success(), "{}", bob.transcript());
}
