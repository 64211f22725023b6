//! Process-wide `tracing` setup.
//!
//! Logs go to stderr so that stdout stays free for command output (`plan`, `status --format
//! json`) and so that journald captures them when running under systemd.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; colours only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the global `tracing` subscriber: stderr, filter from `RUST_LOG` (default `info`;
/// invalid directives are ignored rather than silencing everything), text or JSON.
///
/// Idempotent: when a global subscriber is already set (a second call, or a test harness that
/// installed its own) the call does nothing.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // The only error try_init reports is "a global subscriber is already set"; keeping the
    // first one is exactly what idempotence asks for.
    let _already_set = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_idempotent() {
        // A second call (or one after a test harness installed its own subscriber) must not
        // panic. This installs the global subscriber for the rest of this test binary.
        init(LogFormat::Text);
        init(LogFormat::Json);
    }

    #[test]
    fn log_format_parses_from_the_cli_spelling() {
        use clap::ValueEnum;
        assert_eq!(LogFormat::from_str("text", false), Ok(LogFormat::Text));
        assert_eq!(LogFormat::from_str("json", false), Ok(LogFormat::Json));
        assert!(LogFormat::from_str("yaml", false).is_err());
    }
}
