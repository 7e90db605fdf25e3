//! The bare append (`chat-bench append`): the rows the server stores for one-to-one
//! chats, inserted by a minimal loop with no server in between, so that the distance
//! from the server's append to what the database itself costs shows. It inserts into
//! the message table as the migrations leave it (columns read from
//! information_schema, never a hard-coded list) — one multi-row INSERT of a batch and
//! the conversations' counter bump per transaction — and, for reference, into a log
//! clustered on (conv, seq) with nothing else. MySQL's CPU comes from /proc.
//!
//! It runs in a database of its own (migrated by `chat-server migrate`): it adds
//! conversation rows and messages there, and drops and recreates its reference table.
//! Not responsible for deciding what is cheap enough (the suite's report does).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chat_proto::{ConvId, UserId};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, TxOpts, Value};
use serde::{Deserialize, Serialize};

use crate::fleet::Rng;
use crate::mysql::{Counters, StatusReader, delta};
use crate::payload::Stamp;
use crate::procfs::{CpuMeter, Watched, cpu_time};

/// The reference table the bare append creates (and drops first) in its database.
pub const LOG_TABLE: &str = "BareAppendLog";

/// What a variant appends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The server's message table, with the counter bump.
    Message,
    /// A log clustered on (conv, seq), nothing else: no other index, no counter.
    Log,
}

/// One variant: where, and how many rows per transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// The table.
    pub kind: Kind,
    /// Rows per transaction.
    pub batch: usize,
}

impl std::str::FromStr for Variant {
    type Err = anyhow::Error;

    /// `message:100` or `log:10`.
    fn from_str(s: &str) -> anyhow::Result<Variant> {
        let (kind, batch) = s.split_once(':').with_context(|| format!("`{s}` is not KIND:ROWS"))?;
        let kind = match kind.trim() {
            "message" => Kind::Message,
            "log" => Kind::Log,
            other => bail!("`{other}`: the kind is message or log"),
        };
        let batch: usize = batch.trim().parse().with_context(|| format!("`{s}`: rows is not a number"))?;
        ensure!((1..=1000).contains(&batch), "`{s}`: 1 to 1000 rows per transaction");
        Ok(Variant { kind, batch })
    }
}

/// A column of the message table, from information_schema.COLUMNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// DATA_TYPE (`bigint`, `varchar`, ...).
    pub data_type: String,
    /// COLUMN_TYPE (`bigint(20)`, `varchar(50)`, ...), for the reference table.
    pub column_type: String,
    /// IS_NULLABLE.
    pub nullable: bool,
    /// Has a default (COLUMN_DEFAULT not null).
    pub has_default: bool,
    /// EXTRA (`auto_increment`, `VIRTUAL GENERATED`, ...).
    pub extra: String,
}

/// How the bare append fills a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The conversation's key (`lo << 32 | hi`).
    Conv,
    /// The next number in the conversation.
    Seq,
    /// The sending user's id.
    Sender,
    /// The sending user's name.
    SenderName,
    /// The chat's text (the bench's padded stamp).
    Body,
    /// Now, in unix milliseconds.
    CreatedAt,
    /// NULL (the one-to-one chats of the bench carry no client id).
    Null,
    /// A number counting the rows (a column the bench does not know).
    Counter,
    /// A short text (a column the bench does not know).
    Text,
}

impl Fill {
    /// How reports name it.
    pub fn name(self) -> &'static str {
        match self {
            Fill::Conv => "conv",
            Fill::Seq => "seq",
            Fill::Sender => "sender",
            Fill::SenderName => "sender name",
            Fill::Body => "text",
            Fill::CreatedAt => "now (ms)",
            Fill::Null => "NULL",
            Fill::Counter => "row number",
            Fill::Text => "short text",
        }
    }
}

const INTEGER_TYPES: [&str; 5] = ["tinyint", "smallint", "mediumint", "int", "bigint"];
const TEXT_TYPES: [&str; 6] = ["char", "varchar", "text", "mediumtext", "longtext", "tinytext"];

/// How `c` is filled; `None` leaves it to the database (auto-increment, generated, or a
/// column with a default that the server's rows do not name).
pub fn fill_of(c: &Column) -> anyhow::Result<Option<Fill>> {
    let extra = c.extra.to_ascii_lowercase();
    if extra.contains("auto_increment") || extra.contains("generated") {
        return Ok(None);
    }
    let known = match c.name.to_ascii_lowercase().as_str() {
        "conv" => Some(Fill::Conv),
        "seq" => Some(Fill::Seq),
        "sender" => Some(Fill::Sender),
        "sendername" => Some(Fill::SenderName),
        "body" => Some(Fill::Body),
        "created_at" => Some(Fill::CreatedAt),
        "cid" if c.nullable => Some(Fill::Null),
        _ => None,
    };
    if known.is_some() {
        return Ok(known);
    }
    let t = c.data_type.to_ascii_lowercase();
    Ok(if c.nullable {
        Some(Fill::Null)
    } else if c.has_default {
        None
    } else if INTEGER_TYPES.contains(&t.as_str()) {
        Some(Fill::Counter)
    } else if TEXT_TYPES.contains(&t.as_str()) {
        Some(Fill::Text)
    } else {
        bail!("cannot fill column `{}` of type {}: the bare append does not know it", c.name, c.data_type)
    })
}

/// An identifier quoted for MySQL (names come from information_schema; backticks doubled).
fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `INSERT INTO t (cols) VALUES (?, ..), ..` for `rows` rows.
pub fn insert_sql(table: &str, columns: &[&str], rows: usize) -> String {
    let cols: Vec<String> = columns.iter().map(|c| quoted(c)).collect();
    let one = format!("({})", vec!["?"; columns.len()].join(", "));
    format!("INSERT INTO {} ({}) VALUES {}", quoted(table), cols.join(", "), vec![one; rows].join(", "))
}

/// `CREATE TABLE` of the reference log: the filled columns of the message table, with their
/// types and nullability, clustered on (conv, seq), no other index.
pub fn log_table_sql(columns: &[(Column, Fill)], collation: &str) -> String {
    let mut defs: Vec<String> = columns
        .iter()
        .map(|(c, _)| {
            format!("{} {} {}", quoted(&c.name), c.column_type, if c.nullable { "NULL" } else { "NOT NULL" })
        })
        .collect();
    let key = |f: Fill| columns.iter().find(|(_, x)| *x == f).map(|(c, _)| quoted(&c.name));
    if let (Some(conv), Some(seq)) = (key(Fill::Conv), key(Fill::Seq)) {
        defs.push(format!("PRIMARY KEY ({conv}, {seq})"));
    }
    let charset = collation.split('_').next().unwrap_or("utf8mb4");
    format!(
        "CREATE TABLE {} ({}) ENGINE=InnoDB DEFAULT CHARSET={charset} COLLATE={collation}",
        quoted(LOG_TABLE),
        defs.join(", ")
    )
}

/// The result of one variant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppendReport {
    /// `message` or `log`.
    pub kind: String,
    /// The table inserted into.
    pub table: String,
    /// Its indexes (from information_schema), and the counter bump if any.
    pub shape: String,
    /// Rows per transaction.
    pub batch: usize,
    /// Transactions measured.
    pub transactions: u64,
    /// Rows inserted (measured).
    pub rows: u64,
    /// Seconds the measured transactions took.
    pub wall_s: f64,
    /// Rows per second (one connection, one transaction at a time).
    pub rows_per_s: f64,
    /// MySQL's CPU seconds over the measured transactions (all its threads).
    pub mysql_cpu_s: Option<f64>,
    /// MySQL's CPU microseconds per row.
    pub mysql_us_per_row: Option<f64>,
    /// The loop's own CPU seconds.
    pub client_cpu_s: f64,
    /// MySQL's global status counters over the measured transactions.
    pub status: Option<Counters>,
}

/// Every variant of one `chat-bench append`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppendSuite {
    /// The message table's columns and how they were filled (`name=fill`).
    pub columns: Vec<String>,
    /// One report per variant, in the order given.
    pub runs: Vec<AppendReport>,
}

/// What `chat-bench append` is asked to do.
#[derive(Debug, Clone)]
pub struct AppendPlan {
    /// The database (`mysql://USER:PASS@HOST:PORT/DB`), migrated by `chat-server migrate`.
    pub url: String,
    /// The message table's name.
    pub table: String,
    /// The table holding each conversation's counter, and the counter's column.
    pub counter: (String, String),
    /// The variants, run in order.
    pub variants: Vec<Variant>,
    /// Transactions measured per variant.
    pub transactions: u64,
    /// Users the conversations are between (users × (users − 1) / 2 conversations).
    pub users: u32,
    /// Bytes of each message's text.
    pub msg_bytes: usize,
    /// MySQL's processes (their CPU is measured).
    pub mysql: Vec<Watched>,
    /// Where the status counters are read (the same server).
    pub status: Option<StatusReader>,
}

/// Transactions before the measured ones (statements prepared, buffers warm).
const WARM_UP: u64 = 20;

/// Conversation rows inserted per statement.
const CONVS_PER_INSERT: usize = 500;

async fn columns_of(conn: &mut Conn, table: &str) -> anyhow::Result<Vec<Column>> {
    let rows: Vec<(String, String, String, String, i64, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT IS NOT NULL, EXTRA \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (table,),
        )
        .await
        .context("reading the message table's columns")?;
    ensure!(!rows.is_empty(), "no table `{table}` in this database: run `chat-server migrate` on it first");
    Ok(rows
        .into_iter()
        .map(|(name, data_type, column_type, nullable, has_default, extra)| Column {
            name,
            data_type,
            column_type,
            nullable: nullable.eq_ignore_ascii_case("YES"),
            has_default: has_default != 0,
            extra,
        })
        .collect())
}

/// `PRIMARY(id), UNIQUE uq(conv,seq), ix(created_at)`: the table's indexes.
async fn indexes_of(conn: &mut Conn, table: &str) -> anyhow::Result<String> {
    let rows: Vec<(String, i64, String)> = conn
        .exec(
            "SELECT INDEX_NAME, MIN(NON_UNIQUE), GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
             GROUP BY INDEX_NAME ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME",
            (table,),
        )
        .await
        .context("reading the table's indexes")?;
    Ok(rows
        .into_iter()
        .map(|(name, non_unique, cols)| {
            let unique = if non_unique == 0 && name != "PRIMARY" { "UNIQUE " } else { "" };
            format!("{unique}{name}({cols})")
        })
        .collect::<Vec<_>>()
        .join(", "))
}

/// Every conversation between users 1..=`users`.
fn conversations(users: u32) -> Vec<(i64, i32)> {
    let mut out = Vec::new();
    for a in 1..=users as i32 {
        for b in a + 1..=users as i32 {
            out.push((ConvId::direct(UserId(a), UserId(b)).0, a));
        }
    }
    out
}

/// Makes sure every conversation has its row and returns each one's counter.
async fn open_conversations(
    conn: &mut Conn,
    counter: &(String, String),
    convs: &[(i64, i32)],
) -> anyhow::Result<HashMap<i64, i64>> {
    let (table, column) = (quoted(&counter.0), quoted(&counter.1));
    let mut seqs = HashMap::with_capacity(convs.len());
    for chunk in convs.chunks(CONVS_PER_INSERT) {
        let ids: Vec<Value> = chunk.iter().map(|(c, _)| Value::Int(*c)).collect();
        let marks = vec!["(?)"; chunk.len()].join(", ");
        conn.exec_drop(
            format!("INSERT IGNORE INTO {table} (`id`) VALUES {marks}"),
            Params::Positional(ids.clone()),
        )
        .await
        .with_context(|| format!("creating the conversations' rows in {table}"))?;
        let marks = vec!["?"; chunk.len()].join(", ");
        let rows: Vec<(i64, i64)> = conn
            .exec(
                format!("SELECT `id`, {column} FROM {table} WHERE `id` IN ({marks})"),
                Params::Positional(ids),
            )
            .await
            .with_context(|| format!("reading the conversations' {column}"))?;
        seqs.extend(rows);
    }
    Ok(seqs)
}

/// The rows of one transaction: `batch` distinct conversations, each with its next seq.
struct Batch {
    /// (conv, seq, sender) per row.
    rows: Vec<(i64, i64, i32)>,
}

fn next_batch(rng: &mut Rng, convs: &[(i64, i32)], seqs: &mut HashMap<i64, i64>, batch: usize) -> Batch {
    let mut rows: Vec<(i64, i64, i32)> = Vec::with_capacity(batch);
    while rows.len() < batch {
        let (conv, lo) = convs[rng.below(convs.len())];
        if rows.iter().any(|(c, _, _)| *c == conv) {
            continue;
        }
        let seq = seqs.entry(conv).or_default();
        *seq += 1;
        // Either user of the pair sends.
        let sender = if rng.below(2) == 0 { lo } else { (conv & 0xffff_ffff) as i32 };
        rows.push((conv, *seq, sender));
    }
    Batch { rows }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn values(batch: &Batch, fills: &[Fill], msg_bytes: usize, counter: &mut i64) -> Vec<Value> {
    let mut out = Vec::with_capacity(batch.rows.len() * fills.len());
    let at = now_ms();
    for &(conv, seq, sender) in &batch.rows {
        *counter += 1;
        for f in fills {
            out.push(match f {
                Fill::Conv => Value::Int(conv),
                Fill::Seq => Value::Int(seq),
                Fill::Sender => Value::Int(i64::from(sender)),
                Fill::SenderName => Value::Bytes(format!("bappend-{sender}").into_bytes()),
                Fill::Body => Value::Bytes(
                    Stamp { run: 1, seq: *counter as u64, sent_nanos: at as u64 * 1_000_000 }
                        .encode(msg_bytes)
                        .into_bytes(),
                ),
                Fill::CreatedAt => Value::Int(at),
                Fill::Null => Value::NULL,
                Fill::Counter => Value::Int(*counter),
                Fill::Text => Value::Bytes(format!("r{counter}").into_bytes()),
            });
        }
    }
    out
}

/// Runs every variant of `plan`, one after the other, on one connection.
pub async fn run(plan: &AppendPlan) -> anyhow::Result<AppendSuite> {
    let opts = mysql_async::Opts::from_url(&plan.url).context("--mysql-url is not a mysql:// URL")?;
    let mut conn = Conn::new(opts).await.context("connecting to the bare append's database")?;
    let columns = columns_of(&mut conn, &plan.table).await?;
    let mut filled: Vec<(Column, Fill)> = Vec::new();
    let mut described = Vec::new();
    for c in columns {
        match fill_of(&c)? {
            Some(f) => {
                described.push(format!("{}={}", c.name, f.name()));
                filled.push((c, f));
            }
            None => described.push(format!("{}=(database)", c.name)),
        }
    }
    for needed in [Fill::Conv, Fill::Seq] {
        ensure!(
            filled.iter().any(|(_, f)| *f == needed),
            "the message table `{}` has no {needed:?} column",
            plan.table
        );
    }
    let names: Vec<&str> = filled.iter().map(|(c, _)| c.name.as_str()).collect();
    let fills: Vec<Fill> = filled.iter().map(|(_, f)| *f).collect();
    let collation: Option<String> = conn
        .exec_first(
            "SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
            (plan.table.as_str(),),
        )
        .await?;
    let collation = collation.unwrap_or_else(|| "utf8mb4_bin".into());
    conn.query_drop(format!("DROP TABLE IF EXISTS {}", quoted(LOG_TABLE))).await?;
    conn.query_drop(log_table_sql(&filled, &collation)).await.context("creating the reference log table")?;
    let message_shape = format!(
        "{}; + UPDATE {}.{} of the batch's conversations",
        indexes_of(&mut conn, &plan.table).await?,
        plan.counter.0,
        plan.counter.1
    );
    let log_shape = indexes_of(&mut conn, LOG_TABLE).await?;
    let convs = conversations(plan.users);
    let mut message_seqs = open_conversations(&mut conn, &plan.counter, &convs).await?;
    let mut log_seqs: HashMap<i64, i64> = HashMap::new();
    let mut rng = Rng::new(1);
    let mut counter = 0i64;
    let mut runs = Vec::new();
    for v in &plan.variants {
        ensure!(v.batch <= convs.len(), "{} rows per transaction need as many conversations", v.batch);
        let (table, shape, seqs) = match v.kind {
            Kind::Message => (plan.table.as_str(), message_shape.clone(), &mut message_seqs),
            Kind::Log => (LOG_TABLE, log_shape.clone(), &mut log_seqs),
        };
        let insert = insert_sql(table, &names, v.batch);
        let bump = format!(
            "UPDATE {t} SET {c} = {c} + 1 WHERE `id` IN ({marks})",
            t = quoted(&plan.counter.0),
            c = quoted(&plan.counter.1),
            marks = vec!["?"; v.batch].join(", ")
        );
        eprintln!("append: {} rows per transaction into {table}", v.batch);
        let mut one = async |conn: &mut Conn| -> anyhow::Result<()> {
            let batch = next_batch(&mut rng, &convs, seqs, v.batch);
            let params = values(&batch, &fills, plan.msg_bytes, &mut counter);
            let mut tx = conn.start_transaction(TxOpts::default()).await?;
            if v.kind == Kind::Message {
                let ids = batch.rows.iter().map(|(c, _, _)| Value::Int(*c)).collect();
                tx.exec_drop(bump.as_str(), Params::Positional(ids)).await.context("the counter bump")?;
            }
            tx.exec_drop(insert.as_str(), Params::Positional(params)).await.context("the INSERT")?;
            tx.commit().await.context("COMMIT")?;
            Ok(())
        };
        for _ in 0..WARM_UP {
            one(&mut conn).await?;
        }
        let before = match &plan.status {
            Some(s) => Some(s.read().await?),
            None => None,
        };
        let cpu = CpuMeter::start(&plan.mysql);
        let own = cpu_time(None).unwrap_or_default();
        let start = Instant::now();
        for _ in 0..plan.transactions {
            one(&mut conn).await?;
        }
        let wall_s = start.elapsed().as_secs_f64();
        let client_cpu_s = cpu_time(None).unwrap_or_default().saturating_sub(own).as_secs_f64();
        let mysql_cpu_s: Option<f64> =
            if plan.mysql.is_empty() { None } else { cpu.read().iter().map(|u| u.cpu_s).sum() };
        let status = match (&plan.status, before) {
            (Some(s), Some(before)) => Some(delta(&before, &s.read().await?)),
            _ => None,
        };
        let rows = plan.transactions * v.batch as u64;
        let report = AppendReport {
            kind: format!("{:?}", v.kind).to_lowercase(),
            table: table.to_owned(),
            shape,
            batch: v.batch,
            transactions: plan.transactions,
            rows,
            wall_s,
            rows_per_s: if wall_s > 0.0 { rows as f64 / wall_s } else { 0.0 },
            mysql_cpu_s,
            mysql_us_per_row: mysql_cpu_s.and_then(|s| crate::stats::us_per_delivery(s, rows)),
            client_cpu_s,
            status,
        };
        eprint!("{}", append_table(std::slice::from_ref(&report)).to_text());
        runs.push(report);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = conn.disconnect().await;
    Ok(AppendSuite { columns: described, runs })
}

/// One row per variant: table, rows per transaction, rows/s, MySQL µs per row, and the
/// status counters per row.
pub fn append_table(runs: &[AppendReport]) -> crate::report::Table {
    let per = |r: &AppendReport, name: &str, n: u64| {
        crate::mysql::per(r.status.as_ref(), name, n).map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
    };
    let headers = [
        "table",
        "rows/txn",
        "rows",
        "rows/s",
        "mysql µs/row",
        "Questions/row",
        "prepares/row",
        "commits/row",
        "fsyncs/row",
        "indexes",
    ]
    .map(String::from)
    .to_vec();
    let rows = runs
        .iter()
        .map(|r| {
            vec![
                r.table.clone(),
                r.batch.to_string(),
                r.rows.to_string(),
                format!("{:.0}", r.rows_per_s),
                r.mysql_us_per_row.map_or_else(|| "-".into(), |v| format!("{v:.1}")),
                per(r, "Questions", r.rows),
                per(r, "Com_stmt_prepare", r.rows),
                per(r, "Com_commit", r.rows),
                per(r, "Innodb_data_fsyncs", r.rows),
                r.shape.clone(),
            ]
        })
        .collect();
    crate::report::Table { headers, rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, data_type: &str, nullable: bool, has_default: bool, extra: &str) -> Column {
        Column {
            name: name.into(),
            data_type: data_type.into(),
            column_type: data_type.into(),
            nullable,
            has_default,
            extra: extra.into(),
        }
    }

    #[test]
    fn columns_are_filled_by_name_then_by_type() {
        let f = |c: Column| fill_of(&c).expect("fills");
        assert_eq!(f(col("id", "bigint", false, false, "auto_increment")), None);
        assert_eq!(f(col("conv", "bigint", false, false, "")), Some(Fill::Conv));
        assert_eq!(f(col("Seq", "bigint", false, false, "")), Some(Fill::Seq));
        assert_eq!(f(col("cid", "varchar", true, false, "")), Some(Fill::Null));
        assert_eq!(f(col("body", "mediumtext", false, false, "")), Some(Fill::Body));
        assert_eq!(f(col("flags", "int", false, true, "")), None);
        assert_eq!(f(col("flags", "int", false, false, "")), Some(Fill::Counter));
        assert_eq!(f(col("note", "varchar", true, false, "")), Some(Fill::Null));
        assert_eq!(f(col("tag", "varchar", false, false, "")), Some(Fill::Text));
        assert_eq!(f(col("v", "bigint", false, false, "VIRTUAL GENERATED")), None);
        assert!(fill_of(&col("blob", "blob", false, false, "")).is_err());
    }

    #[test]
    fn statements() {
        assert_eq!(
            insert_sql("Message", &["conv", "seq"], 2),
            "INSERT INTO `Message` (`conv`, `seq`) VALUES (?, ?), (?, ?)"
        );
        let cols = vec![
            (
                Column { column_type: "bigint(20)".into(), ..col("conv", "bigint", false, false, "") },
                Fill::Conv,
            ),
            (
                Column { column_type: "bigint(20)".into(), ..col("seq", "bigint", false, false, "") },
                Fill::Seq,
            ),
            (
                Column { column_type: "varchar(64)".into(), ..col("ci`d", "varchar", true, false, "") },
                Fill::Null,
            ),
        ];
        assert_eq!(
            log_table_sql(&cols, "utf8mb4_bin"),
            "CREATE TABLE `BareAppendLog` (`conv` bigint(20) NOT NULL, `seq` bigint(20) NOT NULL, \
             `ci``d` varchar(64) NULL, PRIMARY KEY (`conv`, `seq`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 \
             COLLATE=utf8mb4_bin"
        );
    }

    #[test]
    fn variants_parse() {
        assert_eq!(
            "message:100".parse::<Variant>().expect("parses"),
            Variant { kind: Kind::Message, batch: 100 }
        );
        assert_eq!("log:10".parse::<Variant>().expect("parses"), Variant { kind: Kind::Log, batch: 10 });
        for bad in ["message", "x:10", "log:0", "log:abc", "log:5000"] {
            assert!(bad.parse::<Variant>().is_err(), "{bad}");
        }
    }

    #[test]
    fn batches_take_distinct_conversations_in_order() {
        let convs = conversations(5);
        assert_eq!(convs.len(), 10);
        assert_eq!(convs[0], ((1 << 32) | 2, 1));
        let mut seqs = HashMap::new();
        let mut rng = Rng::new(7);
        for _ in 0..20 {
            let b = next_batch(&mut rng, &convs, &mut seqs, 4);
            let mut ids: Vec<i64> = b.rows.iter().map(|(c, _, _)| *c).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), 4);
            for (conv, _, sender) in &b.rows {
                let (lo, hi) = ((conv >> 32) as i32, (conv & 0xffff_ffff) as i32);
                assert!(*sender == lo || *sender == hi);
            }
        }
        // 80 rows over 10 conversations: each conversation's seqs are 1..=n, gapless.
        assert_eq!(seqs.values().sum::<i64>(), 80);
    }
}
