//! An in-memory [`Store`] and [`Log`] for service tests: plain maps behind one std `Mutex`.
//!
//! It has the semantics of the SQL stores (`chat-model`), checked by the same
//! [`crate::contract`] suite; it persists nothing and is not meant for production.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chat_proto::{ConvId, FriendEntry, GroupEntry, GroupId, HistoryFrom, MemberEntry, Role, UserId};

mod control;

use crate::{
    Appended, ConvState, Log, LoggedMessage, Marks, NewMessage, OfflineMessage, Store, StoreError, UserRecord,
};

#[derive(Debug)]
struct User {
    name: String,
    password_hash: String,
    online: bool,
}

#[derive(Debug)]
struct Group {
    name: String,
    desc: String,
    /// Member id → role.
    members: BTreeMap<UserId, Role>,
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<UserId, User>,
    /// (user, friend) pairs, one direction, like the `Friend` table.
    friends: BTreeSet<(UserId, UserId)>,
    groups: BTreeMap<GroupId, Group>,
    /// Message id → (recipient, payload); ids grow with insertion order.
    offline: BTreeMap<i64, (UserId, String)>,
    last_user: i32,
    last_group: i32,
    last_message: i64,
    /// The log: conversation → newest seq; mid → message; (user, conv) → cursor; token → (user, expiry).
    convs: BTreeMap<ConvId, i64>,
    log: BTreeMap<i64, LoggedMessage>,
    cursors: BTreeMap<(UserId, ConvId), i64>,
    tokens: BTreeMap<String, (UserId, i64)>,
    /// (token hash, conv) → a session's own cursor.
    session_cursors: BTreeMap<(String, ConvId), i64>,
    /// (user, conv) → read mark (issue 20).
    read_marks: BTreeMap<(UserId, ConvId), i64>,
    /// (sender, cid) → mid.
    cids: BTreeMap<(UserId, String), i64>,
    last_mid: i64,
    /// Issue 21 (`memory/control.rs`): (blocker, blocked); user → (friends only, deleted at);
    /// (from, to) → requested at; (group, admin).
    blocks: BTreeSet<(UserId, UserId)>,
    controls: BTreeMap<UserId, (bool, Option<i64>)>,
    requests: BTreeMap<(UserId, UserId), i64>,
    admins: BTreeSet<(GroupId, UserId)>,
}

impl State {
    fn require_user(&self, id: UserId) -> Result<(), StoreError> {
        if self.users.contains_key(&id) { Ok(()) } else { Err(StoreError::UnknownUser) }
    }
}

/// A [`Store`] over in-process maps; ids come from counters starting at 1.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state.lock().map_err(|_| StoreError::Internal("memory store mutex poisoned".into()))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_user(&self, name: &str, password_hash: &str) -> Result<UserId, StoreError> {
        let mut s = self.lock()?;
        if s.users.values().any(|u| u.name == name) {
            return Err(StoreError::NameTaken);
        }
        s.last_user += 1;
        let id = UserId(s.last_user);
        s.users.insert(id, User { name: name.into(), password_hash: password_hash.into(), online: false });
        Ok(id)
    }

    async fn find_user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let s = self.lock()?;
        Ok(s.users.get(&id).map(|u| UserRecord {
            id,
            name: u.name.clone(),
            password_hash: u.password_hash.clone(),
        }))
    }

    async fn find_user_by_name(&self, name: &str) -> Result<Option<FriendEntry>, StoreError> {
        let s = self.lock()?;
        Ok(s.users.iter().find(|(_, u)| u.name == name).map(|(&id, u)| FriendEntry {
            id,
            name: u.name.clone(),
            online: u.online,
        }))
    }

    async fn user_exists(&self, id: UserId) -> Result<bool, StoreError> {
        Ok(self.lock()?.users.contains_key(&id))
    }

    async fn set_online(&self, ids: &[UserId], online: bool) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        for id in ids {
            if let Some(u) = s.users.get_mut(id) {
                u.online = online;
            }
        }
        Ok(())
    }

    async fn add_friend(&self, user: UserId, friend: UserId) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        s.require_user(friend)?;
        s.require_user(user)?;
        s.friends.insert((user, friend));
        Ok(())
    }

    async fn followers(&self, user: UserId) -> Result<Vec<UserId>, StoreError> {
        let s = self.lock()?;
        Ok(s.friends.iter().filter(|(_, f)| *f == user).map(|(u, _)| *u).collect())
    }

    async fn friends(&self, user: UserId) -> Result<Vec<FriendEntry>, StoreError> {
        let s = self.lock()?;
        Ok(s.friends
            .range((user, UserId(i32::MIN))..=(user, UserId(i32::MAX)))
            .filter_map(|&(_, f)| {
                s.users.get(&f).map(|u| FriendEntry { id: f, name: u.name.clone(), online: u.online })
            })
            .collect())
    }

    async fn create_group(&self, creator: UserId, name: &str, desc: &str) -> Result<GroupId, StoreError> {
        let mut s = self.lock()?;
        if s.groups.values().any(|g| g.name == name) {
            return Err(StoreError::NameTaken);
        }
        s.require_user(creator)?;
        s.last_group += 1;
        let id = GroupId(s.last_group);
        let members = BTreeMap::from([(creator, Role::Creator)]);
        s.groups.insert(id, Group { name: name.into(), desc: desc.into(), members });
        Ok(id)
    }

    async fn join_group(&self, group: GroupId, user: UserId) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        if !s.groups.contains_key(&group) {
            return Err(StoreError::UnknownGroup);
        }
        s.require_user(user)?;
        if let Some(g) = s.groups.get_mut(&group) {
            g.members.entry(user).or_insert(Role::Normal);
        }
        Ok(())
    }

    async fn groups_of(&self, user: UserId) -> Result<Vec<GroupEntry>, StoreError> {
        let s = self.lock()?;
        Ok(s.groups
            .iter()
            .filter(|(_, g)| g.members.contains_key(&user))
            .map(|(&id, g)| GroupEntry {
                id,
                name: g.name.clone(),
                desc: g.desc.clone(),
                members: g
                    .members
                    .iter()
                    .filter_map(|(&m, &role)| {
                        s.users.get(&m).map(|u| MemberEntry {
                            id: m,
                            name: u.name.clone(),
                            online: u.online,
                            role,
                        })
                    })
                    .collect(),
            })
            .collect())
    }

    async fn group_members(&self, group: GroupId) -> Result<Option<Vec<UserId>>, StoreError> {
        let s = self.lock()?;
        Ok(s.groups.get(&group).map(|g| g.members.keys().copied().collect()))
    }

    async fn store_offline(&self, messages: &[(UserId, String)]) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        // All or nothing, like the SQL stores' transaction.
        for (user, _) in messages {
            s.require_user(*user)?;
        }
        for (user, payload) in messages {
            s.last_message += 1;
            let id = s.last_message;
            s.offline.insert(id, (*user, payload.clone()));
        }
        Ok(())
    }

    async fn offline_messages(&self, user: UserId) -> Result<Vec<OfflineMessage>, StoreError> {
        let s = self.lock()?;
        Ok(s.offline
            .iter()
            .filter(|(_, (u, _))| *u == user)
            .map(|(&id, (_, payload))| OfflineMessage { id, payload: payload.clone() })
            .collect())
    }

    async fn offline_counts(&self, users: &[UserId]) -> Result<Vec<(UserId, u64)>, StoreError> {
        let s = self.lock()?;
        Ok(users
            .iter()
            .map(|&user| (user, s.offline.values().filter(|(u, _)| *u == user).count() as u64))
            .collect())
    }

    async fn delete_offline(&self, user: UserId, up_to: i64) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        s.offline.retain(|&id, (u, _)| !(*u == user && id <= up_to));
        Ok(())
    }
}

/// Whether `m` is in `from`'s conversations above their seq.
fn above(from: &[(ConvId, i64)], m: &LoggedMessage) -> bool {
    from.iter().any(|&(c, seq)| c == m.conv && m.seq > seq)
}

#[async_trait]
impl Log for MemoryStore {
    async fn append(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
        let mut s = self.lock()?;
        // All or nothing, like the SQL transaction: a conversation of unknown users fails it.
        for m in batch {
            if let Some((lo, hi)) = m.conv.users() {
                s.require_user(lo)?;
                s.require_user(hi)?;
            } else if m.conv.as_group().is_some_and(|g| !s.groups.contains_key(&g)) {
                return Err(StoreError::UnknownGroup);
            }
        }
        for m in batch {
            s.convs.entry(m.conv).or_insert(0);
        }
        let mut out = Vec::with_capacity(batch.len());
        for m in batch {
            let first = m
                .cid
                .as_ref()
                .and_then(|cid| s.cids.get(&(m.sender, cid.clone())))
                .and_then(|mid| s.log.get(mid))
                .cloned();
            if let Some(message) = first {
                out.push(Appended { message, duplicate: true });
                continue;
            }
            s.last_mid += 1;
            let mid = s.last_mid;
            let seq = s.convs.get(&m.conv).copied().unwrap_or_default() + 1;
            s.convs.insert(m.conv, seq);
            let message = LoggedMessage {
                mid,
                conv: m.conv,
                seq,
                sender: m.sender,
                sender_name: m.sender_name.clone(),
                body: m.body.clone(),
                created_at: m.created_at,
            };
            s.log.insert(mid, message.clone());
            if let Some(cid) = &m.cid {
                s.cids.insert((m.sender, cid.clone()), mid);
            }
            out.push(Appended { message, duplicate: false });
        }
        Ok(out)
    }

    async fn conversations(&self, user: UserId) -> Result<Vec<ConvState>, StoreError> {
        let s = self.lock()?;
        Ok(s.convs
            .iter()
            .filter(|(c, _)| match c.as_group() {
                Some(g) => s.groups.get(&g).is_some_and(|g| g.members.contains_key(&user)),
                None => c.users().is_some_and(|(lo, hi)| lo == user || hi == user),
            })
            .map(|(&conv, &last_seq)| ConvState {
                conv,
                last_seq,
                cursor: s.cursors.get(&(user, conv)).copied().unwrap_or_default(),
            })
            .collect())
    }

    async fn last_seq(&self, conv: ConvId) -> Result<i64, StoreError> {
        Ok(self.lock()?.convs.get(&conv).copied().unwrap_or_default())
    }

    async fn after(&self, from: &[(ConvId, i64)], limit: usize) -> Result<Vec<LoggedMessage>, StoreError> {
        let s = self.lock()?;
        Ok(s.log.values().filter(|m| above(from, m)).take(limit).cloned().collect())
    }

    async fn unread(&self, user: UserId, from: &[(ConvId, i64)]) -> Result<Vec<(ConvId, u64)>, StoreError> {
        let s = self.lock()?;
        let mut counts: BTreeMap<ConvId, u64> = BTreeMap::new();
        for m in s.log.values().filter(|m| m.sender != user && above(from, m)) {
            *counts.entry(m.conv).or_default() += 1;
        }
        Ok(counts.into_iter().collect())
    }

    async fn history(
        &self,
        conv: ConvId,
        from: HistoryFrom,
        limit: usize,
    ) -> Result<Vec<LoggedMessage>, StoreError> {
        let s = self.lock()?;
        let all = s.log.values().filter(|m| m.conv == conv);
        let mut page: Vec<LoggedMessage> = match from {
            HistoryFrom::Latest => all.rev().take(limit).cloned().collect(),
            HistoryFrom::Before(mid) => all.rev().filter(|m| m.mid < mid).take(limit).cloned().collect(),
            HistoryFrom::After(mid) => return Ok(all.filter(|m| m.mid > mid).take(limit).cloned().collect()),
        };
        page.reverse();
        Ok(page)
    }

    async fn save_cursors(&self, cursors: &[(UserId, ConvId, i64)]) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        for &(user, conv, seq) in cursors {
            let cursor = s.cursors.entry((user, conv)).or_default();
            *cursor = (*cursor).max(seq);
        }
        Ok(())
    }

    async fn put_token(&self, hash: &str, user: UserId, expires_at: i64) -> Result<(), StoreError> {
        self.lock()?.tokens.insert(hash.to_owned(), (user, expires_at));
        Ok(())
    }

    async fn token_user(&self, hash: &str, now: i64) -> Result<Option<UserId>, StoreError> {
        let s = self.lock()?;
        Ok(s.tokens.get(hash).filter(|(_, expires)| *expires > now).map(|(user, _)| *user))
    }

    async fn drop_token(&self, hash: &str) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        s.tokens.remove(hash);
        s.session_cursors.retain(|(h, _), _| h != hash);
        Ok(())
    }

    async fn drop_tokens_of(&self, user: UserId) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        let State { tokens, session_cursors, .. } = &mut *s;
        tokens.retain(|_, (u, _)| *u != user);
        session_cursors.retain(|(h, _), _| tokens.contains_key(h));
        Ok(())
    }

    async fn save_session_cursors(&self, cursors: &[(String, ConvId, i64)]) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        for (hash, conv, seq) in cursors {
            let cursor = s.session_cursors.entry((hash.clone(), *conv)).or_default();
            *cursor = (*cursor).max(*seq);
        }
        Ok(())
    }

    async fn session_cursors(&self, hash: &str) -> Result<Option<Vec<(ConvId, i64)>>, StoreError> {
        let s = self.lock()?;
        let rows: Vec<(ConvId, i64)> = s
            .session_cursors
            .iter()
            .filter(|((h, _), _)| h == hash)
            .map(|((_, c), &seq)| (*c, seq))
            .collect();
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(rows.into_iter().filter(|(c, _)| c.0 != 0).collect()))
    }

    async fn mark_read(&self, user: UserId, conv: ConvId, seq: i64) -> Result<(i64, i64), StoreError> {
        let mut s = self.lock()?;
        let last = s.convs.get(&conv).copied().unwrap_or_default();
        let mark = s.read_marks.entry((user, conv)).or_default();
        let before = *mark;
        *mark = before.max(seq.min(last));
        let after = *mark;
        if after == 0 {
            s.read_marks.remove(&(user, conv));
        }
        Ok((before, after))
    }

    async fn read_marks(&self, user: UserId) -> Result<Vec<(ConvId, i64)>, StoreError> {
        let s = self.lock()?;
        Ok(s.read_marks.iter().filter(|((u, _), _)| *u == user).map(|(&(_, c), &seq)| (c, seq)).collect())
    }

    async fn marks(&self, pairs: &[(UserId, ConvId)]) -> Result<Vec<Marks>, StoreError> {
        let s = self.lock()?;
        let mut out: BTreeMap<(UserId, ConvId), Marks> = BTreeMap::new();
        for &(user, conv) in pairs {
            let read = s.read_marks.get(&(user, conv)).copied().unwrap_or_default();
            let recv = s.cursors.get(&(user, conv)).copied().unwrap_or_default();
            if read > 0 || recv > 0 {
                out.insert((user, conv), Marks { conv, user, read, recv });
            }
        }
        Ok(out.into_values().collect())
    }

    async fn senders(&self, conv: ConvId, after: i64, upto: i64) -> Result<Vec<UserId>, StoreError> {
        let s = self.lock()?;
        let set: BTreeSet<UserId> = s
            .log
            .values()
            .filter(|m| m.conv == conv && m.seq > after && m.seq <= upto)
            .map(|m| m.sender)
            .collect();
        Ok(set.into_iter().collect())
    }

    async fn purge(&self, older_than: i64, keep_per_conv: i64, now: i64) -> Result<u64, StoreError> {
        let mut s = self.lock()?;
        let convs = s.convs.clone();
        let before = s.log.len();
        s.log.retain(|_, m| {
            m.created_at >= older_than
                && m.seq > convs.get(&m.conv).copied().unwrap_or_default() - keep_per_conv
        });
        let State { log, cids, tokens, session_cursors, .. } = &mut *s;
        cids.retain(|_, mid| log.contains_key(mid));
        tokens.retain(|_, (_, expires)| *expires > now);
        session_cursors.retain(|(h, _), _| tokens.contains_key(h));
        Ok((before - s.log.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_passes_the_contract() {
        crate::contract::run_all(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn memory_log_passes_the_contract() {
        let store = MemoryStore::new();
        crate::log_contract::run_all(&store, &store).await;
    }
}
