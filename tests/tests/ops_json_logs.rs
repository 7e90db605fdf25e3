//! `--log-format json`: every log line is one JSON object with the node's name, events carry
//! their connection and user ids as fields, and neither passwords nor message bodies appear.

use std::time::Duration;

use chat_tests::{ServerProcess, WireClient, unique};
use serde_json::{Value, json};

#[tokio::test]
async fn json_logs_are_one_object_a_line_without_secrets() {
    let server = ServerProcess::start_sqlite(&["--log-format", "json", "--node-name", "node-j"]);
    let mut a = WireClient::connect(server.addr).await;
    a.send(&json!({"msgid":4,"name":unique("ja"),"password":"Pa55-never-logged","ext":1})).await;
    let id = a.recv().await["id"].as_i64().expect("id");
    a.send(&json!({"msgid":1,"id":id,"password":"Pa55-never-logged","ext":1})).await;
    assert_eq!(a.recv().await["errno"], 0);
    let to = WireClient::connect(server.addr).await.register(&unique("jb")).await;
    a.send(&json!({"msgid":6,"to":to,"msg":"Body-never-logged","cid":"j1"})).await;
    assert_eq!(a.recv().await["errno"], 0);
    drop(a);
    // The disconnect is logged once the server noticed it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.log().contains("disconnected") {
        assert!(std::time::Instant::now() < deadline, "no disconnect logged:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = server.log();
    assert!(!log.contains("Pa55-never-logged") && !log.contains("Body-never-logged"), "{log}");
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON object ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["node"] == "node-j" && l["level"].is_string()), "{log}");
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "logged in"
                && l["user"].as_str().and_then(|u| u.parse().ok()) == Some(id)),
        "{log}"
    );
    assert!(lines.iter().any(|l| l["message"] == "disconnected" && l["conn"].is_u64()), "{log}");
}
