//! The store on real redb files in a temporary directory.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use imbox_protocol::{Item, Target};

use super::*;

#[derive(Default)]
struct Recorder(Mutex<Vec<Notice>>);

impl CommitListener for Recorder {
    fn committed(&self, notices: Vec<Notice>) {
        self.0.lock().unwrap().extend(notices);
    }
}

async fn store() -> (Store, Arc<Recorder>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let store = Store::open(&dir.path().join("s.redb"), StoreOptions::default(), recorder.clone()).unwrap();
    for name in ["alice", "bob", "carol"] {
        store.create_user(name, "hash".into(), false).await.unwrap();
    }
    (store, recorder, dir)
}

/// A store (at `s.redb`) that never checkpoints by itself, so that its
/// writes stay in the log until something else makes them durable.
async fn store_without_checkpoints(users: &[&str]) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let hour = std::time::Duration::from_secs(3600);
    let never = Checkpoints { idle: hour, interval: hour, log_max_bytes: u64::MAX };
    let options = StoreOptions { checkpoints: never, ..StoreOptions::default() };
    let store = Store::open(&dir.path().join("s.redb"), options, Arc::new(NoListener)).unwrap();
    for name in users {
        store.create_user(name, "hash".into(), false).await.unwrap();
    }
    (store, dir)
}

/// A store opened on copies of a database file and its log, as a move
/// copies them to another disk.
fn open_copy(db: &[u8], log: &[u8]) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.redb"), db).unwrap();
    std::fs::write(dir.path().join("s.wal"), log).unwrap();
    let store =
        Store::open(&dir.path().join("s.redb"), StoreOptions::default(), Arc::new(NoListener)).unwrap();
    (store, dir)
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
async fn concurrent_writes_share_commits() {
    let (store, _, _dir) = store().await;
    let before = store.stats().commits.load(Ordering::Relaxed);
    // Queue 500 sends before waiting on any: the writer takes them in
    // batches, so there are far fewer commits (fsyncs) than sends.
    let pending: Vec<_> = (0..500).map(|i| send(&store, 1, "bob", &format!("m{i}"))).collect();
    let mut seqs = Vec::new();
    for p in pending {
        seqs.push(p.sent().await.unwrap().seq);
    }
    assert_eq!(seqs, (1..=500).collect::<Vec<_>>(), "queued order is commit order");
    let commits = store.stats().commits.load(Ordering::Relaxed) - before;
    assert!(commits < 50, "500 sends took {commits} commits");
}

#[tokio::test]
async fn a_refused_write_leaves_nothing_in_the_shared_commit() {
    let (store, _, _dir) = store().await;
    let group = store.create_group(1, "g", vec!["bob".into()], 10).await.unwrap();
    assert!(group > 0);
    // In one batch: a good send, a send from a non-member, a good send.
    let ok1 = send(&store, 1, "#g", "a");
    let refused = send(&store, 3, "#g", "b");
    let ok2 = send(&store, 2, "#g", "c");
    assert_eq!(ok1.sent().await.unwrap().seq, 1);
    assert!(matches!(refused.sent().await, Err(StoreError::NotMember(_))));
    assert_eq!(ok2.sent().await.unwrap().seq, 2);
    let (messages, _) = store.history(1, &Target::parse("#g"), None, 10).unwrap();
    assert_eq!(messages.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["a", "c"]);
}

#[tokio::test]
async fn every_member_gets_the_message_and_listeners_hear_after_commit() {
    let (store, recorder, _dir) = store().await;
    store.create_group(1, "g", vec!["bob".into(), "carol".into()], 10).await.unwrap();
    recorder.0.lock().unwrap().clear();
    send(&store, 2, "#g", "hi").sent().await.unwrap();
    let notices = recorder.0.lock().unwrap().clone();
    let users: Vec<Vec<u64>> = notices
        .iter()
        .filter_map(|n| match n {
            Notice::Entry { users, entry } if matches!(entry.item, Item::Message(_)) => Some(users.to_vec()),
            _ => None,
        })
        .collect();
    // One notice, rendered once, for every member.
    assert_eq!(users, [vec![1, 2, 3]]);
    for user in 1..=3 {
        let page = store.stream_page(user, 0, 100).unwrap();
        assert!(!page.more && !page.resync);
        // The group's creation, then the message, at the same positions
        // for everyone: the stream is the box's, not a copy per member.
        assert_eq!(page.entries.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 2]);
    }
}

#[tokio::test]
async fn tokens_are_stored_hashed_and_revocation_ends_them() {
    let (store, recorder, dir) = store().await;
    let device = store.add_device(1, "phone").await.unwrap();
    assert_eq!(store.authenticate(&device.token).unwrap().unwrap().device, device.auth.device);
    store.shutdown().await;
    drop(store);
    let bytes = std::fs::read(dir.path().join("s.redb")).unwrap();
    let token = device.token.as_bytes();
    assert!(!bytes.windows(token.len()).any(|w| w == token), "the token itself is on disk");
    let store = Store::open(&dir.path().join("s.redb"), StoreOptions::default(), recorder.clone()).unwrap();
    store.revoke_device(1, device.auth.device).await.unwrap();
    assert!(store.authenticate(&device.token).unwrap().is_none());
    assert!(matches!(store.revoke_device(2, device.auth.device).await, Err(StoreError::NoSuchDevice(_))));
}

#[tokio::test]
async fn invites_are_used_up() {
    let (store, _, _dir) = store().await;
    let token = store.create_invite(None, 1, None).await.unwrap();
    store.register("dana", "hash".into(), &token, "phone").await.unwrap();
    assert!(matches!(
        store.register("erin", "hash".into(), &token, "phone").await,
        Err(StoreError::InvalidInvite)
    ));
    let expired = store.create_invite(None, 5, Some(1)).await.unwrap();
    assert!(matches!(
        store.register("erin", "hash".into(), &expired, "x").await,
        Err(StoreError::InvalidInvite)
    ));
    assert!(matches!(store.create_user("dana", "h".into(), false).await, Err(StoreError::NameTaken(_))));
}

#[tokio::test]
async fn a_second_process_is_told_the_database_is_in_use() {
    let (_store, _, dir) = store().await;
    let again = Store::open(&dir.path().join("s.redb"), StoreOptions::default(), Arc::new(NoListener));
    assert!(matches!(again, Err(StoreError::Locked)));
}

#[tokio::test]
async fn removing_a_user_frees_the_name_and_keeps_their_messages_readable() {
    let (store, recorder, _dir) = store().await;
    store.create_group(1, "g", vec!["bob".into()], 10).await.unwrap();
    send(&store, 2, "#g", "from bob").sent().await.unwrap();
    store.remove_user("bob").await.unwrap();
    assert!(recorder.0.lock().unwrap().iter().any(|n| matches!(n, Notice::UserRemoved { user: 2 })));
    let (messages, _) = store.history(1, &Target::parse("#g"), None, 10).unwrap();
    assert_eq!(messages[0].from, "bob");
    assert!(store.users().unwrap().iter().all(|u| u.name != "bob"));
    assert!(store.create_user("bob", "h".into(), false).await.unwrap() > 3);
}

/// What a power cut leaves on the disk: the database file as of the last
/// checkpoint and the write-ahead log. Opening it applies the log, and every
/// acknowledged write is there, exactly as acknowledged.
#[tokio::test]
async fn after_a_crash_the_log_brings_back_every_acknowledged_write() {
    let (store, dir) = store_without_checkpoints(&["alice", "bob", "carol"]).await;
    store.create_group(1, "g", vec!["bob".into(), "carol".into()], 10).await.unwrap();
    let pending: Vec<_> = (0..300)
        .map(|i| send(&store, 1, if i % 2 == 0 { "#g" } else { "carol" }, &format!("m{i}")))
        .collect();
    let mut acked = Vec::new();
    for p in pending {
        acked.push(p.sent().await.unwrap());
    }
    store.receipt(2, Target::parse("#g"), imbox_protocol::ReceiptKind::Read, 5).await.unwrap();
    let head = store.stream_head().unwrap();

    // The files as they are on the disk now, without a checkpoint since the
    // first writes: the database file alone does not have the messages.
    let crash = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("s.redb"), crash.path().join("s.redb")).unwrap();
    std::fs::copy(dir.path().join("s.wal"), crash.path().join("s.wal")).unwrap();
    let without_log = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("s.redb"), without_log.path().join("s.redb")).unwrap();
    let bare = Store::open(&without_log.path().join("s.redb"), StoreOptions::default(), Arc::new(NoListener))
        .unwrap();
    assert_eq!(bare.stream_head().unwrap(), 0, "the test needs writes that only the log holds");

    let recovered =
        Store::open(&crash.path().join("s.redb"), StoreOptions::default(), Arc::new(NoListener)).unwrap();
    assert_eq!(recovered.stream_head().unwrap(), head);
    let (group, _) = recovered.history(1, &Target::parse("#g"), None, 500).unwrap();
    let (direct, _) = recovered.history(3, &Target::parse("alice"), None, 500).unwrap();
    let stored: Vec<(u64, u64, u64)> =
        group.iter().chain(&direct).map(|m| (m.conversation, m.seq, m.sent_at)).collect();
    let acked: Vec<(u64, u64, u64)> = acked.iter().map(|s| (s.conversation, s.seq, s.sent_at)).collect();
    assert_eq!(stored.len(), 300);
    for sent in &acked {
        assert!(stored.contains(sent), "{sent:?} is missing after the crash");
    }
    // Numbering goes on where it stopped, and the log was applied once.
    let next = send(&recovered, 1, "#g", "after").sent().await.unwrap();
    assert_eq!(next.seq, group.len() as u64 + 1);
    recovered.shutdown().await;
    drop(recovered);
    let again =
        Store::open(&crash.path().join("s.redb"), StoreOptions::default(), Arc::new(NoListener)).unwrap();
    assert_eq!(again.history(1, &Target::parse("#g"), None, 500).unwrap().0.len(), group.len() + 1);
}

/// An orderly stop checkpoints and empties the log, so that the data
/// directory it leaves needs no log at all (and an older or newer imboxd
/// started on it has no records to read).
#[tokio::test]
async fn an_orderly_stop_leaves_an_empty_log() {
    let (store, dir) = store_without_checkpoints(&["alice", "bob"]).await;
    for i in 0..20 {
        send(&store, 1, "bob", &format!("m{i}")).sent().await.unwrap();
    }
    let log = dir.path().join("s.wal");
    assert!(std::fs::metadata(&log).unwrap().len() > 0, "the test needs writes in the log");
    store.shutdown().await;
    drop(store);
    assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
    // Everything is in the database itself.
    std::fs::remove_file(&log).unwrap();
    let again =
        Store::open(&dir.path().join("s.redb"), StoreOptions::default(), Arc::new(NoListener)).unwrap();
    assert_eq!(again.history(1, &Target::parse("bob"), None, 100).unwrap().0.len(), 20);
}

#[tokio::test]
async fn while_paused_the_files_stay_as_they_are_and_a_copy_of_them_is_complete() {
    // No checkpoint of its own: the pause has to make the database durable.
    let (store, dir) = store_without_checkpoints(&["alice", "bob"]).await;
    let pending: Vec<_> = (0..200).map(|i| send(&store, 1, "bob", &format!("m{i}"))).collect();
    // A send queued just before the pause is committed before it.
    let last = send(&store, 2, "alice", "last before the pause");
    store.pause().await.unwrap();
    for p in pending {
        p.sent().await.unwrap();
    }
    last.sent().await.unwrap();
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let (db, log) = (read("s.redb"), read("s.wal"));

    let refused = send(&store, 1, "bob", "during the pause").sent().await;
    assert!(matches!(refused, Err(StoreError::Paused)), "{refused:?}");
    assert!(matches!(store.add_device(1, "phone").await, Err(StoreError::Paused)));
    assert_eq!(store.history(1, &Target::parse("bob"), None, 500).unwrap().0.len(), 201, "reads go on");
    assert!(read("s.redb") == db && read("s.wal") == log, "a paused store changed its files");

    // The copy a move makes, taken while imboxd still has the files open.
    let (copy, _moved) = open_copy(&db, &log);
    let (messages, _) = copy.history(1, &Target::parse("bob"), None, 500).unwrap();
    assert_eq!(messages.len(), 201);
    assert!(messages.iter().any(|m| m.text == "last before the pause"));
    assert!(!messages.iter().any(|m| m.text == "during the pause"));
    let next = send(&copy, 1, "bob", "on the new disk").sent().await.unwrap();
    assert_eq!(next.seq, 202);

    // A move that failed: the original takes writes again.
    store.resume().await.unwrap();
    assert_eq!(send(&store, 1, "bob", "after the resume").sent().await.unwrap().seq, 202);
}

#[tokio::test]
async fn stopping_while_paused_leaves_the_files_as_they_were_copied() {
    let (store, dir) = store_without_checkpoints(&["alice", "bob"]).await;
    send(&store, 1, "bob", "before the move").sent().await.unwrap();
    store.pause().await.unwrap();
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let (db, log) = (read("s.redb"), read("s.wal"));
    store.shutdown().await;
    drop(store);
    // A closed redb file gets a new header; this one must not, or the copy
    // taken during the pause would be stale.
    assert!(read("s.redb") == db && read("s.wal") == log, "stopping a paused store changed its files");

    let (moved, _copy) = open_copy(&db, &log);
    assert_eq!(moved.history(1, &Target::parse("bob"), None, 10).unwrap().0.len(), 1);
}

#[tokio::test]
async fn a_full_disk_refuses_the_batch_keeps_what_was_stored_and_takes_writes_again() {
    let (store, _dir) = store_without_checkpoints(&["alice", "bob"]).await;
    let first = send(&store, 1, "bob", "m1").sent().await.unwrap();
    // The disk refuses the next log record for want of space.
    store.health().inject_log_fault(28); // ENOSPC
    let refused = send(&store, 1, "bob", "m2").sent().await;
    assert!(matches!(refused, Err(StoreError::StorageFull)), "{refused:?}");
    assert_eq!(store.health().state(), WriterState::StorageFull);
    assert!(store.health().reason().unwrap().contains("full"));
    assert!(store.health().alive(), "a full disk is not a failed writer: the watchdog goes on");
    // What is stored is still read.
    let (page, _) = store.history(1, &Target::parse("bob"), None, 10).unwrap();
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [first.seq]);
    // Space again: the next write goes through, numbered right after the first.
    let second = send(&store, 1, "bob", "m2").sent().await.unwrap();
    assert_eq!(second.seq, first.seq + 1);
    assert_eq!(store.health().state(), WriterState::Running);
    assert_eq!(store.health().reason(), None);
}

#[tokio::test]
async fn a_failed_log_write_stops_the_writer_and_says_so() {
    let (store, dir) = store_without_checkpoints(&["alice", "bob"]).await;
    let first = send(&store, 1, "bob", "m1").sent().await.unwrap();
    let failed = store.health().failed();
    store.health().inject_log_fault(5); // EIO
    assert!(matches!(send(&store, 1, "bob", "m2").sent().await, Err(StoreError::BatchFailed(_))));
    // Whoever waits on the writer hears of it (the server then exits).
    failed.cancelled().await;
    assert_eq!(store.health().state(), WriterState::Failed);
    assert!(!store.health().alive(), "the watchdog is no longer pinged");
    // Later writes are refused (queued before the thread is gone, or not at all).
    let later = store.write(WriteOp::Ack { device: 1, position: 1 }).await;
    assert!(matches!(later, Err(StoreError::Closed)), "{later:?}");
    // A restart applies the log: the acknowledged send is there, the failed one is not.
    drop(store);
    let store =
        Store::open(&dir.path().join("s.redb"), StoreOptions::default(), Arc::new(NoListener)).unwrap();
    let (page, _) = store.history(1, &Target::parse("bob"), None, 10).unwrap();
    assert_eq!(page.iter().map(|m| (m.seq, m.text.clone())).collect::<Vec<_>>(), [(first.seq, "m1".into())]);
    assert_eq!(store.health().state(), WriterState::Running);
}

#[tokio::test]
async fn a_revoked_device_leaves_nothing_behind() {
    use redb::ReadableDatabase;
    let (store, _recorder, _dir) = store().await;
    let phone = store.add_device(1, "phone").await.unwrap();
    let laptop = store.add_device(1, "laptop").await.unwrap();
    store.revoke_device(1, phone.auth.device).await.unwrap();
    let db = store.db();
    let txn = db.begin_read().unwrap();
    assert!(txn.open_table(records::DEVICES).unwrap().get(phone.auth.device).unwrap().is_none());
    assert!(txn
        .open_table(records::TOKENS)
        .unwrap()
        .get(token_hash(&phone.token).as_slice())
        .unwrap()
        .is_none());
    let listed: Vec<u64> = txn
        .open_multimap_table(records::USER_DEVICES)
        .unwrap()
        .get(1)
        .unwrap()
        .map(|d| d.unwrap().value())
        .collect();
    assert_eq!(listed, [laptop.auth.device]);
    assert!(store.authenticate(&phone.token).unwrap().is_none());
    assert!(store.authenticate(&laptop.token).unwrap().is_some());
}

#[tokio::test]
async fn a_stale_heartbeat_stops_the_watchdog_and_health_until_the_writer_goes_round_again() {
    let (store, _dir) = store_without_checkpoints(&["alice", "bob"]).await;
    assert!(store.health().alive());
    assert_eq!(crate::web::status::health(&store).0, hyper::StatusCode::OK);
    // As a writer stuck on a disk that no longer answers would leave it.
    store.health().backdate_heartbeat(health::STALE);
    assert!(!store.health().alive(), "the watchdog is not pinged");
    let (status, body) = crate::web::status::health(&store);
    assert_eq!(status, hyper::StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.starts_with("writer_stuck"), "{body}");
    // A writer that goes round its loop again beats again.
    send(&store, 1, "bob", "m1").sent().await.unwrap();
    assert!(store.health().alive());
}
