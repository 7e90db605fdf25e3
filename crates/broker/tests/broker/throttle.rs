//! The throttle port's contract against Redis, and what sharing it means: two nodes' throttles
//! on one Redis count the same key together. Fails (never skips) when Redis is not reachable.

use chat_broker::RedisThrottle;
use chat_ports::Throttle;
use chat_ports::throttle::contract;

fn redis_url() -> String {
    std::env::var("CHAT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn prefix() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("test-throttle-{}-{nanos}:", std::process::id())
}

async fn throttle(prefix: &str) -> RedisThrottle {
    RedisThrottle::connect(&redis_url(), prefix).await.unwrap_or_else(|e| {
        panic!("the throttle tests need Redis at {} (CHAT_TEST_REDIS_URL): {e}", redis_url())
    })
}

#[tokio::test]
async fn redis_throttle_keeps_the_contract() {
    contract(&throttle(&prefix()).await, "k").await;
}

#[tokio::test]
async fn two_nodes_count_one_key_together() {
    let prefix = prefix();
    let (a, b) = (throttle(&prefix).await, throttle(&prefix).await);
    let window = std::time::Duration::from_secs(5);
    for _ in 0..3 {
        a.hit("login:1:127.0.0.2", window).await.expect("hit");
        b.hit("login:1:127.0.0.2", window).await.expect("hit");
    }
    assert_eq!(a.count("login:1:127.0.0.2").await, Ok(6));
    assert_eq!(b.count("login:1:127.0.0.2").await, Ok(6));
    b.clear("login:1:127.0.0.2").await.expect("clear");
    assert_eq!(a.count("login:1:127.0.0.2").await, Ok(0));
    let other = throttle(&format!("{prefix}other:")).await;
    assert_eq!(other.hit("login:1:127.0.0.2", window).await, Ok(1), "another prefix is another cluster");
    other.clear("login:1:127.0.0.2").await.expect("clear");
}
