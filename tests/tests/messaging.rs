//! Conversations end to end, the same suite over every transport (ws,
//! wss with a pinned key, QUIC): a real server on loopback, real redb files,
//! the client library.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use imbox_client::{Client, ClientOptions};
use imbox_protocol::{Event, Item, Message, Request, Response, Target};
use imbox_tests::{over_every_transport, Server, Transport};

fn message(item: &Item) -> Option<&Message> {
    match item {
        Item::Message(m) => Some(m),
        _ => None,
    }
}

/// Reads the backlog to its end: every message, in order.
async fn backlog(client: &mut Client) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(entry) = client.next_backlog_entry().await.unwrap() {
        if let Some(m) = message(&entry.item) {
            out.push(m.clone());
        }
    }
    client.commit().await.unwrap();
    out
}

async fn two_users_chat_both_ways(transport: Transport) {
    let server = Server::over(transport).await;
    server.add_users(&["alice", "bob"]).await;
    let profiles = tempfile::tempdir().unwrap();
    let mut alice = server.client("alice", &profiles.path().join("a")).await;
    let mut bob = server.client("bob", &profiles.path().join("b")).await;
    assert!(backlog(&mut bob).await.is_empty());

    // bob is live: alice's message is pushed to him.
    let listener = tokio::spawn(async move {
        let entry = tokio::time::timeout(Duration::from_secs(10), bob.next_entry()).await.unwrap().unwrap();
        (bob, entry)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = alice.send(&Target::parse("bob"), "hello bob").await.unwrap();
    assert!(!sent.duplicate);
    let (mut bob, entry) = listener.await.unwrap();
    let got = message(&entry.item).unwrap();
    assert_eq!((got.text.as_str(), got.from.as_str(), got.chat.as_str()), ("hello bob", "alice", "alice"));
    assert_eq!(got.id, sent.id);
    bob.commit().await.unwrap();

    bob.send(&Target::parse("alice"), "hello alice").await.unwrap();
    let texts: Vec<_> = backlog(&mut alice).await.into_iter().map(|m| (m.from, m.text)).collect();
    // alice's log holds her own message (for her other devices) and bob's.
    assert_eq!(
        texts,
        vec![("alice".to_owned(), "hello bob".to_owned()), ("bob".to_owned(), "hello alice".to_owned())]
    );
}

async fn an_offline_group_member_later_gets_every_message_once_in_order(transport: Transport) {
    let server = Server::over(transport).await;
    server.add_users(&["alice", "bob", "carol"]).await;
    let profiles = tempfile::tempdir().unwrap();
    let mut alice = server.client("alice", &profiles.path().join("a")).await;
    let mut bob = server.client("bob", &profiles.path().join("b")).await;
    let carol_dir = profiles.path().join("c");
    server.client("carol", &carol_dir).await.close().await;

    let group = alice.create_group("trip", &["bob".into(), "carol".into()]).await.unwrap();
    assert_eq!(group.members.len(), 3);
    let mut expected = Vec::new();
    for i in 0..30 {
        let (who, client) = if i % 2 == 0 { ("alice", &mut alice) } else { ("bob", &mut bob) };
        let text = format!("{who} says {i}");
        client.send(&Target::parse("#trip"), &text).await.unwrap();
        expected.push(text);
    }

    let mut carol = Client::open(&carol_dir).unwrap();
    let got = backlog(&mut carol).await;
    assert_eq!(got.iter().map(|m| m.text.clone()).collect::<Vec<_>>(), expected);
    assert!(got.iter().all(|m| m.chat == "#trip"));
    assert_eq!(got.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=30).collect::<Vec<_>>());
    // A second sync has nothing new: each message came once.
    carol.close().await;
    let mut carol = Client::open(&carol_dir).unwrap();
    assert!(backlog(&mut carol).await.is_empty());
}

async fn a_retried_send_with_the_same_id_yields_one_message(transport: Transport) {
    let server = Server::over(transport).await;
    server.add_users(&["alice", "bob"]).await;
    let profiles = tempfile::tempdir().unwrap();
    let mut alice = server.client("alice", &profiles.path().join("a")).await;
    let first = alice.send_with_id(&Target::parse("bob"), "retry-1", "only once").await.unwrap();
    let again = alice.send_with_id(&Target::parse("bob"), "retry-1", "only once").await.unwrap();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!((first.conversation, first.seq), (again.conversation, again.seq));
    let mut bob = server.client("bob", &profiles.path().join("b")).await;
    let (history, more) = bob.history(&Target::parse("alice"), None, 50).await.unwrap();
    assert!(!more);
    assert_eq!(history.len(), 1);
}

async fn a_device_offline_across_a_thousand_messages_resumes_in_pages(transport: Transport) {
    let server = Server::over(transport).await;
    server.add_users(&["alice", "bob"]).await;
    let profiles = tempfile::tempdir().unwrap();
    let bob_dir = profiles.path().join("b");
    server.client("bob", &bob_dir).await.close().await;

    // Many sends in flight on one connection share commits.
    let alice = server.connection("alice").await;
    let sends = (0..1000).map(|i| {
        alice.request(imbox_protocol::Request::Send {
            to: Target::parse("bob"),
            id: format!("m{i:04}"),
            text: format!("message {i}"),
            attachments: Vec::new(),
        })
    });
    for result in futures_util::future::join_all(sends).await {
        result.unwrap();
    }

    let options = ClientOptions { sync_page: 100, ..ClientOptions::default() };
    let mut bob = Client::open(&bob_dir).unwrap().with_options(options);
    let got = backlog(&mut bob).await;
    assert_eq!(got.len(), 1000);
    let ids: HashSet<_> = got.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids.len(), 1000);
    assert_eq!(got.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=1000).collect::<Vec<_>>());
    bob.close().await;
    let mut bob = Client::open(&bob_dir).unwrap();
    assert!(backlog(&mut bob).await.is_empty(), "the cursor was saved: nothing comes twice");
}

async fn a_users_other_devices_see_what_it_sent(transport: Transport) {
    let server = Server::over(transport).await;
    server.add_users(&["alice", "bob"]).await;
    let profiles = tempfile::tempdir().unwrap();
    let mut phone = server.client("alice", &profiles.path().join("phone")).await;
    let mut laptop = server.client("alice", &profiles.path().join("laptop")).await;
    assert!(backlog(&mut laptop).await.is_empty());
    phone.send(&Target::parse("bob"), "sent from the phone").await.unwrap();
    let seen = backlog(&mut laptop).await;
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].from.as_str(), seen[0].chat.as_str()), ("alice", "bob"));
    let devices = laptop.devices().await.unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(devices.iter().filter(|d| d.current).count(), 1);
}

async fn a_restart_keeps_every_acknowledged_message(transport: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let profiles = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), |_| {}).await;
    server.transport = transport;
    server.add_users(&["alice", "bob"]).await;
    let mut alice = server.client("alice", &profiles.path().join("a")).await;
    server.client("bob", &profiles.path().join("b")).await.close().await;
    for i in 0..100 {
        alice.send(&Target::parse("bob"), &format!("durable {i}")).await.unwrap();
    }
    alice.close().await;
    server.stop().await;

    let mut server = Server::start_in(dir.path(), |_| {}).await;
    server.transport = transport;
    // The ports changed; the box key (and so the pin) did not.
    let mut bob = Client::open(profiles.path().join("b")).unwrap();
    bob.use_server(imbox_client::ServerUrl::parse(&server.client_url()).unwrap());
    let got = backlog(&mut bob).await;
    assert_eq!(got.len(), 100);
    assert_eq!(got.last().unwrap().text, "durable 99");
}

async fn history_pages_backwards(transport: Transport) {
    let server = Server::over(transport).await;
    server.add_users(&["alice", "bob"]).await;
    let alice = server.connection("alice").await;
    for i in 1..=25 {
        alice
            .request(imbox_protocol::Request::Send {
                to: Target::parse("bob"),
                id: format!("h{i}"),
                text: format!("{i}"),
                attachments: Vec::new(),
            })
            .await
            .unwrap();
    }
    let profiles = tempfile::tempdir().unwrap();
    let mut bob = server.client("bob", &profiles.path().join("b")).await;
    let (newest, more) = bob.history(&Target::parse("alice"), None, 10).await.unwrap();
    assert!(more);
    assert_eq!(newest.iter().map(|m| m.seq).collect::<Vec<_>>(), (16..=25).collect::<Vec<_>>());
    let (older, more) = bob.history(&Target::parse("alice"), Some(16), 10).await.unwrap();
    assert!(more);
    assert_eq!(older.first().unwrap().seq, 6);
    let (oldest, more) = bob.history(&Target::parse("alice"), Some(6), 10).await.unwrap();
    assert!(!more);
    assert_eq!(oldest.len(), 5);
}

async fn a_live_device_three_pages_behind_gets_everything_once_in_order(transport: Transport) {
    // A push queue of one entry and sync pages of ten: a burst committed in
    // a few group commits overflows the queue, and the device must catch up
    // by several pages from the store with no further push to wake it.
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), |c| {
        c.limits.session_queue = 1;
        c.limits.max_sync_page = 10;
    })
    .await;
    server.transport = transport;
    server.add_users(&["alice", "bob"]).await;
    let alice = server.connection("alice").await;
    let bob = server.connection("bob").await;
    let synced = bob.request(Request::Sync { since: 0, limit: 10 }).await.unwrap();
    assert!(matches!(synced, Response::Entries { more: false, .. }));

    const BURST: u64 = 45;
    let sends = (1..=BURST).map(|i| {
        alice.request(Request::Send {
            to: Target::parse("bob"),
            id: format!("m{i}"),
            text: format!("burst {i}"),
            attachments: Vec::new(),
        })
    });
    for sent in futures_util::future::join_all(sends).await {
        assert!(matches!(sent.unwrap(), Response::Sent { duplicate: false, .. }));
    }
    let mut positions = Vec::new();
    while positions.len() < BURST as usize {
        let event = tokio::time::timeout(Duration::from_secs(10), bob.next_event())
            .await
            .unwrap_or_else(|_| panic!("stalled after {positions:?}"));
        if let Some(Event::Entry { entry }) = event {
            assert!(message(&entry.item).is_some());
            positions.push(entry.position);
        }
    }
    assert_eq!(positions, (1..=BURST).collect::<Vec<_>>());
}

over_every_transport!(
    two_users_chat_both_ways,
    an_offline_group_member_later_gets_every_message_once_in_order,
    a_retried_send_with_the_same_id_yields_one_message,
    a_device_offline_across_a_thousand_messages_resumes_in_pages,
    a_users_other_devices_see_what_it_sent,
    a_restart_keeps_every_acknowledged_message,
    history_pages_backwards,
    a_live_device_three_pages_behind_gets_everything_once_in_order,
);
