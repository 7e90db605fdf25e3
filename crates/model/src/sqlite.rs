//! [`SqliteStore`]: the store over an embedded SQLite file (the single-node
//! default), through diesel's `SqliteConnection` on tokio's blocking pool.
//! The queries themselves are in `store.rs`, shared with MySQL.
//!
//! One connection serves the whole store: SQLite allows one writer at a time
//! anyway, and a single connection can never fail with "database is locked"
//! on a read-then-write transaction. Other processes on the same file wait up
//! to `busy_timeout`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chat_ports::StoreError;
use diesel::{ConnectionError, ConnectionResult, SqliteConnection};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::{ModelError, checkout, reason, require_multi_thread};

/// The SQLite schema, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// How long a request waits for the connection before the store answers
/// `Unavailable`. Longer than MySQL's: requests queue on one connection.
pub const CONNECTION_WAIT: Duration = Duration::from_secs(10);

/// Run on every new connection. `busy_timeout` first: switching to WAL may wait on another process.
const PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;";

/// When a commit reaches the disk (SQLite's `synchronous`, in WAL mode). Either way a
/// killed process loses nothing committed, and the file stays consistent; they differ on
/// a power cut or a kernel crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is fsynced before it returns: a power cut loses nothing acknowledged.
    /// The default; the group commit pays one fsync per batch, not per message.
    #[default]
    Full,
    /// Commits are fsynced at checkpoints only: a power cut may lose the commits of the
    /// last moments (never the file's consistency).
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "PRAGMA synchronous = FULL;",
            Synchronous::Normal => "PRAGMA synchronous = NORMAL;",
        }
    }
}

type Conn = SyncConnectionWrapper<SqliteConnection>;

/// The [`chat_ports::Store`] over one SQLite database file.
pub struct SqliteStore {
    pool: Pool<Conn>,
    path: String,
    /// Checkouts and their waits, for the node's metrics.
    stats: std::sync::Arc<crate::PoolStats>,
}

fn setup(path: &str, sync: Synchronous) -> Pin<Box<dyn Future<Output = ConnectionResult<Conn>> + Send + '_>> {
    Box::pin(async move {
        let mut conn = Conn::establish(path).await?;
        conn.batch_execute(PRAGMAS).await.map_err(ConnectionError::CouldntSetupConfiguration)?;
        conn.batch_execute(sync.pragma()).await.map_err(ConnectionError::CouldntSetupConfiguration)?;
        Ok(conn)
    })
}

impl SqliteStore {
    /// Opens (creating it if needed) the database file at `path` (`:memory:` for a
    /// private in-memory database, for tests). Creates no directories and runs no
    /// migrations (see [`SqliteStore::run_migrations`]).
    pub async fn connect(path: &str) -> Result<SqliteStore, ModelError> {
        SqliteStore::connect_with(path, Synchronous::default()).await
    }

    /// [`SqliteStore::connect`] with commits reaching the disk as `sync` says.
    pub async fn connect_with(path: &str, sync: Synchronous) -> Result<SqliteStore, ModelError> {
        let mut config = ManagerConfig::default();
        config.custom_setup = Box::new(move |path| setup(path, sync));
        let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(path, config);
        let pool = Pool::builder(manager)
            .max_size(1)
            .build()
            .map_err(|e| ModelError::unreachable(path, e.to_string()))?;
        let store = SqliteStore { pool, path: path.to_string(), stats: Default::default() };
        drop(store.conn().await.map_err(|e| ModelError::unreachable(path, reason(e)))?);
        Ok(store)
    }

    /// Runs the pending migrations. Needs a multi-thread tokio runtime
    /// (diesel's migration harness blocks in place).
    pub async fn run_migrations(&self) -> Result<(), ModelError> {
        require_multi_thread()?;
        let conn = self.conn().await.map_err(|e| ModelError::unreachable(&self.path, reason(e)))?;
        let mut harness = AsyncMigrationHarness::new(conn);
        let applied = harness
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| ModelError::migration(&self.path, e.to_string()))?;
        for version in applied {
            tracing::info!(db = %self.path, %version, "applied migration");
        }
        Ok(())
    }

    /// The store's connection, or `Unavailable` after [`CONNECTION_WAIT`].
    pub(crate) async fn conn(&self) -> Result<Object<Conn>, StoreError> {
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
