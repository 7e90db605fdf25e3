//! Drill: MySQL is cut mid-stream for 2 s (a proxy between the nodes and MySQL drops
//! every connection and refuses new ones), then restored. Chats are refused meanwhile
//! with errno 13 and sent again with the same `cid` until acknowledged; nothing
//! acknowledged is lost, nothing stored twice.

use std::time::Duration;

use chat_tests::drill::{Drill, Setup, Traffic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_mysql_mid_stream_loses_nothing_acknowledged() {
    let mut drill = Drill::start(Setup { mysql_proxy: true, ..Setup::new("cut-mysql") }).await;
    let traffic = drill.traffic(Traffic::steady());
    drill.wait_acked(traffic.planned() / 3).await;

    let proxy = drill.mysql_proxy.as_ref().expect("the drill's MySQL proxy");
    proxy.set_up(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let proxy = drill.mysql_proxy.as_ref().expect("the drill's MySQL proxy");
    proxy.set_up(true);

    let ledger = drill.finish(traffic).await;
    ledger.assert_nothing_lost();
    assert!(ledger.refused > 0, "chats were refused with errno 13 while MySQL was cut");
}
