//! [`MysqlStore`]: the store over MySQL/MariaDB through mysql_async (pure Rust),
//! a bounded deadpool pool and the embedded `migrations/mysql`.
//! The queries themselves are in `store.rs`, shared with SQLite.

use std::time::Duration;

use chat_ports::StoreError;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncConnection, AsyncMysqlConnection};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};

use crate::migrations::{self, Cut};
use crate::{ModelError, checkout, reason, redact, require_multi_thread};

/// The MySQL schema, compiled in (names and versions; `migrations.rs` runs them step by step).
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/mysql");

/// How long a request waits for a pooled connection (or for a new one to be
/// established) before the store answers `Unavailable`.
pub const CONNECTION_WAIT: Duration = Duration::from_secs(5);

/// Connections of the append's own pool (the journal runs two transactions at once).
const APPEND_CONNECTIONS: usize = 3;

/// An append connection idle this long is tested before use.
const APPEND_IDLE_CHECK: Duration = Duration::from_secs(5);

/// The [`chat_ports::Store`] over MySQL/MariaDB (utf8mb4 connections, InnoDB tables).
pub struct MysqlStore {
    pool: Pool<AsyncMysqlConnection>,
    /// The append's own connections, handed out without a test query (see
    /// [`MysqlStore::append_conn`]).
    append_pool: Pool<AsyncMysqlConnection>,
    url: String,
    /// InnoDB hands a multi-row INSERT consecutive ids (`innodb_autoinc_lock_mode` 0 or 1),
    /// so the append reads them from `LAST_INSERT_ID()` instead of selecting them back.
    pub(crate) consecutive_ids: bool,
    /// Checkouts and their waits, for the node's metrics.
    stats: std::sync::Arc<crate::PoolStats>,
}

impl MysqlStore {
    /// Nothing to forget: the MySQL append reads its seqs from the counters it keeps
    /// (SQLite's store keeps them in memory, `sqlite::LastSeqs`).
    pub(crate) fn forget_last_seqs(&self) {}

    /// Builds a pool of at most `pool_size` connections to `url`
    /// (`mysql://USER:PASS@HOST:PORT/DB`) and checks one connection out, so an
    /// unreachable server fails here. Runs no migrations (see [`MysqlStore::run_migrations`]).
    pub async fn connect(url: &str, pool_size: usize) -> Result<MysqlStore, ModelError> {
        let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(url);
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .build()
            .map_err(|e| ModelError::unreachable(url, e.to_string()))?;
        let mut fast = ManagerConfig::default();
        fast.recycling_method = RecyclingMethod::Fast;
        let append_pool =
            Pool::builder(AsyncDieselConnectionManager::<AsyncMysqlConnection>::new_with_config(url, fast))
                .max_size(APPEND_CONNECTIONS)
                .build()
                .map_err(|e| ModelError::unreachable(url, e.to_string()))?;
        let mut store = MysqlStore {
            pool,
            append_pool,
            url: url.to_string(),
            consecutive_ids: false,
            stats: Default::default(),
        };
        let mut conn = store.conn().await.map_err(|e| ModelError::unreachable(url, reason(e)))?;
        store.consecutive_ids = autoinc_consecutive(&mut conn).await;
        drop(conn);
        Ok(store)
    }

    /// Runs the pending migrations on a connection of its own, under a named lock
    /// so that nodes starting together do not migrate at the same time; completes a
    /// migration a crash cut short (see `migrations.rs`).
    pub async fn run_migrations(&self) -> Result<(), ModelError> {
        self.run_migrations_until(None).await
    }

    /// As [`MysqlStore::run_migrations`], stopping at `cut` as a crash there would (for tests).
    pub(crate) async fn run_migrations_until(&self, cut: Option<Cut>) -> Result<(), ModelError> {
        require_multi_thread()?;
        let mut conn = tokio::time::timeout(CONNECTION_WAIT, AsyncMysqlConnection::establish(&self.url))
            .await
            .map_err(|_| {
                ModelError::unreachable(&self.url, format!("no connection within {CONNECTION_WAIT:?}"))
            })?
            .map_err(|e| ModelError::unreachable(&self.url, e.to_string()))?;
        lock(&mut conn).await.map_err(|reason| ModelError::migration(&self.url, reason))?;
        let applied = migrations::run(&mut conn, cut)
            .await
            .map_err(|reason| ModelError::migration(&self.url, reason))?;
        for version in applied {
            tracing::info!(db = %redact(&self.url), %version, "applied migration");
        }
        // Dropping the connection releases the lock.
        Ok(())
    }

    /// Makes the append read every new id back, as it does when the server runs
    /// `innodb_autoinc_lock_mode = 2` (MySQL 8's default), so that a MariaDB test
    /// covers that path too.
    #[doc(hidden)]
    pub fn read_ids_back(mut self) -> MysqlStore {
        self.consecutive_ids = false;
        self
    }

    /// A connection for the append. The main pool runs `SELECT 1` before handing out a
    /// connection: a second round trip for every batch. The append's connections are used
    /// without it, unless one sat idle for [`APPEND_IDLE_CHECK`] (the server may have
    /// closed it meanwhile): then it is tested, and replaced if the test fails.
    pub(crate) async fn append_conn(&self) -> Result<Object<AsyncMysqlConnection>, StoreError> {
        use diesel_async::pooled_connection::PoolableConnection;

        for _ in 0..APPEND_CONNECTIONS {
            let mut conn = checkout(CONNECTION_WAIT, self.append_pool.get(), &self.stats).await?;
            if Object::metrics(&conn).last_used() < APPEND_IDLE_CHECK
                || conn.ping(&RecyclingMethod::Verified).await.is_ok()
            {
                return Ok(conn);
            }
            drop(Object::take(conn));
        }
        checkout(CONNECTION_WAIT, self.append_pool.get(), &self.stats).await
    }

    /// Nothing to do: MySQL commits as its server is configured (SQLite's `lazy_commits`).
    pub(crate) async fn lazy_commits(
        &self,
        conn: Object<AsyncMysqlConnection>,
        _lazy: bool,
    ) -> Result<Object<AsyncMysqlConnection>, StoreError> {
        Ok(conn)
    }

    /// A pooled connection, or `Unavailable` after [`CONNECTION_WAIT`].
    pub(crate) async fn conn(&self) -> Result<Object<AsyncMysqlConnection>, StoreError> {
        checkout(CONNECTION_WAIT, self.pool.get(), &self.stats).await
    }

    /// What the pool is doing, for metrics.
    pub fn pool_probe(&self) -> crate::PoolProbe {
        let pool = self.pool.clone();
        crate::PoolProbe::new(self.stats.clone(), move || {
            let s = pool.status();
            (s.size.saturating_sub(s.available), s.waiting)
        })
    }
}

/// Whether the server gives a multi-row INSERT consecutive auto-increment ids.
async fn autoinc_consecutive(conn: &mut AsyncMysqlConnection) -> bool {
    use diesel::sql_types::{BigInt, Nullable};
    use diesel_async::RunQueryDsl;

    let mode =
        diesel::select(diesel::dsl::sql::<Nullable<BigInt>>("CAST(@@innodb_autoinc_lock_mode AS SIGNED)"))
            .get_result::<Option<i64>>(conn)
            .await;
    let consecutive = matches!(mode, Ok(Some(0 | 1)));
    if !consecutive {
        tracing::info!(mode = ?mode.ok().flatten(), "innodb_autoinc_lock_mode is not 0 or 1: the append reads new ids back");
    }
    consecutive
}

/// Takes the migration lock on this connection (held until it closes).
async fn lock(conn: &mut AsyncMysqlConnection) -> Result<(), String> {
    use diesel::sql_types::{Integer, Nullable};
    use diesel_async::RunQueryDsl;

    let got =
        diesel::select(diesel::dsl::sql::<Nullable<Integer>>("GET_LOCK('chat_cluster_migrations', 60)"))
            .get_result::<Option<i32>>(conn)
            .await
            .map_err(|e| e.to_string())?;
    if got == Some(1) { Ok(()) } else { Err("another process held the migration lock for 60 s".to_string()) }
}
