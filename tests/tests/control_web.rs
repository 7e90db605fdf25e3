//! Issue 21 from the web client in a real browser (as tests/tests/web_browser.rs runs it):
//! block from a conversation's menu, leave a group, change the password, each with its
//! confirmation; screenshots in `target/web-screenshots/control-*.png`.

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
