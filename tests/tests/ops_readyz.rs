//! Readiness at shutdown: on SIGTERM the node answers not-ready on /readyz first, while its
//! chat listener still accepts, so a load balancer stops sending new users before the node
//! drains; then the listener closes, clients are told, and the process exits cleanly.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chat_tests::ops::wait_status;
use chat_tests::{ServerProcess, WireClient, free_port, tempdir::TempDir, unique};

#[tokio::test]
async fn readyz_turns_not_ready_before_the_listener_closes() {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let dir = TempDir::new("chat-readyz");
    let url = format!("sqlite://{}", dir.path().join("chat.db").display());
    let mut server = ServerProcess::start_with(
        dir,
        &["--database-url", &url, "--admin-listen", &admin.to_string()],
        &[("CHAT_UNREADY_DELAY_SECS", "1.5")],
    );
    wait_status(admin, "/readyz", 200, Duration::from_secs(10)).await;
    let mut user = WireClient::connect(server.addr).await;
    let id = user.register(&unique("rz")).await;
    assert_eq!(user.login(id, true).await["errno"], 0);

    server.signal("TERM");
    let term = Instant::now();
    let body = wait_status(admin, "/readyz", 503, Duration::from_secs(1)).await;
    assert!(body.contains("shutting down"), "{body}");
    // Not ready, and still serving: new connections are accepted, nobody was told to go.
    assert!(
        std::net::TcpStream::connect(server.addr).is_ok(),
        "listener closed before /readyz said not ready"
    );
    user.expect_silence(Duration::from_millis(300)).await;
    assert!(term.elapsed() < Duration::from_millis(1500), "the checks took the whole delay");

    // Then the drain: the client is told, the listener closes, the process exits 0.
    let notice = user.recv().await;
    assert_eq!(notice["errno"], 15, "{notice}");
    assert!(term.elapsed() >= Duration::from_millis(1400), "drained before the unready delay");
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits after SIGTERM");
    assert!(status.success(), "{status}");
    assert!(std::net::TcpStream::connect(server.addr).is_err(), "listener still open after exit");
}
