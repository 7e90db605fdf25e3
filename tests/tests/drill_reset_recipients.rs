//! Drill: every recipient's connection is reset mid-stream, as a phone losing its
//! network: the client has stopped reading (the server's frames pile up in the socket),
//! then closes abortively (SO_LINGER 0), so what was written and not read is gone. The
//! recipients reconnect through nginx and RESUME; nothing acknowledged is lost.

use std::time::Duration;

use chat_tests::drill::{Drill, Setup, Traffic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resetting_every_recipients_connection_loses_nothing_acknowledged() {
    let mut drill = Drill::start(Setup::new("reset-recipients")).await;
    let traffic = drill.traffic(Traffic::steady());
    drill.wait_acked(traffic.planned() / 3).await;
    drill.stall_recipients().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let owed = drill.owed();
    drill.reset_recipients().await;

    let ledger = drill.finish(traffic).await;
    ledger.assert_nothing_lost();
    assert!(owed > 0, "the resets caught acknowledged chats on their way to the recipients");
    for r in &ledger.recipients {
        assert!(r.resets == 1 && r.resumes >= 1, "recipient {} was reset and resumed: {r:?}", r.id);
    }
    let discarded: usize = ledger.recipients.iter().map(|r| r.discarded_bytes).sum();
    assert!(discarded > 0, "the resets threw away frames the server had written");
}
