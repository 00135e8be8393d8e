//! Turns stored records into what a particular user sees: names instead of
//! ids, and each conversation labelled from that user's side.

use imbox_protocol::{Item, Membership, MembershipChange, Message, Receipt, ReceiptKind};
use redb::ReadableTable;

use super::apply::get_record;
use super::records::*;
use super::StoreError;

/// The three tables rendering reads, from a read or a write transaction.
pub struct Lookup<'a, U, C, M> {
    pub users: &'a U,
    pub conversations: &'a C,
    pub messages: &'a M,
}

impl<'a, U, C, M> Lookup<'a, U, C, M>
where
    U: ReadableTable<u64, &'static [u8]>,
    C: ReadableTable<u64, &'static [u8]>,
    M: ReadableTable<(u64, u64), &'static [u8]>,
{
    pub fn username(&self, user: u64) -> Result<String, StoreError> {
        Ok(get_record::<UserRecord>(self.users, "users", user)?
            .map(|u| u.name)
            .unwrap_or_else(|| format!("user-{user}")))
    }

    pub fn conversation(&self, id: u64) -> Result<ConversationRecord, StoreError> {
        get_record(self.conversations, "conversations", id)?.ok_or(StoreError::Corrupt {
            table: "conversations",
            reason: format!("conversation {id} is missing"),
        })
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
        let record: MessageRecord = self
            .messages
            .get((conversation, seq))?
            .map(|v| decode("messages", v.value()))
            .transpose()?
            .ok_or(StoreError::Corrupt {
                table: "messages",
                reason: format!("message {conversation}/{seq} is missing"),
            })?;
        Ok(Message {
            conversation,
            chat: label.to_owned(),
            seq,
            from: self.username(record.sender)?,
            from_device: record.device,
            id: record.client_id,
            sent_at: record.sent_at,
            text: record.text,
        })
    }

    pub fn item(&self, item: &LogItem, viewer: u64) -> Result<Item, StoreError> {
        Ok(match *item {
            LogItem::Message { conversation, seq } => {
                let label = self.label(&self.conversation(conversation)?, viewer)?;
                Item::Message(self.message(conversation, &label, seq)?)
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
        })
    }
}
