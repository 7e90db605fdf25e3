//! The contract every [`Control`] must meet (issue 21), as async checks that panic with a
//! message on the first violation. Run [`run_all`] against each adapter: the in-memory one
//! here, SQLite and MySQL in `chat-model`. Like the other contracts, it works on a database
//! that may hold data from other runs: every user and group is new, no check assumes ids.

use chat_proto::{ConvId, GroupId, HistoryFrom, UserId};

use crate::contract::{HASH, Names, new_user, ok};
use crate::{Control, GroupRank, Log, NewMessage, Store, StoreError, UserRef, WriteCheck, Writers};

/// A user id no store hands out.
const NO_USER: UserId = UserId(-7);

/// Runs every check, in sequence. `store`, `log` and `control` must share one database.
pub async fn run_all(store: &dyn Store, log: &dyn Log, control: &dyn Control) {
    blocks(store, control).await;
    writers_and_the_write_check(store, control).await;
    friend_requests(store, control).await;
    friendships_both_ways(store, control).await;
    group_ranks(store, control).await;
    editing_and_deleting_groups(store, log, control).await;
    passwords_end_tokens(store, log, control).await;
    deleted_accounts(store, log, control).await;
}

fn refs(users: &[(UserId, &str)]) -> Vec<UserRef> {
    users.iter().map(|&(id, name)| UserRef { id, name: name.to_owned() }).collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A block is one direction, repeatable, listed by name, undone by unblock; it ends a
/// request from the blocked user; blocking a user that does not exist fails.
pub async fn blocks(store: &dyn Store, control: &dyn Control) {
    let names = Names::new();
    let (a, _) = new_user(store, &names, "cba").await;
    let (b, b_name) = new_user(store, &names, "cbb").await;
    let (c, c_name) = new_user(store, &names, "cbc").await;

    assert!(ok("put_request", control.put_request(b, a, 1).await), "a new request");
    ok("block", control.block(a, b).await);
    ok("block again", control.block(a, b).await);
    ok("block", control.block(a, c).await);
    let mut blocked = ok("blocked", control.blocked(a).await);
    blocked.sort_by_key(|u| u.id.0);
    assert_eq!(blocked, refs(&[(b, &b_name), (c, &c_name)]), "a blocks b and c, once each");
    assert!(ok("is_blocked", control.is_blocked(b, a).await), "b is blocked by a");
    assert!(!ok("is_blocked", control.is_blocked(a, b).await), "a block is one direction");
    assert_eq!(ok("blockers_of", control.blockers_of(b).await), vec![a]);
    assert!(ok("blocked", control.blocked(b).await).is_empty(), "b blocks nobody");
    let (incoming, _) = ok("requests", control.requests(a).await);
    assert!(incoming.is_empty(), "blocking b ended b's request to a: {incoming:?}");

    assert!(ok("unblock", control.unblock(a, b).await), "there was a block");
    assert!(!ok("unblock again", control.unblock(a, b).await), "nothing left to unblock");
    assert!(!ok("is_blocked", control.is_blocked(b, a).await));
    assert_eq!(ok("blocked", control.blocked(a).await), refs(&[(c, &c_name)]));

    assert_eq!(control.block(a, NO_USER).await, Err(StoreError::UnknownUser), "block a stranger id");
    assert_eq!(control.block(NO_USER, a).await, Err(StoreError::UnknownUser), "block by a stranger id");
}

/// The setting defaults to anyone and round-trips; the write check reads every fact a chat
/// needs in one answer, from the recipient's side.
pub async fn writers_and_the_write_check(store: &dyn Store, control: &dyn Control) {
    let names = Names::new();
    let (a, _) = new_user(store, &names, "cwa").await;
    let (b, _) = new_user(store, &names, "cwb").await;

    assert_eq!(ok("writers", control.writers(b).await), Writers::Anyone, "the default");
    let open = WriteCheck { live: true, ..WriteCheck::default() };
    assert_eq!(ok("write_check", control.write_check(a, b).await), open);

    ok("set_writers", control.set_writers(b, Writers::Friends).await);
    assert_eq!(ok("writers", control.writers(b).await), Writers::Friends);
    let friends_only = WriteCheck { live: true, friends_only: true, ..WriteCheck::default() };
    assert_eq!(ok("write_check", control.write_check(a, b).await), friends_only);

    // Only the recipient's own list counts.
    ok("add_friend", store.add_friend(a, b).await);
    assert_eq!(ok("write_check", control.write_check(a, b).await), friends_only, "a lists b: no matter");
    ok("add_friend", store.add_friend(b, a).await);
    let check = ok("write_check", control.write_check(a, b).await);
    assert!(check.friend_of_recipient, "b lists a: {check:?}");

    ok("block", control.block(b, a).await);
    let check = ok("write_check", control.write_check(a, b).await);
    assert!(check.blocked_by_recipient && !check.blocked_by_sender, "{check:?}");
    let back = ok("write_check", control.write_check(b, a).await);
    assert!(back.blocked_by_sender && !back.blocked_by_recipient, "{back:?}");

    ok("set_writers", control.set_writers(b, Writers::Anyone).await);
    assert_eq!(ok("writers", control.writers(b).await), Writers::Anyone, "set back");
    assert!(!ok("write_check", control.write_check(a, NO_USER).await).live, "no such recipient");
}

/// Requests are one per direction, listed oldest first on both sides, and taken once.
pub async fn friend_requests(store: &dyn Store, control: &dyn Control) {
    let names = Names::new();
    let (a, a_name) = new_user(store, &names, "cra").await;
    let (b, b_name) = new_user(store, &names, "crb").await;
    let (c, c_name) = new_user(store, &names, "crc").await;

    assert!(ok("put_request", control.put_request(b, a, 20).await), "b asks a");
    assert!(!ok("put_request again", control.put_request(b, a, 30).await), "not new");
    assert!(ok("put_request", control.put_request(c, a, 10).await), "c asks a (earlier)");
    assert!(ok("put_request", control.put_request(a, c, 40).await), "a asks c: the other direction");

    let (incoming, outgoing) = ok("requests", control.requests(a).await);
    assert_eq!(incoming, refs(&[(c, &c_name), (b, &b_name)]), "oldest first");
    assert_eq!(outgoing, refs(&[(c, &c_name)]));
    let (incoming, outgoing) = ok("requests", control.requests(b).await);
    assert!(incoming.is_empty());
    assert_eq!(outgoing, refs(&[(a, &a_name)]));

    assert!(ok("take_request", control.take_request(b, a).await), "there was one");
    assert!(!ok("take_request again", control.take_request(b, a).await), "taken once");
    let (incoming, _) = ok("requests", control.requests(a).await);
    assert_eq!(incoming, refs(&[(c, &c_name)]));

    assert_eq!(control.put_request(a, NO_USER, 1).await, Err(StoreError::UnknownUser));
}

/// befriend makes both directions and settles requests between the two; unfriend undoes both.
pub async fn friendships_both_ways(store: &dyn Store, control: &dyn Control) {
    let names = Names::new();
    let (a, _) = new_user(store, &names, "cfa").await;
    let (b, _) = new_user(store, &names, "cfb").await;

    assert!(ok("put_request", control.put_request(a, b, 1).await));
    ok("befriend", control.befriend(a, b).await);
    assert!(ok("is_friend", control.is_friend(a, b).await) && ok("is_friend", control.is_friend(b, a).await));
    let (incoming, outgoing) = ok("requests", control.requests(b).await);
    assert!(incoming.is_empty() && outgoing.is_empty(), "the request is settled");
    ok("befriend again", control.befriend(b, a).await);
    let listed: Vec<UserId> = ok("friends", store.friends(a).await).into_iter().map(|f| f.id).collect();
    assert_eq!(listed, vec![b], "listed once");

    assert!(ok("unfriend", control.unfriend(b, a).await), "there was a friendship");
    assert!(
        !ok("is_friend", control.is_friend(a, b).await) && !ok("is_friend", control.is_friend(b, a).await)
    );
    assert!(!ok("unfriend again", control.unfriend(a, b).await), "nothing left");

    // One direction (the original ADD_FRIEND) is undone as well.
    ok("add_friend", store.add_friend(a, b).await);
    assert!(ok("unfriend", control.unfriend(b, a).await));
    assert!(!ok("is_friend", control.is_friend(a, b).await));
    assert_eq!(control.befriend(a, NO_USER).await, Err(StoreError::UnknownUser));
}

async fn rank_of(control: &dyn Control, group: GroupId, user: UserId) -> Option<GroupRank> {
    let ranks = ok("ranks", control.ranks(group).await).expect("the group exists");
    ranks.into_iter().find(|&(u, _)| u == user).map(|(_, r)| r)
}

/// The creator owns the group; admins are named and unnamed; ownership moves whole; a removed
/// member loses its rank and its cursor.
pub async fn group_ranks(store: &dyn Store, control: &dyn Control) {
    let names = Names::new();
    let (owner, _) = new_user(store, &names, "cgo").await;
    let (m1, _) = new_user(store, &names, "cg1").await;
    let (m2, _) = new_user(store, &names, "cg2").await;
    let group = ok("create_group", store.create_group(owner, &names.name("cgg"), "").await);
    ok("join", store.join_group(group, m1).await);
    ok("join", store.join_group(group, m2).await);

    let mut ranks = ok("ranks", control.ranks(group).await).expect("the group exists");
    ranks.sort_by_key(|&(u, _)| u.0);
    let mut want = vec![(owner, GroupRank::Owner), (m1, GroupRank::Member), (m2, GroupRank::Member)];
    want.sort_by_key(|&(u, _)| u.0);
    assert_eq!(ranks, want);
    assert_eq!(ok("ranks", control.ranks(GroupId(-7)).await), None, "no such group");

    ok("set_admin", control.set_admin(group, m1, true).await);
    assert_eq!(rank_of(control, group, m1).await, Some(GroupRank::Admin));
    ok("set_admin", control.set_admin(group, m1, false).await);
    assert_eq!(rank_of(control, group, m1).await, Some(GroupRank::Member));

    ok("set_admin", control.set_admin(group, m2, true).await);
    ok("set_owner", control.set_owner(group, m2).await);
    assert_eq!(rank_of(control, group, m2).await, Some(GroupRank::Owner), "an admin made owner");
    assert_eq!(rank_of(control, group, owner).await, Some(GroupRank::Member), "one owner at a time");
    let owners = ok("ranks", control.ranks(group).await)
        .expect("the group exists")
        .into_iter()
        .filter(|&(_, r)| r == GroupRank::Owner)
        .count();
    assert_eq!(owners, 1);

    ok("set_admin", control.set_admin(group, m1, true).await);
    assert!(ok("remove_member", control.remove_member(group, m1).await), "m1 was a member");
    assert!(!ok("remove_member again", control.remove_member(group, m1).await));
    assert_eq!(rank_of(control, group, m1).await, None, "gone with its rank");
    ok("join again", store.join_group(group, m1).await);
    assert_eq!(rank_of(control, group, m1).await, Some(GroupRank::Member), "back without the admin rank");
}

/// A rename checks the name; a description changes alone; deleting takes the members and the
/// messages with it.
pub async fn editing_and_deleting_groups(store: &dyn Store, log: &dyn Log, control: &dyn Control) {
    let names = Names::new();
    let (owner, owner_name) = new_user(store, &names, "ceo").await;
    let taken = names.name("cet");
    ok("create_group", store.create_group(owner, &taken, "").await);
    let group = ok("create_group", store.create_group(owner, &names.name("ceg"), "old").await);

    let renamed = names.name("cer");
    ok("edit_group", control.edit_group(group, Some(&renamed), None).await);
    ok("edit_group", control.edit_group(group, None, Some("new words")).await);
    let entry = ok("groups_of", store.groups_of(owner).await).into_iter().find(|g| g.id == group);
    let entry = entry.expect("the owner is still in it");
    assert_eq!((entry.name.as_str(), entry.desc.as_str()), (renamed.as_str(), "new words"));
    assert_eq!(control.edit_group(group, Some(&taken), None).await, Err(StoreError::NameTaken));
    assert_eq!(control.edit_group(GroupId(-7), None, Some("x")).await, Err(StoreError::UnknownGroup));

    let conv = ConvId::group(group);
    let message = NewMessage {
        conv,
        sender: owner,
        sender_name: owner_name,
        cid: None,
        body: "soon gone".into(),
        created_at: now_ms(),
    };
    ok("append", log.append(&[message]).await);
    ok("delete_group", control.delete_group(group).await);
    assert_eq!(ok("ranks", control.ranks(group).await), None, "the group is gone");
    assert!(ok("groups_of", store.groups_of(owner).await).iter().all(|g| g.id != group));
    assert!(ok("history", log.history(conv, HistoryFrom::Latest, 10).await).is_empty(), "its messages too");
}

/// A new password hash replaces the old and ends every resume token of that user only.
pub async fn passwords_end_tokens(store: &dyn Store, log: &dyn Log, control: &dyn Control) {
    let names = Names::new();
    let (a, _) = new_user(store, &names, "cpa").await;
    let (b, _) = new_user(store, &names, "cpb").await;
    let far = now_ms() + 3_600_000;
    let (ta, tb) = (format!("tok-a-{}", names.name("")), format!("tok-b-{}", names.name("")));
    ok("put_token", log.put_token(&ta, a, far).await);
    ok("put_token", log.put_token(&tb, b, far).await);

    let new_hash = format!("{HASH}x");
    ok("set_password", control.set_password(a, &new_hash).await);
    let record = ok("find_user", store.find_user(a).await).expect("a exists");
    assert_eq!(record.password_hash, new_hash);
    assert_eq!(ok("token_user", log.token_user(&ta, now_ms()).await), None, "a's token ended");
    assert_eq!(ok("token_user", log.token_user(&tb, now_ms()).await), Some(b), "b's token stays");
    assert_eq!(control.set_password(NO_USER, &new_hash).await, Err(StoreError::UnknownUser));
}

/// Deleting an account removes every relation of it, keeps its messages with their
/// recipients under the placeholder name, and holds its name until `free_name`'s time.
pub async fn deleted_accounts(store: &dyn Store, log: &dyn Log, control: &dyn Control) {
    let names = Names::new();
    let (gone, gone_name) = new_user(store, &names, "cda").await;
    let (friend, friend_name) = new_user(store, &names, "cdf").await;
    let (other, _) = new_user(store, &names, "cdo").await;
    ok("befriend", control.befriend(gone, friend).await);
    ok("put_request", control.put_request(gone, other, 1).await);
    ok("block", control.block(other, gone).await);
    let group = ok("create_group", store.create_group(friend, &names.name("cdg"), "").await);
    ok("join", store.join_group(group, gone).await);
    let conv = ConvId::direct(gone, friend);
    let message = NewMessage {
        conv,
        sender: gone,
        sender_name: gone_name.clone(),
        cid: None,
        body: "my last words".into(),
        created_at: now_ms(),
    };
    ok("append", log.append(&[message]).await);
    let token = format!("tok-d-{}", names.name(""));
    ok("put_token", log.put_token(&token, gone, now_ms() + 3_600_000).await);

    let at = now_ms();
    ok("delete_account", control.delete_account(gone, "!unusable", "deleted user", at).await);

    assert!(!ok("is_friend", control.is_friend(friend, gone).await), "friendship gone both ways");
    assert!(!ok("is_friend", control.is_friend(gone, friend).await));
    let (incoming, _) = ok("requests", control.requests(other).await);
    assert!(incoming.is_empty(), "its request is gone");
    assert!(ok("blocked", control.blocked(other).await).is_empty(), "blocks of it are gone");
    assert_eq!(rank_of(control, group, gone).await, None, "its membership is gone");
    assert_eq!(ok("token_user", log.token_user(&token, now_ms()).await), None, "its tokens are gone");
    assert!(!ok("write_check", control.write_check(friend, gone).await).live, "no longer writable");
    let record = ok("find_user", store.find_user(gone).await).expect("the row stays, holding the name");
    assert_eq!((record.name.as_str(), record.password_hash.as_str()), (gone_name.as_str(), "!unusable"));
    let kept = ok("history", log.history(conv, HistoryFrom::Latest, 10).await);
    assert_eq!(kept.len(), 1, "the message stays with its recipient");
    assert_eq!((kept[0].body.as_str(), kept[0].sender_name.as_str()), ("my last words", "deleted user"));

    assert!(!ok("free_name", control.free_name(&gone_name, at - 1, "deleted-").await), "not yet");
    assert!(ok("free_name", control.free_name(&gone_name, at, "deleted-").await), "its time has come");
    let record = ok("find_user", store.find_user(gone).await).expect("the row stays");
    assert_eq!(record.name, format!("deleted-{}", gone.0), "renamed to the placeholder and its id");
    assert!(ok("find_user_by_name", store.find_user_by_name(&gone_name).await).is_none(), "the name is free");
    ok("create_user", store.create_user(&gone_name, HASH).await);
    let live = ok("free_name", control.free_name(&friend_name, now_ms(), "deleted-").await);
    assert!(!live, "a live account's name is never freed");
}
