//! Fuzz target: the session state machine (no sockets), driven by
//! arbitrary sequences of requests, pushes, catch-ups and reconnections
//! over a real store.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use imbox_fuzz::{run, Choices};
use imbox_protocol::{ClientFrame, Event, Request, Response, ServerFrame, Target};
use imboxd::config::{Config, LimitsConfig, Overrides, Sources};
use imboxd::router::{Inbox, Router};
use imboxd::session::limits::{LoginLimit, SendLimit};
use imboxd::session::password::{hash_now, Passwords};
use imboxd::session::{Handled, Hub, Outbound, Session};
use imboxd::store::{Store, StoreOptions};

/// How deep the run went: a target that never authenticates tests little.
static AUTHENTICATED: AtomicU64 = AtomicU64::new(0);
static STORED: AtomicU64 = AtomicU64::new(0);
static PUSHED: AtomicU64 = AtomicU64::new(0);

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct World {
    hub: Arc<Hub>,
    tokens: Vec<String>,
    _dir: tempfile::TempDir,
}

fn limits() -> LimitsConfig {
    let defaults = Config::load_from(&Overrides::default(), &Sources::none()).unwrap();
    LimitsConfig {
        max_text_bytes: 64,
        max_sync_page: 3,
        max_history_page: 3,
        sends_per_second: 10_000,
        send_burst: 10_000,
        max_group_members: 4,
        login_attempts_per_minute: 2,
        ..defaults.limits
    }
}

/// A fresh store for each input, so that a saved failing input replays
/// exactly; on /dev/shm when there is one, since every write is fsynced.
async fn world(password_hash: &str) -> World {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let router = Arc::new(Router::new(2));
    let store = Store::open(&dir.path().join("fuzz.redb"), StoreOptions::default(), router.clone()).unwrap();
    let mut tokens = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let user = store.create_user(name, password_hash.to_owned(), false).await.unwrap();
        tokens.push(store.add_device(user, "seed").await.unwrap().token);
    }
    let limits = limits();
    let media = imboxd::media::Media::open(
        dir.path().join("media"),
        store.clone(),
        imboxd::media::MediaLimits::for_tests(),
    )
    .unwrap();
    let hub = Arc::new(Hub {
        store,
        router,
        max_attachment_bytes: 100 << 20,
        media: Arc::new(media),
        sends: SendLimit::new(limits.sends_per_second, limits.send_burst),
        limits,
        passwords: Passwords::new(1),
        logins: LoginLimit::new(2),
        server_name: std::sync::RwLock::new("fuzz".into()),
        // Push off: registrations answer push_disabled; unregister_push
        // still goes through the store.
        push: None,
    });
    World { hub, tokens, _dir: dir }
}

fn name(c: &mut Choices) -> String {
    match c.below(4) {
        0 => c.pick(&["dave", "", "Alice", "../x", "a.b", "#ops"]).to_owned(),
        _ => c.pick(&["alice", "bob", "carol"]).to_owned(),
    }
}

fn target(c: &mut Choices) -> Target {
    match c.below(6) {
        0..=2 => Target::User(name(c)),
        3 | 4 => Target::Group(c.pick(&["ops", "x", "", "dev"]).to_owned()),
        _ => Target::Id(c.number()),
    }
}

fn text(c: &mut Choices) -> String {
    // Mostly under the fuzz limit of 64 bytes, sometimes over.
    c.pick(&["", "hi", "héllo", "x"]).repeat(1 + c.below(14))
}

/// Request kinds by weight: sends and syncs are what reach the delivery
/// log and live pushes; every kind stays reachable.
const KINDS: &[usize] = &[
    0, 1, 2, 3, 4, 4, 4, 4, 5, 5, 6, 7, 7, 7, 7, 7, 7, 7, 7, 8, 9, 10, 11, 12, 13, 14, 14, 15, 15, 16, 17,
    18, 18, 19, 20, 21, 22,
];

fn request(c: &mut Choices, w: &World) -> Request {
    let kind = c.pick(KINDS);
    match kind {
        0 => Request::Hello { versions: c.pick(&[vec![1], vec![], vec![2, 1], vec![0]]), client: text(c) },
        1 => Request::Register {
            username: name(c),
            password: c.pick(&["password", "short", "a longer password"]).to_owned(),
            invite: "nope".into(),
            device_name: c.pick(&["phone", "", "a/b", "\u{202e}x"]).to_owned(),
        },
        2 => Request::Login {
            username: name(c),
            // Wrong mostly: a right one costs an argon2 hash.
            password: c.pick(&["wrong password", "wrong password", "password"]).to_owned(),
            device_name: c.pick(&["phone", "", "a/b"]).to_owned(),
        },
        3 => {
            let mut tokens = w.tokens.clone();
            tokens.push("made up".into());
            Request::Resume { token: c.pick(&tokens) }
        }
        4 => Request::Sync { since: c.number(), limit: c.number() as u32 },
        5 => Request::Ack { position: c.number() },
        6 => Request::RevokeDevice { device: c.number() },
        7 => Request::Send {
            to: target(c),
            id: match c.below(8) {
                0 => c.pick(&["", " ", "\u{e9}", "x".repeat(65).as_str()]).to_owned(),
                _ => format!("m{}", c.byte()),
            },
            text: text(c),
            attachments: Vec::new(),
        },
        8 => Request::History { conversation: target(c), before: c.one_of_none(), limit: c.number() as u32 },
        9 => Request::Conversations,
        10 => Request::Devices,
        11 => Request::Logout,
        12 => Request::Ping,
        13 => Request::Typing { conversation: target(c) },
        14 => Request::CreateGroup {
            name: c.pick(&["ops", "dev", "", "Bad"]).to_owned(),
            members: (0..c.below(6)).map(|_| name(c)).collect(),
        },
        15 => Request::AddMember { group: target(c), user: name(c) },
        16 => Request::RemoveMember { group: target(c), user: name(c) },
        17 => Request::Leave { group: target(c) },
        18 => Request::MarkRead { conversation: target(c), seq: c.number() },
        19 => Request::MarkDelivered { conversation: target(c), seq: c.number() },
        20 => Request::RegisterPush {
            kind: imbox_protocol::PushKind::Webpush,
            endpoint: c.pick(&["https://push.example/x", "http://push.example/x", ""]).to_owned(),
            p256dh: c.pick(&["", "BAAA", "not base64!"]).to_owned(),
            auth: c.pick(&["", "AAAAAAAAAAAAAAAAAAAAAA"]).to_owned(),
        },
        21 => Request::UnregisterPush,
        _ => Request::PushKey,
    }
}

trait NoneSometimes {
    fn one_of_none(&mut self) -> Option<u64>;
}

impl NoneSometimes for Choices<'_> {
    fn one_of_none(&mut self) -> Option<u64> {
        if self.below(2) == 0 {
            None
        } else {
            Some(self.number())
        }
    }
}

/// One client connection as the transport sees it.
struct Conn {
    session: Session,
    inbox: Option<Inbox>,
    /// The position of the last entry pushed: pushes must rise.
    last_pushed: u64,
}

impl Conn {
    fn new(w: &World) -> Conn {
        Conn { session: Session::new(w.hub.clone(), PEER), inbox: None, last_pushed: 0 }
    }

    /// A new connection that, three times in four, says hello and resumes
    /// as alice, bob or carol, so that most inputs reach the Ready state.
    async fn open(w: &World, c: &mut Choices<'_>) -> Conn {
        let mut conn = Conn::new(w);
        let who = c.below(4);
        if who > 0 {
            let hello = Request::Hello { versions: vec![1], client: "fuzz".into() };
            conn.session.handle(ClientFrame { id: 1, req: hello }).await;
            let resume = Request::Resume { token: w.tokens[who - 1].clone() };
            conn.session.handle(ClientFrame { id: 2, req: resume }).await;
            // A device revoked earlier in the input stays Greeted.
            if conn.session.is_authenticated() {
                AUTHENTICATED.fetch_add(1, Relaxed);
                conn.inbox = conn.session.take_inbox();
                // Usually go live at the head, as a client does after its
                // catch-up, so that pushes are exercised.
                if c.below(4) > 0 {
                    let sync = Request::Sync { since: u64::MAX, limit: 1 };
                    conn.session.handle(ClientFrame { id: 3, req: sync }).await;
                }
            }
        }
        conn
    }

    /// Checks what the client receives, decoded from the bytes the
    /// transport writes (a shared entry's frame is encoded once for all).
    fn frames(&mut self, frames: Vec<Outbound>) {
        for frame in frames {
            let frame = ServerFrame::decode(&frame.encode()).unwrap();
            if let ServerFrame::Event { event: Event::Entry { entry } } = frame {
                assert!(
                    entry.position > self.last_pushed,
                    "pushed {} after {}",
                    entry.position,
                    self.last_pushed
                );
                self.last_pushed = entry.position;
                PUSHED.fetch_add(1, Relaxed);
            }
        }
    }

    fn drain(&mut self) -> bool {
        let Some(inbox) = &mut self.inbox else { return false };
        let mut pushes = Vec::new();
        while let Ok(push) = inbox.queue.try_recv() {
            pushes.push(push);
        }
        let mut closed = false;
        for push in pushes {
            let (frames, close) = self.session.on_push(push);
            self.frames(frames);
            closed |= close;
        }
        closed
    }
}

async fn drive(hash: &str, bytes: &[u8]) {
    let w = &world(hash).await;
    let mut c = Choices::new(bytes);
    let mut conns = [Conn::open(w, &mut c).await, Conn::open(w, &mut c).await];
    let mut steps = 0;
    while !c.is_empty() && steps < 64 {
        steps += 1;
        let k = c.below(conns.len());
        match c.below(10) {
            0..=5 => {
                let id = c.below(256) as u32;
                let req = request(&mut c, w);
                let kind = req.kind();
                let was_ready = conns[k].session.is_authenticated();
                let handled = conns[k].session.handle(ClientFrame { id, req }).await;
                if let Some(inbox) = conns[k].session.take_inbox() {
                    conns[k].inbox = Some(inbox);
                }
                let (frame, close) = match handled {
                    Handled::Reply(frame) => (frame, false),
                    Handled::Later(future) => (future.await, false),
                    Handled::Close(frame) => (frame, true),
                };
                match &frame {
                    ServerFrame::Ok { id: got, body } => {
                        assert_eq!(*got, id);
                        let before_auth = matches!(kind, "hello" | "ping" | "login" | "register" | "resume");
                        assert!(was_ready || before_auth, "{kind} succeeded before authentication: {body:?}");
                        match body {
                            Response::Authenticated { .. } => AUTHENTICATED.fetch_add(1, Relaxed),
                            Response::Sent { duplicate: false, .. } | Response::Group { .. } => {
                                STORED.fetch_add(1, Relaxed)
                            }
                            _ => 0,
                        };
                        if let Response::Entries { entries, .. } = body {
                            assert!(entries.windows(2).all(|p| p[0].position < p[1].position));
                        }
                    }
                    ServerFrame::Err { id: got, .. } => assert_eq!(*got, id),
                    ServerFrame::Event { .. } => panic!("an event as an answer"),
                }
                if close {
                    conns[k] = Conn::open(w, &mut c).await;
                }
            }
            6 | 7 => {
                if conns[k].drain() {
                    conns[k] = Conn::open(w, &mut c).await;
                }
            }
            8 => {
                let (frames, close) = conns[k].session.catch_up();
                conns[k].frames(frames);
                if close {
                    conns[k] = Conn::open(w, &mut c).await;
                }
            }
            _ => conns[k] = Conn::open(w, &mut c).await,
        }
    }
}

#[test]
fn session_state_machine() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let hash = hash_now("password").unwrap();
    run("session", 512, 50, |bytes| rt.block_on(drive(&hash, bytes)));
    let (auth, stored, pushed) = (AUTHENTICATED.load(Relaxed), STORED.load(Relaxed), PUSHED.load(Relaxed));
    eprintln!(
        "fuzz session: {auth} authentications, {stored} messages and groups stored, {pushed} entries pushed"
    );
    assert!(auth > 0 && stored > 0, "the corpus no longer reaches authenticated states");
}
