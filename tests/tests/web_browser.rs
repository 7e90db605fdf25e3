//! The web client in a real browser (Debian's headless Chromium, driven by playwright-core
//! from `tests/web/*.mjs`) against a real two-node cluster on MySQL and Redis behind nginx.
//! Each scenario prints its steps; the test asserts it ended with `PASS` and answers what it
//! asks (a TCP user's side of a chat, killing a node). Screenshots go to
//! `target/web-screenshots/`.

use std::time::{Duration, Instant};

use chat_tests::web::{Scenario, WebCluster};
use chat_tests::{WireClient, unique};
use serde_json::json;

const SCENARIO_TIME: Duration = Duration::from_secs(90);

#[test]
fn two_browser_users_on_different_nodes_chat_one_to_one_and_in_a_group() {
    let cluster = WebCluster::start(10);
    let scenario =
        Scenario::start("two_users", &[("URL_A", cluster.node_url(0)), ("URL_B", cluster.node_url(1))]);
    scenario.assert_passes(SCENARIO_TIME);
    for shot in ["conversation-desktop.png", "conversation-phone.png"] {
        let path = chat_tests::web::screenshot_dir().join(shot);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} was saved ({size} bytes)", path.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_user_and_a_tcp_user_chat_both_ways_across_nodes() {
    let cluster = WebCluster::start(10);
    // The TCP user, on node b; the browser goes to node a.
    let node_b = cluster.nodes[1].server.addr;
    let tcp_id = WireClient::connect(node_b).await.register(&unique("console")).await;
    let mut tcp = WireClient::connect(node_b).await;
    assert_eq!(tcp.login(tcp_id, true).await["errno"], 0);
    let mut scenario =
        Scenario::start("with_console", &[("URL", cluster.node_url(0)), ("PEER", tcp_id.to_string())]);
    let question = scenario.next_question(SCENARIO_TIME).expect("the browser sent its message");
    let browser_id: i64 = question.strip_prefix("sent ").and_then(|s| s.parse().ok()).expect("ASK sent <id>");
    // The browser's message reaches the TCP user (skipping nothing else: it is the only one).
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let frame = tcp.recv().await;
        if frame["msgid"] == 6 {
            break frame;
        }
        assert!(Instant::now() < deadline, "no chat from the browser");
    };
    assert_eq!(got["id"].as_i64(), Some(browser_id), "{got}");
    assert_eq!(got["msg"], "hello console, from a browser", "{got}");
    tcp.send(&json!({"msgid":6,"to":browser_id,"msg":"hello browser, from TCP","cid":"c1"})).await;
    // The browser's TYPING (58) and RECEIPT (55) pushes may come before the ACK.
    let ack = loop {
        let frame = tcp.recv().await;
        if frame["msgid"] == 11 {
            break frame;
        }
    };
    assert_eq!(ack["errno"], 0, "{ack}");
    scenario.answer("replied");
    scenario.assert_passes(SCENARIO_TIME);
}

#[test]
fn the_page_reconnects_through_nginx_when_its_node_is_killed_and_shows_every_message_once() {
    let mut cluster = WebCluster::start(2);
    let mut scenario = Scenario::start("node_killed", &[("URL", cluster.url())]);
    let question = scenario.next_question(SCENARIO_TIME).expect("the scenario asks for the kill");
    let user: i64 = question.strip_prefix("kill ").and_then(|s| s.parse().ok()).expect("ASK kill <user id>");
    let index = (0..2)
        .find(|&i| cluster.nodes[i].has_logged_in(user))
        .unwrap_or_else(|| panic!("no node logged user {user} in"));
    cluster.nodes[index].server.signal("KILL");
    let status = cluster.nodes[index].server.wait_exit(Duration::from_secs(5));
    assert!(status.is_some(), "the node died");
    scenario.answer(&format!("killed node {index}"));
    scenario.assert_passes(SCENARIO_TIME);
    // The other node took the session over.
    assert!(cluster.nodes[1 - index].has_logged_in(user), "user {user} resumed on the other node");
}
