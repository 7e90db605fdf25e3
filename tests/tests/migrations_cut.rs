//! A migration cut in half (issue 23): DDL is not transactional on MySQL/MariaDB, so a node
//! killed mid-migration leaves some of a migration's tables and no record of it.
//!
//! For every migration of `migrations/mysql` and every step boundary in it (each step begun
//! and not run, or run and not recorded), a database is left as a crash there leaves it, rows
//! go into the tables it has, and a node's migration runs again (the real `chat-server
//! migrate` for one of them): the schema must equal a cleanly migrated one's
//! (information_schema: tables, columns, indexes, constraints, routines, triggers) and every
//! row must still be there. New migrations are covered as they are added. Then the real
//! thing: `chat-server migrate` is killed (SIGKILL) while blocked between two steps, and run
//! again. And a table our migration did not create still stops it, every time.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use chat_model::{Cut, MysqlMigration, mysql_migrations};
use chat_tests::{bin, mysql_url, nonce};

// ---------------------------------------------------------------------------------------
// Databases of our own, as root (the test user cannot create databases)
// ---------------------------------------------------------------------------------------

fn root_client(db: Option<&str>) -> Command {
    let mut cmd = Command::new(chat_tests::mysql_client());
    cmd.args(["--user=root", "--batch", "--skip-column-names", "--raw", "--default-character-set=utf8mb4"]);
    if let Some(db) = db {
        cmd.arg(format!("--database={db}"));
    }
    cmd
}

/// Runs `sql` as root; `Err` with the client's complaint if it fails.
fn try_sql_as_root(db: Option<&str>, sql: &str) -> Result<String, String> {
    let mut child = root_client(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the MySQL client");
    child.stdin.take().expect("stdin").write_all(sql.as_bytes()).expect("write SQL");
    let out = child.wait_with_output().expect("MySQL client");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn sql_as_root(db: Option<&str>, sql: &str) -> String {
    try_sql_as_root(db, sql).unwrap_or_else(|e| {
        panic!(
            "MySQL as root failed (is it running? deploy/db-setup.sh starts it): {e}\nSQL: {}",
            sql.chars().take(300).collect::<String>()
        )
    })
}

/// A database of its own, granted to the test user, dropped on drop.
struct ScratchDb {
    name: String,
}

impl ScratchDb {
    fn new(tag: &str) -> ScratchDb {
        let name = format!("chat_test_migr_{tag}_{:x}", nonce() & 0xff_ffff_ffff);
        sql_as_root(
            None,
            &format!(
                "CREATE DATABASE `{name}` DEFAULT CHARSET utf8mb4;
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
        sql_as_root(Some(&self.name), sql)
    }

    fn lines(&self, sql: &str) -> Vec<String> {
        self.sql(sql).lines().map(str::to_string).collect()
    }

    /// The schema, one sorted line per table, column, index, constraint, routine, trigger.
    fn schema(&self) -> BTreeSet<String> {
        let db = &self.name;
        let queries = [
            format!(
                "SELECT 'table', TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COLLATION FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = '{db}'"
            ),
            format!(
                "SELECT 'column', TABLE_NAME, ORDINAL_POSITION, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, \
                 COALESCE(COLUMN_DEFAULT, 'no default'), EXTRA, COALESCE(COLLATION_NAME, '-') \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}'"
            ),
            format!(
                "SELECT 'index', TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME \
                 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{db}'"
            ),
            format!(
                "SELECT 'foreign key', TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE \
                 FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = '{db}'"
            ),
            format!(
                "SELECT 'foreign column', TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_COLUMN_NAME \
                 FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = '{db}' \
                 AND REFERENCED_TABLE_NAME IS NOT NULL"
            ),
            format!(
                "SELECT 'check', CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = '{db}'"
            ),
            format!(
                "SELECT 'routine', ROUTINE_TYPE, ROUTINE_NAME, REPLACE(ROUTINE_DEFINITION, '\\n', ' ') \
                 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}'"
            ),
            format!(
                "SELECT 'trigger', TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, \
                 REPLACE(ACTION_STATEMENT, '\\n', ' ') FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}'"
            ),
        ];
        let script: String = queries.iter().map(|q| format!("{q};\n")).collect();
        self.lines(&script).into_iter().collect()
    }

    /// The migrations recorded as applied.
    fn versions(&self) -> Vec<String> {
        self.lines("SELECT version FROM __diesel_schema_migrations ORDER BY version")
    }

    /// Our tables (not the bookkeeping ones), with their columns in order.
    fn tables(&self) -> Vec<(String, Vec<String>)> {
        let pairs = self.lines(&format!(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' \
             AND TABLE_NAME NOT LIKE '\\_\\_%' ORDER BY TABLE_NAME, ORDINAL_POSITION",
            self.name
        ));
        let mut tables: Vec<(String, Vec<String>)> = Vec::new();
        for pair in pairs {
            let (table, column) = pair.split_once('\t').expect("table and column");
            match tables.last_mut() {
                Some((t, columns)) if t == table => columns.push(column.to_string()),
                _ => tables.push((table.to_string(), vec![column.to_string()])),
            }
        }
        tables
    }

    /// Every row of the given tables, through the given columns.
    fn rows(&self, tables: &[(String, Vec<String>)]) -> Vec<String> {
        let script: String = tables
            .iter()
            .map(|(table, columns)| {
                let list: Vec<String> = columns.iter().map(|c| format!("`{c}`")).collect();
                let list = list.join(", ");
                format!("SELECT '{table}', {list} FROM `{table}` ORDER BY {list};\n")
            })
            .collect();
        if script.is_empty() { Vec::new() } else { self.lines(&script) }
    }

    /// Rows in every table of ours that exists now (parents first, as the keys need).
    /// Returns how many tables got rows.
    fn seed(&self) -> usize {
        let present: BTreeSet<String> = self.tables().into_iter().map(|(t, _)| t).collect();
        let inserts: Vec<&str> =
            SEEDS.iter().filter(|(table, _)| present.contains(*table)).map(|(_, insert)| *insert).collect();
        if !inserts.is_empty() {
            self.sql(&format!("{};", inserts.join(";\n")));
        }
        inserts.len()
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let _ = try_sql_as_root(None, &format!("DROP DATABASE IF EXISTS `{}`", self.name));
    }
}

/// Rows for the tables our migrations create, parents first. A table missing here is
/// still checked: whatever rows it holds must survive.
const SEEDS: &[(&str, &str)] = &[
    (
        "User",
        "INSERT INTO `User` (id, name, password, state) VALUES \
         (1, 'alice', '$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA', 'online'), \
         (2, '张三', '$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaB', 'offline')",
    ),
    ("Friend", "INSERT INTO `Friend` (userid, friendid) VALUES (1, 2), (2, 1)"),
    ("AllGroup", "INSERT INTO `AllGroup` (id, groupname, groupdesc) VALUES (1, 'rust', 'crabs')"),
    (
        "GroupUser",
        "INSERT INTO `GroupUser` (groupid, userid, grouprole) VALUES (1, 1, 'creator'), (1, 2, 'normal')",
    ),
    (
        "OfflineMessage",
        "INSERT INTO `OfflineMessage` (userid, message, created_at) VALUES (2, '{\"msgid\":5,\"msg\":\"hi\"}', 1)",
    ),
    (
        "Conversation",
        "INSERT INTO `Conversation` (id, userlo, userhi, groupid, lastseq) VALUES \
         (4294967298, 1, 2, NULL, 2), (-1, NULL, NULL, 1, 1)",
    ),
    (
        "Message",
        "INSERT INTO `Message` (conv, seq, sender, sendername, cid, body, created_at) VALUES \
         (4294967298, 1, 1, 'alice', 'c1', 'one', 10), (4294967298, 2, 2, '张三', NULL, 'two', 11), \
         (-1, 1, 1, 'alice', 'c2', 'all', 12)",
    ),
    ("ConvCursor", "INSERT INTO `ConvCursor` (userid, conv, seq) VALUES (2, 4294967298, 1)"),
    (
        "ResumeToken",
        "INSERT INTO `ResumeToken` (token, userid, expires_at) VALUES \
         ('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 1, 99)",
    ),
    (
        "SessionCursor",
        "INSERT INTO `SessionCursor` (token, conv, seq) VALUES \
         ('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 0, 0), \
         ('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 4294967298, 1)",
    ),
];

/// `chat-server migrate` on `url`, within a minute.
fn chat_server_migrate(url: &str) -> Output {
    let mut child = Command::new(bin("chat-server"))
        .args(["migrate", "--database-url", url])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chat-server migrate");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chat-server migrate still ran after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn text_of(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// What differs between two schemas, for the failure message.
fn diff(want: &BTreeSet<String>, got: &BTreeSet<String>) -> String {
    let missing: Vec<&String> = want.difference(got).collect();
    let extra: Vec<&String> = got.difference(want).collect();
    format!("missing: {missing:#?}\nnot in a clean migration: {extra:#?}")
}

/// A cleanly migrated database: the schema every completed one must have.
async fn reference() -> (ScratchDb, BTreeSet<String>, Vec<String>) {
    let db = ScratchDb::new("ref");
    chat_model::migrate(&db.url()).await.unwrap_or_else(|e| {
        panic!("a clean migration failed (is MySQL up, CHAT_TEST_MYSQL_URL right?): {e}")
    });
    let schema = db.schema();
    let versions = db.versions();
    (db, schema, versions)
}

/// The convention of migrations/README.md: a step that cannot run twice is one statement,
/// which MySQL applies whole or not at all; the runner relies on it.
fn check_step_runs_again_or_is_one_statement(db: &ScratchDb, m: &MysqlMigration, k: usize) {
    let step = &m.steps[k];
    // One query, as the runner sends it (a procedure's body keeps its semicolons).
    let again = try_sql_as_root(Some(&db.name), &format!("DELIMITER $$__step__$$\n{step}\n$$__step__$$\n"));
    if again.is_ok() {
        return;
    }
    let statements = step
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .split(';')
        .filter(|s| !s.trim().is_empty())
        .count();
    assert_eq!(
        statements,
        1,
        "{} step {} cannot run twice ({}) and holds {statements} statements: a crash between them \
         would leave it half done. Split it with `-- step` lines or make it safe to run again \
         (migrations/README.md)",
        m.name,
        k + 1,
        again.err().unwrap_or_default().trim()
    );
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

/// Cuts worked on at once (each in a database of its own): the work is the server's DDL.
const CUTS_AT_ONCE: usize = 3;

/// What every cut must end as.
struct Clean {
    schema: BTreeSet<String>,
    versions: Vec<String>,
}

/// One cut: reach it, put rows in, migrate (with the real binary if `by_binary`), compare.
/// Blocking (the MySQL client runs as a process); call it from a blocking thread.
fn complete_a_cut(
    rt: &tokio::runtime::Handle,
    clean: &Clean,
    all: &[MysqlMigration],
    cut: Cut,
    by_binary: bool,
) {
    let m = &all[cut.migration];
    let what = format!(
        "{} cut at step {} of {} ({})",
        m.name,
        cut.step + 1,
        m.steps.len(),
        if cut.applied { "run, not recorded" } else { "begun, not run" }
    );
    let db = ScratchDb::new("cut");
    let url = db.url();
    rt.block_on(chat_model::migrate_until(&url, cut))
        .unwrap_or_else(|e| panic!("{what}: reaching the cut failed: {e}"));
    // As a crash leaves it: the earlier migrations recorded, this one not.
    assert_eq!(db.versions(), clean.versions[..cut.migration], "{what}");
    let everything_ran = cut.applied && cut.step + 1 == m.steps.len() && cut.migration + 1 == all.len();
    if !everything_ran {
        assert_ne!(db.schema(), clean.schema, "{what}: the cut left the full schema");
    }
    if cut.applied {
        check_step_runs_again_or_is_one_statement(&db, m, cut.step);
    }
    db.seed();
    let tables = db.tables();
    let rows = db.rows(&tables);

    if by_binary {
        let out = chat_server_migrate(&url);
        assert!(out.status.success(), "{what}: chat-server migrate failed:\n{}", text_of(&out));
    } else {
        rt.block_on(chat_model::migrate(&url))
            .unwrap_or_else(|e| panic!("{what}: the next start failed: {e}"));
    }

    let got = db.schema();
    assert!(
        got == clean.schema,
        "{what}: the completed schema differs from a clean one\n{}",
        diff(&clean.schema, &got)
    );
    assert_eq!(db.versions(), clean.versions, "{what}");
    assert_eq!(db.sql("SELECT COUNT(*) FROM __chat_migration_steps").trim(), "0", "{what}");
    assert_eq!(db.rows(&tables), rows, "{what}: rows changed");
    // And a node started after that finds nothing to do.
    rt.block_on(chat_model::migrate(&url)).unwrap_or_else(|e| panic!("{what}: a further start failed: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_step_boundary_of_every_migration_is_completed_with_no_row_lost() {
    let migrations = std::sync::Arc::new(mysql_migrations().expect("the embedded migrations"));
    let (_reference, schema, versions) = reference().await;
    assert_eq!(versions.len(), migrations.len(), "a clean migration recorded {versions:?}");
    let clean = std::sync::Arc::new(Clean { schema, versions });

    let mut cuts = Vec::new();
    for (migration, m) in migrations.iter().enumerate() {
        for step in 0..m.steps.len() {
            for applied in [false, true] {
                cuts.push(Cut { migration, step, applied });
            }
        }
    }
    // The real binary completes one cut: the last migration's last step run and unrecorded.
    let by_binary = cuts.last().copied();

    let started = Instant::now();
    for batch in cuts.chunks(CUTS_AT_ONCE) {
        let mut running = Vec::new();
        for &cut in batch {
            let (rt, clean, migrations) =
                (tokio::runtime::Handle::current(), clean.clone(), migrations.clone());
            running.push(tokio::task::spawn_blocking(move || {
                complete_a_cut(&rt, &clean, &migrations, cut, Some(cut) == by_binary)
            }));
        }
        for cut in running {
            if let Err(e) = cut.await {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
    eprintln!("{} cuts completed in {:?}", cuts.len(), started.elapsed());
}

/// A `mariadb` session that holds `LOCK TABLES … WRITE` until dropped.
struct TableLock {
    child: Child,
}

impl TableLock {
    fn take(db: &ScratchDb, table: &str) -> TableLock {
        let mut child = root_client(Some(&db.name))
            .arg("--unbuffered")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run the MySQL client");
        let stdin = child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "LOCK TABLES `{table}` WRITE; SELECT 'locked';").expect("lock");
        stdin.flush().expect("flush");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "locked", "LOCK TABLES failed");
        TableLock { child }
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = writeln!(stdin, "UNLOCK TABLES;");
        }
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_server_migrate_killed_between_two_steps_finishes_on_the_next_run() {
    let (_reference, want, all_versions) = reference().await;
    let db = ScratchDb::new("kill");
    let url = db.url();

    // Start migrating; once the second migration is at its second step, block the next step
    // by locking the journal it must write first, then kill -9 the process while it waits.
    let mut child = Command::new(bin("chat-server"))
        .args(["migrate", "--database-url", &url])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chat-server migrate");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "chat-server migrate recorded no migration within 30 s");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("chat-server migrate finished ({status}) before it could be cut");
        }
        // Past the first migration and into the next one's second step (the tables may not
        // be there yet).
        let progress = try_sql_as_root(
            Some(&db.name),
            "SELECT (SELECT COUNT(*) FROM __diesel_schema_migrations), \
             (SELECT COALESCE(MAX(step), 0) FROM __chat_migration_steps)",
        )
        .unwrap_or_default();
        let numbers: Vec<usize> = progress.split_whitespace().filter_map(|n| n.parse().ok()).collect();
        if numbers.len() == 2 && numbers[0] >= 1 && numbers[1] >= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let lock = TableLock::take(&db, "__chat_migration_steps");
    let waiting = loop {
        assert!(Instant::now() < deadline, "chat-server migrate never waited for the journal");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("chat-server migrate finished ({status}) under the lock");
        }
        let ids = db.lines(&format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '{}' AND STATE LIKE '%metadata lock%'",
            db.name
        ));
        if let Some(id) = ids.first() {
            break id.clone();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().expect("kill -9 chat-server migrate");
    let _ = child.wait();
    // The server would finish the dead client's statement once unlocked: end it too, as a
    // crash of the whole host would. Then the migration is cut right after a step it ran.
    sql_as_root(None, &format!("KILL {waiting}"));
    drop(lock);

    let versions = db.versions();
    assert!(versions.len() < all_versions.len(), "the kill came after the last migration: {versions:?}");
    let journal = db.sql("SELECT version, step, state FROM __chat_migration_steps");
    assert!(journal.contains("running"), "no migration was cut: {journal:?}");
    db.seed();
    let tables = db.tables();
    let rows = db.rows(&tables);

    // What an operator does: nothing but start again.
    let out = chat_server_migrate(&url);
    assert!(out.status.success(), "chat-server migrate after the kill failed:\n{}", text_of(&out));
    let got = db.schema();
    assert!(
        got == want,
        "after the kill (journal {journal:?}) the schema differs from a clean one\n{}",
        diff(&want, &got)
    );
    assert_eq!(db.versions(), all_versions);
    assert_eq!(db.rows(&tables), rows, "rows changed");
    eprintln!(
        "killed with {journal:?} ({} of {} migrations recorded), completed",
        versions.len(),
        all_versions.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_our_migration_did_not_create_still_stops_it() {
    // An older node tried this database once: diesel's table is there, and a `User` that
    // our migration did not create (another application's). Never begun by this runner,
    // the migration must not take it as its own, on the first try or any later one.
    let db = ScratchDb::new("foreign");
    db.sql(
        "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
         run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
         CREATE TABLE `User` (`id` INT PRIMARY KEY, `nick` VARCHAR(10)) ENGINE=InnoDB;
         INSERT INTO `User` VALUES (7, 'seven');",
    );
    for attempt in 1..=2 {
        let err = chat_model::migrate(&db.url()).await.expect_err("migrating over a foreign User must fail");
        let text = err.to_string();
        assert!(
            text.contains("already exists") && text.contains("create_tables"),
            "attempt {attempt}: {text}"
        );
    }
    assert_eq!(db.lines("SELECT id, nick FROM `User`"), ["7\tseven"], "the foreign table was touched");
    assert_eq!(db.tables().len(), 1, "the migration went past its failed step: {:?}", db.tables());
    assert!(db.versions().is_empty());
}
