//! The typed error a failed request gets.

use serde::{Deserialize, Serialize};

/// Why a request failed. Clients branch on the code; the message is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame could not be decoded; the server closes the connection.
    BadFrame,
    /// The frame is larger than the negotiated limit; the server closes the
    /// connection.
    FrameTooLarge,
    /// A well-formed frame with a request type this server does not know.
    UnknownRequest,
    /// A known request with missing or mistyped fields, or values outside
    /// their allowed range.
    InvalidArgument,
    /// No protocol version offered in `hello` is spoken by this server.
    UnsupportedVersion,
    /// `hello` has not been sent yet, or was sent twice.
    HelloRequired,
    /// The request needs an authenticated session.
    NotAuthenticated,
    /// The session is already authenticated.
    AlreadyAuthenticated,
    /// Wrong user name or password, or an unknown or revoked token.
    BadCredentials,
    /// Too many attempts or messages; retry after `retry_after_ms`.
    RateLimited,
    /// The invite token is unknown, used up or expired.
    InvalidInvite,
    /// The user name or group name is already in use.
    NameTaken,
    /// A user name, group name, message id or device name breaks the rules
    /// in docs/PROTOCOL.md ("Names and limits"); the message says which.
    InvalidName,
    /// The password is too short or too long.
    WeakPassword,
    /// The user, group, conversation or device does not exist (or is not
    /// visible to the caller).
    NotFound,
    /// The caller is not a member of that conversation.
    NotMember,
    /// The caller is not an admin of that group.
    NotAdmin,
    /// The message text or a list is larger than the limit.
    TooLarge,
    /// A message id was reused with different content.
    IdConflict,
    /// The request is not allowed in 0-RTT early data; resend it after the
    /// handshake completes.
    NotInEarlyData,
    /// The server is shutting down or overloaded; retry later.
    Unavailable,
    /// The server's disk is full: nothing was stored. Reads and delivery of
    /// what is stored go on; writes resume once its owner frees space.
    StorageFull,
    /// The upload would take the user past their media quota: delete old
    /// attachments or ask the box's owner for a larger quota.
    QuotaExceeded,
    /// The box keeps the rest of its disk for messages: media uploads are
    /// refused until its owner frees space or shortens media retention.
    /// Messages still go through.
    MediaSpaceFull,
    /// Push is turned off on this box (`[push] enabled = false`): the
    /// device is not woken while it has no session. Ask the box's owner.
    PushDisabled,
    /// The server failed; nothing was changed. Retry later.
    Internal,
}

/// The error half of a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// For `rate_limited`, `unavailable` and `storage_full`: when a retry
    /// may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorBody {
    /// An error with a code and a message for people.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody { code, message: message.into(), retry_after_ms: None }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.message, self.code)
    }
}

impl std::error::Error for ErrorBody {}
