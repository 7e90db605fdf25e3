//! Hostile and broken clients, black-box: none of them can crash the node,
//! exhaust its memory, stall other users or reach data that is not theirs.

use std::time::Duration;

use chat_tests::{ServerProcess, WireClient, tempdir::TempDir, unique};
use serde_json::{Value, json};

fn server(env: &[(&str, &str)]) -> ServerProcess {
    let dir = TempDir::new("chat-adv");
    let url = format!("sqlite://{}", dir.path().join("chat.db").display());
    ServerProcess::start_with(dir, &["--database-url", &url], env)
}

async fn user(s: &ServerProcess, name: &str) -> (WireClient, i64) {
    let mut c = WireClient::connect(s.addr).await;
    let id = WireClient::connect(s.addr).await.register(&unique(name)).await;
    assert_eq!(c.login(id, true).await["errno"], 0);
    (c, id)
}

/// The node still serves: a chat between two healthy users goes through.
async fn still_serves(a: &mut WireClient, b: &mut WireClient, idb: i64, tag: &str) {
    a.send(&json!({"msgid":6,"to":idb,"msg":tag})).await;
    assert_eq!(a.recv().await["errno"], 0, "{tag}");
    assert_eq!(b.recv().await["msg"], tag);
}

fn rss_kib(s: &ServerProcess) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.child.id())).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn open_fds(s: &ServerProcess) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", s.child.id())).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn garbage_bytes_and_invalid_utf8() {
    let s = server(&[]);
    let (mut a, _) = user(&s, "a").await;
    let (mut b, idb) = user(&s, "b").await;
    // A megabyte of pseudo-random bytes (with NULs and LFs inside).
    let mut x: u32 = 0x1234_5678;
    let garbage: Vec<u8> = (0..1_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let mut evil = WireClient::connect(s.addr).await;
    evil.send_raw(&garbage).await;
    still_serves(&mut a, &mut b, idb, "after garbage").await;
    a.send_raw(b"{\"msgid\":6,\"to\":1,\"msg\":\"\xff\xfe bad utf8\"}\n").await;
    assert_eq!(a.recv().await["errno"], 4, "invalid UTF-8 is a bad request");
    still_serves(&mut a, &mut b, idb, "after invalid utf8").await;
}

#[tokio::test]
async fn a_ten_mebibyte_line_is_refused_without_buffering_it() {
    let s = server(&[]);
    let (mut a, _) = user(&s, "a").await;
    let (mut b, idb) = user(&s, "b").await;
    let before = rss_kib(&s);
    let mut big = vec![b'x'; 10 * 1024 * 1024];
    big.push(b'\n');
    a.send_raw(&big).await;
    assert_eq!(a.recv().await["errno"], 10);
    still_serves(&mut a, &mut b, idb, "same connection still works").await;
    let after = rss_kib(&s);
    assert!(after < before + 4 * 1024, "RSS grew from {before} KiB to {after} KiB");
}

#[tokio::test]
async fn a_frame_in_one_byte_writes_and_thousands_of_frames_in_one_write() {
    let s = server(&[("CHAT_RATE_BURST", "10000")]);
    let (mut a, _) = user(&s, "a").await;
    let (mut b, idb) = user(&s, "b").await;
    let frame = serde_json::to_vec(&json!({"msgid":6,"to":idb,"msg":"byte by byte"})).expect("json");
    for byte in frame.iter().chain(b"\0") {
        a.send_raw(&[*byte]).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(a.recv().await["errno"], 0);
    assert_eq!(b.recv().await["msg"], "byte by byte");
    let mut many = Vec::new();
    for i in 0..5000 {
        many.extend(serde_json::to_vec(&json!({"msgid":6,"to":idb,"msg":format!("n{i}")})).expect("json"));
        many.push(0);
    }
    a.send_raw(&many).await;
    for i in 0..5000 {
        assert_eq!(a.recv().await["errno"], 0);
        assert_eq!(b.recv().await["msg"], format!("n{i}"), "in order");
    }
}

/// A client that pipelines far more chats than its outbound queue holds (1024 frames) and
/// reads none of the answers for a while is paused (its socket is not read), not closed:
/// once it reads, every chat is answered, in order.
#[tokio::test]
async fn a_sender_that_does_not_read_its_answers_is_paused_not_closed() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let s = server(&[("CHAT_RATE_PER_SEC", "100000"), ("CHAT_RATE_BURST", "100000")]);
    let ida = WireClient::connect(s.addr).await.register(&unique("a")).await;
    let (_b, idb) = user(&s, "b").await;
    let stream = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write
        .write_all(format!("{{\"msgid\":1,\"id\":{ida},\"password\":\"pw\",\"ext\":1}}\0").as_bytes())
        .await
        .expect("login");
    let login = lines.next_line().await.expect("read").expect("the login answer");
    assert!(login.contains("\"errno\":0"), "{login}");
    const CHATS: usize = 20_000;
    let mut many = Vec::new();
    for i in 0..CHATS {
        let chat = json!({"msgid":6,"to":idb,"msg":format!("p{i}"),"cid":format!("c{i}")});
        many.extend(serde_json::to_vec(&chat).expect("json"));
        many.push(0);
    }
    let send = tokio::spawn(async move {
        write.write_all(&many).await.expect("the server reads on once the client reads");
        write
    });
    // Reads nothing for a while: far more answers than the outbound queue holds are due.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..CHATS {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("answers keep coming")
            .expect("read")
            .unwrap_or_else(|| panic!("the server closed the connection after {i} answers: {}", s.log()));
        let ack: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(ack["errno"], 0, "chat {i}: {ack}");
        assert_eq!(ack["cid"], format!("c{i}"), "answers in order");
    }
    send.await.expect("writer");
}

#[tokio::test]
async fn nesting_and_numbers_beyond_64_bits() {
    let s = server(&[]);
    let (mut a, ida) = user(&s, "a").await;
    for bad in [
        format!("{}{}", "{\"a\":".repeat(3000), "}".repeat(3000)),
        "[".repeat(50_000),
        format!("{{\"msgid\":6,\"to\":{},\"msg\":\"x\"}}", "9".repeat(40)),
        "{\"msgid\":6,\"to\":1e400,\"msg\":\"x\"}".into(),
        "{\"msgid\":18446744073709551617}".into(),
        "{\"msgid\":6,\"to\":-99999999999,\"msg\":\"x\"}".into(),
    ] {
        a.send_raw(format!("{bad}\n").as_bytes()).await;
        let reply = a.recv().await;
        assert_eq!(reply["errno"], 4, "{reply}");
    }
    a.send(&json!({"msgid":6,"to":ida,"msg":"alive"})).await;
    assert_eq!(a.recv().await["msgid"], 6);
}

#[tokio::test]
async fn sql_metacharacters_in_every_text_field_are_plain_data() {
    let s = server(&[]);
    let evil =
        ["'; DROP TABLE User; --", "\" OR \"1\"=\"1", "\\'; --", "%_%", "`x`", "); DELETE FROM Friend; --"];
    let mut c = WireClient::connect(s.addr).await;
    for e in evil {
        let name = unique(e);
        c.send(&json!({"msgid":4,"name":name,"password":e,"ext":1})).await;
        let id = c.recv().await["id"].as_i64().expect("registered");
        let mut u = WireClient::connect(s.addr).await;
        u.send(&json!({"msgid":1,"id":id,"password":e,"ext":1})).await;
        let ack = u.recv().await;
        assert_eq!((ack["errno"].as_i64(), ack["name"].as_str()), (Some(0), Some(name.as_str())));
        let group = unique(e);
        u.send(&json!({"msgid":8,"groupname":group,"groupdesc":e})).await;
        let gid = u.recv().await["groupid"].as_i64().expect("group");
        u.send(&json!({"msgid":10,"groupid":gid,"msg":e})).await;
        assert_eq!(u.recv().await["errno"], 0);
        u.send(&json!({"msgid":6,"to":id,"msg":e})).await;
        let mut got = [u.recv().await, u.recv().await];
        got.sort_by_key(|f| f["msgid"].as_i64());
        assert_eq!(got[0]["msg"], e);
        u.send(&json!({"msgid":15})).await;
        let lists = u.recv().await;
        assert_eq!(lists["groups"][0]["groupname"], group);
        assert_eq!(lists["groups"][0]["groupdesc"], e);
    }
    // Everything still there: a fresh user can register and log in.
    let id = c.register(&unique("after")).await;
    assert_eq!(WireClient::connect(s.addr).await.login(id, true).await["errno"], 0);
}

#[tokio::test]
async fn connections_opened_and_closed_in_a_loop_leak_nothing() {
    let s = server(&[]);
    let (mut a, _) = user(&s, "a").await;
    let (mut b, idb) = user(&s, "b").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fds_before = open_fds(&s);
    for i in 0..1000 {
        let mut c = WireClient::connect(s.addr).await;
        if i % 3 == 0 {
            c.send_raw(b"{\"msgid\":13}\n").await;
        }
    }
    still_serves(&mut a, &mut b, idb, "after the loop").await;
    let mut fds_after = open_fds(&s);
    for _ in 0..50 {
        if fds_after <= fds_before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        fds_after = open_fds(&s);
    }
    assert!(fds_after <= fds_before + 2, "file descriptors: {fds_before} before, {fds_after} after");
}

#[tokio::test]
async fn a_login_flood_for_one_user_does_not_hurt_anyone_else() {
    let s = server(&[]);
    let (mut a, _) = user(&s, "a").await;
    let (mut b, idb) = user(&s, "b").await;
    let victim = WireClient::connect(s.addr).await.register(&unique("victim")).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let addr = s.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = WireClient::connect(addr).await;
            let mut codes = Vec::new();
            for _ in 0..4 {
                c.send(&json!({"msgid":1,"id":victim,"password":"guess","ext":1})).await;
                match c.recv_within(Duration::from_secs(20)).await {
                    Some(f) => codes.push(f["errno"].as_i64().unwrap_or(-1)),
                    None => break,
                }
            }
            codes
        }));
    }
    still_serves(&mut a, &mut b, idb, "during the flood").await;
    let mut codes = Vec::new();
    for t in tasks {
        codes.extend(t.await.expect("task"));
    }
    assert!(codes.iter().all(|c| *c == 1 || *c == 14), "{codes:?}");
    assert!(codes.contains(&14), "the account got locked: {codes:?}");
    still_serves(&mut a, &mut b, idb, "after the flood").await;
}

#[tokio::test]
async fn claiming_another_users_id_in_every_field_changes_nothing_of_theirs() {
    let s = server(&[]);
    let (mut attacker, ida) = user(&s, "attacker").await;
    let (mut victim, idv) = user(&s, "victim").await;
    let (mut friend, idf) = user(&s, "friend").await;
    // The victim's group, which the attacker is not in.
    victim.send(&json!({"msgid":8,"groupname":unique("vg"),"groupdesc":""})).await;
    let vgid = victim.recv().await["groupid"].as_i64().expect("group");
    let spoofed: Vec<Value> = vec![
        json!({"msgid":6,"id":idv,"name":"victim","to":idf,"msg":"spoof","time":"x"}),
        json!({"msgid":7,"id":idv,"friendid":idf,"userid":idv}),
        json!({"msgid":8,"id":idv,"groupname":unique("g"),"groupdesc":"","creator":idv}),
        json!({"msgid":9,"id":idv,"groupid":vgid,"userid":idv}),
        json!({"msgid":10,"id":idv,"groupid":vgid,"msg":"spoof","name":"victim"}),
        json!({"msgid":15,"id":idv}),
        json!({"msgid":3,"id":idv}),
    ];
    for req in &spoofed {
        attacker.send(req).await;
        let _ = attacker.recv().await;
    }
    // The friend saw the attacker's real identity.
    let got = friend.recv().await;
    assert_eq!((got["id"].as_i64(), got["msg"].as_str()), (Some(ida), Some("spoof")));
    // Joining a group is open to anyone (as in the original), but posts carry the real sender.
    let post = victim.recv().await;
    assert_eq!((post["msgid"].as_i64(), post["id"].as_i64()), (Some(10), Some(ida)), "{post}");
    assert_ne!(post["name"], "victim");
    // The victim: still logged in, no new friend, only its own group, still its creator.
    victim.send(&json!({"msgid":15})).await;
    let lists = victim.recv().await;
    assert_eq!(lists["friends"], json!([]), "{lists}");
    let groups = lists["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1, "{lists}");
    let users = groups[0]["users"].as_array().expect("users");
    let role = |id: i64| users.iter().find(|u| u["id"] == id).map(|u| u["role"].clone());
    assert_eq!(role(idv), Some(json!("creator")), "{lists}");
    assert_eq!(role(ida), Some(json!("normal")), "the attacker joined as itself: {lists}");
    victim.expect_silence(Duration::from_millis(200)).await;
    let mut dup = WireClient::connect(s.addr).await;
    assert_eq!(dup.login(idv, false).await["errno"], 2, "the victim was not logged out");
    friend.send(&json!({"msgid":6,"to":idv,"msg":"still reachable"})).await;
    assert_eq!(friend.recv().await["errno"], 0);
    assert_eq!(victim.recv().await["msg"], "still reachable");
}
