//! The session core without sockets: a real store in a temporary directory,
//! requests in, frames out.

use std::net::IpAddr;
use std::sync::Arc;

use imbox_protocol::{ClientFrame, ErrorCode, Event, Item, Request, Response, ServerFrame, Target};

use super::limits::{LoginLimit, SendLimit, ADDRESS_FACTOR};
use super::password::{hash_now, Passwords};
use super::{Handled, Hub, Outbound, Session};
use crate::config::{Config, LimitsConfig, Overrides, Sources};
use crate::router::{Inbox, Router};
use crate::store::{Store, StoreOptions};

mod protocol;

struct World {
    hub: Arc<Hub>,
    _dir: tempfile::TempDir,
}

/// What the client receives of a push or catch-up, decoded from the bytes
/// the transport writes.
fn sent((out, close): (Vec<Outbound>, bool)) -> (Vec<ServerFrame>, bool) {
    (out.iter().map(|o| ServerFrame::decode(&o.encode()).unwrap()).collect(), close)
}

fn limits() -> LimitsConfig {
    let defaults = Config::load_from(&Overrides::default(), &Sources::none()).unwrap();
    LimitsConfig {
        max_text_bytes: 1000,
        max_sync_page: 10,
        max_history_page: 10,
        sends_per_second: 1000,
        send_burst: 1000,
        max_group_members: 5,
        login_attempts_per_minute: 3,
        ..defaults.limits
    }
}

async fn world() -> World {
    world_with_sends(1000, 1000).await
}

/// A world whose send limit is `per_second` with `burst` per device.
async fn world_with_sends(per_second: u32, burst: u32) -> World {
    world_where(limits(), per_second, burst).await
}

/// A world with these limits, and a send limit of `per_second` with `burst`.
async fn world_where(limits: LimitsConfig, per_second: u32, burst: u32) -> World {
    let dir = tempfile::tempdir().unwrap();
    let router = Arc::new(Router::new(4));
    let store = Store::open(&dir.path().join("t.redb"), StoreOptions::default(), router.clone()).unwrap();
    for name in ["alice", "bob", "carol"] {
        store.create_user(name, hash_now("password").unwrap(), false).await.unwrap();
    }
    let media = Arc::new(
        crate::media::Media::open(
            dir.path().join("media"),
            store.clone(),
            crate::media::MediaLimits::for_tests(),
        )
        .unwrap(),
    );
    let hub = Arc::new(Hub {
        store,
        router,
        media,
        limits,
        passwords: Passwords::new(2),
        logins: LoginLimit::new(3),
        sends: SendLimit::new(per_second, burst),
        max_attachment_bytes: 100 << 20,
        server_name: std::sync::RwLock::new("test".into()),
        push: None,
    });
    World { hub, _dir: dir }
}

const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

async fn call(session: &mut Session, req: Request) -> ServerFrame {
    match session.handle(ClientFrame { id: 7, req }).await {
        Handled::Reply(frame) | Handled::Close(frame) => frame,
        Handled::Later(future) => future.await,
    }
}

async fn ok(session: &mut Session, req: Request) -> Response {
    match call(session, req).await {
        ServerFrame::Ok { id: 7, body } => body,
        other => panic!("expected success, got {other:?}"),
    }
}

async fn fails(session: &mut Session, req: Request) -> ErrorCode {
    match call(session, req).await {
        ServerFrame::Err { id: _, error } => error.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn hello() -> Request {
    Request::Hello { versions: vec![1], client: "test".into() }
}

fn login(name: &str, password: &str) -> Request {
    Request::Login { username: name.into(), password: password.into(), device_name: "t".into() }
}

async fn logged_in(w: &World, name: &str) -> (Session, Inbox) {
    let mut s = Session::new(w.hub.clone(), PEER);
    ok(&mut s, hello()).await;
    assert!(matches!(ok(&mut s, login(name, "password")).await, Response::Authenticated { .. }));
    let inbox = s.take_inbox().unwrap();
    (s, inbox)
}

fn send(to: &str, id: &str, text: &str) -> Request {
    Request::Send { to: Target::parse(to), id: id.into(), text: text.into(), attachments: Vec::new() }
}

#[tokio::test]
async fn hello_comes_first_and_versions_must_match() {
    let w = world().await;
    let mut s = Session::new(w.hub.clone(), PEER);
    assert_eq!(fails(&mut s, login("alice", "password")).await, ErrorCode::HelloRequired);
    let mut old = Session::new(w.hub.clone(), PEER);
    let closed = old
        .handle(ClientFrame { id: 1, req: Request::Hello { versions: vec![99], client: "x".into() } })
        .await;
    assert!(
        matches!(closed, Handled::Close(ServerFrame::Err { error, .. }) if error.code == ErrorCode::UnsupportedVersion)
    );
    assert!(matches!(ok(&mut s, hello()).await, Response::Welcome { version: 1, .. }));
    assert_eq!(fails(&mut s, hello()).await, ErrorCode::HelloRequired);
}

#[tokio::test]
async fn nothing_but_authentication_before_login() {
    let w = world().await;
    let mut s = Session::new(w.hub.clone(), PEER);
    ok(&mut s, hello()).await;
    assert_eq!(fails(&mut s, send("bob", "m1", "hi")).await, ErrorCode::NotAuthenticated);
    assert_eq!(fails(&mut s, Request::Sync { since: 0, limit: 10 }).await, ErrorCode::NotAuthenticated);
    assert!(matches!(ok(&mut s, Request::Ping).await, Response::Pong));
}

#[tokio::test]
async fn wrong_passwords_are_refused_then_rate_limited() {
    let w = world().await;
    let mut s = Session::new(w.hub.clone(), PEER);
    ok(&mut s, hello()).await;
    for _ in 0..3 {
        assert_eq!(fails(&mut s, login("alice", "wrong password")).await, ErrorCode::BadCredentials);
    }
    // Even the right password waits now, from this address: guessing must
    // not continue.
    assert_eq!(fails(&mut s, login("alice", "password")).await, ErrorCode::RateLimited);
    // This address may still fail a few times on other accounts, up to its own limit.
    for i in 0..(3 * ADDRESS_FACTOR - 3) {
        assert_eq!(fails(&mut s, login(&format!("nobody{i}"), "x")).await, ErrorCode::BadCredentials);
    }
    assert_eq!(fails(&mut s, login("bob", "password")).await, ErrorCode::RateLimited);
}

#[tokio::test]
async fn a_strangers_failed_logins_do_not_lock_the_owner_out_from_elsewhere() {
    let w = world().await;
    let stranger_address: IpAddr = "198.51.100.9".parse().unwrap();
    let mut stranger = Session::new(w.hub.clone(), stranger_address);
    ok(&mut stranger, hello()).await;
    for _ in 0..10 {
        let code = fails(&mut stranger, login("alice", "guess")).await;
        assert!(matches!(code, ErrorCode::BadCredentials | ErrorCode::RateLimited));
    }
    assert_eq!(fails(&mut stranger, login("alice", "password")).await, ErrorCode::RateLimited);
    // Alice, at home, logs in as usual.
    let mut owner = Session::new(w.hub.clone(), PEER);
    ok(&mut owner, hello()).await;
    assert!(matches!(ok(&mut owner, login("alice", "password")).await, Response::Authenticated { .. }));
}

#[tokio::test]
async fn two_sessions_of_one_device_share_its_send_limit() {
    let w = world_with_sends(1, 3).await;
    // Every session logs in first: a password check takes long enough for a
    // bucket to refill.
    let (mut other_device, _) = logged_in(&w, "alice").await;
    let (mut third_device, _) = logged_in(&w, "alice").await;
    let (mut bob, _) = logged_in(&w, "bob").await;
    let mut first = Session::new(w.hub.clone(), PEER);
    ok(&mut first, hello()).await;
    let Response::Authenticated { token: Some(token), .. } = ok(&mut first, login("alice", "password")).await
    else {
        panic!("no token")
    };
    // The same device again, in a second session, with its token.
    let mut second = Session::new(w.hub.clone(), PEER);
    ok(&mut second, hello()).await;
    ok(&mut second, Request::Resume { token }).await;
    for i in 0..3 {
        let session = if i % 2 == 0 { &mut first } else { &mut second };
        assert!(matches!(ok(session, send("bob", &format!("m{i}"), "hi")).await, Response::Sent { .. }));
    }
    // The device's burst of three is spent, whichever of its sessions sends.
    assert_eq!(fails(&mut second, send("bob", "m3", "hi")).await, ErrorCode::RateLimited);
    assert_eq!(fails(&mut first, send("bob", "m4", "hi")).await, ErrorCode::RateLimited);
    // Another device of Alice's has its own three; then the user's six are spent.
    for i in 0..3 {
        let sent = ok(&mut other_device, send("bob", &format!("o{i}"), "hi")).await;
        assert!(matches!(sent, Response::Sent { .. }));
    }
    assert_eq!(fails(&mut third_device, send("bob", "t0", "hi")).await, ErrorCode::RateLimited);
    // Bob is not limited by Alice's sending.
    assert!(matches!(ok(&mut bob, send("alice", "b0", "hi")).await, Response::Sent { .. }));
}

#[tokio::test]
async fn a_token_resumes_and_logout_revokes_it() {
    let w = world().await;
    let mut s = Session::new(w.hub.clone(), PEER);
    ok(&mut s, hello()).await;
    let Response::Authenticated { token: Some(token), .. } = ok(&mut s, login("alice", "password")).await
    else {
        panic!("no token")
    };
    assert_eq!(fails(&mut s, login("alice", "password")).await, ErrorCode::AlreadyAuthenticated);
    let mut again = Session::new(w.hub.clone(), PEER);
    ok(&mut again, hello()).await;
    assert!(matches!(
        ok(&mut again, Request::Resume { token: token.clone() }).await,
        Response::Authenticated { token: None, .. }
    ));
    assert!(matches!(ok(&mut again, Request::Logout).await, Response::Done));
    let mut third = Session::new(w.hub.clone(), PEER);
    ok(&mut third, hello()).await;
    assert_eq!(fails(&mut third, Request::Resume { token }).await, ErrorCode::BadCredentials);
}

#[tokio::test]
async fn a_retried_send_stores_one_message() {
    let w = world().await;
    let (mut alice, _) = logged_in(&w, "alice").await;
    let first = ok(&mut alice, send("bob", "m1", "hi")).await;
    let second = ok(&mut alice, send("bob", "m1", "hi")).await;
    let (Response::Sent { seq: a, duplicate: false, .. }, Response::Sent { seq: b, duplicate: true, .. }) =
        (first, second)
    else {
        panic!("unexpected send results")
    };
    assert_eq!(a, b);
    assert_eq!(fails(&mut alice, send("bob", "m1", "something else")).await, ErrorCode::IdConflict);
    let (mut bob, _) = logged_in(&w, "bob").await;
    let Response::History { messages, .. } =
        ok(&mut bob, Request::History { conversation: Target::parse("alice"), before: None, limit: 10 })
            .await
    else {
        panic!()
    };
    assert_eq!(messages.len(), 1);
}

#[tokio::test]
async fn entries_are_pushed_once_live_and_gaps_are_filled_from_the_store() {
    let w = world().await;
    let (mut alice, _) = logged_in(&w, "alice").await;
    let (mut bob, mut inbox) = logged_in(&w, "bob").await;
    ok(&mut alice, send("bob", "m1", "before live")).await;
    // Not live yet: the push is dropped, sync delivers it.
    let push = inbox.queue.recv().await.unwrap();
    assert!(sent(bob.on_push(push)).0.is_empty());
    let Response::Entries { entries, more: false, next, .. } =
        ok(&mut bob, Request::Sync { since: 0, limit: 10 }).await
    else {
        panic!()
    };
    assert_eq!(entries.len(), 1);
    assert_eq!(next, 1);
    // Live: the next entry is pushed.
    ok(&mut alice, send("bob", "m2", "live")).await;
    let (frames, _) = sent(bob.on_push(inbox.queue.recv().await.unwrap()));
    assert!(
        matches!(&frames[..], [ServerFrame::Event { event: Event::Entry { entry } }] if entry.position == 2)
    );
    // Overflow bob's queue (4 places): the router flags the lag, and catching
    // up reads every missed entry from the store, in order, once.
    for i in 3..=10 {
        ok(&mut alice, send("bob", &format!("m{i}"), "burst")).await;
    }
    assert!(inbox.signal.take_lagged());
    let mut positions = Vec::new();
    while let Ok(push) = inbox.queue.try_recv() {
        for frame in sent(bob.on_push(push)).0 {
            if let ServerFrame::Event { event: Event::Entry { entry } } = frame {
                positions.push(entry.position);
            }
        }
    }
    for frame in sent(bob.catch_up()).0 {
        if let ServerFrame::Event { event: Event::Entry { entry } } = frame {
            positions.push(entry.position);
        }
    }
    assert_eq!(positions, (3..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn strangers_cannot_read_or_write_a_group() {
    let w = world().await;
    let (mut alice, _) = logged_in(&w, "alice").await;
    let (mut carol, _) = logged_in(&w, "carol").await;
    let created =
        ok(&mut alice, Request::CreateGroup { name: "ops".into(), members: vec!["bob".into()] }).await;
    let Response::Group { conversation } = created else { panic!() };
    assert_eq!(conversation.members.len(), 2);
    assert_eq!(fails(&mut carol, send("#ops", "c1", "let me in")).await, ErrorCode::NotMember);
    let history = Request::History { conversation: Target::Id(conversation.id), before: None, limit: 5 };
    assert_eq!(fails(&mut carol, history).await, ErrorCode::NotFound);
    let add = Request::AddMember { group: Target::parse("#ops"), user: "carol".into() };
    assert_eq!(fails(&mut carol, add).await, ErrorCode::NotMember);
    let (mut bob, _) = logged_in(&w, "bob").await;
    let add = Request::AddMember { group: Target::parse("#ops"), user: "carol".into() };
    assert_eq!(fails(&mut bob, add).await, ErrorCode::NotAdmin);
}

#[tokio::test]
async fn oversize_text_and_bad_ids_are_typed_errors() {
    let w = world().await;
    let (mut alice, _) = logged_in(&w, "alice").await;
    assert_eq!(fails(&mut alice, send("bob", "m1", &"x".repeat(1001))).await, ErrorCode::TooLarge);
    assert_eq!(fails(&mut alice, send("bob", "has space", "hi")).await, ErrorCode::InvalidName);
    assert_eq!(fails(&mut alice, send("nobody", "m2", "hi")).await, ErrorCode::NotFound);
    assert_eq!(fails(&mut alice, send("alice", "m3", "hi")).await, ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn early_data_takes_only_replayable_requests() {
    let w = world().await;
    let (mut alice, _) = logged_in(&w, "alice").await;
    alice.set_early_data(true);
    let group = Request::CreateGroup { name: "g".into(), members: vec![] };
    assert_eq!(fails(&mut alice, group).await, ErrorCode::NotInEarlyData);
    assert!(matches!(ok(&mut alice, send("bob", "e1", "replay-safe")).await, Response::Sent { .. }));
    alice.set_early_data(false);
    let group = Request::CreateGroup { name: "g".into(), members: vec![] };
    assert!(matches!(ok(&mut alice, group).await, Response::Group { .. }));
}

#[tokio::test]
async fn receipts_reach_the_sender() {
    let w = world().await;
    let (mut alice, _) = logged_in(&w, "alice").await;
    let (mut bob, _) = logged_in(&w, "bob").await;
    ok(&mut alice, send("bob", "m1", "read me")).await;
    ok(&mut bob, Request::MarkRead { conversation: Target::parse("alice"), seq: 1 }).await;
    let Response::Entries { entries, .. } = ok(&mut alice, Request::Sync { since: 0, limit: 10 }).await
    else {
        panic!()
    };
    assert!(entries.iter().any(|e| matches!(&e.item, Item::Receipt(r) if r.user == "bob" && r.seq == 1)));
}

#[tokio::test]
async fn conversations_tell_the_other_members_markers() {
    let w = world().await;
    let (mut alice, _) = logged_in(&w, "alice").await;
    let (mut bob, _) = logged_in(&w, "bob").await;
    ok(&mut alice, send("bob", "m1", "one")).await;
    ok(&mut alice, send("bob", "m2", "two")).await;
    let Response::Conversations { conversations } = ok(&mut alice, Request::Conversations).await else {
        panic!()
    };
    assert!(conversations[0].marks.is_empty(), "bob has marked nothing yet");
    ok(&mut bob, Request::MarkDelivered { conversation: Target::parse("alice"), seq: 2 }).await;
    ok(&mut bob, Request::MarkRead { conversation: Target::parse("alice"), seq: 1 }).await;
    // A device of alice's that starts now learns bob's markers from here.
    let Response::Conversations { conversations } = ok(&mut alice, Request::Conversations).await else {
        panic!()
    };
    let marks = &conversations[0].marks;
    assert_eq!(marks, &vec![imbox_protocol::MemberMarks { user: "bob".into(), delivered: 2, read: 1 }]);
    // A member's own marker is read_seq, not in marks.
    let Response::Conversations { conversations } = ok(&mut bob, Request::Conversations).await else {
        panic!()
    };
    assert!(conversations[0].marks.is_empty() && conversations[0].read_seq == 1);
}

fn events(inbox: &mut Inbox) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(push) = inbox.queue.try_recv() {
        if let crate::router::Push::Event(e) = push {
            out.push(Arc::unwrap_or_clone(e));
        }
    }
    out
}

#[tokio::test]
async fn presence_and_typing_reach_contacts_only() {
    let w = world().await;
    let (mut alice, mut alice_inbox) = logged_in(&w, "alice").await;
    ok(&mut alice, send("bob", "m1", "hi")).await;
    let (_carol, mut carol_inbox) = logged_in(&w, "carol").await;
    let (mut bob, _bob_inbox) = logged_in(&w, "bob").await;
    assert!(events(&mut alice_inbox).contains(&Event::Presence { user: "bob".into(), online: true }));
    assert!(events(&mut carol_inbox).is_empty(), "carol shares no conversation with bob");
    ok(&mut bob, Request::Typing { conversation: Target::parse("alice") }).await;
    let typing = events(&mut alice_inbox);
    assert!(matches!(&typing[..], [Event::Typing { user, chat, .. }] if user == "bob" && chat == "bob"));
    drop(bob);
    assert!(events(&mut alice_inbox).contains(&Event::Presence { user: "bob".into(), online: false }));
}

#[tokio::test]
async fn a_new_session_is_told_which_contacts_are_online() {
    let w = world().await;
    let (mut alice, _alice_inbox) = logged_in(&w, "alice").await;
    ok(&mut alice, send("bob", "m1", "hi")).await;
    // carol is online but shares no conversation with bob.
    let (_carol, _carol_inbox) = logged_in(&w, "carol").await;
    let mut bob = Session::new(w.hub.clone(), PEER);
    ok(&mut bob, hello()).await;
    let Response::Authenticated { online, .. } = ok(&mut bob, login("bob", "password")).await else {
        panic!()
    };
    assert_eq!(online, vec!["alice".to_owned()]);
    drop(alice);
    let mut again = Session::new(w.hub.clone(), PEER);
    ok(&mut again, hello()).await;
    let Response::Authenticated { online, .. } = ok(&mut again, login("bob", "password")).await else {
        panic!()
    };
    assert!(online.is_empty(), "alice went offline: {online:?}");
}

#[tokio::test]
async fn revoking_another_device_ends_its_session() {
    let w = world().await;
    let (mut phone, _) = logged_in(&w, "alice").await;
    let (mut laptop, mut laptop_inbox) = logged_in(&w, "alice").await;
    let Response::Devices { devices } = ok(&mut phone, Request::Devices).await else { panic!() };
    let laptop_id = devices.iter().find(|d| !d.current).unwrap().id;
    ok(&mut phone, Request::RevokeDevice { device: laptop_id }).await;
    let push = laptop_inbox.queue.recv().await.unwrap();
    let (frames, close) = sent(laptop.on_push(push));
    assert!(close);
    assert!(matches!(&frames[..], [ServerFrame::Event { event: Event::Revoked }]));
    assert_eq!(fails(&mut laptop, Request::Ping).await, ErrorCode::NotAuthenticated);
    assert_eq!(fails(&mut phone, Request::RevokeDevice { device: 9999 }).await, ErrorCode::NotFound);
}

#[tokio::test]
async fn made_up_invites_are_refused_before_hashing_and_count_as_failures() {
    let w = world().await;
    let mut s = Session::new(w.hub.clone(), PEER);
    ok(&mut s, hello()).await;
    let register = |name: &str, invite: &str| Request::Register {
        username: name.into(),
        password: "long enough".into(),
        invite: invite.into(),
        device_name: "t".into(),
    };
    // Each made-up name is another account: the address's own limit stops it.
    for i in 0..(3 * ADDRESS_FACTOR) {
        assert_eq!(fails(&mut s, register(&format!("x{i}"), "made-up")).await, ErrorCode::InvalidInvite);
    }
    assert_eq!(fails(&mut s, register("x9", "made-up")).await, ErrorCode::RateLimited);
    let token = w.hub.store.create_invite(None, 1, None).await.unwrap();
    let mut other = Session::new(w.hub.clone(), "192.0.2.7".parse().unwrap());
    ok(&mut other, hello()).await;
    assert!(matches!(
        ok(&mut other, register("dana", &token)).await,
        Response::Authenticated { token: Some(_), .. }
    ));
}

/// Drives a session the way the connection loop does, until it is idle:
/// queued pushes first, then a page of catch-up whenever the lag signal is
/// up. Collects the positions of the entries sent to the client.
fn drive(session: &mut Session, inbox: &mut Inbox, positions: &mut Vec<u64>) {
    let mut collect = |(frames, close): (Vec<ServerFrame>, bool)| {
        assert!(!close);
        for frame in frames {
            if let ServerFrame::Event { event: Event::Entry { entry } } = frame {
                positions.push(entry.position);
            }
        }
    };
    for _ in 0..100 {
        let mut idle = true;
        while let Ok(push) = inbox.queue.try_recv() {
            collect(sent(session.on_push(push)));
            idle = false;
        }
        if inbox.signal.take_lagged() {
            collect(sent(session.catch_up()));
            idle = false;
        }
        if idle {
            return;
        }
    }
    panic!("catch-up does not end");
}

#[tokio::test]
async fn a_live_session_three_pages_behind_catches_up_once_in_order() {
    let w = world().await;
    let (mut alice, _) = logged_in(&w, "alice").await;
    let (mut bob, mut inbox) = logged_in(&w, "bob").await;
    let Response::Entries { more: false, .. } = ok(&mut bob, Request::Sync { since: 0, limit: 10 }).await
    else {
        panic!()
    };
    // Bob's queue holds 4 pushes and a sync page is 10 entries: 30 more
    // than the queue holds are three pages of catch-up.
    for i in 1..=34 {
        ok(&mut alice, send("bob", &format!("m{i}"), "burst")).await;
    }
    let mut positions = Vec::new();
    // The first queued push finds the lag flag up (the router raised it
    // when the fifth entry did not fit, before anything later was queued):
    // it reads a page from the store instead (1-10), and the other queued
    // pushes are below it. Then the next page.
    while let Ok(push) = inbox.queue.try_recv() {
        positions.extend(sent(bob.on_push(push)).0.iter().map(position));
    }
    assert!(inbox.signal.take_lagged());
    positions.extend(sent(bob.catch_up()).0.iter().map(position));
    assert_eq!(positions, (1..=20).collect::<Vec<_>>());
    // A live push arrives in the middle of catching up; no further push is
    // needed for the rest to come.
    ok(&mut alice, send("bob", "m35", "live")).await;
    drive(&mut bob, &mut inbox, &mut positions);
    assert_eq!(positions, (1..=35).collect::<Vec<_>>());
    // Caught up: the next entry is pushed as usual.
    ok(&mut alice, send("bob", "m36", "after")).await;
    drive(&mut bob, &mut inbox, &mut positions);
    assert_eq!(positions.last(), Some(&36));
    assert_eq!(positions.len(), 36);
}

fn position(frame: &ServerFrame) -> u64 {
    match frame {
        ServerFrame::Event { event: Event::Entry { entry } } => entry.position,
        other => panic!("expected an entry, got {other:?}"),
    }
}

#[tokio::test]
async fn a_login_at_the_device_cap_retires_the_longest_unused_device() {
    let w = world_where(LimitsConfig { max_devices_per_user: 3, ..limits() }, 1000, 1000).await;
    let mut tokens = Vec::new();
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let mut s = Session::new(w.hub.clone(), PEER);
        ok(&mut s, hello()).await;
        let Response::Authenticated { token: Some(token), device, .. } =
            ok(&mut s, login("alice", "password")).await
        else {
            panic!("no token")
        };
        let inbox = s.take_inbox().unwrap();
        tokens.push((device, token));
        sessions.push((s, inbox));
    }
    // The oldest device is in use (it acknowledges), so the second is the
    // longest unused.
    ok(&mut sessions[0].0, Request::Ack { position: 0 }).await;
    let (mut fourth, _) = logged_in(&w, "alice").await;
    let Response::Devices { devices } = ok(&mut fourth, Request::Devices).await else { panic!() };
    let ids: Vec<u64> = devices.iter().map(|d| d.id).collect();
    let retired = tokens[1].0;
    assert_eq!(ids.len(), 3, "{devices:?}");
    assert!(!ids.contains(&retired) && ids.contains(&tokens[0].0) && ids.contains(&tokens[2].0));
    // Its session is told, and its token no longer works.
    let (session, inbox) = &mut sessions[1];
    let push = inbox.queue.recv().await.unwrap();
    let (frames, close) = sent(session.on_push(push));
    assert!(close && matches!(&frames[..], [ServerFrame::Event { event: Event::Revoked }]));
    let mut again = Session::new(w.hub.clone(), PEER);
    ok(&mut again, hello()).await;
    let resume = Request::Resume { token: tokens[1].1.clone() };
    assert_eq!(fails(&mut again, resume).await, ErrorCode::BadCredentials);
    // The others resume as before.
    let mut first = Session::new(w.hub.clone(), PEER);
    ok(&mut first, hello()).await;
    assert!(matches!(
        ok(&mut first, Request::Resume { token: tokens[0].1.clone() }).await,
        Response::Authenticated { .. }
    ));
}
