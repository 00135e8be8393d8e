//! The imbox SDK: the client library ([`imbox_client`]) exported with
//! UniFFI to Kotlin, Swift and Python (`make bindings` generates them).
//!
//! # Layout
//!
//! - [`client`]: [`ImboxClient`], one paired device: pairing and login,
//!   requests, the stream of events (awaited or fed to a listener), and
//!   the phone's lifecycle (suspend, resume, network changes).
//! - [`records`]: the values that cross the boundary (messages,
//!   attachments, conversations, events).
//! - [`error`]: the one error, [`ImboxError`], each case something an app
//!   can act on.
//! - `runtime`: the SDK's tokio runtime, on which every call runs.
//! - [`logging`]: silent unless the app calls [`set_log_level`].

pub mod client;
pub mod error;
pub mod logging;
pub mod records;
mod runtime;

pub use client::{
    check_server_url, parse_pairing_uri, ClientConfig, EventListener, ImboxClient, ProgressListener,
};
pub use error::ImboxError;
pub use logging::{set_log_level, LogLevel};

uniffi::setup_scaffolding!("imbox");
