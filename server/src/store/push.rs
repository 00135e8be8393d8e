//! What the database knows of push: one registration per device, in
//! [`PUSH`], deleted with the device (`apply::revoke`). The sending is
//! `crate::push`; it keeps a copy of these rows in memory, loaded at start
//! ([`registrations`]) and kept current by [`super::Notice::Push`] and the
//! revocation notices.

use redb::{Database, ReadableDatabase, ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::apply::{Outcome, Tables};
use super::records::*;
use super::{Notice, StoreError};

/// A device's push registration as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRecord {
    pub user: u64,
    /// `webpush` or `unifiedpush` (`imbox_protocol::PushKind::as_str`).
    pub kind: String,
    pub endpoint: String,
    /// The subscription's uncompressed P-256 public key (65 bytes).
    pub p256dh: Vec<u8>,
    pub auth: [u8; 16],
    pub created_at: u64,
}

/// One write about push registrations, queued as [`super::WriteOp::Push`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushOp {
    /// Sets (or replaces) a device's registration. The session checked
    /// the fields.
    Register { user: u64, device: u64, kind: String, endpoint: String, p256dh: Vec<u8>, auth: [u8; 16] },
    /// Removes a device's registration, if it has one.
    Unregister { user: u64, device: u64 },
    /// The push service answered 404 or 410 for `endpoint`: the
    /// subscription is gone. Removes the registration only if it still
    /// names that endpoint (the device may have registered anew meanwhile).
    Gone { device: u64, endpoint: String },
}

/// The push table, opened with the others for each batch.
pub(super) fn open(txn: &WriteTransaction) -> Result<Table<'_, u64, &'static [u8]>, StoreError> {
    Ok(txn.open_table(PUSH)?)
}

pub(super) fn apply(
    t: &mut Tables<'_>,
    op: &PushOp,
    notices: &mut Vec<Notice>,
) -> Result<Outcome, StoreError> {
    match op {
        PushOp::Register { user, device, kind, endpoint, p256dh, auth } => {
            if !t.device(*device)?.is_some_and(|d| d.user == *user && !d.revoked) {
                return Err(StoreError::NoSuchDevice(*device));
            }
            let record = PushRecord {
                user: *user,
                kind: kind.clone(),
                endpoint: endpoint.clone(),
                p256dh: p256dh.clone(),
                auth: *auth,
                created_at: t.now,
            };
            t.push.insert(*device, encode(&record).as_slice())?;
            notices.push(Notice::Push { user: *user, device: *device, registration: Some(record.into()) });
        }
        PushOp::Unregister { user, device } => {
            if t.push.remove(*device)?.is_some() {
                notices.push(Notice::Push { user: *user, device: *device, registration: None });
            }
        }
        PushOp::Gone { device, endpoint } => {
            let current: Option<PushRecord> =
                t.push.get(*device)?.map(|v| decode("push", v.value())).transpose()?;
            if let Some(record) = current.filter(|r| &r.endpoint == endpoint) {
                t.push.remove(*device)?;
                notices.push(Notice::Push { user: record.user, device: *device, registration: None });
            }
        }
    }
    Ok(Outcome::Done)
}

/// Every registration, by device: what the sender loads at start.
pub(super) fn registrations(db: &Database) -> Result<Vec<(u64, PushRecord)>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(PUSH)?;
    let mut out = Vec::new();
    for row in table.iter()? {
        let (device, value) = row?;
        out.push((device.value(), decode("push", value.value())?));
    }
    Ok(out)
}
