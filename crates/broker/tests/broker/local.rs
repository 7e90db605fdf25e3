//! The contract suite against the in-process hub, plus `LocalBroker::crash`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chat_broker::LocalHub;
use chat_ports::{Broker, Sink};
use chat_proto::UserId;

use crate::contract::{self, Cluster, Node};
use crate::support::RecordingSink;

/// Nodes of one fresh hub.
struct LocalCluster {
    hub: Arc<LocalHub>,
}

impl LocalCluster {
    fn new() -> Self {
        LocalCluster { hub: LocalHub::new() }
    }
}

#[async_trait]
impl Cluster for LocalCluster {
    async fn node(&self) -> Node {
        let sink = Arc::new(RecordingSink::default());
        let broker = self.hub.node(Arc::clone(&sink) as Arc<dyn Sink>);
        Node { broker, sink }
    }

    fn claim_expiry(&self) -> Duration {
        Duration::ZERO
    }
}

#[tokio::test]
async fn local_delivers_exact_bytes() {
    contract::delivers_exact_bytes(&LocalCluster::new()).await;
}

#[tokio::test]
async fn local_every_subscribed_node_receives() {
    contract::every_subscribed_node_receives(&LocalCluster::new()).await;
}

#[tokio::test]
async fn local_publish_to_nobody_is_false() {
    contract::publish_to_nobody_is_false(&LocalCluster::new()).await;
}

#[tokio::test]
async fn local_unsubscribe_stops_delivery() {
    contract::unsubscribe_stops_delivery(&LocalCluster::new()).await;
}

#[tokio::test]
async fn local_subscription_changes_are_live_on_return() {
    contract::subscription_changes_are_live_on_return(&LocalCluster::new()).await;
}

#[tokio::test]
async fn local_sessions_are_counted_across_nodes() {
    contract::sessions_are_counted_across_nodes(&LocalCluster::new()).await;
}

#[tokio::test]
async fn local_presence_follows_the_sessions() {
    contract::presence_follows_the_sessions(&LocalCluster::new()).await;
}

#[tokio::test]
async fn local_claim_is_exclusive() {
    contract::claim_is_exclusive(&LocalCluster::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_concurrent_claims_have_one_winner() {
    contract::concurrent_claims_have_one_winner(&LocalCluster::new()).await;
}

#[tokio::test]
async fn local_dead_node_frees_its_claims() {
    contract::dead_node_frees_its_claims(&LocalCluster::new()).await;
}

/// `crash` frees the node's claims and subscriptions at once, leaves other nodes' alone, and
/// the node can still be used afterwards (as a restarted node would be).
#[tokio::test]
async fn local_crash_drops_claims_and_subscriptions() {
    let cluster = LocalCluster::new();
    let a_sink = Arc::new(RecordingSink::default());
    let a = cluster.hub.node(Arc::clone(&a_sink) as Arc<dyn Sink>);
    let b = cluster.node().await;
    let (u, v) = (UserId(1), UserId(2));
    assert!(a.claim(u).await.expect("claim"));
    assert!(b.broker.claim(v).await.expect("claim"));
    a.subscribe(u).await.expect("subscribe");
    b.broker.subscribe(v).await.expect("subscribe");

    a.crash();
    assert!(!b.broker.publish(u, Bytes::from_static(b"x")).await.expect("publish"));
    assert!(b.broker.claim(u).await.expect("claim freed user"));
    assert!(!a.claim(v).await.expect("b's claim survives a's crash"));
    assert!(a.publish(v, Bytes::from_static(b"y")).await.expect("b still subscribed"));
    assert!(a_sink.frames().is_empty());
}

/// A sink may call back into the hub from `deliver` (the hub's lock is not held then).
#[tokio::test]
async fn local_sink_may_reenter_the_hub() {
    struct Echo {
        hub: Arc<LocalHub>,
        seen: Arc<RecordingSink>,
    }
    impl Sink for Echo {
        fn deliver(&self, user: UserId, frame: Bytes) {
            // Taking the hub's lock from a sink must not deadlock.
            let probe = self.hub.node(Arc::new(RecordingSink::default()) as Arc<dyn Sink>);
            probe.crash();
            self.seen.deliver(user, frame);
        }
    }
    let hub = LocalHub::new();
    let seen = Arc::new(RecordingSink::default());
    let a = hub.node(Arc::new(Echo { hub: Arc::clone(&hub), seen: Arc::clone(&seen) }) as Arc<dyn Sink>);
    a.subscribe(UserId(1)).await.expect("subscribe");
    assert!(a.publish(UserId(1), Bytes::from_static(b"z")).await.expect("publish"));
    assert_eq!(seen.frames().len(), 1);
}
