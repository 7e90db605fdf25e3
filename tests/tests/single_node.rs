//! Black-box tests of one `chat-server` node over real TCP, on SQLite and on
//! MySQL: every msgid, and each failure of the original that applies to one
//! node (ORIGINAL.md W1–W6, W8, W9, W12, W13).

use std::time::Duration;

use chat_tests::{ServerProcess, WireClient, mysql_url, tempdir::TempDir, unique};
use serde_json::{Value, json};

fn sqlite() -> ServerProcess {
    ServerProcess::start_sqlite(&[])
}

fn mysql() -> ServerProcess {
    let url = mysql_url();
    ServerProcess::start_with(TempDir::new("chat-mysql"), &["--database-url", &url], &[])
}

async fn pair(server: &ServerProcess, ext: bool) -> (WireClient, i64, WireClient, i64) {
    let mut a = WireClient::connect(server.addr).await;
    let mut b = WireClient::connect(server.addr).await;
    let ida = a.register(&unique("a")).await;
    let idb = b.register(&unique("b")).await;
    assert_eq!(a.login(ida, ext).await["errno"], 0);
    assert_eq!(b.login(idb, ext).await["errno"], 0);
    (a, ida, b, idb)
}

fn parse_str(v: &Value) -> Value {
    serde_json::from_str(v.as_str().expect("a JSON string")).expect("valid JSON inside")
}

/// Every msgid end to end, as the original client uses them.
async fn full_flow(server: &ServerProcess) {
    let mut a = WireClient::connect(server.addr).await;
    let name_a = unique("张三");
    let name_b = unique("b");
    // The original client's exact REG request, NUL-terminated, no ext.
    a.send(&json!({"msgid":4,"name":name_a,"password":"pw"})).await;
    let reg = a.recv().await;
    assert_eq!(reg["errno"], 0, "{reg}");
    assert_eq!(reg.as_object().map(|o| o.len()), Some(3), "{reg}");
    let ida = reg["id"].as_i64().expect("id");
    // (registered on another connection: `register` opts in to the extension)
    let idb = WireClient::connect(server.addr).await.register(&name_b).await;
    let login = a.login(ida, false).await;
    assert_eq!(login, json!({"errno":0,"id":ida,"msgid":2,"name":name_a}));
    a.send(&json!({"friendid":idb,"id":ida,"msgid":7})).await;
    let group = unique("group");
    a.send(&json!({"groupdesc":"desc","groupname":group,"id":ida,"msgid":8})).await;
    a.expect_silence(Duration::from_millis(300)).await;
    // The original client logs out and in again to see its lists.
    a.send(&json!({"id":ida,"msgid":3})).await;
    let again = a.login(ida, false).await;
    let friend = parse_str(&again["friends"][0]);
    assert_eq!(friend, json!({"id":idb,"name":name_b,"state":"offline"}));
    let g = parse_str(&again["groups"][0]);
    assert_eq!(g["groupname"], group);
    assert_eq!(g["groupdesc"], "desc");
    let gid = g["id"].as_i64().expect("gid");
    assert_eq!(parse_str(&g["users"][0]), json!({"id":ida,"name":name_a,"role":"creator","state":"online"}));

    let mut b = WireClient::connect(server.addr).await;
    assert_eq!(b.login(idb, false).await["errno"], 0);
    b.send(&json!({"groupid":gid,"id":idb,"msgid":9})).await;
    b.expect_silence(Duration::from_millis(200)).await;
    a.send(&json!({"id":ida,"msg":"hello b","msgid":6,"name":name_a,"time":"2024-01-01 00:00:00","to":idb}))
        .await;
    let chat = b.recv().await;
    assert_eq!(chat["msg"], "hello b");
    assert_eq!(chat["id"], ida);
    assert_eq!(chat["name"], name_a);
    b.send(&json!({"groupid":gid,"id":idb,"msg":"hello group","msgid":10,"name":name_b,"time":"t"})).await;
    let gchat = a.recv().await;
    assert_eq!(gchat["msgid"], 10);
    assert_eq!(gchat["groupid"], gid);
    assert_eq!(gchat["name"], name_b);
    assert_eq!(gchat["msg"], "hello group");
}

#[tokio::test]
async fn every_msgid_on_sqlite() {
    full_flow(&sqlite()).await;
}

#[tokio::test]
async fn every_msgid_on_mysql() {
    full_flow(&mysql()).await;
}

/// W1: frames coalesced in one write, split across writes, and rapid bursts.
#[tokio::test]
async fn w1_framing_coalesced_split_and_bursts() {
    let server = sqlite();
    let (mut a, _ida, mut b, idb) = pair(&server, false).await;
    let one = |i: usize| {
        let mut v = serde_json::to_vec(&json!({"msgid":6,"to":idb,"msg":format!("m{i}")})).expect("json");
        v.push(0);
        v
    };
    let mut two = one(0);
    two.extend(one(1));
    a.send_raw(&two).await;
    let third = one(2);
    a.send_raw(&third[..10]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.send_raw(&third[10..]).await;
    for i in 3..53 {
        a.send_raw(&one(i)).await;
    }
    a.send_raw(format!("{{\"msgid\":6,\"to\":{idb},\"msg\":\"m53\"}}\n").as_bytes()).await;
    a.send_raw(format!("{{\"msgid\":6,\"to\":{idb},\"msg\":\"m54\"}}\r\n").as_bytes()).await;
    for i in 0..55 {
        assert_eq!(b.recv().await["msg"], format!("m{i}"));
    }
}

/// W2: bad input of every kind is answered or ignored, costs at most that
/// connection, and every other session carries on.
#[tokio::test]
async fn w2_bad_input_never_hurts_the_node() {
    let server = sqlite();
    let (mut a, ida, mut b, idb) = pair(&server, true).await;
    let bad: Vec<&[u8]> = vec![
        b"{not json\0",
        b"\0",
        b"hello there\n",
        b"[1,2,3]\0",
        b"42\0",
        b"{\"id\":1}\0",
        b"{\"msgid\":1,\"id\":1}\0",
        b"{\"msgid\":1,\"id\":\"1\",\"password\":\"x\"}\0",
        b"{\"msgid\":\"6\"}\0",
        b"{\"msgid\":6,\"msg\":\"x\"}\0",
        b"{\"msgid\":3}\0{\"msgid\":8,\"groupname\":\"x\",\"id\":1}\0",
        b"{\"msgid\":4,\"name\":5,\"password\":\"x\"}\0",
        b"{\"msgid\":6,\"to\":99999999999999999999999999,\"msg\":\"x\"}\0",
        b"{\"msgid\":1,\"msgid\":6,\"to\":1}\0",
        b"{\"msgid\":2}\0{\"msgid\":5}\0{\"msgid\":99}\0",
        b"\xff\xfe\xfd\0",
        b"{\"a\":1}{\"b\":2}\n",
    ];
    for frame in &bad {
        let mut evil = WireClient::connect(server.addr).await;
        evil.send_raw(frame).await;
        let _ = evil.recv_text_within(Duration::from_millis(100)).await;
        a.send(&json!({"msgid":6,"to":idb,"msg":"still alive"})).await;
        assert_eq!(a.recv().await["errno"], 0);
        assert_eq!(b.recv().await["msg"], "still alive", "after {:?}", String::from_utf8_lossy(frame));
    }
    let mut evil = WireClient::connect(server.addr).await;
    evil.send_raw(b"[1]\0").await;
    assert_eq!(evil.recv().await["errno"], 4, "malformed frames are answered with errno 4");
    a.send_raw(format!("{}\n", "[".repeat(100_000)).as_bytes()).await;
    assert_eq!(a.recv().await["errno"], 10, "over the frame limit");
    a.send_raw(format!("{}\n", "[".repeat(5_000)).as_bytes()).await;
    assert_eq!(a.recv().await["errno"], 4, "deep nesting");
    b.send(&json!({"msgid":6,"to":ida,"msg":"me too"})).await;
    assert_eq!(b.recv().await["errno"], 0);
    assert_eq!(a.recv().await["msg"], "me too");
}

/// W3, W4, W5, W12: long, quoted, escaped, injected and non-ASCII messages are
/// stored offline verbatim and come back as valid JSON; nothing leaks to another user.
#[tokio::test]
async fn w3_w4_w5_w12_offline_text_round_trips_verbatim() {
    for server in [sqlite(), mysql()] {
        let mut a = WireClient::connect(server.addr).await;
        let ida = a.register(&unique("a")).await;
        let idb = a.register(&unique("b")).await;
        let idc = a.register(&unique("c")).await;
        assert_eq!(a.login(ida, true).await["errno"], 0);
        let texts: Vec<String> = vec![
            "x".repeat(1000),
            "y".repeat(1200),
            "z".repeat(4000),
            "w".repeat(20000),
            "a'b\"c\\d\ne\tf".into(),
            format!(
                "'); INSERT INTO OfflineMessage VALUES({idc}, '{{\"msgid\":6,\"id\":99,\"name\":\"admin\"}}'); --"
            ),
            "张三丰 ab你 日本語テキスト 你好，世界 😀🎉".into(),
            "\\' OR 1=1; DROP TABLE User; -- % _".into(),
        ];
        for t in &texts {
            a.send(&json!({"msgid":6,"to":idb,"msg":t})).await;
            assert_eq!(a.recv().await["errno"], 0);
        }
        let mut b = WireClient::connect(server.addr).await;
        let ack = b.login(idb, false).await;
        let stored = ack["offlinemsg"].as_array().expect("offlinemsg");
        assert_eq!(stored.len(), texts.len());
        for (s, t) in stored.iter().zip(&texts) {
            assert_eq!(parse_str(s)["msg"].as_str(), Some(t.as_str()));
        }
        let mut c = WireClient::connect(server.addr).await;
        let ack = c.login(idc, true).await;
        assert_eq!(ack["offlinemsg"], json!([]), "no forged rows for another user");
    }
}

/// W5, W12: registration with injection strings and CJK names stores them verbatim.
#[tokio::test]
async fn w5_w12_names_are_data_not_sql() {
    for server in [sqlite(), mysql()] {
        let mut c = WireClient::connect(server.addr).await;
        for base in ["o'brien", "x', 'online'); --", "张三丰", "ab你", "日本語テキスト", "你好，世界"]
        {
            let name = unique(base);
            let id = c.register(&name).await;
            let mut d = WireClient::connect(server.addr).await;
            let ack = d.login(id, false).await;
            assert_eq!(ack["errno"], 0, "{ack}");
            assert_eq!(ack["name"], name);
        }
        c.send(&json!({"msgid":4,"name":"","password":"pw","ext":1})).await;
        assert_eq!(c.recv().await["errno"], 9);
        c.send(&json!({"msgid":4,"name":"n".repeat(51),"password":"pw","ext":1})).await;
        assert_eq!(c.recv().await["errno"], 9);
        c.send(&json!({"msgid":4,"name":unique("p"),"password":"","ext":1})).await;
        assert_eq!(c.recv().await["errno"], 9);
    }
}

/// W6: nothing works without a login, and ids a client claims are ignored.
#[tokio::test]
async fn w6_no_impersonation() {
    let server = sqlite();
    let (mut a, ida, mut b, idb) = pair(&server, true).await;
    let mut anon = WireClient::connect(server.addr).await;
    anon.send(&json!({"msgid":4,"name":unique("anon"),"password":"pw","ext":1})).await;
    anon.recv().await;
    for req in [
        json!({"msgid":6,"id":ida,"name":"a","to":idb,"msg":"spoof"}),
        json!({"msgid":7,"id":ida,"friendid":idb}),
        json!({"msgid":8,"id":ida,"groupname":unique("g"),"groupdesc":""}),
        json!({"msgid":9,"id":ida,"groupid":1}),
        json!({"msgid":10,"id":ida,"groupid":1,"msg":"x"}),
        json!({"msgid":3,"id":idb}),
        json!({"msgid":15}),
    ] {
        anon.send(&req).await;
        let reply = anon.recv().await;
        assert_eq!(reply["errno"], 3, "{req} -> {reply}");
    }
    b.expect_silence(Duration::from_millis(200)).await;
    a.send(&json!({"msgid":6,"id":idb,"name":"admin","to":idb,"msg":"who am i"})).await;
    a.recv().await;
    let got = b.recv().await;
    assert_eq!(got["id"], ida);
    assert_ne!(got["name"], "admin");
    // LOGINOUT with someone else's id logs out only oneself.
    a.send(&json!({"msgid":3,"id":idb})).await;
    a.recv().await;
    let mut c = WireClient::connect(server.addr).await;
    assert_eq!(c.login(idb, false).await["errno"], 2, "b is still logged in");
    assert_eq!(c.login(ida, false).await["errno"], 0, "a is logged out");
}

/// W8: simultaneous duplicate logins: exactly one wins, every round.
#[tokio::test]
async fn w8_duplicate_login_race() {
    let server = sqlite();
    let mut r = WireClient::connect(server.addr).await;
    let id = r.register(&unique("dup")).await;
    for round in 0..20 {
        let mut c1 = WireClient::connect(server.addr).await;
        let mut c2 = WireClient::connect(server.addr).await;
        let (r1, r2) = tokio::join!(c1.login(id, false), c2.login(id, false));
        let wins = [&r1, &r2].iter().filter(|r| r["errno"] == 0).count();
        assert_eq!(wins, 1, "round {round}: {r1} {r2}");
        drop((c1, c2));
        let mut probe = WireClient::connect(server.addr).await;
        let mut ok = false;
        for _ in 0..100 {
            if probe.login(id, true).await["errno"] == 0 {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ok, "account freed after the winner disconnected");
        // An acknowledged LOGINOUT has released everything when the ack comes.
        probe.send(&json!({"msgid":3})).await;
        assert_eq!(probe.recv().await, json!({"errno":0,"msgid":11,"re":3}));
    }
}

/// W9: one socket, two users in turn: both are cleaned up, and messages reach the live one.
#[tokio::test]
async fn w9_no_dead_entries() {
    let server = sqlite();
    let mut s = WireClient::connect(server.addr).await;
    let u1 = s.register(&unique("u1")).await;
    let u3 = s.register(&unique("u3")).await;
    assert_eq!(s.login(u1, true).await["errno"], 0);
    assert_eq!(s.login(u3, true).await["errno"], 11, "one login per connection");
    s.send(&json!({"msgid":3})).await;
    assert_eq!(s.recv().await["errno"], 0);
    assert_eq!(s.login(u3, true).await["errno"], 0);
    drop(s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut n1 = WireClient::connect(server.addr).await;
    assert_eq!(n1.login(u1, true).await["errno"], 0, "u1 is not stuck online");
    let mut n3 = WireClient::connect(server.addr).await;
    assert_eq!(n3.login(u3, true).await["errno"], 0, "u3 is not stuck online");
    n3.send(&json!({"msgid":6,"to":u1,"msg":"to the live u1"})).await;
    assert_eq!(n3.recv().await["errno"], 0);
    assert_eq!(n1.recv().await["msg"], "to the live u1");
}

/// W13: friends and groups are checked, and acks exist for the extension.
#[tokio::test]
async fn w13_friends_and_groups_are_checked() {
    let server = sqlite();
    let (mut a, ida, _b, idb) = pair(&server, true).await;
    a.send(&json!({"msgid":7,"friendid":ida})).await;
    assert_eq!(a.recv().await["errno"], 9, "no self friendship");
    a.send(&json!({"msgid":7,"friendid":987654})).await;
    assert_eq!(a.recv().await["errno"], 5, "friend must exist");
    a.send(&json!({"msgid":7,"friendid":idb})).await;
    assert_eq!(a.recv().await["errno"], 0);
    a.send(&json!({"msgid":7,"friendid":idb})).await;
    assert_eq!(a.recv().await["errno"], 0, "repeating is harmless");
    let g = unique("g");
    a.send(&json!({"msgid":8,"groupname":g,"groupdesc":"d"})).await;
    let created = a.recv().await;
    assert!(created["groupid"].as_i64().is_some(), "{created}");
    a.send(&json!({"msgid":8,"groupname":g,"groupdesc":"d"})).await;
    assert_eq!(a.recv().await["errno"], 8);
    a.send(&json!({"msgid":9,"groupid":987654})).await;
    assert_eq!(a.recv().await["errno"], 6);
    a.send(&json!({"msgid":6,"to":987654,"msg":"into the void"})).await;
    assert_eq!(a.recv().await["errno"], 5, "no offline rows for nobody");
    a.send(&json!({"msgid":15})).await;
    let lists = a.recv().await;
    assert_eq!(lists["friends"].as_array().map(Vec::len), Some(1), "{lists}");
    assert_eq!(lists["friends"][0]["state"], "online");
}

/// A frame over the limit is refused without closing the connection.
#[tokio::test]
async fn oversize_frame_is_refused_and_the_connection_lives() {
    let server = sqlite();
    let (mut a, _ida, mut b, idb) = pair(&server, true).await;
    let huge = format!("{{\"msgid\":6,\"to\":{idb},\"msg\":\"{}\"}}\n", "x".repeat(200_000));
    a.send_raw(huge.as_bytes()).await;
    assert_eq!(a.recv().await["errno"], 10);
    a.send(&json!({"msgid":6,"to":idb,"msg":"small"})).await;
    assert_eq!(a.recv().await["errno"], 0);
    assert_eq!(b.recv().await["msg"], "small");
}

/// Neither passwords nor message bodies reach the log.
#[tokio::test]
async fn logs_hold_no_secrets() {
    let server = ServerProcess::start_sqlite(&["--log", "debug"]);
    let mut a = WireClient::connect(server.addr).await;
    a.send(&json!({"msgid":4,"name":unique("s"),"password":"hunter2-secret","ext":1})).await;
    let id = a.recv().await["id"].as_i64().expect("id");
    a.send(&json!({"msgid":1,"id":id,"password":"wrong-secret-pw","ext":1})).await;
    a.recv().await;
    a.send(&json!({"msgid":1,"id":id,"password":"hunter2-secret","ext":1})).await;
    a.recv().await;
    a.send(&json!({"msgid":6,"to":id,"msg":"the-body-of-a-message"})).await;
    a.recv().await;
    a.recv().await;
    a.send_raw(b"{\"msgid\":6,\"to\":\"bad\",\"msg\":\"malformed-body\"}\n").await;
    a.recv().await;
    a.send_raw(b"{\"msgid\":6,\"to\":1,\"msg\":\"broken-json-body\n").await;
    a.recv().await;
    let log = server.log();
    assert!(log.contains("logged in"), "log has events: {log}");
    for secret in
        ["hunter2-secret", "wrong-secret-pw", "the-body-of-a-message", "malformed-body", "broken-json-body"]
    {
        assert!(!log.contains(secret), "log leaks {secret}");
    }
}

/// SIGTERM: extension clients hear why, users go offline, the process exits 0 quickly.
#[tokio::test]
async fn sigterm_shuts_down_in_order() {
    let dir = TempDir::new("chat-term");
    let db = dir.path().join("chat.db").display().to_string();
    let url = format!("sqlite://{db}");
    let mut server = ServerProcess::start_with(dir, &["--database-url", &url], &[]);
    let (mut a, ida, mut b, _idb) = pair(&server, true).await;
    let mut orig = WireClient::connect(server.addr).await;
    let ido = orig.register(&unique("o")).await;
    assert_eq!(orig.login(ido, false).await["errno"], 0);
    server.signal("TERM");
    let notice = a.recv().await;
    assert_eq!(notice, json!({"errmsg":"server is shutting down","errno":15,"msgid":14}));
    assert_eq!(b.recv().await["msgid"], 14);
    assert!(orig.closed_within(Duration::from_secs(5)).await, "original client is closed without a frame");
    let status = server.wait_exit(Duration::from_secs(15)).expect("exits within 15 s");
    assert!(status.success(), "{status}");
    assert!(a.closed_within(Duration::from_secs(1)).await);
    let again = ServerProcess::start_with(TempDir::new("chat-term2"), &["--database-url", &url], &[]);
    let mut c = WireClient::connect(again.addr).await;
    let ack = c.login(ida, true).await;
    assert_eq!(ack["errno"], 0);
}
