//! Embeds the text of every `migrations/mysql/*/up.sql`, so that the MySQL migration runner
//! (`src/migrations.rs`) can run each migration step by step. diesel's `embed_migrations!`
//! keeps the text private; this list is keyed by the same directory names.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

fn main() -> Result<(), Box<dyn Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/mysql");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&root)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() && !name.starts_with('.') {
            println!("cargo:rerun-if-changed={}", entry.path().join("up.sql").display());
            names.push(name);
        }
    }
    names.sort();
    let mut out = String::from("/// Every MySQL migration's directory name and up.sql, in order.\n");
    out.push_str("pub(crate) const MYSQL_UP: &[(&str, &str)] = &[\n");
    for name in &names {
        let path = root.join(name).join("up.sql").canonicalize()?;
        writeln!(out, "    ({name:?}, include_str!({:?})),", path.display().to_string())?;
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR")?).join("mysql_up.rs");
    std::fs::write(dest, out)?;
    Ok(())
}
