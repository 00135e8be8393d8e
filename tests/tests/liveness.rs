//! Peers that vanish or stall: a WebSocket peer that stops answering pings
//! or stops reading is dropped and its contacts see it go offline; an HTTP
//! request whose body never finishes is closed; connections stalled at every
//! stage (TLS handshake, request head, request body, WebSocket) count toward
//! `max_connections`.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use imbox_client::Connection;
use imbox_protocol::{ClientFrame, Event, Request, Response, ServerFrame, Target};
use imbox_tests::quic::{endpoint, Stream};
use imbox_tests::{Server, PASSWORD};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A generous bound on waiting for something the server does by itself: a
/// test that hits it fails instead of hanging. Not a measure of speed.
const PATIENCE: Duration = Duration::from_secs(20);

fn http_addr(server: &Server) -> SocketAddr {
    server.url.trim_start_matches("ws://").parse().unwrap()
}

fn https_addr(server: &Server) -> SocketAddr {
    server.wss.as_deref().unwrap().trim_start_matches("wss://").parse().unwrap()
}

/// A raw WebSocket client, logged in as `user` and live (synced to the end).
/// It answers pings only while something reads from it.
async fn raw_live(server: &Server, user: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/ws", server.url)).await.unwrap();
    let requests = [
        Request::Hello { versions: vec![1], client: "raw".into() },
        Request::Login { username: user.into(), password: PASSWORD.into(), device_name: "raw".into() },
        Request::Sync { since: 0, limit: 100 },
    ];
    for (id, req) in (1..).zip(requests) {
        ws.send(Message::Binary(ClientFrame { id, req }.encode().into())).await.unwrap();
        loop {
            match tokio::time::timeout(PATIENCE, ws.next()).await.unwrap() {
                Some(Ok(Message::Binary(bytes))) => match ServerFrame::decode(&bytes).unwrap() {
                    ServerFrame::Ok { id: got, .. } if got == id => break,
                    ServerFrame::Err { error, .. } => panic!("{error:?}"),
                    _ => continue,
                },
                Some(Ok(_)) => continue,
                other => panic!("connection ended: {other:?}"),
            }
        }
    }
    ws
}

/// Waits for `user`'s presence to become `online` as `watcher` is told.
async fn presence(watcher: &Connection, user: &str, online: bool) {
    let wait = async {
        loop {
            match watcher.next_event().await {
                Some(Event::Presence { user: who, online: now }) if who == user && now == online => return,
                Some(_) => continue,
                None => panic!("the watcher's connection ended"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("{user} was not shown {}", if online { "online" } else { "offline" }));
}

/// Two users who share a conversation, so that each sees the other's
/// presence; `alice` connected through the client library (which answers
/// pings).
async fn contacts(server: &Server) -> Connection {
    server.add_users(&["alice", "bob"]).await;
    let alice = server.connection("alice").await;
    let hi = Request::Send {
        to: Target::parse("bob"),
        id: "hi".into(),
        text: "hi".into(),
        attachments: Vec::new(),
    };
    assert!(matches!(alice.request(hi).await.unwrap(), Response::Sent { .. }));
    alice
}

#[tokio::test]
async fn a_websocket_peer_that_stops_answering_pings_is_dropped_and_shown_offline() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), |c| {
        c.http.ping_interval_ms = 200;
        c.http.ping_timeout_ms = 200;
    })
    .await;
    let alice = contacts(&server).await;
    // bob logs in, then reads nothing more: his pongs are never written, as
    // when a phone walks out of Wi-Fi.
    let bob = raw_live(&server, "bob").await;
    presence(&alice, "bob", true).await;
    presence(&alice, "bob", false).await;
    // alice, whose client answers, is still there after many pings.
    let ping = alice.request(Request::Ping).await.unwrap();
    assert!(matches!(ping, Response::Pong));
    drop(bob);
}

/// A write timeout of 300 ms, and frames large enough that a few fill the
/// socket buffers.
fn short_write_timeout(c: &mut imboxd::config::Config) {
    c.limits.write_timeout_ms = 300;
    c.limits.max_frame_bytes = 512 * 1024;
    c.limits.max_text_bytes = 256 * 1024;
}

/// Alice sends bob 256 KiB messages until aborted: for a peer that reads
/// nothing, the server's writes to him soon wait.
fn flood_bob(alice: Arc<Connection>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let text = "x".repeat(256 * 1024);
        for i in 0..400 {
            let send = Request::Send {
                to: Target::parse("bob"),
                id: format!("big{i}"),
                text: text.clone(),
                attachments: Vec::new(),
            };
            alice.request(send).await.unwrap();
        }
    })
}

#[tokio::test]
async fn a_websocket_peer_that_stops_reading_is_dropped_by_the_write_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), short_write_timeout).await;
    let alice = Arc::new(contacts(&server).await);
    let bob = raw_live(&server, "bob").await;
    presence(&alice, "bob", true).await;
    // bob reads nothing: what alice sends him fills the socket buffers on
    // both ends, and then a write waits for longer than the timeout.
    let flood = flood_bob(alice.clone());
    presence(&alice, "bob", false).await;
    flood.abort();
    drop(bob);
}

#[tokio::test]
async fn a_quic_peer_that_stops_reading_is_dropped_by_the_write_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), short_write_timeout).await;
    let alice = Arc::new(contacts(&server).await);
    let client = endpoint(dir.path(), None);
    let conn = client.connect(server.quic.unwrap(), "imbox.local").unwrap().await.unwrap();
    let (send, recv) = conn.open_bi().await.unwrap();
    let mut bob = Stream::new(send, recv);
    for req in [
        Request::Hello { versions: vec![1], client: "raw".into() },
        Request::Login { username: "bob".into(), password: PASSWORD.into(), device_name: "raw".into() },
        Request::Sync { since: 0, limit: 100 },
    ] {
        assert!(matches!(bob.call(req).await, ServerFrame::Ok { .. }));
    }
    presence(&alice, "bob", true).await;
    // bob reads nothing more: the stream's flow-control window fills and
    // the server's next write waits for longer than the timeout.
    let flood = flood_bob(alice.clone());
    presence(&alice, "bob", false).await;
    flood.abort();
    drop((bob, conn));
}

async fn tls(server: &Server) -> impl AsyncRead + AsyncWrite + Unpin {
    let tcp = TcpStream::connect(https_addr(server)).await.unwrap();
    let name = ServerName::try_from("imbox.local").unwrap();
    imbox_tests::web::box_tls_connector(&server.dir).connect(name, tcp).await.unwrap()
}

/// The head of a JSON POST that promises 16,000 bytes of body, and the first
/// of them.
const STALLED_BODY: &[u8] = b"POST /api/login HTTP/1.1\r\nHost: imbox.local\r\n\
Content-Type: application/json\r\nContent-Length: 16000\r\n\r\n{";

/// Reads until the server closes the connection; what it sent.
async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) -> String {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.expect("the server kept a stalled request open");
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn a_request_body_that_never_finishes_is_closed_within_the_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), |c| c.http.request_timeout_ms = 300).await;
    // Over HTTPS, where /api/login reads the body.
    let mut stream = tls(&server).await;
    stream.write_all(STALLED_BODY).await.unwrap();
    stream.flush().await.unwrap();
    let answer = until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("did not arrive in time"), "{answer}");
    // Over plain HTTP, where nothing reads a body.
    let mut plain = TcpStream::connect(http_addr(&server)).await.unwrap();
    plain.write_all(STALLED_BODY).await.unwrap();
    until_closed(&mut plain).await;
}

#[tokio::test]
async fn connections_stalled_at_every_stage_count_toward_max_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), |c| {
        c.limits.max_connections = 4;
        // Long enough that nothing below is closed for being slow.
        c.http.request_timeout_ms = 600_000;
    })
    .await;
    server.add_users(&["alice"]).await;
    // Each listener accepts in order, so once a later connection is served
    // the stalled one before it holds its place.
    let silent_tls = TcpStream::connect(https_addr(&server)).await.unwrap();
    let mut stalled_body = tls(&server).await;
    stalled_body.write_all(STALLED_BODY).await.unwrap();
    stalled_body.flush().await.unwrap();
    let mut half_head = TcpStream::connect(http_addr(&server)).await.unwrap();
    half_head.write_all(b"GET / HTTP/1.1\r\nHost: imbox.local\r\n").await.unwrap();
    let session = raw_live(&server, "alice").await;

    match tokio_tungstenite::connect_async(format!("{}/ws", server.url)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        Err(other) => panic!("expected a 503, got {other:?}"),
        Ok(_) => panic!("a fifth connection was served beyond max_connections = 4"),
    }
    drop((silent_tls, stalled_body, half_head, session));
}
