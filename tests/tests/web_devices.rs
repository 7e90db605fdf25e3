//! Issue 20 in the web client, in a real browser (as tests/tests/web_browser.rs runs it): one
//! user on two devices (two browser contexts) and a friend on another node, through nginx:
//! messages once on each device, read state in step between the devices, delivered and read
//! receipts, "typing…", presence dots moved by PRESENCE pushes; screenshots in
//! `target/web-screenshots/devices-*.png`.

use std::time::Duration;

use chat_tests::web::{Scenario, WebCluster};

#[test]
fn two_devices_of_one_user_and_a_friend_see_read_state_receipts_typing_and_presence() {
    let cluster = WebCluster::start(10);
    let mut scenario = Scenario::start("web_devices", &[("URL", cluster.url())]);
    let time = Duration::from_secs(150);
    cluster.answer_node_questions(&mut scenario, time);
    scenario.assert_passes(time);
    for shot in [
        "devices-friend.png",
        "devices-page1.png",
        "devices-page2.png",
        "devices-typing.png",
        "devices-group.png",
    ] {
        let path = chat_tests::web::screenshot_dir().join(shot);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} was saved ({size} bytes)", path.display());
    }
}
