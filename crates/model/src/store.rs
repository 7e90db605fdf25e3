//! The [`Store`] queries, written once for both backends.
//!
//! `impl_store!` expands the same method bodies for [`MysqlStore`] and
//! [`SqliteStore`]; the only things that differ are the connection type (each
//! store's `conn()`) and the SQL function that reads the id the last insert made.
//! Everything goes through diesel's query builder with bound parameters.
//! Pools, URLs and migrations are not here (see `mysql.rs`, `sqlite.rs`).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chat_ports::{OfflineMessage, Store, StoreError, UserRecord};
use chat_proto::{FriendEntry, GroupEntry, GroupId, MemberEntry, Role, UserId};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::mysql::MysqlStore;
use crate::schema::{all_groups, friends, group_users, offline_messages, users};
use crate::sqlite::SqliteStore;

// The user's own memberships, as a second `GroupUser` in the members query.
diesel::alias!(group_users as mine: MineAlias);

/// Most ids bound in one `IN (…)` list.
const IDS_PER_STATEMENT: usize = 5000;

const ONLINE: &str = "online";
const OFFLINE: &str = "offline";
const CREATOR: &str = "creator";
const NORMAL: &str = "normal";

/// Why a query inside one of our transactions failed.
#[derive(Debug)]
pub(crate) enum Fail {
    /// The database said no.
    Db(DieselError),
    /// A store-level answer decided inside the transaction.
    Store(StoreError),
}

impl From<DieselError> for Fail {
    fn from(e: DieselError) -> Fail {
        Fail::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        Fail::Store(e)
    }
}

impl Fail {
    /// Maps a unique-key violation to `NameTaken` and a foreign-key violation to
    /// `UnknownUser`; everything else as [`db_error`].
    pub(crate) fn named(self) -> StoreError {
        match self {
            Fail::Db(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                StoreError::NameTaken
            }
            other => other.into_store(),
        }
    }

    pub(crate) fn into_store(self) -> StoreError {
        match self {
            Fail::Store(e) => e,
            Fail::Db(e) => db_error(e),
        }
    }
}

/// Maps a diesel error to the store's error: a foreign-key violation means the
/// user referred to does not exist; a lost connection is `Unavailable`.
pub(crate) fn db_error(e: DieselError) -> StoreError {
    match &e {
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => StoreError::UnknownUser,
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
            StoreError::Unavailable(info.message().to_string())
        }
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) if looks_unavailable(info.message()) => {
            StoreError::Unavailable(info.message().to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

/// mysql_async's I/O and driver errors reach us as `Unknown` with only a message;
/// SQLite's lock timeout is `Unknown` too. Both are worth retrying later.
fn looks_unavailable(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "input/output error",
        "connection to the server is closed",
        "connection refused",
        "connection reset",
        "broken pipe",
        "timed out",
        "database is locked",
        "server has gone away",
        "lost connection",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn role(text: &str) -> Role {
    if text == CREATOR { Role::Creator } else { Role::Normal }
}

fn new_id(raw: i64) -> Result<i32, Fail> {
    i32::try_from(raw).map_err(|_| Fail::Store(StoreError::Internal(format!("id {raw} does not fit in INT"))))
}

/// Assembles `groups_of`'s answer from its two queries (groups by id; members by
/// group then user id). Members of groups not in `groups` are ignored.
fn assemble_groups(
    groups: Vec<(i32, String, String)>,
    members: Vec<(i32, i32, String, String, String)>,
) -> Vec<GroupEntry> {
    let mut by_group: HashMap<i32, Vec<MemberEntry>> = HashMap::new();
    for (gid, uid, name, state, grouprole) in members {
        by_group.entry(gid).or_default().push(MemberEntry {
            id: UserId(uid),
            name,
            online: state == ONLINE,
            role: role(&grouprole),
        });
    }
    groups
        .into_iter()
        .map(|(id, name, desc)| GroupEntry {
            id: GroupId(id),
            name,
            desc,
            members: by_group.remove(&id).unwrap_or_default(),
        })
        .collect()
}

/// Implements [`Store`] for `$store`, whose `conn()` hands out a pooled
/// connection, and whose backend reads the last inserted id with the SQL
/// expression `$last_id` (a constant, never user data).
macro_rules! impl_store {
    ($store:ty, $last_id:expr) => {
        #[async_trait]
        impl Store for $store {
            async fn create_user(&self, name: &str, password_hash: &str) -> Result<UserId, StoreError> {
                let mut conn = self.conn().await?;
                let id = conn
                    .transaction::<_, Fail, _>(async |c| {
                        diesel::insert_into(users::table)
                            .values((users::name.eq(name), users::password.eq(password_hash)))
                            .execute(c)
                            .await?;
                        new_id(
                            diesel::select(diesel::dsl::sql::<BigInt>($last_id)).get_result::<i64>(c).await?,
                        )
                    })
                    .await
                    .map_err(Fail::named)?;
                Ok(UserId(id))
            }

            async fn find_user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
                let mut conn = self.conn().await?;
                let row = users::table
                    .find(id.0)
                    .select((users::id, users::name, users::password))
                    .first::<(i32, String, String)>(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                Ok(row.map(|(id, name, password_hash)| UserRecord { id: UserId(id), name, password_hash }))
            }

            async fn find_user_by_name(&self, name: &str) -> Result<Option<FriendEntry>, StoreError> {
                let mut conn = self.conn().await?;
                let row = users::table
                    .filter(users::name.eq(name))
                    .select((users::id, users::name, users::state))
                    .first::<(i32, String, String)>(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                // MySQL's collation compares without case and trailing blanks: exact means exact.
                Ok(row.filter(|(_, found, _)| found == name).map(|(id, name, state)| FriendEntry {
                    id: UserId(id),
                    name,
                    online: state == ONLINE,
                }))
            }

            async fn user_exists(&self, id: UserId) -> Result<bool, StoreError> {
                let mut conn = self.conn().await?;
                let found = users::table
                    .find(id.0)
                    .select(users::id)
                    .first::<i32>(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                Ok(found.is_some())
            }

            async fn set_online(&self, ids: &[UserId], online: bool) -> Result<(), StoreError> {
                if ids.is_empty() {
                    return Ok(());
                }
                let mut conn = self.conn().await?;
                // One UPDATE … IN per chunk: bound parameters are limited (SQLite 32766, MySQL 65535).
                for chunk in ids.chunks(IDS_PER_STATEMENT) {
                    let chunk: Vec<i32> = chunk.iter().map(|u| u.0).collect();
                    diesel::update(users::table.filter(users::id.eq_any(chunk)))
                        .set(users::state.eq(if online { ONLINE } else { OFFLINE }))
                        .execute(&mut conn)
                        .await
                        .map_err(db_error)?;
                }
                Ok(())
            }

            async fn add_friend(&self, user: UserId, friend: UserId) -> Result<(), StoreError> {
                let mut conn = self.conn().await?;
                // Users are never deleted, so checking first and inserting after is race-free.
                // Checking is needed: MySQL's INSERT IGNORE would swallow a foreign-key error.
                let known = users::table
                    .filter(users::id.eq_any([user.0, friend.0]))
                    .select(users::id)
                    .load::<i32>(&mut conn)
                    .await
                    .map_err(db_error)?;
                if !known.contains(&user.0) || !known.contains(&friend.0) {
                    return Err(StoreError::UnknownUser);
                }
                diesel::insert_or_ignore_into(friends::table)
                    .values((friends::userid.eq(user.0), friends::friendid.eq(friend.0)))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(())
            }

            async fn followers(&self, user: UserId) -> Result<Vec<UserId>, StoreError> {
                let mut conn = self.conn().await?;
                let rows = friends::table
                    .filter(friends::friendid.eq(user.0))
                    .order(friends::userid.asc())
                    .select(friends::userid)
                    .load::<i32>(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(rows.into_iter().map(UserId).collect())
            }

            async fn friends(&self, user: UserId) -> Result<Vec<FriendEntry>, StoreError> {
                let mut conn = self.conn().await?;
                let rows = friends::table
                    .inner_join(users::table)
                    .filter(friends::userid.eq(user.0))
                    .order(users::id.asc())
                    .select((users::id, users::name, users::state))
                    .load::<(i32, String, String)>(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(rows
                    .into_iter()
                    .map(|(id, name, state)| FriendEntry { id: UserId(id), name, online: state == ONLINE })
                    .collect())
            }

            async fn create_group(
                &self,
                creator: UserId,
                name: &str,
                desc: &str,
            ) -> Result<GroupId, StoreError> {
                let mut conn = self.conn().await?;
                let id = conn
                    .transaction::<_, Fail, _>(async |c| {
                        diesel::insert_into(all_groups::table)
                            .values((all_groups::groupname.eq(name), all_groups::groupdesc.eq(desc)))
                            .execute(c)
                            .await?;
                        let id = new_id(
                            diesel::select(diesel::dsl::sql::<BigInt>($last_id)).get_result::<i64>(c).await?,
                        )?;
                        // A missing creator fails here on the foreign key, rolling the group back.
                        diesel::insert_into(group_users::table)
                            .values((
                                group_users::groupid.eq(id),
                                group_users::userid.eq(creator.0),
                                group_users::grouprole.eq(CREATOR),
                            ))
                            .execute(c)
                            .await?;
                        Ok(id)
                    })
                    .await
                    .map_err(Fail::named)?;
                Ok(GroupId(id))
            }

            async fn join_group(&self, group: GroupId, user: UserId) -> Result<(), StoreError> {
                let mut conn = self.conn().await?;
                // Groups and users are never deleted: check, then insert-or-ignore (which keeps a creator's row).
                let found = all_groups::table
                    .find(group.0)
                    .select(all_groups::id)
                    .first::<i32>(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                if found.is_none() {
                    return Err(StoreError::UnknownGroup);
                }
                let found = users::table
                    .find(user.0)
                    .select(users::id)
                    .first::<i32>(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                if found.is_none() {
                    return Err(StoreError::UnknownUser);
                }
                diesel::insert_or_ignore_into(group_users::table)
                    .values((
                        group_users::groupid.eq(group.0),
                        group_users::userid.eq(user.0),
                        group_users::grouprole.eq(NORMAL),
                    ))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(())
            }

            async fn groups_of(&self, user: UserId) -> Result<Vec<GroupEntry>, StoreError> {
                let mut conn = self.conn().await?;
                // Two queries whatever the number of groups: the groups, then all their members.
                let groups = all_groups::table
                    .inner_join(group_users::table)
                    .filter(group_users::userid.eq(user.0))
                    .order(all_groups::id.asc())
                    .select((all_groups::id, all_groups::groupname, all_groups::groupdesc))
                    .load::<(i32, String, String)>(&mut conn)
                    .await
                    .map_err(db_error)?;
                if groups.is_empty() {
                    return Ok(Vec::new());
                }
                let my_groups = mine
                    .filter(mine.field(group_users::userid).eq(user.0))
                    .select(mine.field(group_users::groupid));
                let members = group_users::table
                    .inner_join(users::table)
                    .filter(group_users::groupid.eq_any(my_groups))
                    .order((group_users::groupid.asc(), users::id.asc()))
                    .select((
                        group_users::groupid,
                        users::id,
                        users::name,
                        users::state,
                        group_users::grouprole,
                    ))
                    .load::<(i32, i32, String, String, String)>(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(assemble_groups(groups, members))
            }

            async fn group_members(&self, group: GroupId) -> Result<Option<Vec<UserId>>, StoreError> {
                let mut conn = self.conn().await?;
                let found = all_groups::table
                    .find(group.0)
                    .select(all_groups::id)
                    .first::<i32>(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                if found.is_none() {
                    return Ok(None);
                }
                let ids = group_users::table
                    .filter(group_users::groupid.eq(group.0))
                    .order(group_users::userid.asc())
                    .select(group_users::userid)
                    .load::<i32>(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(Some(ids.into_iter().map(UserId).collect()))
            }

            async fn store_offline(&self, messages: &[(UserId, String)]) -> Result<(), StoreError> {
                if messages.is_empty() {
                    return Ok(());
                }
                let created_at = now_ms();
                let mut conn = self.conn().await?;
                conn.transaction::<_, Fail, _>(async |c| {
                    // One INSERT per row: ids then follow the order given, and diesel-async has
                    // no multi-row INSERT for SQLite. The transaction makes it one commit.
                    for (user, text) in messages {
                        diesel::insert_into(offline_messages::table)
                            .values((
                                offline_messages::userid.eq(user.0),
                                offline_messages::message.eq(text.as_str()),
                                offline_messages::created_at.eq(created_at),
                            ))
                            .execute(c)
                            .await?;
                    }
                    Ok(())
                })
                .await
                .map_err(Fail::into_store)
            }

            async fn offline_messages(&self, user: UserId) -> Result<Vec<OfflineMessage>, StoreError> {
                let mut conn = self.conn().await?;
                let rows = offline_messages::table
                    .filter(offline_messages::userid.eq(user.0))
                    .order(offline_messages::id.asc())
                    .select((offline_messages::id, offline_messages::message))
                    .load::<(i64, String)>(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(rows.into_iter().map(|(id, payload)| OfflineMessage { id, payload }).collect())
            }

            async fn offline_counts(&self, users: &[UserId]) -> Result<Vec<(UserId, u64)>, StoreError> {
                let mut counts = Vec::with_capacity(users.len());
                let mut conn = self.conn().await?;
                for chunk in users.chunks(IDS_PER_STATEMENT) {
                    let ids: Vec<i32> = chunk.iter().map(|u| u.0).collect();
                    let rows = offline_messages::table
                        .filter(offline_messages::userid.eq_any(ids))
                        .group_by(offline_messages::userid)
                        .select((offline_messages::userid, diesel::dsl::count(offline_messages::id)))
                        .load::<(i32, i64)>(&mut conn)
                        .await
                        .map_err(db_error)?;
                    counts.extend(rows.into_iter().map(|(u, n)| (UserId(u), u64::try_from(n).unwrap_or(0))));
                }
                Ok(counts)
            }

            async fn delete_offline(&self, user: UserId, up_to: i64) -> Result<(), StoreError> {
                let mut conn = self.conn().await?;
                diesel::delete(
                    offline_messages::table
                        .filter(offline_messages::userid.eq(user.0))
                        .filter(offline_messages::id.le(up_to)),
                )
                .execute(&mut conn)
                .await
                .map_err(db_error)?;
                Ok(())
            }
        }
    };
}

// MySQL has no RETURNING: LAST_INSERT_ID() is per connection, read in the same transaction.
impl_store!(MysqlStore, "CAST(LAST_INSERT_ID() AS SIGNED)");
impl_store!(SqliteStore, "last_insert_rowid()");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_assembled_in_order_with_their_members() {
        let groups = vec![(1, "a".to_string(), "da".to_string()), (5, "b".to_string(), String::new())];
        let members = vec![
            (1, 2, "x".to_string(), ONLINE.to_string(), CREATOR.to_string()),
            (1, 3, "y".to_string(), OFFLINE.to_string(), NORMAL.to_string()),
            (4, 3, "y".to_string(), OFFLINE.to_string(), NORMAL.to_string()),
            (5, 3, "y".to_string(), OFFLINE.to_string(), CREATOR.to_string()),
        ];
        let out = assemble_groups(groups, members);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].members.iter().map(|m| m.id.0).collect::<Vec<_>>(), [2, 3]);
        assert!(out[0].members[0].online && out[0].members[0].role == Role::Creator);
        assert_eq!(out[1].id, GroupId(5));
        assert_eq!(out[1].members.len(), 1);
    }

    #[test]
    fn lost_connections_are_unavailable() {
        assert!(looks_unavailable("Input/output error: Connection refused (os error 111)"));
        assert!(looks_unavailable("database is locked"));
        assert!(!looks_unavailable("Data too long for column 'name' at row 1"));
    }
}
