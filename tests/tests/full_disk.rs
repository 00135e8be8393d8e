//! A full data disk, for real: imboxd's data directory on a small tmpfs that
//! the test fills with a file of its own, then frees.
//!
//! Mounting needs root, which CI has (it runs as root on Debian). Elsewhere
//! the test says that it was skipped and why.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use imbox_client::{ClientError, Connection};
use imbox_protocol::{ErrorCode, Request, Response, Target};
use imbox_tests::web::Http;
use imbox_tests::Server;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A tmpfs of `size` mounted on a new temporary directory; unmounted when
/// dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .status();
        match status {
            Ok(s) if s.success() => Some(SmallDisk { dir }),
            other => {
                eprintln!("SKIPPED: cannot mount a tmpfs ({other:?}); this test needs root, as in CI");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Writes `path` until the disk refuses more; returns its size.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let mut written = 0;
    for chunk in [1 << 20, 4096, 1] {
        let bytes = vec![0x55u8; chunk];
        while file.write_all(&bytes).is_ok() {
            written += chunk as u64;
        }
    }
    written
}

/// `GET /health` on the server's HTTP address.
async fn health(server: &Server) -> String {
    let addr: SocketAddr = server.url.trim_start_matches("ws://").parse().unwrap();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    answer
}

/// Claims the box through its web API; returns the owner's session cookie
/// and CSRF token.
async fn claim(server: &Server) -> (Http, String, String) {
    let addr: SocketAddr = server.wss.as_ref().unwrap().trim_start_matches("wss://").parse().unwrap();
    let web = Http::https(&server.dir, addr);
    let text = std::fs::read_to_string(server.dir.join("imbox-claim.txt")).unwrap();
    let code = imboxd::web::claim::ClaimCode::from_file_text(&text).unwrap().grouped();
    let password = "violet tractor lantern 93";
    let body =
        json!({ "code": code, "username": "olivia", "password": password, "password_confirm": password });
    let answer = web.call("POST", "/api/setup/claim", None, None, body).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let csrf = answer.json()["csrf_token"].as_str().unwrap().to_owned();
    (web, answer.session_cookie().unwrap(), csrf)
}

async fn send(conn: &Connection, id: &str) -> Result<Response, ClientError> {
    conn.request(Request::Send {
        to: Target::parse("bob"),
        id: id.into(),
        text: format!("text of {id}"),
        attachments: Vec::new(),
    })
    .await
}

/// Sends `n` messages `{prefix}-0`... that must all be acknowledged; returns
/// their texts.
async fn send_acknowledged(conn: &Connection, prefix: &str, n: usize) -> Vec<String> {
    let mut texts = Vec::new();
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        assert!(matches!(send(conn, &id).await.unwrap(), Response::Sent { .. }));
        texts.push(format!("text of {id}"));
    }
    texts
}

/// The configuration of these tests: a reserve of `min_free_mib`, and no
/// checkpoint while a test fills the disk, so that redb is never the one to
/// find it full (the reserve, or the log's own ENOSPC handling, is under
/// test).
fn no_checkpoints(min_free_mib: u32) -> impl Fn(&mut imboxd::config::Config) + Copy {
    move |c| {
        c.storage.min_free_mib = min_free_mib;
        c.storage.checkpoint_idle_ms = 60_000;
        c.storage.checkpoint_interval_ms = 3_600_000;
    }
}

/// Starts imboxd again on `dir` and returns Bob's history with Alice.
async fn history_after_restart(
    dir: &std::path::Path,
    tweak: impl Fn(&mut imboxd::config::Config),
) -> Vec<String> {
    let mut server = Server::start_in(dir, tweak).await;
    let bob = server.connection("bob").await;
    let texts = history(&bob).await;
    drop(bob);
    server.stop().await;
    texts
}

/// The texts of Alice's conversation with Bob, as Bob reads them.
async fn history(bob: &Connection) -> Vec<String> {
    let req = Request::History { conversation: Target::parse("alice"), before: None, limit: 200 };
    match bob.request(req).await.unwrap() {
        Response::History { messages, .. } => messages.into_iter().map(|m| m.text).collect(),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_full_disk_refuses_sends_keeps_reads_and_takes_them_again_once_freed() {
    let Some(disk) = SmallDisk::mount("32m") else { return };
    let tweak = no_checkpoints(1);
    let mut server = Server::start_in(disk.path(), tweak).await;
    server.add_users(&["alice", "bob"]).await;
    let (web, cookie, csrf) = claim(&server).await;
    let owner = Some(cookie.as_str());
    let alice = server.connection("alice").await;
    let bob = server.connection("bob").await;
    let mut acknowledged = send_acknowledged(&alice, "before", 20).await;
    assert_eq!(web.get("/api/admin/status", owner).await.json()["writer"]["state"], "running");

    let filler: PathBuf = disk.path().join("filler");
    assert!(fill(&filler) > 0);
    let refused = send(&alice, "while-full").await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::StorageFull), "{refused}");
    assert!(refused.is_transient(), "a client keeps the message and retries later");
    assert!(refused.to_string().contains("full"), "{refused}");
    // Reading goes on: Bob sees every acknowledged message.
    assert_eq!(history(&bob).await, acknowledged);
    let answer = health(&server).await;
    assert!(answer.starts_with("HTTP/1.1 507"), "{answer}");
    assert!(answer.contains("storage_full"), "{answer}");
    // The status page says so, and a change made there is refused alike.
    let status = web.get("/api/admin/status", owner).await.json();
    assert_eq!(status["writer"]["state"], "storage_full", "{status}");
    assert!(status["writer"]["message"].as_str().unwrap().contains("free"), "{status}");
    let invite = web.call("POST", "/api/admin/invites", owner, Some(&csrf), json!({})).await;
    assert_eq!((invite.status, invite.error_code()), (507, "storage_full".to_owned()), "{}", invite.body);

    std::fs::remove_file(&filler).unwrap();
    // Writes resume by themselves: the retry is stored.
    assert!(matches!(send(&alice, "while-full").await.unwrap(), Response::Sent { .. }));
    acknowledged.push("text of while-full".into());
    assert!(health(&server).await.starts_with("HTTP/1.1 200"));
    assert_eq!(web.get("/api/admin/status", owner).await.json()["writer"]["state"], "running");

    // Nothing acknowledged was lost: all of it is there after a restart.
    drop((alice, bob));
    server.stop().await;
    assert_eq!(history_after_restart(disk.path(), tweak).await, acknowledged);
}

/// With no reserve (`storage.min_free_mib = 0`) the disk fills under the
/// write-ahead log itself: the append meets ENOSPC, the log is cut back to its
/// last whole record, the batch is refused, and the log takes records again
/// once space is freed; a restart applies it with every acknowledged send.
#[tokio::test]
async fn without_a_reserve_a_log_append_that_meets_a_full_disk_is_refused_and_undone() {
    let Some(disk) = SmallDisk::mount("32m") else { return };
    let tweak = no_checkpoints(0);
    let mut server = Server::start_in(disk.path(), tweak).await;
    server.add_users(&["alice", "bob"]).await;
    let alice = server.connection("alice").await;
    let bob = server.connection("bob").await;
    let mut acknowledged = send_acknowledged(&alice, "before", 20).await;
    let filler: PathBuf = disk.path().join("filler");
    assert!(fill(&filler) > 0);
    // The log's last page has room for a few more records; then the disk
    // refuses one.
    let mut slack = 0;
    let refused = loop {
        let id = format!("slack-{slack}");
        match send(&alice, &id).await {
            Ok(_) => acknowledged.push(format!("text of {id}")),
            Err(e) => break e,
        }
        slack += 1;
        assert!(slack < 1000, "the disk never filled");
    };
    assert_eq!(refused.code(), Some(ErrorCode::StorageFull), "{refused}");
    assert_eq!(history(&bob).await, acknowledged);
    assert!(health(&server).await.starts_with("HTTP/1.1 507"));

    std::fs::remove_file(&filler).unwrap();
    assert!(matches!(send(&alice, "after").await.unwrap(), Response::Sent { .. }));
    acknowledged.push("text of after".into());
    drop((alice, bob));
    server.stop().await;
    assert_eq!(history_after_restart(disk.path(), tweak).await, acknowledged);
}

/// Stopped while the disk is full, imboxd makes no checkpoint (there is no
/// room for one): the log keeps every acknowledged write, and the next start,
/// once there is space, applies it.
#[tokio::test]
async fn stopped_while_the_disk_is_full_nothing_acknowledged_is_lost() {
    let Some(disk) = SmallDisk::mount("32m") else { return };
    let tweak = no_checkpoints(1);
    let mut server = Server::start_in(disk.path(), tweak).await;
    server.add_users(&["alice", "bob"]).await;
    let alice = server.connection("alice").await;
    let acknowledged = send_acknowledged(&alice, "m", 20).await;
    let filler: PathBuf = disk.path().join("filler");
    fill(&filler);
    let refused = send(&alice, "refused").await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::StorageFull), "{refused}");
    drop(alice);
    server.stop().await;

    std::fs::remove_file(&filler).unwrap();
    assert_eq!(history_after_restart(disk.path(), tweak).await, acknowledged);
}
