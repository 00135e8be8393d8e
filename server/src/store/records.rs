//! The tables of the store and the records kept in them.
//!
//! Keys are redb tuples of integers and strings so that ranges follow the
//! access paths (a user's log by position, a conversation's messages by
//! sequence). Values are compact MessagePack (arrays, not maps): they never
//! leave the box, and adding a field means a new record version.

use redb::{MultimapTableDefinition, TableDefinition};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::StoreError;

/// Counters: `next_user`, `next_device`, `next_conversation`, `schema`,
/// `stream_head` (the last stream position given out), `stream_base` (the
/// first stream position: positions below it belong to the legacy per-user
/// logs of layout 2 and older, see [`LOG`]), `wal_through`.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// user id → [`UserRecord`]. Removed users stay, marked, so that their old
/// messages still render with their name.
pub const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");
/// user name → user id, for users not removed.
pub const USER_NAMES: TableDefinition<&str, u64> = TableDefinition::new("user_names");
/// device id → [`DeviceRecord`].
pub const DEVICES: TableDefinition<u64, &[u8]> = TableDefinition::new("devices");
/// SHA-256 of a device token → device id. Tokens themselves are never stored.
pub const TOKENS: TableDefinition<&[u8], u64> = TableDefinition::new("tokens");
/// user id → its device ids.
pub const USER_DEVICES: MultimapTableDefinition<u64, u64> = MultimapTableDefinition::new("user_devices");
/// conversation id → [`ConversationRecord`].
pub const CONVERSATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("conversations");
/// (lower user id, higher user id) → the direct conversation between them.
pub const DIRECT: TableDefinition<(u64, u64), u64> = TableDefinition::new("direct");
/// group name → conversation id.
pub const GROUP_NAMES: TableDefinition<&str, u64> = TableDefinition::new("group_names");
/// (conversation, user) → [`MemberRecord`] of current members.
pub const MEMBERS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("members");
/// user id → the conversations the user is a member of now.
pub const USER_CONVERSATIONS: MultimapTableDefinition<u64, u64> =
    MultimapTableDefinition::new("user_conversations");
/// (conversation, seq) → [`MessageRecord`].
pub const MESSAGES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("messages");
/// (sender user, client message id) → (conversation, seq): de-duplication.
pub const MESSAGE_IDS: TableDefinition<(u64, &str), (u64, u64)> = TableDefinition::new("message_ids");
/// (conversation, stream position) → [`EventRecord`]: what happened in a
/// conversation, in stream order. Each message has one row here (its text is
/// in [`MESSAGES`]); each member's delivered and read markers have one row
/// each, moved to a new position whenever the marker moves; each membership
/// change has one. A device syncs by merging the rows of the conversations
/// it was in (see [`SPANS`]) after its cursor.
pub const EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("events");
/// (user, conversation) → [`SpansRecord`]: the stretches of the stream in
/// which the user was a member, so that a device that was away still gets
/// what happened in a conversation up to the moment its user left it.
pub const SPANS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("spans");
/// user → the stream position below which that user's per-user records
/// (ended spans, legacy log rows) were pruned. A device whose cursor is
/// below it was away too long: it is told to resync its history.
pub const PRUNED: TableDefinition<u64, u64> = TableDefinition::new("pruned");
/// Legacy (layouts 1 and 2): (user, position) → [`LogItem`], each user's own
/// delivery log, with positions 1, 2, 3… per user. Layout 3 writes nothing
/// here: the migration dropped its receipt rows (receipts became markers)
/// and kept its message and membership rows, at their old positions, for the
/// devices that had not read them yet; they are pruned like every per-user
/// record once every device of the user is past them. Every legacy position
/// is below `stream_base`.
pub const LOG: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("log");
/// Legacy (layouts 1 and 2): user → the last position in the user's log.
pub const LOG_HEADS: TableDefinition<u64, u64> = TableDefinition::new("log_heads");
/// SHA-256 of an invite token → [`InviteRecord`].
pub const INVITES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("invites");
/// Box-wide settings: `"box"` → [`BoxRecord`] (the claim, the owner, the
/// name, what members may do).
pub const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");

/// SHA-256 of a content → [`BlobRecord`]: the attachments stored on the
/// box, each once (their files are under `<data_dir>/media/blobs`).
pub const BLOBS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blobs");
/// (SHA-256, user) → when the user uploaded that content: a content counts
/// once to each user who uploaded it (the quota), and may be sent by them.
pub const BLOB_OWNERS: TableDefinition<(&[u8], u64), u64> = TableDefinition::new("blob_owners");
/// (SHA-256, conversation, seq): the messages that carry a content. A member
/// of such a conversation who sees the message may download it.
pub const BLOB_REFS: TableDefinition<(&[u8], u64, u64), ()> = TableDefinition::new("blob_refs");
/// (since, SHA-256) of the contents no message carries: orphans, removed
/// after `media.orphan_hours`.
pub const BLOB_UNREFERENCED: TableDefinition<(u64, &[u8]), ()> = TableDefinition::new("blob_unreferenced");
/// (last sent, SHA-256) of every content: the order of media retention.
pub const BLOB_LAST_SENT: TableDefinition<(u64, &[u8]), ()> = TableDefinition::new("blob_last_sent");
/// user → bytes of the contents the user uploaded (each counted once).
pub const MEDIA_USAGE: TableDefinition<u64, u64> = TableDefinition::new("media_usage");

/// device id → [`super::push::PushRecord`]: the device's push registration
/// (at most one), deleted with the device.
pub const PUSH: TableDefinition<u64, &[u8]> = TableDefinition::new("push");

/// The meta key of the bytes of all stored contents.
pub const MEDIA_BYTES: &str = "media_bytes";

/// The meta key of the last stream position given out.
pub const STREAM_HEAD: &str = "stream_head";
/// The meta key of the first stream position; below it, positions are those
/// of the legacy per-user logs.
pub const STREAM_BASE: &str = "stream_base";

/// The layout version written by this code. Version 2 added
/// `UserRecord::disabled` and the `settings` table (a version-1 database
/// reads as version 2). Version 3 stores each message and each receipt
/// marker once, in its conversation's [`EVENTS`], instead of a copy per
/// member in per-user logs: a version-2 (or 1) database is migrated on the
/// first start (`migrate.rs`), and an older imboxd must not read a version-3
/// one.
pub const SCHEMA_VERSION: u64 = 3;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub admin: bool,
    pub created_at: u64,
    pub removed: bool,
    /// A disabled user cannot log in and its devices' tokens are not
    /// accepted; its data and devices are kept for when it is enabled again.
    /// (Absent in version-1 records.)
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub user: u64,
    pub name: String,
    pub created_at: u64,
    /// The highest log position the device acknowledged.
    pub cursor: u64,
    /// Only in records written before revoked devices were removed: a
    /// revoked device's rows are now deleted.
    pub revoked: bool,
    pub token_hash: [u8; 32],
    /// When the device was last seen in use (it acknowledged its log), for
    /// choosing the longest-unused device at the cap. (Absent in older
    /// records: then `created_at` counts.)
    #[serde(default)]
    pub last_used: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConversationKindRecord {
    Direct,
    Group,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub kind: ConversationKindRecord,
    /// Group name; empty for direct conversations.
    pub name: String,
    /// For direct conversations, the two users (lower id first).
    pub pair: (u64, u64),
    pub created_at: u64,
    pub last_seq: u64,
    pub member_count: u32,
    /// Messages older than this many days are deleted (`None`: the box's
    /// `storage.retention_days` applies). Absent in older records.
    #[serde(default)]
    pub retention_days: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberRecord {
    pub admin: bool,
    /// Messages with a higher seq than this are visible to the member.
    pub visible_after: u64,
    /// The member's markers: every message up to this seq was delivered to
    /// (read by) the member.
    pub delivered_seq: u64,
    pub read_seq: u64,
    /// Where each marker's row sits in [`EVENTS`] (0: no row, the marker was
    /// never set). Absent in layout-2 records, where receipts were log rows.
    #[serde(default)]
    pub delivered_pos: u64,
    #[serde(default)]
    pub read_pos: u64,
}

impl MemberRecord {
    /// A member who joins now and sees the messages after `visible_after`;
    /// both markers start there, without rows of their own.
    pub fn joining(admin: bool, visible_after: u64) -> MemberRecord {
        MemberRecord {
            admin,
            visible_after,
            delivered_seq: visible_after,
            read_seq: visible_after,
            delivered_pos: 0,
            read_pos: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageRecord {
    pub sender: u64,
    pub device: u64,
    pub client_id: String,
    pub sent_at: u64,
    pub text: String,
    /// The files the message carries. (Absent in older records.)
    #[serde(default)]
    pub attachments: Vec<AttachmentRecord>,
}

/// An attachment as a message carries it: the sender's description of a
/// content in [`BLOBS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    pub id: [u8; 32],
    pub media_type: String,
    pub size: u64,
    pub name: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
    pub blurhash: Option<String>,
    pub thumbnail: Option<String>,
    /// Media retention deleted the content.
    pub expired: bool,
}

/// A stored content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub size: u64,
    /// The media type its first upload gave (served with it).
    pub media_type: String,
    pub stored_at: u64,
    /// Messages carrying it (rows of [`BLOB_REFS`]).
    pub refs: u64,
    /// When `refs` last became 0 (its key in [`BLOB_UNREFERENCED`]).
    pub unreferenced_since: u64,
    /// When a message last carried it, else when it was stored (its key in
    /// [`BLOB_LAST_SENT`]).
    pub last_sent: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiptKindRecord {
    Delivered,
    Read,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChangeRecord {
    Created,
    Added,
    Removed,
    Left,
}

/// One row of a conversation's [`EVENTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventRecord {
    /// The message with this seq (in [`MESSAGES`]).
    Message { seq: u64 },
    /// A member's marker of this kind; its value is in the member's
    /// [`MemberRecord`] (a marker has one row, at the position of its last
    /// move).
    Receipt { user: u64, kind: ReceiptKindRecord },
    /// A member came or went.
    Membership { user: u64, change: MembershipChangeRecord, by: u64 },
}

/// A stretch of the stream during which a user was a member of a
/// conversation: positions `from..=to`, `to` being `u64::MAX` while the user
/// still is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub from: u64,
    pub to: u64,
}

impl Span {
    /// The position of a span that has not ended.
    pub const OPEN: u64 = u64::MAX;
}

/// A user's spans in one conversation, oldest first (more than one after
/// leaving and joining again).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpansRecord {
    pub spans: Vec<Span>,
}

/// One entry of a user's legacy delivery log ([`LOG`]): a reference, not a
/// copy. Layout 3 no longer writes these.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LogItem {
    Message { conversation: u64, seq: u64 },
    Receipt { conversation: u64, user: u64, kind: ReceiptKindRecord, seq: u64 },
    Membership { conversation: u64, user: u64, change: MembershipChangeRecord, by: u64 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InviteRecord {
    pub created_by: Option<u64>,
    pub created_at: u64,
    /// Milliseconds since the epoch; `None` never expires.
    pub expires_at: Option<u64>,
    pub uses_left: u32,
}

/// The box itself: who owns it and how it is set up. One record, under the
/// key [`BOX_KEY`] in [`SETTINGS`]; fields added later must be
/// `#[serde(default)]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BoxRecord {
    /// When the box was claimed; `None` while it has no owner.
    pub claimed_at: Option<u64>,
    /// The owner's user id, once claimed.
    pub owner: Option<u64>,
    /// SHA-256 of the current claim code, while unclaimed. The code itself is
    /// never stored in the database.
    pub claim_hash: Option<[u8; 32]>,
    /// The box name set by the owner; `None` uses the configured `box_name`.
    pub name: Option<String>,
    /// Whether members who are not administrators may create invites.
    pub members_may_invite: bool,
    /// Attachments not sent for this many days are deleted (0: never);
    /// `None` follows the configuration's `media.retention_days`.
    #[serde(default)]
    pub media_retention_days: Option<u32>,
}

/// The key of the [`BoxRecord`] in [`SETTINGS`].
pub const BOX_KEY: &str = "box";

/// Encodes a record for storage.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Plain derived records always serialize into a Vec.
    rmp_serde::to_vec(record).unwrap_or_else(|e| unreachable!("encoding a record failed: {e}"))
}

/// Decodes a stored record; a failure means the file was damaged or written
/// by an incompatible version.
pub fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::Corrupt { table, reason: e.to_string() })
}
