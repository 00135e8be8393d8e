//! imboxd, the imbox daemon, as a library: `main.rs` only parses arguments,
//! loads the configuration, sets up logging and calls in here.
//!
//! Layout — each module is one concept:
//! - [`config`]: the stacked configuration (defaults, /etc, the data disk's
//!   settings, environment, flags), validated before anything is bound.
//! - [`logging`]: journald when there is a journal, readable stderr otherwise.
//! - [`store`]: the redb database, the group-commit writer and every query.
//! - [`router`]: which devices are online, and live delivery to them.
//! - [`push`]: Web Push and UnifiedPush wake-ups for devices without a
//!   session (RFC 8291 encryption, VAPID), bounded and never in delivery's way.
//! - [`session`]: one client's session — protocol states, sync cursors, live
//!   switch, limits — with no sockets in it.
//! - [`transport`]: the connection loop, the HTTP(S)/WebSocket listeners and
//!   the QUIC listener.
//! - [`identity`] and [`tls`]: the box key, its self-signed certificate and
//!   the TLS settings (ChaCha20-Poly1305 first); [`own_cert`]: the owner's
//!   own certificate, which HTTPS shows browsers instead.
//! - [`pairing`]: what pairing URIs say about this box.
//! - [`admin`] and [`control`]: shell administration, through the running
//!   daemon's control socket or directly against a stopped daemon's store.
//! - [`disks`]: the appliance's USB disks, and moving the data to one.
//! - [`web`]: the plain-HTTP landing page, first-run setup (the claim code),
//!   the admin pages and their JSON API, and Prometheus metrics.
//! - [`server`]: start everything, and shut it down in order.
//! - [`standby`]: `imboxd standby`, the page the box serves instead when its
//!   data disk is missing, fails its check or is there twice.
//!
//! docs/ARCHITECTURE.md follows a message through these parts.

pub mod admin;
pub mod config;
pub mod control;
pub mod disks;
pub mod files;
pub mod identity;
pub mod logging;
pub mod media;
pub mod own_cert;
pub mod pairing;
pub mod push;
pub mod router;
pub mod server;
pub mod session;
pub mod standby;
pub mod store;
pub mod tls;
pub mod transport;
pub mod web;

pub use server::{run, start, Running, ServerError};
