//! What the server pushes without being asked, and the positioned entries of a
//! user's delivery log.

use serde::{Deserialize, Serialize};

/// One record of a user's delivery log. Positions start at 1 and grow by one
/// per entry, per user; every device of the user reads the same log with a
/// cursor of its own, so it sees each entry once and in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The entry's place in the user's log.
    pub position: u64,
    /// What happened.
    pub item: Item,
}

/// What a delivery-log entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    /// A message in one of the user's conversations (the user's own included).
    Message(Message),
    /// Somebody marked messages delivered or read.
    Receipt(Receipt),
    /// A group gained or lost a member.
    Membership(Membership),
}

/// A stored message as a recipient sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The conversation's id.
    pub conversation: u64,
    /// The conversation as the reader names it: `#group`, or the other
    /// person's user name for a direct conversation.
    pub chat: String,
    /// The message's order within its conversation, from 1.
    pub seq: u64,
    /// The sender's user name.
    pub from: String,
    /// The sending device's id.
    pub from_device: u64,
    /// The client-chosen message id.
    pub id: String,
    /// When the server stored it, in milliseconds since the Unix epoch.
    pub sent_at: u64,
    /// The text (a caption when the message carries attachments; then it
    /// may be empty).
    pub text: String,
    /// The files the message carries, in the sender's order (absent when
    /// none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::Attachment>,
}

/// Whether a receipt reports delivery or reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// Reached one of the user's devices.
    Delivered,
    /// Read by the user.
    Read,
}

/// A member reports having received or read a conversation up to `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub conversation: u64,
    pub chat: String,
    pub user: String,
    pub kind: ReceiptKind,
    pub seq: u64,
}

/// How a group's membership changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipChange {
    /// The group was created with this member in it.
    Created,
    /// An admin (or member, where allowed) added the user.
    Added,
    /// An admin removed the user.
    Removed,
    /// The user left.
    Left,
}

/// A group's membership changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub conversation: u64,
    pub chat: String,
    pub user: String,
    pub change: MembershipChange,
    pub by: String,
}

/// Pushed by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new entry of the user's delivery log, pushed once the session is live
    /// (after a `sync` page that reached the end of the log). Entries arrive in
    /// position order without gaps.
    Entry { entry: Entry },
    /// Another member is typing. Never stored.
    Typing { conversation: u64, chat: String, user: String },
    /// A user sharing a conversation with the caller came online or went
    /// offline. Never stored.
    Presence { user: String, online: bool },
    /// The server is shutting down; reconnect later and resume.
    GoingAway { reason: String },
    /// This device's token was revoked; the session ends.
    Revoked,
}
