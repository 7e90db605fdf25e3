//! The contract every [`Log`] must meet, as async checks that panic with a message
//! on the first violation. Run [`run_all`] against each adapter (the in-memory one
//! here, SQLite and MySQL in `chat-model`), on a database that may hold data from
//! other runs: every user and group is new, and no check assumes particular ids.

use std::collections::HashSet;

use chat_proto::{ConvId, HistoryFrom, UserId};

use crate::contract::{HASH, Names, new_user, ok, tricky_texts};
use crate::{Log, LoggedMessage, Marks, NewMessage, Store};

/// Runs every check, in sequence. `store` and `log` must share one database.
pub async fn run_all(store: &dyn Store, log: &dyn Log) {
    first_messages_create_conversations(store, log).await;
    sequences_per_conversation(store, log).await;
    client_ids_are_idempotent(store, log).await;
    one_message_batches(store, log).await;
    after_and_unread(store, log).await;
    history_pages(store, log).await;
    cursors_only_move_forward(store, log).await;
    read_marks_clamp_and_only_move_forward(store, log).await;
    marks_and_senders(store, log).await;
    texts_round_trip(store, log).await;
    tokens_expire(store, log).await;
    session_cursors_follow_their_token(store, log).await;
    retention(store, log).await;
    concurrent_appends_share_one_sequence(store, log).await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn msg(conv: ConvId, sender: UserId, body: &str, cid: Option<&str>) -> NewMessage {
    NewMessage {
        conv,
        sender,
        sender_name: format!("n{}", sender.0),
        cid: cid.map(str::to_owned),
        body: body.to_owned(),
        created_at: now_ms(),
    }
}

async fn append(log: &dyn Log, batch: &[NewMessage]) -> Vec<LoggedMessage> {
    ok("append", log.append(batch).await).into_iter().map(|a| a.message).collect()
}

async fn direct(store: &dyn Store, _log: &dyn Log, names: &Names) -> (UserId, UserId, ConvId) {
    let (a, _) = new_user(store, names, "la").await;
    let (b, _) = new_user(store, names, "lb").await;
    (a, b, ConvId::direct(a, b))
}

/// A conversation exists from its first message; one of unknown users is refused whole.
pub async fn first_messages_create_conversations(store: &dyn Store, log: &dyn Log) {
    let names = Names::new();
    let (a, b, conv) = direct(store, log, &names).await;
    assert_eq!(ok("last_seq", log.last_seq(conv).await), 0, "no message yet");
    let group = ok("create_group", store.create_group(a, &names.name("lg"), "").await);
    let g = ConvId::group(group);
    append(log, &[msg(conv, a, "first", None), msg(g, a, "first in the group", None)]).await;
    assert_eq!(ok("last_seq", log.last_seq(conv).await), 1);
    assert_eq!(ok("last_seq", log.last_seq(g).await), 1);
    let convs = ok("conversations", log.conversations(b).await);
    assert!(convs.iter().any(|s| s.conv == conv && s.last_seq == 1), "{convs:?}");
    let bad = log
        .append(&[msg(conv, a, "kept?", None), msg(ConvId::direct(a, UserId(i32::MAX - 3)), a, "x", None)])
        .await;
    assert!(bad.is_err(), "a conversation with a user that does not exist is refused");
    assert_eq!(ok("last_seq", log.last_seq(conv).await), 1, "nothing of a refused batch is stored");
}

/// Each conversation counts 1, 2, 3 … in batch order; mids grow.
pub async fn sequences_per_conversation(store: &dyn Store, log: &dyn Log) {
    let names = Names::new();
    let (a, b, one) = direct(store, log, &names).await;
    let (c, _, two) = direct(store, log, &names).await;
    let batch =
        [msg(one, a, "1", None), msg(two, c, "x", None), msg(one, b, "2", None), msg(one, a, "3", None)];
    let stored = append(log, &batch).await;
    let seqs: Vec<(ConvId, i64)> = stored.iter().map(|m| (m.conv, m.seq)).collect();
    assert_eq!(seqs, [(one, 1), (two, 1), (one, 2), (one, 3)]);
    assert!(stored.windows(2).all(|w| w[0].mid < w[1].mid), "mids grow in batch order: {stored:?}");
    // Each answered mid is the row with that message: the log stored them in batch order.
    for conv in [one, two] {
        let rows = ok("history", log.history(conv, HistoryFrom::After(0), 10).await);
        let mine: Vec<(i64, i64, &str)> =
            stored.iter().filter(|m| m.conv == conv).map(|m| (m.mid, m.seq, m.body.as_str())).collect();
        let logged: Vec<(i64, i64, &str)> = rows.iter().map(|m| (m.mid, m.seq, m.body.as_str())).collect();
        assert_eq!(logged, mine, "the log's rows of {conv:?} against the append's answer");
    }
    let more = append(log, &[msg(one, b, "4", None)]).await;
    assert_eq!(more[0].seq, 4);
    assert_eq!(ok("last_seq", log.last_seq(one).await), 4);
    assert_eq!(stored[0].body, "1");
    assert_eq!(stored[0].sender_name, format!("n{}", a.0));
    let err =
        log.append(&[msg(ConvId::direct(UserId(i32::MAX - 5), UserId(i32::MAX - 4)), a, "x", None)]).await;
    assert!(err.is_err(), "a conversation that was never opened is refused");
}

/// A (sender, cid) stored once answers every later copy with the first message.
pub async fn client_ids_are_idempotent(store: &dyn Store, log: &dyn Log) {
    let names = Names::new();
    let (a, b, conv) = direct(store, log, &names).await;
    let first = ok("append", log.append(&[msg(conv, a, "hello", Some("c1"))]).await);
    assert!(!first[0].duplicate);
    let again = ok(
        "append",
        log.append(&[
            msg(conv, a, "hello (resent)", Some("c1")),
            msg(conv, b, "same cid, other sender", Some("c1")),
            msg(conv, a, "new", Some("c2")),
            msg(conv, a, "new (twice in one batch)", Some("c2")),
        ])
        .await,
    );
    assert!(again[0].duplicate && again[0].message == first[0].message, "{again:?}");
    assert!(!again[1].duplicate && again[1].message.seq == 2);
    assert!(!again[2].duplicate && again[2].message.seq == 3);
    assert!(again[3].duplicate && again[3].message == again[2].message);
    assert_eq!(ok("last_seq", log.last_seq(conv).await), 3, "duplicates take no seq");
}

/// Batches of one message, what a quiet node commits nearly every time (MySQL stores them
/// with a procedure of their own): seqs, mids, duplicates and refusals as for any batch.
pub async fn one_message_batches(store: &dyn Store, log: &dyn Log) {
    let names = Names::new();
    let (a, b, conv) = direct(store, log, &names).await;
    let g = ConvId::group(ok("create_group", store.create_group(a, &names.name("lo"), "").await));
    let mut stored = Vec::new();
    for (c, s, body) in [(conv, a, "1"), (g, a, "g1"), (conv, b, "2"), (g, b, "g2"), (conv, a, "3")] {
        stored.extend(append(log, &[msg(c, s, body, None)]).await);
    }
    let seqs: Vec<(ConvId, i64)> = stored.iter().map(|m| (m.conv, m.seq)).collect();
    assert_eq!(seqs, [(conv, 1), (g, 1), (conv, 2), (g, 2), (conv, 3)]);
    assert!(stored.windows(2).all(|w| w[0].mid < w[1].mid), "mids grow: {stored:?}");
    for c in [conv, g] {
        let rows = ok("history", log.history(c, HistoryFrom::After(0), 10).await);
        let mine: Vec<&LoggedMessage> = stored.iter().filter(|m| m.conv == c).collect();
        assert_eq!(rows.iter().collect::<Vec<_>>(), mine, "the log's rows of {c:?} against the answers");
    }
    let first = ok("append", log.append(&[msg(conv, a, "with an id", Some("one-1"))]).await);
    assert!(!first[0].duplicate && first[0].message.seq == 4, "{first:?}");
    let again = ok("append", log.append(&[msg(conv, a, "resent", Some("one-1"))]).await);
    assert!(again[0].duplicate && again[0].message == first[0].message, "{again:?}");
    let other = ok("append", log.append(&[msg(conv, b, "same cid, other sender", Some("one-1"))]).await);
    assert!(!other[0].duplicate && other[0].message.seq == 5, "{other:?}");
    let refused = log.append(&[msg(ConvId::direct(a, UserId(i32::MAX - 7)), a, "x", None)]).await;
    assert!(refused.is_err(), "a conversation with a user that does not exist is refused");
    assert_eq!(ok("last_seq", log.last_seq(conv).await), 5, "duplicates and refusals take no seq");
    // Many single appends at once to one conversation: every seq once, no gap.
    let seqs = concurrent_seqs(log, 6, 5, |t, i| vec![msg(g, b, &format!("{t}.{i}"), None)]).await;
    assert_eq!(seqs, (3..=32).collect::<Vec<i64>>());
}

/// after reads above per-conversation seqs, oldest first; unread leaves out own messages.
pub async fn after_and_unread(store: &dyn Store, log: &dyn Log) {
    let names = Names::new();
    let (a, b, one) = direct(store, log, &names).await;
    let (c, _, _) = direct(store, log, &names).await;
    let group = ok("create_group", store.create_group(c, &names.name("lu"), "").await);
    ok("join", store.join_group(group, a).await);
    let g = ConvId::group(group);
    append(log, &[msg(one, b, "b1", None), msg(g, c, "c1", None), msg(one, a, "a1", None)]).await;
    append(log, &[msg(g, c, "c2", None), msg(one, b, "b2", None)]).await;
    let got = ok("after", log.after(&[(one, 1), (g, 0)], 100).await);
    let bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["c1", "a1", "c2", "b2"]);
    let limited = ok("after", log.after(&[(one, 1), (g, 0)], 2).await);
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0].body, "c1");
    let mut unread = ok("unread", log.unread(a, &[(one, 0), (g, 1)]).await);
    unread.sort();
    let mut want = vec![(one, 2), (g, 1)];
    want.sort();
    assert_eq!(unread, want, "own messages are never unread");
    let convs = ok("conversations", log.conversations(a).await);
    let mine: HashSet<ConvId> = convs.iter().map(|s| s.conv).collect();
    assert!(mine.contains(&one) && mine.contains(&g), "{convs:?}");
    assert!(convs.iter().all(|s| s.conv == one || s.conv == g), "only a's conversations: {convs:?}");
    assert!(convs.iter().any(|s| s.conv == one && s.last_seq == 3 && s.cursor == 0));
    let c_convs = ok("conversations", log.conversations(c).await);
    assert!(!c_convs.iter().any(|s| s.conv == one), "c is not in a's one-to-one");
}

/// History pages backwards and forwards from a mid, oldest first, capped.
pub async fn history_pages(store: &dyn Store, log: &dyn Log) {
    let names = Names::new();
    let (a, _, conv) = direct(store, log, &names).await;
    let batch: Vec<NewMessage> = (1..=10).map(|i| msg(conv, a, &i.to_string(), None)).collect();
    let stored = append(log, &batch).await;
    let bodies = |page: Vec<LoggedMessage>| page.into_iter().map(|m| m.body).collect::<Vec<_>>();
    assert_eq!(bodies(ok("history", log.history(conv, HistoryFrom::Latest, 3).await)), ["8", "9", "10"]);
    let before = HistoryFrom::Before(stored[7].mid);
    assert_eq!(bodies(ok("history", log.history(conv, before, 3).await)), ["5", "6", "7"]);
    let after = HistoryFrom::After(stored[1].mid);
    assert_eq!(bodies(ok("history", log.history(conv, after, 3).await)), ["3", "4", "5"]);
    assert!(ok("history", log.history(conv, HistoryFrom::Before(stored[0].mid), 3).await).is_empty());
}

/// Cursors move forward only, and show in conversations().
pub async fn cursors_only_move_forward(store: &dyn Store, log: &dyn Log) {
    let names = Names::new();
    let (a, b, conv) = direct(store, log, &names).await;
    append(log, &[msg(conv, b, "1", None), msg(conv, b, "2", None), msg(conv, b, "3", None)]).await;
    ok("save", log.save_cursors(&[(a, conv, 2)]).await);
    ok("save", log.save_cursors(&[(a, conv, 1), (b, conv, 3)]).await);
    let cursor = |user| async move {
        ok("conversations", log.conversations(user).await)
            .into_iter()
            .find(|s| s.conv == conv)
            .map(|s| s.cursor)
    };
    assert_eq!(cursor(a).await, Some(2), "a cursor never moves back");
    assert_eq!(cursor(b).await, Some(3));
    ok("save", log.save_cursors(&[]).await);
}

/// Read marks (issue 20): clamped to the conversation's last seq, never lower, per user.
pub async fn read_marks_clamp_and_only_move_forward(store: &dyn Store, log: &dyn Log) {
    let names = Names::new();
    let (a, b, conv) = direct(store, log, &names).await;
    assert_eq!(ok("mark_read", log.mark_read(b, conv, 5).await), (0, 0), "nothing to read yet");
    assert!(ok("read_marks", log.read_marks(b).await).is_empty(), "a mark of 0 is no mark");
    append(log, &[msg(conv, a, "1", None), msg(conv, b, "2", None), msg(conv, a, "3", None)]).await;
    assert_eq!(ok("mark_read", log.mark_read(b, conv, 2).await), (0, 2));
    assert_eq!(ok("mark_read", log.mark_read(b, conv, 1).await), (2, 2), "a mark never goes back");
    assert_eq!(ok("mark_read", log.mark_read(b, conv, 99).await), (2, 3), "clamped to the last seq");
    assert_eq!(ok("mark_read", log.mark_read(b, conv, 3).await), (3, 3));
    assert_eq!(ok("read_marks", log.read_marks(b).await), vec![(conv, 3)]);
    assert!(ok("read_marks", log.read_marks(a).await).is_empty(), "marks are per user");
    let group = ok("create_group", store.create_group(a, &names.name("rg"), "").await);
    let g = ConvId::group(group);
    append(log, &[msg(g, a, "g1", None)]).await;
    assert_eq!(ok("mark_read", log.mark_read(a, g, i64::MAX).await), (0, 1));
    let mut marks = ok("read_marks", log.read_marks(a).await);
    marks.sort();
    assert_eq!(marks, vec![(g, 1)]);
}

/// Each user's read mark and cursor per conversation; the senders of a range of seqs.
pub async fn marks_and_senders(store: &dyn Store, log: &dyn Log) {
    let names = Names::new();
    let (a, b, conv) = direct(store, log, &names).await;
    let (c, _) = new_user(store, &names, "lc").await;
    append(log, &[msg(conv, a, "1", None), msg(conv, a, "2", None), msg(conv, b, "3", None)]).await;
    ok("save", log.save_cursors(&[(a, conv, 2)]).await);
    ok("mark_read", log.mark_read(b, conv, 3).await);
    ok("save", log.save_cursors(&[(b, conv, 1)]).await);
    let mut got = ok("marks", log.marks(&[(a, conv), (b, conv), (c, conv)]).await);
    got.sort();
    let mut want = vec![Marks { conv, user: a, read: 0, recv: 2 }, Marks { conv, user: b, read: 3, recv: 1 }];
    want.sort();
    assert_eq!(got, want, "a pair with neither mark is left out");
    assert!(ok("marks", log.marks(&[]).await).is_empty());
    let group = ok("create_group", store.create_group(a, &names.name("sg"), "").await);
    ok("join_group", store.join_group(group, b).await);
    ok("join_group", store.join_group(group, c).await);
    let g = ConvId::group(group);
    append(log, &[msg(g, a, "1", None), msg(g, b, "2", None), msg(g, a, "3", None), msg(g, c, "4", None)])
        .await;
    let sorted = |mut v: Vec<UserId>| {
        v.sort();
        v
    };
    let mut ab = vec![a, b];
    ab.sort();
    let mut abc = vec![a, b, c];
    abc.sort();
    assert_eq!(sorted(ok("senders", log.senders(g, 1, 3).await)), ab, "seqs 2 and 3, each sender once");
    assert_eq!(sorted(ok("senders", log.senders(g, 0, 4).await)), abc);
    assert!(ok("senders", log.senders(g, 4, 9).await).is_empty());
    assert_eq!(ok("senders", log.senders(conv, 0, 2).await), vec![a]);
}

/// Texts come back byte for byte.
pub async fn texts_round_trip(store: &dyn Store, log: &dyn Log) {
    let names = Names::new();
    let (a, _, conv) = direct(store, log, &names).await;
    for (what, text) in tricky_texts() {
        let stored = append(log, &[msg(conv, a, &text, Some(what))]).await;
        let back = ok("history", log.history(conv, HistoryFrom::After(stored[0].mid - 1), 1).await);
        assert_eq!(back.first().map(|m| &m.body), Some(&text), "{what} did not round-trip");
    }
}

/// A token names its user until it expires or is dropped.
pub async fn tokens_expire(store: &dyn Store, log: &dyn Log) {
    let names = Names::new();
    let (a, _) = new_user(store, &names, "lt").await;
    let live = names.name("tok-live-");
    let old = names.name("tok-old-");
    let now = now_ms();
    ok("put", log.put_token(&live, a, now + 60_000).await);
    ok("put", log.put_token(&old, a, now - 1).await);
    assert_eq!(ok("token_user", log.token_user(&live, now).await), Some(a));
    assert_eq!(ok("token_user", log.token_user(&old, now).await), None, "an expired token is refused");
    assert_eq!(ok("token_user", log.token_user(HASH, now).await), None);
    ok("drop", log.drop_token(&live).await);
    assert_eq!(ok("token_user", log.token_user(&live, now).await), None);
}

/// A session's own cursors move only forward, say whether the session has any, and go
/// with its token (dropped, all of the user's dropped, or expired and purged).
pub async fn session_cursors_follow_their_token(store: &dyn Store, log: &dyn Log) {
    let names = Names::new();
    let (a, _) = new_user(store, &names, "sc").await;
    let (one, two, old) = (names.name("sc-one-"), names.name("sc-two-"), names.name("sc-old-"));
    let now = now_ms();
    ok("put", log.put_token(&one, a, now + 60_000).await);
    ok("put", log.put_token(&two, a, now + 60_000).await);
    ok("put", log.put_token(&old, a, now - 1).await);
    assert_eq!(ok("session_cursors", log.session_cursors(&one).await), None, "no rows: none of its own");
    let (c1, c2) = (ConvId(7), ConvId(-3));
    let rows = |hash: &str, list: &[(ConvId, i64)]| -> Vec<(String, ConvId, i64)> {
        list.iter().map(|&(c, s)| (hash.to_owned(), c, s)).collect()
    };
    ok("save", log.save_session_cursors(&rows(&one, &[(ConvId(0), 0), (c1, 5), (c2, 2)])).await);
    ok("save", log.save_session_cursors(&rows(&one, &[(c1, 3)])).await);
    ok("save", log.save_session_cursors(&rows(&two, &[(ConvId(0), 0)])).await);
    ok("save", log.save_session_cursors(&rows(&old, &[(ConvId(0), 0), (c1, 1)])).await);
    let mut mine = ok("session_cursors", log.session_cursors(&one).await).unwrap_or_default();
    mine.sort();
    assert_eq!(mine, vec![(c2, 2), (c1, 5)], "never back; the marker is not a cursor");
    assert_eq!(ok("session_cursors", log.session_cursors(&two).await), Some(vec![]), "the marker alone");
    ok("purge", log.purge(0, i64::MAX, now).await);
    assert_eq!(ok("session_cursors", log.session_cursors(&old).await), None, "expired token, gone");
    ok("drop", log.drop_token(&two).await);
    assert_eq!(ok("session_cursors", log.session_cursors(&two).await), None);
    ok("drop all", log.drop_tokens_of(a).await);
    assert_eq!(ok("token_user", log.token_user(&one, now).await), None);
    assert_eq!(ok("session_cursors", log.session_cursors(&one).await), None);
}

/// Retention removes by age and keeps the newest per conversation; seqs continue.
pub async fn retention(store: &dyn Store, log: &dyn Log) {
    let names = Names::new();
    let (a, _, conv) = direct(store, log, &names).await;
    let (old_user, _, old_conv) = direct(store, log, &names).await;
    let batch: Vec<NewMessage> = (1..=5).map(|i| msg(conv, a, &i.to_string(), None)).collect();
    append(log, &batch).await;
    let mut ancient = msg(old_conv, old_user, "ancient", None);
    ancient.created_at = 1_000;
    append(log, &[ancient]).await;
    ok("purge", log.purge(2_000, 2, now_ms()).await);
    let left = ok("after", log.after(&[(conv, 0), (old_conv, 0)], 100).await);
    let bodies: Vec<&str> = left.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["4", "5"], "the two newest of conv stay; the old one goes");
    let next = append(log, &[msg(conv, a, "6", None)]).await;
    assert_eq!(next[0].seq, 6, "seqs continue after a purge");
    // A conversation the purge emptied goes on from where it was, never from 1 again.
    assert_eq!(ok("last_seq", log.last_seq(old_conv).await), 1, "an emptied conversation keeps its last seq");
    let again = append(log, &[msg(old_conv, old_user, "again", None)]).await;
    assert_eq!(again[0].seq, 2, "seqs continue in a conversation the purge emptied");
    let states = ok("conversations", log.conversations(old_user).await);
    let old_state = states.iter().find(|s| s.conv == old_conv).expect("the emptied conversation is listed");
    assert_eq!(old_state.last_seq, 2);
}

/// Appends from many tasks at once to one conversation: every seq once, no gap.
pub async fn concurrent_appends_share_one_sequence(store: &dyn Store, log: &dyn Log) {
    let names = Names::new();
    let (a, _, conv) = direct(store, log, &names).await;
    let seqs = concurrent_seqs(log, 8, 5, |t, i| {
        vec![msg(conv, a, &format!("{t}.{i}"), None), msg(conv, a, "pair", None)]
    })
    .await;
    assert_eq!(seqs, (1..=80).collect::<Vec<i64>>());
}

/// Runs `tasks` tasks at once, each appending `rounds` batches made by `batch(task, round)`
/// one after another; the seqs answered, sorted. Any failed append fails the check.
async fn concurrent_seqs(
    log: &dyn Log,
    tasks: usize,
    rounds: usize,
    batch: impl Fn(usize, usize) -> Vec<NewMessage>,
) -> Vec<i64> {
    let batch = &batch;
    let tasks = (0..tasks).map(|t| async move {
        let mut seqs = Vec::new();
        for i in 0..rounds {
            match log.append(&batch(t, i)).await {
                Ok(done) => seqs.extend(done.into_iter().map(|d| d.message.seq)),
                Err(e) => panic!("concurrent append failed: {e}"),
            }
        }
        seqs
    });
    let mut seqs: Vec<i64> = futures::future::join_all(tasks).await.into_iter().flatten().collect();
    seqs.sort_unstable();
    seqs
}
