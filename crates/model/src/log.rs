//! The [`Log`] queries (the message log, cursors, resume tokens, retention),
//! written once for both backends like `store.rs`: `impl_log!` expands the same
//! bodies for [`MysqlStore`] and [`SqliteStore`], which differ only in their
//! connection and in the backend named for boxed queries.
//!
//! The append is the hot path and the heart of the delivery guarantee: one
//! transaction per batch bumps each conversation's `lastseq` (the row lock
//! orders concurrent appends to one conversation, so seqs are gapless and follow
//! commit order), inserts every message in one multi-row INSERT and reads the
//! new ids back. ARCHITECTURE.md, "The message log", argues the design.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chat_ports::{Appended, ConvState, Log, LoggedMessage, NewMessage, StoreError};
use chat_proto::{ConvId, HistoryFrom, UserId};
use diesel::dsl::count;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::mysql::MysqlStore;
use crate::schema::{conversations, cursors, group_users, messages, resume_tokens};
use crate::sqlite::SqliteStore;
use crate::store::{Fail, db_error};

/// Conversations per `OR` list in one statement.
const CONVS_PER_STATEMENT: usize = 500;
/// Attempts of an append that hit a deadlock or a concurrent duplicate.
const APPEND_ATTEMPTS: u32 = 5;

/// Conversations this store knows have their row, so an append inserts each conversation's
/// row once per process (rows are never deleted while a user or group exists).
#[derive(Default)]
pub(crate) struct Opened(std::sync::Mutex<std::collections::HashSet<i64>>);

impl Opened {
    /// Rows remembered before the set starts afresh (bounds memory).
    const CAPACITY: usize = 1_000_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<i64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Of `convs`, those not known to have their row.
    fn unknown(&self, convs: impl Iterator<Item = i64>) -> Vec<i64> {
        let known = self.lock();
        convs.filter(|c| !known.contains(c)).collect()
    }

    fn remember(&self, convs: &[i64]) {
        let mut known = self.lock();
        if known.len() + convs.len() > Self::CAPACITY {
            known.clear();
        }
        known.extend(convs.iter().copied());
    }
}

/// A conversation's row: `(id, userlo, userhi, groupid)` from its key.
fn conversation_row(conv: i64) -> (i64, Option<i32>, Option<i32>, Option<i32>) {
    let conv = ConvId(conv);
    match (conv.users(), conv.as_group()) {
        (Some((lo, hi)), _) => (conv.0, Some(lo.0), Some(hi.0), None),
        (None, group) => (conv.0, None, None, group.map(|g| g.0)),
    }
}

/// `(id, conv, seq, sender, sendername, body, created_at)`, the columns of [`LoggedMessage`].
type Row = (i64, i64, i64, i32, String, String, i64);

/// The columns of a [`Row`], in its order.
const ROW: (
    messages::id,
    messages::conv,
    messages::seq,
    messages::sender,
    messages::sendername,
    messages::body,
    messages::created_at,
) = (
    messages::id,
    messages::conv,
    messages::seq,
    messages::sender,
    messages::sendername,
    messages::body,
    messages::created_at,
);

fn logged((mid, conv, seq, sender, sender_name, body, created_at): Row) -> LoggedMessage {
    LoggedMessage { mid, conv: ConvId(conv), seq, sender: UserId(sender), sender_name, body, created_at }
}

/// Worth running the transaction again: a deadlock between two nodes' appends, a lock
/// wait that timed out, or a concurrent copy of the same `(sender, cid)`.
fn retryable(e: &Fail) -> bool {
    match e {
        Fail::Db(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => true,
        Fail::Db(DieselError::DatabaseError(_, info)) => {
            let m = info.message().to_ascii_lowercase();
            m.contains("deadlock") || m.contains("lock wait timeout")
        }
        _ => false,
    }
}

/// Inserts `$rows` (a `Vec` of value tuples) into `$table`, with `$insert` (`insert_into`
/// or `insert_or_ignore_into`): in one statement on MySQL, row by row on SQLite (inside the
/// caller's transaction on its one connection, where a statement costs no round trip; its
/// batch INSERT does not take these rows).
macro_rules! insert_rows {
    (mysql, $insert:ident, $c:expr, $table:expr, $rows:expr) => {
        diesel::$insert($table).values($rows).execute($c).await?
    };
    (sqlite, $insert:ident, $c:expr, $table:expr, $rows:expr) => {{
        let mut n = 0;
        for row in $rows {
            n += diesel::$insert($table).values(row).execute($c).await?;
        }
        n
    }};
}

/// Inserts the new messages (`$rows`, in order) and returns their ids, in order. MySQL: one
/// multi-row INSERT; the ids are `LAST_INSERT_ID()` onwards where InnoDB hands out
/// consecutive ids (`$consecutive`), else they are read back (every row above a
/// conversation's old counter is ours: its row is locked). SQLite: row by row, each id read
/// right after its insert (one connection, no round trips).
macro_rules! insert_messages {
    (mysql, $c:expr, $rows:expr, $consecutive:expr, $backend:ty, $keys:expr) => {{
        let n = $rows.len();
        diesel::insert_into(messages::table).values($rows).execute($c).await?;
        if $consecutive {
            let first = diesel::select(diesel::dsl::sql::<BigInt>("CAST(LAST_INSERT_ID() AS SIGNED)"))
                .get_result::<i64>($c)
                .await?;
            (first..first + n as i64).collect::<Vec<i64>>()
        } else {
            let keys: &[(i64, i64)] = $keys;
            let mut query = messages::table
                .select((messages::id, messages::conv, messages::seq))
                .into_boxed::<$backend>();
            for &(conv, seq) in keys {
                query = query.or_filter(messages::conv.eq(conv).and(messages::seq.eq(seq)));
            }
            let found: HashMap<(i64, i64), i64> =
                query.load::<(i64, i64, i64)>($c).await?.into_iter().map(|(id, c, s)| ((c, s), id)).collect();
            keys.iter().map(|k| found.get(k).copied().unwrap_or(0)).collect::<Vec<i64>>()
        }
    }};
    (sqlite, $c:expr, $rows:expr, $consecutive:expr, $backend:ty, $keys:expr) => {{
        let _ = ($consecutive, $keys);
        let mut ids = Vec::with_capacity($rows.len());
        for row in $rows {
            diesel::insert_into(messages::table).values(row).execute($c).await?;
            ids.push(
                diesel::select(diesel::dsl::sql::<BigInt>("last_insert_rowid()"))
                    .get_result::<i64>($c)
                    .await?,
            );
        }
        ids
    }};
}

/// Writes cursor rows, keeping the greater seq where a row exists: one statement for all
/// of them on MySQL (`ON DUPLICATE KEY UPDATE`), one per row on SQLite (`ON CONFLICT`).
/// The SQL fragments are constants; every value is a bound parameter.
macro_rules! upsert_cursors {
    (mysql, $c:expr, $rows:expr) => {
        diesel::insert_into(cursors::table)
            .values($rows)
            .on_conflict(diesel::dsl::DuplicatedKeys)
            .do_update()
            .set(cursors::seq.eq(diesel::dsl::sql::<BigInt>("GREATEST(seq, VALUES(seq))")))
            .execute($c)
            .await?
    };
    (sqlite, $c:expr, $rows:expr) => {
        for row in $rows {
            diesel::insert_into(cursors::table)
                .values(row)
                .on_conflict((cursors::userid, cursors::conv))
                .do_update()
                .set(cursors::seq.eq(diesel::dsl::sql::<BigInt>("MAX(seq, excluded.seq)")))
                .execute($c)
                .await?;
        }
    };
}

/// Implements [`Log`] for `$store` (with `conn()`, `opened` and, on MySQL,
/// `consecutive_ids`), whose boxed queries name `$backend`; `$rows` is `mysql` or `sqlite`
/// (the statements that differ, in the macros above).
macro_rules! impl_log {
    ($store:ty, $backend:ty, $rows:ident, $consecutive:expr) => {
        #[async_trait]
        impl Log for $store {
            async fn append(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
                if batch.is_empty() {
                    return Ok(Vec::new());
                }
                let mut conn = self.conn().await?;
                let consecutive = ($consecutive)(self);
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let mut opened_now: Vec<i64> = Vec::new();
                    let result = conn
                        .transaction::<_, Fail, _>(async |c| {
                            // Earlier copies of the batch's (sender, cid) pairs.
                            let mut firsts: HashMap<(i32, String), LoggedMessage> = HashMap::new();
                            let with_cid: Vec<&NewMessage> =
                                batch.iter().filter(|m| m.cid.is_some()).collect();
                            if !with_cid.is_empty() {
                                let senders: Vec<i32> = with_cid.iter().map(|m| m.sender.0).collect();
                                let cids: Vec<&str> =
                                    with_cid.iter().filter_map(|m| m.cid.as_deref()).collect();
                                let rows = messages::table
                                    .filter(messages::sender.eq_any(senders))
                                    .filter(messages::cid.eq_any(cids))
                                    .select((ROW, messages::cid))
                                    .load::<(Row, Option<String>)>(c)
                                    .await?;
                                for (row, cid) in rows {
                                    let message = logged(row);
                                    firsts.insert((message.sender.0, cid.unwrap_or_default()), message);
                                }
                            }
                            // Which messages are new, which repeat an earlier one.
                            let mut out: Vec<Option<Appended>> = vec![None; batch.len()];
                            let mut repeats: Vec<(usize, usize)> = Vec::new();
                            let mut in_batch: HashMap<(i32, &str), usize> = HashMap::new();
                            let mut fresh: Vec<usize> = Vec::new();
                            let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
                            for (i, m) in batch.iter().enumerate() {
                                if let Some(cid) = &m.cid {
                                    if let Some(first) = firsts.get(&(m.sender.0, cid.clone())) {
                                        out[i] = Some(Appended { message: first.clone(), duplicate: true });
                                        continue;
                                    }
                                    if let Some(&j) = in_batch.get(&(m.sender.0, cid.as_str())) {
                                        repeats.push((i, j));
                                        continue;
                                    }
                                    in_batch.insert((m.sender.0, cid.as_str()), i);
                                }
                                *counts.entry(m.conv.0).or_default() += 1;
                                fresh.push(i);
                            }
                            if !fresh.is_empty() {
                                // A conversation's first message creates its row (the service
                                // checked that its users or group exist).
                                let new_convs = self.opened.unknown(counts.keys().copied());
                                if !new_convs.is_empty() {
                                    let rows: Vec<_> = new_convs
                                        .iter()
                                        .map(|&conv| {
                                            let (id, lo, hi, group) = conversation_row(conv);
                                            (
                                                conversations::id.eq(id),
                                                conversations::userlo.eq(lo),
                                                conversations::userhi.eq(hi),
                                                conversations::groupid.eq(group),
                                                conversations::lastseq.eq(0_i64),
                                            )
                                        })
                                        .collect();
                                    insert_rows!($rows, insert_or_ignore_into, c, conversations::table, rows);
                                }
                                // Bump each conversation's counter (its row lock orders us
                                // after any other append to it), one UPDATE per distinct count.
                                let mut by_count: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
                                for (&conv, &n) in &counts {
                                    by_count.entry(n).or_default().push(conv);
                                }
                                for (n, convs) in &by_count {
                                    let updated = diesel::update(
                                        conversations::table.filter(conversations::id.eq_any(convs)),
                                    )
                                    .set(conversations::lastseq.eq(conversations::lastseq + *n))
                                    .execute(c)
                                    .await?;
                                    if updated != convs.len() {
                                        return Err(Fail::Store(StoreError::UnknownUser));
                                    }
                                }
                                let ids: Vec<i64> = counts.keys().copied().collect();
                                let lasts: HashMap<i64, i64> = conversations::table
                                    .filter(conversations::id.eq_any(&ids))
                                    .select((conversations::id, conversations::lastseq))
                                    .load::<(i64, i64)>(c)
                                    .await?
                                    .into_iter()
                                    .collect();
                                let mut next: HashMap<i64, i64> = counts
                                    .iter()
                                    .map(|(&conv, &n)| {
                                        (conv, lasts.get(&conv).copied().unwrap_or_default() - n)
                                    })
                                    .collect();
                                let mut keys = Vec::with_capacity(fresh.len());
                                let rows: Vec<_> = fresh
                                    .iter()
                                    .map(|&i| {
                                        let m = &batch[i];
                                        let seq = next.entry(m.conv.0).or_default();
                                        *seq += 1;
                                        keys.push((m.conv.0, *seq));
                                        (
                                            messages::conv.eq(m.conv.0),
                                            messages::seq.eq(*seq),
                                            messages::sender.eq(m.sender.0),
                                            messages::sendername.eq(m.sender_name.as_str()),
                                            messages::cid.eq(m.cid.as_deref()),
                                            messages::body.eq(m.body.as_str()),
                                            messages::created_at.eq(m.created_at),
                                        )
                                    })
                                    .collect();
                                let mids = insert_messages!($rows, c, rows, consecutive, $backend, &keys);
                                for ((&i, &(_, seq)), mid) in fresh.iter().zip(&keys).zip(mids) {
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
                                    out[i] = Some(Appended { message, duplicate: false });
                                }
                                opened_now = new_convs;
                            }
                            for (i, j) in repeats {
                                let message = out[j].as_ref().map(|a| a.message.clone());
                                out[i] = message.map(|message| Appended { message, duplicate: true });
                            }
                            out.into_iter()
                                .map(|a| {
                                    a.ok_or_else(|| {
                                        Fail::Store(StoreError::Internal("append lost a message".into()))
                                    })
                                })
                                .collect::<Result<Vec<_>, Fail>>()
                        })
                        .await;
                    match result {
                        Ok(done) => {
                            self.opened.remember(&opened_now);
                            return Ok(done);
                        }
                        Err(e) if attempt < APPEND_ATTEMPTS && retryable(&e) => {
                            tracing::debug!(attempt, "append conflicted; retrying");
                        }
                        Err(e) => return Err(e.into_store()),
                    }
                }
            }

            async fn conversations(&self, user: UserId) -> Result<Vec<ConvState>, StoreError> {
                let mut conn = self.conn().await?;
                let u = user.0;
                let groups = group_users::table
                    .filter(group_users::userid.eq(u))
                    .select(group_users::groupid.nullable());
                let rows = conversations::table
                    .left_join(
                        cursors::table.on(cursors::conv.eq(conversations::id).and(cursors::userid.eq(u))),
                    )
                    .filter(
                        conversations::userlo
                            .eq(u)
                            .or(conversations::userhi.eq(u))
                            .or(conversations::groupid.eq_any(groups)),
                    )
                    .select((conversations::id, conversations::lastseq, cursors::seq.nullable()))
                    .load::<(i64, i64, Option<i64>)>(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(rows
                    .into_iter()
                    .map(|(conv, last_seq, cursor)| ConvState {
                        conv: ConvId(conv),
                        last_seq,
                        cursor: cursor.unwrap_or_default(),
                    })
                    .collect())
            }

            async fn last_seq(&self, conv: ConvId) -> Result<i64, StoreError> {
                let mut conn = self.conn().await?;
                let last = conversations::table
                    .filter(conversations::id.eq(conv.0))
                    .select(conversations::lastseq)
                    .first::<i64>(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                Ok(last.unwrap_or_default())
            }

            async fn after(
                &self,
                from: &[(ConvId, i64)],
                limit: usize,
            ) -> Result<Vec<LoggedMessage>, StoreError> {
                let mut conn = self.conn().await?;
                let mut found = Vec::new();
                for chunk in from.chunks(CONVS_PER_STATEMENT) {
                    let mut query = messages::table
                        .select(ROW)
                        .order(messages::id.asc())
                        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                        .into_boxed::<$backend>();
                    for &(conv, seq) in chunk {
                        query = query.or_filter(messages::conv.eq(conv.0).and(messages::seq.gt(seq)));
                    }
                    found.extend(
                        query.load::<Row>(&mut conn).await.map_err(db_error)?.into_iter().map(logged),
                    );
                }
                found.sort_by_key(|m| m.mid);
                found.truncate(limit);
                Ok(found)
            }

            async fn unread(
                &self,
                user: UserId,
                from: &[(ConvId, i64)],
            ) -> Result<Vec<(ConvId, u64)>, StoreError> {
                let mut conn = self.conn().await?;
                let mut counts = Vec::new();
                for chunk in from.chunks(CONVS_PER_STATEMENT) {
                    let mut cond = messages::table
                        .select(messages::id)
                        .filter(messages::id.lt(0))
                        .into_boxed::<$backend>();
                    for &(conv, seq) in chunk {
                        cond = cond.or_filter(messages::conv.eq(conv.0).and(messages::seq.gt(seq)));
                    }
                    let rows = messages::table
                        .filter(messages::id.eq_any(cond))
                        .filter(messages::sender.ne(user.0))
                        .group_by(messages::conv)
                        .select((messages::conv, count(messages::id)))
                        .load::<(i64, i64)>(&mut conn)
                        .await
                        .map_err(db_error)?;
                    counts.extend(rows.into_iter().map(|(c, n)| (ConvId(c), u64::try_from(n).unwrap_or(0))));
                }
                Ok(counts)
            }

            async fn history(
                &self,
                conv: ConvId,
                from: HistoryFrom,
                limit: usize,
            ) -> Result<Vec<LoggedMessage>, StoreError> {
                let mut conn = self.conn().await?;
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let base = messages::table.filter(messages::conv.eq(conv.0)).select(ROW).limit(limit);
                let (rows, newest_first) = match from {
                    HistoryFrom::Latest => {
                        (base.order(messages::id.desc()).load::<Row>(&mut conn).await, true)
                    }
                    HistoryFrom::Before(mid) => (
                        base.filter(messages::id.lt(mid))
                            .order(messages::id.desc())
                            .load::<Row>(&mut conn)
                            .await,
                        true,
                    ),
                    HistoryFrom::After(mid) => (
                        base.filter(messages::id.gt(mid))
                            .order(messages::id.asc())
                            .load::<Row>(&mut conn)
                            .await,
                        false,
                    ),
                };
                let mut page: Vec<LoggedMessage> = rows.map_err(db_error)?.into_iter().map(logged).collect();
                if newest_first {
                    page.reverse();
                }
                Ok(page)
            }

            async fn save_cursors(&self, list: &[(UserId, ConvId, i64)]) -> Result<(), StoreError> {
                if list.is_empty() {
                    return Ok(());
                }
                let mut conn = self.conn().await?;
                let rows: Vec<_> = list
                    .iter()
                    .map(|&(user, conv, seq)| {
                        (cursors::userid.eq(user.0), cursors::conv.eq(conv.0), cursors::seq.eq(seq))
                    })
                    .collect();
                conn.transaction::<_, Fail, _>(async |c| {
                    upsert_cursors!($rows, c, rows);
                    Ok(())
                })
                .await
                .map_err(Fail::into_store)
            }

            async fn put_token(&self, hash: &str, user: UserId, expires_at: i64) -> Result<(), StoreError> {
                let mut conn = self.conn().await?;
                diesel::insert_into(resume_tokens::table)
                    .values((
                        resume_tokens::token.eq(hash),
                        resume_tokens::userid.eq(user.0),
                        resume_tokens::expires_at.eq(expires_at),
                    ))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(())
            }

            async fn token_user(&self, hash: &str, now: i64) -> Result<Option<UserId>, StoreError> {
                let mut conn = self.conn().await?;
                let user = resume_tokens::table
                    .filter(resume_tokens::token.eq(hash))
                    .filter(resume_tokens::expires_at.gt(now))
                    .select(resume_tokens::userid)
                    .first::<i32>(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                Ok(user.map(UserId))
            }

            async fn drop_token(&self, hash: &str) -> Result<(), StoreError> {
                let mut conn = self.conn().await?;
                diesel::delete(resume_tokens::table.filter(resume_tokens::token.eq(hash)))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(())
            }

            async fn purge(&self, older_than: i64, keep_per_conv: i64, now: i64) -> Result<u64, StoreError> {
                let mut conn = self.conn().await?;
                let mut gone = diesel::delete(messages::table.filter(messages::created_at.lt(older_than)))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                let long: Vec<(i64, i64)> = conversations::table
                    .filter(conversations::lastseq.gt(keep_per_conv))
                    .select((conversations::id, conversations::lastseq))
                    .load(&mut conn)
                    .await
                    .map_err(db_error)?;
                for (conv, last) in long {
                    gone += diesel::delete(
                        messages::table
                            .filter(messages::conv.eq(conv))
                            .filter(messages::seq.le(last - keep_per_conv)),
                    )
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                }
                diesel::delete(resume_tokens::table.filter(resume_tokens::expires_at.le(now)))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(gone as u64)
            }
        }
    };
}

impl_log!(MysqlStore, diesel::mysql::Mysql, mysql, |s: &MysqlStore| s.consecutive_ids);
impl_log!(SqliteStore, diesel::sqlite::Sqlite, sqlite, |_: &SqliteStore| true);
