//! Box administration from the shell: the operations behind
//! `imboxd user …` and `imboxd invite …`, carried out the same way whether
//! they arrive through the running daemon's control socket or run against a
//! store opened directly while the daemon is stopped.

use serde::{Deserialize, Serialize};

use crate::pairing::PairingTemplate;
use crate::session::password::{PasswordError, Passwords};
use crate::store::{conversation_ref, now_ms, Store, StoreError, UserSummary};

/// An administrative request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum AdminRequest {
    /// Creates an account.
    UserAdd { name: String, password: String, admin: bool },
    /// Lists accounts.
    UserList,
    /// Removes an account.
    UserRemove { name: String },
    /// Creates an invite; with `uri`, also its pairing URI.
    InviteCreate {
        uses: u32,
        expires_in_hours: Option<u64>,
        #[serde(default)]
        uri: bool,
    },
    /// Sets a conversation's retention (`#group` or an id): days, 0 for
    /// forever, or `None` for the box's `storage.retention_days`.
    Retention { conversation: String, days: Option<u32> },
}

/// The answer to an [`AdminRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AdminReply {
    UserAdded { id: u64 },
    Users { users: Vec<UserSummary> },
    UserRemoved,
    Invite { token: String, expires_at: Option<u64>, uri: Option<String> },
    Retention { conversation: u64, days: Option<u32> },
}

/// Why an administrative request failed.
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum AdminError {
    /// The request was refused, with the reason a person should read.
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error("the store failed: {0}")]
    Store(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        if e.is_storage() {
            AdminError::Store(e.to_string())
        } else {
            AdminError::Refused(e.to_string())
        }
    }
}

impl From<PasswordError> for AdminError {
    fn from(e: PasswordError) -> Self {
        AdminError::Store(e.to_string())
    }
}

/// What administration works on: the store, and what pairing URIs say.
#[derive(Debug, Clone)]
pub struct AdminContext {
    pub store: Store,
    pub pairing: PairingTemplate,
    /// The daemon's password hashing threads.
    pub passwords: Passwords,
}

/// Carries out one request.
pub async fn execute(ctx: &AdminContext, request: AdminRequest) -> Result<AdminReply, AdminError> {
    let store = &ctx.store;
    match request {
        AdminRequest::UserAdd { name, password, admin } => {
            if !imbox_protocol::names::valid_username(&name) {
                return Err(AdminError::Refused(format!(
                    "{name:?} is not a valid user name: use 1-32 of a-z, 0-9, '_', '-', '.', starting with a letter or digit"
                )));
            }
            if !imbox_protocol::names::valid_password(&password) {
                return Err(AdminError::Refused(format!(
                    "the password is too short: use at least {} characters",
                    imbox_protocol::names::MIN_PASSWORD
                )));
            }
            let hash = ctx.passwords.hash(password).await?;
            let id = store.create_user(&name, hash, admin).await?;
            Ok(AdminReply::UserAdded { id })
        }
        AdminRequest::UserList => Ok(AdminReply::Users { users: store.users()? }),
        AdminRequest::UserRemove { name } => {
            store.remove_user(&name).await?;
            Ok(AdminReply::UserRemoved)
        }
        AdminRequest::InviteCreate { uses, expires_in_hours, uri } => {
            if uri && ctx.pairing.quic_port.is_none() && ctx.pairing.wss_port.is_none() {
                return Err(AdminError::Refused(
                    "neither QUIC nor HTTPS is listening, so a pairing link would have no port: \
                     set quic.listen or https.listen"
                        .into(),
                ));
            }
            let expires_at = expires_in_hours.map(|h| now_ms().saturating_add(h.saturating_mul(3_600_000)));
            let token = store.create_invite(None, uses.max(1), expires_at).await?;
            let uri = uri.then(|| ctx.pairing.uri(Some(token.clone())).to_string());
            Ok(AdminReply::Invite { token, expires_at, uri })
        }
        AdminRequest::Retention { conversation, days } => {
            let target = conversation_ref(&conversation).ok_or_else(|| {
                AdminError::Refused(format!(
                    "{conversation:?} names no conversation: give a group as #name or a conversation's id"
                ))
            })?;
            let id = store.set_retention(target, days).await?;
            Ok(AdminReply::Retention { conversation: id, days })
        }
    }
}
