//! Groups with an owner (issue 21): the creator owns the group; the owner and the admins it
//! names may remove members, rename the group and change its description; only the owner
//! deletes it and names admins; a member may leave. When the owner leaves, ownership passes
//! to the admin with the lowest id, else to the member with the lowest id; the last member
//! leaving deletes the group. Every change is pushed to the members as an EVENT.

use chat_ports::GroupRank;
use chat_proto::{ConvId, GroupId, MAX_DESC_CHARS, MAX_NAME_CHARS, UserId, event};
use serde_json::json;
use tracing::info;

use super::{check_name, check_text};
use crate::dispatch::{Reply, SessionUser};
use crate::{Service, ServiceError};

/// A group's members with their rank, and the caller's.
struct Standing {
    members: Vec<(UserId, GroupRank)>,
    mine: GroupRank,
}

impl Standing {
    fn rank_of(&self, user: UserId) -> Option<GroupRank> {
        self.members.iter().find(|(u, _)| *u == user).map(|&(_, r)| r)
    }

    fn ids(&self) -> Vec<UserId> {
        self.members.iter().map(|&(u, _)| u).collect()
    }
}

fn owner_only(what: &str) -> ServiceError {
    ServiceError::NotAllowed(format!("only the group's owner may {what}"))
}

fn managers_only(what: &str) -> ServiceError {
    ServiceError::NotAllowed(format!("only the group's owner or admins may {what}"))
}

impl Service {
    /// The caller's standing in `group`: `UnknownGroup`, or `NotMember` if it has none.
    async fn standing(&self, me: UserId, group: GroupId) -> Result<Standing, ServiceError> {
        let members = self.control.ranks(group).await?.ok_or(ServiceError::UnknownGroup)?;
        let mine = members.iter().find(|(u, _)| *u == me).map(|&(_, r)| r).ok_or(ServiceError::NotMember)?;
        Ok(Standing { members, mine })
    }

    /// KICK: the owner removes anyone but itself; an admin removes plain members.
    pub(crate) async fn kick(
        &self,
        me: &SessionUser,
        group: GroupId,
        user: UserId,
    ) -> Result<Reply, ServiceError> {
        let standing = self.standing(me.id, group).await?;
        if standing.mine == GroupRank::Member {
            return Err(managers_only("remove members"));
        }
        if user == me.id {
            return Err(ServiceError::InvalidInput("to leave a group, use LEAVE_GROUP".into()));
        }
        let target = standing.rank_of(user).ok_or(ServiceError::NotMember)?;
        if target == GroupRank::Owner || (target == GroupRank::Admin && standing.mine != GroupRank::Owner) {
            return Err(owner_only("remove an admin"));
        }
        self.control.remove_member(group, user).await?;
        self.members_changed(group).await;
        info!(user = %me.id, group = %group, removed = %user, "member removed");
        // Everyone who was in it hears, the removed member included (its node stops its
        // session's delivery of the group).
        let frame = event("member-removed", json!({ "by": me.id, "groupid": group, "id": user }));
        self.notify(&standing.ids(), &frame).await;
        Ok(Reply::Done)
    }

    /// LEAVE_GROUP.
    pub(crate) async fn leave_group(&self, me: &SessionUser, group: GroupId) -> Result<Reply, ServiceError> {
        let standing = self.standing(me.id, group).await?;
        self.depart(me.id, group, standing).await?;
        Ok(Reply::Done)
    }

    /// `me` leaves `group` (LEAVE_GROUP, or its account is deleted): ownership passes on, or
    /// the group goes with its last member.
    async fn depart(&self, me: UserId, group: GroupId, standing: Standing) -> Result<(), ServiceError> {
        let rest: Vec<(UserId, GroupRank)> =
            standing.members.iter().copied().filter(|&(u, _)| u != me).collect();
        if rest.is_empty() {
            self.control.delete_group(group).await?;
            self.members_changed(group).await;
            self.sessions().left(me, ConvId::group(group));
            info!(user = %me, group = %group, "last member left; group deleted");
            return Ok(());
        }
        self.control.remove_member(group, me).await?;
        let heir = if standing.mine == GroupRank::Owner {
            // Members are by id: the first admin, else the first member.
            let heir = rest.iter().find(|(_, r)| *r == GroupRank::Admin).or(rest.first()).map(|&(u, _)| u);
            if let Some(heir) = heir {
                self.control.set_owner(group, heir).await?;
            }
            heir
        } else {
            None
        };
        self.members_changed(group).await;
        info!(user = %me, group = %group, "left the group");
        self.notify(&standing.ids(), &event("member-left", json!({ "groupid": group, "id": me }))).await;
        if let Some(heir) = heir {
            let ids: Vec<UserId> = rest.iter().map(|&(u, _)| u).collect();
            self.notify(&ids, &event("owner-changed", json!({ "groupid": group, "id": heir }))).await;
        }
        Ok(())
    }

    /// Every group `me` is in is left (the account is going).
    pub(crate) async fn leave_all_groups(&self, me: UserId) -> Result<(), ServiceError> {
        for group in self.store.groups_of(me).await? {
            if let Ok(standing) = self.standing(me, group.id).await {
                self.depart(me, group.id, standing).await?;
            }
        }
        Ok(())
    }

    /// EDIT_GROUP: a new name and/or description (owner or admins).
    pub(crate) async fn edit_group(
        &self,
        me: &SessionUser,
        group: GroupId,
        name: Option<String>,
        desc: Option<String>,
    ) -> Result<Reply, ServiceError> {
        let name = name.map(|n| n.trim().to_owned());
        if let Some(name) = &name {
            check_name("group name", name, MAX_NAME_CHARS)?;
        }
        if let Some(desc) = &desc {
            check_text("group description", desc, MAX_DESC_CHARS)?;
        }
        let standing = self.standing(me.id, group).await?;
        if standing.mine == GroupRank::Member {
            return Err(managers_only("rename the group or change its description"));
        }
        self.control.edit_group(group, name.as_deref(), desc.as_deref()).await?;
        let mut fields = json!({ "by": me.id, "groupid": group });
        if let Some(name) = name {
            fields["groupname"] = name.into();
        }
        if let Some(desc) = desc {
            fields["groupdesc"] = desc.into();
        }
        self.notify(&standing.ids(), &event("group-changed", fields)).await;
        Ok(Reply::Done)
    }

    /// DELETE_GROUP (owner only): the group, its memberships and its messages go.
    pub(crate) async fn delete_group(&self, me: &SessionUser, group: GroupId) -> Result<Reply, ServiceError> {
        let standing = self.standing(me.id, group).await?;
        if standing.mine != GroupRank::Owner {
            return Err(owner_only("delete the group"));
        }
        self.control.delete_group(group).await?;
        self.members_changed(group).await;
        info!(user = %me.id, group = %group, "group deleted");
        self.notify(&standing.ids(), &event("group-deleted", json!({ "by": me.id, "groupid": group }))).await;
        Ok(Reply::Done)
    }

    /// SET_ADMIN (owner only): names a member an admin, or takes the rank away.
    pub(crate) async fn set_admin(
        &self,
        me: &SessionUser,
        group: GroupId,
        user: UserId,
        admin: bool,
    ) -> Result<Reply, ServiceError> {
        let standing = self.standing(me.id, group).await?;
        if standing.mine != GroupRank::Owner {
            return Err(owner_only("name admins"));
        }
        if user == me.id {
            return Err(ServiceError::InvalidInput("the owner is not an admin of its own group".into()));
        }
        standing.rank_of(user).ok_or(ServiceError::NotMember)?;
        self.control.set_admin(group, user, admin).await?;
        let frame = event("admin-changed", json!({ "admin": admin, "groupid": group, "id": user }));
        self.notify(&standing.ids(), &frame).await;
        Ok(Reply::Done)
    }
}
