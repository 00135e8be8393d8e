//! Bad input over a raw WebSocket: each gets a typed error, a malformed or
//! oversize frame closes that connection alone, and nobody else notices.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use imbox_protocol::{ClientFrame, ErrorCode, Request, Response, ServerFrame, Target};
use imbox_tests::{Server, PASSWORD};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw(server: &Server) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("{}/ws", server.url)).await.unwrap();
    ws
}

async fn next_frame(ws: &mut Ws) -> Option<ServerFrame> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(bytes))) => return Some(ServerFrame::decode(&bytes).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

async fn request(ws: &mut Ws, id: u32, req: Request) -> ServerFrame {
    ws.send(Message::Binary(ClientFrame { id, req }.encode().into())).await.unwrap();
    next_frame(ws).await.unwrap()
}

fn code(frame: &ServerFrame) -> ErrorCode {
    match frame {
        ServerFrame::Err { error, .. } => error.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn greeted(server: &Server) -> Ws {
    let mut ws = raw(server).await;
    let hello = request(&mut ws, 1, Request::Hello { versions: vec![1], client: "raw".into() }).await;
    assert!(matches!(hello, ServerFrame::Ok { body: Response::Welcome { .. }, .. }));
    ws
}

async fn logged_in(server: &Server, user: &str) -> Ws {
    let mut ws = greeted(server).await;
    let login =
        Request::Login { username: user.into(), password: PASSWORD.into(), device_name: "raw".into() };
    assert!(matches!(request(&mut ws, 2, login).await, ServerFrame::Ok { .. }));
    ws
}

/// Asserts that the server closes the connection after one error frame.
async fn closes_with(mut ws: Ws, expected: ErrorCode) {
    let frame = next_frame(&mut ws).await.expect("an error frame before the close");
    assert_eq!(code(&frame), expected);
    assert!(next_frame(&mut ws).await.is_none(), "the connection should be closed");
}

#[tokio::test]
async fn bad_frames_close_only_their_own_connection() {
    let server = Server::start().await;
    server.add_users(&["alice", "bob"]).await;
    let mut bystander = logged_in(&server, "bob").await;

    let mut garbage = raw(&server).await;
    garbage.send(Message::Binary(vec![0xc1, 0xff, 0x00].into())).await.unwrap();
    closes_with(garbage, ErrorCode::BadFrame).await;

    let mut not_a_map = logged_in(&server, "alice").await;
    not_a_map.send(Message::Binary(rmp_serde::to_vec(&[1, 2, 3]).unwrap().into())).await.unwrap();
    closes_with(not_a_map, ErrorCode::BadFrame).await;

    let mut text = raw(&server).await;
    text.send(Message::Text("hello".into())).await.unwrap();
    closes_with(text, ErrorCode::BadFrame).await;

    let mut huge = logged_in(&server, "alice").await;
    huge.send(Message::Binary(vec![0x90; 70 * 1024].into())).await.unwrap();
    closes_with(huge, ErrorCode::FrameTooLarge).await;

    // The bystander's session is untouched and still works.
    let send = Request::Send {
        to: Target::parse("alice"),
        id: "still-here".into(),
        text: "fine".into(),
        attachments: Vec::new(),
    };
    assert!(matches!(
        request(&mut bystander, 3, send).await,
        ServerFrame::Ok { body: Response::Sent { .. }, .. }
    ));
}

#[tokio::test]
async fn unknown_and_malformed_requests_get_typed_errors_and_keep_the_connection() {
    #[derive(serde::Serialize)]
    struct Odd<'a> {
        id: u32,
        req: OddReq<'a>,
    }
    #[derive(serde::Serialize)]
    struct OddReq<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        to: u32,
    }
    let server = Server::start().await;
    server.add_users(&["alice"]).await;
    let mut ws = logged_in(&server, "alice").await;
    let unknown = rmp_serde::to_vec_named(&Odd { id: 9, req: OddReq { kind: "teleport", to: 1 } }).unwrap();
    ws.send(Message::Binary(unknown.into())).await.unwrap();
    let frame = next_frame(&mut ws).await.unwrap();
    assert!(matches!(&frame, ServerFrame::Err { id: 9, .. }));
    assert_eq!(code(&frame), ErrorCode::UnknownRequest);
    let invalid = rmp_serde::to_vec_named(&Odd { id: 10, req: OddReq { kind: "send", to: 1 } }).unwrap();
    ws.send(Message::Binary(invalid.into())).await.unwrap();
    assert_eq!(code(&next_frame(&mut ws).await.unwrap()), ErrorCode::InvalidArgument);
    assert!(matches!(
        request(&mut ws, 11, Request::Ping).await,
        ServerFrame::Ok { body: Response::Pong, .. }
    ));
}

#[tokio::test]
async fn requests_before_hello_and_login_are_refused() {
    let server = Server::start().await;
    server.add_users(&["alice"]).await;
    let mut ws = raw(&server).await;
    let sync = Request::Sync { since: 0, limit: 10 };
    assert_eq!(code(&request(&mut ws, 1, sync.clone()).await), ErrorCode::HelloRequired);
    let mut ws = greeted(&server).await;
    assert_eq!(code(&request(&mut ws, 2, sync).await), ErrorCode::NotAuthenticated);
    let send = Request::Send {
        to: Target::parse("alice"),
        id: "x".into(),
        text: "x".into(),
        attachments: Vec::new(),
    };
    assert_eq!(code(&request(&mut ws, 3, send).await), ErrorCode::NotAuthenticated);
    let wrong = Request::Login {
        username: "alice".into(),
        password: "not the password".into(),
        device_name: "x".into(),
    };
    assert_eq!(code(&request(&mut ws, 4, wrong).await), ErrorCode::BadCredentials);
    let token = Request::Resume { token: "forged".into() };
    assert_eq!(code(&request(&mut ws, 5, token).await), ErrorCode::BadCredentials);
}

#[tokio::test]
async fn wrong_passwords_are_rate_limited_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), |c| c.limits.login_attempts_per_minute = 3).await;
    server.add_users(&["alice"]).await;
    let mut ws = greeted(&server).await;
    for id in 0..3 {
        let wrong = Request::Login {
            username: "alice".into(),
            password: "guess guess".into(),
            device_name: "x".into(),
        };
        assert_eq!(code(&request(&mut ws, id, wrong).await), ErrorCode::BadCredentials);
    }
    let right =
        Request::Login { username: "alice".into(), password: PASSWORD.into(), device_name: "x".into() };
    let frame = request(&mut ws, 9, right).await;
    assert_eq!(code(&frame), ErrorCode::RateLimited);
    let ServerFrame::Err { error, .. } = frame else { unreachable!() };
    assert!(error.retry_after_ms.is_some_and(|ms| ms > 0));
}

#[tokio::test]
async fn other_peoples_conversations_are_closed() {
    let server = Server::start().await;
    server.add_users(&["alice", "bob", "mallory"]).await;
    let mut alice = logged_in(&server, "alice").await;
    let send = Request::Send {
        to: Target::parse("bob"),
        id: "p1".into(),
        text: "private".into(),
        attachments: Vec::new(),
    };
    let ServerFrame::Ok { body: Response::Sent { conversation, .. }, .. } =
        request(&mut alice, 3, send).await
    else {
        panic!()
    };
    let group = Request::CreateGroup { name: "inner".into(), members: vec!["bob".into()] };
    assert!(matches!(request(&mut alice, 4, group).await, ServerFrame::Ok { .. }));

    let mut mallory = logged_in(&server, "mallory").await;
    let peek = Request::History { conversation: Target::Id(conversation), before: None, limit: 10 };
    assert_eq!(code(&request(&mut mallory, 5, peek).await), ErrorCode::NotFound);
    let peek = Request::History { conversation: Target::parse("#inner"), before: None, limit: 10 };
    assert_eq!(code(&request(&mut mallory, 6, peek).await), ErrorCode::NotMember);
    let post = Request::Send {
        to: Target::Id(conversation),
        id: "m1".into(),
        text: "hi".into(),
        attachments: Vec::new(),
    };
    assert_eq!(code(&request(&mut mallory, 7, post).await), ErrorCode::NotFound);
    let post = Request::Send {
        to: Target::parse("#inner"),
        id: "m2".into(),
        text: "hi".into(),
        attachments: Vec::new(),
    };
    assert_eq!(code(&request(&mut mallory, 8, post).await), ErrorCode::NotMember);
    let join = Request::AddMember { group: Target::parse("#inner"), user: "mallory".into() };
    assert_eq!(code(&request(&mut mallory, 9, join).await), ErrorCode::NotMember);
    let read = Request::MarkRead { conversation: Target::Id(conversation), seq: 1 };
    assert_eq!(code(&request(&mut mallory, 10, read).await), ErrorCode::NotFound);
    // mallory's own log holds nothing of theirs.
    let sync = Request::Sync { since: 0, limit: 100 };
    let ServerFrame::Ok { body: Response::Entries { entries, .. }, .. } =
        request(&mut mallory, 11, sync).await
    else {
        panic!()
    };
    assert!(entries.is_empty());
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), |c| c.limits.handshake_timeout_ms = 300).await;
    let ws = greeted(&server).await;
    closes_with(ws, ErrorCode::NotAuthenticated).await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), |c| c.limits.max_connections = 1).await;
    server.add_users(&["alice"]).await;
    let first = logged_in(&server, "alice").await;
    let refused = tokio_tungstenite::connect_async(format!("{}/ws", server.url)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected 503, got {other:?}"),
    }
    drop(first);
    // The place is free again once the first connection is gone.
    let mut again = None;
    for _ in 0..50 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(format!("{}/ws", server.url)).await {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a freed connection slot was not reused");
}
