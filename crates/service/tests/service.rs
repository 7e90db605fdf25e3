//! Service tests over in-memory adapters: a script of requests per client and
//! the exact frames each client must see. Two "nodes" share one in-process hub
//! to cover cross-node routing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_broker::{LocalBroker, LocalHub};
use chat_net::{Handler, Inbound, Outbound, OutboundRx};
use chat_ports::memory::MemoryStore;
use chat_ports::{Log, Store};
use chat_service::{Conn, Delivery, HashCost, Service, ServiceConfig, Sessions};
use serde_json::{Value, json};

struct Node {
    service: Arc<Service>,
    broker: Arc<LocalBroker>,
    delivery: Arc<Delivery>,
}

fn config() -> ServiceConfig {
    ServiceConfig {
        hash_cost: HashCost { memory_kib: 64, iterations: 1, parallelism: 1 },
        ..ServiceConfig::default()
    }
}

fn node(hub: &Arc<LocalHub>, db: &Arc<MemoryStore>) -> Node {
    let store: Arc<dyn Store> = db.clone();
    let log: Arc<dyn Log> = db.clone();
    let delivery = Delivery::new(Sessions::new(64), store.clone(), log.clone());
    let broker = hub.node(delivery.clone());
    let service = Arc::new(
        Service::new(store, log, db.clone(), broker.clone(), delivery.clone(), config()).expect("service"),
    );
    Node { service, broker, delivery }
}

fn single() -> (Node, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    (node(&LocalHub::new(), &store), store)
}

struct Client {
    service: Arc<Service>,
    conn: Option<Conn>,
    /// What the connection's writer wrote, in order (a task plays the socket writer).
    rx: tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>,
}

/// Plays the connection's writer task: drains the queue as fast as a socket would.
fn writer(mut rx: OutboundRx) -> tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes> {
    let (tx, written) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if tx.send(frame).is_err() {
                break;
            }
        }
    });
    written
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Client {
    fn new(node: &Node) -> Client {
        let (out, rx) = Outbound::channel(64);
        let peer: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (conn, _) = node.service.open(id, peer, out);
        Client { service: node.service.clone(), conn: Some(conn), rx: writer(rx) }
    }

    async fn send(&mut self, v: Value) {
        self.send_raw(&serde_json::to_vec(&v).expect("json")).await;
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        let conn = self.conn.as_mut().expect("open");
        self.service.frame(conn, Inbound::Frame(bytes.into())).await;
    }

    async fn recv(&mut self) -> Value {
        let frame = tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
            .await
            .expect("a frame within 5 s")
            .expect("connection open");
        serde_json::from_slice(&frame).expect("frame is JSON")
    }

    async fn silent(&mut self) {
        tokio::task::yield_now().await;
        if let Ok(frame) = self.rx.try_recv() {
            panic!("expected no frame, got {}", String::from_utf8_lossy(&frame));
        }
    }

    async fn close(&mut self) {
        let conn = self.conn.take().expect("open");
        self.service.close(conn, Vec::new()).await;
    }

    async fn register(&mut self, name: &str) -> i64 {
        self.send(json!({"msgid":4,"name":name,"password":"pw","ext":1})).await;
        let ack = self.recv().await;
        assert_eq!(ack["errno"], 0, "{ack}");
        ack["id"].as_i64().expect("id")
    }

    async fn login(&mut self, id: i64, ext: bool) -> Value {
        let mut req = json!({"msgid":1,"id":id,"password":"pw"});
        if ext {
            req["ext"] = json!(1);
        }
        self.send(req).await;
        self.recv().await
    }
}

#[tokio::test]
async fn original_register_and_login_shapes() {
    let (node, _) = single();
    let mut c = Client::new(&node);
    c.send(json!({"msgid":4,"name":"alice","password":"pw"})).await;
    let ack = c.recv().await;
    assert_eq!(ack, json!({"errno":0,"id":ack["id"],"msgid":5}));
    let id = ack["id"].as_i64().expect("id");
    c.send(json!({"msgid":4,"name":"alice","password":"pw"})).await;
    assert_eq!(c.recv().await, json!({"errmsg":"注册失败!","errno":1,"msgid":5}));

    c.send(json!({"msgid":1,"id":id,"password":"wrong"})).await;
    assert_eq!(c.recv().await, json!({"errmsg":"id or password is invalid!","errno":1,"msgid":2}));
    c.send(json!({"msgid":1,"id":9999,"password":"pw"})).await;
    assert_eq!(c.recv().await, json!({"errmsg":"id or password is invalid!","errno":1,"msgid":2}));
    let ok = c.login(id, false).await;
    // Empty lists are absent in the original form.
    assert_eq!(ok, json!({"errno":0,"id":id,"msgid":2,"name":"alice"}));

    let mut d = Client::new(&node);
    assert_eq!(
        d.login(id, false).await,
        json!({"errmsg":"this account is using, input another!","errno":2,"msgid":2})
    );
}

#[tokio::test]
async fn chat_stamps_the_real_sender_and_server_time() {
    let (node, _) = single();
    let mut a = Client::new(&node);
    let mut b = Client::new(&node);
    let ida = a.register("a").await;
    let idb = b.register("b").await;
    a.login(ida, false).await;
    b.login(idb, false).await;
    a.send(json!({"msgid":6,"id":idb,"name":"admin","time":"1999-01-01 00:00:00","to":idb,"msg":"hi \"you\" 你好 😀"}))
        .await;
    let got = b.recv().await;
    assert_eq!(got["id"], ida, "sender id comes from the session");
    assert_eq!(got["name"], "a");
    assert_eq!(got["msg"], "hi \"you\" 你好 😀");
    assert_eq!(got["msgid"], 6);
    assert_eq!(got["to"], idb);
    assert_eq!(
        a.recv().await,
        json!({"errno":0,"mid":got["mid"],"msgid":11,"re":6,"seq":1}),
        "the extension acks the chat with its ids"
    );
    let time = got["time"].as_str().expect("time");
    assert_ne!(time, "1999-01-01 00:00:00");
    assert_eq!(time.len(), 19);
    assert!(chrono_like(time), "{time}");
    a.silent().await;
}

fn chrono_like(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 19 && b[4] == b'-' && b[7] == b'-' && b[10] == b' ' && b[13] == b':' && b[16] == b':'
}

#[tokio::test]
async fn offline_messages_arrive_in_order_at_next_login_and_only_once() {
    let (node, store) = single();
    let mut a = Client::new(&node);
    let ida = a.register("a").await;
    let idb = a.register("b").await;
    a.login(ida, true).await;
    for i in 0..5 {
        a.send(json!({"msgid":6,"to":idb,"msg":format!("m{i} ' \\ \n")})).await;
        assert_eq!(a.recv().await["seq"], i + 1);
    }
    let mut b = Client::new(&node);
    let ack = b.login(idb, false).await;
    let offline = ack["offlinemsg"].as_array().expect("offlinemsg");
    assert_eq!(offline.len(), 5);
    for (i, text) in offline.iter().enumerate() {
        let frame: Value =
            serde_json::from_str(text.as_str().expect("string")).expect("stored JSON is valid");
        assert_eq!(frame["msg"], format!("m{i} ' \\ \n"));
        assert_eq!(frame["id"], ida);
    }
    assert!(offline.iter().all(|t| !t.as_str().unwrap_or_default().contains("seq")), "original shape");
    b.close().await;
    let _ = &store;
    let mut b2 = Client::new(&node);
    let again = b2.login(idb, false).await;
    assert!(again.get("offlinemsg").is_none(), "{again}");
}

#[tokio::test]
async fn undelivered_offline_messages_stay_when_the_ack_is_not_written() {
    let (node, store) = single();
    let mut a = Client::new(&node);
    let ida = a.register("a").await;
    let idb = a.register("b").await;
    a.login(ida, true).await;
    a.send(json!({"msgid":6,"to":idb,"msg":"keep me"})).await;
    a.recv().await;
    // A client whose connection dies before the ack is written.
    let (out, rx) = Outbound::channel(8);
    let (mut conn, _) = node.service.open(999_001, "127.0.0.1:1".parse().expect("addr"), out.clone());
    out.close();
    drop(rx);
    node.service
        .frame(&mut conn, Inbound::Frame(br#"{"msgid":1,"id":IDB,"password":"pw"}"#.replace_id(idb)))
        .await;
    node.service.close(conn, Vec::new()).await;
    let _ = &store;
    let mut b = Client::new(&node);
    let ack = b.login(idb, false).await;
    let offline = ack["offlinemsg"].as_array().cloned().unwrap_or_default();
    assert_eq!(offline.len(), 1, "message kept for the next login: {ack}");
}

trait ReplaceId {
    fn replace_id(&self, id: i64) -> bytes::BytesMut;
}

impl ReplaceId for [u8] {
    fn replace_id(&self, id: i64) -> bytes::BytesMut {
        String::from_utf8_lossy(self).replace("IDB", &id.to_string()).as_bytes().into()
    }
}

#[tokio::test]
async fn extension_answers_every_request_and_errors() {
    let (node, _) = single();
    let mut a = Client::new(&node);
    let ida = a.register("a").await;
    // Not logged in.
    a.send(json!({"msgid":6,"to":1,"msg":"x"})).await;
    assert_eq!(a.recv().await, json!({"errmsg":"not logged in","errno":3,"msgid":11,"re":6}));
    let login = a.login(ida, true).await;
    let token = login["resume"].as_str().expect("a resume token").to_owned();
    assert_eq!(token.len(), 64);
    assert_eq!(
        login,
        json!({"errno":0,"friends":[],"groups":[],"id":ida,"msgid":2,"name":"a","offlinemsg":[],"read":[],"receipts":[],"resume":token,"unread":[]})
    );
    a.send(json!({"msgid":6,"to":424242,"msg":"x"})).await;
    assert_eq!(a.recv().await["errno"], 5, "unknown user");
    a.send(json!({"msgid":7,"friendid":ida})).await;
    assert_eq!(a.recv().await["errno"], 9, "self friend");
    a.send(json!({"msgid":7,"friendid":424242})).await;
    assert_eq!(a.recv().await["errno"], 5, "unknown friend");
    a.send(json!({"msgid":8,"groupname":"g","groupdesc":"d"})).await;
    let created = a.recv().await;
    assert_eq!(created["errno"], 0);
    assert!(created["groupid"].as_i64().is_some(), "{created}");
    a.send(json!({"msgid":8,"groupname":"g","groupdesc":"d"})).await;
    assert_eq!(a.recv().await["errno"], 8, "duplicate group name");
    a.send(json!({"msgid":9,"groupid":424242})).await;
    assert_eq!(a.recv().await["errno"], 6, "unknown group");
    a.send(json!({"msgid":10,"groupid":424242,"msg":"x"})).await;
    assert_eq!(a.recv().await["errno"], 6);
    a.send(json!({"msgid":6,"to":ida,"msg":""})).await;
    assert_eq!(a.recv().await["errno"], 9, "empty message");
    a.send_raw(b"not json").await;
    assert_eq!(a.recv().await["errno"], 4);
    // (42 was such a number until issue 21 made it EDIT_GROUP.)
    a.send(json!({"msgid":99})).await;
    assert_eq!(a.recv().await, json!({"errmsg":"msgid 99 is not a request","errno":4,"msgid":11,"re":99}));
    a.send(json!({"msgid":1,"id":ida,"password":"pw"})).await;
    assert_eq!(a.recv().await["errno"], 11, "already logged in on this connection");
    a.send(json!({"msgid":15})).await;
    let lists = a.recv().await;
    assert_eq!(lists["msgid"], 16);
    assert_eq!(lists["groups"][0]["groupname"], "g");
    assert_eq!(lists["groups"][0]["users"][0]["role"], "creator");
}

#[tokio::test]
async fn original_clients_get_no_extra_frames() {
    let (node, _) = single();
    let mut a = Client::new(&node);
    let ida = a.register("a").await;
    let mut o = Client::new(&node);
    o.send(json!({"msgid":6,"to":ida,"msg":"x"})).await;
    o.silent().await;
    o.login(ida, false).await;
    for req in [
        json!({"msgid":7,"friendid":424242,"id":ida}),
        json!({"msgid":8,"groupname":"g","groupdesc":"d","id":ida}),
        json!({"msgid":9,"groupid":424242,"id":ida}),
        json!({"msgid":6,"to":424242,"msg":"x"}),
        json!({"msgid":3,"id":ida}),
    ] {
        o.send(req).await;
        o.silent().await;
    }
}

#[tokio::test]
async fn loginout_then_login_again_on_the_same_connection() {
    let (node, _) = single();
    let mut a = Client::new(&node);
    let ida = a.register("a").await;
    let idb = a.register("b").await;
    assert_eq!(a.login(ida, false).await["errno"], 0);
    a.send(json!({"msgid":3,"id":idb})).await;
    assert_eq!(a.login(idb, false).await["errno"], 0, "logout ends this connection's own login");
    a.send(json!({"msgid":3})).await;
    assert_eq!(a.login(ida, false).await["errno"], 0);
}

#[tokio::test]
async fn nobody_can_log_out_someone_else() {
    let (node, _) = single();
    let mut a = Client::new(&node);
    let mut b = Client::new(&node);
    let ida = a.register("a").await;
    let idb = a.register("b").await;
    a.login(ida, false).await;
    b.login(idb, false).await;
    let mut evil = Client::new(&node);
    evil.send(json!({"msgid":3,"id":idb})).await;
    a.send(json!({"msgid":6,"to":idb,"msg":"still there?"})).await;
    assert_eq!(b.recv().await["msg"], "still there?");
    let mut again = Client::new(&node);
    assert_eq!(again.login(idb, false).await["errno"], 2);
}

#[tokio::test]
async fn concurrent_logins_for_one_user_exactly_one_wins() {
    let (node, _) = single();
    let mut a = Client::new(&node);
    let ida = a.register("a").await;
    for _ in 0..20 {
        let mut c1 = Client::new(&node);
        let mut c2 = Client::new(&node);
        let (r1, r2) = tokio::join!(c1.login(ida, false), c2.login(ida, false));
        let wins = [&r1, &r2].iter().filter(|r| r["errno"] == 0).count();
        assert_eq!(wins, 1, "{r1} {r2}");
        c1.close().await;
        c2.close().await;
    }
}

#[tokio::test]
async fn group_chat_reaches_members_live_and_offline() {
    let (node, _) = single();
    let mut a = Client::new(&node);
    let mut b = Client::new(&node);
    let mut outsider = Client::new(&node);
    let ida = a.register("a").await;
    let idb = b.register("b").await;
    let idc = a.register("c").await;
    let idx = outsider.register("x").await;
    a.login(ida, true).await;
    b.login(idb, true).await;
    outsider.login(idx, true).await;
    a.send(json!({"msgid":8,"groupname":"team","groupdesc":"d"})).await;
    let gid = a.recv().await["groupid"].as_i64().expect("groupid");
    b.send(json!({"msgid":9,"groupid":gid})).await;
    assert_eq!(b.recv().await["errno"], 0);
    let mut c = Client::new(&node);
    c.login(idc, true).await;
    c.send(json!({"msgid":9,"groupid":gid})).await;
    c.recv().await;
    c.close().await;

    outsider.send(json!({"msgid":10,"groupid":gid,"msg":"spam"})).await;
    assert_eq!(outsider.recv().await["errno"], 7, "only members may post");
    a.send(json!({"msgid":10,"groupid":gid,"msg":"hello team","id":idx})).await;
    assert_eq!(a.recv().await["errno"], 0);
    let got = b.recv().await;
    assert_eq!(
        got,
        json!({"groupid":gid,"id":ida,"mid":got["mid"],"msg":"hello team","msgid":10,"name":"a","seq":1,"time":got["time"]})
    );
    a.silent().await;
    outsider.silent().await;
    let mut c2 = Client::new(&node);
    let ack = c2.login(idc, true).await;
    assert_eq!(ack["groups"][0]["users"].as_array().map(Vec::len), Some(3));
    assert_eq!(ack["unread"], json!([{"count":1,"groupid":gid}]));
    let replayed = c2.recv().await;
    assert_eq!(replayed["msg"], "hello team", "the replay follows the ack");
    assert_eq!(replayed["mid"], got["mid"]);
}

#[tokio::test]
async fn a_disconnect_logs_out_and_later_messages_are_stored() {
    let (node, _) = single();
    let mut a = Client::new(&node);
    let mut b = Client::new(&node);
    let ida = a.register("a").await;
    let idb = b.register("b").await;
    a.login(ida, true).await;
    b.login(idb, true).await;
    b.close().await;
    a.send(json!({"msgid":6,"to":idb,"msg":"after you left"})).await;
    assert_eq!(a.recv().await["errno"], 0);
    let mut b2 = Client::new(&node);
    let ack = b2.login(idb, true).await;
    assert_eq!(ack["errno"], 0, "can log in again after a disconnect");
    assert_eq!(b2.recv().await["msg"], "after you left");
}

#[tokio::test]
async fn cross_node_routing_and_a_crashed_node() {
    let hub = LocalHub::new();
    let store = Arc::new(MemoryStore::new());
    let n1 = node(&hub, &store);
    let n2 = node(&hub, &store);
    let mut a = Client::new(&n1);
    let mut b = Client::new(&n2);
    let ida = a.register("a").await;
    let idb = b.register("b").await;
    a.login(ida, true).await;
    b.login(idb, true).await;
    a.send(json!({"msgid":6,"to":idb,"msg":"across"})).await;
    assert_eq!(a.recv().await["errno"], 0);
    assert_eq!(b.recv().await["msg"], "across");
    b.send(json!({"msgid":6,"to":ida,"msg":"back"})).await;
    assert_eq!(b.recv().await["errno"], 0);
    assert_eq!(a.recv().await["msg"], "back");
    // An original client cannot log in on the other node while the user has a session.
    let mut dup = Client::new(&n1);
    assert_eq!(dup.login(idb, false).await["errno"], 2);

    // Node 2 dies without logging anyone out.
    n2.broker.crash();
    a.send(json!({"msgid":6,"to":idb,"msg":"while you were gone"})).await;
    assert_eq!(a.recv().await["errno"], 0);
    let mut b_again = Client::new(&n1);
    let ack = b_again.login(idb, true).await;
    assert_eq!(ack["errno"], 0, "presence of a dead node does not block: {ack}");
    // b never acknowledged "across": it comes again first (the client drops it by its mid).
    assert_eq!(b_again.recv().await["msg"], "across");
    let replayed = b_again.recv().await;
    assert_eq!(replayed["msg"], "while you were gone", "{replayed}");
    assert_eq!(replayed["seq"], 3, "after \"across\" (1) and \"back\" (2)");
}

#[tokio::test]
async fn a_join_on_another_node_reaches_the_group_member_cache() {
    let hub = LocalHub::new();
    let store = Arc::new(MemoryStore::new());
    let n1 = node(&hub, &store);
    let n2 = node(&hub, &store);
    let mut a = Client::new(&n1);
    let mut b = Client::new(&n2);
    let ida = a.register("a").await;
    let idb = b.register("b").await;
    a.login(ida, true).await;
    b.login(idb, true).await;
    a.send(json!({"msgid":8,"groupname":"g","groupdesc":""})).await;
    let gid = a.recv().await["groupid"].as_i64().expect("groupid");
    // A post with only the creator in the group: node 1 now caches the members.
    a.send(json!({"msgid":10,"groupid":gid,"msg":"alone"})).await;
    assert_eq!(a.recv().await["errno"], 0);
    b.send(json!({"msgid":9,"groupid":gid})).await;
    assert_eq!(b.recv().await["errno"], 0);
    a.send(json!({"msgid":10,"groupid":gid,"msg":"welcome"})).await;
    assert_eq!(a.recv().await["errno"], 0);
    assert_eq!(b.recv().await["msg"], "welcome", "node 1 learned of the join on node 2");
}

/// Users a and b, registered and logged in with the extension on `node`; b's resume token.
async fn two_logged_in(node: &Node) -> (Client, i64, Client, i64, String) {
    let mut a = Client::new(node);
    let mut b = Client::new(node);
    let ida = a.register("a").await;
    let idb = b.register("b").await;
    ext_login(&mut a, ida).await;
    let token = ext_login(&mut b, idb).await;
    (a, ida, b, idb, token)
}

/// Logs in with the extension and returns the resume token.
async fn ext_login(c: &mut Client, id: i64) -> String {
    let ack = c.login(id, true).await;
    assert_eq!(ack["errno"], 0, "{ack}");
    ack["resume"].as_str().expect("resume token").to_owned()
}

#[tokio::test]
async fn a_resent_cid_is_stored_and_delivered_once_and_answered_with_the_first_ack() {
    let (node, _) = single();
    let (mut a, _, mut b, idb, _) = two_logged_in(&node).await;
    a.send(json!({"msgid":6,"to":idb,"msg":"once","cid":"c-1"})).await;
    let first = a.recv().await;
    assert_eq!(first["cid"], "c-1");
    assert_eq!(b.recv().await["msg"], "once");
    a.send(json!({"msgid":6,"to":idb,"msg":"once (resent)","cid":"c-1"})).await;
    assert_eq!(a.recv().await, first, "the first ack again");
    b.silent().await;
    a.send(json!({"msgid":6,"to":idb,"msg":"next","cid":"c-2"})).await;
    assert_eq!(a.recv().await["seq"], 2, "the duplicate took no seq");
    assert_eq!(b.recv().await["seq"], 2);
}

#[tokio::test]
async fn resume_replays_after_the_acknowledged_cursor_then_goes_live() {
    let (node, _) = single();
    let (mut a, ida, mut b, idb, token) = two_logged_in(&node).await;
    for i in 1..=5 {
        a.send(json!({"msgid":6,"to":idb,"msg":format!("m{i}")})).await;
        assert_eq!(a.recv().await["errno"], 0);
        assert_eq!(b.recv().await["seq"], i);
    }
    b.send(json!({"msgid":18,"acks":[{"id":ida,"seq":3}]})).await;
    b.silent().await;
    assert_eq!(
        a.recv().await,
        json!({"id":idb,"msgid":55,"reader":idb,"seq":3,"what":"recv"}),
        "the sender learns what was received (issue 20)"
    );
    b.close().await;
    a.send(json!({"msgid":6,"to":idb,"msg":"m6"})).await;
    assert_eq!(a.recv().await["re"], 6);

    let mut b2 = Client::new(&node);
    b2.send(json!({"msgid":17,"token":"not a token"})).await;
    assert_eq!(b2.recv().await["errno"], 17, "an unknown token is refused clearly");
    // It has 4 (acked 3 on the old connection, got 4 and 5 but never acked 5).
    b2.send(json!({"msgid":17,"token":token,"acks":[{"id":ida,"seq":4}]})).await;
    let ack = b2.recv().await;
    assert_eq!(ack["errno"], 0, "{ack}");
    assert_eq!(ack["resume"], token.as_str());
    assert_eq!(ack["unread"], json!([{"count":2,"id":ida}]));
    assert_eq!(b2.recv().await["msg"], "m5");
    assert_eq!(b2.recv().await["msg"], "m6");
    a.send(json!({"msgid":6,"to":idb,"msg":"m7"})).await;
    a.recv().await;
    assert_eq!(b2.recv().await["seq"], 7, "live after the replay, no gap");
    b2.silent().await;

    // LOGINOUT ends the token.
    b2.send(json!({"msgid":3})).await;
    assert_eq!(b2.recv().await["errno"], 0);
    b2.send(json!({"msgid":17,"token":token})).await;
    assert_eq!(b2.recv().await["errno"], 17);
}

#[tokio::test]
async fn history_pages_a_conversation_and_members_only_read_groups() {
    let (node, _) = single();
    let (mut a, ida, mut b, idb, _) = two_logged_in(&node).await;
    for i in 1..=7 {
        a.send(json!({"msgid":6,"to":idb,"msg":format!("h{i}")})).await;
        a.recv().await;
        b.recv().await;
    }
    b.send(json!({"msgid":19,"id":ida,"limit":3})).await;
    let page = b.recv().await;
    let texts =
        |p: &Value| p["messages"].as_array().map(|m| m.iter().map(|x| x["msg"].clone()).collect::<Vec<_>>());
    assert_eq!(texts(&page), Some(vec![json!("h5"), json!("h6"), json!("h7")]));
    assert_eq!(page["more"], true);
    let oldest = page["messages"][0]["mid"].clone();
    b.send(json!({"msgid":19,"id":ida,"limit":3,"before":oldest})).await;
    assert_eq!(texts(&b.recv().await), Some(vec![json!("h2"), json!("h3"), json!("h4")]));
    a.send(json!({"msgid":19,"id":idb,"after":oldest,"limit":100})).await;
    let forward = a.recv().await;
    assert_eq!(texts(&forward), Some(vec![json!("h6"), json!("h7")]), "the sender reads its own messages");
    assert_eq!(forward["more"], false);

    a.send(json!({"msgid":8,"groupname":"g","groupdesc":""})).await;
    let gid = a.recv().await["groupid"].as_i64().expect("groupid");
    a.send(json!({"msgid":10,"groupid":gid,"msg":"before b joined"})).await;
    a.recv().await;
    b.send(json!({"msgid":19,"groupid":gid})).await;
    assert_eq!(b.recv().await["errno"], 7, "not a member");
    b.send(json!({"msgid":9,"groupid":gid})).await;
    assert_eq!(b.recv().await["errno"], 0);
    b.silent().await;
    b.send(json!({"msgid":19,"groupid":gid})).await;
    assert_eq!(texts(&b.recv().await), Some(vec![json!("before b joined")]));
    b.send(json!({"msgid":15})).await;
    assert_eq!(
        b.recv().await["unread"],
        json!([{"count":7,"id":ida}]),
        "nothing acknowledged yet; the group's old message is not unread"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_loses_nothing_it_did_not_acknowledge() {
    let (node, _) = single();
    let mut a = Client::new(&node);
    let ida = a.register("a").await;
    let idb = a.register("b").await;
    ext_login(&mut a, ida).await;
    // b's connection takes frames but nothing reads them (a phone that lost its network).
    let (out, rx) = Outbound::channel(8);
    let (mut conn, _) = node.service.open(999_002, "127.0.0.1:1".parse().expect("addr"), out);
    node.service
        .frame(&mut conn, Inbound::Frame(br#"{"msgid":1,"id":IDB,"password":"pw","ext":1}"#.replace_id(idb)))
        .await;
    for i in 1..=20 {
        a.send(json!({"msgid":6,"to":idb,"msg":format!("n{i}")})).await;
        assert_eq!(a.recv().await["errno"], 0, "the sender is never slowed down");
    }
    drop(rx);
    node.service.close(conn, Vec::new()).await;
    let mut b = Client::new(&node);
    ext_login(&mut b, idb).await;
    for i in 1..=20 {
        assert_eq!(b.recv().await["msg"], format!("n{i}"), "every message, in order");
    }
    b.silent().await;
}

/// The broker lost this node's claim on a user to another node (a Redis master died before
/// replicating it): the session here ends with the takeover NOTICE, the other one wins.
#[tokio::test]
async fn a_claim_lost_in_the_broker_ends_the_session_here() {
    let (node, _) = single();
    let (_a, _, mut b, idb, _) = two_logged_in(&node).await;
    chat_ports::Sink::claim_lost(node.delivery.as_ref(), chat_proto::UserId(idb as i32));
    let mut last = None;
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(5), b.rx.recv()).await {
        last = Some(frame);
    }
    let notice: Value = serde_json::from_slice(&last.expect("a frame before the close")).expect("json");
    assert_eq!(notice["errno"], 15, "{notice}");
    assert!(b.rx.recv().await.is_none(), "the connection was closed");
    b.close().await;
    // The user is free here again: a new login on this node works.
    let mut b2 = Client::new(&node);
    ext_login(&mut b2, idb).await;
}

#[tokio::test]
async fn a_resume_takes_over_a_session_whose_connection_died_unnoticed() {
    let (node, _) = single();
    let (mut a, _, mut b, idb, token) = two_logged_in(&node).await;
    // b's old connection: the node would notice its death only at the next ping.
    // Here its close runs once the node closes it, as chat-net's would.
    let old = tokio::spawn(async move {
        let mut last = None;
        while let Some(frame) = b.rx.recv().await {
            last = Some(frame);
        }
        b.close().await;
        last
    });
    let mut b2 = Client::new(&node);
    b2.send(json!({"msgid":17,"token":token})).await;
    let ack = b2.recv().await;
    assert_eq!(ack["errno"], 0, "the token takes the session over: {ack}");
    let last = tokio::time::timeout(Duration::from_secs(5), old)
        .await
        .expect("old connection closed")
        .expect("task");
    let notice: Value = serde_json::from_slice(&last.expect("a frame before the close")).expect("json");
    assert_eq!(
        notice,
        json!({"errmsg":"this session was resumed on another connection","errno":15,"msgid":14})
    );
    a.send(json!({"msgid":6,"to":idb,"msg":"to the new connection"})).await;
    a.recv().await;
    assert_eq!(b2.recv().await["msg"], "to the new connection");
    // A password login never takes over; an original client gets errno 2 while any session lives.
    let mut b3 = Client::new(&node);
    assert_eq!(b3.login(idb, false).await["errno"], 2);
}

/// Reads frames until a chat (msgid 6) comes; the frames before it are returned too.
async fn next_chat(c: &mut Client) -> Value {
    loop {
        let frame = c.recv().await;
        if frame["msgid"] == 6 {
            return frame;
        }
    }
}

/// Several sessions per user (issue 20) on two in-memory nodes: every session gets each chat
/// once, in order; carbons reach the user's other sessions and not the sending one; the
/// original client keeps errno 2; the limit; LOGINOUT of one; LOGOUT_ALL of all.
#[tokio::test]
async fn one_user_several_sessions_on_two_nodes() {
    let hub = LocalHub::new();
    let db = Arc::new(MemoryStore::new());
    let (n1, n2) = (node(&hub, &db), node(&hub, &db));
    let mut reg = Client::new(&n1);
    let user = reg.register("u").await;
    let friend = reg.register("f").await;
    let mut s1 = Client::new(&n1);
    assert_eq!(s1.login(user, true).await["errno"], 0);
    let mut s2 = Client::new(&n2);
    assert_eq!(s2.login(user, true).await["errno"], 0);
    let mut s3 = Client::new(&n1);
    assert_eq!(s3.login(user, true).await["errno"], 0);
    let mut f = Client::new(&n2);
    assert_eq!(f.login(friend, true).await["errno"], 0);

    for i in 1..=20 {
        f.send(json!({"msgid":6,"to":user,"msg":format!("m{i}"),"cid":format!("c{i}")})).await;
        assert_eq!(f.recv().await["errno"], 0);
    }
    for s in [&mut s1, &mut s2, &mut s3] {
        for i in 1..=20 {
            let got = next_chat(s).await;
            assert_eq!((got["msg"].as_str(), got["seq"].as_i64()), (Some(format!("m{i}").as_str()), Some(i)));
        }
        s.silent().await;
    }

    // A carbon: s2 writes; s1 and s3 show it with the user's own id; s2 gets only its ACK.
    s2.send(json!({"msgid":6,"to":friend,"msg":"mine","cid":"o1"})).await;
    assert_eq!(s2.recv().await["errno"], 0);
    for s in [&mut s1, &mut s3] {
        let got = next_chat(s).await;
        assert_eq!(
            (got["id"].as_i64(), got["to"].as_i64(), got["msg"].as_str()),
            (Some(user), Some(friend), Some("mine"))
        );
    }
    assert_eq!(next_chat(&mut f).await["msg"], "mine");
    tokio::time::sleep(Duration::from_millis(50)).await;
    s2.silent().await;

    // A group chat from s1: its carbon reaches s2 (other node) and s3 (same node), as a group push.
    s1.send(json!({"msgid":8,"groupname":"devices","groupdesc":"d"})).await;
    let created = s1.recv().await;
    let gid = created["groupid"].as_i64().expect("groupid");
    f.send(json!({"msgid":9,"groupid":gid})).await;
    assert_eq!(f.recv().await["errno"], 0);
    s1.send(json!({"msgid":10,"groupid":gid,"msg":"to all","cid":"g1"})).await;
    assert_eq!(s1.recv().await["errno"], 0);
    for s in [&mut s2, &mut s3, &mut f] {
        let got = loop {
            let frame = s.recv().await;
            if frame["msgid"] == 10 {
                break frame;
            }
        };
        assert_eq!(
            (got["id"].as_i64(), got["groupid"].as_i64(), got["msg"].as_str()),
            (Some(user), Some(gid), Some("to all"))
        );
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    s1.silent().await;

    // The original client: errno 2 while any session lives.
    let mut original = Client::new(&n2);
    assert_eq!(original.login(user, false).await["errno"], 2);

    // LOGINOUT of s3 leaves s1 and s2; LOGOUT_ALL from s1 closes s2 (on the other node).
    s3.send(json!({"msgid":3})).await;
    assert_eq!(s3.recv().await, json!({"errno":0,"msgid":11,"re":3}));
    s1.send(json!({"msgid":52})).await;
    assert_eq!(s1.recv().await, json!({"errno":0,"msgid":11,"re":52}));
    assert_eq!(
        s2.recv().await,
        json!({"errmsg":"logged out everywhere: log in again","errno":15,"msgid":14})
    );
    s2.close().await;
    assert_eq!(original.login(user, false).await["errno"], 0, "no session left anywhere");
}

#[tokio::test]
async fn the_session_limit_counts_every_node() {
    let hub = LocalHub::new();
    let db = Arc::new(MemoryStore::new());
    let limited = || ServiceConfig { max_sessions_per_user: 2, ..config() };
    let mk = |hub: &Arc<LocalHub>| {
        let store: Arc<dyn Store> = db.clone();
        let log: Arc<dyn Log> = db.clone();
        let delivery = Delivery::new(Sessions::new(64), store.clone(), log.clone());
        let broker = hub.node(delivery.clone());
        let service = Arc::new(
            Service::new(store, log, db.clone(), broker.clone(), delivery.clone(), limited())
                .expect("service"),
        );
        Node { service, broker, delivery }
    };
    let (n1, n2) = (mk(&hub), mk(&hub));
    let mut reg = Client::new(&n1);
    let user = reg.register("u").await;
    let mut a = Client::new(&n1);
    assert_eq!(a.login(user, true).await["errno"], 0);
    let mut b = Client::new(&n2);
    assert_eq!(b.login(user, true).await["errno"], 0);
    for n in [&n1, &n2] {
        let mut c = Client::new(n);
        let ack = c.login(user, true).await;
        assert_eq!(
            ack,
            json!({"errmsg":"this account has 2 sessions already, the most it may have; log out one of them first","errno":30,"msgid":2})
        );
    }
    b.close().await;
    let mut c = Client::new(&n1);
    assert_eq!(c.login(user, true).await["errno"], 0, "room again after a session ended");
}

// ---------------------------------------------------------------------------------------
// Issue 21 (users in control), over the in-memory adapters: what the black-box tests in
// tests/tests/control_*.rs cannot reach (a name held 30 days) and the rules in one place.
// ---------------------------------------------------------------------------------------

/// Reads frames until one matches, skipping EVENTs and others; panics after 5 s.
async fn until(c: &mut Client, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let f = c.recv().await;
        if pred(&f) {
            return f;
        }
    }
}

#[tokio::test]
async fn a_blocked_chat_is_refused_before_it_is_stored() {
    let (node, store) = single();
    let (mut a, ida, mut b, idb, _) = two_logged_in(&node).await;
    a.send(json!({"msgid":30,"id":idb})).await;
    assert_eq!(a.recv().await["errno"], 0);
    b.send(json!({"msgid":6,"to":ida,"msg":"x","cid":"c1"})).await;
    let ack = b.recv().await;
    assert_eq!((ack["errno"].as_i64(), ack["cid"].as_str()), (Some(20), Some("c1")), "{ack}");
    a.silent().await;
    let log: Arc<dyn Log> = store.clone();
    let stored = log
        .history(
            chat_proto::ConvId::direct(chat_proto::UserId(ida as i32), chat_proto::UserId(idb as i32)),
            chat_proto::HistoryFrom::Latest,
            10,
        )
        .await;
    assert_eq!(stored.map(|m| m.len()), Ok(0), "nothing in the log");
    a.send(json!({"msgid":6,"to":idb,"msg":"x"})).await;
    assert_eq!(a.recv().await["errno"], 21, "the blocker cannot write either");
}

#[tokio::test]
async fn a_deleted_accounts_name_is_held_then_freed() {
    use chat_ports::Control;
    let (node, store) = single();
    let mut c = Client::new(&node);
    let id = c.register("leaver").await;
    assert_eq!(c.login(id, true).await["errno"], 0);
    c.send(json!({"msgid":46,"password":"pw"})).await;
    assert_eq!(until(&mut c, |f| f["msgid"] == 11).await["errno"], 0);
    let mut d = Client::new(&node);
    d.send(json!({"msgid":4,"name":"leaver","password":"pw","ext":1})).await;
    assert_eq!(d.recv().await["errno"], 8, "held");
    // As if the deletion were 31 days old.
    let control: Arc<dyn Control> = store.clone();
    control.delete_account(chat_proto::UserId(id as i32), "x", "deleted user", 0).await.expect("store");
    let again = d.register("leaver").await;
    assert_ne!(again, id, "a new account, a new id");
    d.send(json!({"msgid":1,"id":id,"password":"pw","ext":1})).await;
    assert_eq!(d.recv().await["errno"], 1, "the deleted account stays unusable");
}

#[tokio::test]
async fn the_last_owner_leaving_hands_the_group_on() {
    let (node, _) = single();
    let (mut a, _ida, mut b, idb, _) = two_logged_in(&node).await;
    a.send(json!({"msgid":8,"groupname":"g21","groupdesc":""})).await;
    let gid = a.recv().await["groupid"].as_i64().expect("gid");
    b.send(json!({"msgid":9,"groupid":gid})).await;
    assert_eq!(b.recv().await["errno"], 0);
    b.send(json!({"msgid":43,"groupid":gid})).await;
    assert_eq!(b.recv().await["errno"], 23, "a member deletes nothing");
    a.send(json!({"msgid":40,"groupid":gid})).await;
    assert_eq!(until(&mut a, |f| f["msgid"] == 11).await["errno"], 0);
    let changed = until(&mut b, |f| f["event"] == "owner-changed").await;
    assert_eq!(changed["id"], idb);
    b.send(json!({"msgid":43,"groupid":gid})).await;
    assert_eq!(until(&mut b, |f| f["msgid"] == 11).await["errno"], 0, "the new owner may");
}

/// Issue 20 on the in-memory adapters, two nodes on one hub: a mark reaches the reader's
/// other session (not the marking one) and the friend, a RECEIVED is a "recv" receipt, the
/// mark shows at the next login with the unread counted from it, and a typing crosses once
/// per burst.
#[tokio::test]
async fn read_marks_receipts_and_typing_on_two_nodes() {
    let hub = LocalHub::new();
    let db = Arc::new(MemoryStore::new());
    let (n1, n2) = (node(&hub, &db), node(&hub, &db));
    let mut reg = Client::new(&n1);
    let user = reg.register("u").await;
    let friend = reg.register("f").await;
    let mut a = Client::new(&n1);
    assert_eq!(a.login(user, true).await["errno"], 0);
    let mut b = Client::new(&n2);
    assert_eq!(b.login(user, true).await["errno"], 0);
    let mut f = Client::new(&n2);
    assert_eq!(f.login(friend, true).await["errno"], 0);
    for i in 1..=3 {
        f.send(json!({"msgid":6,"to":user,"msg":format!("m{i}")})).await;
        assert_eq!(f.recv().await["errno"], 0);
    }
    for s in [&mut a, &mut b] {
        until(s, |m| m["seq"] == 3).await;
    }
    a.send(json!({"msgid":54,"id":friend,"seq":2})).await;
    assert_eq!(a.recv().await, json!({"errno":0,"msgid":11,"re":54}));
    let read = json!({"id":friend,"msgid":55,"reader":user,"seq":2,"what":"read"});
    assert_eq!(until(&mut b, |m| m["msgid"] == 55).await, read, "the other session");
    let told = until(&mut f, |m| m["msgid"] == 55).await;
    assert_eq!(told, json!({"id":user,"msgid":55,"reader":user,"seq":2,"what":"read"}), "the friend");
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.silent().await;
    a.send(json!({"msgid":18,"acks":[{"id":friend,"seq":3}]})).await;
    let recv = until(&mut f, |m| m["msgid"] == 55).await;
    assert_eq!(recv, json!({"id":user,"msgid":55,"reader":user,"seq":3,"what":"recv"}));

    let mut c = Client::new(&n1);
    let ack = c.login(user, true).await;
    assert_eq!(ack["read"], json!([{"id":friend,"seq":2}]), "{ack}");
    assert_eq!(ack["unread"], json!([{"count":1,"id":friend}]), "counted from the read mark: {ack}");

    for _ in 0..3 {
        f.send(json!({"msgid":58,"id":user})).await;
    }
    let typing = json!({"id":friend,"msgid":58,"state":"typing"});
    for s in [&mut a, &mut b, &mut c] {
        assert_eq!(until(s, |m| m["msgid"] == 58).await, typing);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for s in [&mut a, &mut b, &mut c] {
        s.silent().await;
    }
    f.silent().await;
}
