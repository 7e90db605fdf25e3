//! The contract every [`Store`] must meet, as a suite of async checks that panic
//! (with a message) on the first violation.
//!
//! Run [`run_all`] against each adapter: the in-memory store here, SQLite and
//! MySQL in `chat-model`. The checks work on a database that already holds data
//! from other runs: every name they create carries a random suffix and no check
//! assumes particular ids. They need a tokio runtime; they do not set up or clean
//! up the database.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};

use chat_proto::{FriendEntry, GroupId, MemberEntry, Role, UserId};

use crate::{Store, StoreError};

/// Ids no store ever hands out (auto-increment keys start at 1).
const NO_USER: UserId = UserId(-7);
const NO_GROUP: GroupId = GroupId(-7);

/// A password hash shaped like the argon2 PHC strings the service stores.
pub(crate) const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";

/// Texts that must come back from the store byte for byte.
pub(crate) fn tricky_texts() -> Vec<(&'static str, String)> {
    vec![
        ("quotes", r#"she said "hi" and 'bye' `tick`"#.to_string()),
        ("backslashes", r#"C:\path\to\file \\ \' \" \"#.to_string()),
        ("newlines", "line1\nline2\r\nline3\n\n".to_string()),
        ("control chars", "\u{1}\u{7}\u{8}\t\u{b}\u{c}\u{1b}[0m\u{7f}".to_string()),
        ("emoji", "😀👍🏽👨‍👩‍👧‍👦🇨🇳 🎉".to_string()),
        ("CJK", "你好，世界！こんにちは 안녕하세요".to_string()),
        ("sql injection", "'; DROP TABLE User; --".to_string()),
        ("escaped quote", r"\'".to_string()),
        ("like wildcards", "100% _of_ it %_".to_string()),
        ("json", r#"{"msgid":6,"msg":"a\"b\\c\nd","name":"x"}"#.to_string()),
        ("empty", String::new()),
        ("surrounding spaces", "  padded  ".to_string()),
        ("70000 bytes", long_text(70_000)),
    ]
}

/// A text of exactly `bytes` bytes mixing ASCII, CJK (3 bytes) and emoji (4 bytes).
fn long_text(bytes: usize) -> String {
    let mut s = String::with_capacity(bytes);
    for piece in ["abc\"\\", "中文", "😀", "\n", "x'y"].iter().cycle() {
        if s.len() + piece.len() > bytes {
            break;
        }
        s.push_str(piece);
    }
    while s.len() < bytes {
        s.push('z');
    }
    s
}

/// Unique names for one check: a random tag plus a counter.
pub(crate) struct Names {
    tag: String,
    next: AtomicU32,
}

impl Names {
    pub(crate) fn new() -> Names {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        Names { tag: base36(h.finish()), next: AtomicU32::new(0) }
    }

    /// `prefix` + tag + counter; keep `prefix` under 30 bytes so the name fits VARCHAR(50).
    pub(crate) fn name(&self, prefix: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}{}{n}", self.tag)
    }

    /// A unique name of exactly `chars` CJK characters.
    fn cjk_name(&self, chars: usize) -> String {
        const DIGITS: [char; 36] = [
            '零', '一', '二', '三', '四', '五', '六', '七', '八', '九', '甲', '乙', '丙', '丁', '戊', '己',
            '庚', '辛', '壬', '癸', '子', '丑', '寅', '卯', '辰', '巳', '午', '未', '申', '酉', '戌', '亥',
            '天', '地', '人', '和',
        ];
        let unique = self.name("");
        let suffix: Vec<char> =
            unique.chars().map(|c| DIGITS[c.to_digit(36).map_or(0, |d| d as usize)]).collect();
        let mut name: String = std::iter::repeat_n('汉', chars.saturating_sub(suffix.len())).collect();
        name.extend(suffix.iter().take(chars));
        name
    }
}

fn base36(mut n: u64) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

pub(crate) async fn new_user(store: &dyn Store, names: &Names, prefix: &str) -> (UserId, String) {
    let name = names.name(prefix);
    match store.create_user(&name, HASH).await {
        Ok(id) => (id, name),
        Err(e) => panic!("create_user({name:?}) failed: {e}"),
    }
}

pub(crate) fn ok<T>(what: &str, r: Result<T, StoreError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {e}"),
    }
}

/// Runs every check of the contract, in sequence.
pub async fn run_all(store: &dyn Store) {
    users(store).await;
    user_names_round_trip(store).await;
    users_by_exact_name(store).await;
    followers(store).await;
    concurrent_create_user(store).await;
    presence(store).await;
    friends(store).await;
    groups(store).await;
    group_listing(store).await;
    offline_order(store).await;
    offline_delete(store).await;
    offline_text_round_trip(store).await;
    offline_unknown_recipient(store).await;
    offline_counts(store).await;
}

/// find_user_by_name finds by the exact name only (case and blanks count), with the state.
pub async fn users_by_exact_name(store: &dyn Store) {
    let names = Names::new();
    let (a, name) = new_user(store, &names, "byname_").await;
    ok("set_online", store.set_online(&[a], true).await);
    let found = ok("find_user_by_name", store.find_user_by_name(&name).await);
    assert_eq!(found, Some(FriendEntry { id: a, name: name.clone(), online: true }));
    for other in [name.to_uppercase(), format!("{name} "), format!("{name}x"), String::new()] {
        assert_eq!(ok("find_user_by_name", store.find_user_by_name(&other).await), None, "{other:?}");
    }
}

/// followers are the users whose friend list holds the user (the other direction of friends).
pub async fn followers(store: &dyn Store) {
    let names = Names::new();
    let (a, _) = new_user(store, &names, "fol_a_").await;
    let (b, _) = new_user(store, &names, "fol_b_").await;
    let (c, _) = new_user(store, &names, "fol_c_").await;
    ok("add_friend", store.add_friend(b, a).await);
    ok("add_friend", store.add_friend(c, a).await);
    ok("add_friend", store.add_friend(a, c).await);
    assert_eq!(ok("followers", store.followers(a).await), vec![b, c]);
    assert_eq!(ok("followers", store.followers(c).await), vec![a]);
    assert_eq!(ok("followers", store.followers(b).await), vec![]);
}

/// offline_counts counts per user, in one call, and counts nobody else's messages.
pub async fn offline_counts(store: &dyn Store) {
    let names = Names::new();
    let (a, _) = new_user(store, &names, "cnt_a_").await;
    let (b, _) = new_user(store, &names, "cnt_b_").await;
    let (c, _) = new_user(store, &names, "cnt_c_").await;
    let batch: Vec<(UserId, String)> = (0..5).map(|i| (if i < 3 { a } else { b }, format!("c{i}"))).collect();
    ok("store_offline", store.store_offline(&batch).await);
    let counts = ok("offline_counts", store.offline_counts(&[a, b, c]).await);
    let count = |u: UserId| counts.iter().find(|(x, _)| *x == u).map_or(0, |(_, n)| *n);
    assert_eq!((count(a), count(b), count(c)), (3, 2, 0), "offline_counts: {counts:?}");
    assert!(ok("offline_counts", store.offline_counts(&[]).await).iter().all(|(_, n)| *n == 0));
}

/// create_user, find_user, user_exists; duplicate names; unknown ids.
pub async fn users(store: &dyn Store) {
    let names = Names::new();
    let (a, a_name) = new_user(store, &names, "users_a_").await;
    let (b, _) = new_user(store, &names, "users_b_").await;
    assert_ne!(a, b, "two users got the same id");

    let rec = ok("find_user", store.find_user(a).await);
    let rec = rec.unwrap_or_else(|| panic!("find_user({a}) found nothing right after create_user"));
    assert_eq!(rec.id, a, "find_user returned another id");
    assert_eq!(rec.name, a_name, "find_user returned another name");
    assert_eq!(rec.password_hash, HASH, "the password hash did not round-trip");

    assert!(ok("user_exists", store.user_exists(a).await), "user_exists is false for a new user");
    assert!(!ok("user_exists", store.user_exists(NO_USER).await), "user_exists is true for an unknown id");
    assert_eq!(ok("find_user", store.find_user(NO_USER).await), None, "find_user found an unknown id");

    assert_eq!(
        store.create_user(&a_name, "other").await,
        Err(StoreError::NameTaken),
        "create_user with a taken name must fail with NameTaken"
    );
    let rec = ok("find_user", store.find_user(a).await).map(|r| r.password_hash);
    assert_eq!(rec.as_deref(), Some(HASH), "a failed duplicate create_user changed the first user");

    // Names differing only in case are different names (binary collation).
    let upper = a_name.to_uppercase();
    if upper != a_name {
        ok("create_user (other case)", store.create_user(&upper, HASH).await);
    }
}

/// Names with quotes, SQL metacharacters, emoji and 50 CJK characters are stored verbatim.
pub async fn user_names_round_trip(store: &dyn Store) {
    let names = Names::new();
    let tricky = [
        names.name("'; DROP TABLE User; --"),
        names.name(r"\'"),
        names.name("%"),
        names.name("_"),
        names.name(r#"a"b\c"#),
        names.name("😀你好"),
        names.cjk_name(50),
    ];
    assert_eq!(tricky[6].chars().count(), 50, "the test's own CJK name is not 50 chars");
    for name in &tricky {
        let id = ok("create_user", store.create_user(name, HASH).await);
        let rec = ok("find_user", store.find_user(id).await).map(|r| r.name);
        assert_eq!(rec.as_ref(), Some(name), "user name did not round-trip");
    }
    // `%` and `_` must not act as wildcards anywhere: names they would match are different names.
    let plain = names.name("ab");
    ok("create_user", store.create_user(&plain, HASH).await);
    for wild in [format!("%{}", &plain[2..]), format!("__{}", &plain[2..]), format!("a_{}", &plain[2..])] {
        ok("create_user (a name with wildcards)", store.create_user(&wild, HASH).await);
    }
    for name in &tricky {
        assert_eq!(
            store.create_user(name, HASH).await,
            Err(StoreError::NameTaken),
            "duplicate of {name:?} was not rejected"
        );
    }
}

/// Several concurrent create_user calls with one name: exactly one wins.
pub async fn concurrent_create_user(store: &dyn Store) {
    let names = Names::new();
    let name = names.name("race_");
    let name = name.as_str();
    let (r1, r2, r3, r4, r5, r6) = tokio::join!(
        store.create_user(name, HASH),
        store.create_user(name, HASH),
        store.create_user(name, HASH),
        store.create_user(name, HASH),
        store.create_user(name, HASH),
        store.create_user(name, HASH),
    );
    let results = [r1, r2, r3, r4, r5, r6];
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "exactly one concurrent create_user must win: {results:?}");
    for r in &results {
        assert!(
            matches!(r, Ok(_) | Err(StoreError::NameTaken)),
            "the losers of a create_user race must get NameTaken: {results:?}"
        );
    }

    // Distinct names created concurrently all succeed with distinct ids.
    let (n1, n2, n3, n4) = (names.name("par_"), names.name("par_"), names.name("par_"), names.name("par_"));
    let (r1, r2, r3, r4) = tokio::join!(
        store.create_user(&n1, HASH),
        store.create_user(&n2, HASH),
        store.create_user(&n3, HASH),
        store.create_user(&n4, HASH),
    );
    let mut ids = Vec::new();
    for r in [r1, r2, r3, r4] {
        ids.push(ok("concurrent create_user of distinct names", async { r }.await));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "concurrent create_user handed out duplicate ids");
}

/// set_online shows in friend lists and group member lists; unknown ids and empty lists are fine.
pub async fn presence(store: &dyn Store) {
    let names = Names::new();
    let (me, _) = new_user(store, &names, "pres_me_").await;
    let (x, _) = new_user(store, &names, "pres_x_").await;
    let (y, _) = new_user(store, &names, "pres_y_").await;
    ok("add_friend", store.add_friend(me, x).await);
    ok("add_friend", store.add_friend(me, y).await);
    let online = |list: Vec<FriendEntry>| list.iter().map(|f| (f.id, f.online)).collect::<Vec<_>>();

    let list = ok("friends", store.friends(me).await);
    assert_eq!(online(list), vec![(x, false), (y, false)], "new users must be offline");

    ok("set_online", store.set_online(&[x, y, NO_USER], true).await);
    let list = ok("friends", store.friends(me).await);
    assert_eq!(online(list), vec![(x, true), (y, true)], "set_online(true) did not show");

    ok("set_online", store.set_online(&[y], false).await);
    let list = ok("friends", store.friends(me).await);
    assert_eq!(online(list), vec![(x, true), (y, false)], "set_online(false) did not show or touched others");

    ok("set_online(empty)", store.set_online(&[], true).await);
    // A whole node's users at once (say, at shutdown): more ids than one SQL statement may bind.
    let mut many: Vec<UserId> = (1..=40_000).map(|i| UserId(-i)).collect();
    many.insert(20_000, y);
    ok("set_online(40001 ids)", store.set_online(&many, true).await);
    let list = ok("friends", store.friends(me).await);
    assert_eq!(online(list), vec![(x, true), (y, true)], "set_online with many ids missed one");
    ok("set_online", store.set_online(&[y], false).await);
    ok("set_online(repeat)", store.set_online(&[x], true).await);
    let list = ok("friends", store.friends(me).await);
    assert_eq!(
        online(list),
        vec![(x, true), (y, false)],
        "an empty or repeated set_online changed something"
    );

    let g = ok("create_group", store.create_group(me, &names.name("pres_g_"), "").await);
    ok("join_group", store.join_group(g, x).await);
    let groups = ok("groups_of", store.groups_of(me).await);
    let members: Vec<(UserId, bool)> = groups
        .iter()
        .find(|e| e.id == g)
        .map(|e| e.members.iter().map(|m| (m.id, m.online)).collect())
        .unwrap_or_default();
    let mut want = vec![(me, false), (x, true)];
    want.sort();
    assert_eq!(members, want, "group members must carry their state");
}

/// add_friend: unknown users, idempotence, one direction, order by id.
pub async fn friends(store: &dyn Store) {
    let names = Names::new();
    let (me, _) = new_user(store, &names, "fr_me_").await;
    let (b, b_name) = new_user(store, &names, "fr_b_").await;
    let (a, a_name) = new_user(store, &names, "fr_a_").await;
    assert!(ok("friends", store.friends(me).await).is_empty(), "a new user has friends");

    // Added in the reverse of id order; listed by id.
    ok("add_friend", store.add_friend(me, a).await);
    ok("add_friend", store.add_friend(me, b).await);
    ok("add_friend (repeat)", store.add_friend(me, a).await);
    let mut want = vec![
        FriendEntry { id: a, name: a_name, online: false },
        FriendEntry { id: b, name: b_name, online: false },
    ];
    want.sort_by_key(|f| f.id);
    assert_eq!(ok("friends", store.friends(me).await), want, "friends must be listed once each, by id");

    assert_eq!(
        store.add_friend(me, NO_USER).await,
        Err(StoreError::UnknownUser),
        "add_friend of an unknown friend must fail with UnknownUser"
    );
    assert_eq!(
        store.add_friend(NO_USER, me).await,
        Err(StoreError::UnknownUser),
        "add_friend for an unknown user must fail with UnknownUser"
    );
    assert_eq!(ok("friends", store.friends(me).await), want, "a failed add_friend changed the list");

    // One direction only, like the original's Friend rows.
    assert!(ok("friends", store.friends(a).await).is_empty(), "add_friend must add one direction only");
    assert!(ok("friends", store.friends(NO_USER).await).is_empty(), "an unknown user has friends");
}

/// create_group, join_group, group_members: names, roles, unknown ids, idempotence.
pub async fn groups(store: &dyn Store) {
    let names = Names::new();
    let (creator, _) = new_user(store, &names, "grp_c_").await;
    let (m1, _) = new_user(store, &names, "grp_m1_").await;
    let (m2, _) = new_user(store, &names, "grp_m2_").await;
    let gname = names.name("grp_g_");
    let g = ok("create_group", store.create_group(creator, &gname, "a group").await);
    assert_eq!(
        ok("group_members", store.group_members(g).await),
        Some(vec![creator]),
        "a new group has exactly its creator"
    );
    assert_eq!(
        store.create_group(m1, &gname, "again").await,
        Err(StoreError::NameTaken),
        "create_group with a taken name must fail with NameTaken"
    );
    assert_eq!(
        store.create_group(NO_USER, &names.name("grp_nouser_"), "").await,
        Err(StoreError::UnknownUser),
        "create_group by an unknown user must fail with UnknownUser"
    );
    let g2 = ok("create_group", store.create_group(m1, &names.name("grp_g2_"), "").await);
    assert_ne!(g, g2, "two groups got the same id");

    ok("join_group", store.join_group(g, m2).await);
    ok("join_group", store.join_group(g, m1).await);
    ok("join_group (repeat)", store.join_group(g, m1).await);
    ok("join_group (creator)", store.join_group(g, creator).await);
    let mut want = vec![creator, m1, m2];
    want.sort();
    assert_eq!(
        ok("group_members", store.group_members(g).await),
        Some(want),
        "group_members must list each member once, by id"
    );
    let entry = ok("groups_of", store.groups_of(creator).await).into_iter().find(|e| e.id == g);
    let role = entry.and_then(|e| e.members.into_iter().find(|m| m.id == creator)).map(|m| m.role);
    assert_eq!(role, Some(Role::Creator), "joining one's own group must keep the creator role");

    assert_eq!(
        store.join_group(NO_GROUP, m1).await,
        Err(StoreError::UnknownGroup),
        "join_group of an unknown group must fail with UnknownGroup"
    );
    assert_eq!(
        store.join_group(g, NO_USER).await,
        Err(StoreError::UnknownUser),
        "join_group by an unknown user must fail with UnknownUser"
    );
    assert_eq!(
        ok("group_members", store.group_members(NO_GROUP).await),
        None,
        "an unknown group has members"
    );
}

/// groups_of: every group of the user, by id, each with all its members by id, names, descs and roles verbatim.
pub async fn group_listing(store: &dyn Store) {
    let names = Names::new();
    let (me, me_name) = new_user(store, &names, "gl_me_").await;
    let (other, other_name) = new_user(store, &names, "gl_other_").await;
    let (stranger, _) = new_user(store, &names, "gl_stranger_").await;
    assert!(ok("groups_of", store.groups_of(me).await).is_empty(), "a new user is in groups");

    let texts = tricky_texts();
    let desc = |i: usize| -> String { texts[i % texts.len()].1.chars().take(200).collect() };
    // g1: created by `other`, joined by me. g2: created by me. g3: not mine.
    let n1 = names.name("gl_'; DROP TABLE AllGroup; --");
    let n2 = names.cjk_name(50);
    let g1 = ok("create_group", store.create_group(other, &n1, &desc(0)).await);
    let g2 = ok("create_group", store.create_group(me, &n2, &desc(4)).await);
    let g3 = ok("create_group", store.create_group(stranger, &names.name("gl_g3_"), "").await);
    ok("join_group", store.join_group(g1, me).await);
    ok("join_group", store.join_group(g2, other).await);
    ok("join_group", store.join_group(g3, other).await);
    ok("set_online", store.set_online(&[other], true).await);

    let list = ok("groups_of", store.groups_of(me).await);
    let ids: Vec<GroupId> = list.iter().map(|e| e.id).collect();
    let mut want_ids = vec![g1, g2];
    want_ids.sort();
    assert_eq!(ids, want_ids, "groups_of must list exactly the user's groups, by id");

    for e in &list {
        let (name, d, creator) = if e.id == g1 { (&n1, desc(0), other) } else { (&n2, desc(4), me) };
        assert_eq!(&e.name, name, "group name did not round-trip");
        assert_eq!(e.desc, d, "group description did not round-trip");
        let mut want = vec![
            MemberEntry {
                id: me,
                name: me_name.clone(),
                online: false,
                role: if creator == me { Role::Creator } else { Role::Normal },
            },
            MemberEntry {
                id: other,
                name: other_name.clone(),
                online: true,
                role: if creator == other { Role::Creator } else { Role::Normal },
            },
        ];
        want.sort_by_key(|m| m.id);
        assert_eq!(e.members, want, "groups_of must list all members of each group, by id");
    }

    // Every tricky text survives as a description (descriptions are VARCHAR(200)).
    for (i, (label, _)) in texts.iter().enumerate() {
        let g = ok("create_group", store.create_group(me, &names.name("gl_desc_"), &desc(i)).await);
        let got = ok("groups_of", store.groups_of(me).await).into_iter().find(|e| e.id == g).map(|e| e.desc);
        assert_eq!(got, Some(desc(i)), "group description ({label}) did not round-trip");
    }
}

/// store_offline keeps order within and across batches; ids increase; users are kept apart.
pub async fn offline_order(store: &dyn Store) {
    let names = Names::new();
    let (a, _) = new_user(store, &names, "off_a_").await;
    let (b, _) = new_user(store, &names, "off_b_").await;
    assert!(ok("offline_messages", store.offline_messages(a).await).is_empty(), "a new user has messages");
    ok("store_offline(empty)", store.store_offline(&[]).await);

    let batch: Vec<(UserId, String)> =
        (0..10).map(|i| (if i % 3 == 0 { b } else { a }, format!("m{i}"))).collect();
    ok("store_offline", store.store_offline(&batch).await);
    ok("store_offline", store.store_offline(&[(a, "m10".into()), (b, "m11".into())]).await);

    let got_a = ok("offline_messages", store.offline_messages(a).await);
    let texts: Vec<&str> = got_a.iter().map(|m| m.payload.as_str()).collect();
    assert_eq!(texts, ["m1", "m2", "m4", "m5", "m7", "m8", "m10"], "offline messages must come oldest first");
    assert!(got_a.windows(2).all(|w| w[0].id < w[1].id), "offline message ids must increase: {got_a:?}");

    let got_b = ok("offline_messages", store.offline_messages(b).await);
    let texts: Vec<&str> = got_b.iter().map(|m| m.payload.as_str()).collect();
    assert_eq!(texts, ["m0", "m3", "m6", "m9", "m11"], "offline messages of another user got mixed in");
    assert!(
        got_b.windows(2).all(|w| w[0].id < w[1].id),
        "offline message ids must increase across batches: {got_b:?}"
    );
    assert!(got_a[0].id < got_b[4].id && got_b[0].id < got_a[0].id, "ids must follow the order of storing");
    assert!(
        ok("offline_messages", store.offline_messages(NO_USER).await).is_empty(),
        "unknown user has mail"
    );
}

/// delete_offline removes ids up to and including `up_to`, for that user only.
pub async fn offline_delete(store: &dyn Store) {
    let names = Names::new();
    let (a, _) = new_user(store, &names, "del_a_").await;
    let (b, _) = new_user(store, &names, "del_b_").await;
    let batch: Vec<(UserId, String)> =
        (0..6).map(|i| (if i % 2 == 0 { a } else { b }, format!("d{i}"))).collect();
    ok("store_offline", store.store_offline(&batch).await);
    let a_msgs = ok("offline_messages", store.offline_messages(a).await);
    let b_before = ok("offline_messages", store.offline_messages(b).await);
    assert_eq!(a_msgs.len(), 3, "store_offline lost messages");

    // Up to a's second message: b's messages with smaller ids stay.
    ok("delete_offline", store.delete_offline(a, a_msgs[1].id).await);
    let left: Vec<String> =
        ok("offline_messages", store.offline_messages(a).await).into_iter().map(|m| m.payload).collect();
    assert_eq!(left, ["d4"], "delete_offline must delete up to and including up_to");
    assert_eq!(
        ok("offline_messages", store.offline_messages(b).await),
        b_before,
        "delete_offline touched another user's messages"
    );

    // Messages stored after a delete are kept by a delete up to an older id.
    ok("store_offline", store.store_offline(&[(a, "d6".into())]).await);
    ok("delete_offline (repeat)", store.delete_offline(a, a_msgs[1].id).await);
    let left: Vec<String> =
        ok("offline_messages", store.offline_messages(a).await).into_iter().map(|m| m.payload).collect();
    assert_eq!(left, ["d4", "d6"], "delete_offline deleted messages newer than up_to");

    ok("delete_offline (all)", store.delete_offline(a, i64::MAX).await);
    assert!(ok("offline_messages", store.offline_messages(a).await).is_empty(), "delete up to MAX left mail");
    assert_eq!(
        ok("offline_messages", store.offline_messages(b).await),
        b_before,
        "delete_offline touched another user's messages"
    );
    ok("delete_offline (unknown user)", store.delete_offline(NO_USER, i64::MAX).await);
}

/// Message payloads come back byte for byte: quotes, backslashes, control chars, emoji, CJK, 70,000 bytes, SQL.
pub async fn offline_text_round_trip(store: &dyn Store) {
    let names = Names::new();
    let (a, _) = new_user(store, &names, "txt_").await;
    let texts = tricky_texts();
    let batch: Vec<(UserId, String)> = texts.iter().map(|(_, t)| (a, t.clone())).collect();
    ok("store_offline", store.store_offline(&batch).await);
    let got = ok("offline_messages", store.offline_messages(a).await);
    assert_eq!(got.len(), texts.len(), "store_offline lost messages");
    for ((label, want), m) in texts.iter().zip(&got) {
        assert!(m.payload == *want, "offline message ({label}, {} bytes) did not round-trip", want.len());
    }
    // The big one alone, as a single frame would be stored.
    let big = long_text(70_000);
    assert_eq!(big.len(), 70_000, "the test's own long text has the wrong length");
    ok("delete_offline", store.delete_offline(a, i64::MAX).await);
    ok("store_offline (70000 bytes)", store.store_offline(&[(a, big.clone())]).await);
    let got = ok("offline_messages", store.offline_messages(a).await);
    assert!(got.len() == 1 && got[0].payload == big, "a 70,000-byte message did not round-trip");
}

/// A batch with an unknown recipient fails with UnknownUser and stores nothing.
pub async fn offline_unknown_recipient(store: &dyn Store) {
    let names = Names::new();
    let (a, _) = new_user(store, &names, "unk_").await;
    assert_eq!(
        store.store_offline(&[(a, "kept?".into()), (NO_USER, "lost".into())]).await,
        Err(StoreError::UnknownUser),
        "store_offline to an unknown user must fail with UnknownUser"
    );
    assert!(
        ok("offline_messages", store.offline_messages(a).await).is_empty(),
        "a failed store_offline must store nothing (one transaction)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_has_the_exact_length() {
        for n in [0, 1, 5, 70_000, 70_001, 70_003] {
            assert_eq!(long_text(n).len(), n);
        }
    }

    #[test]
    fn names_are_unique_and_cjk_names_exact() {
        let names = Names::new();
        assert_ne!(names.name("p"), names.name("p"));
        let c = names.cjk_name(50);
        assert_eq!(c.chars().count(), 50);
        assert_ne!(c, names.cjk_name(50));
        assert!(names.name("'; DROP TABLE User; --").len() <= 50);
    }
}
