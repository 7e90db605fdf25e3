//! Issue 21 from the web client in a real browser (as tests/tests/web_browser.rs runs it):
//! block from a conversation's menu, leave a group, change the password, each with its
//! confirmation; friend requests, removing a friend, and a group owner's menu (rename, admins,
//! kick, delete) with two users on different nodes through nginx, seen live by the other;
//! screenshots in `target/web-screenshots/control-*.png` and `menus-*.png`.

use std::time::Duration;

use chat_tests::web::{Scenario, WebCluster};

#[test]
fn block_leave_a_group_and_change_the_password_from_the_browser() {
    let cluster = WebCluster::start(10);
    let scenario =
        Scenario::start("control", &[("URL_A", cluster.node_url(0)), ("URL_B", cluster.node_url(1))]);
    scenario.assert_passes(Duration::from_secs(120));
    for shot in ["control-blocked.png", "control-left-group.png", "control-password.png"] {
        let path = chat_tests::web::screenshot_dir().join(shot);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} was saved ({size} bytes)", path.display());
    }
}

#[test]
fn friend_requests_and_a_group_owners_menu_are_seen_live_across_nodes_through_nginx() {
    let cluster = WebCluster::start(10);
    let mut scenario = Scenario::start("control_menus", &[("URL", cluster.url())]);
    let time = Duration::from_secs(150);
    cluster.answer_node_questions(&mut scenario, time);
    scenario.assert_passes(time);
    for shot in [
        "menus-request.png",
        "menus-friend-removed.png",
        "menus-group.png",
        "menus-kicked.png",
        "menus-deleted.png",
    ] {
        let path = chat_tests::web::screenshot_dir().join(shot);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} was saved ({size} bytes)", path.display());
    }
}
