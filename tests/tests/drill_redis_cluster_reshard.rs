//! Drill: the nodes share a Redis Cluster (3 masters, 3 replicas); mid-stream an operator
//! moves every slot of one master (the one serving a recipient's channel) to another with
//! `redis-cli --cluster reshard` (presence keys migrate with them; Redis drops the sharded
//! subscriptions of every moved slot). The nodes follow MOVED/ASK, subscribe on the new owner and read the log: every
//! acknowledged chat reaches every recipient once, in order, and afterwards every user can
//! log in again within the lease.

use chat_tests::drill::{Drill, Setup, Traffic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_mid_stream_loses_nothing_acknowledged() {
    let mut drill = Drill::start(Setup::on_redis_cluster("redis-reshard")).await;
    let traffic = drill.traffic(Traffic::steady());
    drill.wait_acked(traffic.planned() / 4).await;

    // Every slot of the master serving the first recipient's channel moves to another master,
    // so at least that recipient's subscription is dropped by Redis mid-stream.
    let cluster = drill.redis_cluster();
    let slots: Vec<u16> = drill.recipient_channels().iter().map(|c| cluster.slot_of(c)).collect();
    let owners: Vec<u16> = slots.iter().map(|s| cluster.owner_of(*s)).collect();
    let from = owners[0];
    let to = *cluster.masters().iter().find(|m| **m != from).expect("another master");
    let count = cluster.slots_of(from);
    tokio::task::block_in_place(|| cluster.reshard(from, to, count));
    assert_eq!(cluster.slots_of(from), 0, "every slot left the master on {from}");
    let moved = slots.iter().zip(&owners).filter(|(s, was)| cluster.owner_of(**s) != **was).count();
    assert!(moved > 0, "the reshard moved none of the recipients' channels");
    let owed = drill.owed();
    println!(
        "{count} slots moved from {from} to {to}, with {moved} recipients' channels; {owed} deliveries owed then"
    );

    drill.finish_after_a_slot_map_change(traffic).await;
}
