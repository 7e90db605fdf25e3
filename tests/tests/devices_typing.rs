//! Typing (issue 20), black-box over real TCP: two nodes on MySQL and Redis. TYPING crosses
//! nodes to the other user (not to the typer's own sessions), is never answered, is limited
//! to one forwarded "typing" per session and conversation per 2 s (the extras are dropped),
//! forwards "paused" only after a forwarded "typing", reaches a group's other members, and
//! never reaches a user who blocks the typer or takes chats from friends only. On one Redis
//! and on a Redis Cluster.

use std::time::Duration;

use chat_tests::control::User;
use chat_tests::{ServerProcess, WireClient, cluster_node_with, unique};
use serde_json::{Value, json};

chat_tests::on_both!(multi_thread; typing_crosses_nodes_once_per_burst_and_never_to_a_blocker);

const QUIET: Duration = Duration::from_millis(700);
const LIMIT: Duration = Duration::from_millis(2100);

fn typing(f: &Value) -> bool {
    f["msgid"] == 58
}

/// The TYPING frames `who` gets within `quiet`.
async fn typings(who: &mut User, quiet: Duration) -> Vec<Value> {
    let got = who.none_within(quiet, |_| false).await;
    got.into_iter().filter(typing).collect()
}

async fn typing_crosses_nodes_once_per_burst_and_never_to_a_blocker(redis: &str) {
    let prefix = format!("{}:", unique("typ"));
    let (n1, n2): (ServerProcess, ServerProcess) =
        (cluster_node_with("n1", redis, &prefix, 3, &[]), cluster_node_with("n2", redis, &prefix, 3, &[]));
    // The typer with a session on each node; the other user on n2; a third member on n1.
    let mut t1 = User::on(n1.addr, "t").await;
    let t = t1.id;
    let mut c = WireClient::connect(n2.addr).await;
    assert_eq!(c.login(t, true).await["errno"], 0);
    let mut t2 = User::with(c, t);
    let mut r = User::on(n2.addr, "r").await;
    let mut m = User::on(n1.addr, "m").await;
    let created = m.ask(json!({"msgid":8,"groupname":unique("tg"),"groupdesc":""})).await;
    let g = created["groupid"].as_i64().expect("groupid");
    for u in [&mut t1, &mut r] {
        assert_eq!(u.ask(json!({"msgid":9,"groupid":g})).await["errno"], 0);
    }

    // A burst of five: one crosses, the extras are dropped; nothing is answered.
    for _ in 0..5 {
        t1.c.send(&json!({"msgid":58,"id":r.id,"state":"typing"})).await;
    }
    t1.c.expect_silence(QUIET).await;
    let got = typings(&mut r, QUIET).await;
    assert_eq!(got, vec![json!({"id":t,"msgid":58,"state":"typing"})], "one of five crosses");
    assert!(typings(&mut t2, Duration::ZERO).await.is_empty(), "not to the typer's own sessions");

    // Paused after a forwarded typing, once.
    t1.c.send(&json!({"msgid":58,"id":r.id,"state":"paused"})).await;
    t1.c.send(&json!({"msgid":58,"id":r.id,"state":"paused"})).await;
    assert_eq!(typings(&mut r, QUIET).await, vec![json!({"id":t,"msgid":58,"state":"paused"})]);
    // Paused with no typing before it (in the group) is not forwarded.
    t1.c.send(&json!({"msgid":58,"groupid":g,"state":"paused"})).await;
    assert!(typings(&mut m, QUIET).await.is_empty());

    // In the group: the other members, on both nodes.
    t1.c.send(&json!({"msgid":58,"groupid":g})).await;
    let want = json!({"groupid":g,"id":t,"msgid":58,"state":"typing"});
    assert_eq!(m.wait_for(typing).await, want);
    assert_eq!(r.wait_for(typing).await, want);
    assert!(typings(&mut t2, QUIET).await.is_empty());

    // After the limit's 2 s, typing crosses again; from the other session at once (per session).
    tokio::time::sleep(LIMIT).await;
    t2.c.send(&json!({"msgid":58,"id":r.id})).await;
    assert_eq!(r.wait_for(typing).await["state"], "typing");

    // The other user blocks the typer: nothing reaches it, one-to-one or in the group.
    assert_eq!(r.ask(json!({"msgid":30,"id":t})).await["errno"], 0);
    tokio::time::sleep(LIMIT).await;
    t1.c.send(&json!({"msgid":58,"id":r.id})).await;
    t1.c.send(&json!({"msgid":58,"groupid":g})).await;
    assert_eq!(m.wait_for(typing).await, want, "the member who does not block still sees it");
    assert!(typings(&mut r, QUIET).await.is_empty(), "nothing to a blocker");
    t1.c.expect_silence(Duration::ZERO).await;

    // A user who takes chats from friends only hears no typing from a stranger.
    assert_eq!(m.ask(json!({"msgid":34,"writers":"friends"})).await["errno"], 0);
    t1.c.send(&json!({"msgid":58,"id":m.id})).await;
    assert!(typings(&mut m, QUIET).await.is_empty(), "nothing to a user who refuses the typer's chats");
}
