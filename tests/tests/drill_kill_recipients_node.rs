//! Drill: the recipients' node is SIGKILLed mid-stream while its users are behind (they
//! stopped reading for a moment, so acknowledged chats sit in the node's queues and in
//! their sockets). They reconnect through nginx to the surviving node and RESUME (an
//! errno 2 while the dead node still holds the account is waited out); every
//! acknowledged chat still reaches every recipient once, in order.

use std::time::Duration;

use chat_tests::drill::{Drill, Setup, Side, Traffic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_recipients_node_loses_nothing_acknowledged() {
    let mut drill = Drill::start(Setup::new("kill-recipients-node")).await;
    let traffic = drill.traffic(Traffic::steady());
    drill.wait_acked(traffic.planned() / 3).await;
    drill.stall_recipients().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let owed = drill.owed();
    drill.kill(Side::Recipients);
    drill.unstall_recipients().await;

    let ledger = drill.finish(traffic).await;
    ledger.assert_nothing_lost();
    assert!(owed > 0, "the kill caught acknowledged chats on their way to the recipients");
    assert!(
        ledger.recipients.iter().all(|r| r.resumes >= 1),
        "every recipient resumed on the surviving node: {:?}",
        ledger.recipients
    );
}
