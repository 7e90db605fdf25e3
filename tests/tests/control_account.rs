//! Issue 21, the account across two nodes: changing the password ends every resume token
//! (and every other session); deleting the account ends its sessions, its friendships and
//! memberships, keeps its messages with their recipients signed "deleted user", and holds
//! its name.

use std::time::Duration;

use chat_tests::WireClient;
use chat_tests::control::{User, two_nodes_on};
use serde_json::json;

async fn login_pw(addr: std::net::SocketAddr, id: i64, pw: &str) -> (WireClient, serde_json::Value) {
    let mut c = WireClient::connect(addr).await;
    c.send(&json!({"msgid":1,"id":id,"password":pw,"ext":1})).await;
    let ack = c.recv().await;
    (c, ack)
}

async fn resume(addr: std::net::SocketAddr, token: &str) -> serde_json::Value {
    let mut c = WireClient::connect(addr).await;
    c.send(&json!({"msgid":17,"token":token})).await;
    c.recv().await
}

async fn changing_the_password_ends_every_token(redis: &str) {
    let (n1, n2) = two_nodes_on(redis);
    let user = User::on(n1.addr, "pw").await;
    let id = user.id;
    drop(user);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Two tokens out: one from a login on each node (the first one's session ended with its connection).
    let (c1, ack1) = login_pw(n1.addr, id, "pw").await;
    let old_token = ack1["resume"].as_str().expect("token").to_owned();
    drop(c1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (c, ack) = login_pw(n2.addr, id, "pw").await;
    assert_eq!(ack["errno"], 0);
    let mut me = User::with(c, id);

    let wrong = me.ask(json!({"msgid":45,"password":"not it","newpassword":"pw2"})).await;
    assert_eq!(wrong["errno"], 24, "{wrong}");
    let empty = me.ask(json!({"msgid":45,"password":"pw","newpassword":""})).await;
    assert_eq!(empty["errno"], 9, "{empty}");
    // A forged id changes the caller's password, never the one named.
    let changed = me.ask(json!({"msgid":45,"id":id + 1,"password":"pw","newpassword":"pw2"})).await;
    assert_eq!(changed["errno"], 0, "{changed}");
    let new_token = changed["resume"].as_str().expect("a new token for this connection").to_owned();
    // This session goes on.
    assert!(me.ask(json!({"msgid":15})).await["friends"].is_array());
    drop(me);
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(resume(n1.addr, &old_token).await["errno"], 17, "the old tokens ended");
    assert_eq!(resume(n2.addr, ack["resume"].as_str().expect("token")).await["errno"], 17);
    assert_eq!(login_pw(n1.addr, id, "pw").await.1["errno"], 1, "the old password is refused");
    let fresh = resume(n1.addr, &new_token).await;
    assert_eq!(fresh["errno"], 0, "the token the change gave works: {fresh}");
}

async fn a_deleted_account_is_gone_everywhere(redis: &str) {
    let (n1, n2) = two_nodes_on(redis);
    let mut gone = User::on(n1.addr, "leaving").await;
    let mut friend = User::on(n2.addr, "friend").await;
    let mut member = User::on(n2.addr, "member").await;
    // A friendship, a group it owns, a conversation.
    assert_eq!(gone.ask(json!({"msgid":35,"id":friend.id})).await["errno"], 0);
    friend.event("friend-request").await;
    assert_eq!(friend.ask(json!({"msgid":36,"id":gone.id,"accept":true})).await["errno"], 0);
    let created = gone.ask(json!({"msgid":8,"groupname":chat_tests::unique("g"),"groupdesc":""})).await;
    let gid = created["groupid"].as_i64().expect("gid");
    assert_eq!(member.ask(json!({"msgid":9,"groupid":gid})).await["errno"], 0);
    assert_eq!(gone.chat(friend.id, "remember me").await["errno"], 0);
    friend.wait_for(|f| f["msg"] == "remember me").await;

    assert_eq!(gone.ask(json!({"msgid":46,"password":"wrong"})).await["errno"], 24);
    let ack = gone.ask(json!({"msgid":46,"password":"pw","id":friend.id})).await;
    assert_eq!(ack["errno"], 0, "{ack}");
    assert!(gone.c.closed_within(Duration::from_secs(3)).await, "its session ends");

    assert_eq!(friend.event("friend-removed").await["id"], gone.id);
    assert_eq!(member.event("member-left").await["id"], gone.id);
    assert_eq!(member.event("owner-changed").await["id"], member.id, "the group passes on");
    // It cannot log in on either node; its name stays taken; nobody can write to it.
    for addr in [n1.addr, n2.addr] {
        assert_eq!(login_pw(addr, gone.id, "pw").await.1["errno"], 1);
    }
    let mut c = WireClient::connect(n2.addr).await;
    c.send(&json!({"msgid":4,"name":gone.name,"password":"pw","ext":1})).await;
    assert_eq!(c.recv().await["errno"], 8, "the name is held");
    assert_eq!(friend.chat(gone.id, "are you there?").await["errno"], 5);
    let list = friend.ask(json!({"msgid":15})).await;
    assert_eq!(list["friends"], json!([]), "{list}");
    // Its messages stay with their recipient, signed "deleted user".
    let page = friend.ask(json!({"msgid":19,"id":gone.id})).await;
    let first = &page["messages"][0];
    assert_eq!((first["msg"].as_str(), first["name"].as_str()), (Some("remember me"), Some("deleted user")));
}

/// A deleted account's resume token is refused too (on the other node).
async fn a_deleted_account_cannot_resume(redis: &str) {
    let (n1, n2) = two_nodes_on(redis);
    let user = User::on(n1.addr, "resumer").await;
    let id = user.id;
    drop(user);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (c, ack) = login_pw(n1.addr, id, "pw").await;
    let token = ack["resume"].as_str().expect("token").to_owned();
    let mut me = User::with(c, id);
    assert_eq!(me.ask(json!({"msgid":46,"password":"pw"})).await["errno"], 0);
    assert!(me.c.closed_within(Duration::from_secs(3)).await);
    assert_eq!(resume(n2.addr, &token).await["errno"], 17);
    assert_eq!(resume(n1.addr, &token).await["errno"], 17);
}

/// With several sessions of one user (issue 20) on both nodes: changing the password from
/// one ends the others, on its node and on the other, each told why; deleting the account
/// ends every session, the asking one included.
async fn the_users_other_sessions_on_both_nodes_end(redis: &str) {
    let (n1, n2) = two_nodes_on(redis);
    let user = User::on(n1.addr, "pw").await;
    let id = user.id;
    let (mut same_node, ack) = login_pw(n1.addr, id, "pw").await;
    assert_eq!(ack["errno"], 0, "a second session beside the first: {ack}");
    let (mut other_node, ack) = login_pw(n2.addr, id, "pw").await;
    assert_eq!(ack["errno"], 0, "a third session, on the other node: {ack}");
    let mut me = user;

    let changed = me.ask(json!({"msgid":45,"password":"pw","newpassword":"pw2"})).await;
    assert_eq!(changed["errno"], 0, "{changed}");
    for (what, c) in [("same node", &mut same_node), ("other node", &mut other_node)] {
        let notice = c.recv_within(Duration::from_secs(5)).await;
        let notice = notice.unwrap_or_else(|| panic!("the session on the {what} was told nothing"));
        assert_eq!(
            (notice["msgid"].as_i64(), notice["errno"].as_i64()),
            (Some(14), Some(15)),
            "{what}: {notice}"
        );
        assert!(c.closed_within(Duration::from_secs(3)).await, "the session on the {what} ends");
    }
    assert!(me.ask(json!({"msgid":15})).await["friends"].is_array(), "the asking session goes on");

    let (again, ack) = login_pw(n2.addr, id, "pw2").await;
    assert_eq!(ack["errno"], 0, "{ack}");
    let mut again = User::with(again, id);
    assert_eq!(me.ask(json!({"msgid":46,"password":"pw2"})).await["errno"], 0);
    assert!(me.c.closed_within(Duration::from_secs(3)).await, "the asking session ends");
    assert!(again.c.closed_within(Duration::from_secs(5)).await, "the other node's session ends");
}

// Pushes and announcements cross nodes through the broker: on one Redis and on a Redis Cluster.
chat_tests::on_both!(multi_thread; changing_the_password_ends_every_token, a_deleted_account_is_gone_everywhere, a_deleted_account_cannot_resume, the_users_other_sessions_on_both_nodes_end);
