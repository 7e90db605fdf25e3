//! The broker contract: what every `Broker` must do, written once over `&dyn Broker` and run
//! against each adapter through a `Cluster` that makes and kills nodes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chat_ports::Broker;
use chat_proto::UserId;

use crate::support::{RecordingSink, settle};

/// How long a delivery may take to show up.
const DELIVERY: Duration = Duration::from_secs(3);

/// One node under test: its broker and the sink its incoming frames go to.
pub struct Node {
    pub broker: Arc<dyn Broker>,
    pub sink: Arc<RecordingSink>,
}

/// Makes the nodes of one adapter.
#[async_trait]
pub trait Cluster: Send + Sync {
    /// A new node on the shared medium.
    async fn node(&self) -> Node;
    /// How long after a node dies (is dropped without a graceful shutdown) its claims may stay.
    fn claim_expiry(&self) -> Duration;
}

fn frame(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// Subscribe-then-publish delivers the exact bytes to the subscribed node only, including
/// non-ASCII text and a frame far above the original's 1024-byte client buffer.
pub async fn delivers_exact_bytes(cluster: &dyn Cluster) {
    let a = cluster.node().await;
    let b = cluster.node().await;
    let (u1, u2) = (UserId(1), UserId(2));
    a.broker.subscribe(u1).await.expect("subscribe");

    let small = frame(
        r#"{"id":3,"msg":"张三 says \"hi\"\n","msgid":6,"name":"u3","time":"2024-01-01 00:00:00","to":1}"#,
    );
    let big = Bytes::from(vec![b'x'; 70_000]);
    assert!(b.broker.publish(u1, small.clone()).await.expect("publish"));
    assert!(b.broker.publish(u1, big.clone()).await.expect("publish"));
    assert!(!b.broker.publish(u2, frame("{}")).await.expect("publish"));

    let got = a.sink.wait_for(2, DELIVERY).await;
    assert_eq!(got, vec![(u1, small), (u1, big)]);
    settle().await;
    assert_eq!(a.sink.frames().len(), 2, "no extra frames");
    assert!(b.sink.frames().is_empty(), "the publisher got nothing");
}

/// A node also receives what it publishes itself, and every subscribed node receives it.
pub async fn every_subscribed_node_receives(cluster: &dyn Cluster) {
    let a = cluster.node().await;
    let b = cluster.node().await;
    let u = UserId(7);
    a.broker.subscribe(u).await.expect("subscribe a");
    b.broker.subscribe(u).await.expect("subscribe b");
    // Subscribing twice is harmless and does not double the delivery.
    a.broker.subscribe(u).await.expect("subscribe a again");
    assert!(a.broker.publish(u, frame("m")).await.expect("publish"));
    a.sink.wait_for(1, DELIVERY).await;
    b.sink.wait_for(1, DELIVERY).await;
    settle().await;
    assert_eq!(a.sink.frames().len(), 1);
    assert_eq!(b.sink.frames().len(), 1);
}

/// Publishing to a user nobody subscribed returns false and delivers nothing.
pub async fn publish_to_nobody_is_false(cluster: &dyn Cluster) {
    let a = cluster.node().await;
    let b = cluster.node().await;
    b.broker.subscribe(UserId(4)).await.expect("subscribe");
    assert!(!a.broker.publish(UserId(3), frame("lost")).await.expect("publish"));
    settle().await;
    assert!(a.sink.frames().is_empty() && b.sink.frames().is_empty());
}

/// After unsubscribe the node gets nothing more and publish returns false.
pub async fn unsubscribe_stops_delivery(cluster: &dyn Cluster) {
    let a = cluster.node().await;
    let b = cluster.node().await;
    let u = UserId(5);
    a.broker.subscribe(u).await.expect("subscribe");
    assert!(b.broker.publish(u, frame("one")).await.expect("publish"));
    a.sink.wait_for(1, DELIVERY).await;
    a.broker.unsubscribe(u).await.expect("unsubscribe");
    assert!(!b.broker.publish(u, frame("two")).await.expect("publish"));
    settle().await;
    assert_eq!(a.sink.frames(), vec![(u, frame("one"))]);
    // Unsubscribing a channel that is not subscribed is harmless.
    a.broker.unsubscribe(UserId(6)).await.expect("unsubscribe unknown");
}

/// `subscribe` and `unsubscribe` take effect before they return: a publish right after sees
/// the change, every time.
pub async fn subscription_changes_are_live_on_return(cluster: &dyn Cluster) {
    let a = cluster.node().await;
    let b = cluster.node().await;
    for round in 0..50 {
        let u = UserId(200 + round);
        a.broker.subscribe(u).await.expect("subscribe");
        assert!(
            b.broker.publish(u, frame("x")).await.expect("publish"),
            "round {round}: not live after subscribe"
        );
        a.broker.unsubscribe(u).await.expect("unsubscribe");
        assert!(
            !b.broker.publish(u, frame("y")).await.expect("publish"),
            "round {round}: still live after unsubscribe"
        );
    }
}

/// A claim is exclusive; the holder may claim again; a non-holder's release does nothing;
/// after the holder's release another node can claim.
pub async fn claim_is_exclusive(cluster: &dyn Cluster) {
    let a = cluster.node().await;
    let b = cluster.node().await;
    let u = UserId(10);
    assert!(a.broker.claim(u).await.expect("claim a"));
    assert!(!b.broker.claim(u).await.expect("claim b"));
    assert!(a.broker.claim(u).await.expect("claim a again"));
    b.broker.release(u).await.expect("release by non-holder");
    assert!(!b.broker.claim(u).await.expect("claim b after its release"));
    a.broker.release(u).await.expect("release a");
    assert!(b.broker.claim(u).await.expect("claim b after a's release"));
    assert!(!a.broker.claim(u).await.expect("claim a after b took it"));
    // Releasing what nobody holds is harmless.
    a.broker.release(UserId(11)).await.expect("release unknown");
    b.broker.release(u).await.expect("release b");
}

/// Two nodes claiming one user at the same moment: exactly one wins, every round.
pub async fn concurrent_claims_have_one_winner(cluster: &dyn Cluster) {
    let a = cluster.node().await;
    let b = cluster.node().await;
    for round in 0..20 {
        let u = UserId(100 + round);
        let (ra, rb) = tokio::join!(
            tokio::spawn({
                let broker = Arc::clone(&a.broker);
                async move { broker.claim(u).await }
            }),
            tokio::spawn({
                let broker = Arc::clone(&b.broker);
                async move { broker.claim(u).await }
            }),
        );
        let ra = ra.expect("task a").expect("claim a");
        let rb = rb.expect("task b").expect("claim b");
        assert!(ra ^ rb, "round {round}: a={ra} b={rb}, want exactly one winner");
        let winner = if ra { &a } else { &b };
        winner.broker.release(u).await.expect("release");
    }
}

/// A node that dies without a graceful shutdown stops blocking claims once its lease is gone,
/// and its subscriptions are gone with it.
pub async fn dead_node_frees_its_claims(cluster: &dyn Cluster) {
    let a = cluster.node().await;
    let b = cluster.node().await;
    let u = UserId(20);
    assert!(a.broker.claim(u).await.expect("claim a"));
    a.broker.subscribe(u).await.expect("subscribe a");
    assert!(!b.broker.claim(u).await.expect("claim b while a lives"));

    drop(a);
    let within = cluster.claim_expiry() + Duration::from_secs(2);
    let mut freed = false;
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if b.broker.claim(u).await.expect("claim b") {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "the dead node's claim did not expire within {within:?}");

    let mut unsubscribed = false;
    for _ in 0..50 {
        if !b.broker.publish(u, frame("to the dead")).await.expect("publish") {
            unsubscribed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(unsubscribed, "the dead node still receives the user's channel");
    b.broker.release(u).await.expect("release");
}

/// Several sessions per user (issue 20): joins are counted over all nodes up to the limit,
/// say whether other nodes hold the user, never share with an exclusive claim (either way),
/// and a dead node's sessions stop counting once its lease is gone.
pub async fn sessions_are_counted_across_nodes(cluster: &dyn Cluster) {
    use chat_ports::Joined;
    let a = cluster.node().await;
    let b = cluster.node().await;
    let u = UserId(30);
    assert_eq!(a.broker.join(u, 3).await.expect("join"), Joined::Yes { others: false });
    assert_eq!(b.broker.join(u, 3).await.expect("join"), Joined::Yes { others: true });
    assert_eq!(a.broker.join(u, 3).await.expect("join"), Joined::Yes { others: true });
    assert_eq!(b.broker.join(u, 3).await.expect("join"), Joined::Limit);
    assert_eq!(a.broker.join(u, 3).await.expect("join"), Joined::Limit);
    assert!(!b.broker.claim(u).await.expect("claim"), "no exclusive claim beside sessions");
    assert!(!a.broker.claim(u).await.expect("claim"), "not even on a node that holds some");
    assert_eq!(a.broker.leave(u).await.expect("leave"), 2);
    assert_eq!(a.broker.leave(u).await.expect("leave"), 1);
    assert_eq!(b.broker.leave(u).await.expect("leave"), 0);
    assert!(b.broker.claim(u).await.expect("claim"), "free once every session ended");
    assert_eq!(
        a.broker.join(u, 3).await.expect("join"),
        Joined::InUse,
        "no session beside an exclusive claim"
    );
    b.broker.release(u).await.expect("release");
    assert_eq!(a.broker.join(u, 3).await.expect("join"), Joined::Yes { others: false });
    assert_eq!(a.broker.leave(u).await.expect("leave"), 0);

    // A dead node's sessions count until its lease expires, then not at all.
    let v = UserId(31);
    assert_eq!(a.broker.join(v, 1).await.expect("join"), Joined::Yes { others: false });
    assert_eq!(b.broker.join(v, 1).await.expect("join"), Joined::Limit);
    drop(a);
    let within = cluster.claim_expiry() + Duration::from_secs(2);
    let b2 = &b;
    let freed =
        until_true(within, || async move { matches!(b2.broker.join(v, 1).await, Ok(Joined::Yes { .. })) })
            .await;
    assert!(freed, "the dead node's sessions still count after {within:?}");
    assert_eq!(b.broker.leave(v).await.expect("leave"), 0);
}

/// Presence follows the sessions, whichever node records it and however late: a stale
/// "offline" (a logout's announcement that runs after the user logged in again on another
/// node) records nothing while a session lives, and each change is reported once.
pub async fn presence_follows_the_sessions(cluster: &dyn Cluster) {
    let a = cluster.node().await;
    let b = cluster.node().await;
    let u = UserId(40);
    assert_eq!(a.broker.presence(u).await.expect("presence"), None, "offline from the start");
    a.broker.join(u, 3).await.expect("join");
    assert_eq!(a.broker.presence(u).await.expect("presence"), Some(true), "came online");
    assert_eq!(b.broker.presence(u).await.expect("presence"), None, "told once");
    // The session ends on a; the user logs in on b before a's announcement runs.
    assert_eq!(a.broker.leave(u).await.expect("leave"), 0);
    b.broker.join(u, 3).await.expect("join");
    assert_eq!(a.broker.presence(u).await.expect("presence"), None, "a late offline while online");
    assert_eq!(b.broker.presence(u).await.expect("presence"), None, "still online");
    assert_eq!(b.broker.leave(u).await.expect("leave"), 0);
    assert_eq!(b.broker.presence(u).await.expect("presence"), Some(false), "went offline");
    assert_eq!(a.broker.presence(u).await.expect("presence"), None, "told once");
    // An exclusive claim (an original-protocol client) is a session too.
    assert!(a.broker.claim(u).await.expect("claim"));
    assert_eq!(b.broker.presence(u).await.expect("presence"), Some(true));
    a.broker.release(u).await.expect("release");
    assert_eq!(a.broker.presence(u).await.expect("presence"), Some(false));
}

/// Waits for `check` on a broker call; a helper for adapter-specific tests.
pub async fn until_true<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
