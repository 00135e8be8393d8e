//! Pruning, retention and compaction on real redb files, with a manual
//! clock for what happens days later.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use imbox_protocol::{Entry, Item, Target};
use redb::ReadableDatabase;

use super::records::*;
use super::*;

/// Day 1000 since the epoch: far enough from 0 that "90 days ago" exists.
const START: u64 = 1000 * DAY_MS;

async fn store_with_clock(options: StoreOptions) -> (Store, Clock, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(START);
    let options = StoreOptions { clock: clock.clone(), ..options };
    let store = Store::open(&dir.path().join("s.redb"), options, Arc::new(NoListener)).unwrap();
    for name in ["alice", "bob", "carol"] {
        store.create_user(name, "hash".into(), false).await.unwrap();
    }
    (store, clock, dir)
}

/// Writes what the layout-3 migration leaves of a user's legacy log: rows
/// at positions `1..=count`, all below the stream's base.
fn legacy_log(store: &Store, user: u64, count: u64, item: impl Fn(u64) -> LogItem) {
    let db = store.db();
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(META).unwrap();
        meta.insert(STREAM_HEAD, count).unwrap();
        meta.insert(STREAM_BASE, count + 1).unwrap();
        let mut log = txn.open_table(LOG).unwrap();
        for position in 1..=count {
            log.insert((user, position), encode(&item(position)).as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
}

fn legacy_rows(store: &Store, user: u64) -> u64 {
    let db = store.db();
    let txn = db.begin_read().unwrap();
    let log = txn.open_table(LOG).unwrap();
    log.range((user, 0)..=(user, u64::MAX)).unwrap().count() as u64
}

fn spans_of(store: &Store, user: u64, conversation: u64) -> Option<SpansRecord> {
    let db = store.db();
    let txn = db.begin_read().unwrap();
    let spans = txn.open_table(SPANS).unwrap();
    let value = spans.get((user, conversation)).unwrap();
    value.map(|v| decode("spans", v.value()).unwrap())
}

fn prune_op(inactive_days: u64, retention_days: u32, max_rows: u32) -> Prune {
    Prune { device_inactive_ms: inactive_days * DAY_MS, retention_days, max_rows, from: PruneFrom::default() }
}

/// Runs prune ops until the round is complete; checks that none did more
/// than its share, and returns the totals and the number of ops.
async fn prune_round(store: &Store, op: Prune) -> (PruneReport, u32) {
    let mut total = PruneReport::default();
    let mut op = op;
    for ops in 1..10_000 {
        let report = store.prune(op).await.unwrap();
        // A message's event goes with it even past the budget: a few rows over.
        assert!(report.deleted() <= u64::from(op.max_rows.max(64)) + 2, "{report:?}");
        total.log_rows += report.log_rows;
        total.spans += report.spans;
        total.messages += report.messages;
        total.events += report.events;
        match report.next {
            Some(next) => op.from = next,
            None => return (total, ops),
        }
    }
    panic!("pruning never finished");
}

/// Every entry of the user's stream after `since`, read a page at a time
/// as a device does; and whether the first page said resync.
fn sync_all(store: &Store, user: u64, since: u64, page: u32) -> (Vec<Entry>, bool) {
    let mut cursor = since;
    let mut entries = Vec::new();
    let mut resync = None;
    loop {
        let p = store.stream_page(user, cursor, page).unwrap();
        resync.get_or_insert(p.resync);
        if let Some(last) = p.entries.last() {
            cursor = last.position;
        }
        entries.extend(p.entries);
        if !p.more {
            return (entries, resync.unwrap_or(false));
        }
    }
}

fn positions(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.position).collect()
}

fn send(store: &Store, sender: u64, to: &str, id: &str) -> Pending {
    let op = WriteOp::Send {
        sender,
        device: 0,
        to: Target::parse(to),
        client_id: id.into(),
        text: id.into(),
        attachments: Vec::new(),
    };
    store.submit(op).unwrap()
}

#[tokio::test]
async fn pruning_keeps_what_active_devices_need_and_an_absent_device_resyncs() {
    let (store, clock, _dir) = store_with_clock(StoreOptions::default()).await;
    // The tablet was added before the migration: its cursor is in the legacy log.
    let tablet = store.add_device(1, "tablet").await.unwrap();
    legacy_log(&store, 1, 300, |position| LogItem::Membership {
        conversation: 1,
        user: 1,
        change: MembershipChangeRecord::Added,
        by: position % 3 + 1,
    });
    let phone = store.add_device(1, "phone").await.unwrap();
    let laptop = store.add_device(1, "laptop").await.unwrap();
    assert_eq!(store.create_group(1, "g", vec!["bob".into()], 10).await.unwrap(), 1);
    store.create_group(2, "h", vec!["alice".into()], 10).await.unwrap();
    for i in 0..10 {
        send(&store, 1 + i % 2, "#g", &format!("g{i}")).sent().await.unwrap();
        send(&store, 2, "#h", &format!("h{i}")).sent().await.unwrap();
    }
    // Alice leaves h: her span there ends, below both active cursors.
    store.leave(1, Target::parse("#h")).await.unwrap();
    let left_at = store.stream_head().unwrap();
    for i in 10..15 {
        send(&store, 2, "#g", &format!("g{i}")).sent().await.unwrap();
    }
    let phone_at = left_at + 2;
    let laptop_at = left_at + 4;
    for i in 15..20 {
        send(&store, 1, "#g", &format!("g{i}")).sent().await.unwrap();
    }
    let (before_all, _) = sync_all(&store, 1, 0, 1000);
    let phone_before = sync_all(&store, 1, phone_at, 7);
    let laptop_before = sync_all(&store, 1, laptop_at, 7);

    // A hundred days on: the phone and laptop are in use, the tablet is not.
    clock.advance(100 * DAY_MS);
    store.ack(phone.auth.device, phone_at).await.unwrap();
    store.ack(laptop.auth.device, laptop_at).await.unwrap();
    let (report, ops) = prune_round(&store, prune_op(90, 0, 64)).await;
    assert_eq!(report.log_rows, 300);
    assert_eq!(report.spans, 1, "alice's ended span in h");
    assert_eq!((report.messages, report.events), (0, 0), "no retention");
    assert!(ops > 4, "300 rows at 64 an op take several ops, not {ops}");
    assert_eq!(legacy_rows(&store, 1), 0);
    assert_eq!(spans_of(&store, 1, 2), None, "the spans row goes with its last span");
    assert!(spans_of(&store, 1, 1).is_some(), "the open span in g stays");
    assert!(spans_of(&store, 2, 2).is_some(), "bob's records are his own");

    // The active devices see exactly what they saw before.
    let phone_after = sync_all(&store, 1, phone_at, 7);
    let laptop_after = sync_all(&store, 1, laptop_at, 7);
    assert!(!phone_after.1 && !laptop_after.1);
    assert_eq!(positions(&phone_after.0), positions(&phone_before.0));
    assert_eq!(positions(&laptop_after.0), positions(&laptop_before.0));

    // The tablet is told to resync, then gets what is left, in order: g's
    // events, without the legacy rows and without h's.
    let (tablet_after, resync) = sync_all(&store, 1, tablet.auth.cursor, 7);
    assert!(resync);
    assert_eq!(tablet.auth.cursor, 0);
    let expected: Vec<u64> = before_all
        .iter()
        .filter(|e| e.position > 300)
        .filter(|e| match &e.item {
            Item::Message(m) => m.conversation == 1,
            Item::Membership(m) => m.conversation == 1,
            Item::Receipt(r) => r.conversation == 1,
        })
        .map(|e| e.position)
        .collect();
    assert_eq!(positions(&tablet_after), expected);
    assert!(expected.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(tablet_after.iter().filter(|e| matches!(e.item, Item::Message(_))).count(), 20);
    // Past its cursor the tablet is an ordinary device again.
    let last = tablet_after.last().unwrap().position;
    assert!(!store.stream_page(1, last, 10).unwrap().resync);

    // A second round finds nothing more to do.
    let (again, _) = prune_round(&store, prune_op(90, 0, 5000)).await;
    assert_eq!(again.deleted(), 0);
}

#[tokio::test]
async fn a_user_without_devices_in_use_is_pruned_to_the_head() {
    let (store, clock, _dir) = store_with_clock(StoreOptions::default()).await;
    let phone = store.add_device(2, "phone").await.unwrap();
    store.create_group(2, "g", vec!["alice".into()], 10).await.unwrap();
    store.leave(2, Target::parse("#g")).await.unwrap();
    clock.advance(91 * DAY_MS);
    let (report, _) = prune_round(&store, prune_op(90, 0, 5000)).await;
    assert_eq!(report.spans, 1);
    let page = store.stream_page(2, phone.auth.cursor, 10).unwrap();
    assert!(page.resync && page.entries.is_empty());
    assert!(!store.stream_page(2, store.stream_head().unwrap(), 10).unwrap().resync);
}

#[tokio::test]
async fn retention_deletes_old_messages_while_a_device_syncs_page_by_page() {
    let (store, clock, _dir) = store_with_clock(StoreOptions::default()).await;
    let phone = store.add_device(2, "phone").await.unwrap();
    let group = store.create_group(1, "g", vec!["bob".into()], 10).await.unwrap();
    // Forty old messages, with membership changes among them, and a direct
    // conversation that keeps everything.
    for i in 0..40 {
        send(&store, 1 + i % 2, "#g", &format!("old{i}")).sent().await.unwrap();
        if i == 10 {
            store.add_member(1, Target::parse("#g"), "carol", 10).await.unwrap();
        }
        if i == 20 {
            store.remove_member(1, Target::parse("#g"), "carol").await.unwrap();
        }
    }
    store.receipt(2, Target::parse("#g"), imbox_protocol::ReceiptKind::Read, 30).await.unwrap();
    let direct = send(&store, 1, "bob", "direct-old").sent().await.unwrap().conversation;
    store.set_retention(Target::Id(direct), Some(0)).await.unwrap();
    clock.advance(10 * DAY_MS);
    for i in 0..40 {
        send(&store, 1 + i % 2, "#g", &format!("new{i}")).sent().await.unwrap();
    }

    // The phone syncs 7 entries at a time; retention runs (a little at a
    // time) between its pages.
    let mut op = prune_op(90, 7, 64);
    let mut cursor = phone.auth.cursor;
    let mut got = Vec::new();
    let mut pruning = true;
    loop {
        let page = store.stream_page(2, cursor, 7).unwrap();
        assert!(!page.resync, "retention alone does not make a device resync");
        if let Some(last) = page.entries.last() {
            cursor = last.position;
        }
        got.extend(page.entries);
        if pruning {
            let report = store.prune(op).await.unwrap();
            match report.next {
                Some(next) => op.from = next,
                None => pruning = false,
            }
        }
        if !page.more && !pruning {
            break;
        }
    }
    assert!(got.windows(2).all(|w| w[0].position < w[1].position), "in order, each once");
    let texts: Vec<String> = got
        .iter()
        .filter_map(|e| match &e.item {
            Item::Message(m) if m.conversation == group => Some(m.text.clone()),
            _ => None,
        })
        .collect();
    let unique: BTreeSet<&String> = texts.iter().collect();
    assert_eq!(unique.len(), texts.len(), "no message twice");
    let new: Vec<String> = (0..40).map(|i| format!("new{i}")).collect();
    assert!(texts.ends_with(&new), "every message that was kept, in order: {texts:?}");
    assert!(texts.len() < 80, "the test needs some old messages deleted before the phone read them");

    // History holds only what is left; the direct conversation kept all.
    let (history, more) = store.history(2, &Target::parse("#g"), None, 500).unwrap();
    assert!(!more);
    assert_eq!(history.iter().map(|m| m.text.clone()).collect::<Vec<_>>(), new);
    assert_eq!(history[0].seq, 41, "numbering goes on");
    let (kept, _) = store.history(2, &Target::parse("alice"), None, 10).unwrap();
    assert_eq!(kept.len(), 1);

    // What remains of the group's events: the new messages, the read
    // marker, and no membership change older than the last expired message.
    {
        // The read lock is not held across an await: the writer may want it.
        let db = store.db();
        let txn = db.begin_read().unwrap();
        let events = txn.open_table(EVENTS).unwrap();
        let rows: Vec<EventRecord> = events
            .range((group, 0)..=(group, u64::MAX))
            .unwrap()
            .map(|r| decode("events", r.unwrap().1.value()).unwrap())
            .collect();
        assert_eq!(rows.iter().filter(|e| matches!(e, EventRecord::Message { .. })).count(), 40);
        assert!(rows.iter().any(|e| matches!(e, EventRecord::Receipt { user: 2, .. })), "markers stay");
        assert!(!rows.iter().any(|e| matches!(e, EventRecord::Membership { .. })));
        let ids = txn.open_table(MESSAGE_IDS).unwrap();
        assert!(ids.get((1, "old0")).unwrap().is_none());
        assert!(ids.get((1, "new0")).unwrap().is_some());
    }
    // An expired id is free again: a new message, not a duplicate.
    let again = send(&store, 1, "#g", "old0").sent().await.unwrap();
    assert!(!again.duplicate);
}

#[tokio::test]
async fn a_legacy_log_row_whose_message_expired_is_skipped() {
    let (store, _clock, _dir) = store_with_clock(StoreOptions::default()).await;
    legacy_log(&store, 2, 5, |position| LogItem::Message { conversation: 1, seq: position });
    let group = store.create_group(1, "g", vec!["bob".into()], 10).await.unwrap();
    // Only message 3 of the five the log names is still stored.
    for i in 0..3 {
        send(&store, 1, "#g", &format!("m{i}")).sent().await.unwrap();
    }
    {
        let db = store.db();
        let txn = db.begin_write().unwrap();
        txn.open_table(MESSAGES).unwrap().remove((group, 1)).unwrap();
        txn.open_table(MESSAGES).unwrap().remove((group, 2)).unwrap();
        txn.commit().unwrap();
    }
    let page = store.stream_page(2, 0, 3).unwrap();
    let legacy: Vec<u64> = page.entries.iter().filter(|e| e.position <= 5).map(|e| e.position).collect();
    assert_eq!(legacy, [3]);
}

#[tokio::test]
async fn retention_settings_are_checked() {
    let (store, _clock, _dir) = store_with_clock(StoreOptions::default()).await;
    store.create_group(1, "g", vec![], 10).await.unwrap();
    assert_eq!(store.set_retention(Target::Group("g".into()), Some(30)).await.unwrap(), 1);
    assert!(matches!(
        store.set_retention(Target::Group("g".into()), Some(MAX_RETENTION_DAYS + 1)).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.set_retention(Target::Group("nope".into()), None).await,
        Err(StoreError::NoSuchConversation(_))
    ));
    assert!(matches!(
        store.set_retention(Target::Id(99), None).await,
        Err(StoreError::NoSuchConversation(_))
    ));
    assert_eq!(conversation_ref("#g"), Some(Target::Group("g".into())));
    assert_eq!(conversation_ref("=7"), Some(Target::Id(7)));
    assert_eq!(conversation_ref("7"), Some(Target::Id(7)));
    assert_eq!(conversation_ref("bob"), None);
}

/// Fills a store with `count` messages of 1 KiB in one group, sent at the
/// clock's time, their ids starting with `prefix`.
async fn fill(store: &Store, prefix: &str, count: usize) {
    let text = "x".repeat(1024);
    for chunk in 0..count / 500 {
        let pending: Vec<_> = (0..500)
            .map(|i| {
                let op = WriteOp::Send {
                    sender: 1,
                    device: 0,
                    to: Target::parse("#big"),
                    client_id: format!("{prefix}-{chunk}-{i}"),
                    text: text.clone(),
                    attachments: Vec::new(),
                };
                store.submit(op).unwrap()
            })
            .collect();
        for p in pending {
            p.sent().await.unwrap();
        }
    }
}

#[tokio::test]
async fn the_writer_compacts_under_load_and_loses_no_acknowledged_send() {
    let compaction = Compaction {
        min_deleted_rows: 1,
        check_interval: Duration::ZERO,
        min_reclaim_bytes: 4 << 20,
        min_reclaim_percent: 25,
    };
    let checkpoints = Checkpoints {
        idle: Duration::from_millis(20),
        interval: Duration::from_secs(60),
        log_max_bytes: 16 << 20,
    };
    let options = StoreOptions { compaction, checkpoints, ..StoreOptions::default() };
    let (store, clock, dir) = store_with_clock(options).await;
    let path = dir.path().join("s.redb");
    store.create_group(1, "big", vec!["bob".into()], 10).await.unwrap();
    fill(&store, "old", 20_000).await;
    clock.advance(10 * DAY_MS);
    let full = std::fs::metadata(&path).unwrap().len();

    // Senders and readers keep going while retention deletes everything old
    // and the writer compacts at the idle moments between their bursts.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for sender in 1..=2u64 {
        let store = store.clone();
        let stop = stop.clone();
        senders.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("live-{sender}-{i}");
                acked.push((send(&store, sender, "#big", &id).sent().await.unwrap().seq, id));
                i += 1;
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            acked
        }));
    }
    let reader = {
        let store = store.clone();
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                store.history(2, &Target::parse("#big"), None, 50).unwrap();
                store.stream_page(2, 0, 50).unwrap();
                reads += 1;
            }
            reads
        })
    };
    let (report, _) = prune_round(&store, prune_op(90, 7, 5000)).await;
    assert_eq!(report.messages, 20_000);
    let waited = std::time::Instant::now();
    while store.stats().compactions.load(Ordering::Relaxed) == 0 {
        assert!(waited.elapsed() < Duration::from_secs(60), "the writer did not compact");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for sender in senders {
        acked.extend(sender.await.unwrap());
    }
    assert!(reader.await.unwrap() > 0);
    let compacted = std::fs::metadata(&path).unwrap().len();
    assert!(compacted * 2 < full, "the file went from {full} to {compacted} bytes");

    let check = |store: &Store| {
        let (history, _) = store.history(2, &Target::parse("#big"), None, 100_000).unwrap();
        let stored: BTreeSet<(u64, String)> = history.into_iter().map(|m| (m.seq, m.id)).collect();
        for sent in &acked {
            assert!(stored.contains(sent), "{sent:?} was acknowledged and is gone");
        }
        assert_eq!(stored.len(), acked.len());
    };
    check(&store);
    store.shutdown().await;
    drop(store);
    let reopened = Store::open(&path, StoreOptions::default(), Arc::new(NoListener)).unwrap();
    check(&reopened);
}

#[tokio::test]
async fn offline_compaction_shrinks_the_file_and_refuses_an_open_database() {
    let (store, clock, dir) = store_with_clock(StoreOptions::default()).await;
    let path = dir.path().join("s.redb");
    store.create_group(1, "big", vec!["bob".into()], 10).await.unwrap();
    fill(&store, "old", 10_000).await;
    clock.advance(10 * DAY_MS);
    send(&store, 2, "#big", "kept").sent().await.unwrap();
    let (report, _) = prune_round(&store, prune_op(90, 7, 5000)).await;
    assert_eq!(report.messages, 10_000);
    assert!(matches!(compact_file(&path).await, Err(StoreError::Locked)));
    store.shutdown().await;
    drop(store);
    let done = compact_file(&path).await.unwrap();
    assert!(done.after * 2 < done.before, "{done:?}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), done.after);
    let reopened = Store::open(&path, StoreOptions::default(), Arc::new(NoListener)).unwrap();
    let (history, _) = reopened.history(2, &Target::parse("#big"), None, 10).unwrap();
    assert_eq!(history.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["kept"]);
}
