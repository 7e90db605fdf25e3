//! The append, the hot path of the message log, once per backend: what it costs
//! is what store-first delivery costs (ARCHITECTURE.md, "The cost of an append").
//!
//! Both backends share the planning here ([`Plan`]: which messages of a batch are
//! new, which repeat a `(sender, cid)` stored before or earlier in the batch) and
//! differ in how the new ones are stored:
//! - MySQL: one `CALL chat_append_v1(?, ?, ?)` per batch (migrations/mysql,
//!   `append_procedure`), a statement diesel prepares once per connection and
//!   caches: one round trip and one transaction whatever the batch holds; a batch
//!   with one new message calls `chat_append_one_v1` (`append_one`) instead, the
//!   message as scalars, cheaper per commit.
//! - SQLite: the whole transaction as one closure on the store's connection thread
//!   (one hop to the blocking pool per batch, not one per statement), each statement
//!   of a fixed shape that diesel caches.
//!
//! Not here: the other log queries (`log.rs`), batching (the service's journal).

use std::collections::{BTreeMap, HashMap};

use chat_ports::{Appended, LoggedMessage, NewMessage, StoreError};
use chat_proto::{ConvId, UserId};
use diesel::connection::SimpleConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{ExpressionMethods, QueryDsl, QueryResult};

use crate::log::{ROW, Row, logged};
use crate::mysql::MysqlStore;
use crate::schema::messages;
use crate::sqlite::{SqliteStore, Synchronous};
use crate::store::Fail;

/// Attempts of an append that hit a deadlock, a lock wait timeout or a concurrent duplicate.
const APPEND_ATTEMPTS: u32 = 5;

/// Worth running the append again: a deadlock between two nodes' appends, a lock wait that
/// timed out, or a copy of a `(sender, cid)` committed meanwhile (looked up, then skipped).
fn retryable(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => true,
        DieselError::DatabaseError(_, info) => {
            let m = info.message().to_ascii_lowercase();
            m.contains("deadlock") || m.contains("lock wait timeout")
        }
        _ => false,
    }
}

/// Earlier copies of `(sender, cid)` pairs, as stored.
type Earlier = HashMap<(i32, String), LoggedMessage>;

/// A batch sorted out: the answers known before storing anything, and the new messages.
struct Plan {
    /// Per message of the batch, its answer once known.
    out: Vec<Option<Appended>>,
    /// `(i, j)`: message `i` repeats message `j` of the same batch.
    repeats: Vec<(usize, usize)>,
    /// The new messages (indices into the batch), in order.
    fresh: Vec<usize>,
}

impl Plan {
    /// Sorts `batch` out, given the copies of its `(sender, cid)` pairs stored before.
    fn new(batch: &[NewMessage], earlier: &Earlier) -> Plan {
        let mut out = vec![None; batch.len()];
        let mut repeats = Vec::new();
        let mut fresh = Vec::with_capacity(batch.len());
        let mut in_batch: HashMap<(i32, &str), usize> = HashMap::new();
        for (i, m) in batch.iter().enumerate() {
            if let Some(cid) = m.cid.as_deref() {
                if let Some(first) = earlier.get(&(m.sender.0, cid.to_string())) {
                    out[i] = Some(Appended { message: first.clone(), duplicate: true });
                    continue;
                }
                if let Some(&j) = in_batch.get(&(m.sender.0, cid)) {
                    repeats.push((i, j));
                    continue;
                }
                in_batch.insert((m.sender.0, cid), i);
            }
            fresh.push(i);
        }
        Plan { out, repeats, fresh }
    }

    /// Records that the new message `i` was stored as `mid` with `seq`.
    fn stored(&mut self, batch: &[NewMessage], i: usize, mid: i64, seq: i64) {
        let m = &batch[i];
        let message = LoggedMessage {
            mid,
            conv: m.conv,
            seq,
            sender: m.sender,
            sender_name: m.sender_name.clone(),
            body: m.body.clone(),
            created_at: m.created_at,
        };
        self.out[i] = Some(Appended { message, duplicate: false });
    }

    /// The answer, in the batch's order.
    fn finish(mut self) -> Result<Vec<Appended>, StoreError> {
        for (i, j) in std::mem::take(&mut self.repeats) {
            let message = self.out[j].as_ref().map(|a| a.message.clone());
            self.out[i] = message.map(|message| Appended { message, duplicate: true });
        }
        self.out
            .into_iter()
            .map(|a| a.ok_or_else(|| StoreError::Internal("append lost a message".into())))
            .collect()
    }
}

/// The `(sender, cid)` pairs of `batch` as stored, looked up only after an append met a
/// duplicate (a resend: rare, so this statement's varying shape does not matter).
async fn earlier_copies(
    conn: &mut diesel_async::AsyncMysqlConnection,
    batch: &[NewMessage],
) -> Result<Earlier, DieselError> {
    use diesel_async::RunQueryDsl;

    let with_cid: Vec<&NewMessage> = batch.iter().filter(|m| m.cid.is_some()).collect();
    let senders: Vec<i32> = with_cid.iter().map(|m| m.sender.0).collect();
    let cids: Vec<&str> = with_cid.iter().filter_map(|m| m.cid.as_deref()).collect();
    let rows = messages::table
        .filter(messages::sender.eq_any(senders))
        .filter(messages::cid.eq_any(cids))
        .select((ROW, messages::cid))
        .load::<(Row, Option<String>)>(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(row, cid)| {
            let message = logged(row);
            ((message.sender.0, cid.unwrap_or_default()), message)
        })
        .collect())
}

/// `CALL chat_append_v1(convs, msgs, ids_back)`: a statement of one fixed shape, so diesel
/// prepares it once per connection and caches it (diesel caches no `sql_query`, `UPDATE`
/// or multi-row `INSERT`: each of those is prepared, executed once and closed). The
/// parameters are bound, never spliced into the text.
#[derive(Debug, Clone, diesel::query_builder::QueryId)]
struct AppendCall {
    convs: String,
    msgs: String,
    ids_back: bool,
}

impl diesel::query_builder::QueryFragment<diesel::mysql::Mysql> for AppendCall {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::mysql::Mysql>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Bool, Text};
        out.push_sql("CALL chat_append_v1(");
        out.push_bind_param::<Text, _>(&self.convs)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.msgs)?;
        out.push_sql(", ");
        out.push_bind_param::<Bool, _>(&self.ids_back)?;
        out.push_sql(")");
        Ok(())
    }
}

impl diesel::query_builder::Query for AppendCall {
    type SqlType = (
        diesel::sql_types::Nullable<diesel::sql_types::Text>,
        diesel::sql_types::Nullable<diesel::sql_types::BigInt>,
        diesel::sql_types::Nullable<diesel::sql_types::Text>,
    );
}

/// `CALL chat_append_one_v1(conv, sender, sendername, cid, body, created_at)`: a batch with
/// one new message, which is what a quiet node commits nearly every time. It costs MariaDB
/// a quarter to a third less per commit than `chat_append_v1` with one message: no
/// JSON_TABLE, no sort through temporary files (migrations/mysql, `append_one`;
/// bench/README.md, "One message per CALL"). Fixed text, bound parameters, cached like
/// [`AppendCall`].
#[derive(Debug, Clone)]
struct AppendOneCall<'a> {
    conv: i64,
    sender: i32,
    sender_name: &'a str,
    cid: &'a str,
    body: &'a str,
    created_at: i64,
}

impl diesel::query_builder::QueryFragment<diesel::mysql::Mysql> for AppendOneCall<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::mysql::Mysql>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Integer, Text};
        out.push_sql("CALL chat_append_one_v1(");
        out.push_bind_param::<BigInt, _>(&self.conv)?;
        out.push_sql(", ");
        out.push_bind_param::<Integer, _>(&self.sender)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.sender_name)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.cid)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.body)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.created_at)?;
        out.push_sql(")");
        Ok(())
    }
}

impl diesel::query_builder::QueryId for AppendOneCall<'_> {
    type QueryId = AppendOneCall<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for AppendOneCall<'_> {
    /// `(seq, mid)` of the new message.
    type SqlType = (diesel::sql_types::BigInt, diesel::sql_types::BigInt);
}

impl<'a> AppendOneCall<'a> {
    fn new(m: &'a NewMessage) -> AppendOneCall<'a> {
        AppendOneCall {
            conv: m.conv.0,
            sender: m.sender.0,
            sender_name: &m.sender_name,
            cid: m.cid.as_deref().unwrap_or(""),
            body: &m.body,
            created_at: m.created_at,
        }
    }
}

/// The procedure's answer: `lasts` (`[[conv, lastseq], …]`), `first_id`, `mids` (`[[id, conv, seq], …]`).
type CallAnswer = (Option<String>, Option<i64>, Option<String>);

/// What one attempt's CALL answered.
enum Called {
    /// `chat_append_one_v1` stored the batch's one new message (recorded in the plan).
    One,
    /// `chat_append_v1`'s answer, and per new message how many later new messages its
    /// conversation has in the batch.
    Batch(CallAnswer, Vec<i64>),
}

impl AppendCall {
    /// The call storing `plan`'s new messages of `batch`.
    fn new(batch: &[NewMessage], plan: &Plan, ids_back: bool) -> Result<(AppendCall, Vec<i64>), StoreError> {
        // Per new message, how many later new messages its conversation has in the batch.
        let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
        let mut back = vec![0_i64; plan.fresh.len()];
        for (k, &i) in plan.fresh.iter().enumerate().rev() {
            let n = counts.entry(batch[i].conv.0).or_default();
            back[k] = *n;
            *n += 1;
        }
        let convs: Vec<(i64, i64)> = counts.into_iter().collect();
        let msgs: Vec<(i64, i64, i32, &str, &str, &str, i64)> = plan
            .fresh
            .iter()
            .zip(&back)
            .map(|(&i, &back)| {
                let m = &batch[i];
                let cid = m.cid.as_deref().unwrap_or("");
                (m.conv.0, back, m.sender.0, m.sender_name.as_str(), cid, m.body.as_str(), m.created_at)
            })
            .collect();
        let encode = |e: serde_json::Error| StoreError::Internal(format!("encoding an append: {e}"));
        let call = AppendCall {
            convs: serde_json::to_string(&convs).map_err(encode)?,
            msgs: serde_json::to_string(&msgs).map_err(encode)?,
            ids_back,
        };
        Ok((call, back))
    }
}

impl MysqlStore {
    /// Appends `batch` (see [`chat_ports::Log::append`]): one CALL per attempt.
    pub(crate) async fn append_batch(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
        use diesel_async::RunQueryDsl;

        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.append_conn().await?;
        let ids_back = !self.consecutive_ids;
        let mut earlier = Earlier::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut plan = Plan::new(batch, &earlier);
            if plan.fresh.is_empty() {
                return plan.finish();
            }
            let answer = if let [i] = plan.fresh[..] {
                // One new message: its own procedure, cheaper per commit.
                AppendOneCall::new(&batch[i])
                    .load::<(i64, i64)>(&mut *conn)
                    .await
                    .and_then(|rows| rows.into_iter().next().ok_or(DieselError::NotFound))
                    .map(|(seq, mid)| {
                        plan.fresh.clear();
                        plan.stored(batch, i, mid, seq);
                        Called::One
                    })
            } else {
                let (call, back) = AppendCall::new(batch, &plan, ids_back)?;
                call.load::<CallAnswer>(&mut *conn)
                    .await
                    .and_then(|rows| rows.into_iter().next().ok_or(DieselError::NotFound))
                    .map(|answer| Called::Batch(answer, back))
            };
            match answer {
                Ok(Called::One) => return plan.finish(),
                Ok(Called::Batch((lasts, first_id, mids), back)) => {
                    let decode = |what: &str, e: serde_json::Error| {
                        StoreError::Internal(format!("the append procedure's {what}: {e}"))
                    };
                    let lasts: HashMap<i64, i64> =
                        serde_json::from_str::<Vec<(i64, i64)>>(lasts.as_deref().unwrap_or("[]"))
                            .map_err(|e| decode("lasts", e))?
                            .into_iter()
                            .collect();
                    let mids: HashMap<(i64, i64), i64> = match mids {
                        Some(text) => serde_json::from_str::<Vec<(i64, i64, i64)>>(&text)
                            .map_err(|e| decode("mids", e))?
                            .into_iter()
                            .map(|(id, conv, seq)| ((conv, seq), id))
                            .collect(),
                        None => HashMap::new(),
                    };
                    let first_id = first_id.unwrap_or_default();
                    for (k, (i, back)) in std::mem::take(&mut plan.fresh).into_iter().zip(back).enumerate() {
                        let conv = batch[i].conv.0;
                        let Some(last) = lasts.get(&conv) else {
                            return Err(StoreError::Internal(format!("the append lost conversation {conv}")));
                        };
                        let seq = last - back;
                        let mid = if ids_back {
                            mids.get(&(conv, seq)).copied().unwrap_or_default()
                        } else {
                            first_id + k as i64
                        };
                        plan.stored(batch, i, mid, seq);
                    }
                    return plan.finish();
                }
                Err(e) if attempt < APPEND_ATTEMPTS && retryable(&e) => {
                    if matches!(e, DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) {
                        earlier = earlier_copies(&mut conn, batch).await.map_err(crate::store::db_error)?;
                    }
                    tracing::debug!(attempt, "append conflicted; retrying");
                }
                Err(DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => {
                    return Err(StoreError::UnknownUser);
                }
                Err(e) => {
                    let e = crate::store::db_error(e);
                    if matches!(e, StoreError::Unavailable(_)) {
                        // Never back into the pool: the append's pool hands connections out
                        // untested, and this one is gone.
                        drop(diesel_async::pooled_connection::deadpool::Object::take(conn));
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// The SQLite append, on the store's connection thread.
mod sqlite {
    use diesel::RunQueryDsl;
    use diesel::prelude::*;
    use diesel::sqlite::SqliteConnection;

    use super::*;
    use crate::schema::conversations;
    use crate::sqlite::{DataVersion, LastSeqs};

    diesel::define_sql_function! {
        /// SQLite's id of the row the connection inserted last.
        fn last_insert_rowid() -> BigInt;
    }

    /// Appends `batch` in one immediate transaction on `c`: per new message an INSERT and
    /// its rowid; a conversation's last seq is read only when `known` does not have it.
    /// Earlier copies of the batch's `(sender, cid)` pairs are looked up only when
    /// `look_up_copies` (a retry): otherwise the `(sender, cid)` unique key finds them, and
    /// the append fails, changes nothing and runs again with the lookups.
    ///
    /// Its lookups are `get_result`, never `first`: `first` adds `LIMIT ?`, and SQLite (the
    /// bundled 3.51) lets a bound LIMIT's value shape the plan, so every new binding expires
    /// the cached statement and its next step parses and plans it again. Each lookup here
    /// is by a unique key or an aggregate, one row at most, so the LIMIT was never needed.
    pub(super) fn append(
        c: &mut SqliteConnection,
        batch: &[NewMessage],
        known: &LastSeqs,
        look_up_copies: bool,
    ) -> Result<Vec<Appended>, Fail> {
        let done = c.immediate_transaction::<_, Fail, _>(|c| {
            let version = diesel::sql_query("PRAGMA data_version").get_result::<DataVersion>(c)?;
            let mut lasts: BTreeMap<i64, i64> =
                known.known(version.data_version, batch.iter().map(|m| m.conv.0)).into_iter().collect();
            // Earlier copies of the batch's (sender, cid) pairs: one indexed lookup each.
            let mut earlier = Earlier::new();
            for m in batch.iter().filter(|_| look_up_copies) {
                let Some(cid) = m.cid.as_deref() else { continue };
                let found = messages::table
                    .filter(messages::sender.eq(m.sender.0))
                    .filter(messages::cid.eq(cid))
                    .select(ROW)
                    .get_result::<Row>(c)
                    .optional()?;
                if let Some(row) = found {
                    earlier.insert((m.sender.0, cid.to_string()), logged(row));
                }
            }
            let mut plan = Plan::new(batch, &earlier);
            for i in std::mem::take(&mut plan.fresh) {
                let m = &batch[i];
                let conv = m.conv.0;
                if let std::collections::btree_map::Entry::Vacant(slot) = lasts.entry(conv) {
                    slot.insert(last_seq(c, conv)?);
                }
                let seq = lasts.get(&conv).copied().unwrap_or_default() + 1;
                lasts.insert(conv, seq);
                diesel::insert_into(messages::table)
                    .values((
                        messages::conv.eq(conv),
                        messages::seq.eq(seq),
                        messages::sender.eq(m.sender.0),
                        messages::sendername.eq(m.sender_name.as_str()),
                        messages::cid.eq(m.cid.as_deref()),
                        messages::body.eq(m.body.as_str()),
                        messages::created_at.eq(m.created_at),
                    ))
                    .execute(c)?;
                let mid = diesel::select(last_insert_rowid()).get_result::<i64>(c)?;
                plan.stored(batch, i, mid, seq);
            }
            Ok((plan.finish().map_err(Fail::Store)?, lasts))
        });
        match done {
            Ok((appended, lasts)) => {
                known.committed(lasts);
                Ok(appended)
            }
            Err(e) => {
                known.forget();
                Err(e)
            }
        }
    }

    /// A conversation's last seq, read: the larger of its counter and its newest message's
    /// seq (the counter is a floor, `log.rs`'s `last_seq!`, whose SQL literal diesel would
    /// prepare on every call). A conversation's first message creates its row (the service
    /// checked its users).
    fn last_seq(c: &mut SqliteConnection, conv: i64) -> QueryResult<i64> {
        let floor = conversations::table
            .filter(conversations::id.eq(conv))
            .select(conversations::lastseq)
            .get_result::<i64>(c)
            .optional()?;
        match floor {
            // The newest seq from the `(conv, seq)` index, whose leaf page the insert
            // dirties anyway.
            Some(floor) => Ok(messages::table
                .filter(messages::conv.eq(conv))
                .select(diesel::dsl::max(messages::seq))
                .get_result::<Option<i64>>(c)?
                .map_or(floor, |newest| newest.max(floor))),
            None => {
                let id = ConvId(conv);
                let users = id.users();
                diesel::insert_into(conversations::table)
                    .values((
                        conversations::id.eq(conv),
                        conversations::userlo.eq(users.map(|(lo, _): (UserId, UserId)| lo.0)),
                        conversations::userhi.eq(users.map(|(_, hi)| hi.0)),
                        conversations::groupid.eq(id.as_group().map(|g| g.0)),
                        conversations::lastseq.eq(0_i64),
                    ))
                    .execute(c)?;
                Ok(0)
            }
        }
    }
}

impl SqliteStore {
    /// Appends `batch` (see [`chat_ports::Log::append`]): one closure on the connection's
    /// thread, then, with `synchronous = FULL`, a wait for the sync thread's fsync of the WAL
    /// (`sqlite::WalSync`) with the connection free for the next batch.
    pub(crate) async fn append_batch(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        // The closure runs on the blocking pool, so it owns its copy of the batch.
        let owned: std::sync::Arc<[NewMessage]> = batch.into();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let batch = owned.clone();
            let checkpointer = self.checkpointer.clone();
            let known = self.last_seqs.clone();
            let wal_sync = self.wal_sync.clone();
            let result = conn
                .spawn_blocking(move |c| {
                    // The fsync is the sync thread's (`WalSync`), after the connection is free.
                    if wal_sync.is_some() {
                        SimpleConnection::batch_execute(c, Synchronous::Normal.pragma())?;
                    }
                    let done = sqlite::append(c, &batch, &known, attempt > 1);
                    let synced = match (&done, &wal_sync) {
                        (Ok(_), Some(wal_sync)) => Some(wal_sync.after_commit()),
                        _ => None,
                    };
                    if wal_sync.is_some() {
                        SimpleConnection::batch_execute(c, Synchronous::Full.pragma())?;
                    }
                    if let Some(checkpointer) = checkpointer {
                        checkpointer.finish(c);
                    }
                    Ok(done.map(|done| (done, synced)))
                })
                .await;
            match result {
                Ok(Ok((done, synced))) => {
                    // The next batch takes the connection while this one waits for the disk.
                    drop(conn);
                    let Some(synced) = synced else { return Ok(done) };
                    return match synced.await {
                        Ok(Ok(())) => Ok(done),
                        Ok(Err(e)) => Err(StoreError::Unavailable(format!("the WAL was not synced: {e}"))),
                        Err(_) => Err(StoreError::Unavailable("the WAL sync thread is gone".into())),
                    };
                }
                Ok(Err(Fail::Db(e))) if attempt < APPEND_ATTEMPTS && retryable(&e) => {
                    tracing::debug!(attempt, "append conflicted; retrying");
                }
                Ok(Err(Fail::Db(DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)))) => {
                    return Err(StoreError::UnknownUser);
                }
                Ok(Err(e)) => return Err(e.into_store()),
                Err(e) => {
                    // Not back into the pool: it may still commit without an fsync.
                    drop(diesel_async::pooled_connection::deadpool::Object::take(conn));
                    return Err(crate::store::db_error(e));
                }
            }
        }
    }
}
