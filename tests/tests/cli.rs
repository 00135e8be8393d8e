//! The `imbox` and `imboxd` command lines, run as a person would type them,
//! against a real server on loopback.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use imbox_tests::{bin, imboxd, Server, PASSWORD};
use serde_json::Value;

/// `imbox` with a clean environment (nothing of the developer's leaks in).
fn imbox(profile: &Path) -> Command {
    let mut cmd = Command::new(bin("imbox"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("IMBOX_PASSWORD", PASSWORD)
        .arg("--profile")
        .arg(profile);
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null());
    cmd.output().unwrap()
}

fn ok(cmd: Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_chats_from_the_command_line() {
    let server = Server::start().await;
    server.add_users(&["alice", "bob", "carol"]).await;
    let profiles = tempfile::tempdir().unwrap();
    let (a, b, c) =
        (profiles.path().join("alice"), profiles.path().join("bob"), profiles.path().join("carol"));
    let url = server.url.clone();
    blocking(move || {
        for (dir, user) in [(&a, "alice"), (&b, "bob"), (&c, "carol")] {
            let mut login = imbox(dir);
            login.args(["--server", &url, "login", user]);
            ok(login);
        }

        let mut send = imbox(&a);
        send.args(["send", "bob", "hello from the shell"]);
        assert_eq!(ok(send), "", "a successful send prints nothing");

        let mut sync = imbox(&b);
        sync.arg("sync");
        let lines = json_lines(&ok(sync));
        assert_eq!(lines.len(), 1);
        let m = &lines[0];
        assert_eq!(m["type"], "message");
        assert_eq!(m["conversation"], "alice");
        assert_eq!(m["from"], "alice");
        assert_eq!(m["text"], "hello from the shell");
        assert!(m["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert!(m["sent_at"].as_u64().is_some_and(|t| t > 0));
        // The cursor was saved: a second sync prints nothing.
        let mut again = imbox(&b);
        again.arg("sync");
        assert_eq!(ok(again), "");

        let mut group = imbox(&a);
        group.args(["group", "create", "ops", "bob"]);
        ok(group);
        let mut add = imbox(&a);
        add.args(["group", "add", "ops", "carol"]);
        ok(add);
        let mut post = imbox(&b);
        post.args(["send", "#ops", "deploying"]);
        ok(post);
        let mut sync = imbox(&c);
        sync.arg("sync");
        let lines = json_lines(&ok(sync));
        let messages: Vec<_> = lines.iter().filter(|l| l["type"] == "message").collect();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0]["conversation"], "#ops");
        assert_eq!(messages[0]["text"], "deploying");
        assert!(lines.iter().any(|l| l["type"] == "membership"));

        let mut leave = imbox(&c);
        leave.args(["group", "leave", "ops"]);
        ok(leave);
        let mut refused = imbox(&c);
        refused.args(["send", "#ops", "still here?"]);
        let out = run(refused);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not a member"), "unexpected error text: {stderr}");

        for i in 0..5 {
            let mut send = imbox(&a);
            send.args(["send", "bob", &format!("numbered {i}")]);
            ok(send);
        }
        let mut history = imbox(&b);
        history.args(["history", "alice", "--limit", "3"]);
        let page = json_lines(&ok(history));
        let texts: Vec<_> = page.iter().map(|m| m["text"].as_str().unwrap().to_owned()).collect();
        assert_eq!(texts, ["numbered 2", "numbered 3", "numbered 4"]);
        let before = page[0]["seq"].as_u64().unwrap();
        let mut older = imbox(&b);
        older.args(["history", "alice", "--before", &before.to_string(), "--limit", "10"]);
        let older = json_lines(&ok(older));
        assert_eq!(older.len(), 3);
        assert_eq!(older[0]["text"], "hello from the shell");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_from_imboxd_registers_a_member() {
    let server = Server::start().await;
    let data = server.dir.clone();
    let url = server.url.clone();
    let profiles = tempfile::tempdir().unwrap();
    let dir = profiles.path().join("dana");
    blocking(move || {
        let mut create = imboxd(&data);
        create.args(["invite", "create"]);
        let token = ok(create).trim().to_owned();
        assert!(token.len() >= 40, "a token with enough entropy: {token}");

        let mut register = imbox(&dir);
        register.args(["--server", &url, "register", "dana", "--invite", &token]);
        ok(register);
        let mut list = imboxd(&data);
        list.args(["user", "list", "--json"]);
        let users: Value = serde_json::from_str(&ok(list)).unwrap();
        assert!(users.as_array().unwrap().iter().any(|u| u["name"] == "dana"));

        // The invite was for one use only.
        let mut reuse = imbox(&profiles_dir(&dir, "eve"));
        reuse.args(["--server", &url, "register", "eve", "--invite", &token]);
        let out = run(reuse);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("invite"));
    })
    .await;
}

fn profiles_dir(sibling: &Path, name: &str) -> std::path::PathBuf {
    sibling.parent().unwrap().join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_streams_until_interrupted() {
    let server = Server::start().await;
    server.add_users(&["alice", "bob"]).await;
    let profiles = tempfile::tempdir().unwrap();
    let (a, b) = (profiles.path().join("alice"), profiles.path().join("bob"));
    let url = server.url.clone();
    blocking(move || {
        for (dir, user) in [(&a, "alice"), (&b, "bob")] {
            let mut login = imbox(dir);
            login.args(["--server", &url, "login", user]);
            ok(login);
        }
        let mut listen = imbox(&b);
        listen.arg("listen").stdout(Stdio::piped()).stderr(Stdio::null()).stdin(Stdio::null());
        let mut child = listen.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Give the listener time to go live, then send twice.
        std::thread::sleep(Duration::from_millis(300));
        for text in ["first", "second"] {
            let mut send = imbox(&a);
            send.args(["send", "bob", text]);
            ok(send);
        }
        for expected in ["first", "second"] {
            let line: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
            assert_eq!(line["text"], expected);
        }
        let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let status = child.wait().unwrap();
        assert!(status.success(), "listen exits 0 when interrupted: {status}");
        // Everything printed was saved as seen.
        let mut sync = imbox(&b);
        sync.arg("sync");
        assert_eq!(ok(sync), "");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_managed_with_the_daemon_running_and_stopped() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    // Stopped: imboxd opens the store itself.
    let d = dir.clone();
    blocking(move || {
        let mut add = imboxd(&d);
        add.args(["user", "add", "root", "--admin"]).stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = add.spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"a long admin password\n").unwrap();
        assert!(child.wait_with_output().unwrap().status.success());
        let mut weak = imboxd(&d);
        weak.args(["user", "add", "weak"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = weak.spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"short\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("too short"));
    })
    .await;

    // Running: the same commands go through the control socket.
    let server = Server::start_in(&dir, |_| {}).await;
    let conn = imbox_client::Connection::connect(&server.url).await.unwrap();
    conn.login("root", "a long admin password", "t").await.unwrap();
    let d = dir.clone();
    blocking(move || imbox_tests::add_user_cli(&d, "temp", false)).await;
    let temp = imbox_client::Connection::connect(&server.url).await.unwrap();
    temp.login("temp", PASSWORD, "t").await.unwrap();
    let d = dir.clone();
    let listed = blocking(move || {
        let mut remove = imboxd(&d);
        remove.args(["user", "remove", "temp"]);
        ok(remove);
        let mut list = imboxd(&d);
        list.args(["user", "list"]);
        ok(list)
    })
    .await;
    assert!(listed.contains("root") && !listed.contains("temp"), "{listed}");
    // The removed user's session is ended.
    let event = tokio::time::timeout(Duration::from_secs(10), temp.next_event()).await.unwrap();
    assert!(matches!(event, Some(imbox_protocol::Event::Revoked)), "got {event:?}");
}

#[test]
fn imboxd_config_prints_the_effective_configuration() {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = imboxd(data.path());
    cmd.env("IMBOX_LIMITS__MAX_CONNECTIONS", "1234").arg("config");
    let text = ok(cmd);
    assert!(text.contains("max_connections = 1234"), "{text}");
    let mut bad = imboxd(data.path());
    bad.env("IMBOX_LIMITS__MAX_FRAME_BYTES", "10").arg("config");
    let out = run(bad);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("limits.max_frame_bytes") && stderr.contains("IMBOX_LIMITS__MAX_FRAME_BYTES"),
        "{stderr}"
    );
}

#[test]
fn a_damaged_identity_key_stops_start_up_and_is_kept() {
    let data = tempfile::tempdir().unwrap();
    let mut identity = imboxd(data.path());
    identity.arg("identity");
    let fingerprint = ok(identity);
    assert!(fingerprint.starts_with("sha256:"), "{fingerprint}");
    let key = data.path().join("identity.key");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n").unwrap();
    let mut start = imboxd(data.path());
    start
        .args(["run", "--listen", "127.0.0.1:0"])
        .env("IMBOX_HTTPS__LISTEN", "[]")
        .env("IMBOX_QUIC__LISTEN", "[]");
    let out = run(start);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("identity key") && stderr.contains("damaged"), "{stderr}");
    assert!(std::fs::read_to_string(&key).unwrap().contains("garbage"), "the key file was replaced");
}
