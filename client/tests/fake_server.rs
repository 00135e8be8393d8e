//! The client against a small in-process imitation of imboxd that speaks the
//! real protocol over a real WebSocket on loopback, and can misbehave on
//! purpose: drop a connection after storing a message, shut down, revoke.
//! The end-to-end tests against imboxd itself live in the `tests` crate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use imbox_client::protocol::{
    ClientFrame, Entry, ErrorBody, ErrorCode, Event, Item, Limits, Message, Request, Response, ServerFrame,
    Target,
};
use imbox_client::{Backoff, Client, ClientError, ClientOptions, Connection, Profile};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const TOKEN: &str = "device-7-token";
const DEVICE: u64 = 7;
const PASSWORD: &str = "correct horse";

#[derive(Default)]
struct State {
    log: Vec<Entry>,
    /// Message id → (conversation, seq), for idempotent sends.
    sent: HashMap<String, (u64, u64)>,
    acked: u64,
    /// Store the next send, then drop the connection without answering.
    lose_next_send_answer: bool,
    /// Push channels of sessions that read the log to its end.
    live: Vec<mpsc::Sender<ServerFrame>>,
    connections: u32,
    /// The device token no longer works.
    revoked: bool,
}

#[derive(Clone)]
struct FakeServer {
    url: String,
    state: Arc<Mutex<State>>,
}

impl FakeServer {
    async fn start() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}", listener.local_addr().expect("addr"));
        let server = FakeServer { url, state: Arc::default() };
        let accepting = server.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let server = accepting.clone();
                tokio::spawn(async move { server.serve(tcp).await });
            }
        });
        server
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("state lock")
    }

    /// Appends an entry to the log and pushes it to live sessions.
    fn append(&self, item: Item) -> u64 {
        let mut state = self.state();
        let position = state.log.len() as u64 + 1;
        let entry = Entry { position, item };
        state.log.push(entry.clone());
        state.live.retain(|tx| {
            tx.try_send(ServerFrame::Event { event: Event::Entry { entry: entry.clone() } }).is_ok()
        });
        position
    }

    fn message_from(&self, from: &str, from_device: u64, text: &str) -> u64 {
        let seq = self.state().log.len() as u64 + 1;
        self.append(Item::Message(Message {
            conversation: 1,
            chat: "bob".into(),
            seq,
            from: from.into(),
            from_device,
            id: format!("id-{seq}"),
            sent_at: 1_700_000_000_000 + seq,
            text: text.into(),
            attachments: Vec::new(),
        }))
    }

    /// Tells every live session that the server goes away, and ends them.
    fn go_away(&self) {
        let mut state = self.state();
        for tx in state.live.drain(..) {
            let _ = tx.try_send(ServerFrame::Event { event: Event::GoingAway { reason: "restart".into() } });
        }
    }

    fn revoke(&self) {
        let mut state = self.state();
        state.revoked = true;
        for tx in state.live.drain(..) {
            let _ = tx.try_send(ServerFrame::Event { event: Event::Revoked });
        }
    }

    async fn serve(&self, tcp: tokio::net::TcpStream) {
        let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else { return };
        self.state().connections += 1;
        let (mut sink, mut stream) = ws.split();
        let (push_tx, mut push_rx) = mpsc::channel::<ServerFrame>(64);
        loop {
            tokio::select! {
                pushed = push_rx.recv() => {
                    let Some(frame) = pushed else { return };
                    let ends = matches!(frame, ServerFrame::Event { event: Event::GoingAway { .. } | Event::Revoked });
                    if sink.send(WsMessage::Binary(frame.encode().into())).await.is_err() || ends {
                        let _ = sink.close().await;
                        return;
                    }
                }
                incoming = stream.next() => {
                    let Some(Ok(WsMessage::Binary(bytes))) = incoming else { return };
                    let Ok(ClientFrame { id, req }) = ClientFrame::decode(&bytes) else { return };
                    let Some(answer) = self.answer(id, req, &push_tx) else {
                        // Lose the answer: the connection just ends.
                        return;
                    };
                    if sink.send(WsMessage::Binary(answer.encode().into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn answer(&self, id: u32, req: Request, push_tx: &mpsc::Sender<ServerFrame>) -> Option<ServerFrame> {
        let ok = |body| Some(ServerFrame::Ok { id, body });
        let err = |code, message: &str| Some(ServerFrame::Err { id, error: ErrorBody::new(code, message) });
        match req {
            Request::Hello { .. } => ok(Response::Welcome {
                version: 1,
                server: "fake-imboxd".into(),
                limits: Limits {
                    max_frame_bytes: 64 * 1024,
                    max_text_bytes: 4096,
                    // Small pages, so that paging is exercised.
                    max_sync_page: 3,
                    max_history_page: 100,
                    sends_per_second: 100,
                    max_attachment_bytes: 0,
                    max_group_members: 100,
                },
            }),
            Request::Login { username, password, .. } if password == PASSWORD => {
                ok(Response::Authenticated {
                    user: username,
                    device: DEVICE,
                    token: Some(TOKEN.into()),
                    cursor: 0,
                    admin: false,
                    online: Vec::new(),
                })
            }
            Request::Login { .. } => err(ErrorCode::BadCredentials, "wrong user name or password"),
            Request::Resume { token } if token == TOKEN && !self.state().revoked => {
                let cursor = self.state().acked;
                ok(Response::Authenticated {
                    user: "alice".into(),
                    device: DEVICE,
                    token: None,
                    cursor,
                    admin: false,
                    online: Vec::new(),
                })
            }
            Request::Resume { .. } => err(ErrorCode::BadCredentials, "unknown or revoked token"),
            Request::Send { to, id: message_id, text, .. } => {
                let known = self.state().sent.get(&message_id).copied();
                if let Some((conversation, seq)) = known {
                    return ok(Response::Sent { conversation, seq, sent_at: 1, duplicate: true });
                }
                let chat = to.to_string();
                let seq = self.state().sent.len() as u64 + 1;
                self.append(Item::Message(Message {
                    conversation: 1,
                    chat,
                    seq,
                    from: "alice".into(),
                    from_device: DEVICE,
                    id: message_id.clone(),
                    sent_at: 1,
                    text,
                    attachments: Vec::new(),
                }));
                let mut state = self.state();
                state.sent.insert(message_id, (1, seq));
                if std::mem::take(&mut state.lose_next_send_answer) {
                    return None;
                }
                ok(Response::Sent { conversation: 1, seq, sent_at: 1, duplicate: false })
            }
            Request::Sync { since, limit } => {
                let mut state = self.state();
                let entries: Vec<Entry> =
                    state.log.iter().filter(|e| e.position > since).take(limit as usize).cloned().collect();
                let next = entries.last().map_or(since, |e| e.position);
                let more = state.log.len() as u64 > next;
                if !more {
                    state.live.push(push_tx.clone());
                }
                ok(Response::Entries { entries, next, more, resync: false })
            }
            Request::Ack { position } => {
                self.state().acked = position;
                ok(Response::Done)
            }
            Request::Ping => ok(Response::Pong),
            Request::Logout => ok(Response::Done),
            _ => err(ErrorCode::UnknownRequest, "not in the fake"),
        }
    }
}

fn quick_options() -> ClientOptions {
    ClientOptions {
        backoff: Backoff::new(Duration::from_millis(5), Duration::from_millis(50)),
        retry_for: Some(Duration::from_secs(5)),
        ..ClientOptions::default()
    }
}

async fn logged_in(server: &FakeServer) -> (tempfile::TempDir, Client) {
    let dir = tempfile::tempdir().expect("temp dir");
    let client = Client::login(dir.path(), &server.url, "alice", PASSWORD, "test").await.expect("login");
    (dir, client.with_options(quick_options()))
}

async fn drain_backlog(client: &mut Client) -> Vec<u64> {
    let mut positions = Vec::new();
    while let Some(entry) = client.next_backlog_entry().await.expect("backlog") {
        positions.push(entry.position);
    }
    positions
}

#[tokio::test]
async fn login_stores_a_private_profile() {
    let server = FakeServer::start().await;
    let (dir, client) = logged_in(&server).await;
    let profile = Profile::load(dir.path()).expect("profile");
    assert_eq!(profile.user, "alice");
    assert_eq!(profile.device, DEVICE);
    assert_eq!(profile.token, TOKEN);
    assert_eq!(profile.server, format!("{}/ws", server.url));
    client.close().await;

    let other = tempfile::tempdir().expect("temp dir");
    let err =
        Client::login(other.path(), &server.url, "alice", "wrong password", "t").await.expect_err("bad pw");
    assert_eq!(err.code(), Some(ErrorCode::BadCredentials));
    assert!(matches!(Profile::load(other.path()), Err(ClientError::NoProfile { .. })));
}

#[tokio::test]
async fn requests_run_concurrently_on_one_connection() {
    let server = FakeServer::start().await;
    let conn = Arc::new(Connection::connect(&server.url).await.expect("connect"));
    assert_eq!(conn.welcome().server, "fake-imboxd");
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let conn = Arc::clone(&conn);
            tokio::spawn(async move { conn.request(Request::Ping).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("join").expect("ping"), Response::Pong);
    }
    let err = conn.request(Request::Devices).await.expect_err("not in the fake");
    assert_eq!(err.code(), Some(ErrorCode::UnknownRequest));
}

#[tokio::test]
async fn a_send_whose_answer_was_lost_is_retried_under_the_same_id() {
    let server = FakeServer::start().await;
    let (_dir, mut client) = logged_in(&server).await;
    server.state().lose_next_send_answer = true;
    let sent = client.send(&Target::parse("bob"), "hello once").await.expect("send");
    assert!(sent.duplicate, "the retry found the first attempt stored");
    let state = server.state();
    assert_eq!(state.log.len(), 1, "stored exactly once");
    assert!(state.connections >= 2, "the client reconnected");
}

#[tokio::test]
async fn the_backlog_is_read_in_pages_once_and_resumed_from_the_cursor() {
    let server = FakeServer::start().await;
    for n in 0..7 {
        server.message_from("bob", 99, &format!("m{n}"));
    }
    let (dir, mut client) = logged_in(&server).await;
    assert_eq!(drain_backlog(&mut client).await, [1, 2, 3, 4, 5, 6, 7]);
    client.commit().await.expect("commit");
    assert_eq!(Profile::load(dir.path()).expect("profile").cursor, 7);
    assert_eq!(server.state().acked, 7);
    client.close().await;

    server.message_from("bob", 99, "later");
    let mut again = Client::open(dir.path()).expect("open").with_options(quick_options());
    assert_eq!(drain_backlog(&mut again).await, [8]);
    // The session is live now: this one is pushed, and also in the next sync.
    server.message_from("bob", 99, "latest");
    assert_eq!(drain_backlog(&mut again).await, [9]);
    assert_eq!(drain_backlog(&mut again).await, Vec::<u64>::new());
}

#[tokio::test]
async fn a_listener_survives_a_server_restart_without_loss_or_duplicates() {
    let server = FakeServer::start().await;
    server.message_from("bob", 99, "before");
    let (_dir, mut client) = logged_in(&server).await;

    let mut seen = Vec::new();
    seen.push(client.next_entry().await.expect("backlog").position);
    let pusher = server.clone();
    let feeder = tokio::spawn(async move {
        // Wait until the client is live, then push, restart and push again.
        while pusher.state().live.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        pusher.message_from("bob", 99, "pushed");
        pusher.go_away();
        // Written while the client is away: it must come from the re-sync.
        pusher.message_from("bob", 99, "while away");
        pusher.message_from("carol", 98, "also away");
    });
    while seen.len() < 4 {
        let entry = tokio::time::timeout(Duration::from_secs(10), client.next_entry())
            .await
            .expect("entries keep coming")
            .expect("entry");
        seen.push(entry.position);
    }
    feeder.await.expect("feeder");
    assert_eq!(seen, [1, 2, 3, 4]);
    assert!(server.state().connections >= 2);
}

#[tokio::test]
async fn a_revoked_device_is_told_to_log_in_again() {
    let server = FakeServer::start().await;
    let (dir, mut client) = logged_in(&server).await;
    assert_eq!(drain_backlog(&mut client).await, Vec::<u64>::new());
    server.revoke();
    let err = tokio::time::timeout(Duration::from_secs(10), client.next_entry())
        .await
        .expect("the revocation arrives")
        .expect_err("revoked");
    assert!(matches!(err, ClientError::Revoked { .. }), "{err}");
    assert!(err.to_string().contains("login alice"), "{err}");

    // A token the server no longer knows gets the same answer.
    let mut profile = Profile::load(dir.path()).expect("profile");
    profile.token = "stale".into();
    profile.save(dir.path()).expect("save");
    let mut stale = Client::open(dir.path()).expect("open").with_options(quick_options());
    let err = stale.send(&Target::parse("bob"), "x").await.expect_err("revoked");
    assert!(matches!(err, ClientError::Revoked { .. }), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_fails_within_the_retry_window() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let profile = Profile {
        server: format!("ws://127.0.0.1:{port}"),
        user: "alice".into(),
        device: DEVICE,
        token: TOKEN.into(),
        cursor: 0,
        pin: None,
    };
    profile.save(dir.path()).expect("save");
    let options = ClientOptions { retry_for: Some(Duration::from_millis(300)), ..quick_options() };
    let mut client = Client::open(dir.path()).expect("open").with_options(options);
    let started = std::time::Instant::now();
    let err = client.send(&Target::parse("bob"), "x").await.expect_err("nobody listens");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.to_string().contains("connection refused; is imboxd running?"), "{err}");
}

/// The `imbox` binary, end to end against the fake.
mod cli {
    use super::*;
    use std::process::{Command, Output, Stdio};

    async fn imbox(args: &[&str], stdin: &str) -> Output {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let stdin = stdin.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut child = Command::new(env!("CARGO_BIN_EXE_imbox"))
                .args(&args)
                .env_remove("IMBOX_SERVER")
                .env_remove("IMBOX_PROFILE")
                .env_remove("IMBOX_PASSWORD")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run imbox");
            if let Some(mut input) = child.stdin.take() {
                use std::io::Write;
                let _ = input.write_all(stdin.as_bytes());
            }
            child.wait_with_output().expect("wait for imbox")
        })
        .await
        .expect("join")
    }

    async fn next_line(lines: &mut mpsc::Receiver<String>) -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.recv()).await.expect("a line in time");
        serde_json::from_str(&line.expect("listen is running")).expect("a JSON line")
    }

    fn stdout_lines(output: &Output) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }

    #[tokio::test]
    async fn login_send_and_sync() {
        let server = FakeServer::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let profile = dir.path().to_str().expect("utf-8 path").to_owned();

        let out =
            imbox(&["--server", &server.url, "--profile", &profile, "login", "alice"], "correct horse\n")
                .await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty());

        let out = imbox(&["--profile", &profile, "send", "bob", "hi bob"], "").await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty());

        server.message_from("bob", 99, "hi alice");
        let out = imbox(&["--profile", &profile, "sync"], "").await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // Its own message is skipped; bob's is printed.
        let lines = stdout_lines(&out);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(
            lines[0],
            serde_json::json!({
                "type": "message", "conversation": "bob", "conversation_id": 1, "seq": 2,
                "position": 2, "from": "bob", "text": "hi alice", "id": "id-2",
                "sent_at": 1_700_000_000_002u64,
            })
        );
        assert_eq!(server.state().acked, 2);

        let out = imbox(&["--profile", &profile, "sync"], "").await;
        assert!(out.status.success() && out.stdout.is_empty(), "nothing new");
    }

    #[tokio::test]
    async fn listen_prints_pushes_across_a_restart_and_stops_cleanly_on_sigterm() {
        use std::io::BufRead;
        let server = FakeServer::start().await;
        server.message_from("bob", 99, "first");
        let dir = tempfile::tempdir().expect("temp dir");
        let profile = dir.path().to_str().expect("utf-8 path").to_owned();
        let out =
            imbox(&["--server", &server.url, "--profile", &profile, "login", "alice"], "correct horse\n")
                .await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        let mut child = Command::new(env!("CARGO_BIN_EXE_imbox"))
            .args(["--profile", &profile, "listen"])
            .env("IMBOX_CLIENT_LOG", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run imbox listen");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, mut lines) = mpsc::channel::<String>(16);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        assert_eq!(next_line(&mut lines).await["text"], "first");
        while server.state().live.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.message_from("bob", 99, "pushed");
        assert_eq!(next_line(&mut lines).await["text"], "pushed");
        server.go_away();
        server.message_from("bob", 99, "after restart");
        let line = next_line(&mut lines).await;
        assert_eq!((line["text"].as_str(), line["position"].as_u64()), (Some("after restart"), Some(3)));

        let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
        assert!(kill.success());
        let output =
            tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("join").expect("wait");
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(Profile::load(dir.path()).expect("profile").cursor, 3);
    }

    #[tokio::test]
    async fn errors_are_one_line_with_exit_code_1() {
        let dir = tempfile::tempdir().expect("temp dir");
        let profile = dir.path().to_str().expect("utf-8 path").to_owned();
        let out = imbox(&["--profile", &profile, "sync"], "").await;
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("no profile in"), "{stderr}");

        let out = imbox(&["--profile", &profile, "login", "alice"], "pw\n").await;
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--server"));

        let out = imbox(&["--profile", &profile, "send", "bob"], "").await;
        assert_eq!(out.status.code(), Some(2), "usage error");
    }
}
