//! The imbox wire protocol, shared by the daemon and every client.
//!
//! Layout:
//! - [`request`]: what a client asks ([`Request`], addressed by [`Target`]).
//! - [`response`]: what the server answers to one request ([`Response`]).
//! - [`event`]: what the server pushes unasked ([`Event`]), and the positioned
//!   [`Entry`] records of a user's delivery log that both `sync` and pushes carry.
//! - [`error`]: the typed error every failed request gets ([`ErrorCode`]).
//! - [`frame`]: the envelopes ([`ClientFrame`], [`ServerFrame`]) and their
//!   MessagePack encoding, which is the same on WebSocket and QUIC.
//! - [`names`]: the rules for user names, group names and client message ids.
//! - [`identity`]: the box's key fingerprint ([`Fingerprint`]), which clients pin.
//! - [`pairing`]: the `imbox:pair?…` URI of the QR code ([`PairingUri`]).
//! - [`push`]: push registrations ([`PushKind`]) and their checks.
//! - [`shape`]: the raw MessagePack shape a client frame must have, checked
//!   before serde (which is more lenient than the document).
//! - [`stream`]: length-prefixed frames on a byte stream (QUIC).
//! - [`attachment`]: what a message says about each file it carries.
//! - [`transfer`]: attachment bytes over QUIC streams of their own, and the
//!   paths of the HTTPS (tus) endpoints.
//!
//! docs/PROTOCOL.md is the specification; this crate is its Rust rendering.

pub mod attachment;
pub mod error;
pub mod event;
pub mod frame;
pub mod identity;
pub mod names;
pub mod pairing;
pub mod push;
pub mod request;
pub mod response;
pub mod shape;
pub mod stream;
pub mod transfer;

pub use attachment::{check_attachments, valid_attachment_id, Attachment, AttachmentError};
pub use error::{ErrorBody, ErrorCode};
pub use event::{Entry, Event, Item, Membership, MembershipChange, Message, Receipt, ReceiptKind};
pub use frame::{ClientFrame, DecodeError, ServerFrame};
pub use identity::Fingerprint;
pub use pairing::PairingUri;
pub use push::PushKind;
pub use request::{Request, Target};
pub use response::{ConversationInfo, ConversationKind, DeviceInfo, Limits, MemberMarks, Response};

/// The protocol version this crate speaks. A client offers the versions it
/// speaks in `hello`; the server picks the highest one both know.
pub const PROTOCOL_VERSION: u16 = 1;

/// Every version this crate can speak, oldest first.
pub const SUPPORTED_VERSIONS: &[u16] = &[1];

/// The WebSocket path on imboxd's HTTP listener.
pub const WEBSOCKET_PATH: &str = "/ws";

/// The ALPN protocol id of the QUIC transport.
pub const QUIC_ALPN: &[u8] = b"imbox/1";

/// The ALPN id a client that pins the box key offers on HTTPS (wss and
/// attachment transfers), before `http/1.1`. It marks the connection as one
/// that wants the box key's certificate: a box whose owner installed a
/// certificate of their own for browsers serves that one to everyone else.
/// The server never selects it (its ALPN list is `http/1.1` only), so the
/// connection still speaks HTTP/1.1. See docs/PROTOCOL.md, "TLS".
pub const PINNED_ALPN: &[u8] = b"imbox/1";
