//! Drill: Redis is killed mid-stream (everything in it is gone: presence, subscriptions)
//! and started again 3 s later; the nodes reconnect by themselves. The outage outlasts
//! the broker's call timeout, so chats are stored and acknowledged while their publishes
//! fail; every one of them still reaches every recipient once, in order.

use std::time::Duration;

use chat_tests::drill::{Drill, Setup, Side, Traffic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_redis_mid_stream_loses_nothing_acknowledged() {
    let mut drill = Drill::start(Setup::new("restart-redis")).await;
    let traffic = drill.traffic(Traffic::steady());
    drill.wait_acked(traffic.planned() / 3).await;

    drill.redis().stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let owed = drill.owed();
    drill.redis().restart();

    let ledger = drill.finish(traffic).await;
    ledger.assert_nothing_lost();
    assert!(owed > 0, "chats acknowledged while Redis was down had not reached the recipients");
    let senders_log = drill.node(Side::Senders).log();
    assert!(senders_log.contains("publishes failed"), "publishes failed during the outage:\n{senders_log}");
    for side in [Side::Senders, Side::Recipients] {
        let log = drill.node(side).log();
        assert!(
            log.contains("Redis subscriber reconnected"),
            "the {side:?} node reconnected to Redis:\n{log}"
        );
    }
}
