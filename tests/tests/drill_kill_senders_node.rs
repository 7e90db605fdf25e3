//! Drill: the senders' node is SIGKILLed right after its ACKs went out, at the first
//! answer to a burst: some chats are answered, the rest are in flight (stored or not).
//! The senders reconnect through nginx to the other node, RESUME, and send every chat
//! that had no ACK again with the same `cid`; every acknowledged chat reaches every
//! recipient once, nothing is stored twice.

use chat_tests::drill::{Drill, Setup, Side, Traffic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_senders_node_loses_nothing_acknowledged() {
    let mut drill = Drill::start(Setup::new("kill-senders-node")).await;
    let traffic = drill.traffic(Traffic::steady());
    drill.wait_acked(traffic.planned() / 3).await;
    let before = drill.acked();
    drill.burst(60, 3).await;
    drill.wait_acked(before + 1).await;

    let in_flight = drill.in_flight();
    drill.kill(Side::Senders);

    let ledger = drill.finish(traffic).await;
    ledger.assert_nothing_lost();
    assert!(in_flight > 0 && ledger.resent > 0, "chats in flight at the kill ({in_flight}) were sent again");
    assert!(
        ledger.senders.iter().all(|s| s.resumes >= 1),
        "every sender resumed on the other node: {:?}",
        ledger.senders
    );
}
