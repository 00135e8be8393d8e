//! The one error type of the client library.

use std::path::PathBuf;
use std::time::Duration;

use imbox_protocol::pairing::PairingError;
use imbox_protocol::{ErrorBody, ErrorCode, Fingerprint};

/// Why a client operation failed. Every message says what went wrong and,
/// where there is something to do, what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL could not be parsed.
    #[error(
        "invalid server URL {url:?}: {reason}; expected ws://HOST:PORT, wss://HOST:PORT or quic://HOST:PORT"
    )]
    InvalidUrl { url: String, reason: String },

    /// A key fingerprint (`--pin`, `IMBOX_PIN` or a profile's `pin`) could
    /// not be read.
    #[error("{pin:?} is not a key fingerprint: expected sha256: followed by 43 base64url characters (as the pairing link or `imboxd identity` shows), or 64 hexadecimal digits")]
    InvalidPin { pin: String },

    /// A `wss://` or `quic://` server was given without the fingerprint of
    /// the box's key, so there is nothing to authenticate the box against
    /// (boxes have self-signed certificates; no CA vouches for them).
    #[error("no key fingerprint to check {url} against: pair with `imbox pair URI USER` or pass --pin FINGERPRINT")]
    NoPin { url: String },

    /// The box presented a key other than the pinned one: it is another
    /// machine (possibly an attacker on the network), or the box was reset
    /// and generated a new key.
    #[error(
        "the box at {url} presented the key {seen}, but this profile was paired with the key {expected}: \
         this is not the box you paired with, or it was reset; if the box was really reset, pair again \
         (imbox pair URI USER with a new pairing link, or --pin with the new fingerprint), otherwise do not \
         use this network to reach it"
    )]
    KeyMismatch { url: String, expected: Fingerprint, seen: Fingerprint },

    /// The TLS (or QUIC) handshake failed for a reason other than the key:
    /// the other end is not an imbox box, speaks another protocol version,
    /// or refused the connection.
    #[error("the secure handshake with {url} failed: {reason}; is this the address of an imbox box?")]
    Tls { url: String, reason: String },

    /// No TCP connection could be opened to the server.
    #[error("cannot reach {url}: {reason}; is imboxd running?")]
    Connect { url: String, reason: String },

    /// A TCP connection was made but the WebSocket upgrade failed, so the
    /// other end is probably not imboxd (or a proxy in front of it refused).
    #[error(
        "{url} did not accept a WebSocket connection: {reason}; is this the address of an imbox server?"
    )]
    Handshake { url: String, reason: String },

    /// The server did not answer in time.
    #[error("{what} timed out after {}s; the server or the network may be overloaded, retry later", after.as_secs_f32())]
    Timeout { what: String, after: Duration },

    /// The connection ended while a request was outstanding or before the
    /// caller asked for anything; the request may or may not have been
    /// carried out.
    #[error("the connection to the server was lost: {reason}")]
    ConnectionClosed { reason: String },

    /// The server sent something this client cannot make sense of.
    #[error("the server broke the imbox protocol: {reason}; is the server a compatible imboxd version?")]
    Protocol { reason: String },

    /// A frame would exceed the size the server announced it accepts.
    #[error("the {request} request is {size} bytes, more than the {limit} bytes the server accepts; send a shorter text")]
    FrameTooLarge { request: &'static str, size: usize, limit: u32 },

    /// The server refused a request with a typed error.
    #[error("{request} failed: {} ({})", error.message, code_name(error.code))]
    Server { request: &'static str, error: ErrorBody },

    /// This device's token is no longer accepted: it was revoked from another
    /// device, or the device logged out.
    #[error("this device's token was revoked or logged out; log in again: imbox --server {server} {}--profile {} login {user}", pin.as_ref().map(|pin| format!("--pin {pin} ")).unwrap_or_default(), dir.display())]
    Revoked { server: String, dir: PathBuf, user: String, pin: Option<String> },

    /// The profile directory holds no profile yet.
    #[error("no profile in {}: run `imbox --server URL --profile {} login USER` first, or `imbox --profile {} pair URI USER` with a pairing link", dir.display(), dir.display(), dir.display())]
    NoProfile { dir: PathBuf },

    /// The pairing URI could not be read.
    #[error("{0}; copy the whole pairing link (imbox:pair?...) from the box's invite")]
    InvalidPairingUri(#[from] PairingError),

    /// Pairing registers an account, which needs an invite, and the pairing
    /// URI carries none.
    #[error(
        "the pairing link has no invite: ask the box's owner for an invite link (imbox:pair?...&invite=...)"
    )]
    NoInvite,

    /// Every address of the box was tried and none could be connected to.
    /// Each error names its address.
    #[error("none of the box's addresses could be used: {}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | "))]
    NoAddressWorked { errors: Vec<ClientError> },

    /// [`crate::Connection::rebind`] on a connection that is not QUIC: only
    /// QUIC connections survive a change of local address.
    #[error("{url} is not a QUIC connection: only quic:// connections can move to a new local address")]
    RebindUnsupported { url: String },

    /// A new local UDP socket could not be opened for
    /// [`crate::Connection::rebind`].
    #[error("cannot move the connection to a new local address: {reason}")]
    Rebind { reason: String },

    /// Attachments were asked of a `ws://` server. The box serves uploads
    /// and downloads over HTTPS and QUIC only, so that a file and the
    /// device token never cross the network in clear.
    #[error("attachments need wss:// or quic://, and {url} is plain ws://: use the box's wss:// or quic:// address (pass --server, or pair again)")]
    AttachmentsNeedTls { url: String },

    /// A local file to upload or to download into could not be read or
    /// written.
    #[error("cannot {action} {}: {error}", path.display())]
    File { action: &'static str, path: PathBuf, error: std::io::Error },

    /// The upload would take the user past their media quota on the box.
    #[error("the box refused the upload: it would take you past your media quota ({message}); delete old attachments or ask the box's owner for a larger quota")]
    QuotaExceeded { message: String },

    /// The box keeps the rest of its disk for messages and takes no more
    /// media until its owner frees space; messages without attachments
    /// still go through.
    #[error("the box refused the upload: its disk is kept for messages ({message}); ask the box's owner to free space or shorten media retention; messages without attachments still go through")]
    MediaSpaceFull { message: String },

    /// The file is larger than the box accepts (`media.max_file_mib`).
    #[error("the file is {} MB, larger than the box accepts ({message}); send a smaller file, or ask the box's owner to raise media.max_file_mib", size.div_ceil(1_000_000))]
    AttachmentTooLarge { size: u64, message: String },

    /// The box has no such attachment, or not one this user may read: it
    /// never existed, was never sent to them, or media retention removed it.
    #[error("the box has no attachment {id} that you may read: check the id (from the message's attachments), or it expired under the box's media retention")]
    AttachmentNotFound { id: String },

    /// A push registration's endpoint or keys break the rules of the
    /// protocol (docs/PROTOCOL.md, "Push"): nothing was sent to the box.
    #[error("invalid push registration: {0}; pass the subscription's endpoint and keys as the push service gave them")]
    InvalidPush(#[from] imbox_protocol::push::PushError),

    /// An attachment description breaks the rules of the protocol.
    #[error("invalid attachment: {0}")]
    InvalidAttachment(#[from] imbox_protocol::AttachmentError),

    /// The bytes downloaded are not the attachment asked for: their SHA-256
    /// differs from its id (or their length from its size). What was written
    /// must not be trusted; a partial output file is removed.
    #[error("the download of attachment {id} is damaged: its content has the SHA-256 {actual}; nothing was kept, download it again")]
    AttachmentCorrupt { id: String, actual: String },

    /// The file changed while it was being uploaded (or between an
    /// interrupted upload and its resumption): what the box stored is a mix
    /// of old and new bytes, and is not sent.
    #[error("{} changed while it was being uploaded (the box stored content {stored}, the file now hashes to {local}); upload it again once it no longer changes", path.display())]
    FileChanged { path: PathBuf, stored: String, local: String },

    /// An HTTPS request for attachments got an answer this client does not
    /// expect; the server's own words are in `message`.
    #[error("{request} at {url} failed with HTTP {status}: {message}")]
    Http { request: &'static str, url: String, status: u16, message: String },

    /// Reading or writing a profile file failed.
    #[error("cannot {action} {}: {error}", path.display())]
    ProfileIo { action: &'static str, path: PathBuf, error: std::io::Error },

    /// The profile file exists but is not a valid profile.
    #[error("the profile {} is damaged ({error}); log in again to replace it", path.display())]
    ProfileCorrupt { path: PathBuf, error: serde_json::Error },
}

impl ClientError {
    /// Whether retrying the same operation later can succeed: the network,
    /// the server's load or its restart were the problem, not the request.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::ConnectionClosed { .. } => true,
            // A gateway or a box restarting in between.
            ClientError::Http { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
            ClientError::Server { error, .. } => {
                // A full disk on the box is freed by its owner, and writes
                // then resume by themselves: worth retrying, later.
                matches!(
                    error.code,
                    ErrorCode::RateLimited
                        | ErrorCode::Unavailable
                        | ErrorCode::Internal
                        | ErrorCode::StorageFull
                )
            }
            _ => false,
        }
    }

    /// Whether the connection this error happened on is unusable afterwards.
    pub fn breaks_connection(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::Handshake { .. }
                | ClientError::Tls { .. }
                | ClientError::KeyMismatch { .. }
                | ClientError::Timeout { .. }
                | ClientError::ConnectionClosed { .. }
                | ClientError::Protocol { .. }
        )
    }

    /// How long the server asked the client to wait before retrying.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Server { error, .. } => error.retry_after_ms.map(Duration::from_millis),
            _ => None,
        }
    }

    /// The server's error code, when the server refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { error, .. } => Some(error.code),
            ClientError::QuotaExceeded { .. } => Some(ErrorCode::QuotaExceeded),
            ClientError::MediaSpaceFull { .. } => Some(ErrorCode::MediaSpaceFull),
            ClientError::AttachmentTooLarge { .. } => Some(ErrorCode::TooLarge),
            ClientError::AttachmentNotFound { .. } => Some(ErrorCode::NotFound),
            _ => None,
        }
    }
}

/// The wire name of an error code (`rate_limited`), which is what the
/// protocol documentation and server logs use.
fn code_name(code: ErrorCode) -> String {
    match serde_json::to_value(code) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{code:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_show_the_wire_code() {
        let err = ClientError::Server {
            request: "send",
            error: ErrorBody::new(ErrorCode::NotMember, "you are not in #ops"),
        };
        assert_eq!(err.to_string(), "send failed: you are not in #ops (not_member)");
        assert!(!err.is_transient());
    }

    #[test]
    fn transient_errors_are_told_apart() {
        let mut body = ErrorBody::new(ErrorCode::RateLimited, "slow down");
        body.retry_after_ms = Some(250);
        let err = ClientError::Server { request: "send", error: body };
        assert!(err.is_transient());
        assert!(!err.breaks_connection());
        assert_eq!(err.retry_after(), Some(Duration::from_millis(250)));
        let lost = ClientError::ConnectionClosed { reason: "reset".into() };
        assert!(lost.is_transient() && lost.breaks_connection());
    }

    #[test]
    fn a_key_mismatch_shows_both_keys_and_what_to_do() {
        let expected = Fingerprint::of_spki(b"paired key");
        let seen = Fingerprint::of_spki(b"other key");
        let err = ClientError::KeyMismatch { url: "quic://box.lan:443".into(), expected, seen };
        let text = err.to_string();
        assert!(text.contains(&expected.to_string()) && text.contains(&seen.to_string()), "{text}");
        assert!(text.contains("not the box you paired with") && text.contains("pair again"), "{text}");
        // Retrying cannot make another box's key right.
        assert!(!err.is_transient() && err.breaks_connection());
    }

    #[test]
    fn a_revoked_pinned_device_is_told_the_whole_login_command() {
        let pin = Fingerprint::of_spki(b"key").to_string();
        let err = ClientError::Revoked {
            server: "quic://box.lan:443".into(),
            dir: PathBuf::from("/p"),
            user: "alice".into(),
            pin: Some(pin.clone()),
        };
        assert_eq!(
            err.to_string(),
            format!(
                "this device's token was revoked or logged out; log in again: \
                 imbox --server quic://box.lan:443 --pin {pin} --profile /p login alice"
            )
        );
    }
}
