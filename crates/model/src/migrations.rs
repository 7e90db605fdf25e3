//! MySQL/MariaDB migrations that finish after a crash (ARCHITECTURE.md, "Migrations").
//!
//! DDL is not transactional there: a node killed while applying a migration leaves some of
//! its tables created and the migration unrecorded. So this runner, not diesel's harness,
//! applies `migrations/mysql`: each migration step by step (steps are separated by a line
//! `-- step`, migrations/README.md), writing to `__chat_migration_steps`, before each step,
//! which step it starts and the schema as it was then. A node that starts over a migration
//! cut short skips the steps done and runs the cut step again; if that fails, the step is
//! taken as applied only when the schema changed since the step began (one DDL statement is
//! atomic on MySQL 8 and MariaDB 10.6+; a step of several is written so it can run again).
//! A migration that never began runs plainly, so a step meeting tables it did not create
//! (the original server's) still fails loudly. The migration is recorded in diesel's
//! `__diesel_schema_migrations`, as before, in one transaction with its journal row's removal.
//!
//! SQLite does not come here: its DDL is transactional and diesel runs each SQLite migration
//! in one transaction, so a crash there leaves the migration whole or absent.
//! Not here either: the migration lock (`mysql.rs`) and the check for the original's
//! tables (`adopt.rs`), both done before this runs.

use std::collections::HashSet;

use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};

include!(concat!(env!("OUT_DIR"), "/mysql_up.rs"));

diesel::table! {
    /// diesel's record of applied migrations (its own DDL, below).
    #[sql_name = "__diesel_schema_migrations"]
    applied (version) {
        /// The migration's version (its directory name's date, digits only).
        version -> Varchar,
    }
}

diesel::table! {
    /// One row per migration begun and not finished: the step begun and the schema before it.
    #[sql_name = "__chat_migration_steps"]
    journal (version) {
        /// The migration's version, as in `__diesel_schema_migrations`.
        version -> Varchar,
        /// The step begun, from 0.
        step -> Integer,
        /// `running` (begun; a crash may have cut it) or `failed` (it failed, the node saw it).
        state -> Varchar,
        /// [`schema_of`] the database before the step began.
        schema_before -> Text,
        /// Unix milliseconds.
        updated_at -> BigInt,
    }
}

/// The same statement diesel's harness runs, so databases migrated by either agree.
const APPLIED_DDL: &str = "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
    version VARCHAR(50) PRIMARY KEY NOT NULL,
    run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
)";
const JOURNAL_DDL: &str = "CREATE TABLE IF NOT EXISTS `__chat_migration_steps` (
    `version` VARCHAR(50) NOT NULL,
    `step` INT NOT NULL,
    `state` VARCHAR(8) NOT NULL,
    `schema_before` MEDIUMTEXT NOT NULL,
    `updated_at` BIGINT NOT NULL,
    PRIMARY KEY (`version`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";
const RUNNING: &str = "running";
const FAILED: &str = "failed";

/// What the schema of the connection's database is made of, one line per table, column,
/// index, constraint, routine and trigger (sorted). Rows do not count.
const SCHEMA_QUERIES: &[&str] = &[
    "SELECT CAST(CONCAT_WS(' ', 'table', TABLE_NAME, TABLE_TYPE, COALESCE(ENGINE, '-'), \
     COALESCE(TABLE_COLLATION, '-')) AS CHAR) AS line \
     FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
    "SELECT CAST(CONCAT_WS(' ', 'column', TABLE_NAME, ORDINAL_POSITION, COLUMN_NAME, COLUMN_TYPE, \
     IS_NULLABLE, COALESCE(COLUMN_DEFAULT, '-'), EXTRA, COALESCE(COLLATION_NAME, '-')) AS CHAR) AS line \
     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()",
    "SELECT CAST(CONCAT_WS(' ', 'index', TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE) \
     AS CHAR) AS line FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()",
    "SELECT CAST(CONCAT_WS(' ', 'constraint', TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE) AS CHAR) AS line \
     FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()",
    "SELECT CAST(CONCAT_WS(' ', 'foreign', TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, \
     DELETE_RULE) AS CHAR) AS line \
     FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()",
    "SELECT CAST(CONCAT_WS(' ', 'routine', ROUTINE_TYPE, ROUTINE_NAME, COALESCE(ROUTINE_DEFINITION, '-')) \
     AS CHAR) AS line FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()",
    "SELECT CAST(CONCAT_WS(' ', 'trigger', TRIGGER_NAME, EVENT_OBJECT_TABLE, EVENT_MANIPULATION, \
     ACTION_TIMING, ACTION_STATEMENT) AS CHAR) AS line \
     FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()",
];

/// CHECK constraints' clauses: information_schema has them from MySQL 8.0.16 and MariaDB
/// 10.2; older servers enforce no CHECK anyway, so their absence is not an error.
const CHECKS_QUERY: &str = "SELECT CAST(CONCAT_WS(' ', 'check', CONSTRAINT_NAME, CHECK_CLAUSE) AS CHAR) AS line \
     FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()";

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    line: Option<String>,
}

/// One MySQL migration as the runner applies it.
#[derive(Debug, Clone)]
pub struct MysqlMigration {
    /// Its directory name, e.g. `2026-12-01-000000_message_log`.
    pub name: String,
    /// The version diesel records for it in `__diesel_schema_migrations`.
    pub version: String,
    /// Its steps in order: up.sql cut at the lines `-- step`, steps of comments only left out.
    pub steps: Vec<String>,
}

/// Every migration of `migrations/mysql`, in order, with its steps.
pub fn mysql_migrations() -> Result<Vec<MysqlMigration>, String> {
    let listed = MigrationSource::<diesel::mysql::Mysql>::migrations(&crate::mysql::MIGRATIONS)
        .map_err(|e| e.to_string())?;
    let mut migrations = Vec::with_capacity(listed.len());
    for m in listed {
        let name = m.name().to_string();
        let Some((_, sql)) = MYSQL_UP.iter().find(|(dir, _)| *dir == name) else {
            return Err(format!("migration {name} has no embedded up.sql (rebuild chat-model)"));
        };
        migrations.push(MysqlMigration {
            version: m.name().version().to_string(),
            steps: split_steps(sql),
            name,
        });
    }
    migrations.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(migrations)
}

/// up.sql cut at its step lines: `-- step` alone, or `-- step:` and a label.
pub(crate) fn split_steps(sql: &str) -> Vec<String> {
    let mut steps = vec![String::new()];
    for line in sql.lines() {
        let t = line.trim();
        if t == "-- step" || t.starts_with("-- step:") {
            steps.push(String::new());
        } else if let Some(step) = steps.last_mut() {
            step.push_str(line);
            step.push('\n');
        }
    }
    steps.retain(|s| s.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--")));
    steps
}

/// Where [`run`] stops, as a crash at that point would, for tests: in migration `migration`
/// (its index in [`mysql_migrations`]), once step `step` is recorded as begun, and after
/// running it too if `applied`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Index of the migration in [`mysql_migrations`].
    pub migration: usize,
    /// Index of the step in that migration.
    pub step: usize,
    /// Whether the step's SQL ran before the cut.
    pub applied: bool,
}

/// The schema of the connection's database as text: equal texts, equal schemas
/// (tables, columns, indexes, constraints, routines, triggers; not rows).
pub(crate) async fn schema_of(conn: &mut AsyncMysqlConnection) -> QueryResult<String> {
    let mut lines = Vec::new();
    for query in SCHEMA_QUERIES {
        let rows = diesel::sql_query(*query).load::<Line>(conn).await?;
        lines.extend(rows.into_iter().filter_map(|r| r.line));
    }
    if let Ok(rows) = diesel::sql_query(CHECKS_QUERY).load::<Line>(conn).await {
        lines.extend(rows.into_iter().filter_map(|r| r.line));
    }
    lines.sort();
    Ok(lines.join("\n"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
}

/// Applies the pending migrations on `conn` (which holds the migration lock), completing
/// one a crash cut short. Returns the names of the migrations applied. Stops early at `cut`.
pub(crate) async fn run(conn: &mut AsyncMysqlConnection, cut: Option<Cut>) -> Result<Vec<String>, String> {
    let migrations = mysql_migrations()?;
    let q = |what: &'static str| move |e: diesel::result::Error| format!("{what}: {e}");
    conn.batch_execute(APPLIED_DDL).await.map_err(q("creating __diesel_schema_migrations"))?;
    conn.batch_execute(JOURNAL_DDL).await.map_err(q("creating __chat_migration_steps"))?;
    let done: HashSet<String> = applied::table
        .select(applied::version)
        .load(conn)
        .await
        .map_err(q("reading the applied migrations"))?
        .into_iter()
        .collect();

    let mut ran = Vec::new();
    for (index, migration) in migrations.iter().enumerate() {
        if done.contains(&migration.version) {
            continue;
        }
        let stop = cut.filter(|c| c.migration == index);
        if !apply(conn, migration, stop).await? {
            return Ok(ran);
        }
        ran.push(migration.name.clone());
    }
    Ok(ran)
}

/// Applies one migration, or completes it. `false` when it stopped at `cut`.
async fn apply(
    conn: &mut AsyncMysqlConnection,
    m: &MysqlMigration,
    cut: Option<Cut>,
) -> Result<bool, String> {
    let total = m.steps.len();
    let step_error =
        |k: usize, e: &dyn std::fmt::Display| format!("{} step {} of {total}: {e}", m.name, k + 1);
    let begun = journal::table
        .find(&m.version)
        .select((journal::step, journal::state, journal::schema_before))
        .first::<(i32, String, String)>(conn)
        .await
        .optional()
        .map_err(|e| format!("reading the migration journal: {e}"))?;

    let mut next = 0;
    if let Some((step, state, before)) = begun {
        let k = usize::try_from(step).unwrap_or(usize::MAX);
        let Some(sql) = m.steps.get(k) else {
            return Err(format!(
                "{}: the journal says step {} was begun, but it has {total} steps (was a released migration edited?)",
                m.name,
                k.saturating_add(1)
            ));
        };
        if state == RUNNING {
            // Cut by a crash: run it again. If it fails, it had been applied only if the
            // schema moved since it began; otherwise it fails for its own reasons.
            tracing::warn!(migration = %m.name, step = k + 1, of = total, "completing a migration cut short");
            if let Err(e) = conn.batch_execute(sql).await {
                let now = schema_of(conn).await.map_err(|e| format!("reading the schema: {e}"))?;
                if now == before {
                    mark_failed(conn, &m.version).await;
                    return Err(step_error(k, &e));
                }
                tracing::info!(migration = %m.name, step = k + 1, "the cut step had been applied");
            }
            next = k + 1;
        } else {
            // It failed in front of a node before: try it again from the start.
            next = k;
        }
    }

    for (k, sql) in m.steps.iter().enumerate().skip(next) {
        let before = schema_of(conn).await.map_err(|e| format!("reading the schema: {e}"))?;
        let row = (
            journal::version.eq(&m.version),
            journal::step.eq(i32::try_from(k).unwrap_or(i32::MAX)),
            journal::state.eq(RUNNING),
            journal::schema_before.eq(&before),
            journal::updated_at.eq(now_ms()),
        );
        diesel::replace_into(journal::table)
            .values(row)
            .execute(conn)
            .await
            .map_err(|e| format!("writing the migration journal: {e}"))?;
        if cut.is_some_and(|c| c.step == k && !c.applied) {
            return Ok(false);
        }
        if let Err(e) = conn.batch_execute(sql).await {
            mark_failed(conn, &m.version).await;
            return Err(step_error(k, &e));
        }
        if cut.is_some_and(|c| c.step == k) {
            return Ok(false);
        }
    }

    let version = m.version.clone();
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        diesel::insert_into(applied::table).values(applied::version.eq(&version)).execute(conn).await?;
        diesel::delete(journal::table.find(&version)).execute(conn).await?;
        Ok(())
    })
    .await
    .map_err(|e| format!("recording {}: {e}", m.name))?;
    Ok(true)
}

/// A step failed in front of us: the next run tries it again and reports its failure as is.
async fn mark_failed(conn: &mut AsyncMysqlConnection, version: &str) {
    let marked = diesel::update(journal::table.find(version))
        .set((journal::state.eq(FAILED), journal::updated_at.eq(now_ms())))
        .execute(conn)
        .await;
    if let Err(e) = marked {
        tracing::warn!(error = %e, "could not mark the failed migration step in the journal");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_cut_at_step_lines_only() {
        let sql = "-- header\n\n-- step\nCREATE TABLE a (x INT);\n-- step: b, with a procedure\n\
                   CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END;\n-- steps are not split here\nDROP INDEX i ON a;\n";
        let steps = split_steps(sql);
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert_eq!(steps[0], "CREATE TABLE a (x INT);\n");
        assert!(steps[1].contains("SELECT 1; SELECT 2; END;") && steps[1].contains("DROP INDEX i ON a;"));
        assert_eq!(split_steps("CREATE TABLE a (x INT);"), vec!["CREATE TABLE a (x INT);\n".to_string()]);
    }

    #[test]
    fn every_mysql_migration_is_embedded_with_its_steps() {
        let migrations = mysql_migrations().expect("migrations");
        assert_eq!(migrations.len(), MYSQL_UP.len());
        assert!(migrations.len() >= 2);
        for m in &migrations {
            assert!(!m.steps.is_empty(), "{} has no step", m.name);
            assert!(m.name.starts_with(&m.version[..4]), "{} / {}", m.name, m.version);
        }
    }
}
