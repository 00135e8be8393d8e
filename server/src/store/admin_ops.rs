//! Writes and reads of box administration from the web pages: the claim,
//! the box settings, disabling users, resetting passwords, and listing or
//! revoking invites. Kept apart from `apply.rs` and `read.rs`, which serve
//! the messaging protocol; these writes still go through the same group
//! commit, so they are ordered with every other write.

use imbox_protocol::Target;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::Serialize;

use super::apply::{create_user, get_record, Outcome, Tables, WriteOp};
use super::records::*;
use super::{now_ms, Notice, Store, StoreError};

/// A write of box administration, queued as [`WriteOp::Admin`].
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub enum AdminOp {
    /// Records the hash of a new claim code; refused once the box is claimed.
    SetClaimCode { hash: [u8; 32] },
    /// Claims the box: checks the code, creates the owner (an
    /// administrator) and voids the code, all in one write.
    Claim { code_hash: [u8; 32], owner: String, password_hash: String },
    /// Changes box settings; `None` leaves a setting as it is.
    UpdateSettings { name: Option<String>, members_may_invite: Option<bool> },
    /// Disables or enables a user. Disabling ends the user's sessions.
    SetDisabled { name: String, disabled: bool },
    /// Replaces a user's password. Devices stay logged in.
    SetPassword { name: String, password_hash: String },
    /// Deletes an invite that is not used up yet.
    RevokeInvite { token_hash: [u8; 32] },
    /// Sets how long a conversation keeps its messages: `Some(days)` (0:
    /// forever, whatever the box's setting), or `None` for the box's
    /// `storage.retention_days`. Pruning deletes what is older.
    SetRetention { conversation: Target, days: Option<u32> },
    /// Sets how long attachments are kept after they were last sent:
    /// `Some(days)` (0: forever), or `None` for the configuration's
    /// `media.retention_days`.
    SetMediaRetention { days: Option<u32> },
}

/// The longest retention a conversation can be given, in days (a hundred
/// years: longer is "forever", which is 0).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// An account as the web pages check it on every request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountState {
    pub id: u64,
    pub name: String,
    pub admin: bool,
    pub disabled: bool,
    pub created_at: u64,
}

/// An invite as the administrator sees it: never its token, which only its
/// creator saw once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InviteSummary {
    /// The SHA-256 of the token, in hexadecimal: names the invite for
    /// revocation without revealing it.
    pub id: String,
    pub created_by: Option<String>,
    pub created_at: u64,
    pub expires_at: Option<u64>,
    pub uses_left: u32,
    pub expired: bool,
}

/// A conversation as an administrator names it: `#group`, or its id
/// (`42` or `=42`). Direct conversations have no name an administrator
/// could give, only their id.
pub fn conversation_ref(text: &str) -> Option<Target> {
    if let Some(name) = text.strip_prefix('#') {
        return imbox_protocol::names::valid_group_name(name).then(|| Target::Group(name.to_owned()));
    }
    text.strip_prefix('=').unwrap_or(text).parse().ok().map(Target::Id)
}

/// Box names: what `box_name` in the configuration allows.
pub fn valid_box_name(name: &str) -> bool {
    !name.trim().is_empty() && name.chars().count() <= 64 && !name.chars().any(char::is_control)
}

fn box_record(table: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<BoxRecord, StoreError> {
    Ok(table.get(BOX_KEY)?.map(|v| decode("settings", v.value())).transpose()?.unwrap_or_default())
}

fn put_box(t: &mut Tables<'_>, record: &BoxRecord) -> Result<(), StoreError> {
    t.settings.insert(BOX_KEY, encode(record).as_slice())?;
    Ok(())
}

/// A live user's id and record, by name.
fn user_by_name(t: &Tables<'_>, name: &str) -> Result<(u64, UserRecord), StoreError> {
    let id = t.user_id(name)?;
    let record = t.user(id)?.ok_or_else(|| StoreError::NoSuchUser(name.to_owned()))?;
    Ok((id, record))
}

/// Applies one administrative write (see `apply::apply`: checks first, then
/// writes, so a refused write leaves nothing behind).
pub fn apply(t: &mut Tables<'_>, op: &AdminOp, notices: &mut Vec<Notice>) -> Result<Outcome, StoreError> {
    match op {
        AdminOp::SetClaimCode { hash } => {
            let mut record = box_record(&t.settings)?;
            if record.claimed_at.is_some() {
                return Err(StoreError::AlreadyClaimed);
            }
            record.claim_hash = Some(*hash);
            put_box(t, &record)?;
            Ok(Outcome::Done)
        }
        AdminOp::Claim { code_hash, owner, password_hash } => {
            let mut record = box_record(&t.settings)?;
            if record.claimed_at.is_some() {
                return Err(StoreError::AlreadyClaimed);
            }
            if record.claim_hash != Some(*code_hash) {
                return Err(StoreError::WrongClaimCode);
            }
            let id = create_user(t, owner, password_hash, true, None)?.user()?;
            record.claimed_at = Some(t.now);
            record.owner = Some(id);
            record.claim_hash = None;
            put_box(t, &record)?;
            Ok(Outcome::User(id))
        }
        AdminOp::UpdateSettings { name, members_may_invite } => {
            if let Some(name) = name.as_deref().filter(|n| !valid_box_name(n)) {
                return Err(StoreError::Invalid(format!(
                    "{name:?} is not a valid box name: use 1 to 64 characters, not all spaces, without control characters"
                )));
            }
            let mut record = box_record(&t.settings)?;
            if let Some(name) = name {
                record.name = Some(name.trim().to_owned());
            }
            if let Some(allowed) = members_may_invite {
                record.members_may_invite = *allowed;
            }
            put_box(t, &record)?;
            Ok(Outcome::Done)
        }
        AdminOp::SetMediaRetention { days } => {
            if days.is_some_and(|d| d > MAX_RETENTION_DAYS) {
                return Err(StoreError::Invalid(format!(
                    "a media retention is 0 (forever) to {MAX_RETENTION_DAYS} days"
                )));
            }
            let mut record = box_record(&t.settings)?;
            record.media_retention_days = *days;
            put_box(t, &record)?;
            Ok(Outcome::Done)
        }
        AdminOp::SetDisabled { name, disabled } => {
            let (id, mut record) = user_by_name(t, name)?;
            if record.disabled != *disabled {
                record.disabled = *disabled;
                t.users.insert(id, encode(&record).as_slice())?;
                if *disabled {
                    // The router ends every session of a removed user; a
                    // disabled one is treated the same until enabled again.
                    notices.push(Notice::UserRemoved { user: id });
                }
            }
            Ok(Outcome::Done)
        }
        AdminOp::SetPassword { name, password_hash } => {
            let (id, mut record) = user_by_name(t, name)?;
            record.password_hash.clone_from(password_hash);
            t.users.insert(id, encode(&record).as_slice())?;
            Ok(Outcome::Done)
        }
        AdminOp::RevokeInvite { token_hash } => {
            if t.invites.remove(token_hash.as_slice())?.is_none() {
                return Err(StoreError::NoSuchInvite);
            }
            Ok(Outcome::Done)
        }
        AdminOp::SetRetention { conversation, days } => {
            if let Some(days) = days.filter(|&d| d > MAX_RETENTION_DAYS) {
                return Err(StoreError::Invalid(format!(
                    "a retention of {days} days is too long: give 1 to {MAX_RETENTION_DAYS} days, \
                     0 to keep messages forever, or none for the box's setting"
                )));
            }
            let id = match conversation {
                Target::Id(id) => *id,
                Target::Group(name) => t
                    .group_names
                    .get(name.as_str())?
                    .map(|v| v.value())
                    .ok_or_else(|| StoreError::NoSuchConversation(conversation.to_string()))?,
                Target::User(_) => {
                    return Err(StoreError::Invalid(format!(
                        "{conversation} names a person: give a group (#name) or a conversation id"
                    )))
                }
            };
            let mut record = t
                .conversation(id)?
                .ok_or_else(|| StoreError::NoSuchConversation(conversation.to_string()))?;
            record.retention_days = *days;
            t.conversations.insert(id, encode(&record).as_slice())?;
            Ok(Outcome::Conversation(id))
        }
    }
}

fn account_of(id: u64, record: UserRecord) -> Option<AccountState> {
    (!record.removed).then_some(AccountState {
        id,
        name: record.name,
        admin: record.admin,
        disabled: record.disabled,
        created_at: record.created_at,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The id under which an invite is listed: the hexadecimal SHA-256 of its
/// token.
pub fn invite_id(token: &str) -> String {
    hex(&super::token_hash(token))
}

/// Parses an invite id (64 hexadecimal digits) back into the token hash.
pub fn parse_invite_id(id: &str) -> Option<[u8; 32]> {
    if id.len() != 64 || !id.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&id[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The most invites listed: an administrator who made more has other
/// problems, and the page must stay small.
const MAX_LISTED_INVITES: usize = 1000;

impl Store {
    async fn admin(&self, op: AdminOp) -> Result<Outcome, StoreError> {
        self.write(WriteOp::Admin(op)).await
    }

    /// The box record: claimed or not, owner, name, settings.
    pub fn box_settings(&self) -> Result<BoxRecord, StoreError> {
        let db = self.db();
        let txn = db.begin_read()?;
        box_record(&txn.open_table(SETTINGS)?)
    }

    /// Records the hash of a new claim code (see [`AdminOp::SetClaimCode`]).
    pub async fn set_claim_code(&self, hash: [u8; 32]) -> Result<(), StoreError> {
        self.admin(AdminOp::SetClaimCode { hash }).await.map(drop)
    }

    /// Claims the box for a new owner; returns the owner's user id.
    pub async fn claim(
        &self,
        code_hash: [u8; 32],
        owner: &str,
        password_hash: String,
    ) -> Result<u64, StoreError> {
        self.admin(AdminOp::Claim { code_hash, owner: owner.to_owned(), password_hash }).await?.user()
    }

    /// Changes the box name and whether members may invite.
    pub async fn update_settings(
        &self,
        name: Option<String>,
        members_may_invite: Option<bool>,
    ) -> Result<(), StoreError> {
        self.admin(AdminOp::UpdateSettings { name, members_may_invite }).await.map(drop)
    }

    /// Sets the media retention (`None`: the configuration's).
    pub async fn set_media_retention(&self, days: Option<u32>) -> Result<(), StoreError> {
        self.admin(AdminOp::SetMediaRetention { days }).await.map(drop)
    }

    /// Disables (ending its sessions) or enables a user.
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), StoreError> {
        self.admin(AdminOp::SetDisabled { name: name.to_owned(), disabled }).await.map(drop)
    }

    /// Replaces a user's password hash.
    pub async fn set_password(&self, name: &str, password_hash: String) -> Result<(), StoreError> {
        self.admin(AdminOp::SetPassword { name: name.to_owned(), password_hash }).await.map(drop)
    }

    /// Sets a conversation's retention (see [`AdminOp::SetRetention`]);
    /// returns the conversation's id.
    pub async fn set_retention(&self, conversation: Target, days: Option<u32>) -> Result<u64, StoreError> {
        self.admin(AdminOp::SetRetention { conversation, days }).await?.conversation()
    }

    /// Deletes an invite by its id (see [`InviteSummary::id`]).
    pub async fn revoke_invite(&self, token_hash: [u8; 32]) -> Result<(), StoreError> {
        self.admin(AdminOp::RevokeInvite { token_hash }).await.map(drop)
    }

    /// A live (not removed) account by id.
    pub fn account(&self, id: u64) -> Result<Option<AccountState>, StoreError> {
        let db = self.db();
        let txn = db.begin_read()?;
        Ok(get_record::<UserRecord>(&txn.open_table(USERS)?, "users", id)?.and_then(|r| account_of(id, r)))
    }

    /// A live account by name.
    pub fn account_by_name(&self, name: &str) -> Result<Option<AccountState>, StoreError> {
        let db = self.db();
        let txn = db.begin_read()?;
        let Some(id) = txn.open_table(USER_NAMES)?.get(name)?.map(|v| v.value()) else {
            return Ok(None);
        };
        Ok(get_record::<UserRecord>(&txn.open_table(USERS)?, "users", id)?.and_then(|r| account_of(id, r)))
    }

    /// Whether a device may still hold a session: not revoked, and its user
    /// neither removed nor disabled.
    pub fn device_active(&self, user: u64, device: u64) -> Result<bool, StoreError> {
        let db = self.db();
        let txn = db.begin_read()?;
        let Some(record) = get_record::<DeviceRecord>(&txn.open_table(DEVICES)?, "devices", device)? else {
            return Ok(false);
        };
        if record.revoked || record.user != user {
            return Ok(false);
        }
        let owner = get_record::<UserRecord>(&txn.open_table(USERS)?, "users", user)?;
        Ok(owner.is_some_and(|u| !u.removed && !u.disabled))
    }

    /// Invites that are not used up, newest first (at most 1000).
    pub fn invites(&self) -> Result<Vec<InviteSummary>, StoreError> {
        let db = self.db();
        let txn = db.begin_read()?;
        let users = txn.open_table(USERS)?;
        let now = now_ms();
        let mut out = Vec::new();
        for row in txn.open_table(INVITES)?.iter()? {
            let (key, value) = row?;
            let record: InviteRecord = decode("invites", value.value())?;
            let created_by = match record.created_by {
                Some(id) => get_record::<UserRecord>(&users, "users", id)?.map(|u| u.name),
                None => None,
            };
            out.push(InviteSummary {
                id: hex(key.value()),
                created_by,
                created_at: record.created_at,
                expires_at: record.expires_at,
                uses_left: record.uses_left,
                expired: record.expires_at.is_some_and(|at| at <= now),
            });
        }
        out.sort_by_key(|i| std::cmp::Reverse(i.created_at));
        out.truncate(MAX_LISTED_INVITES);
        Ok(out)
    }

    /// Live accounts and stored messages; both are kept by redb with each
    /// table, so this reads no rows.
    pub fn counts(&self) -> Result<(u64, u64), StoreError> {
        let db = self.db();
        let txn = db.begin_read()?;
        let users = txn.open_table(USER_NAMES)?.len()?;
        let messages = txn.open_table(MESSAGES)?.len()?;
        Ok((users, messages))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::{token_hash, NoListener, StoreOptions};
    use std::sync::Arc;

    fn open(dir: &std::path::Path) -> Store {
        Store::open(&dir.join("db.redb"), StoreOptions::default(), Arc::new(NoListener)).unwrap()
    }

    #[tokio::test]
    async fn a_claim_needs_the_code_works_once_and_keeps_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        assert!(store.box_settings().unwrap().claimed_at.is_none());
        let code = token_hash("CODE");
        store.set_claim_code(code).await.unwrap();
        let wrong = store.claim(token_hash("NOPE"), "olivia", "h".into()).await.unwrap_err();
        assert!(matches!(wrong, StoreError::WrongClaimCode));
        assert!(store.account_by_name("olivia").unwrap().is_none(), "a refused claim created nobody");
        let id = store.claim(code, "olivia", "h".into()).await.unwrap();
        let settings = store.box_settings().unwrap();
        assert_eq!((settings.owner, settings.claim_hash), (Some(id), None));
        assert!(store.account(id).unwrap().unwrap().admin);
        let again = store.claim(code, "mallory", "h".into()).await.unwrap_err();
        assert!(matches!(again, StoreError::AlreadyClaimed));
        assert!(matches!(store.set_claim_code(code).await.unwrap_err(), StoreError::AlreadyClaimed));
        store.shutdown().await;
        drop(store);
        let reopened = open(dir.path());
        assert_eq!(reopened.box_settings().unwrap().owner, Some(id), "the claim is durable");
    }

    #[tokio::test]
    async fn disabling_refuses_tokens_until_enabled_and_invites_can_be_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let user = store.create_user("bob", "h".into(), false).await.unwrap();
        let device = store.add_device(user, "phone").await.unwrap();
        store.set_disabled("bob", true).await.unwrap();
        assert!(store.authenticate(&device.token).unwrap().is_none());
        assert!(!store.device_active(user, device.auth.device).unwrap());
        assert!(store.credentials("bob").unwrap().unwrap().disabled);
        store.set_disabled("bob", false).await.unwrap();
        assert!(store.authenticate(&device.token).unwrap().is_some());
        assert!(store.device_active(user, device.auth.device).unwrap());

        let token = store.create_invite(Some(user), 2, None).await.unwrap();
        let listed = store.invites().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].created_by.as_deref(), Some("bob"));
        let id = parse_invite_id(&listed[0].id).unwrap();
        assert_eq!(id, token_hash(&token));
        store.revoke_invite(id).await.unwrap();
        assert!(!store.invite_usable(&token).unwrap());
        assert!(matches!(store.revoke_invite(id).await.unwrap_err(), StoreError::NoSuchInvite));
        assert_eq!(store.counts().unwrap(), (1, 0));
    }

    #[tokio::test]
    async fn settings_keep_what_is_not_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.update_settings(Some(" Kitchen ".into()), None).await.unwrap();
        store.update_settings(None, Some(true)).await.unwrap();
        let settings = store.box_settings().unwrap();
        assert_eq!(settings.name.as_deref(), Some("Kitchen"));
        assert!(settings.members_may_invite);
        assert!(store.update_settings(Some("  ".into()), None).await.is_err());
    }
}
