//! Issue 21, friend requests: asked on one node, pushed live to the other; kept for a user
//! who is away; accepted means friends both ways; declined and removed are told too; and how
//! the original client's one-sided ADD_FRIEND meets them.

use std::time::Duration;

use chat_tests::WireClient;
use chat_tests::control::{User, two_nodes_on};
use serde_json::{Value, json};

fn ids(list: &Value) -> Vec<i64> {
    list.as_array().into_iter().flatten().filter_map(|u| u["id"].as_i64()).collect()
}

async fn a_request_is_pushed_across_nodes_and_accepted_both_ways(redis: &str) {
    let (n1, n2) = two_nodes_on(redis);
    let mut a = User::on(n1.addr, "asker").await;
    let mut b = User::on(n2.addr, "asked").await;
    assert_eq!(a.ask(json!({"msgid":35,"id":b.id})).await["errno"], 0);
    let pushed = b.event("friend-request").await;
    assert_eq!(pushed, json!({"event":"friend-request","id":a.id,"msgid":47,"name":a.name}));
    assert_eq!(ids(&a.ask(json!({"msgid":38})).await["outgoing"]), vec![b.id]);
    assert_eq!(ids(&b.ask(json!({"msgid":38})).await["incoming"]), vec![a.id]);
    // Not friends yet: nothing changed on either list.
    assert!(a.ask(json!({"msgid":15})).await["friends"].as_array().is_some_and(Vec::is_empty));

    assert_eq!(b.ask(json!({"msgid":36,"id":a.id,"accept":true})).await["errno"], 0);
    assert_eq!(a.event("friend-accepted").await["id"], b.id);
    assert_eq!(ids(&a.ask(json!({"msgid":15})).await["friends"]), vec![b.id]);
    assert_eq!(ids(&b.ask(json!({"msgid":15})).await["friends"]), vec![a.id]);
    let pending = b.ask(json!({"msgid":38})).await;
    assert_eq!((ids(&pending["incoming"]), ids(&pending["outgoing"])), (vec![], vec![]));
    assert_eq!(b.ask(json!({"msgid":36,"id":a.id,"accept":true})).await["errno"], 22, "answered once");

    // Removing ends it both ways, and the other side is told.
    assert_eq!(b.ask(json!({"msgid":37,"id":a.id})).await["errno"], 0);
    assert_eq!(a.event("friend-removed").await["id"], b.id);
    assert_eq!(ids(&a.ask(json!({"msgid":15})).await["friends"]), Vec::<i64>::new());
    assert_eq!(ids(&b.ask(json!({"msgid":15})).await["friends"]), Vec::<i64>::new());
}

async fn a_request_waits_for_a_user_who_is_away_and_a_decline_is_told(redis: &str) {
    let (n1, n2) = two_nodes_on(redis);
    let mut a = User::on(n1.addr, "asker").await;
    let away = User::on(n2.addr, "away").await;
    let away_id = away.id;
    drop(away);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.ask(json!({"msgid":35,"id":away_id})).await["errno"], 0);
    assert_eq!(a.ask(json!({"msgid":35,"id":away_id})).await["errno"], 0, "asking again is harmless");

    // Back, on the other node: the request comes after the login ack, once.
    let mut c = WireClient::connect(n2.addr).await;
    assert_eq!(c.login(away_id, true).await["errno"], 0);
    let mut back = User::with(c, away_id);
    assert_eq!(back.event("friend-request").await["id"], a.id);
    back.none_within(Duration::from_millis(300), |f| f["event"] == "friend-request").await;
    assert_eq!(back.ask(json!({"msgid":36,"id":a.id,"accept":false})).await["errno"], 0);
    assert_eq!(a.event("friend-declined").await["id"], away_id);
    assert!(a.ask(json!({"msgid":15})).await["friends"].as_array().is_some_and(Vec::is_empty));
    // A request nobody made cannot be answered, whatever ids the frame carries.
    let forged = back.ask(json!({"msgid":36,"id":a.id,"accept":true,"userid":a.id,"toid":away_id})).await;
    assert_eq!(forged["errno"], 22, "{forged}");
}

/// The original client's ADD_FRIEND keeps its meaning (one-sided, at once, no reply) and
/// counts as consent: an extension user's request to an original user who lists it already
/// is granted at once, and a pending one is completed by the original user's ADD_FRIEND.
async fn the_originals_add_friend_meets_friend_requests(redis: &str) {
    let (n1, n2) = two_nodes_on(redis);
    let mut e1 = User::on(n2.addr, "ext1").await;
    let mut e2 = User::on(n2.addr, "ext2").await;
    let mut o = WireClient::connect(n1.addr).await;
    let oid = o.register(&chat_tests::unique("orig")).await;
    let mut o = WireClient::connect(n1.addr).await;
    assert_eq!(o.login(oid, false).await["errno"], 0);
    o.send(&json!({"msgid":7,"id":oid,"friendid":e1.id})).await;
    o.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(ids(&e1.ask(json!({"msgid":15})).await["friends"]), Vec::<i64>::new(), "e1's list is e1's");
    assert_eq!(e1.ask(json!({"msgid":35,"id":oid})).await["errno"], 0);
    assert_eq!(ids(&e1.ask(json!({"msgid":15})).await["friends"]), vec![oid], "granted at once");

    assert_eq!(e2.ask(json!({"msgid":35,"id":oid})).await["errno"], 0);
    o.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(ids(&e2.ask(json!({"msgid":15})).await["friends"]), Vec::<i64>::new(), "pending");
    o.send(&json!({"msgid":7,"id":oid,"friendid":e2.id})).await;
    assert_eq!(e2.event("friend-accepted").await["id"], oid);
    assert_eq!(ids(&e2.ask(json!({"msgid":15})).await["friends"]), vec![oid]);
    // The original client saw none of it: no frame it does not know.
    o.expect_silence(Duration::from_millis(300)).await;
}

// Pushes and announcements cross nodes through the broker: on one Redis and on a Redis Cluster.
chat_tests::on_both!(multi_thread; a_request_is_pushed_across_nodes_and_accepted_both_ways, a_request_waits_for_a_user_who_is_away_and_a_decline_is_told, the_originals_add_friend_meets_friend_requests);
