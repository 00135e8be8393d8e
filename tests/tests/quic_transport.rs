//! What only QUIC has: 0-RTT resumption and its replay rules, migration to a
//! new client address, idle timeout and keep-alive. A bare quinn client
//! against a real imboxd on loopback.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use imbox_protocol::{ErrorCode, Event, Request, Response, ServerFrame, Target};
use imbox_tests::quic::{endpoint, slow_relay, Stream};
use imbox_tests::{Server, PASSWORD};

fn hello() -> Request {
    Request::Hello { versions: vec![1], client: "bare-quic".into() }
}

fn login(user: &str) -> Request {
    Request::Login { username: user.into(), password: PASSWORD.into(), device_name: "bare".into() }
}

fn code(frame: &ServerFrame) -> Option<ErrorCode> {
    match frame {
        ServerFrame::Err { error, .. } => Some(error.code),
        _ => None,
    }
}

async fn open(endpoint: &quinn::Endpoint, addr: std::net::SocketAddr) -> (quinn::Connection, Stream) {
    let conn = endpoint.connect(addr, "imbox.local").unwrap().await.unwrap();
    let (send, recv) = conn.open_bi().await.unwrap();
    (conn, Stream::new(send, recv))
}

#[tokio::test]
async fn zero_rtt_resumes_and_refuses_what_is_not_safe_to_replay() {
    let server = Server::start().await;
    server.add_users(&["alice", "bob"]).await;
    let quic_addr = server.quic.unwrap();
    let client = endpoint(&server.dir, None);

    // First connection: a full handshake; it leaves a session ticket.
    let (conn, mut stream) = open(&client, quic_addr).await;
    stream.call(hello()).await;
    let ServerFrame::Ok { body: Response::Authenticated { token: Some(token), .. }, .. } =
        stream.call(login("alice")).await
    else {
        panic!("login failed")
    };
    // Give the session tickets (sent after the handshake) time to arrive.
    stream.call(Request::Ping).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.close(0u32.into(), b"done");

    // Second connection, through a link whose downstream is slow: the
    // client's first flight (0-RTT data included) arrives long before it can
    // finish the handshake.
    let relay = slow_relay(quic_addr, Duration::from_millis(400)).await;
    let connecting = client.connect(relay, "imbox.local").unwrap();
    let (conn, accepted) = connecting.into_0rtt().expect("a resumable session: 0-RTT must be possible");
    let (send, recv) = conn.open_bi().await.unwrap();
    let mut stream = Stream::new(send, recv);
    let ids = [
        stream.write(hello()).await,
        stream.write(Request::Resume { token }).await,
        stream
            .write(Request::Send {
                to: Target::parse("bob"),
                id: "early-1".into(),
                text: "0-RTT".into(),
                attachments: Vec::new(),
            })
            .await,
        stream.write(Request::CreateGroup { name: "early".into(), members: vec![] }).await,
    ];
    let mut answers = Vec::new();
    for id in ids {
        answers.push(stream.answer(id).await);
    }
    assert!(accepted.await, "the server accepted the 0-RTT data");
    assert!(matches!(answers[0], ServerFrame::Ok { body: Response::Welcome { .. }, .. }));
    assert!(matches!(answers[1], ServerFrame::Ok { body: Response::Authenticated { .. }, .. }));
    assert!(matches!(answers[2], ServerFrame::Ok { body: Response::Sent { .. }, .. }), "{:?}", answers[2]);
    assert_eq!(code(&answers[3]), Some(ErrorCode::NotInEarlyData), "{:?}", answers[3]);
    // After the handshake the same request goes through.
    let again = stream.call(Request::CreateGroup { name: "early".into(), members: vec![] }).await;
    assert!(matches!(again, ServerFrame::Ok { body: Response::Group { .. }, .. }), "{again:?}");
}

#[tokio::test]
async fn a_rebound_client_keeps_its_session() {
    let server = Server::start().await;
    server.add_users(&["alice", "bob"]).await;
    let client = endpoint(&server.dir, None);
    let (_conn, mut stream) = open(&client, server.quic.unwrap()).await;
    stream.call(hello()).await;
    stream.call(login("alice")).await;
    let ServerFrame::Ok { body: Response::Entries { more: false, .. }, .. } =
        stream.call(Request::Sync { since: 0, limit: 100 }).await
    else {
        panic!("sync failed")
    };
    let before = client.local_addr().unwrap();

    client.rebind(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
    assert_ne!(client.local_addr().unwrap(), before);

    // Still the same session: no login, and a push from bob arrives.
    let sent = stream
        .call(Request::Send {
            to: Target::parse("bob"),
            id: "after-rebind".into(),
            text: "moved".into(),
            attachments: Vec::new(),
        })
        .await;
    assert!(matches!(sent, ServerFrame::Ok { body: Response::Sent { .. }, .. }), "{sent:?}");
    let bob = server.connection("bob").await;
    bob.request(Request::Send {
        to: Target::parse("alice"),
        id: "to-moved".into(),
        text: "found you".into(),
        attachments: Vec::new(),
    })
    .await
    .unwrap();
    let mut texts = Vec::new();
    while texts.len() < 2 {
        if let Some(ServerFrame::Event { event: Event::Entry { entry } }) = stream.read().await {
            if let imbox_protocol::Item::Message(m) = entry.item {
                texts.push(m.text);
            }
        }
    }
    assert_eq!(texts, ["moved", "found you"]);
}

#[tokio::test]
async fn silent_connections_time_out_and_keep_alives_prevent_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), |c| c.quic.idle_timeout_ms = 1000).await;
    server.add_users(&["alice"]).await;

    let silent = endpoint(&server.dir, None);
    let (conn, mut stream) = open(&silent, server.quic.unwrap()).await;
    stream.call(hello()).await;
    stream.call(login("alice")).await;
    let reason =
        tokio::time::timeout(Duration::from_secs(10), conn.closed()).await.expect("still open after 10 s");
    assert!(matches!(reason, quinn::ConnectionError::TimedOut), "{reason:?}");

    let chatty = endpoint(&server.dir, Some(Duration::from_millis(200)));
    let (conn, mut stream) = open(&chatty, server.quic.unwrap()).await;
    stream.call(hello()).await;
    stream.call(login("alice")).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(conn.close_reason().is_none(), "closed: {:?}", conn.close_reason());
    assert!(matches!(stream.call(Request::Ping).await, ServerFrame::Ok { body: Response::Pong, .. }));
}

#[tokio::test]
async fn an_oversize_frame_closes_the_quic_session() {
    let server = Server::start().await;
    let client = endpoint(&server.dir, None);
    let (_conn, mut stream) = open(&client, server.quic.unwrap()).await;
    stream.call(hello()).await;
    stream.send.write_all(&(10_000_000u32).to_be_bytes()).await.unwrap();
    let frame = stream.read().await.expect("an error before the close");
    assert_eq!(code(&frame), Some(ErrorCode::FrameTooLarge));
    assert!(stream.read().await.is_none(), "the stream should end");
}
