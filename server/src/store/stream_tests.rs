//! What a user's stream holds: the events of the conversations the user was
//! in while the user was in them, merged by position, with each receipt
//! marker at its latest value.

use std::sync::Arc;

use imbox_protocol::{Item, MembershipChange, ReceiptKind, Target};

use super::*;

async fn store_with(users: &[&str]) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::open(&dir.path().join("s.redb"), StoreOptions::default(), Arc::new(NoListener)).unwrap();
    for name in users {
        store.create_user(name, "h".into(), false).await.unwrap();
    }
    (store, dir)
}

/// Everything in `user`'s stream after `since`, read in pages of `page`.
fn stream(store: &Store, user: u64, since: u64, page: u32) -> Vec<Entry> {
    let (mut entries, mut since) = (Vec::new(), since);
    loop {
        let got = store.stream_page(user, since, page).unwrap();
        assert!(!got.resync);
        if let Some(last) = got.entries.last() {
            since = last.position;
        }
        let more = got.more;
        entries.extend(got.entries);
        if !more {
            return entries;
        }
    }
}

/// Entries in a short readable form.
fn describe(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match &e.item {
            Item::Message(m) => format!("{} {}", m.chat, m.text),
            Item::Receipt(r) => format!("{} {} {:?} {}", r.chat, r.user, r.kind, r.seq),
            Item::Membership(m) => format!("{} {} {:?}", m.chat, m.user, m.change),
        })
        .collect()
}

async fn say(store: &Store, from: u64, to: &str, text: &str) {
    store.send(from, 0, Target::parse(to), text.into(), text.into()).await.unwrap();
}

#[tokio::test]
async fn a_member_who_left_and_came_back_gets_what_happened_while_a_member_only() {
    let (store, _dir) = store_with(&["alice", "bob"]).await;
    store.create_group(1, "g", vec!["bob".into()], 10).await.unwrap();
    say(&store, 1, "#g", "one").await;
    store.leave(2, Target::parse("#g")).await.unwrap();
    say(&store, 1, "#g", "while away").await;
    say(&store, 1, "bob", "direct").await;
    store.add_member(1, Target::parse("#g"), "bob", 10).await.unwrap();
    say(&store, 1, "#g", "two").await;

    // Bob's device syncs everything from before the group existed, in pages
    // of one and of many: the same entries, in position order.
    let all = stream(&store, 2, 0, 100);
    assert_eq!(describe(&all), describe(&stream(&store, 2, 0, 1)));
    assert_eq!(
        describe(&all),
        ["#g alice Created", "#g one", "#g bob Left", "alice direct", "#g bob Added", "#g two"]
    );
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    // Alice, a member throughout, sees the message Bob missed.
    let alice = describe(&stream(&store, 1, 0, 100));
    assert!(alice.contains(&"#g while away".to_owned()));
    // A cursor in the middle: only what comes after it.
    let after_left = all[2].position;
    assert_eq!(describe(&stream(&store, 2, after_left, 2)), describe(&all[3..]));
    let (history, _) = store.history(2, &Target::parse("#g"), None, 10).unwrap();
    assert_eq!(history.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["two"]);
}

#[tokio::test]
async fn a_device_that_syncs_late_gets_each_marker_once_at_its_latest_value() {
    let (store, _dir) = store_with(&["alice", "bob", "carol"]).await;
    store.create_group(1, "g", vec!["bob".into(), "carol".into()], 10).await.unwrap();
    for i in 1..=5 {
        say(&store, 1, "#g", &format!("m{i}")).await;
    }
    let cursor = store.stream_head().unwrap();
    for seq in 1..=5 {
        store.receipt(2, Target::parse("#g"), ReceiptKind::Read, seq).await.unwrap();
    }
    store.receipt(3, Target::parse("#g"), ReceiptKind::Delivered, 4).await.unwrap();
    // Old and repeated marks change nothing.
    store.receipt(2, Target::parse("#g"), ReceiptKind::Read, 3).await.unwrap();
    assert_eq!(describe(&stream(&store, 1, cursor, 100)), ["#g bob Read 5", "#g carol Delivered 4"]);
    let info = store.conversation(2, 1).unwrap();
    assert_eq!(info.read_seq, 5);
}

#[tokio::test]
async fn a_direct_conversation_starts_in_both_streams_with_its_first_message() {
    let (store, _dir) = store_with(&["alice", "bob", "carol"]).await;
    let before = store.stream_head().unwrap();
    say(&store, 1, "bob", "hi bob").await;
    say(&store, 3, "alice", "hi alice").await;
    assert_eq!(describe(&stream(&store, 1, before, 100)), ["bob hi bob", "carol hi alice"]);
    assert_eq!(describe(&stream(&store, 2, before, 100)), ["alice hi bob"]);
    assert_eq!(describe(&stream(&store, 3, before, 100)), ["alice hi alice"]);
}

#[tokio::test]
async fn a_removed_member_hears_of_the_removal_and_nothing_after() {
    let (store, _dir) = store_with(&["alice", "bob"]).await;
    store.create_group(1, "g", vec!["bob".into()], 10).await.unwrap();
    store.receipt(2, Target::parse("#g"), ReceiptKind::Delivered, 0).await.unwrap();
    say(&store, 1, "#g", "before").await;
    store.receipt(2, Target::parse("#g"), ReceiptKind::Read, 1).await.unwrap();
    store.remove_member(1, Target::parse("#g"), "bob").await.unwrap();
    say(&store, 1, "#g", "after").await;
    let bob = stream(&store, 2, 0, 100);
    assert_eq!(describe(&bob), ["#g alice Created", "#g before", "#g bob Removed"]);
    let Item::Membership(m) = &bob[2].item else { panic!() };
    assert_eq!((m.change, m.by.as_str()), (MembershipChange::Removed, "alice"));
    // Bob's markers went with him: Alice's devices do not get them.
    assert!(!describe(&stream(&store, 1, 0, 100)).iter().any(|e| e.contains("bob Read")));
}

#[tokio::test]
async fn a_page_of_long_messages_ends_before_it_outgrows_a_frame() {
    let (store, _dir) = store_with(&["alice", "bob"]).await;
    let text = "x".repeat(16 * 1024);
    for i in 0..300 {
        let op = WriteOp::Send {
            sender: 1,
            device: 0,
            to: Target::parse("bob"),
            client_id: format!("m{i}"),
            text: text.clone(),
            attachments: Vec::new(),
        };
        store.write(op).await.unwrap();
    }
    let page = store.stream_page(2, 0, 500).unwrap();
    assert!(page.more, "the byte bound ends the page");
    let bytes: usize = page.entries.len() * text.len();
    assert!(bytes <= super::read::PAGE_BYTES + text.len() + 1024, "{} entries", page.entries.len());
    assert!(page.entries.len() >= 200, "{} entries", page.entries.len());
    assert_eq!(stream(&store, 2, 0, 500).len(), 300, "paging still reaches every message");
    let (history, more) = store.history(2, &Target::parse("alice"), None, 500).unwrap();
    assert!(more && history.len() < 300 && history.last().unwrap().seq == 300);
}
