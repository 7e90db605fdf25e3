//! The [`Log`] queries (the message log, cursors, resume tokens, retention),
//! written once for both backends like `store.rs`: `impl_log!` expands the same
//! bodies for [`MysqlStore`] and [`SqliteStore`], which differ only in their
//! connection and in the backend named for boxed queries.
//!
//! The append, the hot path, is in `append.rs`, once per backend.
//! ARCHITECTURE.md, "The message log", argues the design.

use async_trait::async_trait;
use chat_ports::{Appended, ConvState, Log, LoggedMessage, Marks, NewMessage, StoreError};
use chat_proto::{ConvId, HistoryFrom, UserId};
use diesel::dsl::count;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::mysql::MysqlStore;
use crate::schema::{
    conversations, cursors, group_users, messages, read_marks, resume_tokens, session_cursors,
};
use crate::sqlite::SqliteStore;
use crate::store::{Fail, db_error};

/// Conversations per `OR` list in one statement.
const CONVS_PER_STATEMENT: usize = 500;

/// `(id, conv, seq, sender, sendername, body, created_at)`, the columns of [`LoggedMessage`].
pub(crate) type Row = (i64, i64, i64, i32, String, String, i64);

/// The columns of a [`Row`], in its order.
pub(crate) const ROW: (
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

pub(crate) fn logged((mid, conv, seq, sender, sender_name, body, created_at): Row) -> LoggedMessage {
    LoggedMessage { mid, conv: ConvId(conv), seq, sender: UserId(sender), sender_name, body, created_at }
}

/// Writes cursor rows, keeping the greater seq where a row exists: one statement for all
/// of them on MySQL (`ON DUPLICATE KEY UPDATE`), one per row on SQLite (`ON CONFLICT`).
/// The SQL fragments are constants; every value is a bound parameter.
macro_rules! upsert_cursors {
    (mysql, $c:expr, $rows:expr) => {
        let rows: Vec<_> = $rows
            .into_iter()
            .map(|(userid, conv, seq)| {
                (cursors::userid.eq(userid), cursors::conv.eq(conv), cursors::seq.eq(seq))
            })
            .collect();
        diesel::insert_into(cursors::table)
            .values(rows)
            .on_conflict(diesel::dsl::DuplicatedKeys)
            .do_update()
            .set(cursors::seq.eq(diesel::dsl::sql::<BigInt>("GREATEST(seq, VALUES(seq))")))
            .execute($c)
            .await?
    };
    // One statement per row, all of them in one closure on the connection's thread: a hop
    // to the blocking pool per row held the store's one connection, and every append
    // behind it, for 100-250 ms at 5,000 msgs/s. The statement is [`CursorUpsert`], which
    // diesel prepares once.
    (sqlite, $c:expr, $rows:expr) => {
        let rows: Vec<(i32, i64, i64)> = $rows;
        $c.spawn_blocking(move |c| {
            for (userid, conv, seq) in rows {
                diesel::RunQueryDsl::execute(CursorUpsert::new(userid, conv, seq), c)?;
            }
            Ok(())
        })
        .await?
    };
}

/// As [`upsert_cursors`], for the sessions' own cursors.
macro_rules! upsert_session_cursors {
    (mysql, $c:expr, $rows:expr) => {
        let rows: Vec<_> = $rows
            .iter()
            .map(|(token, conv, seq)| {
                (
                    session_cursors::token.eq(token.as_str()),
                    session_cursors::conv.eq(*conv),
                    session_cursors::seq.eq(*seq),
                )
            })
            .collect();
        diesel::insert_into(session_cursors::table)
            .values(rows)
            .on_conflict(diesel::dsl::DuplicatedKeys)
            .do_update()
            .set(session_cursors::seq.eq(diesel::dsl::sql::<BigInt>("GREATEST(seq, VALUES(seq))")))
            .execute($c)
            .await?
    };
    (sqlite, $c:expr, $rows:expr) => {
        let rows: Vec<(String, i64, i64)> = $rows;
        $c.spawn_blocking(move |c| {
            for (token, conv, seq) in &rows {
                diesel::RunQueryDsl::execute(SessionCursorUpsert::new(token, *conv, *seq), c)?;
            }
            Ok(())
        })
        .await?
    };
}

/// A SQLite upsert that keeps the greater `seq`, as a query type of one fixed text: diesel
/// marks every `ON CONFLICT … DO UPDATE` it builds as not to be cached (its SQL may change
/// with the changeset), so each cursor written was a statement parsed, planned, run once and
/// finalized, thousands a second on a busy node. The values are bound parameters.
macro_rules! sqlite_keep_greater {
    ($(#[$doc:meta])* $name:ident { $key:ident: $key_ty:ty as $key_sql:ty }, $sql:literal) => {
        $(#[$doc])*
        struct $name<'a> {
            $key: $key_ty,
            conv: i64,
            seq: i64,
            _row: std::marker::PhantomData<&'a ()>,
        }

        impl diesel::query_builder::QueryId for $name<'_> {
            type QueryId = $name<'static>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for $name<'_> {
            fn walk_ast<'b>(
                &'b self,
                mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
            ) -> QueryResult<()> {
                out.push_sql(concat!("INSERT INTO ", $sql, " VALUES ("));
                out.push_bind_param::<$key_sql, _>(&self.$key)?;
                out.push_sql(", ");
                out.push_bind_param::<BigInt, _>(&self.conv)?;
                out.push_sql(", ");
                out.push_bind_param::<BigInt, _>(&self.seq)?;
                out.push_sql(r#") ON CONFLICT DO UPDATE SET "seq" = MAX("seq", excluded."seq")"#);
                Ok(())
            }
        }

        impl<'a> $name<'a> {
            fn new($key: $key_ty, conv: i64, seq: i64) -> Self {
                $name { $key, conv, seq, _row: std::marker::PhantomData }
            }
        }

        impl<Conn> diesel::RunQueryDsl<Conn> for $name<'_> {}
    };
}

sqlite_keep_greater!(
    /// A user's cursor in a conversation ([`upsert_cursors`]).
    CursorUpsert { userid: i32 as diesel::sql_types::Integer },
    r#""ConvCursor" ("userid", "conv", "seq")"#
);
sqlite_keep_greater!(
    /// A session's own cursor in a conversation ([`upsert_session_cursors`]).
    SessionCursorUpsert { token: &'a str as diesel::sql_types::Text },
    r#""SessionCursor" ("token", "conv", "seq")"#
);
sqlite_keep_greater!(
    /// A user's read mark in a conversation ([`upsert_read_mark`]).
    ReadMarkUpsert { userid: i32 as diesel::sql_types::Integer },
    r#""ReadMark" ("userid", "conv", "seq")"#
);

/// Writes one read mark, keeping the greater seq where the row exists.
macro_rules! upsert_read_mark {
    (mysql, $c:expr, $row:expr) => {
        let (userid, conv, seq): (i32, i64, i64) = $row;
        diesel::insert_into(read_marks::table)
            .values((read_marks::userid.eq(userid), read_marks::conv.eq(conv), read_marks::seq.eq(seq)))
            .on_conflict(diesel::dsl::DuplicatedKeys)
            .do_update()
            .set(read_marks::seq.eq(diesel::dsl::sql::<BigInt>("GREATEST(seq, VALUES(seq))")))
            .execute($c)
            .await?
    };
    (sqlite, $c:expr, $row:expr) => {
        let (userid, conv, seq): (i32, i64, i64) = $row;
        ReadMarkUpsert::new(userid, conv, seq).execute($c).await?
    };
}

/// The newest seq among a SQLite conversation's messages, 0 if none: one seek in the
/// `(conv, seq)` index, in a statement on `"Conversation"`. A literal, for `concat!`.
macro_rules! sqlite_newest_seq {
    () => {
        r#"COALESCE((SELECT MAX("Message"."seq") FROM "Message" WHERE "Message"."conv" = "Conversation"."id"), 0)"#
    };
}

/// A conversation's last seq. On MySQL, the counter the append procedure keeps. On SQLite,
/// the larger of the counter and the newest message's seq: the SQLite append does not write
/// the counter back (one page fewer dirtied per chat, see `append.rs`), and the counter is a
/// floor, raised by retention before it deletes (so that an emptied conversation goes on from
/// where it was) and by imports. The SQL is a constant.
macro_rules! last_seq {
    (mysql) => {
        conversations::lastseq
    };
    (sqlite) => {
        diesel::dsl::sql::<BigInt>(concat!(r#"MAX("Conversation"."lastseq", "#, sqlite_newest_seq!(), ")"))
    };
}

/// Before retention deletes messages: on SQLite the counters below their conversation's
/// newest seq are raised to it (see [`last_seq`]); nothing to do on MySQL, whose counters
/// are kept by every append.
macro_rules! keep_last_seqs {
    (mysql, $c:expr) => {};
    (sqlite, $c:expr) => {
        diesel::sql_query(concat!(
            r#"UPDATE "Conversation" SET "lastseq" = "#,
            sqlite_newest_seq!(),
            r#" WHERE "lastseq" < "#,
            sqlite_newest_seq!()
        ))
        .execute($c)
        .await
        .map_err(db_error)?;
    };
}

/// Implements [`Log`] for `$store` (with `conn()` and `append_batch`), whose boxed queries
/// name `$backend`; `$rows` is `mysql` or `sqlite`
/// (the statements that differ, in the macros above).
macro_rules! impl_log {
    ($store:ty, $backend:ty, $rows:ident) => {
        impl $store {
            /// Moves users' and sessions' cursors forward in one transaction; with `lazy`,
            /// committed without waiting for the disk where the backend can (`lazy_commits`).
            async fn write_cursors(
                &self,
                users: &[(UserId, ConvId, i64)],
                sessions: &[(String, ConvId, i64)],
                lazy: bool,
            ) -> Result<(), StoreError> {
                if users.is_empty() && sessions.is_empty() {
                    return Ok(());
                }
                let users: Vec<(i32, i64, i64)> =
                    users.iter().map(|&(user, conv, seq)| (user.0, conv.0, seq)).collect();
                let sessions: Vec<(String, i64, i64)> =
                    sessions.iter().map(|(hash, conv, seq)| (hash.clone(), conv.0, *seq)).collect();
                let mut conn = self.conn().await?;
                if lazy {
                    conn = self.lazy_commits(conn, true).await?;
                }
                let saved = conn
                    .transaction::<_, Fail, _>(async |c| {
                        if !users.is_empty() {
                            upsert_cursors!($rows, c, users);
                        }
                        if !sessions.is_empty() {
                            upsert_session_cursors!($rows, c, sessions);
                        }
                        Ok(())
                    })
                    .await
                    .map_err(Fail::into_store);
                if lazy {
                    drop(self.lazy_commits(conn, false).await?);
                }
                saved
            }
        }

        #[async_trait]
        impl Log for $store {
            async fn append(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
                self.append_batch(batch).await
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
                    .select((conversations::id, last_seq!($rows), cursors::seq.nullable()))
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
                    .select(last_seq!($rows))
                    .get_result::<i64>(&mut conn)
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
                self.write_cursors(list, &[], false).await
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
                diesel::delete(session_cursors::table.filter(session_cursors::token.eq(hash)))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(())
            }

            async fn drop_tokens_of(&self, user: UserId) -> Result<(), StoreError> {
                let mut conn = self.conn().await?;
                let hashes: Vec<String> = resume_tokens::table
                    .filter(resume_tokens::userid.eq(user.0))
                    .select(resume_tokens::token)
                    .load(&mut conn)
                    .await
                    .map_err(db_error)?;
                diesel::delete(resume_tokens::table.filter(resume_tokens::userid.eq(user.0)))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                for hash in hashes {
                    diesel::delete(session_cursors::table.filter(session_cursors::token.eq(hash)))
                        .execute(&mut conn)
                        .await
                        .map_err(db_error)?;
                }
                Ok(())
            }

            async fn save_session_cursors(&self, list: &[(String, ConvId, i64)]) -> Result<(), StoreError> {
                self.write_cursors(&[], list, false).await
            }

            async fn save_all_cursors(
                &self,
                users: &[(UserId, ConvId, i64)],
                sessions: &[(String, ConvId, i64)],
            ) -> Result<(), StoreError> {
                self.write_cursors(users, sessions, true).await
            }

            async fn session_cursors(&self, hash: &str) -> Result<Option<Vec<(ConvId, i64)>>, StoreError> {
                let mut conn = self.conn().await?;
                let rows: Vec<(i64, i64)> = session_cursors::table
                    .filter(session_cursors::token.eq(hash))
                    .select((session_cursors::conv, session_cursors::seq))
                    .load(&mut conn)
                    .await
                    .map_err(db_error)?;
                if rows.is_empty() {
                    return Ok(None);
                }
                Ok(Some(rows.into_iter().filter(|(c, _)| *c != 0).map(|(c, s)| (ConvId(c), s)).collect()))
            }

            async fn mark_read(
                &self,
                user: UserId,
                conv: ConvId,
                seq: i64,
            ) -> Result<(i64, i64), StoreError> {
                let mut conn = self.conn().await?;
                conn.transaction::<_, Fail, _>(async |c| {
                    let last = conversations::table
                        .find(conv.0)
                        .select(last_seq!($rows))
                        .get_result::<i64>(c)
                        .await
                        .optional()?
                        .unwrap_or_default();
                    let before = read_marks::table
                        .find((user.0, conv.0))
                        .select(read_marks::seq)
                        .get_result::<i64>(c)
                        .await
                        .optional()?
                        .unwrap_or_default();
                    let after = before.max(seq.min(last));
                    if after > before {
                        upsert_read_mark!($rows, c, (user.0, conv.0, after));
                    }
                    Ok((before, after))
                })
                .await
                .map_err(Fail::into_store)
            }

            async fn read_marks(&self, user: UserId) -> Result<Vec<(ConvId, i64)>, StoreError> {
                let mut conn = self.conn().await?;
                let rows: Vec<(i64, i64)> = read_marks::table
                    .filter(read_marks::userid.eq(user.0))
                    .select((read_marks::conv, read_marks::seq))
                    .load(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(rows.into_iter().map(|(c, s)| (ConvId(c), s)).collect())
            }

            async fn marks(&self, pairs: &[(UserId, ConvId)]) -> Result<Vec<Marks>, StoreError> {
                let mut conn = self.conn().await?;
                let mut found: std::collections::BTreeMap<(i32, i64), (i64, i64)> = Default::default();
                // By the primary keys of both tables, a chunk of pairs per statement.
                for chunk in pairs.chunks(CONVS_PER_STATEMENT) {
                    let mut reads = read_marks::table
                        .select((read_marks::userid, read_marks::conv, read_marks::seq))
                        .filter(read_marks::userid.lt(0))
                        .into_boxed::<$backend>();
                    let mut recvs = cursors::table
                        .select((cursors::userid, cursors::conv, cursors::seq))
                        .filter(cursors::userid.lt(0))
                        .into_boxed::<$backend>();
                    for &(user, conv) in chunk {
                        reads =
                            reads.or_filter(read_marks::userid.eq(user.0).and(read_marks::conv.eq(conv.0)));
                        recvs = recvs.or_filter(cursors::userid.eq(user.0).and(cursors::conv.eq(conv.0)));
                    }
                    for (u, c, seq) in reads.load::<(i32, i64, i64)>(&mut conn).await.map_err(db_error)? {
                        found.entry((u, c)).or_default().0 = seq;
                    }
                    for (u, c, seq) in recvs.load::<(i32, i64, i64)>(&mut conn).await.map_err(db_error)? {
                        found.entry((u, c)).or_default().1 = seq;
                    }
                }
                Ok(found
                    .into_iter()
                    .filter(|(_, (read, recv))| *read > 0 || *recv > 0)
                    .map(|((u, c), (read, recv))| Marks { conv: ConvId(c), user: UserId(u), read, recv })
                    .collect())
            }

            async fn senders(&self, conv: ConvId, after: i64, upto: i64) -> Result<Vec<UserId>, StoreError> {
                let mut conn = self.conn().await?;
                let rows: Vec<i32> = messages::table
                    .filter(messages::conv.eq(conv.0))
                    .filter(messages::seq.gt(after))
                    .filter(messages::seq.le(upto))
                    .select(messages::sender)
                    .distinct()
                    .load(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(rows.into_iter().map(UserId).collect())
            }

            async fn purge(&self, older_than: i64, keep_per_conv: i64, now: i64) -> Result<u64, StoreError> {
                let mut conn = self.conn().await?;
                keep_last_seqs!($rows, &mut conn);
                let mut gone = diesel::delete(messages::table.filter(messages::created_at.lt(older_than)))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                // The counters are the last seqs on both backends here (raised just above on SQLite).
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
                // The cursors of sessions whose token is gone (expired, or dropped by a release
                // that does not know this table).
                diesel::delete(session_cursors::table.filter(
                    session_cursors::token.ne_all(resume_tokens::table.select(resume_tokens::token)),
                ))
                .execute(&mut conn)
                .await
                .map_err(db_error)?;
                Ok(gone as u64)
            }
        }
    };
}

impl_log!(MysqlStore, diesel::mysql::Mysql, mysql);
impl_log!(SqliteStore, diesel::sqlite::Sqlite, sqlite);
