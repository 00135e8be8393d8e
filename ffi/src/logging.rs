//! The SDK logs nothing unless the app asks: `set_log_level` routes the
//! library's tracing output to standard error at the level given (Android's
//! logcat and Xcode's console show standard error).

use std::sync::OnceLock;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

use crate::error::ImboxError;

type Handle = reload::Handle<LevelFilter, tracing_subscriber::Registry>;

static HANDLE: OnceLock<Option<Handle>> = OnceLock::new();

/// How much the SDK logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Sets how much the SDK logs to standard error (nothing by default).
#[uniffi::export]
pub fn set_log_level(level: LogLevel) -> Result<(), ImboxError> {
    let filter = match level {
        LogLevel::Off => LevelFilter::OFF,
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    let handle = HANDLE.get_or_init(|| {
        let (layer, handle) = reload::Layer::new(LevelFilter::OFF);
        let installed = tracing_subscriber::registry()
            .with(layer)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init();
        // The app (or another library) installed a subscriber of its own:
        // the SDK's events go there, and this level cannot apply.
        installed.ok().map(|()| handle)
    });
    let Some(handle) = handle else {
        return Err(ImboxError::InvalidArgument {
            message: "another logger is installed in this process: the SDK logs through it, set its level \
                      there"
                .to_owned(),
        });
    };
    handle
        .modify(|current| *current = filter)
        .map_err(|e| ImboxError::Io { message: format!("cannot change the log level: {e}") })
}
