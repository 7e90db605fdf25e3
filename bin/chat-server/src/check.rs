//! `chat-server check-config`: the effective configuration after every layer, with the
//! database and Redis passwords redacted, one `key = value` line each (TOML, so it can be
//! pasted into a file). It reads the TLS files if any, and opens no socket and no database.

use std::process::ExitCode;

use crate::redact;
use crate::settings::Settings;

/// Settings whose values carry a password in a URL.
const SECRET_URLS: &[&str] = &["database_url", "redis_url"];

/// Prints the configuration; exit 0, or 2 with one line on stderr on an error.
pub fn run(settings: &Settings) -> ExitCode {
    if let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key)
        && let Err(e) = chat_tls::server_config(cert.as_ref(), key.as_ref())
    {
        eprintln!("chat-server: configuration error: {e}");
        return ExitCode::from(2);
    }
    match render(settings) {
        Ok(text) => {
            for warning in settings.warnings() {
                eprintln!("chat-server: warning: {warning}");
            }
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chat-server: configuration error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The configuration as TOML lines, sorted by key; unset options as comments.
fn render(settings: &Settings) -> Result<String, serde_json::Error> {
    let serde_json::Value::Object(map) = serde_json::to_value(settings)? else { return Ok(String::new()) };
    let mut out = String::from(
        "# chat-server: effective configuration (defaults < file < CHAT_* environment < flags)\n",
    );
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let value = &map[key.as_str()];
        let line = match value {
            serde_json::Value::Null => format!("# {key} is not set\n"),
            serde_json::Value::String(s) if SECRET_URLS.contains(&key.as_str()) => {
                format!("{key} = {}\n", serde_json::Value::from(redact(s)))
            }
            other => format!("{key} = {other}\n"),
        };
        out.push_str(&line);
    }
    Ok(out)
}
