//! [`Control`] over the in-memory store's maps, with the SQL stores' semantics.

use async_trait::async_trait;
use chat_proto::{ConvId, GroupId, Role, UserId};

use super::{MemoryStore, State};
use crate::{Control, GroupRank, StoreError, UserRef, WriteCheck, Writers};

fn refs(s: &State, ids: impl Iterator<Item = UserId>) -> Vec<UserRef> {
    ids.filter_map(|id| s.users.get(&id).map(|u| UserRef { id, name: u.name.clone() })).collect()
}

#[async_trait]
impl Control for MemoryStore {
    async fn block(&self, user: UserId, other: UserId) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        s.require_user(user)?;
        s.require_user(other)?;
        s.blocks.insert((user, other));
        s.requests.remove(&(other, user));
        Ok(())
    }

    async fn unblock(&self, user: UserId, other: UserId) -> Result<bool, StoreError> {
        Ok(self.lock()?.blocks.remove(&(user, other)))
    }

    async fn blocked(&self, user: UserId) -> Result<Vec<UserRef>, StoreError> {
        let s = self.lock()?;
        let ids: Vec<UserId> = s.blocks.iter().filter(|(u, _)| *u == user).map(|&(_, b)| b).collect();
        Ok(refs(&s, ids.into_iter()))
    }

    async fn blockers_of(&self, user: UserId) -> Result<Vec<UserId>, StoreError> {
        Ok(self.lock()?.blocks.iter().filter(|(_, b)| *b == user).map(|&(u, _)| u).collect())
    }

    async fn is_blocked(&self, user: UserId, by: UserId) -> Result<bool, StoreError> {
        Ok(self.lock()?.blocks.contains(&(by, user)))
    }

    async fn set_writers(&self, user: UserId, writers: Writers) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        s.controls.entry(user).or_default().0 = writers == Writers::Friends;
        Ok(())
    }

    async fn writers(&self, user: UserId) -> Result<Writers, StoreError> {
        let s = self.lock()?;
        Ok(if s.controls.get(&user).is_some_and(|c| c.0) { Writers::Friends } else { Writers::Anyone })
    }

    async fn write_check(&self, from: UserId, to: UserId) -> Result<WriteCheck, StoreError> {
        let s = self.lock()?;
        let control = s.controls.get(&to).copied().unwrap_or_default();
        Ok(WriteCheck {
            live: s.users.contains_key(&to) && control.1.is_none(),
            blocked_by_recipient: s.blocks.contains(&(to, from)),
            blocked_by_sender: s.blocks.contains(&(from, to)),
            friends_only: control.0,
            friend_of_recipient: s.friends.contains(&(to, from)),
        })
    }

    async fn put_request(&self, from: UserId, to: UserId, at_ms: i64) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        s.require_user(from)?;
        s.require_user(to)?;
        if s.requests.contains_key(&(from, to)) {
            return Ok(false);
        }
        s.requests.insert((from, to), at_ms);
        Ok(true)
    }

    async fn take_request(&self, from: UserId, to: UserId) -> Result<bool, StoreError> {
        Ok(self.lock()?.requests.remove(&(from, to)).is_some())
    }

    async fn requests(&self, user: UserId) -> Result<(Vec<UserRef>, Vec<UserRef>), StoreError> {
        let s = self.lock()?;
        let mut incoming: Vec<(i64, UserId)> =
            s.requests.iter().filter(|((_, t), _)| *t == user).map(|(&(f, _), &at)| (at, f)).collect();
        let mut outgoing: Vec<(i64, UserId)> =
            s.requests.iter().filter(|((f, _), _)| *f == user).map(|(&(_, t), &at)| (at, t)).collect();
        incoming.sort();
        outgoing.sort();
        Ok((refs(&s, incoming.into_iter().map(|x| x.1)), refs(&s, outgoing.into_iter().map(|x| x.1))))
    }

    async fn is_friend(&self, user: UserId, friend: UserId) -> Result<bool, StoreError> {
        Ok(self.lock()?.friends.contains(&(user, friend)))
    }

    async fn befriend(&self, a: UserId, b: UserId) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        s.require_user(a)?;
        s.require_user(b)?;
        for (x, y) in [(a, b), (b, a)] {
            s.friends.insert((x, y));
            s.requests.remove(&(x, y));
        }
        Ok(())
    }

    async fn unfriend(&self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        let mut any = false;
        for (x, y) in [(a, b), (b, a)] {
            any |= s.friends.remove(&(x, y));
            any |= s.requests.remove(&(x, y)).is_some();
        }
        Ok(any)
    }

    async fn ranks(&self, group: GroupId) -> Result<Option<Vec<(UserId, GroupRank)>>, StoreError> {
        let s = self.lock()?;
        Ok(s.groups.get(&group).map(|g| {
            g.members
                .iter()
                .map(|(&id, &role)| {
                    let rank = match role {
                        Role::Creator => GroupRank::Owner,
                        _ if s.admins.contains(&(group, id)) => GroupRank::Admin,
                        _ => GroupRank::Member,
                    };
                    (id, rank)
                })
                .collect()
        }))
    }

    async fn remove_member(&self, group: GroupId, user: UserId) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        let was = s.groups.get_mut(&group).is_some_and(|g| g.members.remove(&user).is_some());
        s.admins.remove(&(group, user));
        s.cursors.remove(&(user, ConvId::group(group)));
        s.read_marks.remove(&(user, ConvId::group(group)));
        Ok(was)
    }

    async fn set_owner(&self, group: GroupId, user: UserId) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        if let Some(g) = s.groups.get_mut(&group) {
            for role in g.members.values_mut() {
                *role = Role::Normal;
            }
            if let Some(role) = g.members.get_mut(&user) {
                *role = Role::Creator;
            }
        }
        s.admins.remove(&(group, user));
        Ok(())
    }

    async fn set_admin(&self, group: GroupId, user: UserId, admin: bool) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        if admin {
            s.admins.insert((group, user));
        } else {
            s.admins.remove(&(group, user));
        }
        Ok(())
    }

    async fn edit_group(
        &self,
        group: GroupId,
        name: Option<&str>,
        desc: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        if let Some(name) = name
            && s.groups.iter().any(|(&id, g)| id != group && g.name == name)
        {
            return Err(StoreError::NameTaken);
        }
        let g = s.groups.get_mut(&group).ok_or(StoreError::UnknownGroup)?;
        if let Some(name) = name {
            g.name = name.into();
        }
        if let Some(desc) = desc {
            g.desc = desc.into();
        }
        Ok(())
    }

    async fn delete_group(&self, group: GroupId) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        let conv = ConvId::group(group);
        s.groups.remove(&group);
        s.admins.retain(|&(g, _)| g != group);
        s.cursors.retain(|&(_, c), _| c != conv);
        s.read_marks.retain(|&(_, c), _| c != conv);
        s.log.retain(|_, m| m.conv != conv);
        s.convs.remove(&conv);
        Ok(())
    }

    async fn set_password(&self, user: UserId, password_hash: &str) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        s.users.get_mut(&user).ok_or(StoreError::UnknownUser)?.password_hash = password_hash.into();
        s.tokens.retain(|_, (u, _)| *u != user);
        Ok(())
    }

    async fn delete_account(
        &self,
        user: UserId,
        unusable_hash: &str,
        deleted_name: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        s.require_user(user)?;
        let groups: Vec<ConvId> = s
            .groups
            .iter()
            .filter(|(_, g)| g.members.contains_key(&user))
            .map(|(&id, _)| ConvId::group(id))
            .collect();
        for m in s.log.values_mut() {
            let mine =
                m.conv.users().is_some_and(|(a, b)| a == user || b == user) || groups.contains(&m.conv);
            if mine && m.sender == user {
                m.sender_name = deleted_name.into();
            }
        }
        s.friends.retain(|&(a, b)| a != user && b != user);
        s.requests.retain(|&(a, b), _| a != user && b != user);
        s.blocks.retain(|&(a, b)| a != user && b != user);
        s.admins.retain(|&(_, u)| u != user);
        for g in s.groups.values_mut() {
            g.members.remove(&user);
        }
        s.cursors.retain(|&(u, _), _| u != user);
        s.read_marks.retain(|&(u, _), _| u != user);
        s.tokens.retain(|_, (u, _)| *u != user);
        s.offline.retain(|_, (u, _)| *u != user);
        if let Some(u) = s.users.get_mut(&user) {
            u.password_hash = unusable_hash.into();
            u.online = false;
        }
        s.controls.insert(user, (false, Some(at_ms)));
        Ok(())
    }

    async fn free_name(
        &self,
        name: &str,
        deleted_before: i64,
        placeholder: &str,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        let holder = s.users.iter().find(|(_, u)| u.name == name).map(|(&id, _)| id);
        let Some(id) = holder else { return Ok(false) };
        if s.controls.get(&id).and_then(|c| c.1).is_none_or(|at| at > deleted_before) {
            return Ok(false);
        }
        if let Some(u) = s.users.get_mut(&id) {
            u.name = format!("{placeholder}{id}");
        }
        Ok(true)
    }
}
