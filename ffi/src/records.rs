//! The plain values the SDK hands across the boundary (UniFFI records and
//! enums), converted from the protocol's and the client library's types.

use imbox_client::protocol::{self, Item, PairingUri};
use imbox_client::{Progress, Sent, Update, ZeroRtt};

/// What a pairing link says, before anything is sent to the box.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PairingInfo {
    /// The box's host names or addresses, in the order pairing tries them.
    pub hosts: Vec<String>,
    pub quic_port: Option<u16>,
    pub wss_port: Option<u16>,
    /// The SHA-256 fingerprint of the box's key (`sha256:…`), which the
    /// device pins.
    pub fingerprint: String,
    /// Whether the link carries an invite (pairing needs one; without it,
    /// log in with an existing account).
    pub has_invite: bool,
    /// The box's name, for display.
    pub box_name: Option<String>,
    /// The server URLs pairing tries, in order (QUIC first).
    pub server_urls: Vec<String>,
}

impl From<&PairingUri> for PairingInfo {
    fn from(uri: &PairingUri) -> PairingInfo {
        PairingInfo {
            hosts: uri.hosts.clone(),
            quic_port: uri.quic_port,
            wss_port: uri.wss_port,
            fingerprint: uri.fingerprint.to_string(),
            has_invite: uri.invite.is_some(),
            box_name: uri.name.clone(),
            server_urls: uri.server_urls(),
        }
    }
}

/// Whether a connection's first requests went out as QUIC 0-RTT early data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum EarlyData {
    /// No early data: the first connection of this process to the box, or
    /// not QUIC.
    NotAttempted,
    /// The box accepted the early data: the session resumed in one round
    /// trip less.
    Accepted,
    /// The box refused it (it restarted, say); the requests were sent again.
    Rejected,
}

impl From<ZeroRtt> for EarlyData {
    fn from(state: ZeroRtt) -> EarlyData {
        match state {
            ZeroRtt::Accepted => EarlyData::Accepted,
            ZeroRtt::Rejected => EarlyData::Rejected,
            ZeroRtt::NotAttempted | ZeroRtt::Pending => EarlyData::NotAttempted,
        }
    }
}

/// The session `connect()` and `resume()` opened.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SessionInfo {
    /// This device's user.
    pub user: String,
    /// This device's id.
    pub device: u64,
    /// Whether the user administers the box.
    pub admin: bool,
    /// The contacts online now; later changes arrive as `Presence` events.
    pub online: Vec<String>,
    /// The server URL in use (`quic://…` or `wss://…`).
    pub server: String,
    /// The local address of the connection (a UDP socket for QUIC).
    pub local_address: Option<String>,
    /// Whether the session resumed with QUIC 0-RTT.
    pub early_data: EarlyData,
}

/// The box's acknowledgement of a message: it is durable on disk.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SentMessage {
    /// The message id (the one given, or a new UUID).
    pub id: String,
    pub conversation: u64,
    /// The message's order within its conversation.
    pub seq: u64,
    /// When the box stored it, in milliseconds since the Unix epoch.
    pub sent_at: u64,
    /// True when an earlier attempt with this id had already been stored.
    pub duplicate: bool,
}

impl From<Sent> for SentMessage {
    fn from(sent: Sent) -> SentMessage {
        SentMessage {
            id: sent.id,
            conversation: sent.conversation,
            seq: sent.seq,
            sent_at: sent.sent_at,
            duplicate: sent.duplicate,
        }
    }
}

/// A file a message carries.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Attachment {
    /// The SHA-256 of the content in hex: what `download` takes.
    pub id: String,
    pub name: String,
    pub media_type: String,
    pub size: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
    /// A BlurHash of the image.
    pub blurhash: Option<String>,
    /// A tiny preview image as a `data:` URL.
    pub thumbnail: Option<String>,
    /// The box's media retention deleted the content: it cannot be
    /// downloaded any more.
    pub expired: bool,
}

impl From<protocol::Attachment> for Attachment {
    fn from(a: protocol::Attachment) -> Attachment {
        Attachment {
            id: a.id,
            name: a.name,
            media_type: a.media_type,
            size: a.size,
            width: a.width,
            height: a.height,
            duration_ms: a.duration_ms,
            blurhash: a.blurhash,
            thumbnail: a.thumbnail,
            expired: a.expired,
        }
    }
}

impl From<Attachment> for protocol::Attachment {
    fn from(a: Attachment) -> protocol::Attachment {
        protocol::Attachment {
            id: a.id,
            name: a.name,
            media_type: a.media_type,
            size: a.size,
            width: a.width,
            height: a.height,
            duration_ms: a.duration_ms,
            blurhash: a.blurhash,
            thumbnail: a.thumbnail,
            expired: a.expired,
        }
    }
}

/// A stored message as its reader sees it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Message {
    pub conversation: u64,
    /// The conversation as the reader names it: `#group`, or the other
    /// person's user name for a direct conversation.
    pub chat: String,
    /// The message's order within its conversation, from 1.
    pub seq: u64,
    pub from: String,
    pub from_device: u64,
    /// The sender's message id.
    pub id: String,
    /// When the box stored it, in milliseconds since the Unix epoch.
    pub sent_at: u64,
    /// The text, or the caption of the attachments (possibly empty).
    pub text: String,
    pub attachments: Vec<Attachment>,
}

impl From<protocol::Message> for Message {
    fn from(m: protocol::Message) -> Message {
        Message {
            conversation: m.conversation,
            chat: m.chat,
            seq: m.seq,
            from: m.from,
            from_device: m.from_device,
            id: m.id,
            sent_at: m.sent_at,
            text: m.text,
            attachments: m.attachments.into_iter().map(Attachment::from).collect(),
        }
    }
}

/// A page of a conversation's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryPage {
    pub messages: Vec<Message>,
    /// Whether older messages exist (ask again with `before` = the first
    /// message's `seq`).
    pub more: bool,
}

/// Direct or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConversationKind {
    Direct,
    Group,
}

/// How far a member has received and read a conversation.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MemberMarks {
    pub user: String,
    pub delivered: u64,
    pub read: u64,
}

/// A conversation the user belongs to.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Conversation {
    pub id: u64,
    pub kind: ConversationKind,
    /// `#group`, or the other person's user name.
    pub chat: String,
    pub members: Vec<String>,
    /// Admins (groups only).
    pub admins: Vec<String>,
    /// The newest message's `seq` (0 when empty).
    pub last_seq: u64,
    /// The user's read mark.
    pub read_seq: u64,
    /// Messages after the read mark.
    pub unread: u64,
    /// The other members' delivered and read marks.
    pub marks: Vec<MemberMarks>,
}

impl From<protocol::ConversationInfo> for Conversation {
    fn from(c: protocol::ConversationInfo) -> Conversation {
        Conversation {
            id: c.id,
            kind: match c.kind {
                protocol::ConversationKind::Direct => ConversationKind::Direct,
                protocol::ConversationKind::Group => ConversationKind::Group,
            },
            chat: c.chat,
            members: c.members,
            admins: c.admins,
            unread: c.last_seq.saturating_sub(c.read_seq),
            last_seq: c.last_seq,
            read_seq: c.read_seq,
            marks: c
                .marks
                .into_iter()
                .map(|m| MemberMarks { user: m.user, delivered: m.delivered, read: m.read })
                .collect(),
        }
    }
}

/// One of the user's devices.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Device {
    pub id: u64,
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// Whether this is the device asking.
    pub current: bool,
}

impl From<protocol::DeviceInfo> for Device {
    fn from(d: protocol::DeviceInfo) -> Device {
        Device { id: d.id, name: d.name, created_at: d.created_at, current: d.current }
    }
}

/// How far an upload or a download has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct TransferProgress {
    /// Bytes done, from the start of the content.
    pub done: u64,
    /// The content's size.
    pub total: u64,
    /// Where this run started (a resumed upload starts past 0).
    pub resumed_at: u64,
}

impl From<Progress> for TransferProgress {
    fn from(p: Progress) -> TransferProgress {
        TransferProgress { done: p.done, total: p.total, resumed_at: p.resumed_at }
    }
}

/// What a download wrote.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DownloadedFile {
    pub size: u64,
    pub media_type: String,
}

/// Where a push endpoint comes from; both are woken the same way (RFC 8291
/// encryption, VAPID), with no message text in the notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PushKind {
    /// A UnifiedPush distributor (ntfy, NextPush…) on an Android phone
    /// without Google's services.
    UnifiedPush,
    /// A Web Push subscription.
    WebPush,
}

impl From<PushKind> for protocol::PushKind {
    fn from(kind: PushKind) -> protocol::PushKind {
        match kind {
            PushKind::UnifiedPush => protocol::PushKind::Unifiedpush,
            PushKind::WebPush => protocol::PushKind::Webpush,
        }
    }
}

/// Delivered or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ReceiptKind {
    Delivered,
    Read,
}

/// How a group's membership changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum MembershipChange {
    Created,
    Added,
    Removed,
    Left,
}

/// What `next_event()` returns and a listener receives. `Message`,
/// `Receipt` and `Membership` come from the user's delivery log: each once,
/// in order, across restarts. The rest is momentary.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ImboxEvent {
    /// A message in one of the user's conversations (the user's own, sent
    /// from any device, included).
    Message { message: Message },
    /// A member received or read a conversation up to `seq`.
    Receipt { conversation: u64, chat: String, user: String, kind: ReceiptKind, seq: u64 },
    /// A group gained or lost a member.
    Membership { conversation: u64, chat: String, user: String, change: MembershipChange, by: String },
    /// A member is typing.
    Typing { conversation: u64, chat: String, user: String },
    /// A contact came online or went offline.
    Presence { user: String, online: bool },
    /// This device was away longer than the box keeps its stream: some
    /// messages may be missing; reload `conversations()` and `history()`.
    Resynced,
    /// A session opened (after `connect`, `resume` or a lost connection),
    /// with the contacts online then.
    Connected { online: Vec<String> },
    /// The connection was lost; the SDK reconnects by itself.
    Disconnected { reason: String },
}

impl From<Update> for ImboxEvent {
    fn from(update: Update) -> ImboxEvent {
        match update {
            Update::Entry(entry) => match entry.item {
                Item::Message(message) => ImboxEvent::Message { message: message.into() },
                Item::Receipt(r) => ImboxEvent::Receipt {
                    conversation: r.conversation,
                    chat: r.chat,
                    user: r.user,
                    kind: match r.kind {
                        protocol::ReceiptKind::Delivered => ReceiptKind::Delivered,
                        protocol::ReceiptKind::Read => ReceiptKind::Read,
                    },
                    seq: r.seq,
                },
                Item::Membership(m) => ImboxEvent::Membership {
                    conversation: m.conversation,
                    chat: m.chat,
                    user: m.user,
                    change: match m.change {
                        protocol::MembershipChange::Created => MembershipChange::Created,
                        protocol::MembershipChange::Added => MembershipChange::Added,
                        protocol::MembershipChange::Removed => MembershipChange::Removed,
                        protocol::MembershipChange::Left => MembershipChange::Left,
                    },
                    by: m.by,
                },
            },
            Update::Typing { conversation, chat, user } => ImboxEvent::Typing { conversation, chat, user },
            Update::Presence { user, online } => ImboxEvent::Presence { user, online },
            Update::Resynced => ImboxEvent::Resynced,
            Update::Connected { online } => ImboxEvent::Connected { online },
            Update::Disconnected { reason } => ImboxEvent::Disconnected { reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imbox_client::protocol::{Entry, Fingerprint};

    #[test]
    fn log_entries_become_events_with_their_fields() {
        let receipt = protocol::Receipt {
            conversation: 4,
            chat: "#crew".into(),
            user: "bob".into(),
            kind: protocol::ReceiptKind::Read,
            seq: 9,
        };
        let event = ImboxEvent::from(Update::Entry(Entry { position: 12, item: Item::Receipt(receipt) }));
        assert_eq!(
            event,
            ImboxEvent::Receipt {
                conversation: 4,
                chat: "#crew".into(),
                user: "bob".into(),
                kind: ReceiptKind::Read,
                seq: 9
            }
        );
        let left = protocol::Membership {
            conversation: 4,
            chat: "#crew".into(),
            user: "bob".into(),
            change: protocol::MembershipChange::Left,
            by: "bob".into(),
        };
        let event = ImboxEvent::from(Update::Entry(Entry { position: 13, item: Item::Membership(left) }));
        assert!(matches!(event, ImboxEvent::Membership { change: MembershipChange::Left, .. }), "{event:?}");
    }

    #[test]
    fn a_pairing_link_is_described_without_its_invite() {
        let uri = PairingUri {
            hosts: vec!["192.0.2.10".into()],
            quic_port: Some(443),
            wss_port: Some(8443),
            fingerprint: Fingerprint::of_spki(b"key"),
            invite: Some("secret-token".into()),
            name: Some("Kitchen".into()),
        };
        let info = PairingInfo::from(&uri);
        assert!(info.has_invite);
        assert_eq!(info.server_urls, ["quic://192.0.2.10:443", "wss://192.0.2.10:8443"]);
        assert!(!format!("{info:?}").contains("secret-token"), "the invite is a credential");
    }

    #[test]
    fn unread_counts_messages_after_the_read_mark() {
        let info = protocol::ConversationInfo {
            id: 1,
            kind: protocol::ConversationKind::Direct,
            chat: "bob".into(),
            members: vec!["alice".into(), "bob".into()],
            admins: vec![],
            last_seq: 10,
            read_seq: 7,
            marks: vec![],
        };
        assert_eq!(Conversation::from(info).unread, 3);
    }
}
