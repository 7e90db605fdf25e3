//! The [`Control`] queries (blocks, the "who may write to me" setting, friend requests,
//! group ranks, password changes and deleted accounts), written once for both backends
//! like `store.rs`: `impl_control!` expands the same bodies for [`MysqlStore`] and
//! [`SqliteStore`]. Who may do what is decided by the service, not here.

use async_trait::async_trait;
use chat_ports::{Control, GroupRank, StoreError, UserRef, WriteCheck, Writers};
use chat_proto::{ConvId, GroupId, UserId};
use diesel::dsl::exists;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::mysql::MysqlStore;
use crate::schema::{
    all_groups, blocks, conversations, cursors, friend_requests, friends, group_admins, group_users,
    messages, offline_messages, read_marks, resume_tokens, user_controls, users,
};
use crate::sqlite::SqliteStore;
use crate::store::{Fail, db_error};

const CREATOR: &str = "creator";
const NORMAL: &str = "normal";
const OFFLINE: &str = "offline";

fn refs(rows: Vec<(i32, String)>) -> Vec<UserRef> {
    rows.into_iter().map(|(id, name)| UserRef { id: UserId(id), name }).collect()
}

/// Returns `UnknownUser` unless both users exist. Checked before an `INSERT IGNORE`, which on
/// MySQL would swallow the foreign-key error and insert nothing.
macro_rules! both_exist {
    ($conn:ident, $a:expr, $b:expr) => {
        let known = users::table
            .filter(users::id.eq_any([$a.0, $b.0]))
            .select(users::id)
            .load::<i32>(&mut $conn)
            .await
            .map_err(db_error)?;
        if !known.contains(&$a.0) || !known.contains(&$b.0) {
            return Err(StoreError::UnknownUser);
        }
    };
}

macro_rules! impl_control {
    ($store:ty) => {
        #[async_trait]
        impl Control for $store {
            async fn block(&self, user: UserId, other: UserId) -> Result<(), StoreError> {
                let mut conn = self.conn().await?;
                both_exist!(conn, user, other);
                conn.transaction::<_, Fail, _>(async |c| {
                    diesel::insert_or_ignore_into(blocks::table)
                        .values((blocks::userid.eq(user.0), blocks::blockedid.eq(other.0)))
                        .execute(c)
                        .await?;
                    // A request from the blocked user goes: it could not be accepted anyway.
                    diesel::delete(
                        friend_requests::table
                            .filter(friend_requests::fromid.eq(other.0))
                            .filter(friend_requests::toid.eq(user.0)),
                    )
                    .execute(c)
                    .await?;
                    Ok(())
                })
                .await
                .map_err(Fail::into_store)
            }

            async fn unblock(&self, user: UserId, other: UserId) -> Result<bool, StoreError> {
                let mut conn = self.conn().await?;
                let n = diesel::delete(
                    blocks::table.filter(blocks::userid.eq(user.0)).filter(blocks::blockedid.eq(other.0)),
                )
                .execute(&mut conn)
                .await
                .map_err(db_error)?;
                Ok(n > 0)
            }

            async fn blocked(&self, user: UserId) -> Result<Vec<UserRef>, StoreError> {
                let mut conn = self.conn().await?;
                let rows = blocks::table
                    .inner_join(users::table.on(users::id.eq(blocks::blockedid)))
                    .filter(blocks::userid.eq(user.0))
                    .order(users::id.asc())
                    .select((users::id, users::name))
                    .load::<(i32, String)>(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(refs(rows))
            }

            async fn blockers_of(&self, user: UserId) -> Result<Vec<UserId>, StoreError> {
                let mut conn = self.conn().await?;
                let rows = blocks::table
                    .filter(blocks::blockedid.eq(user.0))
                    .select(blocks::userid)
                    .load::<i32>(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(rows.into_iter().map(UserId).collect())
            }

            async fn is_blocked(&self, user: UserId, by: UserId) -> Result<bool, StoreError> {
                let mut conn = self.conn().await?;
                let found = blocks::table
                    .find((by.0, user.0))
                    .select(blocks::userid)
                    .first::<i32>(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                Ok(found.is_some())
            }

            async fn set_writers(&self, user: UserId, writers: Writers) -> Result<(), StoreError> {
                let mut conn = self.conn().await?;
                conn.transaction::<_, Fail, _>(async |c| {
                    diesel::insert_or_ignore_into(user_controls::table)
                        .values(user_controls::userid.eq(user.0))
                        .execute(c)
                        .await?;
                    diesel::update(user_controls::table.find(user.0))
                        .set(user_controls::writers.eq(writers.as_str()))
                        .execute(c)
                        .await?;
                    Ok(())
                })
                .await
                .map_err(Fail::into_store)
            }

            async fn writers(&self, user: UserId) -> Result<Writers, StoreError> {
                let mut conn = self.conn().await?;
                let found = user_controls::table
                    .find(user.0)
                    .select(user_controls::writers)
                    .first::<String>(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                Ok(found.as_deref().and_then(Writers::parse).unwrap_or_default())
            }

            async fn write_check(&self, from: UserId, to: UserId) -> Result<WriteCheck, StoreError> {
                let mut conn = self.conn().await?;
                // One statement of key lookups, always the same shape (prepared once per connection).
                let (exists_, deleted, blocked_by_recipient, blocked_by_sender, friends_only, friend) =
                    diesel::select((
                        exists(users::table.filter(users::id.eq(to.0))),
                        exists(
                            user_controls::table
                                .filter(user_controls::userid.eq(to.0))
                                .filter(user_controls::deleted_at.is_not_null()),
                        ),
                        exists(
                            blocks::table
                                .filter(blocks::userid.eq(to.0))
                                .filter(blocks::blockedid.eq(from.0)),
                        ),
                        exists(
                            blocks::table
                                .filter(blocks::userid.eq(from.0))
                                .filter(blocks::blockedid.eq(to.0)),
                        ),
                        exists(
                            user_controls::table
                                .filter(user_controls::userid.eq(to.0))
                                .filter(user_controls::writers.eq(Writers::Friends.as_str())),
                        ),
                        exists(
                            friends::table
                                .filter(friends::userid.eq(to.0))
                                .filter(friends::friendid.eq(from.0)),
                        ),
                    ))
                    .get_result::<(bool, bool, bool, bool, bool, bool)>(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(WriteCheck {
                    live: exists_ && !deleted,
                    blocked_by_recipient,
                    blocked_by_sender,
                    friends_only,
                    friend_of_recipient: friend,
                })
            }

            async fn put_request(&self, from: UserId, to: UserId, at_ms: i64) -> Result<bool, StoreError> {
                let mut conn = self.conn().await?;
                both_exist!(conn, from, to);
                let n = diesel::insert_or_ignore_into(friend_requests::table)
                    .values((
                        friend_requests::fromid.eq(from.0),
                        friend_requests::toid.eq(to.0),
                        friend_requests::created_at.eq(at_ms),
                    ))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(n > 0)
            }

            async fn take_request(&self, from: UserId, to: UserId) -> Result<bool, StoreError> {
                let mut conn = self.conn().await?;
                let n = diesel::delete(friend_requests::table.find((from.0, to.0)))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(n > 0)
            }

            async fn requests(&self, user: UserId) -> Result<(Vec<UserRef>, Vec<UserRef>), StoreError> {
                let mut conn = self.conn().await?;
                let incoming = friend_requests::table
                    .inner_join(users::table.on(users::id.eq(friend_requests::fromid)))
                    .filter(friend_requests::toid.eq(user.0))
                    .order((friend_requests::created_at.asc(), users::id.asc()))
                    .select((users::id, users::name))
                    .load::<(i32, String)>(&mut conn)
                    .await
                    .map_err(db_error)?;
                let outgoing = friend_requests::table
                    .inner_join(users::table.on(users::id.eq(friend_requests::toid)))
                    .filter(friend_requests::fromid.eq(user.0))
                    .order((friend_requests::created_at.asc(), users::id.asc()))
                    .select((users::id, users::name))
                    .load::<(i32, String)>(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok((refs(incoming), refs(outgoing)))
            }

            async fn is_friend(&self, user: UserId, friend: UserId) -> Result<bool, StoreError> {
                let mut conn = self.conn().await?;
                let found = friends::table
                    .find((user.0, friend.0))
                    .select(friends::userid)
                    .first::<i32>(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                Ok(found.is_some())
            }

            async fn befriend(&self, a: UserId, b: UserId) -> Result<(), StoreError> {
                let mut conn = self.conn().await?;
                // The original's Friend table has no foreign keys: nothing else stops a row
                // naming nobody.
                both_exist!(conn, a, b);
                conn.transaction::<_, Fail, _>(async |c| {
                    for (x, y) in [(a, b), (b, a)] {
                        diesel::insert_or_ignore_into(friends::table)
                            .values((friends::userid.eq(x.0), friends::friendid.eq(y.0)))
                            .execute(c)
                            .await?;
                        diesel::delete(friend_requests::table.find((x.0, y.0))).execute(c).await?;
                    }
                    Ok(())
                })
                .await
                .map_err(Fail::into_store)
            }

            async fn unfriend(&self, a: UserId, b: UserId) -> Result<bool, StoreError> {
                let mut conn = self.conn().await?;
                conn.transaction::<_, Fail, _>(async |c| {
                    let mut n = 0;
                    for (x, y) in [(a, b), (b, a)] {
                        n += diesel::delete(friends::table.find((x.0, y.0))).execute(c).await?;
                        n += diesel::delete(friend_requests::table.find((x.0, y.0))).execute(c).await?;
                    }
                    Ok(n > 0)
                })
                .await
                .map_err(Fail::into_store)
            }

            async fn ranks(&self, group: GroupId) -> Result<Option<Vec<(UserId, GroupRank)>>, StoreError> {
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
                let members = group_users::table
                    .filter(group_users::groupid.eq(group.0))
                    .order(group_users::userid.asc())
                    .select((group_users::userid, group_users::grouprole))
                    .load::<(i32, String)>(&mut conn)
                    .await
                    .map_err(db_error)?;
                let admins = group_admins::table
                    .filter(group_admins::groupid.eq(group.0))
                    .select(group_admins::userid)
                    .load::<i32>(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(Some(
                    members
                        .into_iter()
                        .map(|(id, role)| {
                            let rank = if role == CREATOR {
                                GroupRank::Owner
                            } else if admins.contains(&id) {
                                GroupRank::Admin
                            } else {
                                GroupRank::Member
                            };
                            (UserId(id), rank)
                        })
                        .collect(),
                ))
            }

            async fn remove_member(&self, group: GroupId, user: UserId) -> Result<bool, StoreError> {
                let mut conn = self.conn().await?;
                let conv = ConvId::group(group).0;
                conn.transaction::<_, Fail, _>(async |c| {
                    let n = diesel::delete(group_users::table.find((group.0, user.0))).execute(c).await?;
                    diesel::delete(group_admins::table.find((group.0, user.0))).execute(c).await?;
                    diesel::delete(cursors::table.find((user.0, conv))).execute(c).await?;
                    diesel::delete(read_marks::table.find((user.0, conv))).execute(c).await?;
                    Ok(n > 0)
                })
                .await
                .map_err(Fail::into_store)
            }

            async fn set_owner(&self, group: GroupId, user: UserId) -> Result<(), StoreError> {
                let mut conn = self.conn().await?;
                conn.transaction::<_, Fail, _>(async |c| {
                    diesel::update(
                        group_users::table
                            .filter(group_users::groupid.eq(group.0))
                            .filter(group_users::grouprole.eq(CREATOR)),
                    )
                    .set(group_users::grouprole.eq(NORMAL))
                    .execute(c)
                    .await?;
                    diesel::update(group_users::table.find((group.0, user.0)))
                        .set(group_users::grouprole.eq(CREATOR))
                        .execute(c)
                        .await?;
                    diesel::delete(group_admins::table.find((group.0, user.0))).execute(c).await?;
                    Ok(())
                })
                .await
                .map_err(Fail::into_store)
            }

            async fn set_admin(&self, group: GroupId, user: UserId, admin: bool) -> Result<(), StoreError> {
                let mut conn = self.conn().await?;
                if admin {
                    diesel::insert_or_ignore_into(group_admins::table)
                        .values((group_admins::groupid.eq(group.0), group_admins::userid.eq(user.0)))
                        .execute(&mut conn)
                        .await
                        .map_err(db_error)?;
                } else {
                    diesel::delete(group_admins::table.find((group.0, user.0)))
                        .execute(&mut conn)
                        .await
                        .map_err(db_error)?;
                }
                Ok(())
            }

            async fn edit_group(
                &self,
                group: GroupId,
                name: Option<&str>,
                desc: Option<&str>,
            ) -> Result<(), StoreError> {
                let mut conn = self.conn().await?;
                let target = all_groups::table.find(group.0);
                let n = match (name, desc) {
                    (Some(name), Some(desc)) => {
                        diesel::update(target)
                            .set((all_groups::groupname.eq(name), all_groups::groupdesc.eq(desc)))
                            .execute(&mut conn)
                            .await
                    }
                    (Some(name), None) => {
                        diesel::update(target).set(all_groups::groupname.eq(name)).execute(&mut conn).await
                    }
                    (None, Some(desc)) => {
                        diesel::update(target).set(all_groups::groupdesc.eq(desc)).execute(&mut conn).await
                    }
                    (None, None) => return Ok(()),
                }
                .map_err(|e| Fail::Db(e).named())?;
                // MySQL counts changed rows: an unchanged name is 0 too, so look before failing.
                if n == 0 {
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
                }
                Ok(())
            }

            async fn delete_group(&self, group: GroupId) -> Result<(), StoreError> {
                let mut conn = self.conn().await?;
                let conv = ConvId::group(group).0;
                conn.transaction::<_, Fail, _>(async |c| {
                    // The members' cursors by their keys, before the memberships go.
                    let members = group_users::table
                        .filter(group_users::groupid.eq(group.0))
                        .select(group_users::userid);
                    diesel::delete(
                        cursors::table.filter(cursors::conv.eq(conv)).filter(cursors::userid.eq_any(members)),
                    )
                    .execute(c)
                    .await?;
                    let members = group_users::table
                        .filter(group_users::groupid.eq(group.0))
                        .select(group_users::userid);
                    diesel::delete(
                        read_marks::table
                            .filter(read_marks::conv.eq(conv))
                            .filter(read_marks::userid.eq_any(members)),
                    )
                    .execute(c)
                    .await?;
                    diesel::delete(messages::table.filter(messages::conv.eq(conv))).execute(c).await?;
                    diesel::delete(conversations::table.find(conv)).execute(c).await?;
                    // GroupUser and GroupAdmin rows go with the group (ON DELETE CASCADE).
                    diesel::delete(all_groups::table.find(group.0)).execute(c).await?;
                    Ok(())
                })
                .await
                .map_err(Fail::into_store)?;
                // Its conversation's seqs start again from nothing, should it ever come back.
                self.forget_last_seqs();
                Ok(())
            }

            async fn set_password(&self, user: UserId, password_hash: &str) -> Result<(), StoreError> {
                let mut conn = self.conn().await?;
                conn.transaction::<_, Fail, _>(async |c| {
                    let n = diesel::update(users::table.find(user.0))
                        .set(users::password.eq(password_hash))
                        .execute(c)
                        .await?;
                    if n == 0 {
                        return Err(Fail::Store(StoreError::UnknownUser));
                    }
                    diesel::delete(resume_tokens::table.filter(resume_tokens::userid.eq(user.0)))
                        .execute(c)
                        .await?;
                    Ok(())
                })
                .await
                .map_err(Fail::into_store)
            }

            async fn delete_account(
                &self,
                user: UserId,
                unusable_hash: &str,
                deleted_name: &str,
                at_ms: i64,
            ) -> Result<(), StoreError> {
                let u = user.0;
                let mut conn = self.conn().await?;
                conn.transaction::<_, Fail, _>(async |c| {
                    // The messages it sent, found through its conversations (the log's index is by
                    // conversation), are signed with the placeholder name from now on.
                    let my_groups = group_users::table
                        .filter(group_users::userid.eq(u))
                        .select(group_users::groupid.nullable());
                    let my_convs = conversations::table
                        .filter(
                            conversations::userlo
                                .eq(u)
                                .or(conversations::userhi.eq(u))
                                .or(conversations::groupid.eq_any(my_groups)),
                        )
                        .select(conversations::id);
                    diesel::update(
                        messages::table
                            .filter(messages::conv.eq_any(my_convs))
                            .filter(messages::sender.eq(u)),
                    )
                    .set(messages::sendername.eq(deleted_name))
                    .execute(c)
                    .await?;
                    diesel::delete(friends::table.filter(friends::userid.eq(u).or(friends::friendid.eq(u))))
                        .execute(c)
                        .await?;
                    diesel::delete(
                        friend_requests::table
                            .filter(friend_requests::fromid.eq(u).or(friend_requests::toid.eq(u))),
                    )
                    .execute(c)
                    .await?;
                    diesel::delete(blocks::table.filter(blocks::userid.eq(u).or(blocks::blockedid.eq(u))))
                        .execute(c)
                        .await?;
                    diesel::delete(group_admins::table.filter(group_admins::userid.eq(u))).execute(c).await?;
                    diesel::delete(group_users::table.filter(group_users::userid.eq(u))).execute(c).await?;
                    diesel::delete(cursors::table.filter(cursors::userid.eq(u))).execute(c).await?;
                    diesel::delete(read_marks::table.filter(read_marks::userid.eq(u))).execute(c).await?;
                    diesel::delete(resume_tokens::table.filter(resume_tokens::userid.eq(u)))
                        .execute(c)
                        .await?;
                    diesel::delete(offline_messages::table.filter(offline_messages::userid.eq(u)))
                        .execute(c)
                        .await?;
                    let n = diesel::update(users::table.find(u))
                        .set((users::password.eq(unusable_hash), users::state.eq(OFFLINE)))
                        .execute(c)
                        .await?;
                    if n == 0 {
                        return Err(Fail::Store(StoreError::UnknownUser));
                    }
                    diesel::insert_or_ignore_into(user_controls::table)
                        .values(user_controls::userid.eq(u))
                        .execute(c)
                        .await?;
                    diesel::update(user_controls::table.find(u))
                        .set((
                            user_controls::deleted_at.eq(Some(at_ms)),
                            user_controls::writers.eq(Writers::Anyone.as_str()),
                        ))
                        .execute(c)
                        .await?;
                    Ok(())
                })
                .await
                .map_err(Fail::into_store)
            }

            async fn free_name(
                &self,
                name: &str,
                deleted_before: i64,
                placeholder: &str,
            ) -> Result<bool, StoreError> {
                let mut conn = self.conn().await?;
                let expired = user_controls::table
                    .filter(user_controls::deleted_at.le(deleted_before))
                    .select(user_controls::userid);
                let holder = users::table
                    .filter(users::name.eq(name))
                    .filter(users::id.eq_any(expired))
                    .select(users::id)
                    .first::<i32>(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                let Some(id) = holder else { return Ok(false) };
                let n = diesel::update(users::table.find(id).filter(users::name.eq(name)))
                    .set(users::name.eq(format!("{placeholder}{id}")))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(n > 0)
            }
        }
    };
}

impl_control!(MysqlStore);
impl_control!(SqliteStore);
