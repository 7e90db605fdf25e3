//! Issue 21's queries on the embedded SQLite store (the cluster tests run them on MySQL):
//! one node, one pass through every kind of request.

use std::time::Duration;

use chat_tests::ServerProcess;
use chat_tests::control::User;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn every_control_request_works_on_sqlite() {
    let server = ServerProcess::start_sqlite(&[]);
    let mut a = User::on(server.addr, "a").await;
    let mut b = User::on(server.addr, "b").await;
    let mut c = User::on(server.addr, "c").await;

    // Blocks and the setting.
    assert_eq!(a.ask(json!({"msgid":30,"id":b.id})).await["errno"], 0);
    assert_eq!(b.chat(a.id, "x").await["errno"], 20);
    assert_eq!(a.ask(json!({"msgid":32})).await["users"][0]["id"], b.id);
    assert_eq!(a.ask(json!({"msgid":31,"id":b.id})).await["errno"], 0);
    assert_eq!(a.ask(json!({"msgid":34,"writers":"friends"})).await["errno"], 0);
    assert_eq!(c.chat(a.id, "x").await["errno"], 20);
    assert_eq!(a.ask(json!({"msgid":32})).await["writers"], "friends");

    // Friends.
    assert_eq!(c.ask(json!({"msgid":35,"id":a.id})).await["errno"], 0);
    assert_eq!(a.event("friend-request").await["id"], c.id);
    assert_eq!(a.ask(json!({"msgid":38})).await["incoming"][0]["id"], c.id);
    assert_eq!(a.ask(json!({"msgid":36,"id":c.id,"accept":true})).await["errno"], 0);
    assert_eq!(c.chat(a.id, "friends now").await["errno"], 0);
    assert_eq!(c.ask(json!({"msgid":37,"id":a.id})).await["errno"], 0);
    assert_eq!(c.chat(a.id, "not any more").await["errno"], 20);

    // Groups.
    let created = a.ask(json!({"msgid":8,"groupname":chat_tests::unique("g"),"groupdesc":""})).await;
    let gid = created["groupid"].as_i64().expect("gid");
    for u in [&mut b, &mut c] {
        assert_eq!(u.ask(json!({"msgid":9,"groupid":gid})).await["errno"], 0);
    }
    assert_eq!(a.ask(json!({"msgid":44,"groupid":gid,"id":b.id,"admin":true})).await["errno"], 0);
    let renamed = chat_tests::unique("r");
    assert_eq!(b.ask(json!({"msgid":42,"groupid":gid,"groupname":renamed})).await["errno"], 0);
    let taken = b.ask(json!({"msgid":42,"groupid":gid,"groupname":renamed,"groupdesc":"same name"})).await;
    assert_eq!(taken["errno"], 0, "keeping its own name is no clash: {taken}");
    assert_eq!(b.ask(json!({"msgid":41,"groupid":gid,"id":c.id})).await["errno"], 0);
    assert_eq!(c.ask(json!({"msgid":19,"groupid":gid})).await["errno"], 7);
    assert_eq!(a.ask(json!({"msgid":40,"groupid":gid})).await["errno"], 0);
    assert_eq!(b.event("owner-changed").await["id"], b.id);
    assert_eq!(b.ask(json!({"msgid":10,"groupid":gid,"msg":"mine now"})).await["errno"], 0);
    assert_eq!(b.ask(json!({"msgid":43,"groupid":gid})).await["errno"], 0);
    assert_eq!(b.ask(json!({"msgid":9,"groupid":gid})).await["errno"], 6);

    // The account.
    let changed = a.ask(json!({"msgid":45,"password":"pw","newpassword":"pw2"})).await;
    assert_eq!(changed["errno"], 0, "{changed}");
    assert_eq!(a.ask(json!({"msgid":46,"password":"pw2"})).await["errno"], 0);
    assert!(a.c.closed_within(Duration::from_secs(3)).await);
    assert_eq!(b.chat(a.id, "after").await["errno"], 5);
    let mut again = chat_tests::WireClient::connect(server.addr).await;
    again.send(&json!({"msgid":1,"id":a.id,"password":"pw2","ext":1})).await;
    assert_eq!(again.recv().await["errno"], 1);
    again.send(&json!({"msgid":4,"name":a.name,"password":"pw","ext":1})).await;
    assert_eq!(again.recv().await["errno"], 8, "the name is held");
}
