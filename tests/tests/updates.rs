//! What the mobile SDK needs of the client library, over QUIC against a
//! real server: `Client::next_update` (entries, typing, presence and
//! connection changes; cancel-safe), `Client::disconnect` (an app going to
//! the background) and sessions without keep-alives.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use imbox_client::{Client, ClientOptions, ConnectOptions, Update};
use imbox_protocol::{Item, Request, Target};
use imbox_tests::{Server, Transport};

/// Guards against a hang only.
const WAIT: Duration = Duration::from_secs(20);

async fn update(client: &mut Client) -> Update {
    tokio::time::timeout(WAIT, client.next_update()).await.unwrap().unwrap()
}

/// The next entry's message text, skipping other updates.
async fn next_text(client: &mut Client) -> String {
    loop {
        if let Update::Entry(entry) = update(client).await {
            if let Item::Message(message) = entry.item {
                return message.text;
            }
        }
    }
}

async fn quic_server(tweak: impl FnOnce(&mut imboxd::config::Config)) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(&dir.path().join("box"), tweak).await;
    server.transport = Transport::Quic;
    server.add_users(&["alice", "bob"]).await;
    (server, dir)
}

#[tokio::test]
async fn updates_carry_typing_presence_and_reconnections() {
    let (server, dir) = quic_server(|_| {}).await;
    let mut alice = server.client("alice", &dir.path().join("a")).await;
    let mut bob = server.client("bob", &dir.path().join("b")).await;
    alice.send(&Target::parse("bob"), "hi").await.unwrap();
    assert_eq!(next_text(&mut bob).await, "hi");

    alice.call(Request::Typing { conversation: Target::parse("bob") }).await.unwrap();
    loop {
        if let Update::Typing { user, chat, .. } = update(&mut bob).await {
            assert_eq!((user.as_str(), chat.as_str()), ("alice", "alice"));
            break;
        }
    }

    // Back from the background: the new session says who is online.
    bob.disconnect().await.unwrap();
    assert!(bob.current_connection().is_none());
    assert_eq!(bob.profile().cursor, bob.cursor(), "the cursor was saved");
    alice.send(&Target::parse("bob"), "while bob was away").await.unwrap();
    match update(&mut bob).await {
        Update::Connected { online } => assert_eq!(online, ["alice"]),
        other => panic!("expected Connected first, got {other:?}"),
    }
    assert_eq!(bob.session().unwrap().online, ["alice"]);
    assert_eq!(next_text(&mut bob).await, "while bob was away");

    // Alice leaves: bob hears it.
    alice.disconnect().await.unwrap();
    loop {
        if let Update::Presence { user, online } = update(&mut bob).await {
            assert_eq!((user.as_str(), online), ("alice", false));
            break;
        }
    }
}

/// Racing `next_update` against other work (as the SDK does to let
/// requests through) loses and repeats nothing.
#[tokio::test]
async fn next_update_is_cancel_safe() {
    let (server, dir) = quic_server(|_| {}).await;
    let mut alice = server.client("alice", &dir.path().join("a")).await;
    let mut bob = server.client("bob", &dir.path().join("b")).await;
    const COUNT: usize = 200;
    let sender = tokio::spawn(async move {
        for n in 0..COUNT {
            alice.send(&Target::parse("bob"), &format!("{n}")).await.unwrap();
        }
        alice
    });
    let mut got = Vec::new();
    let mut interrupted = 0;
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    while got.len() < COUNT {
        assert!(tokio::time::Instant::now() < deadline, "got {} of {COUNT}", got.len());
        tokio::select! {
            update = bob.next_update() => {
                if let Update::Entry(entry) = update.unwrap() {
                    if let Item::Message(message) = entry.item {
                        got.push(message.text.parse::<usize>().unwrap());
                    }
                }
            }
            // Often enough to cut waits, reads and commits short, and now
            // and then long enough for a whole sync page to come through.
            () = tokio::time::sleep(Duration::from_millis([1, 2, 5, 30][interrupted % 4])) => interrupted += 1,
        }
    }
    sender.await.unwrap();
    assert_eq!(got, (0..COUNT).collect::<Vec<_>>());
    assert!(interrupted > 0);
}

/// Without keep-alives nothing holds an idle session open: the box's idle
/// timeout ends it, the client says so and reconnects by itself.
#[tokio::test]
async fn without_keepalives_an_idle_session_ends_and_comes_back() {
    let (server, dir) = quic_server(|config| config.quic.idle_timeout_ms = 1000).await;
    let connect = ConnectOptions { quic_keep_alive: None, ..server.options() };
    let options = ClientOptions { connect: connect.clone(), keepalive: None, ..ClientOptions::default() };
    let url = server.client_url();
    let bob = Client::login_with(dir.path().join("b"), &url, &connect, "bob", imbox_tests::PASSWORD, "phone")
        .await
        .unwrap();
    let mut bob = bob.with_options(options);
    let mut alice = server.client("alice", &dir.path().join("a")).await;
    let mut seen = Vec::new();
    loop {
        match update(&mut bob).await {
            Update::Connected { .. } => break,
            other => seen.push(other),
        }
    }
    assert!(matches!(seen.last(), Some(Update::Disconnected { .. })), "{seen:?}");
    alice.send(&Target::parse("bob"), "still there?").await.unwrap();
    assert_eq!(next_text(&mut bob).await, "still there?");
}

/// What an idle session costs: with no keep-alive the client sends nothing
/// at all while idle; with one, each keep-alive costs one small packet.
/// Prints the bytes per idle hour that the SDK's documentation states.
#[tokio::test]
async fn an_idle_session_without_keepalives_sends_nothing() {
    let (server, dir) = quic_server(|_| {}).await;
    let url = server.client_url();
    let mut sent_while_idle = Vec::new();
    for keepalive in [None, Some(Duration::from_millis(500))] {
        let connect = ConnectOptions { quic_keep_alive: keepalive, ..server.options() };
        let profile = dir.path().join(format!("{keepalive:?}"));
        let client = Client::login_with(&profile, &url, &connect, "bob", imbox_tests::PASSWORD, "phone")
            .await
            .unwrap();
        let mut client = client.with_options(ClientOptions {
            connect: connect.clone(),
            keepalive,
            ..ClientOptions::default()
        });
        let conn = client.connection().await.unwrap();
        // Settled: the handshake's last packets and acknowledgements are out.
        conn.request(Request::Ping).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let quic = conn.quic_connection().unwrap();
        let before = quic.stats().udp_tx;
        tokio::time::sleep(Duration::from_millis(2600)).await;
        let after = quic.stats().udp_tx;
        sent_while_idle.push((after.bytes - before.bytes, after.datagrams - before.datagrams));
    }
    let (idle_bytes, _) = sent_while_idle[0];
    assert_eq!(idle_bytes, 0, "sent while idle without keep-alives");
    let (bytes, datagrams) = sent_while_idle[1];
    assert!(datagrams > 0, "no keep-alive went out in 2.6 s with one due every 500 ms");
    println!(
        "idle QUIC session: no keep-alive: 0 bytes/hour from the client; one every 25 s: about {} bytes/hour \
         ({} bytes per keep-alive datagram)",
        bytes / datagrams * 3600 / 25,
        bytes / datagrams
    );
}
