//! Names, not numbers (issue 20): an extension client logs in by its account's name, and
//! finds a user by exact name to add as a friend; the original client's LOGIN by id is
//! unchanged. Over real TCP against a real node (SQLite), and the console over a pipe.

use std::time::Duration;

use chat_tests::{ServerProcess, WireClient, unique};
use serde_json::json;

#[tokio::test]
async fn log_in_by_name_and_find_a_user_by_exact_name() {
    let server = ServerProcess::start_sqlite(&[]);
    let (alice, bob) = (unique("alice"), unique("Bob"));
    let alice_id = WireClient::connect(server.addr).await.register(&alice).await;
    let bob_id = WireClient::connect(server.addr).await.register(&bob).await;

    // LOGIN with a name instead of an id: the same ack as by id.
    let mut a = WireClient::connect(server.addr).await;
    a.send(&json!({"msgid":1,"name":alice,"password":"pw","ext":1})).await;
    let ack = a.recv().await;
    assert_eq!(
        (ack["errno"].clone(), ack["id"].clone(), ack["name"].clone()),
        (json!(0), json!(alice_id), json!(alice))
    );
    assert!(ack["resume"].is_string(), "{ack}");

    // A wrong password and an unknown name fail exactly as a bad id does.
    for (name, password) in [(bob.as_str(), "nope"), ("nobody-at-all", "pw"), ("", "pw")] {
        let mut c = WireClient::connect(server.addr).await;
        c.send(&json!({"msgid":1,"name":name,"password":password,"ext":1})).await;
        assert_eq!(
            c.recv().await,
            json!({"errmsg":"id or password is invalid!","errno":1,"msgid":2}),
            "{name:?}/{password}"
        );
    }
    // A LOGIN with an id keeps its meaning even if it names someone too.
    let mut b = WireClient::connect(server.addr).await;
    b.send(&json!({"msgid":1,"id":bob_id,"name":alice,"password":"pw"})).await;
    let ack = b.recv().await;
    assert_eq!((ack["errno"].clone(), ack["id"].clone()), (json!(0), json!(bob_id)), "{ack}");
    assert!(ack.get("resume").is_none(), "the original form: {ack}");

    // FIND_USER: exact name only (case counts; blanks around it do not), with the state.
    a.send(&json!({"msgid":50,"name":bob})).await;
    assert_eq!(a.recv().await, json!({"errno":0,"id":bob_id,"msgid":51,"name":bob,"state":"online"}));
    a.send(&json!({"msgid":50,"name":format!("  {bob} ")})).await;
    assert_eq!(a.recv().await["id"], json!(bob_id));
    a.send(&json!({"msgid":50,"name":bob.to_lowercase()})).await;
    assert_eq!(a.recv().await, json!({"errmsg":"no such user","errno":5,"msgid":11,"re":50}));
    a.send(&json!({"msgid":50})).await;
    let bad = a.recv().await;
    assert_eq!((bad["errno"].clone(), bad["re"].clone()), (json!(4), json!(50)), "{bad}");
    // ... and then ADD_FRIEND with the id found.
    a.send(&json!({"msgid":7,"friendid":bob_id})).await;
    assert_eq!(a.recv().await, json!({"errno":0,"msgid":11,"re":7}));
    a.send(&json!({"msgid":15})).await;
    let lists = a.recv().await;
    assert_eq!(lists["friends"], json!([{"id":bob_id,"name":bob,"state":"online"}]), "{lists}");

    // Not logged in: nobody is found (a connection without the extension gets no answer,
    // as for every refused request).
    let mut stranger = WireClient::connect(server.addr).await;
    stranger.send(&json!({"msgid":50,"name":bob})).await;
    stranger.expect_silence(Duration::from_millis(300)).await;
}

#[path = "console_support.rs"]
mod support;

/// The console (an extension client, scriptable over a pipe) takes a name at the `userid:`
/// prompt, finds users by name, and adds a friend by name.
#[test]
fn the_console_takes_names_at_the_id_prompts() {
    let server = ServerProcess::start_sqlite(&[]);
    let mut c = support::ConsoleProcess::start(server.addr);
    c.lines(&["2", "carol", "pw-c"]);
    c.expect_out(" , do not forget it!");
    c.lines(&["2", "dave", "pw-d"]);
    c.expect_out("register success, userid is ");
    let dave = c.expect_out(" , do not forget it!").trim_end_matches(" , do not forget it!").to_owned();

    c.lines(&["1", "carol", "wrong"]);
    c.expect_err("login failed: \"id or password is invalid!\"");
    c.lines(&["1", " carol ", "pw-c"]);
    c.expect_out("current login user => id:");
    c.expect_out(" name:carol\n");
    c.line("finduser:dave");
    c.expect_out(&format!("dave id:{dave} offline\n"));
    c.line("finduser:Dave");
    c.expect_err("finduser failed: ");
    c.line("addfriend:dave");
    c.expect_out(&format!("user dave (id {dave}) is now your friend"));
    c.line("lists");
    c.expect_out(&format!("{dave} dave offline\n"));
    c.lines(&["loginout", "3"]);
    c.expect_out("logged out");
    assert!(c.wait_exit(support::EXIT_WAIT).success(), "{}", c.transcript());
}
