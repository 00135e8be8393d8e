//! Turns stored records into what a particular user sees: names instead of
//! ids, and each conversation labelled from that user's side.

use std::cell::RefCell;
use std::collections::HashMap;

use imbox_protocol::{Item, Membership, MembershipChange, Message, Receipt, ReceiptKind};
use redb::ReadableTable;

use super::apply::get_record;
use super::records::*;
use super::StoreError;

/// The three tables rendering reads, from a read or a write transaction,
/// and what was read from them already. A batch or a page renders the same
/// users, conversations and messages many times over (a message goes to
/// every member; a page holds one conversation's messages), and each read is
/// a B-tree lookup and a decode: the caches keep that to one each. A lookup
/// lives for one batch or one page, so nothing in it goes stale.
pub struct Lookup<'a, U, C, M> {
    users: &'a U,
    conversations: &'a C,
    messages: &'a M,
    names: RefCell<HashMap<u64, String>>,
    records: RefCell<HashMap<u64, ConversationRecord>>,
    /// Messages as rendered, labelled for nobody yet.
    rendered: RefCell<HashMap<(u64, u64), Message>>,
}

impl<'a, U, C, M> Lookup<'a, U, C, M>
where
    U: ReadableTable<u64, &'static [u8]>,
    C: ReadableTable<u64, &'static [u8]>,
    M: ReadableTable<(u64, u64), &'static [u8]>,
{
    pub fn new(users: &'a U, conversations: &'a C, messages: &'a M) -> Self {
        Lookup {
            users,
            conversations,
            messages,
            names: RefCell::default(),
            records: RefCell::default(),
            rendered: RefCell::default(),
        }
    }

    pub fn username(&self, user: u64) -> Result<String, StoreError> {
        if let Some(name) = self.names.borrow().get(&user) {
            return Ok(name.clone());
        }
        let name = get_record::<UserRecord>(self.users, "users", user)?
            .map(|u| u.name)
            .unwrap_or_else(|| format!("user-{user}"));
        self.names.borrow_mut().insert(user, name.clone());
        Ok(name)
    }

    pub fn conversation(&self, id: u64) -> Result<ConversationRecord, StoreError> {
        if let Some(record) = self.records.borrow().get(&id) {
            return Ok(record.clone());
        }
        let record: ConversationRecord =
            get_record(self.conversations, "conversations", id)?.ok_or(StoreError::Corrupt {
                table: "conversations",
                reason: format!("conversation {id} is missing"),
            })?;
        self.records.borrow_mut().insert(id, record.clone());
        Ok(record)
    }

    /// `#group`, or for a direct conversation the other person's name.
    pub fn label(&self, record: &ConversationRecord, viewer: u64) -> Result<String, StoreError> {
        match record.kind {
            ConversationKindRecord::Group => Ok(format!("#{}", record.name)),
            ConversationKindRecord::Direct => {
                let other = if record.pair.0 == viewer { record.pair.1 } else { record.pair.0 };
                self.username(other)
            }
        }
    }

    pub fn message(&self, conversation: u64, label: &str, seq: u64) -> Result<Message, StoreError> {
        self.kept_message(conversation, label, seq)?.ok_or(StoreError::Corrupt {
            table: "messages",
            reason: format!("message {conversation}/{seq} is missing"),
        })
    }

    /// A message, or `None` when retention deleted it (legacy log rows
    /// still name messages that expired).
    fn kept_message(&self, conversation: u64, label: &str, seq: u64) -> Result<Option<Message>, StoreError> {
        if let Some(message) = self.rendered.borrow().get(&(conversation, seq)) {
            return Ok(Some(Message { chat: label.to_owned(), ..message.clone() }));
        }
        let Some(record) = self
            .messages
            .get((conversation, seq))?
            .map(|v| decode::<MessageRecord>("messages", v.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        let message = Message {
            conversation,
            chat: label.to_owned(),
            seq,
            from: self.username(record.sender)?,
            from_device: record.device,
            id: record.client_id,
            sent_at: record.sent_at,
            text: record.text,
            attachments: record.attachments.into_iter().map(attachment).collect(),
        };
        self.rendered.borrow_mut().insert((conversation, seq), message.clone());
        Ok(Some(message))
    }

    /// Renders a conversation's event for `viewer`; `marker` is the seq of
    /// a receipt marker. `None` for a message that retention deleted (its
    /// event goes in the same transaction, so only a legacy log row, which
    /// [`Lookup::item`] renders, can still name one).
    pub fn event(
        &self,
        conversation: u64,
        event: &EventRecord,
        viewer: u64,
        marker: u64,
    ) -> Result<Option<Item>, StoreError> {
        Ok(match *event {
            EventRecord::Message { seq } => {
                let label = self.label(&self.conversation(conversation)?, viewer)?;
                return Ok(self.kept_message(conversation, &label, seq)?.map(Item::Message));
            }
            EventRecord::Receipt { user, kind } => {
                self.item(&LogItem::Receipt { conversation, user, kind, seq: marker }, viewer)?
            }
            EventRecord::Membership { user, change, by } => {
                self.item(&LogItem::Membership { conversation, user, change, by }, viewer)?
            }
        })
    }

    /// Whether the conversation's label is the same for every reader (a
    /// group's), so that one rendering serves all its members.
    pub fn shared_label(&self, conversation: u64) -> Result<bool, StoreError> {
        Ok(self.conversation(conversation)?.kind == ConversationKindRecord::Group)
    }

    /// Renders a legacy log row (or an event, as one) for `viewer`; `None`
    /// for a message that retention deleted.
    pub fn item(&self, item: &LogItem, viewer: u64) -> Result<Option<Item>, StoreError> {
        Ok(Some(match *item {
            LogItem::Message { conversation, seq } => {
                let label = self.label(&self.conversation(conversation)?, viewer)?;
                return Ok(self.kept_message(conversation, &label, seq)?.map(Item::Message));
            }
            LogItem::Receipt { conversation, user, kind, seq } => Item::Receipt(Receipt {
                conversation,
                chat: self.label(&self.conversation(conversation)?, viewer)?,
                user: self.username(user)?,
                kind: match kind {
                    ReceiptKindRecord::Delivered => ReceiptKind::Delivered,
                    ReceiptKindRecord::Read => ReceiptKind::Read,
                },
                seq,
            }),
            LogItem::Membership { conversation, user, change, by } => Item::Membership(Membership {
                conversation,
                chat: self.label(&self.conversation(conversation)?, viewer)?,
                user: self.username(user)?,
                change: match change {
                    MembershipChangeRecord::Created => MembershipChange::Created,
                    MembershipChangeRecord::Added => MembershipChange::Added,
                    MembershipChangeRecord::Removed => MembershipChange::Removed,
                    MembershipChangeRecord::Left => MembershipChange::Left,
                },
                by: self.username(by)?,
            }),
        }))
    }
}

/// An attachment as the protocol describes it.
pub fn attachment(record: AttachmentRecord) -> imbox_protocol::Attachment {
    imbox_protocol::Attachment {
        id: super::media::hex(&record.id),
        media_type: record.media_type,
        size: record.size,
        name: record.name,
        width: record.width,
        height: record.height,
        duration_ms: record.duration_ms,
        blurhash: record.blurhash,
        thumbnail: record.thumbnail,
        expired: record.expired,
    }
}
