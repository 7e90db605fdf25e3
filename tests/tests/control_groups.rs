//! Issue 21, groups with an owner, across two nodes: who may remove, rename, delete and name
//! admins (a test per rule, with forged ids), what a removed member still gets (nothing) and
//! may read (nothing after it left), and where ownership goes when the owner leaves.

use std::time::Duration;

use chat_tests::control::{User, two_nodes_on};
use serde_json::{Value, json};

async fn group_of(owner: &mut User, members: &mut [&mut User]) -> i64 {
    let created = owner.ask(json!({"msgid":8,"groupname":chat_tests::unique("g"),"groupdesc":"d"})).await;
    let gid = created["groupid"].as_i64().expect("groupid");
    for m in members.iter_mut() {
        assert_eq!(m.ask(json!({"msgid":9,"groupid":gid})).await["errno"], 0);
    }
    gid
}

fn role_of(list: &Value, gid: i64, user: i64) -> Option<String> {
    let group = list["groups"].as_array()?.iter().find(|g| g["id"] == gid)?;
    let member = group["users"].as_array()?.iter().find(|u| u["id"] == user)?;
    member["role"].as_str().map(String::from)
}

/// A removed member gets nothing more, its chats to the group are refused, and it cannot read
/// the group's history after its removal.
async fn a_removed_member_gets_nothing_more_and_reads_no_history(redis: &str) {
    let (n1, n2) = two_nodes_on(redis);
    let mut owner = User::on(n1.addr, "owner").await;
    let mut stays = User::on(n1.addr, "stays").await;
    let mut removed = User::on(n2.addr, "removed").await;
    let gid = group_of(&mut owner, &mut [&mut stays, &mut removed]).await;
    assert_eq!(owner.ask(json!({"msgid":10,"groupid":gid,"msg":"before"})).await["errno"], 0);
    assert_eq!(removed.wait_for(|f| f["msgid"] == 10).await["msg"], "before");

    assert_eq!(owner.ask(json!({"msgid":41,"groupid":gid,"id":removed.id})).await["errno"], 0);
    let told = removed.event("member-removed").await;
    assert_eq!((told["groupid"].as_i64(), told["id"].as_i64()), (Some(gid), Some(removed.id)));
    assert_eq!(stays.event("member-removed").await["id"], removed.id);

    for i in 0..20 {
        let ack = owner.ask(json!({"msgid":10,"groupid":gid,"msg":format!("after {i}")})).await;
        assert_eq!(ack["errno"], 0);
    }
    assert_eq!(stays.wait_for(|f| f["msg"] == "after 19").await["groupid"], gid);
    removed.none_within(Duration::from_millis(500), |f| f["msgid"] == 10).await;
    let refused = removed.ask(json!({"msgid":10,"groupid":gid,"msg":"let me back"})).await;
    assert_eq!(refused["errno"], 7, "{refused}");
    assert_eq!(removed.ask(json!({"msgid":19,"groupid":gid})).await["errno"], 7, "no history after leaving");
    // Nor after a new login (the group is no conversation of theirs any more).
    removed.c.send(&json!({"msgid":3})).await;
    removed.wait_for(|f| f["re"] == 3).await;
    let mut c = chat_tests::WireClient::connect(n1.addr).await;
    let ack = c.login(removed.id, true).await;
    assert_eq!(ack["errno"], 0);
    assert_eq!(ack["groups"], json!([]), "{ack}");
    assert!(!ack["unread"].to_string().contains("groupid"), "{ack}");
}

/// Who may do what: a member removes nobody, renames nothing, deletes nothing, names no
/// admin; an admin removes plain members and renames, but removes no admin or owner and
/// deletes nothing; a non-member does nothing; forged ids change none of it.
async fn management_is_checked_against_the_caller(redis: &str) {
    let (n1, n2) = two_nodes_on(redis);
    let mut owner = User::on(n1.addr, "owner").await;
    let mut admin = User::on(n2.addr, "admin").await;
    let mut member = User::on(n2.addr, "member").await;
    let mut other = User::on(n1.addr, "other").await;
    let mut outsider = User::on(n2.addr, "outsider").await;
    let gid = group_of(&mut owner, &mut [&mut admin, &mut member, &mut other]).await;
    let forge = |mut req: Value, who: i64| {
        req["userid"] = who.into();
        req["from"] = who.into();
        req
    };

    // A member: every management request refused (errno 23), even carrying the owner's id.
    for req in [
        json!({"msgid":41,"groupid":gid,"id":other.id}),
        json!({"msgid":42,"groupid":gid,"groupname":chat_tests::unique("x")}),
        json!({"msgid":43,"groupid":gid}),
        json!({"msgid":44,"groupid":gid,"id":member.id,"admin":true}),
    ] {
        let ack = member.ask(forge(req.clone(), owner.id)).await;
        assert_eq!(ack["errno"], 23, "{req} -> {ack}");
    }
    // An outsider: not a member (errno 7).
    for req in [json!({"msgid":41,"groupid":gid,"id":other.id}), json!({"msgid":40,"groupid":gid})] {
        assert_eq!(outsider.ask(forge(req.clone(), owner.id)).await["errno"], 7, "{req}");
    }
    // LEAVE_GROUP with someone else's id leaves nobody but the caller (here: nobody).
    assert_eq!(outsider.ask(json!({"msgid":40,"groupid":gid,"id":other.id})).await["errno"], 7);

    assert_eq!(owner.ask(json!({"msgid":44,"groupid":gid,"id":admin.id,"admin":true})).await["errno"], 0);
    assert_eq!(member.event("admin-changed").await["id"], admin.id);
    // The admin may not remove the owner, nor delete, nor name admins.
    assert_eq!(admin.ask(json!({"msgid":41,"groupid":gid,"id":owner.id})).await["errno"], 23);
    assert_eq!(admin.ask(json!({"msgid":43,"groupid":gid})).await["errno"], 23);
    assert_eq!(admin.ask(json!({"msgid":44,"groupid":gid,"id":member.id,"admin":true})).await["errno"], 23);
    // It may rename (told to the members across nodes) and remove a member.
    let name = chat_tests::unique("renamed");
    let ack = admin.ask(json!({"msgid":42,"groupid":gid,"groupname":name,"groupdesc":"new"})).await;
    assert_eq!(ack["errno"], 0);
    let changed = owner.event("group-changed").await;
    assert_eq!(
        (changed["groupname"].as_str(), changed["groupdesc"].as_str()),
        (Some(name.as_str()), Some("new"))
    );
    assert_eq!(admin.ask(json!({"msgid":41,"groupid":gid,"id":other.id})).await["errno"], 0);
    assert_eq!(other.event("member-removed").await["id"], other.id);
    let list = owner.ask(json!({"msgid":15})).await;
    assert_eq!(list["groups"][0]["groupname"], name.as_str());
    assert_eq!(role_of(&list, gid, other.id), None, "removed: {list}");
    // The member is still there, after all those refusals.
    assert_eq!(role_of(&list, gid, member.id).as_deref(), Some("normal"));
    // Only the owner deletes.
    assert_eq!(owner.ask(json!({"msgid":43,"groupid":gid})).await["errno"], 0);
    assert_eq!(member.event("group-deleted").await["groupid"], gid);
    assert_eq!(admin.event("group-deleted").await["groupid"], gid);
    assert_eq!(member.ask(json!({"msgid":10,"groupid":gid,"msg":"anyone?"})).await["errno"], 6);
}

/// The owner leaving hands the group to its first admin (else its first member); the last
/// member leaving deletes it.
async fn ownership_passes_on_and_the_last_member_deletes(redis: &str) {
    let (n1, n2) = two_nodes_on(redis);
    let mut owner = User::on(n1.addr, "owner").await;
    let mut first = User::on(n2.addr, "first").await;
    let mut admin = User::on(n2.addr, "admin").await;
    let gid = group_of(&mut owner, &mut [&mut first, &mut admin]).await;
    assert_eq!(owner.ask(json!({"msgid":44,"groupid":gid,"id":admin.id,"admin":true})).await["errno"], 0);
    assert_eq!(owner.ask(json!({"msgid":40,"groupid":gid})).await["errno"], 0);
    let left = first.event("member-left").await;
    assert_eq!(left["id"], owner.id);
    assert_eq!(first.event("owner-changed").await["id"], admin.id, "the admin before the first member");
    let list = first.ask(json!({"msgid":15})).await;
    assert_eq!(role_of(&list, gid, admin.id).as_deref(), Some("creator"), "{list}");
    assert_eq!(owner.ask(json!({"msgid":19,"groupid":gid})).await["errno"], 7, "no history after leaving");
    // The new owner has every right: it deletes nothing yet, it leaves; then the last one.
    assert_eq!(admin.ask(json!({"msgid":40,"groupid":gid})).await["errno"], 0);
    assert_eq!(first.event("owner-changed").await["id"], first.id);
    assert_eq!(first.ask(json!({"msgid":40,"groupid":gid})).await["errno"], 0);
    assert_eq!(owner.ask(json!({"msgid":9,"groupid":gid})).await["errno"], 6, "the group is gone");
}

// Pushes and announcements cross nodes through the broker: on one Redis and on a Redis Cluster.
chat_tests::on_both!(multi_thread; a_removed_member_gets_nothing_more_and_reads_no_history, management_is_checked_against_the_caller, ownership_passes_on_and_the_last_member_deletes);
