//! What the database knows of attachments: which contents are stored,
//! who uploaded them, which messages carry them, and how much each user
//! holds. The bytes are files under the data directory (`crate::media`);
//! a content's file exists before its [`BLOBS`] row, and its row is gone
//! before the file is deleted, so a row always names a whole file.
//!
//! A content with no message carrying it is an orphan: it is removed
//! [`Collect::orphan_ms`] after it last lost (or never had) one. With a
//! media retention, a content unused for that many days is expired: its
//! file goes, and every message that carried it keeps its description,
//! marked `expired`.

use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::apply::{Outcome, Tables};
use super::records::*;
use super::StoreError;

/// A SHA-256 of a content.
pub type Hash = [u8; 32];

/// One write about attachments, queued as [`super::WriteOp::Media`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MediaOp {
    /// A content is durable in its file: record it (once) and count it
    /// to `user` (once per user).
    Store { user: u64, hash: Hash, size: u64, media_type: String },
    /// One bounded round of orphan removal and media retention.
    Collect(Collect),
}

/// One bounded round of removing orphans and expired contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collect {
    /// A content no message has carried for this long (milliseconds) is
    /// removed.
    pub orphan_ms: u64,
    /// A content not sent for this many days is expired (0: never).
    pub retention_days: u32,
    /// The most contents this round removes.
    pub max_blobs: u32,
}

/// What a [`Collect`] removed. The files of `removed` may be deleted once
/// the write is durable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    pub removed: Vec<Hash>,
    /// How many of them were orphans (the rest expired).
    pub orphans: u64,
    /// Message descriptions marked expired.
    pub messages_marked: u64,
    /// Whether the budget ran out with work left.
    pub more: bool,
}

/// The media tables, opened with the others for each batch.
pub(super) struct MediaTables<'txn> {
    pub blobs: Table<'txn, &'static [u8], &'static [u8]>,
    pub owners: Table<'txn, (&'static [u8], u64), u64>,
    pub refs: Table<'txn, (&'static [u8], u64, u64), ()>,
    pub unreferenced: Table<'txn, (u64, &'static [u8]), ()>,
    pub last_sent: Table<'txn, (u64, &'static [u8]), ()>,
    pub usage: Table<'txn, u64, u64>,
}

impl<'txn> MediaTables<'txn> {
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(MediaTables {
            blobs: txn.open_table(BLOBS)?,
            owners: txn.open_table(BLOB_OWNERS)?,
            refs: txn.open_table(BLOB_REFS)?,
            unreferenced: txn.open_table(BLOB_UNREFERENCED)?,
            last_sent: txn.open_table(BLOB_LAST_SENT)?,
            usage: txn.open_table(MEDIA_USAGE)?,
        })
    }

    pub fn blob(&self, hash: &Hash) -> Result<Option<BlobRecord>, StoreError> {
        self.blobs.get(hash.as_slice())?.map(|v| decode("blobs", v.value())).transpose()
    }

    fn add_usage(&mut self, user: u64, bytes: i128) -> Result<(), StoreError> {
        let now = self.usage.get(user)?.map_or(0, |v| v.value());
        let next = (i128::from(now) + bytes).clamp(0, i128::from(u64::MAX)) as u64;
        if next == 0 {
            self.usage.remove(user)?;
        } else {
            self.usage.insert(user, next)?;
        }
        Ok(())
    }
}

/// Applies one [`MediaOp`].
pub(super) fn apply(t: &mut Tables<'_>, op: &MediaOp) -> Result<Outcome, StoreError> {
    match op {
        MediaOp::Store { user, hash, size, media_type } => store(t, *user, hash, *size, media_type),
        MediaOp::Collect(collect) => self::collect(t, collect).map(Outcome::Collected),
    }
}

fn store(
    t: &mut Tables<'_>,
    user: u64,
    hash: &Hash,
    size: u64,
    media_type: &str,
) -> Result<Outcome, StoreError> {
    let now = t.now;
    let m = &mut t.media;
    match m.blob(hash)? {
        Some(record) if record.size != size => {
            // The same SHA-256 with another size cannot happen short of a
            // broken file: refuse rather than count it.
            return Err(StoreError::Corrupt {
                table: "blobs",
                reason: format!("content {} has {} bytes, not {size}", hex(hash), record.size),
            });
        }
        Some(_) => {}
        None => {
            let record = BlobRecord {
                size,
                media_type: media_type.to_owned(),
                stored_at: now,
                refs: 0,
                unreferenced_since: now,
                last_sent: now,
            };
            m.blobs.insert(hash.as_slice(), encode(&record).as_slice())?;
            m.unreferenced.insert((now, hash.as_slice()), ())?;
            m.last_sent.insert((now, hash.as_slice()), ())?;
            t.meta_add(MEDIA_BYTES, size)?;
        }
    }
    let m = &mut t.media;
    if m.owners.get((hash.as_slice(), user))?.is_none() {
        m.owners.insert((hash.as_slice(), user), now)?;
        m.add_usage(user, i128::from(size))?;
    }
    Ok(Outcome::Done)
}

/// Checks that `sender` may send the content `hash` of `size` bytes: they
/// uploaded it, or they can already download it. The same answer for a
/// content that does not exist, so that a message cannot probe for one.
pub(super) fn check_sendable(t: &Tables<'_>, sender: u64, hash: &Hash, size: u64) -> Result<(), StoreError> {
    let missing = || StoreError::NoSuchAttachment(hex(hash));
    let record = t.media.blob(hash)?.ok_or_else(missing)?;
    if record.size != size {
        return Err(StoreError::Invalid(format!(
            "attachment {} has {} bytes, not the {size} the message says",
            hex(hash),
            record.size
        )));
    }
    if t.media.owners.get((hash.as_slice(), sender))?.is_some() {
        return Ok(());
    }
    for row in t.media.refs.range((hash.as_slice(), 0, 0)..=(hash.as_slice(), u64::MAX, u64::MAX))? {
        let (conversation, seq) = {
            let key = row?.0;
            let (_, c, s) = key.value();
            (c, s)
        };
        if t.member(conversation, sender)?.is_some_and(|m| m.visible_after < seq) {
            return Ok(());
        }
    }
    Err(missing())
}

/// Records that message `(conversation, seq)` carries `hash`.
pub(super) fn reference(
    t: &mut Tables<'_>,
    hash: &Hash,
    conversation: u64,
    seq: u64,
) -> Result<(), StoreError> {
    let now = t.now;
    let m = &mut t.media;
    let Some(mut record) = m.blob(hash)? else {
        return Err(StoreError::NoSuchAttachment(hex(hash)));
    };
    m.refs.insert((hash.as_slice(), conversation, seq), ())?;
    if record.refs == 0 {
        m.unreferenced.remove((record.unreferenced_since, hash.as_slice()))?;
    }
    m.last_sent.remove((record.last_sent, hash.as_slice()))?;
    record.refs += 1;
    record.last_sent = now;
    m.last_sent.insert((now, hash.as_slice()), ())?;
    m.blobs.insert(hash.as_slice(), encode(&record).as_slice())?;
    Ok(())
}

/// Records that message `(conversation, seq)` no longer exists (retention
/// deleted it): the content may become an orphan.
pub(super) fn unreference(
    t: &mut Tables<'_>,
    hash: &Hash,
    conversation: u64,
    seq: u64,
) -> Result<(), StoreError> {
    let now = t.now;
    let m = &mut t.media;
    if m.refs.remove((hash.as_slice(), conversation, seq))?.is_none() {
        return Ok(());
    }
    let Some(mut record) = m.blob(hash)? else { return Ok(()) };
    record.refs = record.refs.saturating_sub(1);
    if record.refs == 0 {
        record.unreferenced_since = now;
        m.unreferenced.insert((now, hash.as_slice()), ())?;
    }
    m.blobs.insert(hash.as_slice(), encode(&record).as_slice())?;
    Ok(())
}

fn collect(t: &mut Tables<'_>, op: &Collect) -> Result<Collected, StoreError> {
    let mut out = Collected::default();
    let budget = op.max_blobs.max(1) as usize;
    let orphan_cutoff = t.now.saturating_sub(op.orphan_ms);
    let orphans: Vec<Hash> = first_before(&t.media.unreferenced, orphan_cutoff, budget + 1)?;
    if orphans.len() > budget {
        out.more = true;
    }
    for hash in orphans.into_iter().take(budget) {
        remove_blob(t, &hash, &mut out)?;
        out.orphans += 1;
    }
    let left = budget.saturating_sub(out.removed.len());
    if op.retention_days > 0 && left > 0 {
        let cutoff = t.now.saturating_sub(u64::from(op.retention_days).saturating_mul(super::DAY_MS));
        let expired: Vec<Hash> = first_before(&t.media.last_sent, cutoff, left + 1)?;
        if expired.len() > left {
            out.more = true;
        }
        for hash in expired.into_iter().take(left) {
            remove_blob(t, &hash, &mut out)?;
        }
    } else if op.retention_days > 0 {
        out.more = true;
    }
    Ok(out)
}

/// Up to `most` hashes of an index keyed by (time, hash) with a time
/// before `cutoff`, oldest first.
fn first_before(
    index: &Table<'_, (u64, &'static [u8]), ()>,
    cutoff: u64,
    most: usize,
) -> Result<Vec<Hash>, StoreError> {
    let mut found = Vec::new();
    for row in index.range::<(u64, &[u8])>(..(cutoff, &[][..]))?.take(most) {
        let key = row?.0;
        let (_, hash) = key.value();
        found.push(hash_of(hash)?);
    }
    Ok(found)
}

/// Removes a content's rows: the messages that carried it mark it expired,
/// its owners stop counting it.
fn remove_blob(t: &mut Tables<'_>, hash: &Hash, out: &mut Collected) -> Result<(), StoreError> {
    let Some(record) = t.media.blob(hash)? else { return Ok(()) };
    let carriers: Vec<(u64, u64)> = {
        let mut keys = Vec::new();
        for row in t.media.refs.range((hash.as_slice(), 0, 0)..=(hash.as_slice(), u64::MAX, u64::MAX))? {
            let key = row?.0;
            let (_, c, s) = key.value();
            keys.push((c, s));
        }
        keys
    };
    for (conversation, seq) in carriers {
        t.media.refs.remove((hash.as_slice(), conversation, seq))?;
        let Some(mut message) = t
            .messages
            .get((conversation, seq))?
            .map(|v| decode::<MessageRecord>("messages", v.value()))
            .transpose()?
        else {
            continue;
        };
        for attachment in message.attachments.iter_mut().filter(|a| a.id == *hash) {
            attachment.expired = true;
        }
        t.messages.insert((conversation, seq), encode(&message).as_slice())?;
        out.messages_marked += 1;
    }
    let owners: Vec<u64> = {
        let mut users = Vec::new();
        for row in t.media.owners.range((hash.as_slice(), 0)..=(hash.as_slice(), u64::MAX))? {
            users.push(row?.0.value().1);
        }
        users
    };
    for user in owners {
        t.media.owners.remove((hash.as_slice(), user))?;
        t.media.add_usage(user, -i128::from(record.size))?;
    }
    if record.refs == 0 {
        t.media.unreferenced.remove((record.unreferenced_since, hash.as_slice()))?;
    }
    t.media.last_sent.remove((record.last_sent, hash.as_slice()))?;
    t.media.blobs.remove(hash.as_slice())?;
    t.meta_sub(MEDIA_BYTES, record.size)?;
    out.removed.push(*hash);
    Ok(())
}

/// A hash from a key's bytes.
pub fn hash_of(bytes: &[u8]) -> Result<Hash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt { table: "blobs", reason: "a hash of the wrong length".into() })
}

/// Lowercase hex, as attachment ids are written.
pub fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A hash from an attachment id (64 lowercase hex digits).
pub fn parse_hex(id: &str) -> Option<Hash> {
    if !imbox_protocol::valid_attachment_id(id) {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&id[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(hash)
}

/// A content a user may download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloadable {
    pub size: u64,
    pub media_type: String,
}

/// The content `hash`, if `user` may download it: they uploaded it, or it
/// was sent in a conversation they are a member of, in a message they can
/// see. `None` otherwise, whether or not it exists.
pub fn downloadable(db: &redb::Database, user: u64, hash: &Hash) -> Result<Option<Downloadable>, StoreError> {
    use redb::ReadableDatabase;
    let txn = db.begin_read()?;
    let Some(record) = txn
        .open_table(BLOBS)?
        .get(hash.as_slice())?
        .map(|v| decode::<BlobRecord>("blobs", v.value()))
        .transpose()?
    else {
        return Ok(None);
    };
    let found = Downloadable { size: record.size, media_type: record.media_type };
    if txn.open_table(BLOB_OWNERS)?.get((hash.as_slice(), user))?.is_some() {
        return Ok(Some(found));
    }
    let members = txn.open_table(MEMBERS)?;
    for row in
        txn.open_table(BLOB_REFS)?.range((hash.as_slice(), 0, 0)..=(hash.as_slice(), u64::MAX, u64::MAX))?
    {
        let key = row?.0;
        let (_, conversation, seq) = key.value();
        let member: Option<MemberRecord> =
            members.get((conversation, user))?.map(|v| decode("members", v.value())).transpose()?;
        if member.is_some_and(|m| m.visible_after < seq) {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// What one user's uploads take, in bytes.
pub fn usage(db: &redb::Database, user: u64) -> Result<u64, StoreError> {
    use redb::ReadableDatabase;
    Ok(db.begin_read()?.open_table(MEDIA_USAGE)?.get(user)?.map_or(0, |v| v.value()))
}

/// Media on the box: every content's bytes, how many contents, and each
/// user's usage (user id, bytes), largest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaSummary {
    pub bytes: u64,
    pub contents: u64,
    pub per_user: Vec<(u64, u64)>,
}

pub fn summary(db: &redb::Database) -> Result<MediaSummary, StoreError> {
    use redb::ReadableDatabase;
    let txn = db.begin_read()?;
    let bytes = txn.open_table(META)?.get(MEDIA_BYTES)?.map_or(0, |v| v.value());
    let contents = txn.open_table(BLOBS)?.len()?;
    let mut per_user = Vec::new();
    for row in txn.open_table(MEDIA_USAGE)?.iter()? {
        let (user, used) = row?;
        per_user.push((user.value(), used.value()));
    }
    per_user.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(MediaSummary { bytes, contents, per_user })
}

/// Every stored content's hash, for the sweep at start-up that deletes
/// files without a row.
pub fn all_hashes(db: &redb::Database) -> Result<std::collections::HashSet<Hash>, StoreError> {
    use redb::ReadableDatabase;
    let txn = db.begin_read()?;
    let mut hashes = std::collections::HashSet::new();
    for row in txn.open_table(BLOBS)?.iter()? {
        hashes.insert(hash_of(row?.0.value())?);
    }
    Ok(hashes)
}

/// Whether a content has its row.
pub fn exists(db: &redb::Database, hash: &Hash) -> Result<bool, StoreError> {
    use redb::ReadableDatabase;
    Ok(db.begin_read()?.open_table(BLOBS)?.get(hash.as_slice())?.is_some())
}
