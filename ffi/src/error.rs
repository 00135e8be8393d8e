//! The one error the SDK's callers see, [`ImboxError`], and how the client
//! library's errors map onto it: each variant is something an app can act
//! on, and each message says what to do.

use imbox_client::protocol::ErrorCode;
use imbox_client::ClientError;

/// Why an SDK call failed. Kotlin and Swift get one exception type with a
/// case per variant; Python an exception class per variant.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum ImboxError {
    /// The profile directory holds no profile: pair with a pairing link or
    /// log in first.
    #[error("{message}")]
    NotPaired { message: String },
    /// The pairing link could not be read, or carries no invite.
    #[error("{message}")]
    InvalidPairingUri { message: String },
    /// An argument breaks the rules (a user or group name, a server URL, a
    /// key fingerprint, a message id, an attachment description).
    #[error("{message}")]
    InvalidArgument { message: String },
    /// Wrong user name or password.
    #[error("{message}")]
    Unauthorized { message: String },
    /// The invite was used already, has expired, or never existed: ask the
    /// box's owner for a new invite.
    #[error("{message}")]
    InviteUsed { message: String },
    /// The user or group name is taken: choose another.
    #[error("{message}")]
    NameTaken { message: String },
    /// The password is too short or too long.
    #[error("{message}")]
    WeakPassword { message: String },
    /// The box presented a key other than the one pinned at pairing: it is
    /// not the box this device paired with (another machine on this
    /// network, possibly an attacker), or the box was reset. Do not retry on
    /// this network; if the box was really reset, pair again with a new link.
    #[error("{message}")]
    PinMismatch { message: String },
    /// The box cannot be reached right now (no network, box down, timeout,
    /// connection lost): transient, retry later.
    #[error("{message}")]
    Unreachable { message: String },
    /// Too many attempts or messages: retry after `retry_after_ms`.
    #[error("{message}")]
    RateLimited { message: String, retry_after_ms: Option<u64> },
    /// A text, list, request or file is larger than the box accepts.
    #[error("{message}")]
    TooLarge { message: String },
    /// The box refuses the upload: the user's media quota is used up, or
    /// its disk is kept for messages. Messages without attachments still go.
    #[error("{message}")]
    QuotaExceeded { message: String },
    /// The box's disk is full: nothing was stored; retry once its owner has
    /// freed space.
    #[error("{message}")]
    StorageFull { message: String },
    /// The user, group, conversation, device or attachment does not exist,
    /// or is not visible to this user.
    #[error("{message}")]
    NotFound { message: String },
    /// The user may not do that (not a member of the conversation, not an
    /// admin of the group).
    #[error("{message}")]
    NotAllowed { message: String },
    /// This device's token was revoked (from another device) or logged out:
    /// pair or log in again.
    #[error("{message}")]
    Revoked { message: String },
    /// A local file (the profile, an upload, a download's destination)
    /// could not be read or written.
    #[error("{message}")]
    Io { message: String },
    /// The box's owner turned push off: the device is not woken while it
    /// has no session; ask the owner, or keep the app in the foreground.
    #[error("{message}")]
    PushDisabled { message: String },
    /// The client is suspended (`suspend()`): call `resume()` first.
    #[error("{message}")]
    Suspended { message: String },
    /// The client was closed or logged out: open a new one.
    #[error("{message}")]
    Closed { message: String },
    /// The box answered something this SDK does not understand, or failed
    /// in a way it has no better name for: update the app or the box.
    #[error("{message}")]
    Protocol { message: String },
}

impl ImboxError {
    /// Whether retrying later may succeed without the user doing anything.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, ImboxError::Unreachable { .. } | ImboxError::RateLimited { .. })
    }
}

impl From<ClientError> for ImboxError {
    fn from(err: ClientError) -> ImboxError {
        let message = err.to_string();
        match err {
            ClientError::NoProfile { dir } => ImboxError::NotPaired {
                message: format!(
                    "no profile in {}: pair this device with a pairing link (ImboxClient.pair) or log in \
                     (ImboxClient.login) first",
                    dir.display()
                ),
            },
            ClientError::InvalidPairingUri(_) | ClientError::NoInvite => {
                ImboxError::InvalidPairingUri { message }
            }
            ClientError::InvalidUrl { .. }
            | ClientError::InvalidPin { .. }
            | ClientError::NoPin { .. }
            | ClientError::InvalidAttachment(_)
            | ClientError::InvalidPush(_)
            | ClientError::RebindUnsupported { .. } => ImboxError::InvalidArgument { message },
            ClientError::KeyMismatch { .. } => ImboxError::PinMismatch { message },
            ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::ConnectionClosed { .. }
            | ClientError::Rebind { .. } => ImboxError::Unreachable { message },
            ClientError::Tls { .. } | ClientError::Handshake { .. } | ClientError::Protocol { .. } => {
                ImboxError::Protocol { message }
            }
            ClientError::FrameTooLarge { .. } | ClientError::AttachmentTooLarge { .. } => {
                ImboxError::TooLarge { message }
            }
            ClientError::QuotaExceeded { .. } | ClientError::MediaSpaceFull { .. } => {
                ImboxError::QuotaExceeded { message }
            }
            ClientError::AttachmentNotFound { .. } => ImboxError::NotFound { message },
            ClientError::Revoked { .. } => ImboxError::Revoked {
                message: "this device's token was revoked or logged out: pair or log in again to get a new \
                          one"
                .to_owned(),
            },
            ClientError::File { .. }
            | ClientError::ProfileIo { .. }
            | ClientError::ProfileCorrupt { .. }
            | ClientError::AttachmentCorrupt { .. }
            | ClientError::FileChanged { .. } => ImboxError::Io { message },
            ClientError::AttachmentsNeedTls { .. } => ImboxError::InvalidArgument { message },
            ClientError::Http { status: 429, .. } => {
                ImboxError::RateLimited { message, retry_after_ms: None }
            }
            ClientError::Http { status: 500 | 502 | 503 | 504, .. } => ImboxError::Unreachable { message },
            ClientError::Http { status: 404, .. } => ImboxError::NotFound { message },
            ClientError::Http { status: 413, .. } => ImboxError::TooLarge { message },
            ClientError::Http { status: 401 | 403, .. } => ImboxError::Unauthorized { message },
            ClientError::Http { .. } => ImboxError::Protocol { message },
            ClientError::Server { error, .. } => from_code(error.code, message, error.retry_after_ms),
            ClientError::NoAddressWorked { errors } => from_attempts(errors, message),
            // Added by later versions of the library: the message still
            // says what happened.
            #[allow(unreachable_patterns)]
            _ => ImboxError::Protocol { message },
        }
    }
}

/// The error for a refusal by the box, by its code.
fn from_code(code: ErrorCode, message: String, retry_after_ms: Option<u64>) -> ImboxError {
    match code {
        ErrorCode::BadCredentials => ImboxError::Unauthorized { message },
        ErrorCode::RateLimited => ImboxError::RateLimited { message, retry_after_ms },
        ErrorCode::InvalidInvite => ImboxError::InviteUsed { message },
        ErrorCode::NameTaken => ImboxError::NameTaken { message },
        ErrorCode::InvalidName | ErrorCode::InvalidArgument | ErrorCode::IdConflict => {
            ImboxError::InvalidArgument { message }
        }
        ErrorCode::WeakPassword => ImboxError::WeakPassword { message },
        ErrorCode::NotFound => ImboxError::NotFound { message },
        ErrorCode::NotMember | ErrorCode::NotAdmin => ImboxError::NotAllowed { message },
        ErrorCode::TooLarge | ErrorCode::FrameTooLarge => ImboxError::TooLarge { message },
        ErrorCode::QuotaExceeded | ErrorCode::MediaSpaceFull => ImboxError::QuotaExceeded { message },
        ErrorCode::StorageFull => ImboxError::StorageFull { message },
        ErrorCode::PushDisabled => ImboxError::PushDisabled { message },
        ErrorCode::Unavailable | ErrorCode::Internal => ImboxError::Unreachable { message },
        _ => ImboxError::Protocol { message },
    }
}

/// Pairing tried each of the box's addresses: the error that tells the most
/// (a wrong key or a refused invite beats an address that did not answer).
fn from_attempts(errors: Vec<ClientError>, message: String) -> ImboxError {
    errors
        .into_iter()
        .map(ImboxError::from)
        .find(|err| !err.is_transient())
        .unwrap_or(ImboxError::Unreachable { message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imbox_client::protocol::{ErrorBody, Fingerprint};

    fn server(code: ErrorCode) -> ClientError {
        let mut error = ErrorBody::new(code, "refused");
        error.retry_after_ms = Some(1500);
        ClientError::Server { request: "send", error }
    }

    #[test]
    fn server_codes_map_to_what_an_app_can_act_on() {
        assert!(matches!(server(ErrorCode::BadCredentials).into(), ImboxError::Unauthorized { .. }));
        assert!(matches!(server(ErrorCode::InvalidInvite).into(), ImboxError::InviteUsed { .. }));
        assert!(matches!(server(ErrorCode::NotAdmin).into(), ImboxError::NotAllowed { .. }));
        match ImboxError::from(server(ErrorCode::RateLimited)) {
            ImboxError::RateLimited { retry_after_ms, .. } => assert_eq!(retry_after_ms, Some(1500)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_wrong_key_is_a_pin_mismatch_even_among_silent_addresses() {
        let wrong = ClientError::KeyMismatch {
            url: "quic://192.0.2.1:443".into(),
            expected: Fingerprint::of_spki(b"paired"),
            seen: Fingerprint::of_spki(b"other"),
        };
        let silent = ClientError::Connect { url: "quic://192.0.2.2:443".into(), reason: "no answer".into() };
        let err = ImboxError::from(ClientError::NoAddressWorked { errors: vec![silent, wrong] });
        assert!(
            matches!(&err, ImboxError::PinMismatch { message } if message.contains("pair again")),
            "{err:?}"
        );
        let silent = ClientError::Connect { url: "quic://192.0.2.2:443".into(), reason: "no answer".into() };
        let err = ImboxError::from(ClientError::NoAddressWorked { errors: vec![silent] });
        assert!(err.is_transient(), "{err:?}");
    }

    #[test]
    fn a_revoked_device_is_told_to_pair_again_not_to_run_the_cli() {
        let err = ImboxError::from(ClientError::Revoked {
            server: "quic://box:443".into(),
            dir: "/p".into(),
            user: "alice".into(),
            pin: None,
        });
        let text = err.to_string();
        assert!(text.contains("pair or log in again") && !text.contains("imbox --server"), "{text}");
    }
}
