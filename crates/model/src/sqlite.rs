//! [`SqliteStore`]: the store over an embedded SQLite file (the single-node
//! default), through diesel's `SqliteConnection` on tokio's blocking pool.
//! The queries themselves are in `store.rs`, shared with MySQL.
//!
//! One connection serves the whole store: SQLite allows one writer at a time
//! anyway, and a single connection can never fail with "database is locked"
//! on a read-then-write transaction. Other processes on the same file wait up
//! to `busy_timeout`.
//!
//! The write-ahead log is copied back into the database file by a thread of the store's
//! own ([`Checkpointer`]), never by a commit: SQLite's automatic checkpoint runs inside
//! the commit that crosses 1,000 WAL pages, and held that batch, and every chat queued
//! behind it, for the copy and its fsync (100–500 ms at 5,000 msgs/s, measured).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chat_ports::StoreError;
use diesel::connection::SimpleConnection;
use diesel::{Connection, ConnectionError, ConnectionResult, SqliteConnection};
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

/// Run on every new connection. `busy_timeout` first: switching to WAL may wait on another
/// process. No automatic checkpoints: the [`Checkpointer`] runs them. The database file is
/// read through a memory map (256 MiB of address space, pages shared with the OS cache)
/// and each connection caches 16 MiB of pages: with SQLite's defaults (no map, 2 MiB) the
/// append's index lookups read their pages with a `pread` copy each.
const PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                       PRAGMA wal_autocheckpoint = 0; PRAGMA mmap_size = 268435456; \
                       PRAGMA cache_size = -16384;";

/// How often the checkpointer copies what the WAL gained into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// A WAL past this size is checkpointed with RESTART, which waits for the writer's current
/// transaction, so that the WAL cannot grow without bound when passive checkpoints, which
/// never wait, keep falling behind a busy writer.
const WAL_LIMIT: u64 = 64 << 20;
/// A WAL holding more than this after a checkpoint is finished by the writer
/// ([`Checkpointer::finish`]), so that it starts over and stays small.
const WAL_RESET: u64 = 8 << 20;

/// A thread with a connection of its own that checkpoints the WAL every [`CHECKPOINT_EVERY`]:
/// PASSIVE (copies what no reader still needs, never waits for the writer, whose commits
/// go on meanwhile); past [`WAL_RESET`] the writer finishes it between two transactions
/// ([`Checkpointer::finish`]) so that the WAL starts over; RESTART when the WAL holds more
/// than [`WAL_LIMIT`] all the same. A failed checkpoint is logged and tried again at the
/// next tick; the WAL keeps everything until then. Stops when the store is dropped.
pub(crate) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    /// Set when the WAL holds more than [`WAL_RESET`] after a PASSIVE checkpoint: the
    /// writer's connection finishes it after its next commit ([`Checkpointer::finish`]).
    finish: Arc<std::sync::atomic::AtomicBool>,
}

impl Checkpointer {
    fn start(path: &str) -> Option<Checkpointer> {
        if path == ":memory:" || path.starts_with("file::memory:") {
            return None;
        }
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let finish = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (db, flag, to_finish) = (path.to_owned(), stop.clone(), finish.clone());
        let spawned = std::thread::Builder::new().name("sqlite-checkpoint".into()).spawn(move || {
            // The thread's connection and the database's page size (fixed once the file is
            // in WAL mode), read once per connection.
            let mut conn: Option<(SqliteConnection, i64)> = None;
            loop {
                let (lock, wake) = &*flag;
                let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                let (guard, _) = wake
                    .wait_timeout_while(guard, CHECKPOINT_EVERY, |stop| !*stop)
                    .unwrap_or_else(|e| e.into_inner());
                if *guard {
                    return;
                }
                drop(guard);
                let result = match conn.as_mut() {
                    Some((c, page)) => checkpoint(c, *page, &to_finish),
                    None => SqliteConnection::establish(&db)
                        .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
                        .and_then(|mut c| {
                            use diesel::RunQueryDsl;
                            SimpleConnection::batch_execute(&mut c, PRAGMAS)?;
                            let page =
                                diesel::sql_query("PRAGMA page_size").get_result::<PageSize>(&mut c)?;
                            conn = Some((c, page.page_size));
                            Ok(())
                        }),
                };
                if let Err(e) = result {
                    tracing::warn!(db = %db, error = %e, "a WAL checkpoint failed; trying again");
                    conn = None;
                }
            }
        });
        match spawned {
            Ok(_) => Some(Checkpointer { stop, finish }),
            Err(e) => {
                tracing::warn!(db = %path, error = %e, "no checkpoint thread; the WAL is checkpointed by commits");
                None
            }
        }
    }

    /// On the writer's connection, between two of its transactions: a PASSIVE checkpoint
    /// there meets no other writer, so it copies what the checkpoint thread had left and
    /// the next transaction starts the WAL over from its beginning. Under a steady stream
    /// of commits the thread's own checkpoints never catch up with the writer, and the WAL
    /// would only ever be reset by a RESTART. Cheap: the thread has copied the rest.
    pub(crate) fn finish(&self, c: &mut SqliteConnection) {
        if self.finish.swap(false, std::sync::atomic::Ordering::Relaxed)
            && let Err(e) = SimpleConnection::batch_execute(c, "PRAGMA wal_checkpoint(PASSIVE);")
        {
            tracing::debug!(error = %e, "finishing a WAL checkpoint on the writer failed");
        }
    }
}

/// What `PRAGMA wal_checkpoint` answers: the frames in the WAL and how many of them are
/// in the database file now.
#[derive(diesel::QueryableByName)]
struct CheckpointDone {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    checkpointed: i32,
}

/// One checkpoint tick: PASSIVE; past [`WAL_RESET`] the writer is asked to finish it; past
/// [`WAL_LIMIT`] (the writer did not get to it) RESTART. What the WAL holds is read from the
/// checkpoint's answer, not from the file's size: SQLite reuses the file from its start
/// without shrinking it, so a WAL that was once large made every tick a RESTART, and a
/// RESTART waits for the writer and holds it while it copies.
fn checkpoint(
    c: &mut SqliteConnection,
    page: i64,
    finish: &std::sync::atomic::AtomicBool,
) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;

    let done = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<CheckpointDone>(c)?;
    let held = i64::from(done.log).saturating_mul(page);
    if held > WAL_RESET as i64 {
        finish.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    if held > WAL_LIMIT as i64 {
        diesel::sql_query("PRAGMA wal_checkpoint(RESTART)").get_result::<CheckpointDone>(c)?;
        tracing::debug!(
            frames = done.log,
            backfilled = done.checkpointed,
            "the WAL was past its limit: restarted"
        );
    }
    Ok(())
}

/// What `PRAGMA page_size` answers.
#[derive(diesel::QueryableByName)]
struct PageSize {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    page_size: i64,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
    }
}

/// Makes the appends' commits durable off the writer's connection. With `synchronous =
/// FULL` each commit fsyncs the WAL on the writer, and the store's one connection, and every
/// batch behind it, waits for the disk: a third of the writer's time per batch at 10,000
/// msgs/s (timed inside the append). Instead the append commits with `synchronous = NORMAL`
/// (its frames written, not synced), releases the connection for the next batch, and waits
/// here: this thread fsyncs the WAL file once for every commit that came before the fsync
/// started, and only then is the batch answered, so a power cut still loses nothing
/// acknowledged. What makes that sound:
/// - `fdatasync` on any descriptor of the WAL file flushes every frame written to it before
///   the call, whoever wrote them; the file is opened by name for each fsync, so it is always
///   the WAL the writer is appending to;
/// - frames that a checkpoint copied and a later transaction overwrote (the WAL starting over)
///   were fsynced into the database file by that checkpoint before the WAL could start over;
/// - after a power cut SQLite keeps the WAL's frames up to the last whole commit whose
///   checksums chain: a torn later commit (never acknowledged) is dropped, an fsynced earlier
///   one kept.
///
/// Only the append commits this way; every other write on the store commits with `FULL`.
/// Stops when the store is dropped.
pub(crate) struct WalSync {
    queue: Arc<(Mutex<SyncQueue>, Condvar)>,
    /// fsyncs done (read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    rounds: Arc<std::sync::atomic::AtomicU64>,
    /// Milliseconds the thread sleeps before each fsync: always 0 but in tests, which slow
    /// the disk down so that an append that did not wait for its fsync is caught returning.
    #[cfg_attr(not(test), allow(dead_code))]
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Default)]
struct SyncQueue {
    /// Appends waiting for an fsync that starts after their commit.
    waiting: Vec<tokio::sync::oneshot::Sender<Result<(), String>>>,
    stop: bool,
}

impl WalSync {
    fn start(path: &str) -> Option<WalSync> {
        if path == ":memory:" || path.starts_with("file::memory:") {
            return None;
        }
        let queue = Arc::new((Mutex::new(SyncQueue::default()), Condvar::new()));
        let rounds = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (db, shared, done) = (std::path::PathBuf::from(path), queue.clone(), rounds.clone());
        let delay = delay_ms.clone();
        let spawned = std::thread::Builder::new().name("sqlite-wal-sync".into()).spawn(move || {
            let mut wal = db.clone().into_os_string();
            wal.push("-wal");
            let wal = std::path::PathBuf::from(wal);
            loop {
                let (lock, wake) = &*shared;
                let mut queue = lock.lock().unwrap_or_else(|e| e.into_inner());
                while queue.waiting.is_empty() && !queue.stop {
                    queue = wake.wait(queue).unwrap_or_else(|e| e.into_inner());
                }
                if queue.waiting.is_empty() {
                    return;
                }
                let synced = std::mem::take(&mut queue.waiting);
                drop(queue);
                let slow = delay.load(std::sync::atomic::Ordering::Relaxed);
                if slow > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(slow));
                }
                let result = sync_wal(&wal, &db).map_err(|e| e.to_string());
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Err(e) = &result {
                    tracing::error!(wal = %wal.display(), error = %e, "fsync of the WAL failed");
                }
                for waiter in synced {
                    let _ = waiter.send(result.clone());
                }
            }
        });
        match spawned {
            Ok(_) => Some(WalSync { queue, rounds, delay_ms }),
            Err(e) => {
                tracing::warn!(db = %path, error = %e, "no WAL sync thread; every commit fsyncs on the writer");
                None
            }
        }
    }

    /// Called on the writer's connection right after a commit: resolves once an fsync that
    /// started after it has finished.
    pub(crate) fn after_commit(&self) -> tokio::sync::oneshot::Receiver<Result<(), String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (lock, wake) = &*self.queue;
        lock.lock().unwrap_or_else(|e| e.into_inner()).waiting.push(tx);
        wake.notify_one();
        rx
    }
}

impl Drop for WalSync {
    fn drop(&mut self) {
        let (lock, wake) = &*self.queue;
        lock.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        wake.notify_all();
    }
}

/// fsyncs the WAL at `wal`. A WAL that is not there was removed by the last connection's
/// closing checkpoint, which had fsynced the database file: that file is fsynced again, to
/// be sure of it.
fn sync_wal(wal: &std::path::Path, db: &std::path::Path) -> std::io::Result<()> {
    match std::fs::File::open(wal) {
        Ok(file) => file.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::File::open(db)?.sync_data(),
        Err(e) => Err(e),
    }
}

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
    /// The statement that makes a connection commit this way.
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "PRAGMA synchronous = FULL;",
            Synchronous::Normal => "PRAGMA synchronous = NORMAL;",
        }
    }
}

type Conn = SyncConnectionWrapper<SqliteConnection>;

/// The last seq of each conversation the store's writer appended to, so that the next append
/// to it looks nothing up (two indexed reads per conversation per batch, a third of the
/// writer's statements at 20,000 msgs/s). Sound because the store's one connection is the
/// only writer of this process, and each append runs whole on it:
/// - written only after a commit, so it never holds a seq that was rolled back;
/// - emptied when `PRAGMA data_version` says another connection (another process) committed
///   since the last append, when the store opens a new connection (whose `data_version` is
///   not comparable), when an append fails, and when a group's conversation is
///   deleted ([`SqliteStore::forget_last_seqs`]); retention needs nothing (it raises each
///   conversation's counter to its newest seq before it deletes, so the next seq is unchanged);
/// - a seq too low could only collide, and the `(conv, seq)` unique key refuses it: the
///   append then runs again with everything looked up.
///
/// Bounded: past [`LastSeqs::MAX`] conversations it starts again empty.
#[derive(Default)]
pub(crate) struct LastSeqs {
    inner: Mutex<KnownSeqs>,
}

#[derive(Default)]
struct KnownSeqs {
    /// `PRAGMA data_version` when the map was last checked.
    data_version: i64,
    seqs: std::collections::HashMap<i64, i64>,
}

impl LastSeqs {
    const MAX: usize = 200_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, KnownSeqs> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The known last seqs of `convs`, after emptying the map if the database's
    /// `data_version` is not the one it was filled under.
    pub(crate) fn known(&self, data_version: i64, convs: impl Iterator<Item = i64>) -> Vec<(i64, i64)> {
        let mut known = self.lock();
        if known.data_version != data_version {
            known.seqs.clear();
            known.data_version = data_version;
        }
        convs.filter_map(|conv| known.seqs.get(&conv).map(|&last| (conv, last))).collect()
    }

    /// Records the last seqs a committed append left.
    pub(crate) fn committed(&self, lasts: impl IntoIterator<Item = (i64, i64)>) {
        let mut known = self.lock();
        if known.seqs.len() > Self::MAX {
            known.seqs.clear();
        }
        known.seqs.extend(lasts);
    }

    /// Forgets every seq.
    pub(crate) fn forget(&self) {
        self.lock().seqs.clear();
    }
}

/// What `PRAGMA data_version` answers.
#[derive(diesel::QueryableByName)]
pub(crate) struct DataVersion {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) data_version: i64,
}

/// The [`chat_ports::Store`] over one SQLite database file.
pub struct SqliteStore {
    pool: Pool<Conn>,
    path: String,
    /// Checkouts and their waits, for the node's metrics.
    stats: std::sync::Arc<crate::PoolStats>,
    /// The WAL's checkpoints, while the store lives (none for `:memory:`).
    pub(crate) checkpointer: Option<Arc<Checkpointer>>,
    /// The conversations' last seqs, as the appends left them.
    pub(crate) last_seqs: Arc<LastSeqs>,
    /// The appends' fsyncs, off the writer (with `synchronous = FULL`, on a file).
    pub(crate) wal_sync: Option<Arc<WalSync>>,
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
        let last_seqs = Arc::new(LastSeqs::default());
        let fresh = last_seqs.clone();
        config.custom_setup = Box::new(move |path| {
            // `data_version` counts per connection: a new one's says nothing of what the
            // last one saw, so what the appends remember goes with it.
            fresh.forget();
            setup(path, sync)
        });
        let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(path, config);
        let pool = Pool::builder(manager)
            .max_size(1)
            .build()
            .map_err(|e| ModelError::unreachable(path, e.to_string()))?;
        let mut store = SqliteStore {
            pool,
            path: path.to_string(),
            stats: Default::default(),
            checkpointer: None,
            last_seqs,
            wal_sync: None,
        };
        drop(store.conn().await.map_err(|e| ModelError::unreachable(path, reason(e)))?);
        // After the first connection, which made the file and switched it to WAL.
        store.checkpointer = Checkpointer::start(path).map(Arc::new);
        if sync == Synchronous::Full {
            store.wal_sync = WalSync::start(path).map(Arc::new);
        }
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

    /// Forgets the conversations' last seqs the appends keep ([`LastSeqs`]): after a write
    /// that lowers one, on the store's connection (which `data_version` does not see).
    pub(crate) fn forget_last_seqs(&self) {
        self.last_seqs.forget();
    }

    /// With `lazy`, the connection's next commits do not wait for the disk (`synchronous =
    /// NORMAL`); without, they wait again as the store was opened. For writes that may be
    /// lost on a power cut by design (the cursor flush: a crash already costs the cursor moves
    /// of the last flush interval, which come again as redelivery). Only when the store
    /// fsyncs its appends itself ([`WalSync`]); a connection that cannot be set back is not
    /// used again.
    pub(crate) async fn lazy_commits(
        &self,
        mut conn: Object<Conn>,
        lazy: bool,
    ) -> Result<Object<Conn>, StoreError> {
        if self.wal_sync.is_none() {
            return Ok(conn);
        }
        let pragma = if lazy { Synchronous::Normal.pragma() } else { Synchronous::Full.pragma() };
        match conn.batch_execute(pragma).await {
            Ok(()) => Ok(conn),
            Err(e) => {
                drop(Object::take(conn));
                Err(crate::store::db_error(e))
            }
        }
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

#[cfg(test)]
mod tests {
    use chat_ports::{Log, NewMessage, Store};
    use chat_proto::ConvId;
    use diesel_async::RunQueryDsl;

    use super::*;

    #[derive(diesel::QueryableByName)]
    struct Sync {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        synchronous: i32,
    }

    async fn synchronous(store: &SqliteStore) -> i32 {
        let mut conn = store.conn().await.expect("conn");
        diesel::sql_query("PRAGMA synchronous")
            .get_result::<Sync>(&mut conn)
            .await
            .expect("pragma")
            .synchronous
    }

    /// With `synchronous = FULL` (the default) the append commits without an fsync and the
    /// sync thread fsyncs the WAL before the append returns; the cursor flush commits lazily;
    /// and after both the connection commits with FULL again (2), for every other write.
    /// With `synchronous=normal` there is no sync thread and the connection stays NORMAL (1).
    #[tokio::test(flavor = "multi_thread")]
    async fn appends_are_fsynced_off_the_writer_and_other_writes_stay_full() {
        let dir = std::env::temp_dir().join(format!("chat-model-walsync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for (name, sync) in [("full.db", Synchronous::Full), ("normal.db", Synchronous::Normal)] {
            let path = dir.join(name);
            let store = SqliteStore::connect_with(path.to_str().expect("utf-8"), sync).await.expect("open");
            store.run_migrations().await.expect("migrate");
            let a = store.create_user("ws_a", "h").await.expect("user");
            let b = store.create_user("ws_b", "h").await.expect("user");
            let conv = ConvId::direct(a, b);
            let message = NewMessage {
                conv,
                sender: a,
                sender_name: "ws_a".into(),
                cid: None,
                body: "x".into(),
                created_at: 1,
            };
            // A slow disk: an append that did not wait for the sync thread's fsync would return
            // while the thread still sleeps, with no fsync counted.
            if let Some(w) = &store.wal_sync {
                w.delay_ms.store(300, std::sync::atomic::Ordering::Relaxed);
            }
            let rounds = || {
                store.wal_sync.as_ref().map(|w| {
                    std::sync::atomic::AtomicU64::load(&w.rounds, std::sync::atomic::Ordering::Relaxed)
                })
            };
            let before = rounds();
            let done = store.append(&[message.clone(), message]).await.expect("append");
            let after = rounds();
            assert_eq!(done.iter().map(|d| d.message.seq).collect::<Vec<_>>(), [1, 2]);
            store.save_all_cursors(&[(b, conv, 2)], &[("t".repeat(64), conv, 2)]).await.expect("cursors");
            match sync {
                Synchronous::Full => {
                    assert!(
                        after > before,
                        "the append returned before the sync thread's fsync of the WAL: {before:?} then {after:?}"
                    );
                    assert_eq!(synchronous(&store).await, 2, "left the connection committing lazily");
                }
                Synchronous::Normal => {
                    assert_eq!(after, None, "a sync thread for synchronous=normal");
                    assert_eq!(synchronous(&store).await, 1);
                }
            }
            let convs = store.conversations(b).await.expect("conversations");
            assert_eq!(convs.iter().map(|c| (c.last_seq, c.cursor)).collect::<Vec<_>>(), [(2, 2)]);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
