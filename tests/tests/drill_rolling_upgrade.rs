//! Drill: a rolling upgrade under traffic (issue 23). Two nodes of the previous release
//! (deploy/releases/previous, built by deploy/previous-release.sh) serve behind nginx on a
//! database of their own with that release's schema, with steady one-to-one and group
//! traffic from extension clients across the nodes. This build's migrations are applied
//! with `chat-server migrate` while they serve; then each node in turn gets SIGTERM and is
//! replaced by this build on the same address, and the clients resume through nginx. Between
//! the two replacements the clients are spread over an old and a new node, so chats cross
//! between the versions both ways (the node protocol, ARCHITECTURE.md "Upgrades"). Every
//! acknowledged chat reaches every recipient once, in order.

use std::time::Duration;

use chat_tests::bin;
use chat_tests::drill::{Drill, Setup, Side, Traffic};
use chat_tests::upgrade::{Release, ScratchDatabase, migrate};

/// How many sessions a node's log says it opened (LOGIN or RESUME).
fn logins(log: &str) -> usize {
    log.matches("logged in").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_upgrade_from_the_previous_release_loses_nothing_acknowledged() {
    let previous = Release::previous();
    let this = bin("chat-server");
    let db = ScratchDatabase::create();
    migrate(&previous.binary, &db.url());
    let old_schema = db.migrations();

    let setup = Setup {
        program: Some(previous.binary.clone()),
        database: Some(db.url()),
        // v0.1.0 does not speak the PROXY protocol: nginx turns it on after the upgrade
        // (README, "Upgrading").
        proxy_protocol: false,
        ..Setup::new("rolling-upgrade")
    };
    let mut drill = Drill::start(setup).await;
    let traffic = drill.traffic(Traffic { duration: Duration::from_secs(14), ..Traffic::steady() });
    drill.wait_acked(traffic.planned() / 8).await;

    // The new release's migrations, while the old nodes serve; they go on serving.
    migrate(&this, &db.url());
    let new_schema = db.migrations();
    let added: Vec<&String> = new_schema.iter().filter(|m| !old_schema.contains(m)).collect();
    assert!(new_schema.starts_with(&old_schema), "the old migrations stay: {old_schema:?} -> {new_schema:?}");
    drill.wait_acked(drill.acked() + 200).await;

    // Node a: SIGTERM, this build in its place. Its clients resume on the old node b.
    let a_gone = drill.replace(Side::Senders, &this).await;
    // Old and new side by side: the clients spread over both; chats cross versions both ways.
    let b_before = logins(&drill.node(Side::Recipients).log());
    drill.reset_everyone().await;
    drill.wait_acked(drill.acked() + 300).await;
    let on_new_a = logins(&drill.node(Side::Senders).log());
    let on_old_b = logins(&drill.node(Side::Recipients).log()) - b_before;

    // Node b likewise; everyone resumes on the new node a, then spreads again.
    let acked_before_b = drill.acked();
    let b_gone = drill.replace(Side::Recipients, &this).await;
    drill.reset_everyone().await;

    let traffic_planned = traffic.planned();
    let ledger = drill.finish(traffic).await;
    println!(
        "rolling upgrade {} -> this build: migrations added {added:?}; node a gone {a_gone:?}, node b gone \
         {b_gone:?}; while mixed, sessions opened on the new node {on_new_a}, on the old node {on_old_b}; \
         {acked_before_b} of {} chats acknowledged when node b was replaced",
        previous.tag, traffic_planned
    );
    ledger.assert_nothing_lost();
    assert!(
        on_new_a > 0 && on_old_b > 0,
        "while mixed, clients were on both versions (new a {on_new_a}, old b {on_old_b})"
    );
    for old in drill.retired() {
        let log = old.log();
        assert!(
            log.contains("SIGTERM") && log.contains("stopped"),
            "the old node drained and stopped:\n{log}"
        );
    }
    for side in [Side::Senders, Side::Recipients] {
        let log = drill.node(side).log();
        let protocol = format!("node_protocol={}", chat_service::NODE_PROTOCOL);
        assert!(log.contains(&protocol), "the {side:?} node runs this build:\n{log}");
    }
    assert!(
        ledger.closing_notices > 0 && ledger.reconnects > 0,
        "clients were told of each SIGTERM and resumed through nginx: {} notices; {}",
        ledger.closing_notices,
        ledger.summary()
    );
}
