//! The `chat-server` binary's start-up: defaults, configuration layers, and
//! one clear line with a non-zero exit for each way it cannot start.

use std::process::{Command, Stdio};
use std::time::Duration;

use chat_tests::{ServerProcess, WireClient, bin, free_port, tempdir::TempDir};

fn run(args: &[&str], env: &[(&str, &str)], dir: &TempDir) -> (i32, String) {
    let mut cmd = Command::new(bin("chat-server"));
    cmd.args(args).current_dir(dir.path()).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run chat-server");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn port_in_use_is_one_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = TempDir::new("chat-port");
    let (code, err) = run(&["--listen", &addr], &[], &dir);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[test]
fn bad_configuration_is_refused() {
    let dir = TempDir::new("chat-cfg");
    let (code, err) = run(&["--listen", "not-an-address"], &[], &dir);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("configuration error"), "{err}");
    let (code, err) = run(&["--database-url", "postgres://x"], &[], &dir);
    assert_eq!(code, 2, "{err}");
    let (code, err) = run(&["--config", "/nonexistent/chat.toml"], &[], &dir);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn unreachable_database_is_one_clear_error() {
    let dir = TempDir::new("chat-db");
    let listen = format!("127.0.0.1:{}", free_port());
    let (code, err) =
        run(&["--listen", &listen, "--database-url", "mysql://u:secretpw@127.0.0.1:1/chat"], &[], &dir);
    assert_ne!(code, 0);
    assert!(err.contains("cannot open the database"), "{err}");
    assert!(!err.contains("secretpw"), "password must not be printed: {err}");
}

async fn wait_port(port: u16) -> bool {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn spawn_quiet(args: &[&str], env: &[(&str, String)]) -> std::process::Child {
    let mut cmd = Command::new(bin("chat-server"));
    cmd.args(args).env("CHAT_HASH_MEMORY_KIB", "256").stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn chat-server")
}

#[tokio::test]
async fn flags_beat_environment_beat_file() {
    let dir = TempDir::new("chat-layers");
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let cfg = dir.path().join("chat.toml");
    let db = dir.path().join("f.db");
    std::fs::write(
        &cfg,
        format!("listen = \"127.0.0.1:{file_port}\"\ndatabase_url = \"sqlite://{}\"\n", db.display()),
    )
    .expect("write config");
    let cfg = cfg.display().to_string();

    let mut file_only = spawn_quiet(&["--config", &cfg], &[]);
    let up = wait_port(file_port).await;
    let _ = file_only.kill();
    let _ = file_only.wait();
    assert!(up, "listens on the file's address");

    let mut env = spawn_quiet(&["--config", &cfg], &[("CHAT_LISTEN", format!("127.0.0.1:{env_port}"))]);
    let up = wait_port(env_port).await;
    let _ = env.kill();
    let _ = env.wait();
    assert!(up, "the environment beats the file");

    let mut flag = spawn_quiet(
        &["--config", &cfg, "--listen", &format!("127.0.0.1:{flag_port}")],
        &[("CHAT_LISTEN", format!("127.0.0.1:{env_port}"))],
    );
    let up = wait_port(flag_port).await;
    let _ = flag.kill();
    let _ = flag.wait();
    assert!(up, "the flag beats the environment");
}

#[test]
fn default_database_is_a_file_under_data() {
    use std::io::BufRead;
    let dir = TempDir::new("chat-default");
    let port = free_port();
    let mut child = Command::new(bin("chat-server"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("CHAT_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !log.contains("listening") && std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            log.push_str(&line);
            log.push('\n');
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains(&format!("listening on 127.0.0.1:{port}")), "{log}");
    assert!(log.contains("in-process"), "says it runs alone: {log}");
    assert!(log.contains("sqlite://data/chat.db"), "names its database: {log}");
    assert!(!log.contains("\u{1b}["), "no colour codes when not on a terminal");
    assert!(dir.path().join("data/chat.db").exists(), "SQLite file under ./data");
}

#[test]
fn migrate_subcommand_applies_migrations() {
    let dir = TempDir::new("chat-migrate");
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let (code, err) = run(&["migrate", "--database-url", &url], &[], &dir);
    assert_eq!(code, 0, "{err}");
    assert!(dir.path().join("m.db").exists());
}

#[tokio::test]
async fn server_answers_over_tcp() {
    let server = ServerProcess::start_sqlite(&[]);
    let mut c = WireClient::connect(server.addr).await;
    let id = c.register("someone").await;
    assert_eq!(c.login(id, true).await["errno"], 0);
}
