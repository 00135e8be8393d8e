//! The points of docs/PROTOCOL.md that a client developer could not find or
//! found wrong (issue 12, item 8), each checked against the session.

use super::*;

fn login_as_device(name: &str) -> Request {
    Request::Login { username: "alice".into(), password: "password".into(), device_name: name.into() }
}

async fn greeted(w: &World) -> Session {
    let mut s = Session::new(w.hub.clone(), PEER);
    ok(&mut s, hello()).await;
    s
}

#[tokio::test]
async fn hello_once_authenticated_is_already_authenticated() {
    let w = world().await;
    let (mut s, _inbox) = logged_in(&w, "alice").await;
    assert_eq!(fails(&mut s, hello()).await, ErrorCode::AlreadyAuthenticated);
}

#[tokio::test]
async fn device_names_that_are_empty_path_like_or_reorder_text_are_refused() {
    let w = world().await;
    let mut s = greeted(&w).await;
    for bad in ["", "  ", "../../etc/passwd", "a\\b", "..", "phone\u{202E}gnp.exe", "tab\there"] {
        let refused = call(&mut s, login_as_device(bad)).await;
        match refused {
            ServerFrame::Err { id: 7, error } => {
                assert_eq!(error.code, ErrorCode::InvalidName, "{bad:?}");
                assert!(error.message.contains("device name"), "{bad:?}: {}", error.message);
            }
            other => panic!("{bad:?} was {other:?}"),
        }
    }
    assert!(matches!(ok(&mut s, login_as_device("Anna's phone")).await, Response::Authenticated { .. }));
}

#[tokio::test]
async fn revoking_the_current_device_answers_done_then_closes() {
    let w = world().await;
    let (mut s, _inbox) = logged_in(&w, "alice").await;
    let Response::Devices { devices } = ok(&mut s, Request::Devices).await else { panic!("devices") };
    let current = devices.iter().find(|d| d.current).map(|d| d.id).unwrap();
    let answer = s.handle(ClientFrame { id: 3, req: Request::RevokeDevice { device: current } }).await;
    assert!(matches!(answer, Handled::Close(ServerFrame::Ok { id: 3, body: Response::Done })), "{answer:?}");
    let mut again = greeted(&w).await;
    let token_gone = fails(&mut again, Request::Resume { token: "whatever".into() }).await;
    assert_eq!(token_gone, ErrorCode::BadCredentials);
}

#[tokio::test]
async fn the_documented_edge_cases_behave_as_documented() {
    let w = world().await;
    let (mut alice, _a) = logged_in(&w, "alice").await;
    let (mut bob, _b) = logged_in(&w, "bob").await;

    // Sending to oneself is invalid_argument; empty text is a message.
    assert_eq!(fails(&mut alice, send("alice", "self", "hi")).await, ErrorCode::InvalidArgument);
    let Response::Sent { seq: 1, .. } = ok(&mut alice, send("bob", "m1", "")).await else { panic!("sent") };
    ok(&mut alice, send("bob", "m2", "two")).await;

    // `limit: 0` counts as 1.
    let Response::Entries { entries, more, .. } = ok(&mut bob, Request::Sync { since: 0, limit: 0 }).await
    else {
        panic!("entries")
    };
    assert_eq!((entries.len(), more), (1, true));

    // `ack` beyond the head stores the head; backwards changes nothing.
    let cursor = |r: Response| match r {
        Response::Devices { devices } => devices.iter().find(|d| d.current).map(|d| d.cursor),
        _ => None,
    };
    assert!(matches!(ok(&mut bob, Request::Ack { position: 1000 }).await, Response::Done));
    assert_eq!(cursor(ok(&mut bob, Request::Devices).await), Some(2));
    assert!(matches!(ok(&mut bob, Request::Ack { position: 1 }).await, Response::Done));
    assert_eq!(cursor(ok(&mut bob, Request::Devices).await), Some(2));

    // `mark_read` beyond the last seq marks the last; `read_seq` is the
    // caller's own mark.
    let read = Request::MarkRead { conversation: Target::parse("alice"), seq: 99 };
    assert!(matches!(ok(&mut bob, read).await, Response::Done));
    let read_seq = |r: Response| match r {
        Response::Conversations { conversations } => conversations.first().map(|c| (c.last_seq, c.read_seq)),
        _ => None,
    };
    assert_eq!(read_seq(ok(&mut bob, Request::Conversations).await), Some((2, 2)));
    assert_eq!(read_seq(ok(&mut alice, Request::Conversations).await), Some((2, 0)));

    // Re-adding a member is invalid_argument and changes nothing.
    ok(&mut alice, Request::CreateGroup { name: "ops".into(), members: vec!["bob".into()] }).await;
    let again = Request::AddMember { group: Target::parse("#ops"), user: "bob".into() };
    assert_eq!(fails(&mut alice, again).await, ErrorCode::InvalidArgument);
}
