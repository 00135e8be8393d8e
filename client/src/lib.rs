//! The imbox client library, under the `imbox` command-line client.
//!
//! # Layout
//!
//! - [`url`]: server addresses as people type them ([`ServerUrl`]:
//!   `ws://HOST:PORT`, with the `/ws` path added when missing).
//! - `transport`: moving whole encoded frames over a connection; WebSocket
//!   today, with TLS WebSocket and QUIC to come as further variants.
//! - [`connection`]: one live session ([`Connection`]): the hello exchange,
//!   concurrent requests matched to responses by id, and pushed events. It
//!   never reconnects.
//! - [`profile`]: what a device remembers between runs ([`Profile`]: server,
//!   user, device, token, cursor), saved atomically with mode 0600.
//! - [`cursor`]: which delivery-log entries are new ([`LogCursor`]), with no
//!   I/O so that exactly-once delivery is tested on its own.
//! - [`backoff`]: how long to wait before reconnecting ([`Backoff`]).
//! - [`client`]: the reconnecting [`Client`] over a profile: resume with the
//!   token, sends retried under one message id, the delivery log read from
//!   the cursor with each entry handed out once, the cursor saved and
//!   acknowledged.
//! - [`error`]: the one error type, [`ClientError`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), imbox_client::ClientError> {
//! use imbox_client::Client;
//! use imbox_protocol::Target;
//!
//! let mut client = Client::open("/home/alice/.config/imbox")?;
//! client.send(&Target::parse("#ops"), "deploying now").await?;
//! while let Some(entry) = client.next_backlog_entry().await? {
//!     println!("{entry:?}");
//! }
//! client.commit().await?;
//! # Ok(()) }
//! ```

pub mod backoff;
pub mod client;
pub mod connection;
pub mod cursor;
pub mod error;
pub mod profile;
mod transport;
pub mod url;

pub use backoff::Backoff;
pub use client::{Client, ClientOptions, Sent};
pub use connection::{Authenticated, ConnectOptions, Connection, Welcome};
pub use cursor::{LogCursor, Placement};
pub use error::ClientError;
pub use profile::Profile;
pub use url::{Scheme, ServerUrl};

/// The protocol crate, re-exported so that users name one dependency.
pub use imbox_protocol as protocol;
