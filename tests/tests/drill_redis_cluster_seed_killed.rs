//! Drill: the nodes' Redis Cluster URL names one node only, and that node, a master, is
//! SIGKILLed mid-stream. Its replica is promoted within about two seconds; the nodes find the
//! cluster again through the other masters they learnt of (not only the URL's node), so both
//! serve logins and cross-node chats again within the failover time and a few seconds, and
//! every acknowledged chat reaches every recipient once, in order.

use std::time::{Duration, Instant};

use chat_tests::drill::{Drill, Setup, Traffic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_only_redis_node_in_the_url_loses_nothing_and_the_nodes_serve_again() {
    let mut drill = Drill::start(Setup::on_redis_cluster_one_seed("redis-seed-killed")).await;
    let traffic = drill.traffic(Traffic::steady());
    drill.wait_acked(traffic.planned() / 3).await;

    let cluster = drill.redis_cluster();
    let seed = cluster.seed();
    assert!(cluster.masters().contains(&seed), "the URL's node is a master");
    let killed = Instant::now();
    let healed = tokio::task::block_in_place(|| cluster.kill_master(seed));
    let owed = drill.owed();
    let serving = drill.serving_again().await.duration_since(killed);
    println!(
        "the URL's master on {seed} SIGKILLed; a replica served its slots after {healed:?}; both nodes \
         served logins and cross-node chats after {serving:?}; {owed} deliveries owed at the kill"
    );
    assert!(
        serving < healed + Duration::from_secs(5),
        "the nodes served again only after {serving:?} (the failover took {healed:?})"
    );

    drill.finish_after_a_slot_map_change(traffic).await;
}
