//! Issue 21, blocking and "who may write to me", over real TCP across two nodes (the actor
//! on one, the affected user on the other), on MySQL, and on one Redis and on a Redis Cluster.

use std::time::Duration;

use chat_tests::control::{User, two_nodes_on};
use serde_json::json;

/// A blocked sender's 100 chats are refused (errno 20), reach nobody, and are stored for
/// nobody; the blocked user cannot add the blocker as a friend and sees the blocker offline;
/// the blocker cannot write to the blocked user either; unblocking undoes it all.
async fn a_blocked_senders_hundred_chats_reach_nobody_and_are_not_stored(redis: &str) {
    let (n1, n2) = two_nodes_on(redis);
    let mut a = User::on(n1.addr, "blocker").await;
    let mut b = User::on(n2.addr, "blocked").await;
    // b lists a (one-sided, as the original's ADD_FRIEND) and sees a online.
    assert_eq!(b.ask(json!({"msgid":7,"friendid":a.id})).await["errno"], 0);
    let list = b.ask(json!({"msgid":15})).await;
    assert_eq!(list["friends"][0]["state"], "online", "{list}");

    assert_eq!(a.ask(json!({"msgid":30,"id":b.id})).await["errno"], 0);
    for i in 0..100 {
        let ack = b.ask(json!({"msgid":6,"to":a.id,"msg":format!("spam {i}"),"cid":format!("s{i}")})).await;
        assert_eq!(ack["errno"], 20, "chat {i}: {ack}");
        assert_eq!(ack["cid"], format!("s{i}"), "a refused chat's ack echoes its cid");
        assert!(ack.get("mid").is_none(), "nothing was stored: {ack}");
    }
    a.none_within(Duration::from_millis(500), |f| f["msgid"] == 6).await;
    assert!(a.history_with(b.id).await.is_empty(), "nothing is stored for the recipient");
    assert!(b.history_with(a.id).await.is_empty(), "nor for the sender");
    // Nothing waits for a at its next login either (on the other node).
    a.c.send(&json!({"msgid":3})).await;
    assert_eq!(a.wait_for(|f| f["msgid"] == 11 && f["re"] == 3).await["errno"], 0);
    let mut again = chat_tests::WireClient::connect(n2.addr).await;
    let ack = again.login(a.id, true).await;
    assert_eq!(ack["errno"], 0, "{ack}");
    assert_eq!(ack["unread"], json!([]), "{ack}");
    a.switch(again);

    // No friendship, no presence, no way back in.
    assert_eq!(b.ask(json!({"msgid":35,"id":a.id})).await["errno"], 20, "no friend request");
    assert_eq!(b.ask(json!({"msgid":7,"friendid":a.id})).await["errno"], 20, "no ADD_FRIEND either");
    let list = b.ask(json!({"msgid":15})).await;
    assert_eq!(list["friends"][0]["state"], "offline", "the blocker shows offline: {list}");
    assert_eq!(a.chat(b.id, "hi").await["errno"], 21, "the blocker cannot write to the blocked user");
    let blocked = a.ask(json!({"msgid":32})).await;
    assert_eq!(blocked["users"], json!([{"id":b.id,"name":b.name}]), "{blocked}");
    assert_eq!(blocked["writers"], "anyone");

    // Unblocked: b's chats reach a again.
    assert_eq!(a.ask(json!({"msgid":31,"id":b.id})).await["errno"], 0);
    assert_eq!(b.chat(a.id, "friends again?").await["errno"], 0);
    let got = a.wait_for(|f| f["msgid"] == 6).await;
    assert_eq!((got["msg"].as_str(), got["id"].as_i64()), (Some("friends again?"), Some(b.id)));
    assert_eq!(a.ask(json!({"msgid":32})).await["users"], json!([]));
}

/// "Friends only": strangers are refused, users on the recipient's list get through; back
/// to "anyone" opens it again.
async fn friends_only_refuses_strangers(redis: &str) {
    let (n1, n2) = two_nodes_on(redis);
    let mut a = User::on(n1.addr, "private").await;
    let mut friend = User::on(n2.addr, "friend").await;
    let mut stranger = User::on(n2.addr, "stranger").await;
    assert_eq!(a.ask(json!({"msgid":7,"friendid":friend.id})).await["errno"], 0);
    // The stranger's chats pass before the setting (and its node caches the verdict).
    assert_eq!(stranger.chat(a.id, "hello before").await["errno"], 0);
    a.wait_for(|f| f["msg"] == "hello before").await;

    assert_eq!(a.ask(json!({"msgid":34,"writers":"friends"})).await["errno"], 0);
    assert_eq!(a.ask(json!({"msgid":32})).await["writers"], "friends");
    // The announcement reaches the other node's cache.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(stranger.chat(a.id, "hello after").await["errno"], 20);
    assert_eq!(friend.chat(a.id, "from a friend").await["errno"], 0);
    let got = a.wait_for(|f| f["msgid"] == 6).await;
    assert_eq!(got["msg"], "from a friend", "the stranger's chat never came: {got}");
    assert_eq!(a.history_with(stranger.id).await, vec!["hello before"]);
    // Being on the stranger's own list does not help: it is the recipient's list that counts.
    assert_eq!(stranger.ask(json!({"msgid":7,"friendid":a.id})).await["errno"], 0);
    assert_eq!(stranger.chat(a.id, "still no").await["errno"], 20);

    assert_eq!(a.ask(json!({"msgid":34,"writers":"anyone"})).await["errno"], 0);
    assert_eq!(stranger.chat(a.id, "open again").await["errno"], 0);
    a.wait_for(|f| f["msg"] == "open again").await;
    assert_eq!(a.ask(json!({"msgid":34,"writers":"nobody"})).await["errno"], 4, "a bad setting is refused");
}

/// Nobody acts for another user: an UNBLOCK or BLOCK carrying someone else's id as the actor
/// changes only the sender's own list.
async fn block_requests_act_only_for_the_sender(redis: &str) {
    let (n1, n2) = two_nodes_on(redis);
    let mut a = User::on(n1.addr, "victim").await;
    let mut b = User::on(n2.addr, "pest").await;
    assert_eq!(a.ask(json!({"msgid":30,"id":b.id})).await["errno"], 0);
    // b forges a's id in every place a client could put it.
    let forged = b.ask(json!({"msgid":31,"id":b.id,"userid":a.id,"from":a.id})).await;
    assert_eq!(forged["errno"], 0, "b unblocked nobody but itself: {forged}");
    assert_eq!(b.chat(a.id, "let me in").await["errno"], 20, "a's block stands");
    assert_eq!(b.ask(json!({"msgid":31,"id":a.id})).await["errno"], 0);
    assert_eq!(b.chat(a.id, "let me in").await["errno"], 20, "still: only a can lift it");
    assert_eq!(a.ask(json!({"msgid":32})).await["users"][0]["id"], b.id);
    assert_eq!(a.ask(json!({"msgid":30,"id":a.id})).await["errno"], 9, "nobody blocks themselves");
    assert_eq!(a.ask(json!({"msgid":30,"id":987_654_321})).await["errno"], 5, "unknown user");
}

/// In a group both are in, the blocked user still posts (the group is the members', not the
/// blocker's), but its messages are not pushed to the blocker, live or in the replay at its
/// next login; the others get them.
async fn in_shared_groups_the_blocked_users_messages_skip_the_blocker(redis: &str) {
    let (n1, n2) = two_nodes_on(redis);
    let mut a = User::on(n1.addr, "blocker").await;
    let mut b = User::on(n2.addr, "blocked").await;
    let mut c = User::on(n2.addr, "bystander").await;
    let created = a.ask(json!({"msgid":8,"groupname":chat_tests::unique("g"),"groupdesc":""})).await;
    let gid = created["groupid"].as_i64().expect("gid");
    for u in [&mut b, &mut c] {
        assert_eq!(u.ask(json!({"msgid":9,"groupid":gid})).await["errno"], 0);
    }
    assert_eq!(a.ask(json!({"msgid":30,"id":b.id})).await["errno"], 0);
    assert_eq!(b.ask(json!({"msgid":10,"groupid":gid,"msg":"from b"})).await["errno"], 0);
    assert_eq!(c.ask(json!({"msgid":10,"groupid":gid,"msg":"from c"})).await["errno"], 0);
    let got = a.wait_for(|f| f["msgid"] == 10).await;
    assert_eq!(got["msg"], "from c", "b's message was skipped: {got}");
    assert_eq!(c.wait_for(|f| f["msgid"] == 10).await["msg"], "from b");
    // Away and back: the replay skips b's too.
    a.c.send(&json!({"msgid":3})).await;
    a.wait_for(|f| f["re"] == 3).await;
    assert_eq!(b.ask(json!({"msgid":10,"groupid":gid,"msg":"b again"})).await["errno"], 0);
    assert_eq!(c.ask(json!({"msgid":10,"groupid":gid,"msg":"c again"})).await["errno"], 0);
    let mut again = chat_tests::WireClient::connect(n1.addr).await;
    assert_eq!(again.login(a.id, true).await["errno"], 0);
    a.switch(again);
    // The replay: everything a did not acknowledge (it sent no RECEIVED), but nothing of b's.
    assert_eq!(a.wait_for(|f| f["msgid"] == 10).await["msg"], "from c");
    assert_eq!(a.wait_for(|f| f["msgid"] == 10).await["msg"], "c again");
    a.none_within(Duration::from_millis(300), |f| f["msgid"] == 10).await;
    // The group's record still holds b's messages: HISTORY is the group's, not a's inbox.
    let page = a.ask(json!({"msgid":19,"groupid":gid})).await;
    let texts: Vec<&str> =
        page["messages"].as_array().into_iter().flatten().filter_map(|m| m["msg"].as_str()).collect();
    assert_eq!(texts, ["from b", "from c", "b again", "c again"]);
}

// Pushes and announcements cross nodes through the broker: on one Redis and on a Redis Cluster.
chat_tests::on_both!(multi_thread; a_blocked_senders_hundred_chats_reach_nobody_and_are_not_stored, friends_only_refuses_strangers, block_requests_act_only_for_the_sender, in_shared_groups_the_blocked_users_messages_skip_the_blocker);
