//! The tables of the store and the records kept in them.
//!
//! Keys are redb tuples of integers and strings so that ranges follow the
//! access paths (a user's log by position, a conversation's messages by
//! sequence). Values are compact MessagePack (arrays, not maps): they never
//! leave the box, and adding a field means a new record version.

use redb::{MultimapTableDefinition, TableDefinition};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::StoreError;

/// Counters: `next_user`, `next_device`, `next_conversation`, `schema`.
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
/// user id → the conversations the user is a member of.
pub const USER_CONVERSATIONS: MultimapTableDefinition<u64, u64> =
    MultimapTableDefinition::new("user_conversations");
/// (conversation, seq) → [`MessageRecord`].
pub const MESSAGES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("messages");
/// (sender user, client message id) → (conversation, seq): de-duplication.
pub const MESSAGE_IDS: TableDefinition<(u64, &str), (u64, u64)> = TableDefinition::new("message_ids");
/// (user, position) → [`LogItem`]: each user's delivery log.
pub const LOG: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("log");
/// user → the last position in the user's log.
pub const LOG_HEADS: TableDefinition<u64, u64> = TableDefinition::new("log_heads");
/// SHA-256 of an invite token → [`InviteRecord`].
pub const INVITES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("invites");
/// Box-wide settings: `"box"` → [`BoxRecord`] (the claim, the owner, the
/// name, what members may do).
pub const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");

/// The layout version written by this code. Version 2 added
/// `UserRecord::disabled` and the `settings` table: a version-1 database
/// reads as it is, but an older imboxd must not read a version-2 one.
pub const SCHEMA_VERSION: u64 = 2;

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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberRecord {
    pub admin: bool,
    /// Messages with a higher seq than this are visible to the member.
    pub visible_after: u64,
    pub delivered_seq: u64,
    pub read_seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageRecord {
    pub sender: u64,
    pub device: u64,
    pub client_id: String,
    pub sent_at: u64,
    pub text: String,
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

/// One entry of a user's delivery log: a reference, not a copy, so that a
/// message to a group of a hundred is stored once.
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
