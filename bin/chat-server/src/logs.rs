//! The node's log: `text` (human, the default) or `json` (one object a line, for log
//! shippers), each with an `EnvFilter`. A JSON line carries the node's name as `node`, and the
//! fields of the event (`conn`, `user`, `peer`, `error`, …) as keys. What is logged is decided
//! at the call sites, which never log passwords or message bodies.

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::registry::LookupSpan;

use crate::settings::Settings;

/// Installs the global subscriber (RUST_LOG beats the configured filter).
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log));
    if settings.log_format == "json" {
        let node = settings.node_name.clone().unwrap_or_else(|| settings.listen.clone());
        let inner = format().json().flatten_event(true).with_current_span(true).with_span_list(false);
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .fmt_fields(JsonFields::new())
            .event_format(WithNode { inner, node: serde_json::Value::from(node).to_string() })
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init();
    }
}

fn format() -> format::Format {
    format::Format::default().with_target(false)
}

/// The JSON format with `"node":…` first in every object.
struct WithNode<F> {
    inner: F,
    /// The node's name, already a JSON string.
    node: String,
}

impl<S, N, F> FormatEvent<S, N> for WithNode<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"node\":{},{rest}", self.node),
            None => writer.write_str(&line),
        }
    }
}
