//! The storage adapter: diesel schema and the [`chat_ports::Store`] over MySQL
//! ([`MysqlStore`]) and over embedded SQLite ([`SqliteStore`]), with embedded
//! migrations. It reads no configuration: the server hands it a URL and a pool size.
//!
//! Runtime: [`open`] and [`migrate`] run diesel's migration harness, which uses
//! `tokio::task::block_in_place`, so they must be called from a **multi-thread**
//! tokio runtime (`#[tokio::main]`, `#[tokio::test(flavor = "multi_thread")]`);
//! on a current-thread runtime they return [`ModelError::Runtime`] instead of panicking.

use std::fmt::Display;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chat_ports::{Control, Log, Store, StoreError};
use diesel_async::pooled_connection::deadpool::PoolError;

pub mod adopt;
mod append;
mod control;
mod log;
mod migrations;
mod mysql;
pub mod schema;
mod sqlite;
mod store;

pub use migrations::{Cut, MysqlMigration, mysql_migrations};
pub use mysql::MysqlStore;
pub use sqlite::{SqliteStore, Synchronous};

/// Why the store could not be opened or migrated. Displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The URL is neither `sqlite://PATH` nor `mysql://USER:PASS@HOST:PORT/DB`.
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or mysql://USER:PASS@HOST:PORT/DB")]
    BadUrl(String),
    /// The database could not be reached or refused us.
    #[error("cannot reach the database at {url}: {reason}")]
    Unreachable {
        /// The URL, password hidden.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The directory for the SQLite file could not be created.
    #[error("cannot create the directory {path} for the SQLite database: {reason}")]
    Directory {
        /// The directory.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A migration failed.
    #[error("database migrations failed on {url}: {reason}")]
    Migration {
        /// The URL, password hidden.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The database holds the original C++ server's tables and none of our migrations
    /// (see [`adopt`]); nothing was changed.
    #[error(
        "found the original chat server's tables ({found}) and no chat-cluster schema; nothing was changed. To adopt them run: {command}"
    )]
    Original {
        /// The tables found and their user count.
        found: String,
        /// The command that adopts them (passwords hidden).
        command: String,
    },
    /// An adoption of the original's database started here and did not finish.
    #[error(
        "an adoption of the original chat server's database is unfinished here (phase {phase}); nothing was changed. To finish it run: {command}"
    )]
    AdoptionUnfinished {
        /// How far it got.
        phase: String,
        /// The command that finishes it (passwords hidden).
        command: String,
    },
    /// Called outside a multi-thread tokio runtime.
    #[error(
        "the database store must be opened from a multi-thread tokio runtime (migrations block in place)"
    )]
    Runtime,
}

impl ModelError {
    fn unreachable(url: &str, reason: impl Display) -> ModelError {
        ModelError::Unreachable { url: redact(url), reason: one_line(reason) }
    }

    fn migration(url: &str, reason: impl Display) -> ModelError {
        ModelError::Migration { url: redact(url), reason: one_line(reason) }
    }
}

/// Which backend a URL names.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    /// The whole `mysql://…` URL.
    Mysql(&'a str),
    /// The file path (or `:memory:`), and when commits reach the disk.
    Sqlite(&'a str, Synchronous),
}

fn parse(url: &str) -> Result<Target<'_>, ModelError> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let (path, sync) = match rest.split_once('?') {
            None => (rest, Synchronous::Full),
            Some((path, "synchronous=full")) => (path, Synchronous::Full),
            Some((path, "synchronous=normal")) => (path, Synchronous::Normal),
            Some(_) => return Err(ModelError::BadUrl(url.to_string())),
        };
        if path.is_empty() {
            return Err(ModelError::BadUrl(url.to_string()));
        }
        return Ok(Target::Sqlite(path, sync));
    }
    if let Some(rest) = url.strip_prefix("mysql://") {
        // A database name is required: the tables live in it.
        let after_host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let db = after_host.split_once('/').map(|(_, db)| db.split('?').next().unwrap_or_default());
        if db.is_none_or(str::is_empty) {
            return Err(ModelError::BadUrl(redact(url)));
        }
        return Ok(Target::Mysql(url));
    }
    Err(ModelError::BadUrl(redact(url)))
}

/// Opens the store at `url`, runs pending migrations and returns it.
///
/// - `sqlite://PATH`: a file (relative or absolute; parent directories are
///   created), or `sqlite://:memory:` for a private in-memory database.
///   One connection serves it; `pool_size` is not used. `?synchronous=normal`
///   trades the last commits on a power cut for speed (see [`Synchronous`]).
/// - `mysql://USER:PASS@HOST:PORT/DB`: a pool of at most `pool_size` connections;
///   a request that cannot get one within 5 s fails with `StoreError::Unavailable`.
///
/// An unreachable database fails here, with a one-line [`ModelError`].
/// Call it from a multi-thread tokio runtime.
pub async fn open(url: &str, pool_size: usize) -> Result<Arc<dyn Store>, ModelError> {
    connect(url, pool_size).await.map(|db| db.store)
}

/// One database seen through both ports: accounts and the message log share it.
#[derive(Clone)]
pub struct Database {
    /// Accounts, friends, groups (and the offline rows older versions wrote).
    pub store: Arc<dyn Store>,
    /// The message log, cursors and resume tokens.
    pub log: Arc<dyn Log>,
    /// Blocks, settings, friend requests, group ranks and accounts (issue 21).
    pub control: Arc<dyn Control>,
    /// The connection pool's state, for the node's metrics.
    pub pool: PoolProbe,
}

/// Checkouts from a store's pool and the time they waited (totals since start).
#[derive(Debug, Default)]
pub struct PoolStats {
    checkouts: std::sync::atomic::AtomicU64,
    wait_nanos: std::sync::atomic::AtomicU64,
}

impl PoolStats {
    fn record(&self, waited: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.checkouts.fetch_add(1, Relaxed);
        self.wait_nanos.fetch_add(u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }
}

/// A look at a store's pool: connections in use and requests waiting now, checkouts and
/// the time they waited so far.
#[derive(Clone)]
pub struct PoolProbe {
    stats: Arc<PoolStats>,
    status: Arc<dyn Fn() -> (usize, usize) + Send + Sync>,
}

impl PoolProbe {
    fn new(stats: Arc<PoolStats>, status: impl Fn() -> (usize, usize) + Send + Sync + 'static) -> PoolProbe {
        PoolProbe { stats, status: Arc::new(status) }
    }

    /// Connections checked out now, and requests waiting for one.
    pub fn in_use_and_waiting(&self) -> (usize, usize) {
        (self.status)()
    }

    /// Checkouts so far, and the seconds they waited in all.
    pub fn checkouts_and_wait(&self) -> (u64, f64) {
        use std::sync::atomic::Ordering::Relaxed;
        let nanos = self.stats.wait_nanos.load(Relaxed);
        (self.stats.checkouts.load(Relaxed), nanos as f64 / 1e9)
    }
}

/// As [`open`], with the message log of the same database.
pub async fn connect(url: &str, pool_size: usize) -> Result<Database, ModelError> {
    require_multi_thread()?;
    match parse(url)? {
        Target::Mysql(url) => {
            let store = MysqlStore::connect(url, pool_size).await?;
            // Not over the original's tables, nor over an unfinished adoption.
            let mut conn = store.conn().await.map_err(|e| ModelError::unreachable(url, reason(e)))?;
            adopt::check_before_migrating(&mut conn, url).await?;
            drop(conn);
            store.run_migrations().await?;
            let pool = store.pool_probe();
            let store = Arc::new(store);
            Ok(Database { store: store.clone(), log: store.clone(), control: store, pool })
        }
        Target::Sqlite(path, sync) => {
            if path != ":memory:" {
                create_parent(path).await?;
            }
            let store = SqliteStore::connect_with(path, sync).await?;
            store.run_migrations().await?;
            let pool = store.pool_probe();
            let store = Arc::new(store);
            Ok(Database { store: store.clone(), log: store.clone(), control: store, pool })
        }
    }
}

/// Runs the pending migrations of the database at `url` (see [`open`] for the
/// URL forms) and closes it. Call it from a multi-thread tokio runtime.
pub async fn migrate(url: &str) -> Result<(), ModelError> {
    open(url, 1).await.map(drop)
}

/// As [`migrate`] on a MySQL database, stopping at `cut` as a crash there would: what a
/// node killed mid-migration leaves behind, for tests. The next [`migrate`] completes it.
#[doc(hidden)]
pub async fn migrate_until(url: &str, cut: Cut) -> Result<(), ModelError> {
    require_multi_thread()?;
    match parse(url)? {
        Target::Mysql(url) => MysqlStore::connect(url, 1).await?.run_migrations_until(Some(cut)).await,
        Target::Sqlite(..) => Err(ModelError::BadUrl(redact(url))),
    }
}

async fn create_parent(path: &str) -> Result<(), ModelError> {
    match Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| ModelError::Directory { path: dir.display().to_string(), reason: one_line(e) }),
        _ => Ok(()),
    }
}

fn require_multi_thread() -> Result<(), ModelError> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => Ok(()),
        _ => Err(ModelError::Runtime),
    }
}

/// Waits at most `wait` for a pooled connection; any failure is `Unavailable`.
async fn checkout<T>(
    wait: Duration,
    get: impl Future<Output = Result<T, PoolError>>,
    stats: &PoolStats,
) -> Result<T, StoreError> {
    let started = tokio::time::Instant::now();
    match tokio::time::timeout(wait, get).await {
        Ok(Ok(conn)) => {
            stats.record(started.elapsed());
            Ok(conn)
        }
        Ok(Err(PoolError::Backend(e))) => Err(StoreError::Unavailable(one_line(e))),
        Ok(Err(e)) => Err(StoreError::Unavailable(one_line(e))),
        Err(_) => Err(StoreError::Unavailable(format!("no database connection within {wait:?}"))),
    }
}

/// The text of a failed first checkout, for [`ModelError::Unreachable`].
fn reason(e: StoreError) -> String {
    match e {
        StoreError::Unavailable(text) | StoreError::Internal(text) => text,
        other => other.to_string(),
    }
}

/// The URL with its password replaced by `***`, for messages and logs.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((userinfo, host)) = rest.rsplit_once('@') else { return url.to_string() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

fn one_line(text: impl Display) -> String {
    text.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed() {
        let full = Synchronous::Full;
        assert_eq!(parse("sqlite://data/chat.db").ok(), Some(Target::Sqlite("data/chat.db", full)));
        assert_eq!(parse("sqlite:///var/lib/chat.db").ok(), Some(Target::Sqlite("/var/lib/chat.db", full)));
        assert_eq!(parse("sqlite://:memory:").ok(), Some(Target::Sqlite(":memory:", full)));
        assert_eq!(
            parse("sqlite://x.db?synchronous=normal").ok(),
            Some(Target::Sqlite("x.db", Synchronous::Normal))
        );
        assert_eq!(parse("sqlite://x.db?synchronous=full").ok(), Some(Target::Sqlite("x.db", full)));
        assert!(matches!(parse("sqlite://x.db?synchronous=off"), Err(ModelError::BadUrl(_))));
        let my = "mysql://u:p@127.0.0.1:3306/chat";
        assert_eq!(parse(my).ok(), Some(Target::Mysql(my)));
        assert!(matches!(parse("mysql://u:p@127.0.0.1:3306"), Err(ModelError::BadUrl(_))));
        assert!(matches!(parse("mysql://u:p@127.0.0.1:3306/"), Err(ModelError::BadUrl(_))));
        assert!(matches!(parse("sqlite://"), Err(ModelError::BadUrl(_))));
        assert!(matches!(parse("postgres://u:p@h/db"), Err(ModelError::BadUrl(_))));
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact("mysql://chat:s3cret@h:1/db"), "mysql://chat:***@h:1/db");
        assert_eq!(redact("mysql://chat@h:1/db"), "mysql://chat@h:1/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
        let e = parse("pg://a:secret@h/db").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn errors_are_one_line() {
        let e = ModelError::unreachable("mysql://a:b@h:1/d", "line one\nline two");
        assert_eq!(e.to_string(), "cannot reach the database at mysql://a:***@h:1/d: line one line two");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_current_thread_runtime_is_refused() {
        assert!(matches!(open("sqlite://:memory:", 1).await, Err(ModelError::Runtime)));
    }
}
