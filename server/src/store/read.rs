//! Queries, each in its own read transaction.

use imbox_protocol::{
    ConversationInfo, ConversationKind, DeviceInfo, Entry, Item, MemberMarks, Message, Target,
};
use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable};

use super::apply::get_record;
use super::records::*;
use super::render::Lookup;
use super::{Credentials, DeviceAuth, StoreError, UserSummary};

type ById = ReadOnlyTable<u64, &'static [u8]>;
type ReadLookup<'a> = Lookup<'a, ById, ById, ReadOnlyTable<(u64, u64), &'static [u8]>>;

struct Reader {
    users: ReadOnlyTable<u64, &'static [u8]>,
    conversations: ReadOnlyTable<u64, &'static [u8]>,
    messages: ReadOnlyTable<(u64, u64), &'static [u8]>,
    txn: redb::ReadTransaction,
}

impl Reader {
    fn new(db: &Database) -> Result<Reader, StoreError> {
        let txn = db.begin_read()?;
        Ok(Reader {
            users: txn.open_table(USERS)?,
            conversations: txn.open_table(CONVERSATIONS)?,
            messages: txn.open_table(MESSAGES)?,
            txn,
        })
    }

    fn lookup(&self) -> ReadLookup<'_> {
        Lookup::new(&self.users, &self.conversations, &self.messages)
    }

    fn user_id(&self, name: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.txn.open_table(USER_NAMES)?.get(name)?.map(|v| v.value()))
    }

    /// Resolves a target to a conversation id the viewer belongs to; `None`
    /// for a direct conversation that does not exist yet.
    fn resolve(&self, viewer: u64, target: &Target) -> Result<Option<(u64, MemberRecord)>, StoreError> {
        let id = match target {
            Target::Id(id) => Some(*id),
            Target::Group(name) => Some(
                self.txn
                    .open_table(GROUP_NAMES)?
                    .get(name.as_str())?
                    .map(|v| v.value())
                    .ok_or_else(|| StoreError::NoSuchConversation(target.to_string()))?,
            ),
            Target::User(name) => {
                let other = self.user_id(name)?.ok_or_else(|| StoreError::NoSuchUser(name.clone()))?;
                let key = (viewer.min(other), viewer.max(other));
                self.txn.open_table(DIRECT)?.get(key)?.map(|v| v.value())
            }
        };
        let Some(id) = id else { return Ok(None) };
        let member: Option<MemberRecord> = self
            .txn
            .open_table(MEMBERS)?
            .get((id, viewer))?
            .map(|v| decode("members", v.value()))
            .transpose()?;
        match member {
            Some(member) => Ok(Some((id, member))),
            // Whether the conversation exists is not told to outsiders.
            None if matches!(target, Target::Id(_)) => {
                Err(StoreError::NoSuchConversation(target.to_string()))
            }
            None => Err(StoreError::NotMember(target.to_string())),
        }
    }

    fn info(&self, viewer: u64, id: u64) -> Result<ConversationInfo, StoreError> {
        let lookup = self.lookup();
        let record = lookup.conversation(id)?;
        let members_table = self.txn.open_table(MEMBERS)?;
        let mut members = Vec::new();
        let mut admins = Vec::new();
        let mut read_seq = 0;
        let mut marks = Vec::new();
        for row in members_table.range((id, 0)..=(id, u64::MAX))? {
            let (key, value) = row?;
            let user = key.value().1;
            let member: MemberRecord = decode("members", value.value())?;
            let name = lookup.username(user)?;
            if member.admin {
                admins.push(name.clone());
            }
            if user == viewer {
                read_seq = member.read_seq;
            } else if member.delivered_seq.max(member.read_seq) > member.visible_after {
                // Only markers a member moved: a member who joined later
                // starts at the join, which is not a receipt.
                marks.push(MemberMarks {
                    user: name.clone(),
                    delivered: member.delivered_seq.max(member.read_seq),
                    read: member.read_seq,
                });
            }
            members.push(name);
        }
        Ok(ConversationInfo {
            id,
            kind: match record.kind {
                ConversationKindRecord::Direct => ConversationKind::Direct,
                ConversationKindRecord::Group => ConversationKind::Group,
            },
            chat: lookup.label(&record, viewer)?,
            members,
            admins,
            last_seq: record.last_seq,
            read_seq,
            marks,
        })
    }
}

pub fn authenticate(db: &Database, hash: &[u8; 32]) -> Result<Option<DeviceAuth>, StoreError> {
    let txn = db.begin_read()?;
    let Some(device) = txn.open_table(TOKENS)?.get(hash.as_slice())?.map(|v| v.value()) else {
        return Ok(None);
    };
    let Some(record) = get_record::<DeviceRecord>(&txn.open_table(DEVICES)?, "devices", device)? else {
        return Ok(None);
    };
    if record.revoked {
        return Ok(None);
    }
    let Some(user) = get_record::<UserRecord>(&txn.open_table(USERS)?, "users", record.user)? else {
        return Ok(None);
    };
    if user.removed || user.disabled {
        return Ok(None);
    }
    Ok(Some(DeviceAuth {
        user: record.user,
        username: user.name,
        device,
        admin: user.admin,
        cursor: record.cursor,
    }))
}

pub fn credentials(db: &Database, name: &str) -> Result<Option<Credentials>, StoreError> {
    let reader = Reader::new(db)?;
    let Some(id) = reader.user_id(name)? else { return Ok(None) };
    Ok(get_record::<UserRecord>(&reader.users, "users", id)?.filter(|u| !u.removed).map(|u| Credentials {
        user: id,
        username: u.name,
        admin: u.admin,
        disabled: u.disabled,
        password_hash: u.password_hash,
    }))
}

/// A page of a user's stream after a cursor.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// More entries follow the page.
    pub more: bool,
    /// The cursor was below what the box still keeps for this user (the
    /// device was away longer than `storage.device_inactive_days`): some of
    /// what happened meanwhile is not in the stream any more.
    pub resync: bool,
}

/// One conversation's events within one of the user's spans, as a source
/// of the merge.
struct Source<'t> {
    conversation: u64,
    rows: redb::Range<'t, (u64, u64), &'static [u8]>,
}

/// The user's entries after `since`, at most `limit`, in position order:
/// first what is left of the legacy per-user log (every legacy position is
/// below `stream_base`), then the events of every conversation the user was
/// a member of, merged by position. Each source is one B-tree range, so a
/// page costs a seek per conversation the user is in, plus the entries.
/// About the most bytes of entries one page holds, whatever its `limit`: a
/// page is one frame, and messages with long texts and many attachment
/// descriptions (with thumbnails) could otherwise add up past what a client
/// accepts in one frame (16 MiB). A page ends early, with `more`.
pub const PAGE_BYTES: usize = 4 << 20;

/// What an item takes in a frame, roughly (from above).
fn approx_size(item: &Item) -> usize {
    match item {
        Item::Message(m) => message_size(m),
        _ => 256,
    }
}

/// What a message takes in a frame, roughly (from above).
fn message_size(m: &Message) -> usize {
    let files: usize = m
        .attachments
        .iter()
        .map(|a| {
            a.name.len()
                + a.media_type.len()
                + a.thumbnail.as_ref().map_or(0, String::len)
                + a.blurhash.as_ref().map_or(0, String::len)
                + 192
        })
        .sum();
    m.text.len() + m.chat.len() + m.from.len() + m.id.len() + files + 128
}

pub fn stream_page(db: &Database, user: u64, since: u64, limit: u32) -> Result<Page, StoreError> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    let reader = Reader::new(db)?;
    let lookup = reader.lookup();
    let limit = limit as usize;
    let meta = reader.txn.open_table(META)?;
    let base = meta.get(STREAM_BASE)?.map_or(1, |v| v.value());
    let pruned = reader.txn.open_table(PRUNED)?.get(user)?.map_or(0, |v| v.value());
    let mut page = Page { resync: since < pruned, ..Page::default() };
    let mut bytes = 0;
    let from = since.saturating_add(1);
    if from < base {
        let log = reader.txn.open_table(LOG)?;
        for row in log.range((user, from)..(user, base))? {
            if page.entries.len() >= limit || bytes >= PAGE_BYTES {
                page.more = true;
                return Ok(page);
            }
            let (key, value) = row?;
            let item: LogItem = decode("log", value.value())?;
            // A message that retention deleted is skipped; the row itself
            // goes when pruning reaches it.
            if let Some(item) = lookup.item(&item, user)? {
                bytes += approx_size(&item);
                page.entries.push(Entry { position: key.value().1, item });
            }
        }
    }
    let events = reader.txn.open_table(EVENTS)?;
    let members = reader.txn.open_table(MEMBERS)?;
    let mut sources = Vec::new();
    for row in reader.txn.open_table(SPANS)?.range((user, 0)..=(user, u64::MAX))? {
        let (key, value) = row?;
        let conversation = key.value().1;
        let record: SpansRecord = decode("spans", value.value())?;
        for span in record.spans.iter().filter(|s| s.to >= from) {
            let start = span.from.max(from);
            let rows = events.range((conversation, start)..=(conversation, span.to))?;
            sources.push(Source { conversation, rows });
        }
    }
    // The position of each source's next row, smallest first; the row
    // itself waits in `next`.
    let mut heads = BinaryHeap::new();
    let mut next: Vec<Option<EventRecord>> = vec![None; sources.len()];
    for (index, source) in sources.iter_mut().enumerate() {
        if let Some(row) = source.rows.next() {
            let (key, value) = row?;
            next[index] = Some(decode("events", value.value())?);
            heads.push(Reverse((key.value().1, index)));
        }
    }
    while let Some(Reverse((position, index))) = heads.pop() {
        let Some(event) = next[index].take() else { continue };
        if page.entries.len() >= limit || bytes >= PAGE_BYTES {
            page.more = true;
            break;
        }
        let conversation = sources[index].conversation;
        let marker = match event {
            EventRecord::Receipt { user: member, kind } => {
                let record: Option<MemberRecord> =
                    members.get((conversation, member))?.map(|v| decode("members", v.value())).transpose()?;
                match (record, kind) {
                    (Some(m), ReceiptKindRecord::Delivered) => Some(m.delivered_seq),
                    (Some(m), ReceiptKindRecord::Read) => Some(m.read_seq),
                    // Its member left: the row goes with the member, in
                    // the same transaction, so this is not seen; skip it.
                    (None, _) => None,
                }
            }
            _ => Some(0),
        };
        if let Some(marker) = marker {
            if let Some(item) = lookup.event(conversation, &event, user, marker)? {
                bytes += approx_size(&item);
                page.entries.push(Entry { position, item });
            }
        }
        if let Some(row) = sources[index].rows.next() {
            let (key, value) = row?;
            next[index] = Some(decode("events", value.value())?);
            heads.push(Reverse((key.value().1, index)));
        }
    }
    Ok(page)
}

pub fn history(
    db: &Database,
    viewer: u64,
    target: &Target,
    before: Option<u64>,
    limit: u32,
) -> Result<(Vec<Message>, bool), StoreError> {
    let reader = Reader::new(db)?;
    let Some((id, member)) = reader.resolve(viewer, target)? else {
        return Ok((Vec::new(), false));
    };
    let lookup = reader.lookup();
    let label = lookup.label(&lookup.conversation(id)?, viewer)?;
    let end = before.unwrap_or(u64::MAX);
    let start = member.visible_after.saturating_add(1);
    if end <= start {
        return Ok((Vec::new(), false));
    }
    let messages = reader.txn.open_table(MESSAGES)?;
    let mut page = Vec::with_capacity(limit.min(1024) as usize);
    let mut more = false;
    let mut bytes = 0;
    for row in messages.range((id, start)..(id, end))?.rev() {
        if page.len() >= limit as usize || bytes >= PAGE_BYTES {
            more = true;
            break;
        }
        let (key, _) = row?;
        let message = lookup.message(id, &label, key.value().1)?;
        bytes += message_size(&message);
        page.push(message);
    }
    page.reverse();
    Ok((page, more))
}

pub fn conversations(db: &Database, user: u64) -> Result<Vec<ConversationInfo>, StoreError> {
    let reader = Reader::new(db)?;
    let ids: Vec<u64> = reader
        .txn
        .open_multimap_table(USER_CONVERSATIONS)?
        .get(user)?
        .map(|v| v.map(|v| v.value()))
        .collect::<Result<_, _>>()?;
    ids.into_iter().map(|id| reader.info(user, id)).collect()
}

pub fn conversation(db: &Database, user: u64, id: u64) -> Result<ConversationInfo, StoreError> {
    let reader = Reader::new(db)?;
    reader.resolve(user, &Target::Id(id))?;
    reader.info(user, id)
}

pub fn devices(db: &Database, user: u64, current: u64) -> Result<Vec<DeviceInfo>, StoreError> {
    let txn = db.begin_read()?;
    let devices = txn.open_table(DEVICES)?;
    let mut out = Vec::new();
    for id in txn.open_multimap_table(USER_DEVICES)?.get(user)? {
        let id = id?.value();
        if let Some(record) = get_record::<DeviceRecord>(&devices, "devices", id)?.filter(|d| !d.revoked) {
            out.push(DeviceInfo {
                id,
                name: record.name,
                created_at: record.created_at,
                cursor: record.cursor,
                current: id == current,
            });
        }
    }
    Ok(out)
}

pub fn users(db: &Database) -> Result<Vec<UserSummary>, StoreError> {
    let txn = db.begin_read()?;
    let users = txn.open_table(USERS)?;
    let devices = txn.open_table(DEVICES)?;
    let user_devices = txn.open_multimap_table(USER_DEVICES)?;
    let mut out = Vec::new();
    for row in users.iter()? {
        let (key, value) = row?;
        let record: UserRecord = decode("users", value.value())?;
        if record.removed {
            continue;
        }
        let mut count = 0;
        for device in user_devices.get(key.value())? {
            if get_record::<DeviceRecord>(&devices, "devices", device?.value())?.is_some_and(|d| !d.revoked) {
                count += 1;
            }
        }
        out.push(UserSummary {
            id: key.value(),
            name: record.name,
            admin: record.admin,
            created_at: record.created_at,
            devices: count,
            disabled: record.disabled,
        });
    }
    Ok(out)
}

pub fn contacts(db: &Database, user: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
    let txn = db.begin_read()?;
    let members = txn.open_table(MEMBERS)?;
    let mut out = Vec::new();
    for conversation in txn.open_multimap_table(USER_CONVERSATIONS)?.get(user)? {
        let conversation = conversation?.value();
        for row in members.range((conversation, 0)..=(conversation, u64::MAX))? {
            let other = row?.0.value().1;
            if other != user && !out.contains(&other) {
                out.push(other);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

pub fn members_for(
    db: &Database,
    viewer: u64,
    target: &Target,
) -> Result<(u64, String, Vec<u64>), StoreError> {
    let reader = Reader::new(db)?;
    let (id, _) =
        reader.resolve(viewer, target)?.ok_or_else(|| StoreError::NoSuchConversation(target.to_string()))?;
    let lookup = reader.lookup();
    let label = lookup.label(&lookup.conversation(id)?, viewer)?;
    let mut users = Vec::new();
    for row in reader.txn.open_table(MEMBERS)?.range((id, 0)..=(id, u64::MAX))? {
        users.push(row?.0.value().1);
    }
    Ok((id, label, users))
}

pub fn username(db: &Database, user: u64) -> Result<Option<String>, StoreError> {
    let txn = db.begin_read()?;
    Ok(get_record::<UserRecord>(&txn.open_table(USERS)?, "users", user)?.map(|u| u.name))
}

/// The names of the users among `users` that exist, in one read.
pub fn usernames(db: &Database, users: &[u64]) -> Result<Vec<String>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(USERS)?;
    let mut names = Vec::with_capacity(users.len());
    for &user in users {
        if let Some(record) = get_record::<UserRecord>(&table, "users", user)? {
            names.push(record.name);
        }
    }
    Ok(names)
}

/// The last stream position given out (0 before the first).
pub fn stream_head(db: &Database) -> Result<u64, StoreError> {
    let txn = db.begin_read()?;
    Ok(txn.open_table(META)?.get(STREAM_HEAD)?.map_or(0, |v| v.value()))
}

pub fn invite_usable(db: &Database, hash: &[u8; 32]) -> Result<bool, StoreError> {
    let txn = db.begin_read()?;
    let invite: Option<InviteRecord> =
        txn.open_table(INVITES)?.get(hash.as_slice())?.map(|v| decode("invites", v.value())).transpose()?;
    Ok(invite.is_some_and(|i| i.uses_left > 0 && i.expires_at.is_none_or(|at| at > super::now_ms())))
}
