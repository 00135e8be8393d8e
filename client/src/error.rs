//! The one error type of the client library.

use std::path::PathBuf;
use std::time::Duration;

use imbox_protocol::{ErrorBody, ErrorCode};

/// Why a client operation failed. Every message says what went wrong and,
/// where there is something to do, what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL could not be parsed.
    #[error("invalid server URL {url:?}: {reason}; expected ws://HOST:PORT")]
    InvalidUrl { url: String, reason: String },

    /// The URL names a transport this build does not speak yet.
    #[error("{scheme}:// is not supported yet ({url}); use ws://HOST:PORT")]
    UnsupportedTransport { url: String, scheme: String },

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
    #[error("this device's token was revoked or logged out; log in again: imbox --server {server} --profile {} login {user}", dir.display())]
    Revoked { server: String, dir: PathBuf, user: String },

    /// The profile directory holds no profile yet.
    #[error("no profile in {}: run `imbox --server URL --profile {} login USER` first", dir.display(), dir.display())]
    NoProfile { dir: PathBuf },

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
            ClientError::Server { error, .. } => {
                matches!(error.code, ErrorCode::RateLimited | ErrorCode::Unavailable | ErrorCode::Internal)
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
}
