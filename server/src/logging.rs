//! Where imboxd's log events go.
//!
//! On the appliance the journal is the only log store: it keeps logs in RAM (the SD card must not
//! be written to in steady state) and the status page and `journalctl` read them from there. So
//! when the journald socket exists, events go to journald as structured entries; anywhere else
//! (a developer's shell, a container, the QEMU runner without systemd) they go to stderr as
//! human-readable lines.
//!
//! Which events are kept is a [`tracing_subscriber::EnvFilter`] built from `log.level` in the
//! configuration. `RUST_LOG`, when set and not empty, replaces `log.level` entirely: it is the
//! variable every Rust developer reaches for first, and an operator who sets it by hand means it.

use std::io::IsTerminal;
use std::path::Path;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::{SubscriberInitExt, TryInitError};
use tracing_subscriber::EnvFilter;

/// The socket journald receives native log entries on.
pub const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";

/// The journal's `SYSLOG_IDENTIFIER` for imboxd's entries (`journalctl -t imboxd`), fixed so it
/// does not depend on the name the binary was started under.
const SYSLOG_IDENTIFIER: &str = "imboxd";

/// The environment variable that replaces `log.level` when set.
const RUST_LOG: &str = "RUST_LOG";

/// Where [`init`] sends log events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    /// Structured entries to journald through [`JOURNALD_SOCKET`].
    Journald,
    /// Human-readable lines on stderr.
    Stderr,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter from `log.level` or `RUST_LOG` cannot be used. Fix the value named in the
    /// message; `info` is a safe choice.
    #[error("log filter {directives:?} from {origin} is invalid: {source}")]
    InvalidFilter {
        /// The filter as given.
        directives: String,
        /// Where it came from: `log.level` or `RUST_LOG`.
        origin: &'static str,
        /// What is wrong with it.
        source: InvalidFilter,
    },
    /// `RUST_LOG` is set but is not valid Unicode. Unset it or give it a filter such as `info`.
    #[error("RUST_LOG is set but is not valid Unicode")]
    RustLogNotUnicode,
    /// A global logger is already installed, usually because [`init`] was called twice. The
    /// first one stays in place.
    #[error("logging is already set up: {0}")]
    AlreadyInitialized(#[from] TryInitError),
}

/// What is wrong with a log filter (see [`parse_filter`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidFilter {
    reason: String,
}

impl InvalidFilter {
    fn new(reason: impl Into<String>) -> Self {
        InvalidFilter { reason: reason.into() }
    }
}

/// Parses a log filter: comma-separated directives, each a level (`off`, `error`, `warn`,
/// `info`, `debug`, `trace`) or `target=level` (e.g. `info,imboxd::store=debug`).
///
/// This is stricter than [`EnvFilter`] on purpose: `EnvFilter` reads a bare word that is not a
/// level as a target name, so a misspelt level such as `inof` would silently turn every other
/// event off. Here a bare word must be a level; a target needs its `=level`.
pub fn parse_filter(directives: &str) -> Result<EnvFilter, InvalidFilter> {
    if directives.trim().is_empty() {
        return Err(InvalidFilter::new("it is empty; give a level such as \"info\""));
    }
    for directive in directives.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let names_a_target = directive.contains('=') || directive.contains('[');
        if !names_a_target && directive.parse::<LevelFilter>().is_err() {
            return Err(InvalidFilter::new(format!(
                "`{directive}` is not a level (off, error, warn, info, debug, trace); \
                 to choose the level of one module write `{directive}=<level>`"
            )));
        }
    }
    EnvFilter::builder().parse(directives).map_err(|e| InvalidFilter::new(e.to_string()))
}

/// The filter `init` installs: `RUST_LOG` if it is given and not empty, else `level`.
fn select_filter(level: &str, rust_log: Option<&str>) -> Result<EnvFilter, LoggingError> {
    let (directives, origin) = match rust_log {
        Some(rust_log) if !rust_log.trim().is_empty() => (rust_log, RUST_LOG),
        _ => (level, "log.level"),
    };
    parse_filter(directives).map_err(|source| LoggingError::InvalidFilter {
        directives: directives.to_owned(),
        origin,
        source,
    })
}

/// Installs the global logger: journald if [`JOURNALD_SOCKET`] exists, stderr otherwise, with
/// the filter `level` (an [`EnvFilter`] directive such as `info`), or `RUST_LOG` when that is set
/// and not empty.
///
/// If the journald socket exists but journald cannot be reached, logs go to stderr and a line on
/// stderr says why, so that a broken journal never means no logs at all.
///
/// Call it once, early in `main`. A second call returns
/// [`LoggingError::AlreadyInitialized`] and leaves the first logger in place.
pub fn init(level: &str) -> Result<LogOutput, LoggingError> {
    let rust_log = match std::env::var(RUST_LOG) {
        Ok(value) => Some(value),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => return Err(LoggingError::RustLogNotUnicode),
    };
    let filter = select_filter(level, rust_log.as_deref())?;

    let mut journald_error = None;
    if Path::new(JOURNALD_SOCKET).exists() {
        // `layer()` sends an empty datagram, so a socket file with no journald behind it (a
        // stopped journald, a leftover in a container) is caught here rather than losing logs.
        match tracing_journald::layer() {
            Ok(journald) => {
                let journald = journald.with_syslog_identifier(SYSLOG_IDENTIFIER.to_owned());
                tracing_subscriber::registry().with(filter).with(journald).try_init()?;
                return Ok(LogOutput::Journald);
            }
            Err(e) => journald_error = Some(e),
        }
    }

    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(true)
        // Colour codes are noise in a file or a pipe.
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry().with(filter).with(stderr).try_init()?;

    if let Some(e) = journald_error {
        // Printed rather than logged: the filter may hide warnings, and this must be seen.
        eprintln!("imboxd: {JOURNALD_SOCKET} exists but journald cannot be reached ({e}); logging to stderr");
    }
    Ok(LogOutput::Stderr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_targets_are_accepted() {
        for ok in ["info", "TRACE", "off", "warn,imboxd::store=debug", "imboxd=trace", " debug "] {
            assert!(parse_filter(ok).is_ok(), "{ok:?} should be accepted");
        }
    }

    #[test]
    fn a_misspelt_level_is_rejected() {
        let error = parse_filter("inof").expect_err("a misspelt level");
        assert!(error.to_string().contains("`inof` is not a level"), "{error}");
        assert!(parse_filter("info,imboxd::store=lots").is_err());
        assert!(parse_filter("").is_err());
        assert!(parse_filter("  ").is_err());
    }

    #[test]
    fn rust_log_replaces_the_configured_level() {
        // A bad RUST_LOG is reported as RUST_LOG, which proves it was the one used ...
        let error = select_filter("info", Some("inof")).expect_err("RUST_LOG is used");
        assert!(error.to_string().contains("from RUST_LOG"), "{error}");
        // ... and a bad level is ignored when RUST_LOG is valid.
        assert!(select_filter("inof", Some("debug")).is_ok());
        // An empty RUST_LOG counts as unset.
        let error = select_filter("inof", Some("")).expect_err("log.level is used");
        assert!(error.to_string().contains("from log.level"), "{error}");
        assert!(select_filter("info", None).is_ok());
    }

    #[test]
    fn a_second_init_is_an_error_not_a_panic() {
        // The first call may already fail if another test installed a logger; either way the
        // second one must return an error. "off" keeps test output clean.
        let _ = init("off");
        let second = init("off");
        assert!(matches!(second, Err(LoggingError::AlreadyInitialized(_))), "{second:?}");
    }
}
