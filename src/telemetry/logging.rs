//! Process-wide `tracing` setup.
//!
//! Logs go to stderr so that stdout stays free for command output (`plan`, `status --format
//! json`) and so that journald captures them when running under systemd.
//!
//! One event is one line: the text format escapes every control character inside an event
//! ([`OneLine`]), so a value from outside cannot forge a line or reach a terminal raw; values
//! from outside are also cut with [`outside`] where they are logged. JSON escapes by itself.

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
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal();
            builder
                .with_ansi(ansi)
                .with_writer(OneLine { ansi })
                .try_init()
        }
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// `text` from outside (a request, a peer) made fit for a log line: control characters
/// escaped, at most `max` characters, an ellipsis when cut.
pub fn outside(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 8);
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// stderr for the text format, each event's bytes with their control characters escaped but
/// the final newline (and, on a terminal, the ESC of the formatter's colours — values' own
/// escapes are escaped by the formatter then).
#[derive(Debug, Clone, Copy)]
struct OneLine {
    ansi: bool,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for OneLine {
    type Writer = OneLine;

    fn make_writer(&'a self) -> OneLine {
        *self
    }
}

impl std::io::Write for OneLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = one_line(buf, self.ansi);
        std::io::stderr().lock().write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn one_line(buf: &[u8], ansi: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(buf.len());
    let last = buf.len().saturating_sub(1);
    for (i, &b) in buf.iter().enumerate() {
        match b {
            b'\n' if i == last => out.push(b),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x1b if ansi => out.push(b),
            b'\t' => out.push(b),
            0..0x20 | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_stays_one_line_and_outside_values_are_escaped_and_cut() {
        let forged = b"INFO refused: x\n2026-12-07T00:00:00Z ERROR forged\x1b[31m\r\n";
        let line = String::from_utf8(one_line(forged, false)).expect("utf-8");
        assert_eq!(
            line,
            "INFO refused: x\\n2026-12-07T00:00:00Z ERROR forged\\x1b[31m\\r\n"
        );
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(outside("a\nb\u{1b}c", 100), "a\\nb\\u{1b}c");
        assert_eq!(outside("abcdef", 3), "abc…");
    }

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
