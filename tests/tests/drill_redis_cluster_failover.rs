//! Drill: the nodes share a Redis Cluster (3 masters, 3 replicas); mid-stream a master is
//! SIGKILLed. Its replica is promoted within about two seconds; meanwhile publishes to the
//! channels of its slots fail, and claims and subscriptions there are gone or stale. The
//! nodes notice the new owner, subscribe there again, re-assert their claims and read the
//! log: every acknowledged chat reaches every recipient once, in order, and afterwards every
//! user can log in again within the lease.

use chat_tests::drill::{Drill, Setup, Traffic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_redis_master_mid_stream_loses_nothing_acknowledged() {
    let mut drill = Drill::start(Setup::on_redis_cluster("redis-master-killed")).await;
    let traffic = drill.traffic(Traffic::steady());
    drill.wait_acked(traffic.planned() / 3).await;

    let cluster = drill.redis_cluster();
    let victim = cluster.masters()[0];
    let healed = tokio::task::block_in_place(|| cluster.kill_master(victim));
    let owed = drill.owed();
    println!(
        "master on {victim} SIGKILLed; a replica served its slots after {healed:?}; {owed} deliveries owed then"
    );

    drill.finish_after_a_slot_map_change(traffic).await;
}
