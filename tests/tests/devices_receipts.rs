//! Read state and read receipts (issue 20), black-box over real TCP: two nodes on MySQL and
//! Redis, one user with two sessions on both nodes and a friend. A mark made on one session
//! reaches the user's other session and the friend (RECEIPT 55), a RECEIVED is a "recv"
//! receipt, the LOGIN ack and LIST carry the marks and the lowered unread counts, a friend
//! who logs in later learns the receipts; in a group the senders of the messages a mark
//! covers are told, and READS counts; a client may not mark, ask or type where it is not a
//! member, and never names the reader. On one Redis and on a Redis Cluster.

use std::time::{Duration, Instant};

use chat_tests::control::User;
use chat_tests::{ServerProcess, WireClient, cluster_node_with, unique};
use serde_json::{Value, json};

chat_tests::on_both!(
    multi_thread;
    one_to_one_marks_reach_the_other_session_and_the_friend,
    group_marks_reach_the_senders_of_what_they_cover,
    nobody_marks_asks_or_types_outside_their_conversations
);

const QUIET: Duration = Duration::from_millis(700);

fn two_nodes(redis: &str) -> (ServerProcess, ServerProcess) {
    let prefix = format!("{}:", unique("rcp"));
    (cluster_node_with("n1", redis, &prefix, 3, &[]), cluster_node_with("n2", redis, &prefix, 3, &[]))
}

/// Another extension session of `user` on `node`, and its LOGIN ack.
async fn session(node: &ServerProcess, user: &User) -> (User, Value) {
    let mut c = WireClient::connect(node.addr).await;
    let ack = c.login(user.id, true).await;
    assert_eq!(ack["errno"], 0, "{ack}");
    (User::with(c, user.id), ack)
}

fn receipt(f: &Value) -> bool {
    f["msgid"] == 55
}

/// Reads `who`'s READS of the conversation until `ready` accepts it (cursors are written
/// every second), within 5 s.
async fn reads_until(who: &mut User, conv: Value, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut req = conv.clone();
        req["msgid"] = json!(56);
        let got = who.ask(req).await;
        assert_eq!(got["errno"], 0, "{got}");
        if ready(&got) || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn entry(reads: &Value, id: i64) -> Value {
    reads["reads"].as_array().into_iter().flatten().find(|r| r["id"] == id).cloned().unwrap_or(Value::Null)
}

async fn one_to_one_marks_reach_the_other_session_and_the_friend(redis: &str) {
    let (n1, n2) = two_nodes(redis);
    // The user: session A on n1, B on n2. The friend on n1 (the other node from B).
    let mut a = User::on(n1.addr, "u").await;
    let u = a.id;
    let (mut b, _) = session(&n2, &a).await;
    let mut f = User::on(n1.addr, "f").await;
    for i in 1..=3 {
        assert_eq!(f.chat(u, &format!("m{i}")).await["errno"], 0);
    }
    for s in [&mut a, &mut b] {
        s.wait_for(|m| m["msgid"] == 6 && m["seq"] == 3).await;
    }

    // A marks read up to 2, naming someone else as the reader: the server knows who reads.
    let marked = a.ask(json!({"msgid":54,"id":f.id,"seq":2,"reader":f.id})).await;
    assert_eq!(marked, json!({"errno":0,"msgid":11,"re":54}));
    let own = b.wait_for(receipt).await;
    assert_eq!(
        own,
        json!({"id":f.id,"msgid":55,"reader":u,"seq":2,"what":"read"}),
        "the user's other session"
    );
    let read = f.wait_for(receipt).await;
    assert_eq!(read, json!({"id":u,"msgid":55,"reader":u,"seq":2,"what":"read"}), "the friend");
    a.none_within(QUIET, receipt).await;

    // A mark never goes back; it is clamped to the conversation's last seq.
    assert_eq!(a.ask(json!({"msgid":54,"id":f.id,"seq":1})).await["errno"], 0);
    f.none_within(QUIET, receipt).await;
    b.none_within(Duration::ZERO, receipt).await;
    assert_eq!(b.ask(json!({"msgid":54,"id":f.id,"seq":99})).await["errno"], 0);
    assert_eq!(f.wait_for(receipt).await["seq"], 3, "clamped to the last seq");
    assert_eq!(a.wait_for(receipt).await, json!({"id":f.id,"msgid":55,"reader":u,"seq":3,"what":"read"}));

    // RECEIVED moves the cursor: the friend learns "recv".
    a.c.send(&json!({"msgid":18,"acks":[{"id":f.id,"seq":3}]})).await;
    assert_eq!(f.wait_for(receipt).await, json!({"id":u,"msgid":55,"reader":u,"seq":3,"what":"recv"}));
    b.none_within(QUIET, |m| receipt(m) && m["what"] == "recv").await;

    // Two more, marked read (not received): a new session sees the mark and no unread.
    for i in 4..=5 {
        assert_eq!(f.chat(u, &format!("m{i}")).await["errno"], 0);
    }
    a.wait_for(|m| m["msgid"] == 6 && m["seq"] == 5).await;
    assert_eq!(a.ask(json!({"msgid":54,"id":f.id,"seq":5})).await["errno"], 0);
    f.wait_for(|m| receipt(m) && m["seq"] == 5).await;
    let (mut c, ack) = session(&n2, &a).await;
    assert_eq!(ack["read"], json!([{"id":f.id,"seq":5}]), "{ack}");
    assert_eq!(ack["unread"], json!([]), "unread counts from the read mark: {ack}");
    let list = c.ask(json!({"msgid":15})).await;
    assert_eq!(list["read"], json!([{"id":f.id,"seq":5}]), "{list}");
    assert_eq!(list["unread"], json!([]), "{list}");

    // The friend reads the marks: READS, and at its next login, `receipts`.
    let reads = reads_until(&mut f, json!({"id":u}), |r| entry(r, u)["recv"] == 3).await;
    assert_eq!(entry(&reads, u), json!({"id":u,"read":5,"recv":3}), "{reads}");
    assert_eq!(reads["id"], u);
    let (_, later) = session(&n2, &f).await;
    assert_eq!(later["receipts"], json!([{"id":u,"read":5,"recv":3}]), "{later}");
    assert_eq!(later["read"], json!([]), "the friend marked nothing");
}

async fn group_marks_reach_the_senders_of_what_they_cover(redis: &str) {
    let (n1, n2) = two_nodes(redis);
    let mut x = User::on(n1.addr, "x").await;
    let mut y = User::on(n2.addr, "y").await;
    let mut z = User::on(n1.addr, "z").await;
    let created = x.ask(json!({"msgid":8,"groupname":unique("rg"),"groupdesc":""})).await;
    let g = created["groupid"].as_i64().expect("groupid");
    for m in [&mut y, &mut z] {
        assert_eq!(m.ask(json!({"msgid":9,"groupid":g})).await["errno"], 0);
    }
    assert_eq!(x.ask(json!({"msgid":10,"groupid":g,"msg":"g1"})).await["errno"], 0);
    y.wait_for(|m| m["msgid"] == 10 && m["seq"] == 1).await;
    assert_eq!(y.ask(json!({"msgid":10,"groupid":g,"msg":"g2"})).await["errno"], 0);
    x.wait_for(|m| m["msgid"] == 10 && m["seq"] == 2).await;
    assert_eq!(x.ask(json!({"msgid":10,"groupid":g,"msg":"g3"})).await["errno"], 0);
    z.wait_for(|m| m["msgid"] == 10 && m["seq"] == 3).await;

    // Z reads 1..2: their senders, X and Y, are told.
    assert_eq!(z.ask(json!({"msgid":54,"groupid":g,"seq":2})).await["errno"], 0);
    let told = json!({"groupid":g,"msgid":55,"reader":z.id,"seq":2,"what":"read"});
    assert_eq!(x.wait_for(receipt).await, told);
    assert_eq!(y.wait_for(receipt).await, told);
    // Y reads 1..3: only X sent any of it (Y's own do not count; Z sent nothing).
    assert_eq!(y.ask(json!({"msgid":54,"groupid":g,"seq":3})).await["errno"], 0);
    assert_eq!(
        x.wait_for(receipt).await,
        json!({"groupid":g,"msgid":55,"reader":y.id,"seq":3,"what":"read"})
    );
    z.none_within(QUIET, receipt).await;
    // Z reads 3: X sent it; Y is not told.
    assert_eq!(z.ask(json!({"msgid":54,"groupid":g,"seq":3})).await["errno"], 0);
    assert_eq!(x.wait_for(receipt).await["reader"], z.id);
    // No "recv" receipts in groups.
    z.c.send(&json!({"msgid":18,"acks":[{"groupid":g,"seq":3}]})).await;
    y.none_within(QUIET, receipt).await;
    x.none_within(Duration::ZERO, receipt).await;

    // READS: how many read each message.
    let reads = reads_until(&mut x, json!({"groupid":g}), |_| true).await;
    assert_eq!(reads["groupid"], g);
    assert_eq!(reads["reads"].as_array().map(Vec::len), Some(3), "{reads}");
    assert_eq!(entry(&reads, x.id)["read"], 0);
    assert_eq!(entry(&reads, y.id)["read"], 3);
    assert_eq!(entry(&reads, z.id)["read"], 3);
    let (_, ack) = session(&n2, &z).await;
    assert_eq!(ack["read"], json!([{"groupid":g,"seq":3}]), "{ack}");
    assert_eq!(ack["receipts"], json!([]), "receipts are for one-to-one conversations");
}

async fn nobody_marks_asks_or_types_outside_their_conversations(redis: &str) {
    let (n1, n2) = two_nodes(redis);
    let mut x = User::on(n1.addr, "x").await;
    let mut y = User::on(n2.addr, "y").await;
    let mut o = User::on(n2.addr, "o").await;
    let created = x.ask(json!({"msgid":8,"groupname":unique("ag"),"groupdesc":""})).await;
    let g = created["groupid"].as_i64().expect("groupid");
    assert_eq!(y.ask(json!({"msgid":9,"groupid":g})).await["errno"], 0);
    assert_eq!(x.ask(json!({"msgid":10,"groupid":g,"msg":"members only"})).await["errno"], 0);
    assert_eq!(x.chat(y.id, "just us").await["errno"], 0);

    // The outsider: errno 7 for a group it is not in, 6 for no group, 5 for no user.
    for (req, errno) in [
        (json!({"msgid":54,"groupid":g,"seq":1}), 7),
        (json!({"msgid":56,"groupid":g}), 7),
        (json!({"msgid":58,"groupid":g}), 7),
        (json!({"msgid":54,"groupid":i32::MAX,"seq":1}), 6),
        (json!({"msgid":56,"groupid":i32::MAX}), 6),
        (json!({"msgid":58,"groupid":i32::MAX}), 6),
        (json!({"msgid":54,"id":i32::MAX,"seq":1}), 5),
        (json!({"msgid":56,"id":i32::MAX}), 5),
        (json!({"msgid":58,"id":i32::MAX,"state":"typing"}), 5),
        // Malformed: a bad request on ACK, the connection stays.
        (json!({"msgid":54,"groupid":g}), 4),
        (json!({"msgid":58,"groupid":g,"state":"asleep"}), 4),
    ] {
        let got = o.ask(req.clone()).await;
        assert_eq!(got["errno"], errno, "{req}: {got}");
    }
    // Nothing was stored for it, nothing forwarded to the members.
    x.none_within(QUIET, |m| receipt(m) || m["msgid"] == 58).await;
    y.none_within(Duration::ZERO, |m| receipt(m) || m["msgid"] == 58).await;
    let reads = x.ask(json!({"msgid":56,"groupid":g})).await;
    assert!(entry(&reads, o.id).is_null(), "{reads}");
    assert_eq!(o.ask(json!({"msgid":15})).await["read"], json!([]));
    // Marking a conversation with a user is allowed (it is the outsider's own, empty): nothing moves.
    assert_eq!(o.ask(json!({"msgid":54,"id":x.id,"seq":5})).await["errno"], 0);
    x.none_within(QUIET, receipt).await;
    assert_eq!(
        o.ask(json!({"msgid":15})).await["read"],
        json!([]),
        "a conversation without messages has no mark"
    );
}

/// The basics on the embedded SQLite store (the tests above run on MySQL): one node.
#[tokio::test(flavor = "multi_thread")]
async fn receipts_basics_on_sqlite() {
    let server = ServerProcess::start_sqlite(&[]);
    let mut a = User::on(server.addr, "a").await;
    let mut b = User::on(server.addr, "b").await;
    let (mut b2, _) = session(&server, &b).await;
    for i in 1..=3 {
        assert_eq!(a.chat(b.id, &format!("s{i}")).await["errno"], 0);
    }
    b.wait_for(|m| m["msgid"] == 6 && m["seq"] == 3).await;
    assert_eq!(b.ask(json!({"msgid":54,"id":a.id,"seq":2})).await["errno"], 0);
    assert_eq!(a.wait_for(receipt).await, json!({"id":b.id,"msgid":55,"reader":b.id,"seq":2,"what":"read"}));
    assert_eq!(b2.wait_for(receipt).await, json!({"id":a.id,"msgid":55,"reader":b.id,"seq":2,"what":"read"}));
    b.c.send(&json!({"msgid":18,"acks":[{"id":a.id,"seq":3}]})).await;
    assert_eq!(a.wait_for(receipt).await["what"], "recv");
    let reads = reads_until(&mut a, json!({"id":b.id}), |r| entry(r, b.id)["recv"] == 3).await;
    assert_eq!(entry(&reads, b.id), json!({"id":b.id,"read":2,"recv":3}), "{reads}");
    let (_, ack) = session(&server, &b).await;
    assert_eq!(ack["read"], json!([{"id":a.id,"seq":2}]));
    assert_eq!(ack["unread"], json!([{"count":1,"id":a.id}]), "one after the mark, though all were received");
    let (_, ack) = session(&server, &a).await;
    assert_eq!(ack["receipts"], json!([{"id":b.id,"read":2,"recv":3}]));
}
