//! Push wake-ups end to end: a real imboxd, real QUIC and WebSocket
//! clients, and a stand-in push service (tests/push/receiver.py, an HTTPS
//! server with a test CA the box trusts through `push.extra_ca_file`) that
//! verifies each request's VAPID signature with py_vapid and decrypts its
//! RFC 8291 payload with http_ece: libraries that share no code with
//! imboxd. `make test` installs them into a cached virtualenv and names its
//! interpreter in PUSH_TEST_PYTHON (not an `IMBOX_` name: imboxd, which the
//! tests start, would take that for a configuration key and refuse it).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use imbox_client::{Connection, ServerUrl};
use imbox_protocol::{Event, Item, PushKind, Request, Response, Target};
use imbox_tests::web::Http;
use imbox_tests::{Server, Transport, PASSWORD};
use serde_json::Value;
use tokio::sync::mpsc;

/// How long anything in these tests may take before the test fails (a
/// bound on a hang, not a measurement).
const PATIENCE: Duration = Duration::from_secs(60);

/// The interpreter of the virtualenv with http_ece and py_vapid.
fn python() -> PathBuf {
    match std::env::var_os("PUSH_TEST_PYTHON") {
        Some(path) if Path::new(&path).exists() => PathBuf::from(path),
        other => panic!(
            "PUSH_TEST_PYTHON is {other:?}: the push tests need Python with http_ece and py_vapid. \
             Run them through `make test` (or `make push-venv` and \
             PUSH_TEST_PYTHON=/var/cache/imbox-push/venv/bin/python3 cargo test -p imbox-tests --test push)"
        ),
    }
}

/// A child process killed when dropped (a failed test too).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The stand-in push service and the device keys it made.
struct Receiver {
    _child: Killed,
    port: u16,
    p256dh: String,
    auth: String,
    lines: mpsc::UnboundedReceiver<Value>,
    /// The CA that signed its certificate, for `push.extra_ca_file`.
    ca_file: PathBuf,
}

impl Receiver {
    async fn start(dir: &Path) -> Receiver {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "imbox push test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let cert = params.signed_by(&key, &*ca).unwrap();
        let ca_file = dir.join("push-ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        std::fs::write(dir.join("push-cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("push-key.pem"), key.serialize_pem()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("push/receiver.py");
        let mut child = Killed(
            Command::new(python())
                .arg(script)
                .arg("--cert")
                .arg(dir.join("push-cert.pem"))
                .arg("--key")
                .arg(dir.join("push-key.pem"))
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let stdout = child.0.stdout.take().unwrap();
        let (tx, mut lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let first = tokio::time::timeout(PATIENCE, lines.recv())
            .await
            .ok()
            .flatten()
            .expect("the receiver printed nothing: did it start?");
        assert_eq!(first["event"], "listening", "{first}");
        Receiver {
            _child: child,
            port: first["port"].as_u64().unwrap() as u16,
            p256dh: first["p256dh"].as_str().unwrap().to_owned(),
            auth: first["auth"].as_str().unwrap().to_owned(),
            lines,
            ca_file,
        }
    }

    fn endpoint(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.port)
    }

    fn origin(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The next line the receiver printed.
    async fn next(&mut self) -> Value {
        tokio::time::timeout(PATIENCE, self.lines.recv())
            .await
            .expect("no push reached the receiver")
            .expect("the receiver ended")
    }

    /// Lines printed so far and not read yet.
    fn pending(&mut self) -> Vec<Value> {
        std::iter::from_fn(|| self.lines.try_recv().ok()).collect()
    }
}

/// A box that trusts the receiver's CA, with an administrator (olivia) and
/// alice and bob.
async fn start(receiver: &Receiver, dir: &Path, tweak: impl FnOnce(&mut imboxd::config::Config)) -> Server {
    let ca = receiver.ca_file.clone();
    let mut server = Server::start_in(dir, |config| {
        config.push.extra_ca_file = ca;
        config.push.contact = "mailto:owner@imbox.test".into();
        config.push.min_interval_s = 0;
        tweak(config);
    })
    .await;
    server.transport = Transport::Quic;
    server
        .admin(imboxd::admin::AdminRequest::UserAdd {
            name: "olivia".into(),
            password: PASSWORD.into(),
            admin: true,
        })
        .await;
    server.add_users(&["alice", "bob"]).await;
    server
}

/// A device of `name` over QUIC with the box key pinned, for a live session.
async fn online(server: &Server, name: &str) -> Connection {
    let url = ServerUrl::parse(&server.client_url()).unwrap();
    let conn = Connection::connect_with(&url, &server.options()).await.unwrap();
    conn.login(name, PASSWORD, "test").await.unwrap();
    conn
}

/// A new device of bob (QUIC, through the client library) that registers
/// `endpoint` and goes offline; `alice`, who shares a conversation with bob,
/// sees it go (the presence event), so the box has no session of it left.
async fn registered_then_offline(server: &Server, receiver: &Receiver, alice: &Connection, endpoint: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut bob = server.client("bob", dir.path()).await;
    let key = bob.push_key().await.unwrap();
    assert_eq!(key.len(), 87, "the VAPID key is a base64url P-256 point: {key}");
    bob.register_push(PushKind::Unifiedpush, endpoint, &receiver.p256dh, &receiver.auth).await.unwrap();
    bob.close().await;
    offline(alice, "bob").await;
}

/// Waits until `conn` hears that `user` went offline.
async fn offline(conn: &Connection, user: &str) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match conn.next_event().await {
                Some(Event::Presence { user: u, online: false }) if u == user => return,
                Some(_) => {}
                None => panic!("the connection closed"),
            }
        }
    })
    .await
    .expect("no presence event");
}

async fn send(conn: &Connection, to: &str, id: &str, text: &str) -> u64 {
    let req =
        Request::Send { to: Target::User(to.into()), id: id.into(), text: text.into(), attachments: vec![] };
    match conn.request(req).await.unwrap() {
        Response::Sent { conversation, .. } => conversation,
        other => panic!("{other:?}"),
    }
}

/// The box's push report, as an administrator reads it.
async fn report(server: &Server) -> Value {
    admin_get(server, "/api/admin/push").await
}

/// An admin API answer, read by the administrator olivia.
async fn admin_get(server: &Server, path: &str) -> Value {
    let addr: SocketAddr = server.wss.as_ref().unwrap().trim_start_matches("wss://").parse().unwrap();
    let http = Http::https(&server.dir, addr);
    let credentials = serde_json::json!({"username": "olivia", "password": PASSWORD});
    let login = http.call("POST", "/api/login", None, None, credentials).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let cookie = login.session_cookie().unwrap();
    let answer = http.get(path, Some(&cookie)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

/// Reads the report until `done` holds (the box acts on a push service's
/// answer after the receiver printed it).
async fn report_when(server: &Server, done: impl Fn(&Value) -> bool) -> Value {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let report = report(server).await;
            if done(&report) {
                return report;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the push report never showed it")
}

/// Alice and bob share a conversation, and alice is online to see bob's
/// presence.
async fn acquainted(server: &Server) -> Connection {
    let alice = online(server, "alice").await;
    let bob = online(server, "bob").await;
    send(&bob, "alice", "hello-1", "hello").await;
    bob.close().await;
    offline(&alice, "bob").await;
    alice
}

#[tokio::test]
async fn an_offline_device_gets_an_encrypted_signed_wake_up_without_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut receiver = Receiver::start(dir.path()).await;
    let server = start(&receiver, dir.path(), |_| {}).await;
    let alice = acquainted(&server).await;
    registered_then_offline(&server, &receiver, &alice, &receiver.endpoint("ok/bob")).await;

    let conversation = send(&alice, "bob", "m-1", "the secret text").await;
    let push = receiver.next().await;
    assert_eq!(push["event"], "push", "{push}");
    assert_eq!(push["path"], "/ok/bob", "{push}");
    assert_eq!(push["error"], Value::Null, "{push}");
    assert_eq!(push["vapid_ok"], true, "{push}");
    let bob_dir = tempfile::tempdir().unwrap();
    let mut bob = server.client("bob", bob_dir.path()).await;
    assert_eq!(push["k"].as_str(), Some(bob.push_key().await.unwrap().as_str()), "signed with the box's key");
    assert_eq!(push["jwt_header"]["alg"], "ES256");
    assert_eq!(
        push["claims"]["aud"].as_str(),
        Some(receiver.origin().as_str()),
        "aud is the endpoint's origin"
    );
    assert_eq!(push["claims"]["sub"], "mailto:owner@imbox.test");
    let exp = push["claims"]["exp"].as_u64().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(exp > now && exp <= now + 24 * 3600, "exp {exp} within 24 h of {now}");
    let payload: Value = serde_json::from_str(push["payload"].as_str().unwrap()).unwrap();
    assert_eq!(
        payload,
        serde_json::json!({ "conversation": conversation }),
        "the conversation id and nothing else"
    );
    assert!(!push["payload"].as_str().unwrap().contains("secret"));
    assert_eq!(push["headers"]["Urgency"], "high");
    assert_eq!(push["headers"]["Content-Encoding"], "aes128gcm");
    assert_eq!(push["headers"]["TTL"], "86400");
    assert!(push["headers"]["Topic"].as_str().is_some_and(|t| !t.is_empty()));

    let report = report_when(&server, |r| r["sent"] == 1).await;
    assert_eq!(report["registrations"]["unifiedpush"], 1, "{report}");
    assert_eq!(report["hosts"][0]["host"], "127.0.0.1", "{report}");
    assert!(report["last_success_at"].as_u64().is_some(), "{report}");
    // The status page carries the same report.
    let status = admin_get(&server, "/api/admin/status").await;
    assert_eq!(status["push"]["sent"], 1, "{status}");
    bob.close().await;
}

#[tokio::test]
async fn messages_while_offline_share_one_wake_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut receiver = Receiver::start(dir.path()).await;
    // An hour between wake-ups: what comes after the first waits for it.
    let server = start(&receiver, dir.path(), |c| c.push.min_interval_s = 3600).await;
    let alice = acquainted(&server).await;
    registered_then_offline(&server, &receiver, &alice, &receiver.endpoint("ok/bob")).await;

    for i in 0..5 {
        send(&alice, "bob", &format!("m-{i}"), "hi").await;
    }
    let push = receiver.next().await;
    assert_eq!((push["event"].as_str(), push["status"].as_u64()), (Some("push"), Some(201)), "{push}");
    // Every wake-up was decided at its commit, before its ack: at most two
    // were queued (the first, and one more once the first was taken), the
    // rest joined one already waiting; the second waits for the interval.
    let report = report(&server).await;
    assert!(report["coalesced"].as_u64().unwrap() >= 3, "{report}");
    assert!(report["tries"].as_u64().unwrap() + report["queue"].as_u64().unwrap() <= 2, "{report}");
    assert_eq!(report["dropped"], 0, "{report}");
    assert!(receiver.pending().is_empty());
}

#[tokio::test]
async fn a_device_with_a_session_is_not_woken() {
    let dir = tempfile::tempdir().unwrap();
    let mut receiver = Receiver::start(dir.path()).await;
    let server = start(&receiver, dir.path(), |_| {}).await;
    let alice = acquainted(&server).await;
    // Bob's phone registers and stays online (its session is live).
    let phone_dir = tempfile::tempdir().unwrap();
    let mut phone = server.client("bob", phone_dir.path()).await;
    phone
        .register_push(
            PushKind::Unifiedpush,
            &receiver.endpoint("ok/phone"),
            &receiver.p256dh,
            &receiver.auth,
        )
        .await
        .unwrap();
    // A new device starts at the stream's head: reading to it makes the session live.
    assert!(phone.next_backlog_entry().await.unwrap().is_none());
    // Bob's laptop registers and goes away.
    let laptop_dir = tempfile::tempdir().unwrap();
    let mut laptop = server.client("bob", laptop_dir.path()).await;
    laptop
        .register_push(PushKind::Webpush, &receiver.endpoint("ok/laptop"), &receiver.p256dh, &receiver.auth)
        .await
        .unwrap();
    laptop.close().await;
    // The phone is still online, so presence says nothing: the laptop's
    // session ending shows in the box's count of sessions (alice, phone).
    tokio::time::timeout(PATIENCE, async {
        while admin_get(&server, "/api/admin/status").await["connections"]["sessions"] != 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the laptop's session never ended");

    let conversation = send(&alice, "bob", "m-1", "hi").await;
    let entry = tokio::time::timeout(PATIENCE, phone.next_entry()).await.unwrap().unwrap();
    assert!(matches!(entry.item, Item::Message(ref m) if m.conversation == conversation));
    let push = receiver.next().await;
    assert_eq!(push["path"], "/ok/laptop", "only the device without a session: {push}");
    assert_eq!(push["error"], Value::Null, "{push}");
    // Both wake-ups would have been queued in the same commit, before this
    // one was tried: nothing waits and nothing else was tried.
    let report = report(&server).await;
    assert_eq!((report["tries"].as_u64(), report["queue"].as_u64()), (Some(1), Some(0)), "{report}");
    assert_eq!(report["registrations"], serde_json::json!({"unifiedpush": 1, "webpush": 1}), "{report}");
}

#[tokio::test]
async fn a_gone_subscription_is_removed_and_not_used_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut receiver = Receiver::start(dir.path()).await;
    let server = start(&receiver, dir.path(), |_| {}).await;
    let alice = acquainted(&server).await;
    registered_then_offline(&server, &receiver, &alice, &receiver.endpoint("gone/bob")).await;

    send(&alice, "bob", "m-1", "hi").await;
    let push = receiver.next().await;
    assert_eq!(push["status"], 410, "{push}");
    let gone =
        report_when(&server, |r| r["removed"] == 1 && r["registrations"] == serde_json::json!({})).await;
    assert!(gone["hosts"][0]["last_error"].as_str().unwrap().contains("410"), "{gone}");
    // No registration, so nothing is queued for the next message (the
    // decision is made before the ack).
    send(&alice, "bob", "m-2", "hi again").await;
    let after = report(&server).await;
    assert_eq!((after["tries"].as_u64(), after["queue"].as_u64()), (Some(1), Some(0)), "{after}");
    assert!(receiver.pending().is_empty());
}

#[tokio::test]
async fn unreachable_push_services_never_hold_up_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let mut receiver = Receiver::start(dir.path()).await;
    let server = start(&receiver, dir.path(), |c| c.push.concurrency = 2).await;
    let alice = acquainted(&server).await;
    // One device behind a black hole (accepts, never answers), one behind
    // a port where nothing listens (refused).
    registered_then_offline(&server, &receiver, &alice, &receiver.endpoint("hang/bob")).await;
    registered_then_offline(&server, &receiver, &alice, "https://127.0.0.1:1/refused/bob").await;
    let watcher = online(&server, "bob").await;
    watcher.request(Request::Sync { since: u64::MAX, limit: 1 }).await.unwrap();

    send(&alice, "bob", "m-1", "first").await;
    let held = receiver.next().await;
    assert_eq!(held["event"], "held", "{held}");
    // The black hole holds that request, unanswered, from here on. A
    // message sent now is acknowledged and reaches bob's online device.
    let conversation = send(&alice, "bob", "m-2", "second").await;
    let delivered = tokio::time::timeout(PATIENCE, async {
        loop {
            match watcher.next_event().await {
                Some(Event::Entry { entry }) => match entry.item {
                    Item::Message(m) if m.id == "m-2" => return m,
                    _ => {}
                },
                Some(_) => {}
                None => panic!("the watcher's connection closed"),
            }
        }
    })
    .await
    .expect("the message did not reach the online device");
    assert_eq!(delivered.conversation, conversation);
    // Still held: the receiver printed nothing else for it.
    assert!(receiver.pending().iter().all(|l| l["event"] != "push"));
    // The refused one shows on the admin report, saying what to do.
    let report = report_when(&server, |r| {
        r["hosts"][0]["last_error"].as_str().is_some_and(|e| e.contains("cannot reach"))
    })
    .await;
    let error = report["hosts"][0]["last_error"].as_str().unwrap();
    assert!(error.contains("127.0.0.1") && error.contains("internet access"), "{error}");
}

#[tokio::test]
async fn registrations_are_checked_and_go_with_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path()).await;
    let server = start(&receiver, dir.path(), |_| {}).await;
    let bob = online(&server, "bob").await;
    let register = |endpoint: &str, p256dh: &str, auth: &str| Request::RegisterPush {
        kind: PushKind::Webpush,
        endpoint: endpoint.into(),
        p256dh: p256dh.into(),
        auth: auth.into(),
    };
    let code = |result: Result<Response, imbox_client::ClientError>| match result {
        Err(imbox_client::ClientError::Server { error, .. }) => error.code,
        other => panic!("{other:?}"),
    };
    let (p, a) = (receiver.p256dh.as_str(), receiver.auth.as_str());
    for bad in [
        register("http://127.0.0.1/x", p, a),
        register(&format!("https://p.example/{}", "x".repeat(1100)), p, a),
        register("https://p.example/x", &p[..40], a),
        register("https://p.example/x", p, "c2hvcnQ"),
    ] {
        assert_eq!(code(bob.request(bad).await), imbox_protocol::ErrorCode::InvalidArgument);
    }
    // 65 bytes starting 0x04, but not a point on the curve.
    let off_curve = base64_url(&[4u8; 65]);
    let answer = bob.request(register("https://p.example/x", &off_curve, a)).await;
    assert_eq!(code(answer), imbox_protocol::ErrorCode::InvalidArgument);

    bob.request(register(&receiver.endpoint("ok/bob"), p, a)).await.unwrap();
    let report_now = report(&server).await;
    assert_eq!(report_now["registrations"]["webpush"], 1, "{report_now}");
    bob.request(Request::UnregisterPush).await.unwrap();
    assert_eq!(report(&server).await["registrations"], serde_json::json!({}));
    bob.request(register(&receiver.endpoint("ok/bob"), p, a)).await.unwrap();
    // Logging out removes it, in the database too (a restart finds none).
    bob.request(Request::Logout).await.unwrap();
    assert_eq!(report(&server).await["registrations"], serde_json::json!({}));
    assert!(server.store().push_registrations().unwrap().is_empty());
}

#[tokio::test]
async fn a_box_with_push_off_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path()).await;
    let server = start(&receiver, dir.path(), |c| c.push.enabled = false).await;
    let bob = online(&server, "bob").await;
    for req in [
        Request::PushKey,
        Request::RegisterPush {
            kind: PushKind::Webpush,
            endpoint: receiver.endpoint("ok/bob"),
            p256dh: receiver.p256dh.clone(),
            auth: receiver.auth.clone(),
        },
    ] {
        match bob.request(req).await {
            Err(imbox_client::ClientError::Server { error, .. }) => {
                assert_eq!(error.code, imbox_protocol::ErrorCode::PushDisabled);
                assert!(error.message.contains("push.enabled") || error.message.contains("enabled = false"));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(report(&server).await["enabled"], false);
    assert!(!dir.path().join("push-vapid.pem").exists(), "no key is made for a box with push off");
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn a_busy_push_service_is_tried_again_after_its_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut receiver = Receiver::start(dir.path()).await;
    let server = start(&receiver, dir.path(), |_| {}).await;
    let alice = acquainted(&server).await;
    registered_then_offline(&server, &receiver, &alice, &receiver.endpoint("busy/bob")).await;

    send(&alice, "bob", "m-1", "hi").await;
    let first = receiver.next().await;
    assert_eq!((first["status"].as_u64(), first["error"].clone()), (Some(503), Value::Null), "{first}");
    let second = receiver.next().await;
    assert_eq!((second["status"].as_u64(), second["error"].clone()), (Some(201), Value::Null), "{second}");
    assert_eq!(second["payload"], first["payload"], "the same wake-up, tried again");
    let report = report_when(&server, |r| r["sent"] == 1).await;
    assert_eq!((report["retried"].as_u64(), report["tries"].as_u64()), (Some(1), Some(2)), "{report}");
    assert!(report["hosts"][0]["last_error"].as_str().unwrap().contains("503"), "{report}");
}
