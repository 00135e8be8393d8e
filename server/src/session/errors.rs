//! How store failures read to a client.

use imbox_protocol::{ErrorBody, ErrorCode};

use crate::store::StoreError;

/// `unavailable`, with the time after which a retry may succeed.
fn retry_after(message: &str, ms: u64) -> ErrorBody {
    ErrorBody { retry_after_ms: Some(ms), ..ErrorBody::new(ErrorCode::Unavailable, message) }
}

/// The typed error a client gets for a store failure.
pub fn from_store(err: &StoreError) -> ErrorBody {
    let (code, message) = match err {
        StoreError::Overloaded => return retry_after("the server is busy; retry shortly", 200),
        StoreError::Paused => {
            return retry_after(
                "the box is moving its data to another disk and takes no changes until it is done \
                 (a few minutes); retry then",
                5000,
            )
        }
        StoreError::StorageFull => {
            return ErrorBody {
                retry_after_ms: Some(30_000),
                ..ErrorBody::new(
                    ErrorCode::StorageFull,
                    "the box's disk is full, so this was not stored; keep it and retry later \
                     (the box's owner must free space on it; reading goes on)",
                )
            }
        }
        StoreError::Closed => {
            (ErrorCode::Unavailable, "the server is shutting down; reconnect shortly".into())
        }
        // Sessions never compact; should it reach one, it is a passing state.
        StoreError::CompactionBusy(_) => return retry_after("the server is busy; retry shortly", 1000),
        StoreError::Locked
        | StoreError::Storage(_)
        | StoreError::Corrupt { .. }
        | StoreError::Log(_)
        | StoreError::NewerSchema { .. }
        | StoreError::Migrate(_)
        | StoreError::BatchFailed(_) => {
            tracing::error!(error = %err, "store failure");
            (ErrorCode::Internal, "the server could not store this and changed nothing; retry later".into())
        }
        StoreError::NoSuchUser(_)
        | StoreError::NoSuchConversation(_)
        | StoreError::NoSuchDevice(_)
        | StoreError::NoSuchInvite
        | StoreError::NoSuchAttachment(_) => (ErrorCode::NotFound, err.to_string()),
        StoreError::NotMember(_) => (ErrorCode::NotMember, err.to_string()),
        StoreError::NotAdmin(_) => (ErrorCode::NotAdmin, err.to_string()),
        StoreError::NameTaken(_) => (ErrorCode::NameTaken, err.to_string()),
        StoreError::InvalidInvite => (ErrorCode::InvalidInvite, err.to_string()),
        StoreError::IdConflict(_) => (ErrorCode::IdConflict, err.to_string()),
        StoreError::TooManyMembers(_) => (ErrorCode::TooLarge, err.to_string()),
        StoreError::AlreadyMember { .. }
        | StoreError::Invalid(_)
        | StoreError::AlreadyClaimed
        | StoreError::WrongClaimCode => (ErrorCode::InvalidArgument, err.to_string()),
    };
    ErrorBody::new(code, message)
}
