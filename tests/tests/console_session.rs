//! A whole session through the real `chat-client` against a real
//! `chat-server`: register, failed and successful logins, every command with
//! its outcome (success text, the new group id, the server's error), chats
//! arriving while a console is idle, offline messages at login, loginout, and
//! the end of input logging out.

#[path = "console_support.rs"]
mod support;

use chat_tests::ServerProcess;
use support::{ConsoleProcess, EXIT_WAIT};

/// Registers `name` from the menu and returns the new id as printed.
fn register(client: &mut ConsoleProcess, name: &str, password: &str) -> String {
    client.lines(&["2", name, password]);
    client.expect_out("register success, userid is ");
    let rest = client.expect_out(" , do not forget it!");
    let id = rest.trim_end_matches(" , do not forget it!").to_owned();
    assert!(id.parse::<u32>().is_ok(), "not an id: {id:?}\n{}", client.transcript());
    id
}

/// The rest of the current stdout line after `needle`.
fn rest_of_line(client: &mut ConsoleProcess, needle: &str) -> String {
    client.expect_out(needle);
    client.expect_out("\n").trim_end().to_owned()
}

/// Whether the text on the last line of `seen` before `needle` is a server time `YYYY-MM-DD HH:MM:SS`.
fn time_before(seen: &str, needle: &str) -> bool {
    let before = seen.strip_suffix(needle).unwrap_or_default();
    let time = before.rsplit('\n').next().unwrap_or_default();
    let shape: String = time.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect();
    shape == "9999-99-99 99:99:99"
}

#[test]
fn register_login_every_command_and_logout() {
    let server = ServerProcess::start_sqlite(&[]);
    let mut alice = ConsoleProcess::start(server.addr);
    let alice_id = register(&mut alice, "alice", "pw-a");
    let bob_id = register(&mut alice, "bob", "pw-b");
    assert_ne!(alice_id, bob_id);

    alice.lines(&["2", "alice", "other"]);
    alice.expect_err("register failed: ");
    alice.lines(&["1", &alice_id, "wrong"]);
    alice.expect_err("login failed: \"id or password is invalid!\"");

    alice.lines(&["1", &alice_id, "pw-a"]);
    alice.expect_out(&format!(
        "======================login user======================\n\
         current login user => id:{alice_id} name:alice\n\
         ----------------------friend list---------------------\n"
    ));
    alice.expect_out("show command list >>>");

    let mut bob = ConsoleProcess::start(server.addr);
    bob.lines(&["1", &bob_id, "pw-b"]);
    bob.expect_out(&format!("current login user => id:{bob_id} name:bob"));
    bob.expect_out("show command list >>>");

    // A second console of alice (another device) logs in beside the first, here by name at
    // the userid prompt, and logs out again: alice's first session stays.
    let mut eve = ConsoleProcess::start(server.addr);
    eve.lines(&["1", "alice", "pw-a"]);
    eve.expect_out(&format!("current login user => id:{alice_id} name:alice"));
    eve.lines(&["loginout", "3"]);
    eve.expect_out("logged out");
    assert!(eve.wait_exit(EXIT_WAIT).success(), "{}", eve.transcript());

    alice.line(&format!("addfriend:{bob_id}"));
    alice.expect_out(&format!("user {bob_id} is now your friend"));
    alice.line("creategroup:devs:rust people");
    let gid = rest_of_line(&mut alice, "group devs created, groupid is ");
    assert!(gid.parse::<u32>().is_ok(), "group id {gid:?}\n{}", alice.transcript());
    bob.line(&format!("addgroup:{gid}"));
    bob.expect_out(&format!("joined group {gid}"));

    // A chat arrives at bob's idle console, in the original's format with the server's time.
    alice.line(&format!("chat:{bob_id}:hello bob: how are you?"));
    alice.expect_out(&format!("sent to user {bob_id}"));
    let said = format!(" [{alice_id}]alice said: hello bob: how are you?\n");
    let seen = bob.expect_out(&said);
    assert!(time_before(&seen, &said), "no server time before the chat: {seen:?}");

    bob.line(&format!("groupchat:{gid}:hi all, 你好 😀"));
    bob.expect_out(&format!("sent to group {gid}"));
    alice.expect_out(&format!("群消息[{gid}]:"));
    alice.expect_out(&format!(" [{bob_id}]bob said: hi all, 你好 😀\n"));

    alice.line("lists");
    alice.expect_out("----------------------friend list---------------------\n");
    alice.expect_out(&format!("{bob_id} bob online\n"));
    alice.expect_out(&format!("{gid} devs rust people\n"));
    alice.expect_out(&format!("    {alice_id} alice online creator\n"));
    alice.expect_out(&format!("    {bob_id} bob online normal\n"));

    // The server's errors, each shown with its text.
    alice.line("chat:999999:anyone there?");
    alice.expect_err("chat failed: ");
    alice.line("addgroup:999999");
    alice.expect_err("addgroup failed: ");
    alice.line("groupchat:999999:hello?");
    alice.expect_err("groupchat failed: ");
    alice.line("creategroup:devs:a second one");
    alice.expect_err("creategroup failed: ");
    alice.line("addfriend:999999");
    alice.expect_err("addfriend failed: ");
    // And the client's own.
    alice.line("chat:abc:x");
    alice.expect_err("friendid must be a positive number, not `abc`");
    alice.line("groupchat:1");
    alice.expect_err("groupchat command invalid! format: groupchat:groupid:message");
    alice.line("nonsense");
    alice.expect_err("invalid input command!");

    // Offline: bob leaves, alice writes, bob gets it at his next login.
    bob.line("loginout");
    bob.expect_out("logged out");
    bob.expect_out("3. quit");
    alice.line(&format!("chat:{bob_id}:while you were out"));
    alice.expect_out(&format!("sent to user {bob_id}"));
    bob.lines(&["1", &bob_id, "pw-b"]);
    bob.expect_out(&format!("current login user => id:{bob_id} name:bob"));
    // The extension login ack counts it unread; the message itself follows the ack
    // (the replay), so it is printed after the command list.
    bob.expect_out(&format!("(1 unread from user {alice_id})\n"));
    bob.expect_out("show command list >>>");
    bob.expect_out(&format!(" [{alice_id}]alice said: while you were out\n"));

    alice.lines(&["loginout", "3"]);
    alice.expect_out("logged out");
    let status = alice.wait_exit(EXIT_WAIT);
    assert!(status.success(), "{status:?}\n{}", alice.transcript());

    // The end of bob's input logs him out: he can log in again elsewhere at once.
    bob.close_stdin();
    let status = bob.wait_exit(EXIT_WAIT);
    assert!(status.success(), "{status:?}\n{}", bob.transcript());
    bob.expect_out("logged out");
    let mut again = ConsoleProcess::start(server.addr);
    again.lines(&["1", &bob_id, "pw-b"]);
    again.expect_out(&format!("current login user => id:{bob_id} name:bob"));
    again.expect_out(&format!("    {alice_id} alice offline creator\n"));
    again.close_stdin();
    assert!(again.wait_exit(EXIT_WAIT).success(), "{}", again.transcript());
}
