//! How a session ends, on every transport: the error frame that explains a
//! close arrives before it (also after a 70,000-byte frame, whose bytes are
//! still arriving when the server decides), WebSocket close codes say why,
//! and the peer sees an orderly close, not a reset.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use imbox_protocol::stream::length_prefixed;
use imbox_protocol::{ClientFrame, ErrorCode, Request, Response, ServerFrame};
use imbox_tests::{Server, PASSWORD};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A request frame of 70,000 bytes: over the default `max_frame_bytes`
/// (65,536), and a valid send otherwise.
fn oversize() -> Vec<u8> {
    let req = Request::Send {
        to: imbox_protocol::Target::parse("bob"),
        id: "big".into(),
        text: "x".repeat(69_950),
        attachments: Vec::new(),
    };
    let frame = ClientFrame { id: 5, req }.encode();
    assert!(frame.len() >= 70_000 && frame.len() < 70_100, "{}", frame.len());
    frame
}

/// What a WebSocket peer saw until the connection ended.
#[derive(Debug, Default)]
struct Seen {
    frames: Vec<ServerFrame>,
    close: Option<CloseCode>,
    /// A transport error (a reset) instead of an orderly end.
    failure: Option<String>,
}

async fn until_closed<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Seen {
    let mut seen = Seen::default();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(bytes))) => seen.frames.push(ServerFrame::decode(&bytes).unwrap()),
            Some(Ok(Message::Close(frame))) => seen.close = frame.map(|f| f.code),
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                seen.failure = Some(e.to_string());
                return seen;
            }
            None => return seen,
        }
    }
}

async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    id: u32,
    req: Request,
) -> ServerFrame {
    ws.send(Message::Binary(ClientFrame { id, req }.encode().into())).await.unwrap();
    loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(bytes) => return ServerFrame::decode(&bytes).unwrap(),
            _ => continue,
        }
    }
}

async fn log_in<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, user: &str) {
    let hello = call(ws, 1, Request::Hello { versions: vec![1], client: "closing".into() }).await;
    assert!(matches!(hello, ServerFrame::Ok { body: Response::Welcome { .. }, .. }));
    let login =
        Request::Login { username: user.into(), password: PASSWORD.into(), device_name: "raw".into() };
    assert!(matches!(call(ws, 2, login).await, ServerFrame::Ok { body: Response::Authenticated { .. }, .. }));
}

fn error_code(frame: &ServerFrame) -> (u32, ErrorCode) {
    match frame {
        ServerFrame::Err { id, error } => (*id, error.code),
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn ws(server: &Server) -> WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    tokio_tungstenite::connect_async(format!("{}/ws", server.url)).await.unwrap().0
}

async fn wss(server: &Server) -> WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let addr = server.wss.as_deref().unwrap().trim_start_matches("wss://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let tls = imbox_tests::web::box_tls_connector(&server.dir)
        .connect(ServerName::try_from("imbox.local").unwrap(), tcp)
        .await
        .unwrap();
    tokio_tungstenite::client_async(format!("wss://{addr}/ws"), tls).await.unwrap().0
}

async fn oversize_over<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<S>) {
    log_in(&mut ws, "alice").await;
    ws.send(Message::Binary(oversize().into())).await.unwrap();
    let seen = until_closed(&mut ws).await;
    assert_eq!(seen.frames.len(), 1, "{seen:?}");
    assert_eq!(error_code(&seen.frames[0]), (0, ErrorCode::FrameTooLarge));
    assert_eq!(seen.close, Some(CloseCode::Size), "{seen:?}");
    assert_eq!(seen.failure, None, "the close must be orderly, not a reset");
}

#[tokio::test]
async fn an_oversize_frame_gets_its_error_then_close_code_1009_over_ws() {
    let server = Server::start().await;
    server.add_users(&["alice", "bob"]).await;
    oversize_over(ws(&server).await).await;
}

#[tokio::test]
async fn an_oversize_frame_gets_its_error_then_close_code_1009_over_wss() {
    let server = Server::start().await;
    server.add_users(&["alice", "bob"]).await;
    oversize_over(wss(&server).await).await;
}

#[tokio::test]
async fn an_oversize_frame_gets_its_error_before_the_close_over_quic() {
    let server = Server::start().await;
    server.add_users(&["alice", "bob"]).await;
    let endpoint = imbox_tests::quic::endpoint(&server.dir, None);
    let conn = endpoint.connect(server.quic.unwrap(), "imbox.local").unwrap().await.unwrap();
    let (send, recv) = conn.open_bi().await.unwrap();
    let mut stream = imbox_tests::quic::Stream::new(send, recv);
    stream.call(Request::Hello { versions: vec![1], client: "closing".into() }).await;
    let login =
        Request::Login { username: "alice".into(), password: PASSWORD.into(), device_name: "q".into() };
    assert!(matches!(stream.call(login).await, ServerFrame::Ok { .. }));
    // The whole frame is written, as a client that does not look before it
    // leaps would: the error must still come back, then the end.
    let _ = stream.send.write_all(&length_prefixed(&oversize())).await;
    let frame = stream.read().await.expect("the frame_too_large error before the end");
    assert_eq!(error_code(&frame), (0, ErrorCode::FrameTooLarge));
    assert!(stream.read().await.is_none());
}

#[tokio::test]
async fn close_codes_say_why() {
    let server = Server::start().await;
    server.add_users(&["alice", "bob"]).await;

    // bad_frame: 1002, with the frame's id since it could be read.
    let mut bad = ws(&server).await;
    log_in(&mut bad, "alice").await;
    // {"id": 8, "req": {"type": 19}}: an integer type.
    bad.send(Message::Binary(b"\x82\xa2id\x08\xa3req\x81\xa4type\x13".to_vec().into())).await.unwrap();
    let seen = until_closed(&mut bad).await;
    assert_eq!(seen.frames.iter().map(error_code).collect::<Vec<_>>(), [(8, ErrorCode::BadFrame)]);
    assert_eq!(seen.close, Some(CloseCode::Protocol));

    // A text message: bad_frame, 1002.
    let mut text = ws(&server).await;
    text.send(Message::Text("hello".into())).await.unwrap();
    let seen = until_closed(&mut text).await;
    assert_eq!(seen.close, Some(CloseCode::Protocol), "{seen:?}");

    // unsupported_version: 1002.
    let mut old = ws(&server).await;
    old.send(Message::Binary(
        ClientFrame { id: 1, req: Request::Hello { versions: vec![99], client: "x".into() } }.encode().into(),
    ))
    .await
    .unwrap();
    assert_eq!(until_closed(&mut old).await.close, Some(CloseCode::Protocol));

    // logout: done, then 1000.
    let mut leaving = ws(&server).await;
    log_in(&mut leaving, "bob").await;
    leaving.send(Message::Binary(ClientFrame { id: 3, req: Request::Logout }.encode().into())).await.unwrap();
    let seen = until_closed(&mut leaving).await;
    assert!(matches!(seen.frames[..], [ServerFrame::Ok { id: 3, body: Response::Done }]), "{seen:?}");
    assert_eq!(seen.close, Some(CloseCode::Normal));
    assert_eq!(seen.failure, None);
}

#[tokio::test]
async fn a_session_not_authenticated_in_time_is_closed_with_1008() {
    let temp = tempfile::tempdir().unwrap();
    let server = Server::start_in(temp.path(), |c| c.limits.handshake_timeout_ms = 300).await;
    let mut slow = ws(&server).await;
    let seen = until_closed(&mut slow).await;
    assert_eq!(seen.frames.iter().map(error_code).collect::<Vec<_>>(), [(0, ErrorCode::NotAuthenticated)]);
    assert_eq!(seen.close, Some(CloseCode::Policy));
}

#[tokio::test]
async fn shutdown_closes_with_1001_after_going_away() {
    let mut server = Server::start().await;
    server.add_users(&["alice"]).await;
    let mut ws = ws(&server).await;
    log_in(&mut ws, "alice").await;
    let stopping = tokio::spawn(async move {
        server.stop().await;
        server
    });
    let seen = until_closed(&mut ws).await;
    assert!(
        matches!(
            seen.frames.last(),
            Some(ServerFrame::Event { event: imbox_protocol::Event::GoingAway { .. } })
        ),
        "{seen:?}"
    );
    assert_eq!(seen.close, Some(CloseCode::Away));
    drop(stopping.await.unwrap());
}
