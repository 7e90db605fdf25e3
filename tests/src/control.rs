//! Helpers for the tests of issue 21 ("users in control", tests/tests/control_*.rs): two
//! nodes on the tests' MySQL and Redis, users logged in on a chosen node, and reading past
//! the EVENT pushes that may come between a request and its ACK.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{ServerProcess, WireClient, cluster_node, redis_url, unique};

/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(5);

/// Two nodes sharing the tests' MySQL and Redis (a channel prefix of their own).
pub fn two_nodes() -> (ServerProcess, ServerProcess) {
    let prefix = format!("{}:", unique("ctl"));
    let redis = redis_url();
    (cluster_node("n1", &redis, &prefix, 10), cluster_node("n2", &redis, &prefix, 10))
}

/// A user registered with password `pw` and logged in (extension) on the node at `addr`.
pub struct User {
    /// Its connection.
    pub c: WireClient,
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Frames read while waiting for another one, not yet looked for.
    pub backlog: Vec<Value>,
}

impl User {
    /// Registers a new user and logs it in on `addr`.
    pub async fn on(addr: SocketAddr, base: &str) -> User {
        let name = unique(base);
        let mut c = WireClient::connect(addr).await;
        let id = c.register(&name).await;
        let ack = c.login(id, true).await;
        assert_eq!(ack["errno"], 0, "login {name}: {ack}");
        User { c, id, name, backlog: Vec::new() }
    }

    /// A user already logged in on `c`.
    pub fn with(c: WireClient, id: i64) -> User {
        User { c, id, name: String::new(), backlog: Vec::new() }
    }

    /// Goes on over another connection (logged in again); what the old one brought is dropped.
    pub fn switch(&mut self, c: WireClient) {
        self.c = c;
        self.backlog.clear();
    }

    /// Sends `req` and returns its answer (its own ack, e.g. LIST_ACK for LIST, or an ACK whose
    /// `re` is its msgid), skipping EVENTs and chats that arrive meanwhile.
    pub async fn ask(&mut self, req: Value) -> Value {
        let re = req["msgid"].as_i64().unwrap_or(0);
        self.c.send(&req).await;
        let answer = match re {
            32 => 33,
            38 => 39,
            19 => 20,
            15 => 16,
            56 => 57,
            _ => 11,
        };
        // A refusal comes on ACK (11) whatever the request's own answer would be.
        self.wait_for(|f| (f["msgid"] == 11 && f["re"] == re) || (answer != 11 && f["msgid"] == answer)).await
    }

    /// The first frame matching `pred` (in the backlog, or arriving within [`WAIT`]); frames
    /// passed over stay in the backlog for later waits. Panics if none comes.
    pub async fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.c.recv_within(left).await {
                Some(f) if pred(&f) => return f,
                Some(f) => self.backlog.push(f),
                None => break,
            }
        }
        panic!("user {} ({}): no matching frame within {WAIT:?}; got {:?}", self.id, self.name, self.backlog);
    }

    /// The EVENT `kind` within [`WAIT`].
    pub async fn event(&mut self, kind: &str) -> Value {
        self.wait_for(|f| f["msgid"] == 47 && f["event"] == kind).await
    }

    /// Asserts that no frame matching `pred` arrives within `quiet`; returns what came.
    pub async fn none_within(&mut self, quiet: Duration, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + quiet;
        let mut got = std::mem::take(&mut self.backlog);
        for f in &got {
            assert!(!pred(f), "user {}: unexpected {f}", self.id);
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.c.recv_within(left).await {
                Some(f) => {
                    assert!(!pred(&f), "user {}: unexpected {f}", self.id);
                    got.push(f);
                }
                None => break,
            }
        }
        got
    }

    /// Sends a one-to-one chat and returns its ACK.
    pub async fn chat(&mut self, to: i64, msg: &str) -> Value {
        self.ask(json!({"msgid":6,"to":to,"msg":msg})).await
    }

    /// The `msg` texts of a HISTORY page of the conversation with user `peer`.
    pub async fn history_with(&mut self, peer: i64) -> Vec<String> {
        let page = self.ask(json!({"msgid":19,"id":peer})).await;
        assert_eq!(page["errno"], 0, "{page}");
        page["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["msg"].as_str().map(String::from))
            .collect()
    }
}
