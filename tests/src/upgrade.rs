//! What the rolling-upgrade drill needs besides a [`Drill`](crate::drill::Drill): the
//! previous release's binary (built by deploy/previous-release.sh, named by the committed
//! file deploy/releases/previous), `chat-server migrate` of either release, and a MySQL
//! database of the drill's own that starts empty (created and dropped through the root
//! account, as deploy/db-setup.sh works). Not the drill itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{mysql_url, nonce};

/// The workspace root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A release of chat-server that is not this build.
#[derive(Debug, Clone)]
pub struct Release {
    /// Its tag, e.g. `v0.1.0`.
    pub tag: String,
    /// Its commit.
    pub sha: String,
    /// Its `chat-server` binary.
    pub binary: PathBuf,
}

impl Release {
    /// The previous release, as deploy/releases/previous names it. Fails, naming the script
    /// that builds it, if its binary is missing.
    pub fn previous() -> Release {
        let file = root().join("deploy/releases/previous");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let mut words = text.split_whitespace();
        let (Some(tag), Some(sha)) = (words.next(), words.next()) else {
            panic!("{} must hold '<tag> <commit sha>', holds {text:?}", file.display());
        };
        // The layout deploy/previous-release.sh builds in (its `path` command prints the same).
        let binary = root().join(format!("deploy/run/releases/{sha}/target/debug/chat-server"));
        assert!(
            binary.exists(),
            "the previous release {tag} ({sha}) is not built: {} is missing; run \
             `bash deploy/previous-release.sh` (make test-services does)",
            binary.display()
        );
        Release { tag: tag.to_owned(), sha: sha.to_owned(), binary }
    }
}

/// Runs `program migrate --database-url url` and returns its log; fails with it unless it
/// exits 0.
pub fn migrate(program: &Path, url: &str) -> String {
    let out = Command::new(program)
        .args(["migrate", "--database-url", url])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {} migrate: {e}", program.display()));
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} migrate failed ({}):\n{log}", program.display(), out.status);
    log
}

/// Runs `sql` as MySQL's root (socket auth, as deploy/db-setup.sh does); returns the rows,
/// tab-separated. Fails with MySQL's message.
fn sql_as_root(db: Option<&str>, sql: &str) -> String {
    let mut cmd = Command::new(crate::mysql_client());
    cmd.args(["--user=root", "--batch", "--skip-column-names", "-e", sql]);
    if let Some(db) = db {
        cmd.arg(format!("--database={db}"));
    }
    let out = cmd.stdin(Stdio::null()).output().expect("run the MySQL client");
    assert!(
        out.status.success(),
        "MySQL as root failed (is it running? deploy/db-setup.sh starts it): {}\nSQL: {sql}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An empty database of its own (`chat_test_upgrade_<n>`), granted to the tests' MySQL user,
/// dropped on drop.
pub struct ScratchDatabase {
    name: String,
}

impl ScratchDatabase {
    /// Creates it.
    pub fn create() -> ScratchDatabase {
        let name = format!("chat_test_upgrade_{:x}", nonce() & 0xff_ffff_ffff);
        sql_as_root(
            None,
            &format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
                 GRANT ALL PRIVILEGES ON `{name}`.* TO 'chat_test'@'127.0.0.1';
                 GRANT ALL PRIVILEGES ON `{name}`.* TO 'chat_test'@'localhost';"
            ),
        );
        ScratchDatabase { name }
    }

    /// Its URL, with the tests' user ([`mysql_url`]'s, another database).
    pub fn url(&self) -> String {
        let base = mysql_url();
        let (server, _) = base.rsplit_once('/').expect("a MySQL URL with a database");
        format!("{server}/{}", self.name)
    }

    /// The migrations applied to it, oldest first (diesel's bookkeeping table).
    pub fn migrations(&self) -> Vec<String> {
        sql_as_root(Some(&self.name), "SELECT version FROM __diesel_schema_migrations ORDER BY version")
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let _ = Command::new(crate::mysql_client())
            .args(["--user=root", "-e", &format!("DROP DATABASE IF EXISTS `{}`", self.name)])
            .output();
    }
}
