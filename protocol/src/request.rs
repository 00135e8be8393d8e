//! Requests a client sends. Each travels in a [`crate::ClientFrame`] with an id
//! that the matching response repeats.

use serde::{Deserialize, Serialize};

/// Names a conversation: a user (the direct conversation with them), a group by
/// name, or any conversation by its numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The direct conversation between the caller and this user.
    User(String),
    /// The group with this name (without the leading `#`).
    Group(String),
    /// A conversation by id, as carried in messages and events.
    Id(u64),
}

impl Target {
    /// Parses the form a person types: `#name` is a group, a number is a
    /// conversation id only when prefixed by `=` (so that numeric user names
    /// stay usable), anything else a user name.
    pub fn parse(text: &str) -> Target {
        if let Some(group) = text.strip_prefix('#') {
            Target::Group(group.to_owned())
        } else if let Some(id) = text.strip_prefix('=').and_then(|n| n.parse().ok()) {
            Target::Id(id)
        } else {
            Target::User(text.to_owned())
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::User(name) => f.write_str(name),
            Target::Group(name) => write!(f, "#{name}"),
            Target::Id(id) => write!(f, "={id}"),
        }
    }
}

/// Everything a client can ask. Before `hello` only `hello` is accepted; before
/// authentication (`register`, `login` or `resume`) only those and `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Opens the session: the versions the client speaks and its name.
    Hello { versions: Vec<u16>, client: String },
    /// Creates an account with an invite token and logs its first device in.
    Register { username: String, password: String, invite: String, device_name: String },
    /// Logs a new device in with a password; the response carries its token.
    Login { username: String, password: String, device_name: String },
    /// Authenticates an existing device by its token.
    Resume { token: String },
    /// Revokes this device's token and ends the session.
    Logout,
    /// Lists the caller's devices.
    Devices,
    /// Revokes another device of the caller's; its sessions end.
    RevokeDevice { device: u64 },
    /// Sends a message: text, attachments uploaded before (see
    /// [`crate::transfer`]), or both. `id` is chosen by the client, unique
    /// per sender: a retry with the same id returns the first result and
    /// stores nothing.
    Send {
        to: Target,
        id: String,
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<crate::Attachment>,
    },
    /// Reads the caller's delivery log after position `since`, at most `limit`
    /// entries. When a page ends the log, the session goes live: later entries
    /// are pushed as [`crate::Event::Entry`].
    Sync { since: u64, limit: u32 },
    /// Records that this device has processed every entry up to `position`.
    Ack { position: u64 },
    /// Reads messages of a conversation before sequence number `before`
    /// (the newest when absent), newest `limit` ones, oldest first.
    History { conversation: Target, before: Option<u64>, limit: u32 },
    /// Lists the conversations the caller belongs to.
    Conversations,
    /// Creates a group with the caller as its admin and these members.
    CreateGroup { name: String, members: Vec<String> },
    /// Adds a user to a group (group admins only, or any member when the
    /// group allows it: see docs/PROTOCOL.md).
    AddMember { group: Target, user: String },
    /// Removes a user from a group (group admins only).
    RemoveMember { group: Target, user: String },
    /// Leaves a group.
    Leave { group: Target },
    /// Marks every message up to `seq` in a conversation as read.
    MarkRead { conversation: Target, seq: u64 },
    /// Marks every message up to `seq` in a conversation as delivered.
    MarkDelivered { conversation: Target, seq: u64 },
    /// Tells the other members that the caller is typing. Never stored.
    Typing { conversation: Target },
    /// Asks the box to wake this device with a push to `endpoint` while it
    /// has no session (docs/PROTOCOL.md, "Push"). Replaces the device's
    /// earlier registration. `p256dh` and `auth` are the subscription's
    /// keys (RFC 8291), unpadded base64url.
    RegisterPush { kind: crate::push::PushKind, endpoint: String, p256dh: String, auth: String },
    /// Removes this device's push registration (none is fine).
    UnregisterPush,
    /// Asks for the box's VAPID public key (the `applicationServerKey`).
    PushKey,
    /// Checks that the session is alive.
    Ping,
}

impl Request {
    /// The request's `type` tag as it appears on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Register { .. } => "register",
            Request::Login { .. } => "login",
            Request::Resume { .. } => "resume",
            Request::Logout => "logout",
            Request::Devices => "devices",
            Request::RevokeDevice { .. } => "revoke_device",
            Request::Send { .. } => "send",
            Request::Sync { .. } => "sync",
            Request::Ack { .. } => "ack",
            Request::History { .. } => "history",
            Request::Conversations => "conversations",
            Request::CreateGroup { .. } => "create_group",
            Request::AddMember { .. } => "add_member",
            Request::RemoveMember { .. } => "remove_member",
            Request::Leave { .. } => "leave",
            Request::MarkRead { .. } => "mark_read",
            Request::MarkDelivered { .. } => "mark_delivered",
            Request::Typing { .. } => "typing",
            Request::RegisterPush { .. } => "register_push",
            Request::UnregisterPush => "unregister_push",
            Request::PushKey => "push_key",
            Request::Ping => "ping",
        }
    }

    /// Every request type tag, for telling an unknown request from a
    /// malformed known one.
    pub const KINDS: &'static [&'static str] = &[
        "hello",
        "register",
        "login",
        "resume",
        "logout",
        "devices",
        "revoke_device",
        "send",
        "sync",
        "ack",
        "history",
        "conversations",
        "create_group",
        "add_member",
        "remove_member",
        "leave",
        "mark_read",
        "mark_delivered",
        "typing",
        "register_push",
        "unregister_push",
        "push_key",
        "ping",
    ];

    /// Whether replaying this request (as a 0-RTT early-data request may be
    /// replayed) can change nothing beyond what its first delivery did.
    pub fn is_replay_safe(&self) -> bool {
        matches!(
            self,
            Request::Hello { .. }
                | Request::Resume { .. }
                | Request::Sync { .. }
                | Request::History { .. }
                | Request::Conversations
                | Request::Devices
                | Request::PushKey
                | Request::Send { .. }
                | Request::Ping
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_as_typed() {
        assert_eq!(Target::parse("#ops"), Target::Group("ops".into()));
        assert_eq!(Target::parse("bob"), Target::User("bob".into()));
        assert_eq!(Target::parse("=12"), Target::Id(12));
        assert_eq!(Target::parse("42"), Target::User("42".into()));
        for t in ["#ops", "bob", "=12"] {
            assert_eq!(Target::parse(t).to_string(), t);
        }
    }

    #[test]
    fn kinds_cover_every_request() {
        let reqs = [
            Request::Logout,
            Request::Ping,
            Request::Devices,
            Request::Conversations,
            Request::UnregisterPush,
            Request::PushKey,
        ];
        for r in reqs {
            assert!(Request::KINDS.contains(&r.kind()));
        }
    }
}
