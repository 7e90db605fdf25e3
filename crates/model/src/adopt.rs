//! Adopting the original C++ server's MySQL database (ORIGINAL.md §(b)).
//!
//! Two jobs. [`check_before_migrating`] recognises a database that holds the original's
//! tables (and none of our migrations), or one whose adoption is unfinished, so that a node
//! stops before migrating over it. [`Adopter`] is the database side of `chat-server
//! adopt-original`: it renames the original's tables aside (in place) or reads another
//! database (`--into`), runs our migrations, inserts users with the hashes its caller
//! computes (chunk by chunk, each committed: a run that is killed resumes), then carries
//! friends, groups, memberships and offline messages in one transaction that also marks the
//! adoption done. It hashes nothing (the server's hasher lives in chat-service) and prints
//! nothing: the caller shows progress and the [`Summary`].
//!
//! What the original stored is read as its application read it: through `SET NAMES gbk`
//! (W12), so a name the original showed as `张三` is carried as `张三`, not as the
//! `寮犱笁` its table holds. docs/MIGRATING.md is the operator's guide.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chat_proto::{ConvId, MAX_DESC_CHARS, MAX_NAME_CHARS, TIME_FORMAT, UserId};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

use crate::schema::{all_groups, conversations, friends, group_users, messages, offline_messages, users};
use crate::{ModelError, MysqlStore, Target, one_line, parse, redact};

diesel::table! {
    /// The adoption's own record: one row, created by `adopt-original` (not by the migrations).
    #[sql_name = "OriginalAdoption"]
    adoption (id) {
        /// Always 1.
        id -> Integer,
        /// `in place`, or the source database's URL (password hidden).
        source -> Varchar,
        /// `started`, `hashing`, `prepared` or `done`.
        phase -> Varchar,
        /// Unix milliseconds.
        started_at -> BigInt,
        /// Unix milliseconds, once done.
        finished_at -> Nullable<BigInt>,
        /// The summary of the run that finished it.
        report -> Nullable<Text>,
    }
}

const MARKER: &str = "OriginalAdoption";
const MARKER_DDL: &str = "CREATE TABLE IF NOT EXISTS `OriginalAdoption` (
    `id` INT NOT NULL,
    `source` VARCHAR(255) NOT NULL,
    `phase` VARCHAR(16) NOT NULL,
    `started_at` BIGINT NOT NULL,
    `finished_at` BIGINT NULL,
    `report` MEDIUMTEXT NULL,
    PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";
const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";
/// Where the original's tables go in an in-place adoption.
const PREFIX: &str = "orig_";
const IN_PLACE: &str = "in place";

const STARTED: &str = "started";
const HASHING: &str = "hashing";
const PREPARED: &str = "prepared";
const DONE: &str = "done";

/// The password column of a user whose original row had none: no password verifies it.
const LOCKED: &str = "!";
/// Rows per INSERT statement.
const ROWS_PER_INSERT: usize = 500;
/// Lines of each kind the summary lists before it only counts.
const LINES_PER_KIND: usize = 50;
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Why an adoption cannot go on. Displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// A URL that is not `mysql://…/DB` (the original ran on MySQL only).
    #[error("adopt-original works on MySQL databases only; {0} is not a mysql://USER:PASS@HOST:PORT/DB URL")]
    NotMysql(String),
    /// Opening a database or running our migrations failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Nothing there looks like the original's database.
    #[error("nothing to adopt in {url}: {found}; nothing was changed")]
    NothingToAdopt {
        /// The database, password hidden.
        url: String,
        /// What it holds.
        found: String,
    },
    /// `--into` names a database that is not empty.
    #[error(
        "the --into database {url} is not empty ({found}); give a new, empty database (CREATE DATABASE …); nothing was changed"
    )]
    IntoNotEmpty {
        /// The database, password hidden.
        url: String,
        /// What it holds.
        found: String,
    },
    /// The target holds an adoption from another source (finished or not).
    #[error("{url} holds an adoption from {started_from} ({phase}), not from {given}; nothing was changed")]
    OtherSource {
        /// The target, password hidden.
        url: String,
        /// The source recorded when it started.
        started_from: String,
        /// Its phase.
        phase: String,
        /// The source given now.
        given: String,
    },
    /// Another `adopt-original` holds the database.
    #[error("another adopt-original is running on {0}")]
    Busy(String),
    /// `finish` was called with users still to hash.
    #[error("{0} users still need their password hashed")]
    UsersPending(usize),
    /// A query failed.
    #[error("{step} failed on {url}: {reason}")]
    Query {
        /// What it was doing.
        step: &'static str,
        /// The database, password hidden.
        url: String,
        /// The database's answer.
        reason: String,
    },
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
}

// ---------------------------------------------------------------------------------------
// Recognising the original's tables
// ---------------------------------------------------------------------------------------

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The tables of the connection's database.
struct Layout {
    tables: Vec<String>,
}

impl Layout {
    async fn read(conn: &mut AsyncMysqlConnection) -> Result<Layout, diesel::result::Error> {
        let rows = diesel::sql_query(
            "SELECT CAST(TABLE_NAME AS CHAR) AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
        )
        .load::<NameRow>(conn)
        .await?;
        Ok(Layout { tables: rows.into_iter().map(|r| r.name).collect() })
    }

    fn has(&self, name: &str) -> bool {
        self.tables.iter().any(|t| t == name)
    }

    /// The table called `name` whatever its case (the original's copies differ: `User`, `user`).
    fn find(&self, name: &str) -> Option<String> {
        self.tables
            .iter()
            .find(|t| *t == name)
            .or_else(|| self.tables.iter().find(|t| t.eq_ignore_ascii_case(name)))
            .cloned()
    }

    fn describe(&self) -> String {
        match self.tables.len() {
            0 => "no tables".to_string(),
            n if n <= 8 => format!("tables {}", self.tables.join(", ")),
            n => format!("{n} tables, e.g. {}", self.tables[..8].join(", ")),
        }
    }
}

/// The original's five tables as one database names them (`orig_` + name in place).
#[derive(Debug, Clone)]
struct Original {
    user: String,
    friend: Option<String>,
    group: Option<String>,
    member: Option<String>,
    offline: Option<String>,
}

impl Original {
    /// The original's tables with `prefix`, if its `User` is there with a `password` column.
    async fn find(
        conn: &mut AsyncMysqlConnection,
        layout: &Layout,
        prefix: &str,
    ) -> Result<Option<Original>, diesel::result::Error> {
        let Some(user) = layout.find(&format!("{prefix}User")) else { return Ok(None) };
        let columns = diesel::sql_query(
            "SELECT CAST(COLUMN_NAME AS CHAR) AS name FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        )
        .bind::<Text, _>(&user)
        .load::<NameRow>(conn)
        .await?;
        let has = |c: &str| columns.iter().any(|r| r.name.eq_ignore_ascii_case(c));
        if !(has("id") && has("name") && has("password")) {
            return Ok(None);
        }
        let table = |n: &str| layout.find(&format!("{prefix}{n}"));
        let found = Original {
            user,
            friend: table("Friend"),
            group: table("AllGroup"),
            member: table("GroupUser"),
            offline: table("OfflineMessage"),
        };
        Ok(found.names().iter().all(|n| safe_identifier(n)).then_some(found))
    }

    fn names(&self) -> Vec<&str> {
        let mut names = vec![self.user.as_str()];
        names.extend(
            [&self.friend, &self.group, &self.member, &self.offline]
                .into_iter()
                .flatten()
                .map(String::as_str),
        );
        names
    }

    async fn count_users(&self, conn: &mut AsyncMysqlConnection) -> Result<i64, diesel::result::Error> {
        let sql = format!("SELECT CAST(COUNT(*) AS SIGNED) AS n FROM `{}`", self.user);
        Ok(diesel::sql_query(sql).get_result::<CountRow>(conn).await?.n)
    }
}

/// Table names are put into SQL text (they cannot be bound): only plain ones are used.
fn safe_identifier(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The marker row, if the table is there.
async fn read_marker(
    conn: &mut AsyncMysqlConnection,
) -> Result<Option<(String, String, Option<i64>)>, diesel::result::Error> {
    adoption::table
        .find(1)
        .select((adoption::source, adoption::phase, adoption::finished_at))
        .first::<(String, String, Option<i64>)>(conn)
        .await
        .optional()
}

/// The command that adopts (or finishes adopting) a database, passwords hidden.
fn adopt_command(url: &str, source: Option<&str>) -> String {
    let redacted = redact(url);
    let mut command = match source {
        None | Some(IN_PLACE) => format!("chat-server adopt-original --database-url '{redacted}'"),
        Some(source) => format!("chat-server adopt-original --database-url '{source}' --into '{redacted}'"),
    };
    if command.contains("***") {
        command.push_str(" (with the password in place of ***)");
    }
    command
}

/// Stops a node (or `chat-server migrate`) before it migrates a database that holds the
/// original's tables and none of ours, or whose adoption is unfinished. Changes nothing.
pub(crate) async fn check_before_migrating(
    conn: &mut AsyncMysqlConnection,
    url: &str,
) -> Result<(), ModelError> {
    let failed = |e: diesel::result::Error| ModelError::unreachable(url, e);
    let layout = Layout::read(conn).await.map_err(failed)?;
    if layout.has(MARKER) {
        return match read_marker(conn).await.map_err(failed)? {
            Some((source, phase, _)) if phase != DONE => Err(ModelError::AdoptionUnfinished {
                phase,
                command: adopt_command(url, Some(source.as_str())),
            }),
            _ => Ok(()),
        };
    }
    if layout.has(MIGRATIONS_TABLE) {
        return Ok(());
    }
    let Some(original) = Original::find(conn, &layout, "").await.map_err(failed)? else { return Ok(()) };
    let users = original.count_users(conn).await.map_err(failed)?;
    Err(ModelError::Original {
        found: format!("{}; {users} users", original.names().join(", ")),
        command: adopt_command(url, None),
    })
}

// ---------------------------------------------------------------------------------------
// Reading the original's rows
// ---------------------------------------------------------------------------------------

/// A text column as the original's application read it: `SET NAMES gbk` turned the UTF-8
/// its clients sent into GBK-decoded characters on the way in, and back on the way out.
/// Selects the column as stored, its GBK bytes, and whether GBK holds it without loss.
fn text_columns(column: &str, alias: &str) -> String {
    format!(
        "CAST(`{column}` AS CHAR) AS {alias}, \
         CAST(CONVERT(`{column}` USING gbk) AS BINARY) AS {alias}_gbk, \
         CAST(CAST(CONVERT(CONVERT(`{column}` USING gbk) USING utf8mb4) AS BINARY) \
              = CAST(CONVERT(`{column}` USING utf8mb4) AS BINARY) AS SIGNED) AS {alias}_rt"
    )
}

/// What the original's clients saw of a text: the GBK bytes of the stored text when they
/// form UTF-8 (what `SET NAMES gbk` handed them), else the text as stored. The flag says
/// whether it differs from the stored text.
fn as_the_original_read(
    stored: Option<String>,
    gbk: Option<Vec<u8>>,
    lossless: Option<i64>,
) -> Option<(String, bool)> {
    let stored = stored?;
    if lossless == Some(1)
        && let Some(bytes) = gbk
        && bytes != stored.as_bytes()
        && let Ok(text) = String::from_utf8(bytes)
    {
        return Some((text, true));
    }
    Some((stored, false))
}

#[derive(QueryableByName)]
struct UserRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Binary>)]
    name_gbk: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    name_rt: Option<i64>,
}

#[derive(QueryableByName)]
struct PasswordRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pw: Option<String>,
    #[diesel(sql_type = Nullable<Binary>)]
    pw_gbk: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pw_rt: Option<i64>,
}

#[derive(QueryableByName)]
struct PairRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    a: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    b: Option<i64>,
}

#[derive(QueryableByName)]
struct GroupRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    gname: Option<String>,
    #[diesel(sql_type = Nullable<Binary>)]
    gname_gbk: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    gname_rt: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    gdesc: Option<String>,
    #[diesel(sql_type = Nullable<Binary>)]
    gdesc_gbk: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    gdesc_rt: Option<i64>,
}

#[derive(QueryableByName)]
struct MemberRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    g: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    u: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    role: Option<String>,
}

#[derive(QueryableByName)]
struct OfflineRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    u: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    msg: Option<String>,
    #[diesel(sql_type = Nullable<Binary>)]
    msg_gbk: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    msg_rt: Option<i64>,
}

fn id32(v: Option<i64>) -> Option<i32> {
    v.and_then(|v| i32::try_from(v).ok()).filter(|&v| v > 0)
}

// ---------------------------------------------------------------------------------------
// Names, frames: what is carried and how (pure, unit-tested below)
// ---------------------------------------------------------------------------------------

/// A name chat-cluster accepts (1–50 characters, not blank, no control characters: the
/// checks REG and CREATE_GROUP make), as close to `name` as possible, with what was wrong.
fn clean_name(name: &str, fallback: &str) -> (String, Vec<&'static str>) {
    let mut why = Vec::new();
    let mut text = name.to_string();
    if text.chars().any(char::is_control) {
        why.push("has control characters");
        text = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        text = text.trim().to_string();
    }
    if text.chars().count() > MAX_NAME_CHARS {
        why.push("is longer than 50 characters");
        text = text.chars().take(MAX_NAME_CHARS).collect::<String>().trim_end().to_string();
    }
    if text.trim().is_empty() {
        why.push("is blank");
        text = fallback.to_string();
    }
    (text, why)
}

/// How MySQL's `utf8mb4_bin` (PAD SPACE) compares names for the unique key: trailing spaces
/// do not count.
fn name_key(name: &str) -> String {
    name.trim_end_matches(' ').to_string()
}

/// `name` made unique among `taken` by a `~id` suffix (cut to fit 50 characters).
fn unique_name(name: &str, id: i64, taken: &HashSet<String>) -> String {
    if !taken.contains(&name_key(name)) {
        return name.to_string();
    }
    let mut n = 0;
    loop {
        let suffix = if n == 0 { format!("~{id}") } else { format!("~{id}.{n}") };
        let room = MAX_NAME_CHARS.saturating_sub(suffix.chars().count());
        let base: String = name.chars().take(room).collect();
        let candidate = format!("{}{suffix}", base.trim_end());
        if !taken.contains(&name_key(&candidate)) {
            return candidate;
        }
        n += 1;
    }
}

/// A one-to-one message for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogRow {
    sender: i32,
    to: i32,
    name: String,
    body: String,
    created_at: i64,
}

/// What becomes of one of the original's offline rows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    /// A one-to-one chat the log can reproduce exactly: into the message log.
    Log(LogRow),
    /// Kept as a row in the original's form for its recipient (delivered as it is), because…
    Legacy(&'static str),
    /// Not carried, because…
    Skip(String),
}

const GROUP_FRAME: &str = "group messages (the original stored one per offline member)";
const NOT_JSON: &str = "not JSON (cut at 500 bytes, or a quote or backslash the original stored unescaped): the original client would abort on it";

/// `YYYY-MM-DD HH:MM:SS` (server local time) as unix milliseconds, if it reads back the same.
fn parse_time(text: &str) -> Option<i64> {
    use chrono::TimeZone;
    let naive = chrono::NaiveDateTime::parse_from_str(text, TIME_FORMAT).ok()?;
    let local = chrono::Local.from_local_datetime(&naive).single()?;
    let ms = local.timestamp_millis();
    let back = chrono::Local.timestamp_millis_opt(ms).single()?.format(TIME_FORMAT).to_string();
    (back == text).then_some(ms)
}

/// Sorts one offline row of `recipient`: into the log when it is a one-to-one chat frame of
/// the original client's exact shape (`id`, `msg`, `msgid` 6, `name`, `time`, `to`: nothing
/// more) between two existing users, addressed to its row's user, newer than `oldest`; kept
/// in the original's form when the original client can show it; skipped otherwise.
fn classify(recipient: i32, text: &str, users: &HashSet<i32>, oldest: i64) -> Fate {
    use serde_json::Value;
    if !users.contains(&recipient) {
        return Fate::Skip(format!("its user {recipient} does not exist"));
    }
    let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(text) else {
        return Fate::Skip(NOT_JSON.to_string());
    };
    let number = |k: &str| frame.get(k).and_then(Value::as_f64);
    let string = |k: &str| frame.get(k).and_then(Value::as_str);
    // What the original client needs not to abort: an integer msgid; for 6 and 10, `time`,
    // `name` and `msg` as strings and an `id`; for 10 a `groupid` too.
    let msgid = number("msgid").map(|m| m.trunc() as i64);
    let showable = matches!(msgid, Some(6 | 10))
        && string("time").is_some()
        && string("name").is_some()
        && string("msg").is_some()
        && number("id").is_some()
        && (msgid == Some(6) || number("groupid").is_some());
    if !showable {
        return Fate::Skip("not a chat frame the original client can show".to_string());
    }
    if msgid == Some(10) {
        return Fate::Legacy(GROUP_FRAME);
    }
    let int = |k: &str| frame.get(k).and_then(Value::as_i64).and_then(|v| i32::try_from(v).ok());
    let (Some(sender), Some(to), Some(name), Some(body), Some(time)) =
        (int("id"), int("to"), string("name"), string("msg"), string("time"))
    else {
        return Fate::Legacy("one-to-one messages whose ids are not plain integers");
    };
    const KEYS: [&str; 6] = ["id", "msg", "msgid", "name", "time", "to"];
    if frame.len() != KEYS.len() || !KEYS.iter().all(|k| frame.contains_key(*k)) {
        return Fate::Legacy("one-to-one messages with keys beyond the original client's");
    }
    if to != recipient {
        return Fate::Legacy("one-to-one messages stored for another user than their `to`");
    }
    if sender == recipient {
        return Fate::Legacy("one-to-one messages to oneself");
    }
    if !users.contains(&sender) {
        return Fate::Legacy("one-to-one messages from a user that does not exist");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Fate::Legacy("one-to-one messages whose sender name is longer than 50 characters");
    }
    let Some(created_at) = parse_time(time) else {
        return Fate::Legacy("one-to-one messages whose time is not the original's YYYY-MM-DD HH:MM:SS");
    };
    if created_at < oldest {
        return Fate::Legacy("one-to-one messages older than retention_days (the log would purge them)");
    }
    Fate::Log(LogRow { sender, to, name: name.to_string(), body: body.to_string(), created_at })
}

// ---------------------------------------------------------------------------------------
// The summary
// ---------------------------------------------------------------------------------------

/// What an adoption carried, changed and left behind.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// `in place`, or the source URL (password hidden).
    pub source: String,
    /// The adopted database (password hidden).
    pub target: String,
    /// Users carried (all of them; names may have changed).
    pub users: u64,
    /// Friend rows carried.
    pub friendships: u64,
    /// Groups carried.
    pub groups: u64,
    /// Group memberships carried.
    pub memberships: u64,
    /// One-to-one offline messages put into the message log.
    pub log_messages: u64,
    /// The conversations they make.
    pub conversations: u64,
    /// Offline rows kept in the original's form, by reason.
    pub legacy: BTreeMap<&'static str, u64>,
    /// Texts read as the original's application read them, differing from the table (W12).
    pub decoded: u64,
    /// The next ids: user, group.
    pub next_ids: (i64, i64),
    /// Changes and rows not carried, by kind, one line each.
    pub lines: BTreeMap<&'static str, Vec<String>>,
    /// Rows not carried, by table.
    pub not_carried: BTreeMap<&'static str, u64>,
    /// A closing remark (where the original's rows stay).
    pub remarks: Vec<String>,
}

const CHANGED: &str = "changed";
const NOT_CARRIED: &str = "not carried";

impl Summary {
    fn note(&mut self, kind: &'static str, line: String) {
        self.lines.entry(kind).or_default().push(line);
    }

    fn skip(&mut self, table: &'static str, line: String) {
        *self.not_carried.entry(table).or_default() += 1;
        self.note(NOT_CARRIED, line);
    }

    /// The lines listing what changed and what was not carried.
    pub fn details(&self) -> impl Iterator<Item = (&'static str, &Vec<String>)> {
        self.lines.iter().map(|(k, v)| (*k, v))
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = |table: &str| match self.not_carried.get(table) {
            Some(n) => format!(", {n} not carried"),
            None => String::new(),
        };
        let source =
            if self.source == IN_PLACE { "in place".to_string() } else { format!("from {}", self.source) };
        writeln!(f, "adopted the original's database into {} ({source})", self.target)?;
        let renamed =
            self.lines.get(CHANGED).map_or(0, |l| l.iter().filter(|l| l.starts_with("user ")).count());
        writeln!(
            f,
            "  users        {} carried with their ids{}",
            self.users,
            if renamed > 0 { format!(" ({renamed} changed, see below)") } else { String::new() }
        )?;
        writeln!(f, "  friendships  {} carried{}", self.friendships, not("friend"))?;
        writeln!(f, "  groups       {} carried{}", self.groups, not("group"))?;
        writeln!(f, "  memberships  {} carried{}", self.memberships, not("membership"))?;
        writeln!(
            f,
            "  messages     {} one-to-one into the message log ({} conversation{}), {} kept in the original's form{}",
            self.log_messages,
            self.conversations,
            if self.conversations == 1 { "" } else { "s" },
            self.legacy.values().sum::<u64>(),
            not("message")
        )?;
        for (why, n) in &self.legacy {
            writeln!(f, "                 {n} {why}")?;
        }
        if self.decoded > 0 {
            writeln!(
                f,
                "  text         {} names, passwords or messages read through GBK as the original did (not as its table shows them)",
                self.decoded
            )?;
        }
        writeln!(f, "  next ids     user {}, group {}", self.next_ids.0, self.next_ids.1)?;
        for (kind, lines) in &self.lines {
            writeln!(f, "{kind}:")?;
            for line in lines.iter().take(LINES_PER_KIND) {
                writeln!(f, "  {line}")?;
            }
            if lines.len() > LINES_PER_KIND {
                writeln!(f, "  … and {} more", lines.len() - LINES_PER_KIND)?;
            }
        }
        for remark in &self.remarks {
            writeln!(f, "{remark}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The adopter
// ---------------------------------------------------------------------------------------

/// One user still to be carried: the caller hashes `password` and hands the hash to
/// [`Adopter::store_users`]. The plaintext lives only in this value.
pub struct Secret {
    /// The user's id (kept).
    pub id: i32,
    /// The password as the original compared it.
    pub password: String,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret").field("id", &self.id).finish_non_exhaustive()
    }
}

/// What [`Adopter::start`] found.
pub enum Start {
    /// The adoption finished earlier; nothing was changed (except leftover tables of the
    /// original that held passwords, if a run was killed right after finishing).
    Done {
        /// `in place` or the source URL.
        source: String,
        /// Unix milliseconds.
        finished_at: i64,
        /// Leftover tables dropped now.
        dropped: Vec<String>,
    },
    /// Ready to hash and carry.
    Ready(Box<Adopter>),
}

/// The database side of one `adopt-original` run. See the module docs.
pub struct Adopter {
    target_url: String,
    source_label: String,
    in_place: bool,
    /// Holds the adoption's named lock while it lives.
    target: AsyncMysqlConnection,
    source: AsyncMysqlConnection,
    tables: Original,
    /// Every user of the source, by id, with the name it gets.
    names: BTreeMap<i32, String>,
    /// Users not yet in the target, ascending.
    pending: Vec<i32>,
    /// Users already in the target when this run started.
    carried_before: usize,
    summary: Summary,
    started: Instant,
}

fn query_error<'a>(step: &'static str, url: &'a str) -> impl Fn(diesel::result::Error) -> AdoptError + 'a {
    move |e| AdoptError::Query { step, url: redact(url), reason: one_line(e) }
}

async fn establish(url: &str) -> Result<AsyncMysqlConnection, AdoptError> {
    match parse(url) {
        Ok(Target::Mysql(_)) => {}
        _ => return Err(AdoptError::NotMysql(redact(url))),
    }
    let conn = tokio::time::timeout(CONNECT_WAIT, AsyncMysqlConnection::establish(url))
        .await
        .map_err(|_| ModelError::unreachable(url, format!("no connection within {CONNECT_WAIT:?}")))?
        .map_err(|e| ModelError::unreachable(url, e))?;
    Ok(conn)
}

/// Takes the database's adoption lock on `conn` (held until it closes).
async fn lock(conn: &mut AsyncMysqlConnection, url: &str) -> Result<(), AdoptError> {
    use diesel::sql_types::Integer;
    let got = diesel::select(diesel::dsl::sql::<Nullable<Integer>>(
        "GET_LOCK(CONCAT('chat_cluster_adopt:', DATABASE()), 0)",
    ))
    .get_result::<Option<i32>>(conn)
    .await
    .map_err(query_error("taking the adoption lock", url))?;
    if got == Some(1) { Ok(()) } else { Err(AdoptError::Busy(redact(url))) }
}

impl Adopter {
    /// Opens an adoption of the original's database at `url`, in place, or into the empty
    /// database `into`; resumes one that was interrupted. In place, the original's tables are
    /// renamed to `orig_*` (in one statement) before our migrations create ours.
    pub async fn start(url: &str, into: Option<&str>) -> Result<Start, AdoptError> {
        let target_url = into.unwrap_or(url).to_string();
        let in_place = into.is_none();
        let source_label = if in_place { IN_PLACE.to_string() } else { redact(url) };
        let mut target = establish(&target_url).await?;
        lock(&mut target, &target_url).await?;
        let q = |step| query_error(step, &target_url);
        let layout = Layout::read(&mut target).await.map_err(q("reading the tables"))?;

        if layout.has(MARKER) {
            match read_marker(&mut target).await.map_err(q("reading the adoption record"))? {
                Some((source, phase, finished_at)) => {
                    if source != source_label {
                        return Err(AdoptError::OtherSource {
                            url: redact(&target_url),
                            started_from: source,
                            phase,
                            given: source_label,
                        });
                    }
                    if phase == DONE {
                        let dropped = if in_place {
                            drop_leftovers(&mut target, &target_url).await?
                        } else {
                            Vec::new()
                        };
                        return Ok(Start::Done {
                            source,
                            finished_at: finished_at.unwrap_or_default(),
                            dropped,
                        });
                    }
                }
                None => write_marker(&mut target, &target_url, &source_label).await?,
            }
        } else if in_place {
            if Original::find(&mut target, &layout, "").await.map_err(q("reading the tables"))?.is_none() {
                let found = if layout.has(MIGRATIONS_TABLE) {
                    "it holds chat-cluster's schema already".to_string()
                } else {
                    format!("no table `User` with a `password` column ({})", layout.describe())
                };
                return Err(AdoptError::NothingToAdopt { url: redact(&target_url), found });
            }
            write_marker(&mut target, &target_url, &source_label).await?;
        } else {
            if !layout.tables.is_empty() {
                return Err(AdoptError::IntoNotEmpty { url: redact(&target_url), found: layout.describe() });
            }
            write_marker(&mut target, &target_url, &source_label).await?;
        }

        // The source: the renamed tables (in place) or the other database's.
        let mut source = establish(url).await?;
        let tables = if in_place {
            let layout = Layout::read(&mut target).await.map_err(q("reading the tables"))?;
            let renamed =
                Original::find(&mut target, &layout, PREFIX).await.map_err(q("reading the tables"))?;
            match renamed {
                Some(tables) => tables,
                None => {
                    let Some(original) =
                        Original::find(&mut target, &layout, "").await.map_err(q("reading the tables"))?
                    else {
                        return Err(AdoptError::NothingToAdopt {
                            url: redact(&target_url),
                            found: format!(
                                "neither the original's tables nor orig_* ({})",
                                layout.describe()
                            ),
                        });
                    };
                    rename_aside(&mut target, &target_url, &original).await?
                }
            }
        } else {
            let layout = Layout::read(&mut source).await.map_err(query_error("reading the tables", url))?;
            match Original::find(&mut source, &layout, "")
                .await
                .map_err(query_error("reading the tables", url))?
            {
                Some(tables) => tables,
                None => {
                    return Err(AdoptError::NothingToAdopt {
                        url: redact(url),
                        found: format!("no table `User` with a `password` column ({})", layout.describe()),
                    });
                }
            }
        };

        // Our schema (the same embedded migrations a node runs, under the same lock).
        let store = MysqlStore::connect(&target_url, 1).await?;
        store.run_migrations().await?;
        drop(store);
        set_phase(&mut target, &target_url, HASHING).await?;

        let mut adopter = Adopter {
            summary: Summary {
                source: source_label.clone(),
                target: redact(&target_url),
                ..Summary::default()
            },
            target_url,
            source_label,
            in_place,
            target,
            source,
            tables,
            names: BTreeMap::new(),
            pending: Vec::new(),
            carried_before: 0,
            started: Instant::now(),
        };
        adopter.plan_users().await?;
        Ok(Start::Ready(Box::new(adopter)))
    }

    /// Decides every user's name and which users still need carrying. Users already in the
    /// target keep the name they got; of the others, names chat-cluster accepts as they are
    /// claim first, then cleaned ones (a `~id` suffix where one is taken), so the outcome
    /// does not depend on where an earlier run was interrupted.
    async fn plan_users(&mut self) -> Result<(), AdoptError> {
        let sql = format!(
            "SELECT CAST(id AS SIGNED) AS id, {} FROM `{}` ORDER BY id",
            text_columns("name", "name"),
            self.tables.user
        );
        let rows = diesel::sql_query(sql)
            .load::<UserRow>(&mut self.source)
            .await
            .map_err(query_error("reading the original's users", &self.target_url))?;
        let present: Vec<(i32, String)> = users::table
            .select((users::id, users::name))
            .load(&mut self.target)
            .await
            .map_err(query_error("reading the adopted users", &self.target_url))?;
        let present_ids: HashSet<i32> = present.iter().map(|(id, _)| *id).collect();
        let mut taken: HashSet<String> = present.iter().map(|(_, n)| name_key(n)).collect();
        self.names = present.into_iter().collect();
        self.carried_before = self.names.len();

        let mut cleaned = Vec::new();
        for row in rows {
            let Some(id) = id32(row.id) else {
                self.summary.skip("user", format!("user row with id {:?}: not a positive INT id", row.id));
                continue;
            };
            if present_ids.contains(&id) {
                continue;
            }
            let (name, decoded) =
                as_the_original_read(row.name, row.name_gbk, row.name_rt).unwrap_or_default();
            if decoded {
                self.summary.decoded += 1;
            }
            let (clean, why) = clean_name(&name, &format!("user{id}"));
            if why.is_empty() && !taken.contains(&name_key(&clean)) {
                taken.insert(name_key(&clean));
                self.names.insert(id, clean);
            } else {
                cleaned.push((id, name, clean, why));
            }
            self.pending.push(id);
        }
        for (id, original, clean, mut why) in cleaned {
            let unique = unique_name(&clean, i64::from(id), &taken);
            if unique != clean {
                why.push("is taken by another user once cleaned");
            }
            taken.insert(name_key(&unique));
            self.summary
                .note(CHANGED, format!("user {id}: name {original:?} {}; now {unique:?}", why.join(", ")));
            self.names.insert(id, unique);
        }
        self.pending.sort_unstable();
        Ok(())
    }

    /// Users in the source.
    pub fn users_total(&self) -> usize {
        self.names.len()
    }

    /// Users already carried (with their hash) by an earlier, interrupted run.
    pub fn users_carried_before(&self) -> usize {
        self.carried_before
    }

    /// Users still to hash.
    pub fn users_pending(&self) -> usize {
        self.pending.len()
    }

    /// The next `max` users still to carry, with their passwords as the original compared
    /// them. A user whose row has no password is carried at once, locked (no password
    /// verifies), and not returned.
    pub async fn next_secrets(&mut self, max: usize) -> Result<Vec<Secret>, AdoptError> {
        let chunk: Vec<i32> = self.pending.iter().take(max.max(1)).copied().collect();
        let (Some(&lo), Some(&hi)) = (chunk.as_slice().first(), chunk.as_slice().last()) else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT CAST(id AS SIGNED) AS id, {} FROM `{}` WHERE id BETWEEN ? AND ? ORDER BY id",
            text_columns("password", "pw"),
            self.tables.user
        );
        let rows = diesel::sql_query(sql)
            .bind::<BigInt, _>(i64::from(lo))
            .bind::<BigInt, _>(i64::from(hi))
            .load::<PasswordRow>(&mut self.source)
            .await
            .map_err(query_error("reading the original's passwords", &self.target_url))?;
        let wanted: HashSet<i32> = chunk.iter().copied().collect();
        let mut secrets = Vec::with_capacity(chunk.len());
        let mut locked = Vec::new();
        for row in rows {
            let Some(id) = id32(row.id).filter(|id| wanted.contains(id)) else { continue };
            match as_the_original_read(row.pw, row.pw_gbk, row.pw_rt) {
                Some((password, decoded)) => {
                    if decoded {
                        self.summary.decoded += 1;
                    }
                    secrets.push(Secret { id, password });
                }
                None => locked.push((id, LOCKED.to_string())),
            }
        }
        if !locked.is_empty() {
            for (id, _) in &locked {
                self.summary.note(
                    CHANGED,
                    format!("user {id}: has no password (NULL); carried locked: no password logs in"),
                );
            }
            self.store_users(&locked).await?;
        }
        // A user gone from the source since the plan (the original never deletes users).
        let found: HashSet<i32> = secrets.iter().map(|s| s.id).chain(locked.iter().map(|l| l.0)).collect();
        let vanished: Vec<i32> = chunk.iter().copied().filter(|id| !found.contains(id)).collect();
        if !vanished.is_empty() {
            self.pending.retain(|id| !vanished.contains(id));
            for id in vanished {
                self.names.remove(&id);
                self.summary.skip("user", format!("user {id}: gone from the source during the adoption"));
            }
        }
        Ok(secrets)
    }

    /// Inserts users with their password hashes (PHC strings), keeping their ids, in one
    /// statement: committed, so a later run does not hash them again.
    pub async fn store_users(&mut self, hashed: &[(i32, String)]) -> Result<(), AdoptError> {
        if hashed.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = hashed
            .iter()
            .map(|(id, hash)| {
                let name = self.names.get(id).map_or("", String::as_str);
                (
                    users::id.eq(*id),
                    users::name.eq(name),
                    users::password.eq(hash.as_str()),
                    users::state.eq("offline"),
                )
            })
            .collect();
        diesel::insert_into(users::table)
            .values(rows)
            .execute(&mut self.target)
            .await
            .map_err(query_error("inserting users", &self.target_url))?;
        let done: HashSet<i32> = hashed.iter().map(|(id, _)| *id).collect();
        self.pending.retain(|id| !done.contains(id));
        Ok(())
    }

    /// Stops after the users (`--prepare`): a later run carries users added since, and the rest.
    pub async fn prepared(&mut self) -> Result<(), AdoptError> {
        set_phase(&mut self.target, &self.target_url, PREPARED).await
    }

    /// Carries friends, groups, memberships and offline messages in one transaction that
    /// also marks the adoption done; then sets the counters after the highest ids and, in
    /// place, drops the original's tables (keeping `orig_OfflineMessage` if some of its rows
    /// were not carried). `retention` is the node's `retention_days`: older one-to-one
    /// messages stay in the original's form rather than enter a log that would purge them.
    pub async fn finish(&mut self, retention: Duration) -> Result<Summary, AdoptError> {
        if !self.pending.is_empty() {
            return Err(AdoptError::UsersPending(self.pending.len()));
        }
        let now = now_ms();
        let oldest = now.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        let url = self.target_url.clone();
        let user_ids: HashSet<i32> = users::table
            .select(users::id)
            .load::<i32>(&mut self.target)
            .await
            .map_err(query_error("reading the adopted users", &url))?
            .into_iter()
            .collect();
        self.summary.users = user_ids.len() as u64;

        let friend_rows = self.carry_friends(&user_ids).await?;
        let (group_rows, group_ids) = self.carry_groups().await?;
        let member_rows = self.carry_members(&user_ids, &group_ids).await?;
        let (log_rows, legacy_rows, all_offline_carried) = self.carry_offline(&user_ids, oldest).await?;

        // Conversations and seqs, in table order.
        let mut lastseq: BTreeMap<i64, i64> = BTreeMap::new();
        let mut message_rows = Vec::with_capacity(log_rows.len());
        for m in &log_rows {
            let conv = ConvId::direct(UserId(m.sender), UserId(m.to)).0;
            let seq = lastseq.entry(conv).or_default();
            *seq += 1;
            message_rows.push((conv, *seq, m));
        }
        self.summary.log_messages = log_rows.len() as u64;
        self.summary.conversations = lastseq.len() as u64;
        self.summary.next_ids = (
            i64::from(user_ids.iter().copied().max().unwrap_or(0)) + 1,
            i64::from(group_ids.iter().copied().max().unwrap_or(0)) + 1,
        );
        if self.in_place
            && !all_offline_carried
            && let Some(table) = &self.tables.offline
        {
            self.summary.remarks.push(format!(
                "the original's offline rows stay in `{table}` (some were not carried); drop it once you no longer need them"
            ));
        }
        if !self.in_place {
            self.summary.remarks.push(format!(
                "the source {} is untouched and still holds the plaintext passwords: drop it once you no longer need it to roll back",
                self.source_label
            ));
        }
        let mut summary = self.summary.clone();
        let report = summary.to_string();

        let write = query_error("carrying friends, groups and messages", &url);
        self.target
            .transaction::<_, diesel::result::Error, _>(async |c| {
                for chunk in group_rows.chunks(ROWS_PER_INSERT) {
                    let rows: Vec<_> = chunk
                        .iter()
                        .map(|(id, name, desc)| {
                            (
                                all_groups::id.eq(*id),
                                all_groups::groupname.eq(name.as_str()),
                                all_groups::groupdesc.eq(desc.as_str()),
                            )
                        })
                        .collect();
                    diesel::insert_into(all_groups::table).values(rows).execute(c).await?;
                }
                for chunk in friend_rows.chunks(ROWS_PER_INSERT) {
                    let rows: Vec<_> = chunk
                        .iter()
                        .map(|&(a, b)| (friends::userid.eq(a), friends::friendid.eq(b)))
                        .collect();
                    diesel::insert_into(friends::table).values(rows).execute(c).await?;
                }
                for chunk in member_rows.chunks(ROWS_PER_INSERT) {
                    let rows: Vec<_> = chunk
                        .iter()
                        .map(|(g, u, role)| {
                            (
                                group_users::groupid.eq(*g),
                                group_users::userid.eq(*u),
                                group_users::grouprole.eq(*role),
                            )
                        })
                        .collect();
                    diesel::insert_into(group_users::table).values(rows).execute(c).await?;
                }
                let convs: Vec<(i64, i64)> = lastseq.iter().map(|(&c, &s)| (c, s)).collect();
                for chunk in convs.chunks(ROWS_PER_INSERT) {
                    let rows: Vec<_> = chunk
                        .iter()
                        .map(|&(conv, last)| {
                            let (lo, hi) = ConvId(conv)
                                .users()
                                .map_or((None, None), |(lo, hi)| (Some(lo.0), Some(hi.0)));
                            (
                                conversations::id.eq(conv),
                                conversations::userlo.eq(lo),
                                conversations::userhi.eq(hi),
                                conversations::groupid.eq(None::<i32>),
                                conversations::lastseq.eq(last),
                            )
                        })
                        .collect();
                    diesel::insert_into(conversations::table).values(rows).execute(c).await?;
                }
                for chunk in message_rows.chunks(ROWS_PER_INSERT) {
                    let rows: Vec<_> = chunk
                        .iter()
                        .map(|&(conv, seq, m)| {
                            (
                                messages::conv.eq(conv),
                                messages::seq.eq(seq),
                                messages::sender.eq(m.sender),
                                messages::sendername.eq(m.name.as_str()),
                                messages::cid.eq(None::<&str>),
                                messages::body.eq(m.body.as_str()),
                                messages::created_at.eq(m.created_at),
                            )
                        })
                        .collect();
                    diesel::insert_into(messages::table).values(rows).execute(c).await?;
                }
                for chunk in legacy_rows.chunks(ROWS_PER_INSERT) {
                    let rows: Vec<_> = chunk
                        .iter()
                        .map(|(u, text)| {
                            (
                                offline_messages::userid.eq(*u),
                                offline_messages::message.eq(text.as_str()),
                                offline_messages::created_at.eq(now),
                            )
                        })
                        .collect();
                    diesel::insert_into(offline_messages::table).values(rows).execute(c).await?;
                }
                diesel::update(adoption::table.find(1))
                    .set((
                        adoption::phase.eq(DONE),
                        adoption::finished_at.eq(Some(now)),
                        adoption::report.eq(Some(report.as_str())),
                    ))
                    .execute(c)
                    .await?;
                Ok(())
            })
            .await
            .map_err(write)?;

        // InnoDB moved the counters past the ids inserted; say so explicitly all the same.
        for (table, next) in [("User", summary.next_ids.0), ("AllGroup", summary.next_ids.1)] {
            diesel::sql_query(format!("ALTER TABLE `{table}` AUTO_INCREMENT = {next}"))
                .execute(&mut self.target)
                .await
                .map_err(query_error("setting the id counters", &url))?;
        }
        if self.in_place {
            drop_leftovers(&mut self.target, &url).await?;
            if all_offline_carried && let Some(table) = &self.tables.offline {
                diesel::sql_query(format!("DROP TABLE IF EXISTS `{table}`"))
                    .execute(&mut self.target)
                    .await
                    .map_err(query_error("dropping the original's tables", &url))?;
            }
        }
        summary.remarks.push(format!("took {:.1} s", self.started.elapsed().as_secs_f64()));
        Ok(summary)
    }

    /// Friend rows between existing users, once each, not to oneself.
    async fn carry_friends(&mut self, users: &HashSet<i32>) -> Result<Vec<(i32, i32)>, AdoptError> {
        let Some(table) = self.tables.friend.clone() else { return Ok(Vec::new()) };
        let sql = format!("SELECT CAST(userid AS SIGNED) AS a, CAST(friendid AS SIGNED) AS b FROM `{table}`");
        let rows = diesel::sql_query(sql)
            .load::<PairRow>(&mut self.source)
            .await
            .map_err(query_error("reading the original's friends", &self.target_url))?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for row in rows {
            let show = |v: Option<i64>| v.map_or("NULL".to_string(), |v| v.to_string());
            let label = format!("friend row {} → {}", show(row.a), show(row.b));
            let (Some(a), Some(b)) = (id32(row.a), id32(row.b)) else {
                self.summary.skip("friend", format!("{label}: not a pair of user ids"));
                continue;
            };
            if let Some(missing) = [a, b].into_iter().find(|u| !users.contains(u)) {
                self.summary.skip("friend", format!("{label}: user {missing} does not exist"));
            } else if a == b {
                self.summary
                    .skip("friend", format!("{label}: a friendship with oneself (chat-cluster refuses it)"));
            } else if !seen.insert((a, b)) {
                self.summary.skip("friend", format!("{label}: a duplicate"));
            } else {
                out.push((a, b));
            }
        }
        self.summary.friendships = out.len() as u64;
        Ok(out)
    }

    /// Every group, with a name chat-cluster accepts and a description of at most 200
    /// characters (NULL becomes empty).
    async fn carry_groups(&mut self) -> Result<(Vec<(i32, String, String)>, HashSet<i32>), AdoptError> {
        let Some(table) = self.tables.group.clone() else { return Ok((Vec::new(), HashSet::new())) };
        let sql = format!(
            "SELECT CAST(id AS SIGNED) AS id, {}, {} FROM `{table}` ORDER BY id",
            text_columns("groupname", "gname"),
            text_columns("groupdesc", "gdesc")
        );
        let rows = diesel::sql_query(sql)
            .load::<GroupRow>(&mut self.source)
            .await
            .map_err(query_error("reading the original's groups", &self.target_url))?;
        let mut read = Vec::new();
        for row in rows {
            let Some(id) = id32(row.id) else {
                self.summary.skip("group", format!("group row with id {:?}: not a positive INT id", row.id));
                continue;
            };
            let (name, d1) = as_the_original_read(row.gname, row.gname_gbk, row.gname_rt).unwrap_or_default();
            let (desc, d2) = as_the_original_read(row.gdesc, row.gdesc_gbk, row.gdesc_rt).unwrap_or_default();
            self.summary.decoded += u64::from(d1) + u64::from(d2);
            read.push((id, name, desc));
        }
        // Names accepted as they are claim first, as for users.
        let mut taken = HashSet::new();
        let mut names: HashMap<i32, String> = HashMap::new();
        let mut cleaned = Vec::new();
        for (id, name, _) in &read {
            let (clean, why) = clean_name(name, &format!("group{id}"));
            if why.is_empty() && taken.insert(name_key(&clean)) {
                names.insert(*id, clean);
            } else {
                cleaned.push((*id, name.clone(), clean, why));
            }
        }
        for (id, original, clean, mut why) in cleaned {
            let unique = unique_name(&clean, i64::from(id), &taken);
            if unique != clean {
                why.push("is taken by another group once cleaned");
            }
            taken.insert(name_key(&unique));
            self.summary
                .note(CHANGED, format!("group {id}: name {original:?} {}; now {unique:?}", why.join(", ")));
            names.insert(id, unique);
        }
        let mut out = Vec::with_capacity(read.len());
        for (id, _, mut desc) in read {
            if desc.chars().count() > MAX_DESC_CHARS {
                desc = desc.chars().take(MAX_DESC_CHARS).collect();
                self.summary
                    .note(CHANGED, format!("group {id}: description longer than 200 characters; cut"));
            }
            out.push((id, names.remove(&id).unwrap_or_default(), desc));
        }
        let ids = out.iter().map(|g| g.0).collect();
        self.summary.groups = out.len() as u64;
        Ok((out, ids))
    }

    /// Memberships of existing users in existing groups, once each; a role that is neither
    /// `creator` nor `normal` (NULL: the original's default) becomes `normal`.
    async fn carry_members(
        &mut self,
        users: &HashSet<i32>,
        groups: &HashSet<i32>,
    ) -> Result<Vec<(i32, i32, &'static str)>, AdoptError> {
        let Some(table) = self.tables.member.clone() else { return Ok(Vec::new()) };
        let sql = format!(
            "SELECT CAST(groupid AS SIGNED) AS g, CAST(userid AS SIGNED) AS u, CAST(grouprole AS CHAR) AS role FROM `{table}`"
        );
        let rows = diesel::sql_query(sql)
            .load::<MemberRow>(&mut self.source)
            .await
            .map_err(query_error("reading the original's group members", &self.target_url))?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for row in rows {
            let show = |v: Option<i64>| v.map_or("NULL".to_string(), |v| v.to_string());
            let label = format!("member row group {} user {}", show(row.g), show(row.u));
            let (Some(g), Some(u)) = (id32(row.g), id32(row.u)) else {
                self.summary.skip("membership", format!("{label}: not a pair of ids"));
                continue;
            };
            if !groups.contains(&g) {
                self.summary.skip("membership", format!("{label}: group {g} does not exist"));
            } else if !users.contains(&u) {
                self.summary.skip("membership", format!("{label}: user {u} does not exist"));
            } else if !seen.insert((g, u)) {
                self.summary.skip("membership", format!("{label}: a duplicate"));
            } else {
                let role = match row.role.as_deref() {
                    Some("creator") => "creator",
                    Some("normal") | None => "normal",
                    Some(other) => {
                        self.summary.note(
                            CHANGED,
                            format!("{label}: role {other:?} is neither creator nor normal; now normal"),
                        );
                        "normal"
                    }
                };
                out.push((g, u, role));
            }
        }
        self.summary.memberships = out.len() as u64;
        Ok(out)
    }

    /// The original's offline rows in table order (it has no order column; InnoDB scans a
    /// keyless table in insertion order): one-to-one chats into the log, group chats and
    /// odd but showable frames kept in the original's form, the rest skipped. Also says
    /// whether every row was carried one way or the other.
    async fn carry_offline(
        &mut self,
        users: &HashSet<i32>,
        oldest: i64,
    ) -> Result<(Vec<LogRow>, Vec<(i32, String)>, bool), AdoptError> {
        let Some(table) = self.tables.offline.clone() else { return Ok((Vec::new(), Vec::new(), true)) };
        let sql =
            format!("SELECT CAST(userid AS SIGNED) AS u, {} FROM `{table}`", text_columns("message", "msg"));
        let rows = diesel::sql_query(sql)
            .load::<OfflineRow>(&mut self.source)
            .await
            .map_err(query_error("reading the original's offline messages", &self.target_url))?;
        let (mut log, mut legacy, mut all) = (Vec::new(), Vec::new(), true);
        for (n, row) in rows.into_iter().enumerate() {
            let Some(user) = id32(row.u) else {
                all = false;
                self.summary.skip(
                    "message",
                    format!("offline row {}: user id {:?} is not a positive INT", n + 1, row.u),
                );
                continue;
            };
            let Some((text, decoded)) = as_the_original_read(row.msg, row.msg_gbk, row.msg_rt) else {
                all = false;
                self.summary.skip("message", format!("offline row {} for user {user}: empty (NULL)", n + 1));
                continue;
            };
            match classify(user, &text, users, oldest) {
                Fate::Log(m) => log.push(m),
                Fate::Legacy(why) => {
                    *self.summary.legacy.entry(why).or_default() += 1;
                    legacy.push((user, text));
                }
                Fate::Skip(why) => {
                    all = false;
                    self.summary.skip(
                        "message",
                        format!("offline row {} for user {user} ({} bytes): {why}", n + 1, text.len()),
                    );
                    continue;
                }
            }
            if decoded {
                self.summary.decoded += 1;
            }
        }
        Ok((log, legacy, all))
    }
}

async fn write_marker(conn: &mut AsyncMysqlConnection, url: &str, source: &str) -> Result<(), AdoptError> {
    let q = |step| query_error(step, url);
    diesel::sql_query(MARKER_DDL).execute(conn).await.map_err(q("creating the adoption record"))?;
    diesel::insert_or_ignore_into(adoption::table)
        .values((
            adoption::id.eq(1),
            adoption::source.eq(source),
            adoption::phase.eq(STARTED),
            adoption::started_at.eq(now_ms()),
        ))
        .execute(conn)
        .await
        .map_err(q("creating the adoption record"))?;
    Ok(())
}

async fn set_phase(conn: &mut AsyncMysqlConnection, url: &str, phase: &str) -> Result<(), AdoptError> {
    diesel::update(adoption::table.find(1))
        .set(adoption::phase.eq(phase))
        .execute(conn)
        .await
        .map_err(query_error("updating the adoption record", url))?;
    Ok(())
}

/// Renames the original's tables to `orig_*` in one statement (atomic), so that our
/// migrations can create theirs.
async fn rename_aside(
    conn: &mut AsyncMysqlConnection,
    url: &str,
    original: &Original,
) -> Result<Original, AdoptError> {
    let mut pairs = String::new();
    for name in original.names() {
        if !pairs.is_empty() {
            pairs.push_str(", ");
        }
        let _ = write!(pairs, "`{name}` TO `{PREFIX}{name}`");
    }
    diesel::sql_query(format!("RENAME TABLE {pairs}"))
        .execute(conn)
        .await
        .map_err(query_error("renaming the original's tables aside", url))?;
    let prefixed = |t: &Option<String>| t.as_ref().map(|n| format!("{PREFIX}{n}"));
    Ok(Original {
        user: format!("{PREFIX}{}", original.user),
        friend: prefixed(&original.friend),
        group: prefixed(&original.group),
        member: prefixed(&original.member),
        offline: prefixed(&original.offline),
    })
}

/// Drops the renamed original tables that must not outlive an in-place adoption (`orig_User`
/// holds the plaintext passwords); `orig_OfflineMessage` is decided by `finish`.
async fn drop_leftovers(conn: &mut AsyncMysqlConnection, url: &str) -> Result<Vec<String>, AdoptError> {
    let layout = Layout::read(conn).await.map_err(query_error("reading the tables", url))?;
    let mut dropped = Vec::new();
    for name in ["User", "Friend", "AllGroup", "GroupUser"] {
        if let Some(table) = layout.find(&format!("{PREFIX}{name}")).filter(|t| safe_identifier(t)) {
            diesel::sql_query(format!("DROP TABLE IF EXISTS `{table}`"))
                .execute(conn)
                .await
                .map_err(query_error("dropping the original's tables", url))?;
            dropped.push(table);
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_chat_cluster_refuses_are_cleaned() {
        assert_eq!(clean_name("alice", "user1"), ("alice".to_string(), vec![]));
        assert_eq!(clean_name("a\nb", "user1").0, "a b");
        assert_eq!(
            clean_name("\t\n", "user7"),
            ("user7".to_string(), vec!["has control characters", "is blank"])
        );
        assert_eq!(clean_name(&"张".repeat(60), "u").0.chars().count(), 50);
        assert_eq!(clean_name(" spaced ", "u").1, Vec::<&str>::new(), "blanks around a name are not refused");
    }

    #[test]
    fn taken_names_get_the_id() {
        let taken: HashSet<String> = ["bob".to_string(), "bob~7".to_string()].into_iter().collect();
        assert_eq!(unique_name("carol", 3, &taken), "carol");
        assert_eq!(unique_name("bob", 9, &taken), "bob~9");
        assert_eq!(unique_name("bob   ", 9, &taken), "bob~9", "trailing blanks do not make a name unique");
        assert_eq!(unique_name("bob", 7, &taken), "bob~7.1");
        let long = "x".repeat(50);
        let taken: HashSet<String> = [long.clone()].into_iter().collect();
        assert_eq!(unique_name(&long, 12345, &taken).chars().count(), 50);
    }

    #[test]
    fn text_is_read_as_the_original_read_it() {
        // 张三 sent as UTF-8 through `SET NAMES gbk` is stored as 寮犱笁.
        let stored = "寮犱笁".to_string();
        let gbk = "张三".as_bytes().to_vec();
        assert_eq!(
            as_the_original_read(Some(stored.clone()), Some(gbk.clone()), Some(1)),
            Some(("张三".into(), true))
        );
        assert_eq!(as_the_original_read(Some(stored.clone()), Some(gbk), Some(0)), Some((stored, false)));
        // Stored correctly (not through the original): its GBK bytes are not UTF-8.
        let right = "张三".to_string();
        assert_eq!(
            as_the_original_read(Some(right.clone()), Some(vec![0xd5, 0xc5, 0xc8, 0xfd]), Some(1)),
            Some((right, false))
        );
        assert_eq!(
            as_the_original_read(Some("abc".into()), Some(b"abc".to_vec()), Some(1)),
            Some(("abc".into(), false))
        );
        assert_eq!(as_the_original_read(None, None, None), None);
    }

    fn frame(id: i32, to: i32, msg: &str, time: &str) -> String {
        serde_json::json!({"id": id, "msg": msg, "msgid": 6, "name": "bob", "time": time, "to": to})
            .to_string()
    }

    #[test]
    fn offline_rows_are_sorted() {
        let users: HashSet<i32> = [1, 2, 3].into_iter().collect();
        let now = chrono::Local::now();
        let time = now.format(TIME_FORMAT).to_string();
        let oldest = now.timestamp_millis() - 86_400_000;
        match classify(1, &frame(2, 1, "hi \"x\"", &time), &users, oldest) {
            Fate::Log(m) => {
                assert_eq!((m.sender, m.to, m.name.as_str(), m.body.as_str()), (2, 1, "bob", "hi \"x\""))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(9, &frame(2, 9, "x", &time), &users, oldest),
            Fate::Skip("its user 9 does not exist".into())
        );
        let cut: String = frame(2, 1, &"y".repeat(600), &time).chars().take(500).collect();
        assert_eq!(classify(1, &cut, &users, oldest), Fate::Skip(NOT_JSON.into()));
        let unescaped =
            format!(r#"{{"id":2,"msg":"say "hi"","msgid":6,"name":"bob","time":"{time}","to":1}}"#);
        assert_eq!(classify(1, &unescaped, &users, oldest), Fate::Skip(NOT_JSON.into()));
        let group =
            serde_json::json!({"groupid": 5, "id": 2, "msg": "m", "msgid": 10, "name": "bob", "time": time});
        assert_eq!(classify(1, &group.to_string(), &users, oldest), Fate::Legacy(GROUP_FRAME));
        assert!(matches!(
            classify(1, &frame(2, 1, "old", "2001-01-01 00:00:00"), &users, oldest),
            Fate::Legacy(_)
        ));
        assert!(matches!(classify(1, &frame(99, 1, "forged", &time), &users, oldest), Fate::Legacy(_)));
        assert!(matches!(classify(1, &frame(2, 3, "elsewhere", &time), &users, oldest), Fate::Legacy(_)));
        assert!(matches!(classify(1, &frame(2, 1, "x", "yesterday"), &users, oldest), Fate::Legacy(_)));
        let no_time = serde_json::json!({"id": 2, "msg": "m", "msgid": 6, "name": "bob", "to": 1});
        assert!(matches!(classify(1, &no_time.to_string(), &users, oldest), Fate::Skip(_)));
        assert!(matches!(classify(1, r#"{"msgid":"6"}"#, &users, oldest), Fate::Skip(_)));
    }

    #[test]
    fn commands_hide_the_password() {
        assert_eq!(
            adopt_command("mysql://chat:pw@h:3306/chat", None),
            "chat-server adopt-original --database-url 'mysql://chat:***@h:3306/chat' (with the password in place of ***)"
        );
        assert_eq!(
            adopt_command("mysql://c:pw@h:1/new", Some("mysql://c:***@h:1/chat")),
            "chat-server adopt-original --database-url 'mysql://c:***@h:1/chat' --into 'mysql://c:***@h:1/new' (with the password in place of ***)"
        );
        assert!(safe_identifier("orig_User") && !safe_identifier("a`b") && !safe_identifier(""));
    }
}
