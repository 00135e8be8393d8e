//! What the server answers to a request.

use serde::{Deserialize, Serialize};

use crate::event::{Entry, Message};

/// The limits a session works within, announced in `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The largest frame the server accepts, in bytes.
    pub max_frame_bytes: u32,
    /// The longest message text, in bytes of UTF-8.
    pub max_text_bytes: u32,
    /// The most entries one `sync` page returns.
    pub max_sync_page: u32,
    /// The most messages one `history` page returns.
    pub max_history_page: u32,
    /// Sustained sends per second allowed per device.
    pub sends_per_second: u32,
    /// The most members a group may have.
    pub max_group_members: u32,
    /// The largest attachment the box accepts, in bytes (0 from a server
    /// without attachments).
    #[serde(default)]
    pub max_attachment_bytes: u64,
}

/// Direct or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    Direct,
    Group,
}

/// A conversation as its member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationInfo {
    pub id: u64,
    pub kind: ConversationKind,
    /// `#group`, or the other person's user name.
    pub chat: String,
    /// Members' user names.
    pub members: Vec<String>,
    /// Admins' user names (groups only).
    pub admins: Vec<String>,
    /// The sequence number of the newest message (0 when empty).
    pub last_seq: u64,
    /// The caller's read mark.
    pub read_seq: u64,
    /// The other members' markers, for those who have any (a device that
    /// starts reading the stream now learns the marks set before; later
    /// moves arrive as `receipt` entries). Absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<MemberMarks>,
}

/// A member's delivered and read markers in a conversation: every message up
/// to `delivered` (`read`) was delivered to (read by) `user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberMarks {
    pub user: String,
    pub delivered: u64,
    pub read: u64,
}

/// One of the caller's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub id: u64,
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// The device's acknowledged cursor.
    pub cursor: u64,
    /// Whether this is the device asking.
    pub current: bool,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// Answer to `hello`: the chosen version and the session's limits.
    Welcome { version: u16, server: String, limits: Limits },
    /// Answer to `register`, `login` and `resume`.
    Authenticated {
        user: String,
        device: u64,
        /// The new device token (`register` and `login` only). Keep it secret:
        /// it is the device's credential.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// The cursor the server has stored for this device.
        cursor: u64,
        /// Whether the user administers the box.
        admin: bool,
        /// The user's contacts (people who share a conversation with the
        /// user) online at this moment, at most 1,000: later changes arrive as
        /// `presence` events. Absent when none is online.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        online: Vec<String>,
    },
    /// Answer to `send`: the message is durable on disk.
    Sent {
        conversation: u64,
        seq: u64,
        sent_at: u64,
        /// True when this id had been sent before and nothing new was stored.
        duplicate: bool,
    },
    /// Answer to `sync`.
    Entries {
        entries: Vec<Entry>,
        /// The position to pass as `since` for the next page.
        next: u64,
        /// Whether more entries follow right now.
        more: bool,
        /// The cursor was older than what the box keeps (the device was
        /// away too long): what this user's devices received meanwhile may
        /// be missing from the stream, so the client reloads
        /// `conversations` and reads `history` for the gap. Absent when
        /// false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resync: bool,
    },
    /// Answer to `history`, oldest first.
    History { messages: Vec<Message>, more: bool },
    /// Answer to `conversations`.
    Conversations { conversations: Vec<ConversationInfo> },
    /// Answer to `create_group`, `add_member` and `remove_member`.
    Group { conversation: ConversationInfo },
    /// Answer to `devices`.
    Devices { devices: Vec<DeviceInfo> },
    /// Answer to `push_key`: the box's VAPID public key, an uncompressed
    /// P-256 point in unpadded base64url (a browser's
    /// `applicationServerKey`, a UnifiedPush app's VAPID key).
    PushKey { key: String },
    /// Answer to `ping`.
    Pong,
    /// Answer to requests that return nothing else.
    Done,
}
