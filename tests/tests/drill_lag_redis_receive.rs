//! Drill: the recipients' node has a Redis receive buffer of 16 messages, and a burst
//! from the senders' node overflows it: the broker's receive loop lags and drops what
//! overflowed (the node logs "lagged"). The sessions catch up from the message log;
//! nothing acknowledged is lost.

use chat_tests::drill::{Drill, Setup, Side, Traffic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowing_a_nodes_redis_receive_buffer_loses_nothing_acknowledged() {
    let setup = Setup {
        recipients_node_env: vec![("CHAT_REDIS_RECEIVE_CAPACITY", "16".into())],
        ..Setup::new("lag-redis-receive")
    };
    let mut drill = Drill::start(setup).await;
    let traffic = drill.traffic(Traffic::steady());
    drill.wait_acked(traffic.planned() / 3).await;

    drill.burst(40, 2).await;

    let ledger = drill.finish(traffic).await;
    ledger.assert_nothing_lost();
    let log = drill.node(Side::Recipients).log();
    let lags = log.lines().filter(|l| l.contains("lagged")).count();
    assert!(lags > 0, "the recipients' node lagged behind Redis:\n{log}");
}
