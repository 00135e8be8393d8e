//! The errors of the web API: each becomes an HTTP status and a JSON body
//! `{"error": {"code", "message", ...}}` whose message says what went wrong
//! and what to do.

use std::time::Duration;

use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::StatusCode;
use serde_json::json;

use super::reply::{json, Reply};
use super::strength::Strength;
use crate::store::StoreError;

/// Why an API request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON this endpoint expects, or a value in it is
    /// out of bounds; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than [`super::reply::MAX_BODY`].
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// No valid web session: log in (again).
    #[error("you are not logged in (or your session expired): log in again")]
    NotLoggedIn,
    /// The session's user is not an administrator of the box.
    #[error("only the box's administrators may do this")]
    NotAdmin,
    /// A state change without the session's CSRF token in `X-CSRF-Token`.
    #[error("missing or wrong X-CSRF-Token header: reload the page and try again")]
    Csrf,
    /// A state change from another site (its `Origin` is not this box).
    #[error("this request came from another site and was refused")]
    BadOrigin,
    /// Wrong user name or password.
    #[error("wrong user name or password")]
    BadCredentials,
    /// The account is disabled.
    #[error("this account is disabled: ask the box's administrator to enable it")]
    Disabled,
    /// Too many failed attempts: wait this long.
    #[error("too many failed attempts: wait {} s and try again", .0.as_secs().max(1))]
    RateLimited(Duration),
    /// The claim code is not this box's.
    #[error("that is not this box's claim code: copy it again from imbox-claim.txt or the console")]
    WrongClaimCode,
    /// The box already has an owner: setup is over.
    #[error("this box has already been claimed: log in at /login")]
    Claimed,
    /// The password is too easy to guess; the feedback says how to improve it.
    #[error("this password is too easy to guess: {}", .0.summary())]
    WeakPassword(Strength),
    /// A user name that breaks the naming rules (the name is given).
    #[error(
        "{0:?} is not a valid user name: use 1 to 32 of a-z, 0-9, '_', '-', '.', starting with a letter or digit"
    )]
    InvalidName(String),
    /// The user name is taken.
    #[error("the name {0:?} is already taken: choose another")]
    NameTaken(String),
    /// No such page, user, device or invite.
    #[error("{0}")]
    NotFound(String),
    /// The method is not allowed on this path.
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    /// The request is valid but refused by a rule of the box, which the
    /// message names (e.g. the owner cannot be removed).
    #[error("{0}")]
    Refused(String),
    /// The caller is logged in but a setting of the box does not allow this;
    /// the message names it.
    #[error("{0}")]
    Forbidden(String),
    /// The box is overloaded or shutting down: retry shortly.
    #[error("the box is busy or shutting down: retry in a moment")]
    Unavailable,
    /// The box is moving its data to another disk and takes no changes.
    #[error("the box is moving its data to another disk and takes no changes until it is done: try again in a few minutes")]
    Moving,
    /// The data disk is full: nothing was changed until space is freed.
    #[error(
        "the box's data disk is full, so nothing was changed: free space on it (the status page \
         shows how much is left); changes are taken again by themselves"
    )]
    StorageFull,
    /// The box failed and changed nothing.
    #[error("the box failed and changed nothing: {0}; retry later")]
    Internal(String),
    /// A certificate chain and key refused, or not stored; the code says
    /// which check failed ([`crate::own_cert::OwnCertError::code`]).
    #[error(transparent)]
    Certificate(#[from] crate::own_cert::OwnCertError),
}

impl ApiError {
    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::TooLarge(_) => "too_large",
            ApiError::NotLoggedIn => "not_logged_in",
            ApiError::NotAdmin => "not_admin",
            ApiError::Csrf => "csrf",
            ApiError::BadOrigin => "bad_origin",
            ApiError::BadCredentials => "bad_credentials",
            ApiError::Disabled => "account_disabled",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::WrongClaimCode => "wrong_claim_code",
            ApiError::Claimed => "already_claimed",
            ApiError::WeakPassword(_) => "weak_password",
            ApiError::InvalidName(_) => "invalid_name",
            ApiError::NameTaken(_) => "name_taken",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Refused(_) => "refused",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Unavailable => "unavailable",
            ApiError::Moving => "moving",
            ApiError::StorageFull => "storage_full",
            ApiError::Internal(_) => "internal",
            ApiError::Certificate(e) => e.code(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_)
            | ApiError::WrongClaimCode
            | ApiError::WeakPassword(_)
            | ApiError::InvalidName(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotLoggedIn | ApiError::BadCredentials => StatusCode::UNAUTHORIZED,
            ApiError::NotAdmin
            | ApiError::Csrf
            | ApiError::BadOrigin
            | ApiError::Disabled
            | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Claimed => StatusCode::GONE,
            ApiError::NameTaken(_) | ApiError::Refused(_) => StatusCode::CONFLICT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable | ApiError::Moving => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Certificate(crate::own_cert::OwnCertError::Write(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::Certificate(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The JSON reply.
    pub fn reply(&self) -> Reply {
        let mut error = json!({ "code": self.code(), "message": self.to_string() });
        match self {
            ApiError::RateLimited(wait) => {
                error["retry_after_ms"] = json!(wait.as_millis().max(1) as u64);
            }
            ApiError::WeakPassword(strength) => error["strength"] = json!(strength),
            // The name, so that pages can say the message in their language.
            ApiError::InvalidName(name) | ApiError::NameTaken(name) => error["name"] = json!(name),
            ApiError::Internal(reason) => tracing::error!(%reason, "web request failed"),
            _ => {}
        }
        let mut reply = json(self.status(), &json!({ "error": error }));
        if let ApiError::RateLimited(wait) = self {
            if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                reply.headers_mut().insert(RETRY_AFTER, value);
            }
        }
        reply
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Overloaded | StoreError::Closed => ApiError::Unavailable,
            StoreError::Paused => ApiError::Moving,
            StoreError::StorageFull => ApiError::StorageFull,
            StoreError::NoSuchUser(name) => ApiError::NotFound(format!("there is no user named {name:?}")),
            StoreError::NoSuchDevice(_) | StoreError::NoSuchInvite | StoreError::NoSuchConversation(_) => {
                ApiError::NotFound(e.to_string())
            }
            StoreError::NameTaken(name) => ApiError::NameTaken(name),
            StoreError::AlreadyClaimed => ApiError::Claimed,
            StoreError::WrongClaimCode => ApiError::WrongClaimCode,
            StoreError::Invalid(reason) => ApiError::BadRequest(reason),
            other
                if other.is_storage()
                    || matches!(
                        other,
                        StoreError::Locked | StoreError::NewerSchema { .. } | StoreError::Migrate(_)
                    ) =>
            {
                ApiError::Internal(other.to_string())
            }
            other => ApiError::Refused(other.to_string()),
        }
    }
}

impl From<crate::session::password::PasswordError> for ApiError {
    fn from(e: crate::session::password::PasswordError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<crate::disks::DiskError> for ApiError {
    fn from(e: crate::disks::DiskError) -> Self {
        use crate::disks::DiskError;
        match e {
            DiskError::UnknownDisk(_) => ApiError::NotFound(e.to_string()),
            DiskError::NotAppliance(_)
            | DiskError::InUse(_)
            | DiskError::ConsentRequired { .. }
            | DiskError::Unnamed(_)
            | DiskError::Busy(_) => ApiError::Refused(e.to_string()),
            DiskError::Pause(StoreError::Paused) => ApiError::Moving,
            DiskError::Unreadable { .. } | DiskError::Pause(_) | DiskError::Request { .. } => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_507_storage_full_and_says_what_to_do() {
        let error = ApiError::from(StoreError::StorageFull);
        assert_eq!((error.status(), error.code()), (StatusCode::INSUFFICIENT_STORAGE, "storage_full"));
        assert!(error.to_string().contains("free space"));
    }
}
