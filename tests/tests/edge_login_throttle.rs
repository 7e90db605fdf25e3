//! No lockout by strangers: a brute force of 1,000 wrong passwords against one account, from
//! one address (127.0.0.2), spread over both nodes through nginx with the PROXY protocol. The
//! failures are counted in Redis, so the two nodes together let exactly
//! `login_failures_per_user` guesses through; everything after is refused (errno 14) without
//! a password check. Meanwhile the owner, from another address (127.0.0.3), logs in with the
//! right password at the first try.

use std::net::IpAddr;
use std::time::Duration;

use chat_tests::{Nginx, WireClient, cluster_node_with, redis_url, unique};
use serde_json::json;

const ATTEMPTS: usize = 1000;
const PER_PAIR: u64 = 10;

#[tokio::test(flavor = "multi_thread")]
async fn a_brute_force_is_throttled_across_nodes_and_the_owner_still_logs_in() {
    let prefix = format!("edge-throttle-{}:", unique("p"));
    let env = [
        ("CHAT_LOGIN_FAILURES_PER_USER", "10"),
        // The attacker is refused by the pair's count, not by this (it would stop it at 50).
        ("CHAT_LOGIN_FAILURES_PER_ADDR", "2000"),
        ("CHAT_RATE_PER_SEC", "100000"),
        ("CHAT_RATE_BURST", "100000"),
    ];
    let a = cluster_node_with("thr-a", &redis_url(), &prefix, 3, &env);
    let b = cluster_node_with("thr-b", &redis_url(), &prefix, 3, &env);
    let nginx = Nginx::start([a.addr, b.addr]);
    let attacker: IpAddr = "127.0.0.2".parse().expect("ip");
    let owner_addr: IpAddr = "127.0.0.3".parse().expect("ip");
    let victim = WireClient::connect_from(owner_addr, nginx.addr).await.register(&unique("victim")).await;

    // The brute force, one attempt at a time over connections that nginx spreads over both
    // nodes; a connection closed after 5 failures is replaced.
    let lb = nginx.addr;
    let brute = tokio::spawn(async move {
        let (mut wrong, mut throttled, mut other) = (0u64, 0u64, Vec::new());
        let mut conns =
            [WireClient::connect_from(attacker, lb).await, WireClient::connect_from(attacker, lb).await];
        let mut done = 0;
        while done < ATTEMPTS {
            let i = done % 2;
            conns[i].send(&json!({"msgid":1,"id":victim,"password":"guess","ext":1})).await;
            match conns[i].recv_within(Duration::from_secs(10)).await {
                Some(ack) => {
                    match ack["errno"].as_i64() {
                        Some(1) => wrong += 1,
                        Some(14) => throttled += 1,
                        _ => other.push(ack),
                    }
                    done += 1;
                }
                // Closed after its 5th failure: reconnect (the attempt did not count).
                None => conns[i] = WireClient::connect_from(attacker, lb).await,
            }
        }
        (wrong, throttled, other)
    });

    // The owner logs in from elsewhere while the brute force runs: first try.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut owner = WireClient::connect_from(owner_addr, nginx.addr).await;
    let ack = owner.login(victim, true).await;
    assert_eq!(ack["errno"], 0, "the owner, from another address, during the attack: {ack}");

    let (wrong, throttled, other) = brute.await.expect("brute force");
    assert!(other.is_empty(), "only errno 1 and 14: {other:?}");
    assert_eq!(wrong, PER_PAIR, "guesses checked, over both nodes together");
    assert_eq!(throttled, ATTEMPTS as u64 - PER_PAIR, "the rest refused without a check");
    let refused_on = [&a, &b].map(|n| {
        n.log().lines().any(|l| l.contains("failed-login throttle") && l.contains("addr=127.0.0.2"))
    });
    assert_eq!(refused_on, [true, true], "both nodes refused the attacker by its own address");

    // The owner logs out and in again from its own address: still not locked out.
    owner.send(&json!({"msgid":3})).await;
    assert_eq!(owner.recv().await["errno"], 0);
    assert_eq!(owner.login(victim, true).await["errno"], 0);
}
