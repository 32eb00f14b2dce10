//! The log subscriber: text or JSON lines on stderr, level from `RUST_LOG`
//! (default `info`). Colours only on a terminal and without `NO_COLOR`, so a
//! collected log holds no escape codes.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written (`serve --log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; a request's span (`rpc{request_id=… tenant=…}`)
    /// prefixes each of its lines.
    #[default]
    Text,
    /// One JSON object a line, the request's span fields under `span` and
    /// `spans`.
    Json,
}

/// Installs the process-wide subscriber. Logs go to stderr: stdout is for
/// what a command answers (the import summary, a new key).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}
