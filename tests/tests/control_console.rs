//! Issue 21's console commands through the real `chat-client` against a real server: a
//! friend request and its answer seen on both consoles, a block and the refused chat, a
//! member removed, the password changed (asked twice, masked), the account deleted (asked
//! to confirm).

#[path = "console_support.rs"]
mod support;

use chat_tests::ServerProcess;
use support::{ConsoleProcess, EXIT_WAIT};

fn register(client: &mut ConsoleProcess, name: &str, password: &str) -> String {
    client.lines(&["2", name, password]);
    client.expect_out("register success, userid is ");
    let rest = client.expect_out(" , do not forget it!");
    rest.trim_end_matches(" , do not forget it!").to_owned()
}

#[test]
fn block_requests_groups_and_the_account_from_the_console() {
    let server = ServerProcess::start_sqlite(&[]);
    let mut alice = ConsoleProcess::start(server.addr);
    let a = register(&mut alice, "alice", "pw-a");
    let b = register(&mut alice, "bob", "pw-b");
    alice.lines(&["1", &a, "pw-a"]);
    alice.expect_out("block:userid");
    let mut bob = ConsoleProcess::start(server.addr);
    bob.lines(&["1", &b, "pw-b"]);
    bob.expect_out("deleteaccount");

    bob.line(&format!("friendrequest:{a}"));
    bob.expect_out(&format!("friend request sent to user {a}"));
    alice.expect_out(&format!("user {b} (bob) asks to be your friend (accept:{b} or decline:{b})"));
    alice.line(&format!("accept:{b}"));
    alice.expect_out(&format!("user {b} is now your friend, both ways"));
    bob.expect_out(&format!("user {a} (alice) is now your friend, both ways"));

    alice.line(&format!("block:{b}"));
    alice.expect_out(&format!("user {b} is blocked"));
    bob.line(&format!("chat:{a}:hello?"));
    bob.expect_err("chat failed: the recipient does not accept this from you (errno 20)");
    alice.line("blocked");
    alice.expect_out(&format!("blocked: {b} bob"));
    alice.line(&format!("unblock:{b}"));
    alice.expect_out(&format!("user {b} is no longer blocked"));

    alice.line("creategroup:devs:rust");
    alice.expect_out("group devs created, groupid is ");
    let gid = alice.expect_out("\n").trim().to_owned();
    bob.line(&format!("addgroup:{gid}"));
    bob.expect_out(&format!("joined group {gid}"));
    bob.line(&format!("kick:{gid}:{a}"));
    bob.expect_err("kick failed: only the group's owner or admins may remove members (errno 23)");
    alice.line(&format!("kick:{gid}:{b}"));
    alice.expect_out(&format!("removed user {b} from group {gid}"));
    bob.expect_out(&format!("user {b} was removed from group {gid}"));
    bob.line(&format!("leavegroup:{gid}"));
    bob.expect_err("leavegroup failed: not a member of this group (errno 7)");

    alice.lines(&["passwd", "pw-a", "pw-a2", "pw-a2"]);
    alice.expect_out("password changed");
    bob.lines(&["deleteaccount", "pw-b", "no"]);
    bob.expect_out("cancelled; nothing changed");
    bob.lines(&["deleteaccount", "pw-b", "yes"]);
    bob.expect_out("account deleted");
    bob.lines(&["1", &b, "pw-b"]);
    bob.expect_err("login failed: \"id or password is invalid!\"");
    bob.line("3");
    assert!(bob.wait_exit(EXIT_WAIT).success(), "{}", bob.transcript());

    alice.line("loginout");
    alice.expect_out("logged out");
    alice.lines(&["1", &a, "pw-a2"]);
    alice.expect_out(&format!("current login user => id:{a} name:alice"));
    alice.line("loginout");
    alice.line("3");
    assert!(alice.wait_exit(EXIT_WAIT).success(), "{}", alice.transcript());
}
