//! Taking over the original C++ server's database (issue 14), on real MySQL/MariaDB.
//!
//! A database is built with the original's exact schema (ORIGINAL.md §(b)) and data written
//! the way the original wrote it (through `SET NAMES gbk`), hostile rows included: a 500-byte
//! offline message cut mid-JSON, one mangled by the original's unescaped SQL, a name with a
//! newline, friend and member rows pointing at nobody, a password with quotes, a stale
//! `online`. It is adopted in place and into a copy; a node then serves it, and the users log
//! in with their old ids and passwords, as the original client does, see their friends and
//! groups, and receive their offline messages in order. A second run changes nothing; a run
//! killed mid-hashing finishes on the next. A node pointed at an unadopted database stops and
//! says what to run.
//!
//! The original console client cannot be built here: `console_login` sends its exact LOGIN
//! frame (compact JSON, keys sorted, NUL-terminated), reads the answer as it does (one
//! `recv` of at most 1,024 bytes into a zeroed buffer, parsed as one document) and prints
//! what it would print.
//!
//! Scratch databases are created through the root account (as deploy/db-setup.sh does) and
//! dropped afterwards; a test fails if MySQL is unreachable.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use chat_tests::{CHEAP_HASH, ServerProcess, WireClient, bin, mysql_url, nonce, tempdir::TempDir};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------
// Scratch databases through the root account
// ---------------------------------------------------------------------------------------

/// Runs `sql` as root (socket auth, as deploy/db-setup.sh does) on `db` with the connection
/// charset `charset`; returns the output rows, tab-separated. Panics with MySQL's message.
fn sql_as_root(db: Option<&str>, charset: &str, sql: &str) -> String {
    try_sql_as_root(db, charset, sql).unwrap_or_else(|e| {
        panic!(
            "MySQL as root failed (is it running? deploy/db-setup.sh starts it): {e}\nSQL: {}",
            sql.chars().take(300).collect::<String>()
        )
    })
}

/// [`sql_as_root`], answering MySQL's message instead of panicking.
fn try_sql_as_root(db: Option<&str>, charset: &str, sql: &str) -> Result<String, String> {
    let mut cmd = Command::new(chat_tests::mysql_client());
    cmd.args(["--user=root", "--batch", "--skip-column-names", "--raw"])
        .arg(format!("--default-character-set={charset}"));
    if let Some(db) = db {
        cmd.arg(format!("--database={db}"));
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the MySQL client");
    child.stdin.take().expect("stdin").write_all_sync(sql.as_bytes());
    let out = child.wait_with_output().expect("MySQL client");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

trait WriteAllSync {
    fn write_all_sync(self, bytes: &[u8]);
}

impl WriteAllSync for std::process::ChildStdin {
    fn write_all_sync(mut self, bytes: &[u8]) {
        std::io::Write::write_all(&mut self, bytes).expect("write SQL");
    }
}

/// A database of its own, granted to the test user, dropped on drop.
struct ScratchDb {
    name: String,
}

impl ScratchDb {
    fn new(tag: &str) -> ScratchDb {
        let name = format!("chat_test_adopt_{tag}_{:x}", nonce() & 0xff_ffff_ffff);
        // The server's default charset, as the original's README creates `chat`.
        sql_as_root(
            None,
            "utf8mb4",
            &format!(
                "CREATE DATABASE `{name}`;
                 GRANT ALL PRIVILEGES ON `{name}`.* TO 'chat_test'@'127.0.0.1';
                 GRANT ALL PRIVILEGES ON `{name}`.* TO 'chat_test'@'localhost';"
            ),
        );
        ScratchDb { name }
    }

    fn url(&self) -> String {
        let base = mysql_url();
        let (server, _) = base.rsplit_once('/').expect("a MySQL URL with a database");
        format!("{server}/{}", self.name)
    }

    fn sql(&self, sql: &str) -> String {
        sql_as_root(Some(&self.name), "utf8mb4", sql)
    }

    /// As the original wrote: every connection did `SET NAMES gbk` while clients sent UTF-8.
    fn sql_as_the_original(&self, sql: &str) -> String {
        sql_as_root(Some(&self.name), "gbk", sql)
    }

    fn tables(&self) -> Vec<String> {
        self.sql("SHOW TABLES").lines().map(str::to_string).collect()
    }

    /// Every table and its checksum: equal fingerprints, equal data.
    fn fingerprint(&self) -> String {
        let tables = self.tables();
        if tables.is_empty() {
            return String::new();
        }
        let list: Vec<String> = tables.iter().map(|t| format!("`{t}`")).collect();
        self.sql(&format!("CHECKSUM TABLE {}", list.join(", ")))
    }

    fn count(&self, table: &str) -> i64 {
        self.sql(&format!("SELECT COUNT(*) FROM `{table}`")).trim().parse().expect("a count")
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let _ = Command::new(chat_tests::mysql_client())
            .args(["--user=root", "-e", &format!("DROP DATABASE IF EXISTS `{}`", self.name)])
            .output();
    }
}

/// SQL string literal (MySQL escapes). Only for ASCII text or text without `\` and `'`:
/// through a GBK connection a backslash after a multibyte character is eaten.
fn lit(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The original's five tables, exactly (ORIGINAL.md §(b)).
const ORIGINAL_SCHEMA: &str = "
CREATE TABLE User (
    id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(50) NOT NULL UNIQUE,
    password VARCHAR(50) NOT NULL,
    state ENUM('online','offline') DEFAULT 'offline'
) ENGINE=InnoDB;
CREATE TABLE Friend (
    userid INT NOT NULL,
    friendid INT NOT NULL,
    PRIMARY KEY(userid, friendid)
) ENGINE=InnoDB;
CREATE TABLE AllGroup (
    id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    groupname VARCHAR(50) NOT NULL UNIQUE,
    groupdesc VARCHAR(200) DEFAULT ''
) ENGINE=InnoDB;
CREATE TABLE GroupUser (
    groupid INT NOT NULL,
    userid INT NOT NULL,
    grouprole ENUM('creator','normal') DEFAULT 'normal',
    PRIMARY KEY(groupid, userid)
) ENGINE=InnoDB;
CREATE TABLE OfflineMessage (
    userid INT NOT NULL,
    message VARCHAR(500) NOT NULL
) ENGINE=InnoDB;
";

// ---------------------------------------------------------------------------------------
// The original's data
// ---------------------------------------------------------------------------------------

const BOB_PASSWORD: &str = r#"b"o'b\q"#;

/// A one-to-one frame as the original stored it (the forwarded request, keys sorted).
fn chat(from: i64, name: &str, to: i64, msg: &str, time: &str) -> String {
    json!({"id": from, "msg": msg, "msgid": 6, "name": name, "time": time, "to": to}).to_string()
}

/// What `fill` stored, to check against.
struct Original {
    /// Offline rows, in table order: (user, text).
    offline: Vec<(i64, String)>,
}

/// Fills the original's tables the way it would have (through `SET NAMES gbk`).
fn fill(db: &ScratchDb) -> Original {
    db.sql(ORIGINAL_SCHEMA);
    let t = db.sql("SELECT DATE_FORMAT(NOW() - INTERVAL 1 HOUR, '%Y-%m-%d %H:%i:%s')").trim().to_string();
    let group_hi = json!({"groupid": 1, "id": 1, "msg": "group hi", "msgid": 10, "name": "alice", "time": t})
        .to_string();
    let long = chat(2, "bob", 1, &"x".repeat(600), &t);
    let offline: Vec<(i64, String)> = vec![
        (1, chat(2, "bob", 1, "hello alice 1", &t)),
        (3, group_hi.clone()),
        (2, group_hi),
        (1, chat(4, "张三", 1, "你好", &t)),
        (1, chat(2, "bob", 1, "hello alice 2", &t)),
        // Cut at VARCHAR(500) (a server without strict mode truncates).
        (1, long[..500].to_string()),
        // For a user that never existed (the original kept these forever).
        (99, chat(2, "bob", 99, "to nobody", &t)),
        (2, chat(1, "alice", 2, "hi bob", &t)),
        (1, chat(2, "bob", 1, "hello alice 3", &t)),
        // Older than the log's retention: kept in the original's form.
        (1, chat(2, "bob", 1, "from long ago", "2001-01-01 00:00:00")),
        // A quote in a message, stored unescaped by the original (W5): not JSON any more.
        (2, format!(r#"{{"id":1,"msg":"say "hi"","msgid":6,"name":"alice","time":"{t}","to":2}}"#)),
    ];
    let mut sql = format!(
        "INSERT INTO User VALUES (1, 'alice', 'alice-pw', 'offline'), (2, 'bob', {}, 'online'),
             (3, {}, 'carol-pw', 'offline'), (4, '张三', '密码', 'offline'), (7, 'dave', 'dave-pw', 'offline');
         ALTER TABLE User AUTO_INCREMENT = 10;
         INSERT INTO Friend VALUES (1, 2), (2, 1), (1, 3), (1, 4), (1, 99), (3, 3), (4, 1), (7, 1);
         INSERT INTO AllGroup VALUES (1, 'devs', 'the devs'), (3, 'ops', NULL);
         INSERT INTO GroupUser VALUES (1, 1, 'creator'), (1, 2, 'normal'), (1, 3, 'normal'), (1, 42, 'normal'),
             (9, 1, 'normal'), (3, 4, 'creator'), (3, 1, NULL);\n",
        lit(BOB_PASSWORD),
        lit("carol\nsmith"),
    );
    for (user, text) in &offline {
        sql.push_str(&format!("INSERT INTO OfflineMessage VALUES ({user}, {});\n", lit(text)));
    }
    db.sql_as_the_original(&sql);
    // Stored as the original stored it: mojibake (W12).
    assert_eq!(db.sql("SELECT name FROM User WHERE id = 4").trim(), "寮犱笁");
    Original { offline }
}

// ---------------------------------------------------------------------------------------
// Running chat-server
// ---------------------------------------------------------------------------------------

fn chat_server(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin("chat-server"));
    cmd.args(args).env("RUST_LOG", "warn").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// `chat-server adopt-original --database-url URL [more]` with cheap hashing; asserts success.
fn adopt(url: &str, more: &[&str]) -> String {
    let mut args = vec!["adopt-original", "--database-url", url];
    args.extend_from_slice(more);
    let out = chat_server(&args, &[(CHEAP_HASH[0], CHEAP_HASH[1])]).output().expect("run adopt-original");
    let text = text_of(&out);
    assert!(out.status.success(), "adopt-original failed:\n{text}");
    text
}

/// Runs `cmd` to its end, killing it (and failing) after `limit`: a node that should refuse
/// to start must not hang the test when it serves instead.
fn output_within(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn chat-server");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("chat-server still ran after {limit:?}:\n{}", text_of(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn text_of(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn serve(url: &str) -> ServerProcess {
    ServerProcess::start_with(TempDir::new("chat-adopt"), &["--database-url", url], &[])
}

// ---------------------------------------------------------------------------------------
// The original client
// ---------------------------------------------------------------------------------------

fn parse_str(v: &Value) -> Value {
    serde_json::from_str(v.as_str().expect("a JSON string")).expect("valid JSON inside")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().expect("a string").to_string()).collect())
        .unwrap_or_default()
}

/// Logs in as the original console client does and returns what it would print: its exact
/// LOGIN frame, one `recv` of at most 1,024 bytes into a zeroed buffer parsed as one JSON
/// document (up to the first NUL), then the banner, the lists and the offline messages in
/// its formats (ORIGINAL.md §(d)).
async fn console_login(addr: std::net::SocketAddr, id: i64, password: &str) -> Vec<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut frame = json!({"id": id, "msgid": 1, "password": password}).to_string().into_bytes();
    frame.push(0);
    stream.write_all(&frame).await.expect("send LOGIN");
    let mut buffer = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
        .await
        .expect("an answer within 10 s")
        .expect("read");
    assert!(n < 1024, "the ack fills the original client's 1,024-byte buffer (it would abort)");
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let text = std::str::from_utf8(&buffer[..end]).expect("UTF-8");
    let ack: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("the client would abort ({e}): {text}"));
    if ack["errno"] != 0 {
        return vec![ack["errmsg"].to_string()];
    }
    let mut lines = vec![
        "======================login user======================".to_string(),
        format!("current login user => id:{} name:{}", ack["id"], ack["name"].as_str().expect("name")),
        "----------------------friend list---------------------".to_string(),
    ];
    for friend in strings(&ack["friends"]) {
        let f: Value = serde_json::from_str(&friend).expect("a friend");
        lines.push(format!(
            "{} {} {}",
            f["id"],
            f["name"].as_str().expect("s"),
            f["state"].as_str().expect("s")
        ));
    }
    lines.push("----------------------group list----------------------".to_string());
    for group in strings(&ack["groups"]) {
        let g: Value = serde_json::from_str(&group).expect("a group");
        lines.push(format!(
            "{} {} {}",
            g["id"],
            g["groupname"].as_str().expect("s"),
            g["groupdesc"].as_str().expect("s")
        ));
        for user in strings(&g["users"]) {
            let u: Value = serde_json::from_str(&user).expect("a member");
            lines.push(format!(
                "    {} {} {} {}",
                u["id"],
                u["name"].as_str().expect("s"),
                u["state"].as_str().expect("s"),
                u["role"].as_str().expect("s")
            ));
        }
    }
    lines.push("======================================================".to_string());
    for message in strings(&ack["offlinemsg"]) {
        let m: Value =
            serde_json::from_str(&message).unwrap_or_else(|e| panic!("the client would abort ({e})"));
        let said = format!(
            "{} [{}]{} said: {}",
            m["time"].as_str().expect("time"),
            m["id"],
            m["name"].as_str().expect("name"),
            m["msg"].as_str().expect("msg")
        );
        if m["msgid"] == 6 {
            lines.push(said);
        } else {
            lines.push(format!("群消息[{}]:{said}", m["groupid"]));
        }
    }
    lines
}

/// The original client's LOGIN over the harness's reader (frames of any size).
async fn login(addr: std::net::SocketAddr, id: i64, password: &str) -> (WireClient, Value) {
    let mut c = WireClient::connect(addr).await;
    c.send(&json!({"id": id, "msgid": 1, "password": password})).await;
    let ack = c.recv().await;
    (c, ack)
}

// ---------------------------------------------------------------------------------------
// What an adopted database must give its users
// ---------------------------------------------------------------------------------------

/// The summary of adopting `fill`'s data.
fn assert_summary(out: &str) {
    for line in [
        "users        5 carried with their ids (1 changed, see below)",
        "friendships  6 carried, 2 not carried",
        "groups       2 carried",
        "memberships  5 carried, 2 not carried",
        "messages     5 one-to-one into the message log (2 conversations), 3 kept in the original's form, 3 not carried",
        "2 group messages (the original stored one per offline member)",
        "1 one-to-one messages older than retention_days",
        "next ids     user 8, group 4",
        r#"user 3: name "carol\nsmith" has control characters; now "carol smith""#,
        "friend row 1 → 99: user 99 does not exist",
        "friend row 3 → 3: a friendship with oneself",
        "member row group 1 user 42: user 42 does not exist",
        "member row group 9 user 1: group 9 does not exist",
        "offline row 6 for user 1 (500 bytes): not JSON",
        "offline row 7 for user 99",
        "offline row 11 for user 2",
        "3 names, passwords or messages read through GBK",
        "passwords: 5 hashed with argon2id",
    ] {
        assert!(out.contains(line), "the summary lacks {line:?}:\n{out}");
    }
    assert!(
        !out.contains("alice-pw") && !out.contains("carol-pw") && !out.contains("密码"),
        "a password in the output:\n{out}"
    );
}

/// Users of `fill`'s data log in with their old ids and passwords, see their friends and
/// groups, and receive their offline messages in order, once.
async fn users_carry_on(server: &ServerProcess, original: &Original) {
    let addr = server.addr;
    let texts: Vec<&str> = original.offline.iter().map(|(_, t)| t.as_str()).collect();

    // alice: every list, and her offline messages: the one kept in the original's form first,
    // then those from the log, each in its table order (per conversation: bob 1, 2, 3).
    let (mut alice, ack) = login(addr, 1, "alice-pw").await;
    assert_eq!(ack["errno"], 0, "{ack}");
    assert_eq!(ack["name"], "alice");
    let friends: Vec<Value> = ack["friends"].as_array().expect("friends").iter().map(parse_str).collect();
    assert_eq!(
        friends,
        [
            json!({"id":2,"name":"bob","state":"offline"}),
            json!({"id":3,"name":"carol smith","state":"offline"}),
            json!({"id":4,"name":"张三","state":"offline"}),
        ]
    );
    let groups: Vec<Value> = ack["groups"].as_array().expect("groups").iter().map(parse_str).collect();
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert_eq!((groups[0]["id"].clone(), groups[0]["groupname"].clone()), (json!(1), json!("devs")));
    let members: Vec<Value> = groups[0]["users"].as_array().expect("users").iter().map(parse_str).collect();
    assert_eq!(
        members,
        [
            json!({"id":1,"name":"alice","role":"creator","state":"online"}),
            json!({"id":2,"name":"bob","role":"normal","state":"offline"}),
            json!({"id":3,"name":"carol smith","role":"normal","state":"offline"}),
        ]
    );
    assert_eq!(
        groups[1],
        json!({"groupdesc":"","groupname":"ops","id":3,"users":[
            json!({"id":1,"name":"alice","role":"normal","state":"online"}).to_string(),
            json!({"id":4,"name":"张三","role":"creator","state":"offline"}).to_string(),
        ]})
    );
    // Byte for byte what the original would have sent (the log renders the same frame).
    assert_eq!(strings(&ack["offlinemsg"]), [texts[9], texts[0], texts[3], texts[4], texts[8]]);
    // Delivered once: the next login has none. (alice stays logged in from here on.)
    alice.send(&json!({"id":1,"msgid":3})).await;
    alice.send(&json!({"id":1,"msgid":1,"password":"alice-pw"})).await;
    let again = alice.recv().await;
    assert_eq!(again["errno"], 0, "{again}");
    assert!(again.get("offlinemsg").is_none(), "offline messages came twice: {again}");

    // bob, with the original console client: the password with quotes and a backslash, his
    // stale `online` gone, the group message stored for him and alice's message.
    let printed = console_login(addr, 2, BOB_PASSWORD).await;
    let t = &serde_json::from_str::<Value>(texts[0]).expect("json")["time"];
    let t = t.as_str().expect("time");
    assert_eq!(
        printed,
        [
            "======================login user======================".to_string(),
            "current login user => id:2 name:bob".to_string(),
            "----------------------friend list---------------------".to_string(),
            "1 alice online".to_string(),
            "----------------------group list----------------------".to_string(),
            "1 devs the devs".to_string(),
            "    1 alice online creator".to_string(),
            "    2 bob online normal".to_string(),
            "    3 carol smith offline normal".to_string(),
            "======================================================".to_string(),
            format!("群消息[1]:{t} [1]alice said: group hi"),
            format!("{t} [1]alice said: hi bob"),
        ]
    );

    // carol, renamed; 张三 and his password as the original's clients typed them (W12); dave.
    let (_carol, ack) = login(addr, 3, "carol-pw").await;
    assert_eq!((ack["errno"].clone(), ack["name"].clone()), (json!(0), json!("carol smith")), "{ack}");
    assert_eq!(strings(&ack["offlinemsg"]), [texts[1]]);
    assert!(ack.get("friends").is_none(), "carol's only friend row was herself: {ack}");
    let (_zhang, ack) = login(addr, 4, "密码").await;
    assert_eq!((ack["errno"].clone(), ack["name"].clone()), (json!(0), json!("张三")), "{ack}");
    let (_dave, ack) = login(addr, 7, "dave-pw").await;
    assert_eq!(ack["errno"], 0, "{ack}");
    let (_, ack) = login(addr, 7, "alice-pw").await;
    assert_eq!(ack["errno"], 1, "a wrong password: {ack}");

    // The counters continue after the highest ids.
    let mut newcomer = WireClient::connect(addr).await;
    newcomer.send(&json!({"msgid":4,"name":"erin","password":"pw"})).await;
    assert_eq!(newcomer.recv().await, json!({"errno":0,"id":8,"msgid":5}));
    assert_eq!(newcomer.login(8, true).await["errno"], 0);
    newcomer.send(&json!({"msgid":8,"groupname":"new","groupdesc":"d"})).await;
    assert_eq!(newcomer.recv().await["groupid"], 4);
}

/// No plaintext password is left anywhere in the adopted database.
fn no_plaintext(db: &ScratchDb) {
    let hashes = db.sql("SELECT password FROM User");
    assert!(hashes.lines().all(|h| h.starts_with("$argon2id$")), "{hashes}");
    for table in db.tables() {
        assert!(
            !table.eq_ignore_ascii_case("orig_User"),
            "the original's User (plaintext passwords) is still there"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn adopted_in_place_its_users_log_in_with_their_old_ids_and_passwords() {
    let db = ScratchDb::new("inplace");
    let original = fill(&db);

    let out = adopt(&db.url(), &[]);
    assert_summary(&out);
    assert!(out.contains("the original's offline rows stay in `orig_OfflineMessage`"), "{out}");
    no_plaintext(&db);
    assert_eq!(
        db.count("orig_OfflineMessage"),
        original.offline.len() as i64,
        "the original's rows, kept to look at"
    );

    // A second run changes nothing.
    let before = db.fingerprint();
    let again = adopt(&db.url(), &[]);
    assert!(again.contains("was adopted already (in place") && again.contains("nothing to do"), "{again}");
    assert_eq!(db.fingerprint(), before, "the second run changed the database");

    let server = serve(&db.url());
    users_carry_on(&server, &original).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn adopted_into_a_copy_the_source_stays_untouched() {
    let source = ScratchDb::new("src");
    let original = fill(&source);
    let target = ScratchDb::new("dst");
    let untouched = source.fingerprint();

    let out = adopt(&source.url(), &["--into", &target.url()]);
    assert_summary(&out);
    assert!(out.contains("the source mysql://chat_test:***@"), "{out}");
    assert_eq!(source.fingerprint(), untouched, "the source changed");
    no_plaintext(&target);

    let before = target.fingerprint();
    let again = adopt(&source.url(), &["--into", &target.url()]);
    assert!(again.contains("nothing to do"), "{again}");
    assert_eq!(target.fingerprint(), before, "the second run changed the copy");
    assert_eq!(source.fingerprint(), untouched, "the second run changed the source");

    // A full copy needs an empty database: adopting into it again from scratch is refused.
    let other = ScratchDb::new("src2");
    fill(&other);
    let out = chat_server(&["adopt-original", "--database-url", &other.url(), "--into", &target.url()], &[])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(text_of(&out).contains("holds an adoption from"), "{}", text_of(&out));

    let server = serve(&target.url());
    users_carry_on(&server, &original).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_pointed_at_the_original_database_stops_and_says_what_to_run() {
    let db = ScratchDb::new("refuse");
    fill(&db);
    let untouched = db.fingerprint();
    let url = db.url();
    for args in
        [vec!["migrate", "--database-url", &url], vec!["--database-url", &url, "--listen", "127.0.0.1:0"]]
    {
        let out = output_within(chat_server(&args, &[]), Duration::from_secs(60));
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{args:?} succeeded:\n{text}");
        let line = text
            .lines()
            .find(|l| l.starts_with("chat-server:"))
            .unwrap_or_else(|| panic!("no error line:\n{text}"));
        for needle in [
            "found the original chat server's tables (User, Friend, AllGroup, GroupUser, OfflineMessage; 5 users)",
            "nothing was changed",
            &format!(
                "chat-server adopt-original --database-url 'mysql://chat_test:***@127.0.0.1:3306/{}'",
                db.name
            ),
        ] {
            assert!(line.contains(needle), "{args:?}: {needle:?} not in {line}");
        }
        assert!(!text.contains("chat_test:chat_test@"), "the password was printed:\n{text}");
    }
    assert_eq!(db.fingerprint(), untouched, "a refused start changed the database");
}

/// Many users at the production hash cost, killed once some chunks are committed.
#[tokio::test(flavor = "multi_thread")]
async fn an_adoption_killed_mid_hashing_finishes_on_the_next_run() {
    const USERS: usize = 160;
    let db = ScratchDb::new("killed");
    db.sql(ORIGINAL_SCHEMA);
    let rows: Vec<String> = (1..=USERS).map(|i| format!("({i}, 'user{i}', 'pw-{i}', 'offline')")).collect();
    db.sql(&format!(
        "INSERT INTO User VALUES {};
         INSERT INTO Friend VALUES (1, 2), (2, 1);
         INSERT INTO OfflineMessage VALUES (2, {});",
        rows.join(", "),
        lit(&chat(1, "user1", 2, "still here", "2001-01-01 00:00:00"))
    ));
    let url = db.url();

    // The production cost (no CHAT_HASH_* override): the node's own default.
    let mut child = chat_server(&["adopt-original", "--database-url", &url], &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn adopt-original");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no users carried within 120 s");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("adopt-original finished ({status}) before it could be interrupted: give it more users");
        }
        // The adoption renames the original's tables and creates ours: a moment may have no
        // `User` at all, so a failed count is "not yet".
        let carried: i64 = if db.tables().iter().any(|t| t == "__diesel_schema_migrations") {
            try_sql_as_root(Some(&db.name), "utf8mb4", "SELECT COUNT(*) FROM `User`")
                .ok()
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
        if carried >= 32 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill adopt-original");
    let _ = child.wait();
    let hashed_before: BTreeMap<String, String> = db
        .sql("SELECT id, password FROM User")
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    assert!(hashed_before.len() < USERS, "all users were carried before the kill");

    // A node will not serve it half done.
    let out = output_within(
        chat_server(&["--database-url", &url, "--listen", "127.0.0.1:0"], &[]),
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "a node served an unfinished adoption:\n{text}");
    assert!(
        text.contains("unfinished") && text.contains("chat-server adopt-original --database-url"),
        "{text}"
    );

    // The next run resumes: the users carried keep their hashes (no hash is hashed again).
    let out = chat_server(&["adopt-original", "--database-url", &url], &[]).output().expect("run");
    let text = text_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("resuming: {} of {USERS} users were carried", hashed_before.len())),
        "{text}"
    );
    assert!(text.contains(&format!("users        {USERS} carried")), "{text}");
    let hashed_after: BTreeMap<String, String> = db
        .sql("SELECT id, password FROM User")
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    for (id, hash) in &hashed_before {
        assert_eq!(hashed_after.get(id), Some(hash), "user {id} was hashed again");
    }
    assert_eq!(hashed_after.len(), USERS);

    // Every user logs in with their old password.
    let server = serve(&url);
    let mut logins = Vec::new();
    for chunk in (1..=USERS).collect::<Vec<_>>().chunks(USERS / 4) {
        let chunk = chunk.to_vec();
        let addr = server.addr;
        logins.push(tokio::spawn(async move {
            for i in chunk {
                let (_, ack) = login(addr, i as i64, &format!("pw-{i}")).await;
                assert_eq!(ack["errno"], 0, "user {i}: {ack}");
                if i == 2 {
                    assert_eq!(strings(&ack["offlinemsg"]).len(), 1, "{ack}");
                }
            }
        }));
    }
    for l in logins {
        l.await.expect("logins");
    }
}
