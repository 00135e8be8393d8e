//! The migration on real redb files: a layout-2 database written the way
//! imboxd 0.1.0 wrote it (its `apply.rs`, commit f8bc7d2), and the data
//! directory 0.1.0 left behind in `tests/fixtures/v1-unreplayed`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use imbox_protocol::{Entry, Item, ReceiptKind, Target};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;

use super::{run, Budget, Ran};
use crate::store::records::*;
use crate::store::{token_hash, NoListener, Store, StoreOptions};

/// `MemberRecord` as layout 2 wrote it: no marker positions.
#[derive(Debug, Clone, Serialize)]
struct V2Member {
    admin: bool,
    visible_after: u64,
    delivered_seq: u64,
    read_seq: u64,
}

/// `ConversationRecord` as layout 2 wrote it: no retention.
#[derive(Debug, Serialize)]
struct V2Conversation {
    kind: ConversationKindRecord,
    name: String,
    pair: (u64, u64),
    created_at: u64,
    last_seq: u64,
    member_count: u32,
}

#[derive(Debug)]
struct Conversation {
    kind: ConversationKindRecord,
    name: String,
    pair: (u64, u64),
    last_seq: u64,
    members: BTreeMap<u64, V2Member>,
    /// The sender of each message, by seq - 1.
    senders: Vec<u64>,
}

/// A box of layout 2, built in memory by the rules of 0.1.0's `apply.rs`
/// and then written with redb as that code wrote it. Ids count from 1: the
/// user with id `u` is `users[u - 1]`, and so on.
#[derive(Debug, Default)]
struct Legacy {
    users: Vec<String>,
    conversations: Vec<Conversation>,
    /// Each user's delivery log, position `p` at index `p - 1`.
    logs: Vec<Vec<LogItem>>,
    /// (user, cursor) of each device.
    devices: Vec<(u64, u64)>,
}

const T0: u64 = 1_790_000_000_000;

fn text(conversation: u64, seq: u64) -> String {
    format!("message {seq} of conversation {conversation}")
}

fn client_id(conversation: u64, seq: u64) -> String {
    format!("m-{conversation}-{seq}")
}

fn sent_at(conversation: u64, seq: u64) -> u64 {
    T0 + conversation * 1_000_000 + seq
}

fn device_token(device: u64) -> String {
    format!("token-of-device-{device}")
}

impl Legacy {
    fn with_users(count: u64) -> Legacy {
        Legacy {
            users: (1..=count).map(|u| format!("user{u:02}")).collect(),
            logs: (1..=count).map(|_| Vec::new()).collect(),
            ..Legacy::default()
        }
    }

    fn name(&self, user: u64) -> &str {
        &self.users[user as usize - 1]
    }

    fn conversation(&mut self, id: u64) -> &mut Conversation {
        &mut self.conversations[id as usize - 1]
    }

    fn members(&self, id: u64) -> Vec<u64> {
        self.conversations[id as usize - 1].members.keys().copied().collect()
    }

    fn append_all(&mut self, users: &[u64], item: &LogItem) {
        for &user in users {
            self.logs[user as usize - 1].push(item.clone());
        }
    }

    fn open(&mut self, kind: ConversationKindRecord, name: &str, pair: (u64, u64), members: &[u64]) -> u64 {
        let member = |admin| V2Member { admin, visible_after: 0, delivered_seq: 0, read_seq: 0 };
        self.conversations.push(Conversation {
            kind,
            name: name.to_owned(),
            pair,
            last_seq: 0,
            members: members
                .iter()
                .enumerate()
                .map(|(i, &u)| (u, member(kind == ConversationKindRecord::Group && i == 0)))
                .collect(),
            senders: Vec::new(),
        });
        self.conversations.len() as u64
    }

    /// `open_direct`: two members, nothing in their logs.
    fn direct(&mut self, a: u64, b: u64) -> u64 {
        self.open(ConversationKindRecord::Direct, "", (a.min(b), a.max(b)), &[a, b])
    }

    /// `create_group`: each member's own `Created` item, by the creator
    /// (listed first).
    fn group(&mut self, name: &str, members: &[u64]) -> u64 {
        let id = self.open(ConversationKindRecord::Group, name, (0, 0), members);
        for &user in members {
            let item = LogItem::Membership {
                conversation: id,
                user,
                change: MembershipChangeRecord::Created,
                by: members[0],
            };
            self.logs[user as usize - 1].push(item);
        }
        id
    }

    /// `send`: the message in every member's log.
    fn send(&mut self, id: u64, sender: u64) {
        let members = self.members(id);
        let conversation = self.conversation(id);
        conversation.last_seq += 1;
        conversation.senders.push(sender);
        let seq = conversation.last_seq;
        self.append_all(&members, &LogItem::Message { conversation: id, seq });
    }

    /// `receipt`: marks only move forward, capped at the last seq; a read
    /// mark raises the delivered one; the receipt goes to every member.
    fn receipt(&mut self, id: u64, user: u64, kind: ReceiptKindRecord, seq: u64) {
        let members = self.members(id);
        let conversation = self.conversation(id);
        let seq = seq.min(conversation.last_seq);
        let Some(member) = conversation.members.get_mut(&user) else { return };
        let mark = match kind {
            ReceiptKindRecord::Delivered => &mut member.delivered_seq,
            ReceiptKindRecord::Read => &mut member.read_seq,
        };
        if seq <= *mark {
            return;
        }
        *mark = seq;
        if kind == ReceiptKindRecord::Read && member.delivered_seq < seq {
            member.delivered_seq = seq;
        }
        self.append_all(&members, &LogItem::Receipt { conversation: id, user, kind, seq });
    }

    /// `add_member`: the newcomer sees from the last seq on; every member,
    /// the newcomer included, gets the `Added` item.
    fn add(&mut self, id: u64, actor: u64, user: u64) {
        let conversation = self.conversation(id);
        let last = conversation.last_seq;
        conversation.members.insert(
            user,
            V2Member { admin: false, visible_after: last, delivered_seq: last, read_seq: last },
        );
        let members = self.members(id);
        let item =
            LogItem::Membership { conversation: id, user, change: MembershipChangeRecord::Added, by: actor };
        self.append_all(&members, &item);
    }

    /// `drop_member` for a member who is not the last admin: everyone who
    /// was in it, the one who left included, gets the `Left` item.
    fn leave(&mut self, id: u64, user: u64) {
        let before = self.members(id);
        self.conversation(id).members.remove(&user);
        let item =
            LogItem::Membership { conversation: id, user, change: MembershipChangeRecord::Left, by: user };
        self.append_all(&before, &item);
    }

    fn head(&self, user: u64) -> u64 {
        self.logs[user as usize - 1].len() as u64
    }

    /// The first stream position the migration must choose.
    fn stream_base(&self) -> u64 {
        (1..=self.users.len() as u64).map(|u| self.head(u)).max().unwrap_or(0) + 1
    }

    /// Writes the database as 0.1.0 left it, in one transaction per table
    /// group so that even 100,000 messages take seconds.
    fn write(&self, path: &Path) {
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("schema", 2).unwrap();
            meta.insert("next_user", self.users.len() as u64).unwrap();
            meta.insert("next_device", self.devices.len() as u64).unwrap();
            meta.insert("next_conversation", self.conversations.len() as u64).unwrap();
            let mut users = txn.open_table(USERS).unwrap();
            let mut names = txn.open_table(USER_NAMES).unwrap();
            for (index, name) in self.users.iter().enumerate() {
                let id = index as u64 + 1;
                let record = UserRecord {
                    name: name.clone(),
                    password_hash: "hash".into(),
                    admin: id == 1,
                    created_at: T0,
                    removed: false,
                    disabled: false,
                };
                users.insert(id, encode(&record).as_slice()).unwrap();
                names.insert(name.as_str(), id).unwrap();
            }
            let mut devices = txn.open_table(DEVICES).unwrap();
            let mut tokens = txn.open_table(TOKENS).unwrap();
            let mut user_devices = txn.open_multimap_table(USER_DEVICES).unwrap();
            for (index, &(user, cursor)) in self.devices.iter().enumerate() {
                let id = index as u64 + 1;
                let hash = token_hash(&device_token(id));
                let record = DeviceRecord {
                    user,
                    name: format!("device-{id}"),
                    created_at: T0,
                    cursor,
                    revoked: false,
                    token_hash: hash,
                    last_used: T0,
                };
                devices.insert(id, encode(&record).as_slice()).unwrap();
                tokens.insert(hash.as_slice(), id).unwrap();
                user_devices.insert(user, id).unwrap();
            }
            let mut conversations = txn.open_table(CONVERSATIONS).unwrap();
            let mut direct = txn.open_table(DIRECT).unwrap();
            let mut group_names = txn.open_table(GROUP_NAMES).unwrap();
            let mut members = txn.open_table(MEMBERS).unwrap();
            let mut user_conversations = txn.open_multimap_table(USER_CONVERSATIONS).unwrap();
            for (index, c) in self.conversations.iter().enumerate() {
                let id = index as u64 + 1;
                let record = V2Conversation {
                    kind: c.kind,
                    name: c.name.clone(),
                    pair: c.pair,
                    created_at: T0,
                    last_seq: c.last_seq,
                    member_count: c.members.len() as u32,
                };
                conversations.insert(id, encode(&record).as_slice()).unwrap();
                match c.kind {
                    ConversationKindRecord::Direct => direct.insert(c.pair, id).unwrap(),
                    ConversationKindRecord::Group => group_names.insert(c.name.as_str(), id).unwrap(),
                };
                for (&user, member) in &c.members {
                    members.insert((id, user), encode(member).as_slice()).unwrap();
                    user_conversations.insert(user, id).unwrap();
                }
            }
            // The tables 0.1.0 created on its first start, empty here.
            txn.open_table(INVITES).unwrap();
            txn.open_table(SETTINGS).unwrap();
        }
        txn.commit().unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut messages = txn.open_table(MESSAGES).unwrap();
            let mut message_ids = txn.open_table(MESSAGE_IDS).unwrap();
            for (index, c) in self.conversations.iter().enumerate() {
                let id = index as u64 + 1;
                for (i, &sender) in c.senders.iter().enumerate() {
                    let seq = i as u64 + 1;
                    let record = MessageRecord {
                        sender,
                        device: sender,
                        client_id: client_id(id, seq),
                        sent_at: sent_at(id, seq),
                        text: text(id, seq),
                        attachments: Vec::new(),
                    };
                    messages.insert((id, seq), encode(&record).as_slice()).unwrap();
                    message_ids.insert((sender, client_id(id, seq).as_str()), (id, seq)).unwrap();
                }
            }
        }
        txn.commit().unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut log = txn.open_table(LOG).unwrap();
            let mut heads = txn.open_table(LOG_HEADS).unwrap();
            for (index, items) in self.logs.iter().enumerate() {
                let user = index as u64 + 1;
                for (i, item) in items.iter().enumerate() {
                    log.insert((user, i as u64 + 1), encode(item).as_slice()).unwrap();
                }
                if !items.is_empty() {
                    heads.insert(user, items.len() as u64).unwrap();
                }
            }
        }
        txn.commit().unwrap();
    }
}

/// A box of 40 users with `messages` messages: 49 direct conversations
/// (7 in 10 messages), a group of 30 to which a member is added at 40% and
/// from which one leaves at 70% (1 in 10), two groups of 5 and 6; read and
/// delivered receipts every 17 and 13 messages (user 40 never sends any, so
/// some markers were never set); three or four devices per user, at the
/// start, the middle, the head and just before it.
fn scenario(messages: u64) -> Legacy {
    let mut box_ = Legacy::with_users(40);
    let mut directs: Vec<u64> = (1..40).map(|u| box_.direct(u, u + 1)).collect();
    directs.extend((3..=12).map(|u| box_.direct(1, u)));
    let big = box_.group("big", &(1..=30).collect::<Vec<_>>());
    let small = box_.group("small", &[31, 32, 33, 34, 35]);
    let mixed = box_.group("mixed", &[36, 37, 38, 39, 40, 1]);
    for k in 0..messages {
        if k == messages * 2 / 5 {
            box_.add(big, 1, 35);
        }
        if k == messages * 7 / 10 {
            box_.leave(big, 7);
        }
        let id = match k % 10 {
            0..=6 => directs[(k / 10) as usize % directs.len()],
            7 => big,
            8 => small,
            _ => mixed,
        };
        let members = box_.members(id);
        let pick = |n: u64| members[n as usize % members.len()];
        box_.send(id, pick(k / 10));
        let last = box_.conversation(id).last_seq;
        if k % 17 == 0 && pick(k / 17) != 40 {
            box_.receipt(id, pick(k / 17), ReceiptKindRecord::Read, last.saturating_sub(k % 3));
        }
        if k % 13 == 0 && pick(k / 13 + 1) != 40 {
            box_.receipt(id, pick(k / 13 + 1), ReceiptKindRecord::Delivered, last);
        }
    }
    for user in 1..=40 {
        let head = box_.head(user);
        let mut cursors = vec![0, head / 2, head];
        if user % 4 == 0 {
            cursors.push(head.saturating_sub(1));
        }
        box_.devices.extend(cursors.into_iter().map(|c| (user, c)));
    }
    box_
}

/// What a stream entry says, in a form the legacy model also gives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    Message { conversation: u64, seq: u64, text: String },
    Membership { conversation: u64, user: String, change: String },
    Receipt { conversation: u64, user: String, read: bool, seq: u64 },
}

impl Seen {
    fn of(item: &Item) -> Seen {
        match item {
            Item::Message(m) => {
                Seen::Message { conversation: m.conversation, seq: m.seq, text: m.text.clone() }
            }
            Item::Membership(m) => Seen::Membership {
                conversation: m.conversation,
                user: m.user.clone(),
                change: format!("{:?}", m.change),
            },
            Item::Receipt(r) => Seen::Receipt {
                conversation: r.conversation,
                user: r.user.clone(),
                read: r.kind == ReceiptKind::Read,
                seq: r.seq,
            },
        }
    }
}

impl Legacy {
    fn seen(&self, item: &LogItem) -> Seen {
        match *item {
            LogItem::Message { conversation, seq } => {
                Seen::Message { conversation, seq, text: text(conversation, seq) }
            }
            LogItem::Membership { conversation, user, change, .. } => Seen::Membership {
                conversation,
                user: self.name(user).to_owned(),
                change: format!("{change:?}"),
            },
            LogItem::Receipt { conversation, user, kind, seq } => Seen::Receipt {
                conversation,
                user: self.name(user).to_owned(),
                read: kind == ReceiptKindRecord::Read,
                seq,
            },
        }
    }

    /// The legacy entries a device at `cursor` has not read: messages and
    /// membership changes at their positions, no receipts.
    fn unread(&self, user: u64, cursor: u64) -> Vec<(u64, Seen)> {
        self.logs[user as usize - 1]
            .iter()
            .enumerate()
            .skip(cursor as usize)
            .filter(|(_, item)| !matches!(item, LogItem::Receipt { .. }))
            .map(|(i, item)| (i as u64 + 1, self.seen(item)))
            .collect()
    }

    /// Every marker ever set in the conversations `user` is a member of,
    /// sorted.
    fn markers(&self, user: u64) -> Vec<Seen> {
        let mut out = Vec::new();
        for (index, c) in self.conversations.iter().enumerate() {
            if !c.members.contains_key(&user) {
                continue;
            }
            for (&member, record) in &c.members {
                for (read, seq) in [(false, record.delivered_seq), (true, record.read_seq)] {
                    if seq > record.visible_after {
                        let user = self.name(member).to_owned();
                        out.push(Seen::Receipt { conversation: index as u64 + 1, user, read, seq });
                    }
                }
            }
        }
        out.sort();
        out
    }
}

/// A user's stream after `cursor`, page by page, to its end.
fn read_stream(store: &Store, user: u64, cursor: u64, page_size: u32) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut since = cursor;
    loop {
        let page = store.stream_page(user, since, page_size).unwrap();
        assert!(!page.resync, "user {user} from {cursor}: resync");
        assert!(page.entries.len() <= page_size as usize);
        if let Some(last) = page.entries.last() {
            since = last.position;
        }
        let more = page.more;
        entries.extend(page.entries);
        if !more {
            break;
        }
    }
    assert!(entries.windows(2).all(|w| w[0].position < w[1].position), "user {user}: positions out of order");
    assert!(entries.first().is_none_or(|e| e.position > cursor));
    let after = store.stream_page(user, since, page_size).unwrap();
    assert!(after.entries.is_empty() && !after.more, "user {user}: the stream goes on after its end");
    entries
}

/// Checks a migrated store against the box it was migrated from.
fn check_migrated(store: &Store, legacy: &Legacy) {
    let base = legacy.stream_base();
    let markers = (1..=legacy.users.len() as u64).map(|u| (u, legacy.markers(u))).collect::<HashMap<_, _>>();
    for (index, &(user, cursor)) in legacy.devices.iter().enumerate() {
        let device = index as u64 + 1;
        let auth = store.authenticate(&device_token(device)).unwrap().expect("the device's token");
        assert_eq!((auth.device, auth.user, auth.cursor), (device, user, cursor));
        let entries = read_stream(store, user, cursor, 64);
        let split = entries.partition_point(|e| e.position < base);
        let legacy_part: Vec<(u64, Seen)> =
            entries[..split].iter().map(|e| (e.position, Seen::of(&e.item))).collect();
        assert_eq!(legacy_part, legacy.unread(user, cursor), "device {device} of user {user} from {cursor}");
        let mut rest: Vec<Seen> = entries[split..].iter().map(|e| Seen::of(&e.item)).collect();
        rest.sort();
        assert_eq!(rest, markers[&user], "the markers for device {device} of user {user}");
    }
    for (index, c) in legacy.conversations.iter().enumerate() {
        let id = index as u64 + 1;
        let (&viewer, _) = c.members.iter().find(|(_, m)| m.visible_after == 0).expect("an original member");
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let (page, more) = store.history(viewer, &Target::Id(id), before, 500).unwrap();
            before = page.first().map(|m| m.seq);
            seen.extend(page.into_iter().rev());
            if !more {
                break;
            }
        }
        seen.reverse();
        assert_eq!(seen.len() as u64, c.last_seq, "history of conversation {id}");
        for (i, m) in seen.iter().enumerate() {
            let seq = i as u64 + 1;
            assert_eq!((m.conversation, m.seq, m.text.as_str()), (id, seq, text(id, seq).as_str()));
            assert_eq!((m.sent_at, m.id.as_str()), (sent_at(id, seq), client_id(id, seq).as_str()));
            assert_eq!(m.from, legacy.name(c.senders[i]));
        }
    }
    for user in 1..=legacy.users.len() as u64 {
        let infos = store.conversations(user).unwrap();
        let expected = legacy.conversations.iter().filter(|c| c.members.contains_key(&user)).count();
        assert_eq!(infos.len(), expected, "user {user}'s conversations");
        for info in infos {
            let c = &legacy.conversations[info.id as usize - 1];
            assert_eq!((info.last_seq, info.read_seq), (c.last_seq, c.members[&user].read_seq));
        }
    }
}

/// After the migration, a send to `#big` gets a position past every legacy
/// one and reaches each member's stream once, and nobody else's.
async fn check_a_new_send(store: &Store, legacy: &Legacy) {
    let head = store.stream_head().unwrap();
    let markers: usize = legacy
        .conversations
        .iter()
        .flat_map(|c| c.members.values())
        .map(|m| usize::from(m.delivered_seq > m.visible_after) + usize::from(m.read_seq > m.visible_after))
        .sum();
    assert_eq!(head, legacy.stream_base() - 1 + markers as u64, "one position per marker");
    let sent = store
        .send(1, 1, Target::Group("big".into()), "after".into(), "after the migration".into())
        .await
        .unwrap();
    let big = legacy.conversations.iter().position(|c| c.name == "big").unwrap() as u64 + 1;
    assert_eq!((sent.conversation, sent.seq), (big, legacy.conversations[big as usize - 1].last_seq + 1));
    for user in 1..=legacy.users.len() as u64 {
        let entries = read_stream(store, user, head, 8);
        let member = legacy.conversations[big as usize - 1].members.contains_key(&user);
        assert_eq!(entries.len(), usize::from(member), "user {user}");
        if let Some(entry) = entries.first() {
            assert!(entry.position >= legacy.stream_base());
            let expected =
                Seen::Message { conversation: big, seq: sent.seq, text: "after the migration".into() };
            assert_eq!(Seen::of(&entry.item), expected);
        }
    }
}

fn open_store(path: &Path) -> Store {
    Store::open(path, StoreOptions::default(), Arc::new(NoListener)).unwrap()
}

#[tokio::test]
async fn a_layout_2_box_of_100k_messages_migrates_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imbox.redb");
    let started = Instant::now();
    let legacy = scenario(100_000);
    legacy.write(&path);
    let written = started.elapsed();
    let log_rows: usize = legacy.logs.iter().map(Vec::len).sum();
    let receipts: usize =
        legacy.logs.iter().flatten().filter(|i| matches!(i, LogItem::Receipt { .. })).count();
    let started = Instant::now();
    let store = open_store(&path);
    let migrated = started.elapsed();
    // Printed for docs/ARCHITECTURE.md (`cargo test --release -- --nocapture`).
    println!(
        "layout-2 database: 100000 messages, {log_rows} log rows ({receipts} receipts), {} devices, \
         {} bytes; written in {written:?}; Store::open migrated it in {migrated:?}",
        legacy.devices.len(),
        std::fs::metadata(&path).unwrap().len(),
    );
    let started = Instant::now();
    check_migrated(&store, &legacy);
    check_a_new_send(&store, &legacy).await;
    println!("checked in {:?}", started.elapsed());
}

/// A table keyed by a pair of ids.
type PairKeyed = TableDefinition<'static, (u64, u64), &'static [u8]>;

/// Every row of the tables the migration writes or reads, except the
/// checkpoint mark a running store may move.
fn dump(db: &Database) -> Vec<String> {
    let txn = db.begin_read().unwrap();
    let mut out = Vec::new();
    for row in txn.open_table(META).unwrap().iter().unwrap() {
        let (key, value) = row.unwrap();
        if key.value() != "wal_through" {
            out.push(format!("meta {} {}", key.value(), value.value()));
        }
    }
    let pairs: [(&str, PairKeyed); 4] =
        [("events", EVENTS), ("spans", SPANS), ("log", LOG), ("members", MEMBERS)];
    for (name, table) in pairs {
        for row in txn.open_table(table).unwrap().iter().unwrap() {
            let (key, value) = row.unwrap();
            out.push(format!("{name} {:?} {:?}", key.value(), value.value()));
        }
    }
    for row in txn.open_table(LOG_HEADS).unwrap().iter().unwrap() {
        let (key, value) = row.unwrap();
        out.push(format!("log_heads {} {}", key.value(), value.value()));
    }
    out
}

fn schema(db: &Database) -> u64 {
    db.begin_read().unwrap().open_table(META).unwrap().get("schema").unwrap().unwrap().value()
}

#[tokio::test]
async fn an_interrupted_migration_resumes_to_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = scenario(3_000);
    let original = dir.path().join("legacy.redb");
    legacy.write(&original);
    let copy = |name: &str| {
        let path = dir.path().join(name);
        std::fs::copy(&original, &path).unwrap();
        path
    };
    let small = |stop_after| Budget { chunk_rows: 97, stop_after };

    let reference = Database::create(copy("reference.redb")).unwrap();
    assert_eq!(run(&reference, small(None), 0).unwrap(), Ran::Migrated);
    assert_eq!(run(&reference, small(None), 0).unwrap(), Ran::Current);
    let expected = dump(&reference);
    assert_eq!(schema(&reference), SCHEMA_VERSION);

    // Stopped after every transaction in turn, reopened each time: every
    // point between two commits is one a power cut can leave.
    let path = copy("stepwise.redb");
    let mut runs = 0;
    loop {
        let db = Database::create(&path).unwrap();
        runs += 1;
        match run(&db, small(Some(1)), 0).unwrap() {
            Ran::Stopped => assert_eq!(schema(&db), 2, "the layout changes last"),
            Ran::Migrated => break,
            Ran::Current => panic!("stopped before it finished"),
        }
    }
    assert!(runs > 100, "only {runs} transactions: the chunks are not bounded");
    assert_eq!(dump(&Database::create(&path).unwrap()), expected);

    // Stopped after k transactions, then finished by `Store::open` with its
    // own chunk size: the result is the same, and the store serves it.
    for k in [2, 40, 150] {
        let path = copy(&format!("cut-{k}.redb"));
        let db = Database::create(&path).unwrap();
        assert_eq!(run(&db, small(Some(k)), 0).unwrap(), Ran::Stopped);
        drop(db);
        let store = open_store(&path);
        assert_eq!(dump(&store.db()), expected, "stopped after {k}");
        check_migrated(&store, &legacy);
        store.shutdown().await;
    }
}

#[tokio::test]
async fn a_database_that_is_not_layout_2_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imbox.redb");
    let mut legacy = Legacy::with_users(2);
    let id = legacy.direct(1, 2);
    legacy.send(id, 1);
    legacy.write(&path);
    {
        // Rows of layout 3 without a migration under way.
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let event = encode(&EventRecord::Message { seq: 1 });
        txn.open_table(EVENTS).unwrap().insert((id, 1), event.as_slice()).unwrap();
        txn.commit().unwrap();
    }
    let error = Store::open(&path, StoreOptions::default(), Arc::new(NoListener)).unwrap_err();
    assert!(matches!(error, crate::store::StoreError::Migrate(super::MigrateError::MixedLayout { .. })));
    assert!(error.to_string().contains("restore the data directory from a backup"), "{error}");
}

// ---- the data directory of imboxd 0.1.0 ----

#[derive(Debug, serde::Deserialize)]
struct Manifest {
    users: Vec<ManifestUser>,
    devices: Vec<ManifestDevice>,
    conversations: Vec<ManifestConversation>,
    sends: Vec<ManifestSend>,
    marks: Vec<ManifestMark>,
    log_heads: Vec<ManifestHead>,
}

#[derive(Debug, serde::Deserialize)]
struct ManifestUser {
    name: String,
    id: u64,
}

#[derive(Debug, serde::Deserialize)]
struct ManifestDevice {
    id: u64,
    user: String,
    token: String,
    cursor: u64,
}

#[derive(Debug, serde::Deserialize)]
struct ManifestConversation {
    id: u64,
    label: String,
    members: Vec<String>,
    last_seq: u64,
}

#[derive(Debug, serde::Deserialize)]
struct ManifestSend {
    sender: String,
    client_id: String,
    text: String,
    conversation: u64,
    seq: u64,
    sent_at: u64,
    checkpointed: bool,
}

#[derive(Debug, serde::Deserialize)]
struct ManifestMark {
    conversation: u64,
    user: String,
    delivered: u64,
    read: u64,
}

#[derive(Debug, serde::Deserialize)]
struct ManifestHead {
    after_log: u64,
}

#[tokio::test]
async fn the_data_directory_of_0_1_0_migrates_and_its_log_applies() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/v1-unreplayed");
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(fixture.join("manifest.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for file in ["imbox.redb", "imbox.wal"] {
        std::fs::copy(fixture.join(file), dir.path().join(file)).unwrap();
    }
    let store = open_store(&dir.path().join("imbox.redb"));
    let ids: HashMap<&str, u64> = manifest.users.iter().map(|u| (u.name.as_str(), u.id)).collect();
    let members: HashMap<u64, &ManifestConversation> =
        manifest.conversations.iter().map(|c| (c.id, c)).collect();
    let stored_base =
        store.db().begin_read().unwrap().open_table(META).unwrap().get(STREAM_BASE).unwrap().unwrap().value();
    // Above every position of the old logs, including those the log's own
    // writes reached before the crash, which devices may have acknowledged.
    let highest = manifest.log_heads.iter().map(|h| h.after_log).max().unwrap();
    assert!(
        stored_base > highest,
        "the stream starts at {stored_base}, within the old logs (up to {highest})"
    );

    for c in &manifest.conversations {
        let viewer = ids[c.members[0].as_str()];
        assert_eq!(store.conversation(viewer, c.id).unwrap().last_seq, c.last_seq, "{}", c.label);
    }
    for send in &manifest.sends {
        // As the sender, unless the sender has left the group since; then
        // as its creator, who sees all of it.
        let conversation = members[&send.conversation];
        let viewer = match conversation.members.contains(&send.sender) {
            true => &send.sender,
            false => &conversation.members[0],
        };
        let (page, _) = store
            .history(ids[viewer.as_str()], &Target::Id(send.conversation), Some(send.seq + 1), 1)
            .unwrap();
        let m = page.first().unwrap_or_else(|| panic!("{} is missing", send.client_id));
        assert_eq!((m.seq, m.text.as_str(), m.sent_at), (send.seq, send.text.as_str(), send.sent_at));
        assert_eq!((m.from.as_str(), m.id.as_str()), (send.sender.as_str(), send.client_id.as_str()));
    }
    {
        let txn = store.db().begin_read().unwrap();
        let table = txn.open_table(MEMBERS).unwrap();
        for mark in &manifest.marks {
            let user = ids[mark.user.as_str()];
            let member: MemberRecord =
                decode("members", table.get((mark.conversation, user)).unwrap().unwrap().value()).unwrap();
            assert_eq!((member.delivered_seq, member.read_seq), (mark.delivered, mark.read), "{mark:?}");
            assert_eq!(store.conversation(user, mark.conversation).unwrap().read_seq, mark.read);
        }
    }
    for device in &manifest.devices {
        let user = ids[device.user.as_str()];
        let auth = store.authenticate(&device.token).unwrap().expect("the device's token");
        assert_eq!((auth.device, auth.user), (device.id, user));
        // The ack the log held stands: it counts in the old log, below the
        // new stream.
        assert_eq!(auth.cursor, device.cursor, "device {}", device.id);
        // From its cursor, the device gets every message the log held for
        // its user's conversations (it may have seen some before, under
        // their old positions: a repeat, never a gap).
        let seen: HashSet<(u64, u64)> = read_stream(&store, user, device.cursor, 20)
            .iter()
            .filter_map(|e| match &e.item {
                Item::Message(m) => Some((m.conversation, m.seq)),
                _ => None,
            })
            .collect();
        for send in manifest.sends.iter().filter(|s| !s.checkpointed) {
            if members[&send.conversation].members.contains(&device.user) {
                assert!(
                    seen.contains(&(send.conversation, send.seq)),
                    "device {} misses {}",
                    device.id,
                    send.client_id
                );
            }
        }
    }
    store.shutdown().await;
}
