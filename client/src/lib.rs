//! The imbox client library, under the `imbox` command-line client.
//!
//! # Layout
//!
//! - [`url`]: server addresses as people type them ([`ServerUrl`]:
//!   `ws://HOST:PORT`, `wss://HOST:PORT` with the `/ws` path added when
//!   missing, `quic://HOST:PORT`).
//! - `tls`: the box authenticated by its pinned key (a fingerprint from the
//!   pairing URI) instead of a certificate authority; TLS configurations
//!   and session tickets shared per box across the process.
//! - `transport`: moving whole encoded frames over a connection: WebSocket,
//!   WebSocket over TLS, or one QUIC stream of length-prefixed frames.
//! - [`connection`]: one live session ([`Connection`]): the hello exchange,
//!   concurrent requests matched to responses by id, pushed events, QUIC
//!   0-RTT for replay-safe requests and migration to a new local address. It
//!   never reconnects.
//! - [`profile`]: what a device remembers between runs ([`Profile`]: server,
//!   pin, user, device, token, cursor), saved atomically with mode 0600.
//! - [`cursor`]: which delivery-log entries are new ([`LogCursor`]), with no
//!   I/O so that exactly-once delivery is tested on its own.
//! - [`backoff`]: how long to wait before reconnecting ([`Backoff`]).
//! - [`client`]: the reconnecting [`Client`] over a profile: resume with the
//!   token, sends retried under one message id, the stream read from
//!   the cursor with each entry handed out once, the cursor saved and
//!   acknowledged; [`Client::pair`] turns a pairing URI into a profile.
//! - [`attachments`]: files beside messages: [`Client::upload`] (resumable,
//!   over QUIC streams of their own or tus over HTTPS),
//!   [`Client::download`] (checked against the id) and
//!   [`Client::send_with_attachments`].
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

pub mod attachments;
pub mod backoff;
pub mod client;
pub mod connection;
pub mod cursor;
pub mod error;
pub mod profile;
pub mod tls;
pub(crate) mod transport;
pub mod url;

pub use attachments::{Downloaded, Progress, Uploaded};
pub use backoff::Backoff;
pub use client::{Client, ClientOptions, Sent, Update};
pub use connection::{Authenticated, ConnectOptions, Connection, Welcome, ZeroRtt};
pub use cursor::{LogCursor, Placement};
pub use error::ClientError;
pub use profile::{parse_pin, Profile};
pub use url::{Scheme, ServerUrl};

/// The protocol crate, re-exported so that users name one dependency.
pub use imbox_protocol as protocol;
