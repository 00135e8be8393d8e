//! Writes, applied inside the writer's shared transaction.
//!
//! Each operation first checks everything that can fail for a reason of its
//! own (names, membership, limits) and only then writes, so that a refused
//! operation leaves nothing behind in the transaction it shares with others.
//! A storage failure, in contrast, fails the whole batch.

use std::collections::HashMap;
use std::sync::Arc;

use imbox_protocol::{ReceiptKind, Target};
use redb::{
    Database, MultimapTable, ReadableDatabase, ReadableMultimapTable, ReadableTable, Table, WriteTransaction,
};

use super::records::*;
use super::{DeviceAuth, Notice, Sent, StoreError};

/// One write, as queued to the writer. `Admin` holds the claim, box
/// settings and user administration of the web pages (`admin_ops.rs`).
/// Serializable because the writer logs each batch (`wal.rs`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum WriteOp {
    CreateUser {
        name: String,
        password_hash: String,
        admin: bool,
        invite: Option<[u8; 32]>,
    },
    /// `max_devices`: at most this many devices per user, the longest-unused
    /// retired to make room (0: no cap, as in log records written before
    /// the cap existed, which must replay as they were first applied).
    AddDevice {
        user: u64,
        name: String,
        token_hash: [u8; 32],
        #[serde(default)]
        max_devices: u32,
    },
    Send {
        sender: u64,
        device: u64,
        to: Target,
        client_id: String,
        text: String,
        /// (Absent in log records written before attachments.)
        #[serde(default)]
        attachments: Vec<AttachmentRecord>,
    },
    Ack {
        device: u64,
        position: u64,
    },
    Receipt {
        user: u64,
        conversation: Target,
        kind: ReceiptKind,
        seq: u64,
    },
    CreateGroup {
        creator: u64,
        name: String,
        members: Vec<String>,
        max_members: u32,
    },
    AddMember {
        actor: u64,
        group: Target,
        user: String,
        max_members: u32,
    },
    RemoveMember {
        actor: u64,
        group: Target,
        user: String,
    },
    Leave {
        user: u64,
        group: Target,
    },
    RevokeDevice {
        user: u64,
        device: u64,
    },
    RemoveUser {
        name: String,
    },
    CreateInvite {
        token_hash: [u8; 32],
        created_by: Option<u64>,
        uses: u32,
        expires_at: Option<u64>,
    },
    Admin(super::admin_ops::AdminOp),
    /// A bounded round of pruning and retention (`prune.rs`).
    Prune(super::prune::Prune),
    /// Attachments: a stored content, or a round of collection (`media.rs`).
    Media(super::media::MediaOp),
    /// Push registrations (`push.rs`).
    Push(super::push::PushOp),
}

/// What a write produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    User(u64),
    Device(DeviceAuth),
    Sent(Sent),
    Conversation(u64),
    Pruned(super::prune::PruneReport),
    Collected(super::media::Collected),
    Done,
}

impl Outcome {
    fn unexpected(&self) -> StoreError {
        StoreError::Invalid(format!("internal: unexpected write outcome {self:?}"))
    }
    pub(super) fn user(self) -> Result<u64, StoreError> {
        match self {
            Outcome::User(id) => Ok(id),
            other => Err(other.unexpected()),
        }
    }
    pub(super) fn device(self) -> Result<DeviceAuth, StoreError> {
        match self {
            Outcome::Device(auth) => Ok(auth),
            other => Err(other.unexpected()),
        }
    }
    /// The send's result, in tests outside the store.
    #[cfg(test)]
    pub fn sent_for_tests(self) -> Sent {
        match self {
            Outcome::Sent(sent) => sent,
            other => panic!("not a send: {other:?}"),
        }
    }
    pub(super) fn sent(self) -> Result<Sent, StoreError> {
        match self {
            Outcome::Sent(sent) => Ok(sent),
            other => Err(other.unexpected()),
        }
    }
    pub(super) fn pruned(self) -> Result<super::prune::PruneReport, StoreError> {
        match self {
            Outcome::Pruned(report) => Ok(report),
            other => Err(other.unexpected()),
        }
    }
    pub(super) fn collected(self) -> Result<super::media::Collected, StoreError> {
        match self {
            Outcome::Collected(collected) => Ok(collected),
            other => Err(other.unexpected()),
        }
    }
    pub(super) fn conversation(self) -> Result<u64, StoreError> {
        match self {
            Outcome::Conversation(id) => Ok(id),
            other => Err(other.unexpected()),
        }
    }
}

/// Creates every table and checks the layout version. Touches a fixed number
/// of pages whatever the database holds.
pub fn initialize(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let tables = Tables::open(&txn, 0)?;
        let mut meta = tables.meta;
        let found = meta.get("schema")?.map(|v| v.value());
        match found {
            None => {
                meta.insert("schema", SCHEMA_VERSION)?;
                // A new database has no legacy logs: the stream starts at 1.
                meta.insert(STREAM_BASE, 1)?;
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema { found: v, supported: SCHEMA_VERSION });
            }
            // An older layout is migrated by `migrate.rs` before anything
            // else reads it; the migration records the new version last.
            Some(_) => {}
        }
    }
    txn.commit()?;
    // Fail early on a database that cannot be read at all.
    let _ = db.begin_read()?;
    Ok(())
}

/// Every table, opened once per batch.
pub struct Tables<'txn> {
    /// The batch's clock (milliseconds since the epoch): one reading per
    /// batch, logged with it, so that applying the batch again after a crash
    /// gives the same records.
    pub now: u64,
    pub meta: Table<'txn, &'static str, u64>,
    pub users: Table<'txn, u64, &'static [u8]>,
    pub user_names: Table<'txn, &'static str, u64>,
    pub devices: Table<'txn, u64, &'static [u8]>,
    pub tokens: Table<'txn, &'static [u8], u64>,
    pub user_devices: MultimapTable<'txn, u64, u64>,
    pub conversations: Table<'txn, u64, &'static [u8]>,
    pub direct: Table<'txn, (u64, u64), u64>,
    pub group_names: Table<'txn, &'static str, u64>,
    pub members: Table<'txn, (u64, u64), &'static [u8]>,
    pub user_conversations: MultimapTable<'txn, u64, u64>,
    pub messages: Table<'txn, (u64, u64), &'static [u8]>,
    pub message_ids: Table<'txn, (u64, &'static str), (u64, u64)>,
    pub events: Table<'txn, (u64, u64), &'static [u8]>,
    pub spans: Table<'txn, (u64, u64), &'static [u8]>,
    pub pruned: Table<'txn, u64, u64>,
    /// The legacy per-user logs: only pruned.
    pub log: Table<'txn, (u64, u64), &'static [u8]>,
    /// The last stream position given out, once read or moved in this
    /// batch; written to `meta` once by [`Tables::finish`] rather than once
    /// per event.
    stream_head: Option<u64>,
    /// Each conversation's members as read in this batch, until a
    /// membership change: a busy group's messages would otherwise read its
    /// member list once per message for live delivery.
    member_lists: HashMap<u64, Arc<[u64]>>,
    pub invites: Table<'txn, &'static [u8], &'static [u8]>,
    pub settings: Table<'txn, &'static str, &'static [u8]>,
    pub media: super::media::MediaTables<'txn>,
    /// device → its push registration.
    pub push: Table<'txn, u64, &'static [u8]>,
}

impl<'txn> Tables<'txn> {
    pub fn open(txn: &'txn WriteTransaction, now: u64) -> Result<Self, StoreError> {
        Ok(Tables {
            now,
            meta: txn.open_table(META)?,
            users: txn.open_table(USERS)?,
            user_names: txn.open_table(USER_NAMES)?,
            devices: txn.open_table(DEVICES)?,
            tokens: txn.open_table(TOKENS)?,
            user_devices: txn.open_multimap_table(USER_DEVICES)?,
            conversations: txn.open_table(CONVERSATIONS)?,
            direct: txn.open_table(DIRECT)?,
            group_names: txn.open_table(GROUP_NAMES)?,
            members: txn.open_table(MEMBERS)?,
            user_conversations: txn.open_multimap_table(USER_CONVERSATIONS)?,
            messages: txn.open_table(MESSAGES)?,
            message_ids: txn.open_table(MESSAGE_IDS)?,
            events: txn.open_table(EVENTS)?,
            spans: txn.open_table(SPANS)?,
            pruned: txn.open_table(PRUNED)?,
            log: txn.open_table(LOG)?,
            stream_head: None,
            member_lists: HashMap::new(),
            invites: txn.open_table(INVITES)?,
            settings: txn.open_table(SETTINGS)?,
            media: super::media::MediaTables::open(txn)?,
            push: super::push::open(txn)?,
        })
    }

    fn next_id(&mut self, counter: &'static str) -> Result<u64, StoreError> {
        let id = self.meta.get(counter)?.map(|v| v.value()).unwrap_or(0) + 1;
        self.meta.insert(counter, id)?;
        Ok(id)
    }

    pub fn user(&self, id: u64) -> Result<Option<UserRecord>, StoreError> {
        self.users.get(id)?.map(|v| decode("users", v.value())).transpose()
    }

    /// A live (not removed) user by name.
    pub(super) fn user_id(&self, name: &str) -> Result<u64, StoreError> {
        self.user_names.get(name)?.map(|v| v.value()).ok_or_else(|| StoreError::NoSuchUser(name.to_owned()))
    }

    pub(super) fn device(&self, id: u64) -> Result<Option<DeviceRecord>, StoreError> {
        self.devices.get(id)?.map(|v| decode("devices", v.value())).transpose()
    }

    pub fn conversation(&self, id: u64) -> Result<Option<ConversationRecord>, StoreError> {
        self.conversations.get(id)?.map(|v| decode("conversations", v.value())).transpose()
    }

    pub(super) fn member(&self, conversation: u64, user: u64) -> Result<Option<MemberRecord>, StoreError> {
        self.members.get((conversation, user))?.map(|v| decode("members", v.value())).transpose()
    }

    /// The conversation's current members, read once per batch.
    pub(super) fn member_ids(&mut self, conversation: u64) -> Result<Arc<[u64]>, StoreError> {
        if let Some(ids) = self.member_lists.get(&conversation) {
            return Ok(ids.clone());
        }
        let mut ids = Vec::new();
        for row in self.members.range((conversation, 0)..=(conversation, u64::MAX))? {
            ids.push(row?.0.value().1);
        }
        let ids: Arc<[u64]> = ids.into();
        self.member_lists.insert(conversation, ids.clone());
        Ok(ids)
    }

    /// Writes a member row; forgets the cached member list, which a new or
    /// departed member changes.
    fn set_member(&mut self, conversation: u64, user: u64, member: &MemberRecord) -> Result<(), StoreError> {
        self.member_lists.remove(&conversation);
        self.members.insert((conversation, user), encode(member).as_slice())?;
        Ok(())
    }

    /// Adds to a counter in `meta`.
    pub(super) fn meta_add(&mut self, key: &str, by: u64) -> Result<(), StoreError> {
        let now = self.meta.get(key)?.map_or(0, |v| v.value());
        self.meta.insert(key, now.saturating_add(by))?;
        Ok(())
    }

    /// Takes from a counter in `meta`.
    pub(super) fn meta_sub(&mut self, key: &str, by: u64) -> Result<(), StoreError> {
        let now = self.meta.get(key)?.map_or(0, |v| v.value());
        self.meta.insert(key, now.saturating_sub(by))?;
        Ok(())
    }

    /// Writes the stream head moved in this batch. Must come before the
    /// transaction commits, or the next batch would reuse positions.
    pub fn finish(mut self) -> Result<(), StoreError> {
        if let Some(head) = self.stream_head.take() {
            self.meta.insert(STREAM_HEAD, head)?;
        }
        Ok(())
    }

    /// The last stream position given out (0 before the first).
    pub(super) fn stream_head(&mut self) -> Result<u64, StoreError> {
        match self.stream_head {
            Some(head) => Ok(head),
            None => {
                let head = self.meta.get(STREAM_HEAD)?.map(|v| v.value()).unwrap_or(0);
                self.stream_head = Some(head);
                Ok(head)
            }
        }
    }

    /// Gives out the next stream position.
    pub(super) fn next_position(&mut self) -> Result<u64, StoreError> {
        let position = self.stream_head()? + 1;
        self.stream_head = Some(position);
        Ok(position)
    }

    /// Records an event of a conversation at a new position and queues it
    /// for live delivery to `recipients`.
    fn record_event(
        &mut self,
        conversation: u64,
        event: EventRecord,
        recipients: Arc<[u64]>,
        fresh: &mut Vec<Fresh>,
    ) -> Result<u64, StoreError> {
        let position = self.next_position()?;
        self.events.insert((conversation, position), encode(&event).as_slice())?;
        fresh.push(Fresh { conversation, position, event, recipients, marker: 0 });
        Ok(position)
    }

    /// A user's spans in a conversation.
    fn spans_of(&self, user: u64, conversation: u64) -> Result<SpansRecord, StoreError> {
        Ok(self
            .spans
            .get((user, conversation))?
            .map(|v| decode("spans", v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Starts a span: from `position` on, `user` receives the conversation's
    /// events.
    fn open_span(&mut self, user: u64, conversation: u64, position: u64) -> Result<(), StoreError> {
        let mut record = self.spans_of(user, conversation)?;
        record.spans.push(Span { from: position, to: Span::OPEN });
        self.spans.insert((user, conversation), encode(&record).as_slice())?;
        Ok(())
    }

    /// The first span of `user` in a conversation made in this batch: no
    /// span record can exist yet under a new conversation id (ids are never
    /// given out twice), so none is read.
    fn first_span(&mut self, user: u64, conversation: u64, position: u64) -> Result<(), StoreError> {
        let record = SpansRecord { spans: vec![Span { from: position, to: Span::OPEN }] };
        self.spans.insert((user, conversation), encode(&record).as_slice())?;
        Ok(())
    }

    /// Ends the user's open span at `position` (the event that took the
    /// user out, which the user still receives).
    fn close_span(&mut self, user: u64, conversation: u64, position: u64) -> Result<(), StoreError> {
        let mut record = self.spans_of(user, conversation)?;
        if let Some(last) = record.spans.last_mut().filter(|s| s.to == Span::OPEN) {
            last.to = position;
            self.spans.insert((user, conversation), encode(&record).as_slice())?;
        }
        Ok(())
    }

    /// Resolves a target to a conversation the user is a member of.
    fn resolve_member(&self, user: u64, target: &Target) -> Result<(u64, ConversationRecord), StoreError> {
        let id = match target {
            Target::Id(id) => *id,
            Target::Group(name) => self
                .group_names
                .get(name.as_str())?
                .map(|v| v.value())
                .ok_or_else(|| StoreError::NoSuchConversation(target.to_string()))?,
            Target::User(name) => {
                let other = self.user_id(name)?;
                self.direct
                    .get(pair(user, other))?
                    .map(|v| v.value())
                    .ok_or_else(|| StoreError::NoSuchConversation(target.to_string()))?
            }
        };
        let record =
            self.conversation(id)?.ok_or_else(|| StoreError::NoSuchConversation(target.to_string()))?;
        if self.member(id, user)?.is_none() {
            // Whether a conversation with some id exists is not told to
            // outsiders; groups are known by name anyway.
            return Err(match target {
                Target::Id(_) => StoreError::NoSuchConversation(target.to_string()),
                _ => StoreError::NotMember(target.to_string()),
            });
        }
        Ok((id, record))
    }

    fn resolve_group(&self, user: u64, target: &Target) -> Result<(u64, ConversationRecord), StoreError> {
        let (id, record) = self.resolve_member(user, target)?;
        if record.kind != ConversationKindRecord::Group {
            return Err(StoreError::Invalid(format!("{target} is a direct conversation, not a group")));
        }
        Ok((id, record))
    }
}

fn pair(a: u64, b: u64) -> (u64, u64) {
    (a.min(b), a.max(b))
}

/// An event recorded in this batch, kept so that the writer renders it for
/// live delivery without reading it back.
#[derive(Debug, Clone)]
pub struct Fresh {
    pub conversation: u64,
    pub position: u64,
    pub event: EventRecord,
    /// Who hears of it live: the members at the time (and, for a
    /// departure, the one who left).
    pub recipients: Arc<[u64]>,
    /// For a receipt, the marker's new seq (the member row may change again
    /// later in the batch).
    pub marker: u64,
}

/// Applies one operation. New log entries are recorded in `fresh` as
/// (user, position, item); other consequences in `notices`.
pub fn apply(
    t: &mut Tables<'_>,
    op: &WriteOp,
    fresh: &mut Vec<Fresh>,
    notices: &mut Vec<Notice>,
) -> Result<Outcome, StoreError> {
    match op {
        WriteOp::CreateUser { name, password_hash, admin, invite } => {
            create_user(t, name, password_hash, *admin, invite.as_ref())
        }
        WriteOp::AddDevice { user, name, token_hash, max_devices } => {
            retire_beyond_cap(t, *user, *max_devices, notices)?;
            add_device(t, *user, name, token_hash)
        }
        WriteOp::Send { sender, device, to, client_id, text, attachments } => {
            send(t, *sender, *device, to, client_id, (text, attachments), fresh)
        }
        WriteOp::Ack { device, position } => {
            if let Some(mut record) = t.device(*device)?.filter(|d| !d.revoked) {
                if *position > record.cursor {
                    let head = t.stream_head()?;
                    record.cursor = (*position).min(head);
                }
                // An ack is the device in use: it is not the one to retire.
                record.last_used = t.now;
                t.devices.insert(*device, encode(&record).as_slice())?;
            }
            Ok(Outcome::Done)
        }
        WriteOp::Receipt { user, conversation, kind, seq } => {
            receipt(t, *user, conversation, *kind, *seq, fresh)
        }
        WriteOp::CreateGroup { creator, name, members, max_members } => {
            create_group(t, *creator, name, members, *max_members, fresh)
        }
        WriteOp::AddMember { actor, group, user, max_members } => {
            add_member(t, *actor, group, user, *max_members, fresh)
        }
        WriteOp::RemoveMember { actor, group, user } => {
            let (id, record) = t.resolve_group(*actor, group)?;
            if !t.member(id, *actor)?.is_some_and(|m| m.admin) {
                return Err(StoreError::NotAdmin(group.to_string()));
            }
            let target = t.user_id(user)?;
            if t.member(id, target)?.is_none() {
                return Err(StoreError::NotMember(format!("{user} in {group}")));
            }
            drop_member(t, id, record, target, *actor, MembershipChangeRecord::Removed, fresh)?;
            Ok(Outcome::Conversation(id))
        }
        WriteOp::Leave { user, group } => {
            let (id, record) = t.resolve_group(*user, group)?;
            drop_member(t, id, record, *user, *user, MembershipChangeRecord::Left, fresh)?;
            Ok(Outcome::Conversation(id))
        }
        WriteOp::RevokeDevice { user, device } => {
            let mut record = t
                .device(*device)?
                .filter(|d| d.user == *user && !d.revoked)
                .ok_or(StoreError::NoSuchDevice(*device))?;
            revoke(t, *device, &mut record)?;
            notices.push(Notice::DeviceRevoked { user: *user, device: *device });
            Ok(Outcome::Done)
        }
        WriteOp::RemoveUser { name } => remove_user(t, name, fresh, notices),
        WriteOp::Admin(op) => super::admin_ops::apply(t, op, notices),
        WriteOp::Prune(op) => super::prune::apply(t, op),
        WriteOp::Media(op) => super::media::apply(t, op),
        WriteOp::Push(op) => super::push::apply(t, op, notices),
        WriteOp::CreateInvite { token_hash, created_by, uses, expires_at } => {
            let record = InviteRecord {
                created_by: *created_by,
                created_at: t.now,
                expires_at: *expires_at,
                uses_left: (*uses).max(1),
            };
            t.invites.insert(token_hash.as_slice(), encode(&record).as_slice())?;
            Ok(Outcome::Done)
        }
    }
}

pub(super) fn create_user(
    t: &mut Tables<'_>,
    name: &str,
    password_hash: &str,
    admin: bool,
    invite: Option<&[u8; 32]>,
) -> Result<Outcome, StoreError> {
    if !imbox_protocol::names::valid_username(name) {
        return Err(StoreError::Invalid(format!(
            "{name:?} is not a valid user name: use 1-32 of a-z, 0-9, '_', '-', '.', starting with a letter or digit"
        )));
    }
    if t.user_names.get(name)?.is_some() {
        return Err(StoreError::NameTaken(name.to_owned()));
    }
    let invite_record = match invite {
        Some(hash) => {
            let record: InviteRecord = t
                .invites
                .get(hash.as_slice())?
                .map(|v| decode("invites", v.value()))
                .transpose()?
                .ok_or(StoreError::InvalidInvite)?;
            if record.uses_left == 0 || record.expires_at.is_some_and(|at| at <= t.now) {
                return Err(StoreError::InvalidInvite);
            }
            Some((hash, record))
        }
        None => None,
    };
    if let Some((hash, mut record)) = invite_record {
        record.uses_left -= 1;
        if record.uses_left == 0 {
            t.invites.remove(hash.as_slice())?;
        } else {
            t.invites.insert(hash.as_slice(), encode(&record).as_slice())?;
        }
    }
    let id = t.next_id("next_user")?;
    let record = UserRecord {
        name: name.to_owned(),
        password_hash: password_hash.to_owned(),
        admin,
        created_at: t.now,
        removed: false,
        disabled: false,
    };
    t.users.insert(id, encode(&record).as_slice())?;
    t.user_names.insert(name, id)?;
    Ok(Outcome::User(id))
}

fn add_device(
    t: &mut Tables<'_>,
    user: u64,
    name: &str,
    token_hash: &[u8; 32],
) -> Result<Outcome, StoreError> {
    let record =
        t.user(user)?.filter(|u| !u.removed).ok_or_else(|| StoreError::NoSuchUser(user.to_string()))?;
    let id = t.next_id("next_device")?;
    // A new device starts at the head of the stream: it has nothing to
    // catch up on, and history is there for reading the past.
    let head = t.stream_head()?;
    let device = DeviceRecord {
        user,
        name: name.to_owned(),
        created_at: t.now,
        cursor: head,
        revoked: false,
        token_hash: *token_hash,
        last_used: t.now,
    };
    t.devices.insert(id, encode(&device).as_slice())?;
    t.tokens.insert(token_hash.as_slice(), id)?;
    t.user_devices.insert(user, id)?;
    Ok(Outcome::Device(DeviceAuth {
        user,
        username: record.name,
        device: id,
        admin: record.admin,
        cursor: head,
    }))
}

fn send(
    t: &mut Tables<'_>,
    sender: u64,
    device: u64,
    to: &Target,
    client_id: &str,
    (text, attachments): (&str, &[AttachmentRecord]),
    fresh: &mut Vec<Fresh>,
) -> Result<Outcome, StoreError> {
    if let Some(existing) = t.message_ids.get((sender, client_id))? {
        let (conversation, seq) = existing.value();
        let stored: MessageRecord =
            t.messages.get((conversation, seq))?.map(|v| decode("messages", v.value())).transpose()?.ok_or(
                StoreError::Corrupt { table: "message_ids", reason: "points to a missing message".into() },
            )?;
        let same_files = stored.attachments.iter().map(|a| a.id).eq(attachments.iter().map(|a| a.id));
        if stored.text != text || !same_files {
            return Err(StoreError::IdConflict(client_id.to_owned()));
        }
        return Ok(Outcome::Sent(Sent { conversation, seq, sent_at: stored.sent_at, duplicate: true }));
    }
    // Before anything is written: a first message may open a conversation.
    for attachment in attachments {
        super::media::check_sendable(t, sender, &attachment.id, attachment.size)?;
    }
    let (conversation, mut record) = match to {
        Target::User(name) => {
            let other = t.user_id(name)?;
            if other == sender {
                return Err(StoreError::Invalid(
                    "a direct message needs another person: you cannot send to yourself".into(),
                ));
            }
            let existing = t.direct.get(pair(sender, other))?.map(|v| v.value());
            match existing {
                Some(id) => {
                    let record =
                        t.conversation(id)?.ok_or_else(|| StoreError::NoSuchConversation(to.to_string()))?;
                    (id, record)
                }
                None => open_direct(t, sender, other)?,
            }
        }
        other => t.resolve_member(sender, other)?,
    };
    let seq = record.last_seq + 1;
    let sent_at = t.now;
    for attachment in attachments {
        super::media::reference(t, &attachment.id, conversation, seq)?;
    }
    let message = MessageRecord {
        sender,
        device,
        client_id: client_id.to_owned(),
        sent_at,
        text: text.to_owned(),
        attachments: attachments.iter().map(|a| AttachmentRecord { expired: false, ..a.clone() }).collect(),
    };
    t.messages.insert((conversation, seq), encode(&message).as_slice())?;
    t.message_ids.insert((sender, client_id), (conversation, seq))?;
    record.last_seq = seq;
    t.conversations.insert(conversation, encode(&record).as_slice())?;
    let members = t.member_ids(conversation)?;
    t.record_event(conversation, EventRecord::Message { seq }, members, fresh)?;
    Ok(Outcome::Sent(Sent { conversation, seq, sent_at, duplicate: false }))
}

/// Opens the direct conversation of two users, who receive its events from
/// its first message on (the next stream position).
fn open_direct(t: &mut Tables<'_>, a: u64, b: u64) -> Result<(u64, ConversationRecord), StoreError> {
    let id = t.next_id("next_conversation")?;
    let record = ConversationRecord {
        kind: ConversationKindRecord::Direct,
        name: String::new(),
        pair: pair(a, b),
        created_at: t.now,
        last_seq: 0,
        member_count: 2,
        retention_days: None,
    };
    t.conversations.insert(id, encode(&record).as_slice())?;
    t.direct.insert(pair(a, b), id)?;
    let member = MemberRecord::joining(false, 0);
    let first = t.stream_head()? + 1;
    let (low, high) = pair(a, b);
    for user in [low, high] {
        t.set_member(id, user, &member)?;
        t.user_conversations.insert(user, id)?;
        t.first_span(user, id, first)?;
    }
    // The member list as `member_ids` would read it back (by user id): the
    // message that opens the conversation needs it at once. Nearly every
    // message of a load that picks random pairs opens one.
    t.member_lists.insert(id, Arc::from([low, high]));
    Ok((id, record))
}

fn receipt(
    t: &mut Tables<'_>,
    user: u64,
    target: &Target,
    kind: ReceiptKind,
    seq: u64,
    fresh: &mut Vec<Fresh>,
) -> Result<Outcome, StoreError> {
    let (id, record) = t.resolve_member(user, target)?;
    let Some(mut member) = t.member(id, user)? else {
        return Err(StoreError::NotMember(target.to_string()));
    };
    let seq = seq.min(record.last_seq);
    let (mark, row, kind) = match kind {
        ReceiptKind::Delivered => {
            (&mut member.delivered_seq, &mut member.delivered_pos, ReceiptKindRecord::Delivered)
        }
        ReceiptKind::Read => (&mut member.read_seq, &mut member.read_pos, ReceiptKindRecord::Read),
    };
    if seq <= *mark {
        // Marks only move forward; an old receipt changes nothing and tells nobody.
        return Ok(Outcome::Done);
    }
    *mark = seq;
    // The marker's one row moves to a new position: devices that synced
    // past the old one learn the new value, and the row count stays one per
    // member and kind whatever the group's size.
    if *row != 0 {
        t.events.remove((id, *row))?;
    }
    let position = t.next_position()?;
    *row = position;
    let event = EventRecord::Receipt { user, kind };
    t.events.insert((id, position), encode(&event).as_slice())?;
    if kind == ReceiptKindRecord::Read && member.delivered_seq < seq {
        // Read implies delivered; its own row stays where it is.
        member.delivered_seq = seq;
    }
    t.set_member(id, user, &member)?;
    let recipients = t.member_ids(id)?;
    fresh.push(Fresh { conversation: id, position, event, recipients, marker: seq });
    Ok(Outcome::Done)
}

fn create_group(
    t: &mut Tables<'_>,
    creator: u64,
    name: &str,
    members: &[String],
    max_members: u32,
    fresh: &mut Vec<Fresh>,
) -> Result<Outcome, StoreError> {
    if !imbox_protocol::names::valid_group_name(name) {
        return Err(StoreError::Invalid(format!(
            "{name:?} is not a valid group name: use 1-64 of a-z, 0-9, '_', '-', '.', starting with a letter or digit"
        )));
    }
    if t.group_names.get(name)?.is_some() {
        return Err(StoreError::NameTaken(name.to_owned()));
    }
    let mut ids = vec![creator];
    for member in members {
        let id = t.user_id(member)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.len() > max_members as usize {
        return Err(StoreError::TooManyMembers(max_members));
    }
    let id = t.next_id("next_conversation")?;
    let record = ConversationRecord {
        kind: ConversationKindRecord::Group,
        name: name.to_owned(),
        pair: (0, 0),
        created_at: t.now,
        last_seq: 0,
        member_count: ids.len() as u32,
        retention_days: None,
    };
    t.conversations.insert(id, encode(&record).as_slice())?;
    t.group_names.insert(name, id)?;
    // One `created` event for the whole group, which every first member
    // receives: the member list is in `conversations`.
    let position = t.stream_head()? + 1;
    for &user in &ids {
        t.set_member(id, user, &MemberRecord::joining(user == creator, 0))?;
        t.user_conversations.insert(user, id)?;
        t.first_span(user, id, position)?;
    }
    let members = t.member_ids(id)?;
    let event =
        EventRecord::Membership { user: creator, change: MembershipChangeRecord::Created, by: creator };
    t.record_event(id, event, members, fresh)?;
    Ok(Outcome::Conversation(id))
}

fn add_member(
    t: &mut Tables<'_>,
    actor: u64,
    group: &Target,
    user: &str,
    max_members: u32,
    fresh: &mut Vec<Fresh>,
) -> Result<Outcome, StoreError> {
    let (id, mut record) = t.resolve_group(actor, group)?;
    if !t.member(id, actor)?.is_some_and(|m| m.admin) {
        return Err(StoreError::NotAdmin(group.to_string()));
    }
    let target = t.user_id(user)?;
    if t.member(id, target)?.is_some() {
        return Err(StoreError::AlreadyMember { user: user.to_owned(), group: group.to_string() });
    }
    if record.member_count >= max_members {
        return Err(StoreError::TooManyMembers(max_members));
    }
    // A new member reads from the moment of joining, not the group's past.
    t.set_member(id, target, &MemberRecord::joining(false, record.last_seq))?;
    t.user_conversations.insert(target, id)?;
    record.member_count += 1;
    t.conversations.insert(id, encode(&record).as_slice())?;
    // The new member's span starts with the event that announces it.
    let position = t.stream_head()? + 1;
    t.open_span(target, id, position)?;
    let members = t.member_ids(id)?;
    let event = EventRecord::Membership { user: target, change: MembershipChangeRecord::Added, by: actor };
    t.record_event(id, event, members, fresh)?;
    Ok(Outcome::Conversation(id))
}

/// Takes `user` out of a group and tells everyone who was in it. When the
/// last admin goes, the longest-standing remaining member (lowest id) becomes
/// admin, so that no group is left unmanageable.
fn drop_member(
    t: &mut Tables<'_>,
    id: u64,
    mut record: ConversationRecord,
    user: u64,
    by: u64,
    change: MembershipChangeRecord,
    fresh: &mut Vec<Fresh>,
) -> Result<(), StoreError> {
    let before = t.member_ids(id)?;
    if let Some(member) = t.member(id, user)? {
        // A departed member's markers go with it.
        for row in [member.delivered_pos, member.read_pos].into_iter().filter(|&p| p != 0) {
            t.events.remove((id, row))?;
        }
    }
    t.member_lists.remove(&id);
    t.members.remove((id, user))?;
    t.user_conversations.remove(user, id)?;
    record.member_count = record.member_count.saturating_sub(1);
    t.conversations.insert(id, encode(&record).as_slice())?;
    let remaining: Vec<u64> = before.iter().copied().filter(|&m| m != user).collect();
    let mut has_admin = false;
    for &m in &remaining {
        has_admin |= t.member(id, m)?.is_some_and(|r| r.admin);
    }
    if !has_admin {
        if let Some(&heir) = remaining.first() {
            if let Some(mut r) = t.member(id, heir)? {
                r.admin = true;
                t.set_member(id, heir, &r)?;
            }
        }
    }
    // Everyone who was in it hears of it, the one who went included, whose
    // span ends with this event.
    let position = t.record_event(id, EventRecord::Membership { user, change, by }, before, fresh)?;
    t.close_span(user, id, position)
}

/// Revokes a device by deleting it: its token, its record (name, cursor),
/// its place in the user's list and its push registration. Nothing else
/// refers to it but the sender device of messages, which is only a number.
/// (Every caller tells the router, which tells the push sender.)
fn revoke(t: &mut Tables<'_>, device: u64, record: &mut DeviceRecord) -> Result<(), StoreError> {
    record.revoked = true;
    t.push.remove(device)?;
    t.tokens.remove(record.token_hash.as_slice())?;
    t.devices.remove(device)?;
    t.user_devices.remove(record.user, device)?;
    Ok(())
}

/// Makes room for one more device of `user` under the cap: revokes the
/// longest-unused devices (last acknowledged, or added, longest ago; the
/// oldest first on a tie) until fewer than `max` remain, and tells their
/// sessions. Rows of devices revoked by older versions go too.
fn retire_beyond_cap(
    t: &mut Tables<'_>,
    user: u64,
    max: u32,
    notices: &mut Vec<Notice>,
) -> Result<(), StoreError> {
    if max == 0 {
        return Ok(());
    }
    let ids: Vec<u64> = t.user_devices.get(user)?.map(|d| d.map(|v| v.value())).collect::<Result<_, _>>()?;
    let mut active = Vec::with_capacity(ids.len());
    for id in ids {
        match t.device(id)? {
            Some(mut d) if d.revoked => revoke(t, id, &mut d)?,
            Some(d) => active.push((d.last_used.max(d.created_at), id, d)),
            None => {
                t.user_devices.remove(user, id)?;
            }
        }
    }
    active.sort_unstable_by_key(|(used, id, _)| (*used, *id));
    let excess = (active.len() + 1).saturating_sub(max as usize);
    for (_, id, mut record) in active.into_iter().take(excess) {
        tracing::info!(user, device = id, name = %record.name, "device cap reached: the longest-unused device is retired");
        revoke(t, id, &mut record)?;
        notices.push(Notice::DeviceRevoked { user, device: id });
    }
    Ok(())
}

fn remove_user(
    t: &mut Tables<'_>,
    name: &str,
    fresh: &mut Vec<Fresh>,
    notices: &mut Vec<Notice>,
) -> Result<Outcome, StoreError> {
    let id = t.user_id(name)?;
    let mut record = t.user(id)?.ok_or_else(|| StoreError::NoSuchUser(name.to_owned()))?;
    let devices: Vec<u64> =
        t.user_devices.get(id)?.map(|d| d.map(|v| v.value())).collect::<Result<_, _>>()?;
    for device in devices {
        if let Some(mut d) = t.device(device)? {
            revoke(t, device, &mut d)?;
        }
    }
    let conversations: Vec<u64> =
        t.user_conversations.get(id)?.map(|c| c.map(|v| v.value())).collect::<Result<_, _>>()?;
    for conversation in conversations {
        if let Some(conv) = t.conversation(conversation)?.filter(|c| c.kind == ConversationKindRecord::Group)
        {
            drop_member(t, conversation, conv, id, id, MembershipChangeRecord::Removed, fresh)?;
        }
    }
    record.removed = true;
    t.users.insert(id, encode(&record).as_slice())?;
    t.user_names.remove(name)?;
    notices.push(Notice::UserRemoved { user: id });
    Ok(Outcome::Done)
}

/// Reads a record through any readable table (write or read transaction).
pub fn get_record<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    name: &'static str,
    key: u64,
) -> Result<Option<T>, StoreError> {
    table.get(key)?.map(|v| decode(name, v.value())).transpose()
}
