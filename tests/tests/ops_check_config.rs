//! `chat-server check-config`: the effective configuration with secrets redacted, no socket
//! opened, and one clear line with exit code 2 for each error.

use std::process::{Command, Stdio};

use chat_tests::{bin, tempdir::TempDir};

fn check(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = TempDir::new("chat-check");
    let mut cmd = Command::new(bin("chat-server"));
    cmd.arg("check-config").args(args).current_dir(dir.path()).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run chat-server check-config");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn prints_the_effective_configuration_with_secrets_redacted_and_opens_nothing() {
    // The listen port is taken and the database and Redis do not exist: check-config binds
    // nothing and connects nowhere, so none of that matters.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = taken.local_addr().expect("addr").to_string();
    let (code, out, err) = check(
        &[
            "--listen",
            &listen,
            "--database-url",
            "mysql://chat:S3cretDb@127.0.0.1:1/chat",
            "--admin-listen",
            "127.0.0.1:9100",
        ],
        &[("CHAT_REDIS_URL", "redis://:R3disPw@127.0.0.1:1"), ("CHAT_RATE_PER_SEC", "75")],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(!out.contains("S3cretDb") && !out.contains("R3disPw"), "a secret leaked:\n{out}");
    for line in [
        "database_url = \"mysql://chat:***@127.0.0.1:1/chat\"".to_owned(),
        "redis_url = \"redis://:***@127.0.0.1:1\"".to_owned(),
        format!("listen = \"{listen}\""),
        "admin_listen = \"127.0.0.1:9100\"".to_owned(),
        "rate_per_sec = 75.0".to_owned(),
        "log_format = \"text\"".to_owned(),
        "# tls_cert is not set".to_owned(),
    ] {
        assert!(out.lines().any(|l| l == line), "missing `{line}` in:\n{out}");
    }
}

#[test]
fn the_websocket_settings_come_from_the_file_the_environment_and_the_flag() {
    let dir = TempDir::new("chat-check-ws");
    let file = dir.path().join("node.toml");
    std::fs::write(
        &file,
        "ws_listen = \"127.0.0.1:6080\"\nws_allowed_origins = [\"https://chat.example.com\"]\n",
    )
    .expect("write the file");
    let file = file.display().to_string();
    let (code, out, err) = check(&["--config", &file], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l == "ws_listen = \"127.0.0.1:6080\""), "{out}");
    assert!(out.lines().any(|l| l == "ws_allowed_origins = [\"https://chat.example.com\"]"), "{out}");
    let (code, out, err) = check(
        &["--config", &file, "--ws-listen", "127.0.0.1:7080"],
        &[("CHAT_WS_ALLOWED_ORIGINS", "https://a.example,https://b.example")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l == "ws_listen = \"127.0.0.1:7080\""), "{out}");
    assert!(
        out.lines().any(|l| l == "ws_allowed_origins = [\"https://a.example\",\"https://b.example\"]"),
        "{out}"
    );
    let (code, out, err) = check(&[], &[("CHAT_WS_LISTEN", "127.0.0.1:7081")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l == "ws_listen = \"127.0.0.1:7081\""), "{out}");
    assert!(out.lines().any(|l| l == "ws_allowed_origins = []"), "{out}");
}

#[test]
fn each_error_is_one_clear_line_and_exit_code_2() {
    for (args, says) in [
        (vec!["--admin-listen", "nowhere"], "admin_listen: `nowhere` is not an address"),
        (vec!["--log-format", "xml"], "log_format: `xml` is neither text nor json"),
        (vec!["--tls-cert", "/nonexistent/cert.pem"], "tls_cert and tls_key go together"),
        (
            vec!["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"],
            "tls_cert /nonexistent/cert.pem: No such file",
        ),
        (vec!["--database-url", "postgres://u:pw@h/db"], "database_url must start with"),
        (vec!["--redis-url", "redis-clustr://127.0.0.1:7000"], "redis_url must start with"),
        (vec!["--ws-listen", "nowhere"], "ws_listen: `nowhere` is not an address"),
    ] {
        let (code, out, err) = check(&args, &[]);
        assert_eq!(code, 2, "{args:?}: stdout {out} stderr {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(
            err.starts_with("chat-server: configuration error: ") && err.contains(says),
            "{args:?}: {err}"
        );
        assert!(out.is_empty(), "{args:?}: printed a configuration despite the error: {out}");
    }
}

#[test]
fn a_redis_cluster_url_with_one_address_is_a_warning_not_an_error() {
    let (code, out, err) = check(&["--redis-url", "redis-cluster://127.0.0.1:7000"], &[]);
    assert_eq!(code, 0, "a warning, not an error: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("chat-server: warning: redis_url lists a single Redis Cluster node"), "{err}");
    assert!(out.contains("redis_url = \"redis-cluster://127.0.0.1:7000\""), "{out}");

    for url in ["redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001", "redis://127.0.0.1:6379"] {
        let (code, out, err) = check(&["--redis-url", url], &[]);
        assert_eq!(code, 0, "{url}: {err}");
        assert!(err.is_empty(), "{url}: no warning expected: {err}");
        assert!(out.contains("redis_url"), "{url}: {out}");
    }
}
