//! The store contract (`chat_ports::contract`) against SQLite (always) and
//! against MySQL/MariaDB at `CHAT_TEST_MYSQL_URL`; plus what only a real
//! database shows: migrations run twice, utf8mb4 at rest, a dead server fails fast.
//!
//! The MySQL tests fail (never skip) when the server cannot be reached: run
//! `deploy/db-setup.sh` first.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chat_model::{ModelError, schema::users};
use chat_ports::{NewMessage, Store};
use chat_proto::{ConvId, UserId};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

const DEFAULT_MYSQL_URL: &str = "mysql://chat_test:chat_test@127.0.0.1:3306/chat_test";

fn mysql_url() -> String {
    std::env::var("CHAT_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_string())
}

async fn open_mysql() -> Arc<dyn Store> {
    let url = mysql_url();
    match chat_model::open(&url, 8).await {
        Ok(store) => store,
        Err(e) => panic!(
            "the MySQL contract tests need a reachable MySQL/MariaDB test database ({e}). \
             Install and start MariaDB and create the database and user with `deploy/db-setup.sh` \
             (apt-get install -y mariadb-server mariadb-client if it is missing), \
             or point CHAT_TEST_MYSQL_URL at another test database."
        ),
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("chat-model-{label}-{}-{nanos}", std::process::id()));
        TempDir(dir)
    }

    /// A `sqlite://` URL for a file two directories deep (which `open` must create).
    fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.0.join("a/b/chat.db").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_file_store_meets_the_contract() {
    let dir = TempDir::new("contract");
    let store = chat_model::open(&dir.sqlite_url(), 4).await.expect("open sqlite");
    chat_ports::contract::run_all(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_log_meets_the_contract() {
    let dir = TempDir::new("log");
    let db = chat_model::connect(&dir.sqlite_url(), 4).await.expect("open sqlite");
    chat_ports::log_contract::run_all(db.store.as_ref(), db.log.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_log_meets_the_contract() {
    let db = match chat_model::connect(&mysql_url(), 8).await {
        Ok(db) => db,
        Err(e) => panic!("the MySQL log contract needs the test database ({e}); run deploy/db-setup.sh"),
    };
    chat_ports::log_contract::run_all(db.store.as_ref(), db.log.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_control_meets_the_contract() {
    let dir = TempDir::new("control");
    let db = chat_model::connect(&dir.sqlite_url(), 4).await.expect("open sqlite");
    chat_ports::control_contract::run_all(db.store.as_ref(), db.log.as_ref(), db.control.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_control_meets_the_contract() {
    let db = match chat_model::connect(&mysql_url(), 8).await {
        Ok(db) => db,
        Err(e) => panic!("the MySQL control contract needs the test database ({e}); run deploy/db-setup.sh"),
    };
    chat_ports::control_contract::run_all(db.store.as_ref(), db.log.as_ref(), db.control.as_ref()).await;
}

/// The append as it runs on MySQL 8 (`innodb_autoinc_lock_mode = 2`: ids read back).
#[tokio::test(flavor = "multi_thread")]
async fn mysql_log_reading_ids_back_meets_the_contract() {
    let db = match chat_model::connect(&mysql_url(), 8).await {
        Ok(db) => db,
        Err(e) => panic!("the MySQL log contract needs the test database ({e}); run deploy/db-setup.sh"),
    };
    let store = chat_model::MysqlStore::connect(&mysql_url(), 8).await.expect("connect").read_ids_back();
    chat_ports::log_contract::run_all(db.store.as_ref(), &store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_memory_store_meets_the_contract() {
    let store = chat_model::open("sqlite://:memory:", 1).await.expect("open sqlite memory");
    chat_ports::contract::run_all(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_migrations_are_idempotent_and_data_persists() {
    let dir = TempDir::new("reopen");
    let url = dir.sqlite_url();
    let first = chat_model::open(&url, 1).await.expect("first open");
    let id = first.create_user("persisted😀", "hash").await.expect("create_user");
    // A second store on the same file while the first is alive, then a plain migrate.
    let second = chat_model::open(&url, 1).await.expect("second open must find nothing to migrate");
    chat_model::migrate(&url).await.expect("migrate on a migrated database");
    let rec = second.find_user(id).await.expect("find_user").expect("user written by the first store");
    assert_eq!(rec.name, "persisted😀");
    drop((first, second));
    let third = chat_model::open(&url, 1).await.expect("reopen");
    assert!(third.user_exists(id).await.expect("user_exists"), "data did not survive a reopen");
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

fn sqlite_names(conn: &mut diesel::SqliteConnection, sql: &str) -> Vec<String> {
    let rows: Vec<Name> = diesel::RunQueryDsl::load(diesel::sql_query(sql), conn).expect("query SQLite");
    rows.into_iter().map(|r| r.name).collect()
}

/// SQLite's DDL is transactional and diesel runs each SQLite migration in one transaction,
/// so a migration cut half-way (here it fails at its last table, which is in the way; a
/// crash rolls back the same way) leaves none of its tables, and the next run applies it whole.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_migration_cut_half_way_leaves_nothing() {
    use diesel::connection::SimpleConnection;

    let dir = TempDir::new("cut");
    let url = dir.sqlite_url();
    let path = url.strip_prefix("sqlite://").expect("a sqlite URL").to_string();
    std::fs::create_dir_all(std::path::Path::new(&path).parent().expect("a parent")).expect("mkdir");
    let mut conn = diesel::SqliteConnection::establish(&path).expect("open the SQLite file");
    conn.batch_execute("CREATE TABLE \"ResumeToken\" (x INTEGER)").expect("a table in the way");
    let tables = "SELECT name FROM sqlite_master WHERE type IN ('table', 'index') ORDER BY name";

    let err = chat_model::migrate(&url).await.expect_err("the message log's migration must fail half-way");
    assert!(err.to_string().contains("ResumeToken"), "{err}");
    let after_failure = sqlite_names(&mut conn, tables);
    assert!(after_failure.iter().any(|t| t == "User"), "the first migration is whole: {after_failure:?}");
    for gone in ["Conversation", "Message", "ConvCursor", "ix_Conversation_userlo", "ix_Message_created_at"] {
        assert!(
            !after_failure.iter().any(|t| t == gone),
            "{gone} survived the failed migration: {after_failure:?}"
        );
    }
    let versions = "SELECT version AS name FROM __diesel_schema_migrations ORDER BY version";
    assert_eq!(sqlite_names(&mut conn, versions), ["20261126000000"]);

    conn.batch_execute("DROP TABLE \"ResumeToken\"").expect("clear the way");
    chat_model::migrate(&url).await.expect("the migration applies whole once nothing is in its way");
    let complete = sqlite_names(&mut conn, tables);
    for table in ["Conversation", "Message", "ConvCursor", "ResumeToken", "ix_ResumeToken_expires_at"] {
        assert!(complete.iter().any(|t| t == table), "{table} missing: {complete:?}");
    }
    let migrations = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/sqlite");
    let all = std::fs::read_dir(migrations).expect("the SQLite migrations").count();
    assert_eq!(sqlite_names(&mut conn, versions).len(), all, "every migration is applied");
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_concurrent_writers_on_one_file_do_not_fail() {
    let dir = TempDir::new("writers");
    let url = dir.sqlite_url();
    let a = chat_model::open(&url, 1).await.expect("open a");
    let b = chat_model::open(&url, 1).await.expect("open b");
    let mut tasks = Vec::new();
    for (i, store) in [a.clone(), b.clone(), a, b].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for n in 0..25 {
                let id = store.create_user(&format!("w{i}_{n}"), "h").await?;
                store.store_offline(&[(id, "x".into()), (id, "y".into())]).await?;
                store.add_friend(id, id).await?;
            }
            Ok::<_, chat_ports::StoreError>(())
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("a concurrent write failed (database is locked?)");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_store_meets_the_contract() {
    let store = open_mysql().await;
    chat_ports::contract::run_all(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_migrations_are_idempotent() {
    let first = open_mysql().await;
    let second = open_mysql().await;
    chat_model::migrate(&mysql_url()).await.expect("migrate on a migrated database");
    assert!(!first.user_exists(UserId(-1)).await.expect("first store works"));
    assert!(!second.user_exists(UserId(-1)).await.expect("second store works"));
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_text_is_utf8mb4_at_rest() {
    let store = open_mysql().await;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name = format!("😀你好{}", nanos % 1_000_000_000_000);
    let id = store.create_user(&name, "h").await.expect("create_user");

    // Read it back on a connection of our own: the bytes on disk must be the UTF-8
    // of the name (a latin1 or utf8mb3 connection would double-encode or reject it).
    let mut conn = AsyncMysqlConnection::establish(&mysql_url()).await.expect("connect");
    let (hex, chars) = users::table
        .find(id.0)
        .select((diesel::dsl::sql::<Text>("HEX(name)"), diesel::dsl::sql::<BigInt>("CHAR_LENGTH(name)")))
        .first::<(String, i64)>(&mut conn)
        .await
        .expect("read name");
    let want: String = name.bytes().map(|b| format!("{b:02X}")).collect();
    assert_eq!(hex, want, "the name is not stored as UTF-8");
    assert_eq!(chars, name.chars().count() as i64, "the name's characters were not counted as utf8mb4");

    let charset = diesel::select(diesel::dsl::sql::<Text>("@@character_set_connection"))
        .get_result::<String>(&mut conn)
        .await
        .expect("charset");
    assert_eq!(charset, "utf8mb4", "connections must talk utf8mb4");

    let collations = diesel::sql_query(
        "SELECT TABLE_NAME AS name, TABLE_COLLATION AS collation FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('User','Friend','AllGroup','GroupUser','OfflineMessage') \
         ORDER BY TABLE_NAME",
    )
    .load::<TableCollation>(&mut conn)
    .await
    .expect("collations");
    assert_eq!(collations.len(), 5, "the five tables must exist under their original names: {collations:?}");
    for t in &collations {
        assert_eq!(t.collation.as_deref(), Some("utf8mb4_bin"), "table {} has the wrong collation", t.name);
    }
}

#[derive(Debug, QueryableByName)]
struct TableCollation {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    collation: Option<String>,
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_mysql_fails_fast_with_one_line() {
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(15),
        chat_model::open("mysql://chat:hunter2@127.0.0.1:1/chat", 2),
    )
    .await
    .expect("open on a dead port must not hang");
    let elapsed = started.elapsed();
    let err = match result {
        Ok(_) => panic!("open on a dead port succeeded"),
        Err(e) => e,
    };
    assert!(matches!(err, ModelError::Unreachable { .. }), "wrong error: {err:?}");
    let text = err.to_string();
    eprintln!("open on a dead port: {text}");
    assert!(!text.contains('\n'), "the error must be one line: {text:?}");
    assert!(!text.contains("hunter2"), "the error must not show the password: {text:?}");
    assert!(text.contains("127.0.0.1:1"), "the error must say where: {text:?}");
    assert!(elapsed < Duration::from_secs(7), "open took {elapsed:?} to fail");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_urls_are_refused() {
    for url in ["postgres://a:b@h/db", "mysql://a:b@127.0.0.1:3306", "chat.db"] {
        match chat_model::open(url, 1).await {
            Err(ModelError::BadUrl(_)) => {}
            Err(e) => panic!("{url}: wrong error {e}"),
            Ok(_) => panic!("{url}: opened"),
        }
    }
}

/// A TCP proxy in front of the test MySQL, so a test can make "the server" die or hang.
struct Proxy {
    port: u16,
    accept: tokio::task::JoinHandle<()>,
    links: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    /// Forwards to the test MySQL's host and port, or (`blackhole`) accepts and never answers.
    async fn start(blackhole: bool) -> Proxy {
        let target = mysql_host_port();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let links: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let held = links.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if blackhole {
                        let _ = tokio::io::AsyncReadExt::read(&mut client, &mut [0u8; 1]).await;
                        std::future::pending::<()>().await;
                    }
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                if let Ok(mut l) = held.lock() {
                    l.push(link);
                }
            }
        });
        Proxy { port, accept, links }
    }

    /// The test URL with this proxy as host (and no switch to the Unix socket).
    fn url(&self) -> String {
        let url = mysql_url();
        let target = mysql_host_port();
        let url = url.replacen(&target, &format!("127.0.0.1:{}", self.port), 1);
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}prefer_socket=false")
    }

    /// The server "dies": every connection is cut and new ones are refused.
    fn kill(&self) {
        self.accept.abort();
        if let Ok(links) = self.links.lock() {
            links.iter().for_each(|l| l.abort());
        }
    }
}

/// `HOST:PORT` of the test MySQL URL.
fn mysql_host_port() -> String {
    let url = mysql_url();
    let after_at = url.rsplit_once('@').map_or(url.as_str(), |(_, rest)| rest);
    after_at.split('/').next().unwrap_or("127.0.0.1:3306").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_outage_yields_unavailable_quickly() {
    let proxy = Proxy::start(false).await;
    let store = match chat_model::open(&proxy.url(), 2).await {
        Ok(store) => store,
        Err(e) => panic!("cannot open MySQL through a local proxy ({e}); run `deploy/db-setup.sh`"),
    };
    let id = store.create_user(&format!("outage{}", std::process::id()), "h").await;
    let id = id.unwrap_or(UserId(-1));
    assert!(store.user_exists(UserId(-1)).await.is_ok(), "the store works through the proxy");

    proxy.kill();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(15), store.find_user(id)).await;
    let elapsed = started.elapsed();
    match result {
        Ok(Err(chat_ports::StoreError::Unavailable(_))) => {}
        other => panic!("a dead server must give Unavailable, got {other:?}"),
    }
    assert!(elapsed < Duration::from_secs(7), "took {elapsed:?} to notice the dead server");
}

#[tokio::test(flavor = "multi_thread")]
async fn hanging_mysql_times_out() {
    let proxy = Proxy::start(true).await;
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(20), chat_model::open(&proxy.url(), 2)).await;
    let elapsed = started.elapsed();
    match result {
        Ok(Err(ModelError::Unreachable { .. })) => {}
        Ok(Err(e)) => panic!("wrong error for a server that never answers: {e}"),
        Ok(Ok(_)) => panic!("opened a server that never answers"),
        Err(_) => panic!("open hung on a server that never answers"),
    }
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?} to give up on a silent server");
    proxy.kill();
}

/// One-to-one chats from `a` to `b` with these bodies, no cid.
fn chats(a: UserId, b: UserId, name: &str, bodies: impl Iterator<Item = String>) -> Vec<NewMessage> {
    bodies
        .map(|body| NewMessage {
            conv: ConvId::direct(a, b),
            sender: a,
            sender_name: name.into(),
            cid: None,
            body,
            created_at: 1,
        })
        .collect()
}

/// Commits never checkpoint (`wal_autocheckpoint = 0`); the store's own thread copies the
/// WAL into the database file a moment later: the file grows while nothing else writes.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_wal_is_checkpointed_by_the_stores_thread() {
    let dir = TempDir::new("checkpoint");
    let db = chat_model::connect(&dir.sqlite_url(), 1).await.expect("open sqlite");
    let file = dir.0.join("a/b/chat.db");
    let a = db.store.create_user("cp-a", "hash").await.expect("user a");
    let b = db.store.create_user("cp-b", "hash").await.expect("user b");
    let before = std::fs::metadata(&file).expect("db file").len();
    let batch = chats(a, b, "cp-a", (0..500).map(|i| format!("{i:0>200}")));
    db.log.append(&batch).await.expect("append");
    let wal = std::fs::metadata(dir.0.join("a/b/chat.db-wal")).expect("WAL file").len();
    assert!(wal > 100_000, "the append went to the WAL ({wal} bytes)");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = std::fs::metadata(&file).expect("db file").len();
        if now >= before + 100_000 {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint in 5 s: the file stayed at {now} bytes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Under a steady stream of commits the checkpoint thread never catches up with the writer,
/// so the WAL would only start over at a RESTART (past 64 MiB, holding the writer while it
/// copies). The writer finishes a checkpoint the thread began, and the WAL starts over:
/// 96 MiB appended in a steady stream (400 KiB every 10 ms, about 40 MB/s, so the thread
/// ticks many times) leave a WAL file that never reached the 64 MiB of a RESTART.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_wal_starts_over_under_a_steady_stream_of_commits() {
    let dir = TempDir::new("wal-reset");
    let db = chat_model::connect(&dir.sqlite_url(), 1).await.expect("open sqlite");
    let a = db.store.create_user("wr-a", "hash").await.expect("user a");
    let b = db.store.create_user("wr-b", "hash").await.expect("user b");
    let body = "x".repeat(4096);
    let mut written = 0_usize;
    let started = Instant::now();
    while written < 96 << 20 {
        let batch = chats(a, b, "wr-a", std::iter::repeat_n(body.clone(), 100));
        db.log.append(&batch).await.expect("append");
        written += 100 * body.len();
        assert!(started.elapsed() < Duration::from_secs(120), "96 MiB took over two minutes to append");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wal = std::fs::metadata(dir.0.join("a/b/chat.db-wal")).expect("WAL file").len();
    assert!(
        wal < 48 << 20,
        "the WAL grew to {wal} bytes while {written} bytes were appended in {:?}: it never started over",
        started.elapsed()
    );
}

/// The SQLite append keeps conversations' last seqs in memory (`sqlite::LastSeqs`) instead of
/// reading them per batch; a write it did not make must not leave it answering from one that
/// is gone. Two stores on one file (to SQLite, two processes). A group deleted through the
/// other store, then one deleted through this store, are conversations whose next message is
/// refused (their group is gone), not appended after a remembered seq; a conversation the
/// other store appended to goes on from the other store's seq, with no gap and no repeat.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_append_forgets_last_seqs_it_did_not_write() {
    let dir = TempDir::new("lastseqs");
    let url = dir.sqlite_url();
    let a = chat_model::connect(&url, 1).await.expect("open a");
    let b = chat_model::connect(&url, 1).await.expect("open b");
    let owner = a.store.create_user("ls_owner", "h").await.expect("user");
    let other = a.store.create_user("ls_other", "h").await.expect("user");
    let g1 = a.store.create_group(owner, "ls_g1", "").await.expect("group");
    let g2 = a.store.create_group(owner, "ls_g2", "").await.expect("group");
    let direct = ConvId::direct(owner, other);
    let msg = |conv: ConvId, body: &str| NewMessage {
        conv,
        sender: owner,
        sender_name: "ls_owner".into(),
        cid: None,
        body: body.into(),
        created_at: 1,
    };
    let seqs = |done: Vec<chat_ports::Appended>| done.into_iter().map(|m| m.message.seq).collect::<Vec<_>>();

    // Another process's writes: `data_version` moves.
    let batch = [msg(ConvId::group(g1), "1"), msg(direct, "1")];
    assert_eq!(seqs(a.log.append(&batch).await.expect("append")), [1, 1]);
    assert_eq!(seqs(a.log.append(&batch).await.expect("append")), [2, 2]);
    b.control.delete_group(g1).await.expect("delete through the other store");
    assert_eq!(seqs(b.log.append(&[msg(direct, "3")]).await.expect("append through b")), [3]);
    let late = a.log.append(&[msg(ConvId::group(g1), "late")]).await;
    assert!(late.is_err(), "a message to a group deleted by another process was stored: {late:?}");
    assert_eq!(seqs(a.log.append(&[msg(direct, "4")]).await.expect("append")), [4]);
    let rows = a.log.history(direct, chat_proto::HistoryFrom::After(0), 10).await.expect("history");
    assert_eq!(rows.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);

    // This store's own delete: `data_version` does not move.
    let batch = [msg(ConvId::group(g2), "1")];
    assert_eq!(seqs(a.log.append(&batch).await.expect("append")), [1]);
    assert_eq!(seqs(a.log.append(&batch).await.expect("append")), [2]);
    a.control.delete_group(g2).await.expect("delete through this store");
    let late = a.log.append(&[msg(ConvId::group(g2), "late")]).await;
    assert!(late.is_err(), "a message to a group this store deleted was stored: {late:?}");
}
