//! Attachments end to end over HTTPS: tus uploads (whole, in parts, cut
//! off), downloads with `Range`, who may read what, deduplication, the
//! quota and the reserve, and an upload interrupted by SIGKILL.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use imbox_client::Connection;
use imbox_protocol::{Attachment, Item, Request, Response, Target};
use imbox_tests::web::{Answer, Http};
use imbox_tests::{Daemon, Server};
use sha2::{Digest, Sha256};

fn https(server: &Server) -> Http {
    let addr: SocketAddr = server.wss.as_ref().unwrap().trim_start_matches("wss://").parse().unwrap();
    Http::https(&server.dir, addr)
}

/// Bytes that do not compress or repeat: `len` of them from `seed`.
fn content(seed: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block: [u8; 32] = Sha256::digest([seed]).into();
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Sha256::digest(block).into();
    }
    out.truncate(len);
    out
}

fn hex_sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

async fn token(conn: &Connection, name: &str) -> String {
    conn.login(name, imbox_tests::PASSWORD, "test").await.unwrap().token.unwrap()
}

async fn connect(server: &Server) -> Connection {
    let url = imbox_client::ServerUrl::parse(&server.client_url()).unwrap();
    Connection::connect_with(&url, &server.options()).await.unwrap()
}

/// A tus request with the device token.
async fn tus(
    http: &Http,
    method: &str,
    path: &str,
    token: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Tus-Resumable", "1.0.0"), ("Authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    http.send_bytes(method, path, &headers, body).await
}

/// Creates an upload of `length` bytes; its path.
async fn create(http: &Http, token: &str, length: usize, name: &str) -> Result<String, Answer> {
    let length = length.to_string();
    let metadata = format!("filename {},filetype aW1hZ2UvcG5n", base64_of(name));
    let answer = tus(
        http,
        "POST",
        "/api/uploads",
        token,
        &[("Upload-Length", &length), ("Upload-Metadata", &metadata)],
        b"",
    )
    .await;
    if answer.status != 201 {
        return Err(answer);
    }
    Ok(answer.header("location").unwrap().to_owned())
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

async fn patch(http: &Http, token: &str, path: &str, offset: usize, bytes: &[u8]) -> Answer {
    let offset = offset.to_string();
    let headers = [("Upload-Offset", offset.as_str()), ("Content-Type", "application/offset+octet-stream")];
    tus(http, "PATCH", path, token, &headers, bytes).await
}

/// Uploads `bytes` whole; the attachment id.
async fn upload(http: &Http, token: &str, bytes: &[u8]) -> String {
    let path = create(http, token, bytes.len(), "a.png").await.unwrap();
    let answer = patch(http, token, &path, 0, bytes).await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    answer.header("imbox-attachment").unwrap().to_owned()
}

async fn download(http: &Http, token: &str, id: &str, range: Option<&str>) -> Answer {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(range) = range {
        headers.push(("Range", range));
    }
    http.send_bytes("GET", &format!("/api/attachments/{id}"), &headers, b"").await
}

fn described(id: &str, size: usize) -> Attachment {
    Attachment {
        id: id.to_owned(),
        media_type: "image/png".into(),
        size: size as u64,
        name: "a.png".into(),
        width: Some(2),
        height: Some(1),
        duration_ms: None,
        blurhash: None,
        thumbnail: Some("data:image/png;base64,iVBORw0KGgo=".into()),
        expired: false,
    }
}

async fn send_with(
    conn: &Connection,
    to: &str,
    id: &str,
    attachments: Vec<Attachment>,
) -> Result<Response, String> {
    let req = Request::Send { to: Target::parse(to), id: id.into(), text: "look".into(), attachments };
    conn.request(req).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_file_goes_up_in_parts_and_comes_down_in_ranges() {
    let server = Server::start().await;
    server.add_users(&["alice", "bob"]).await;
    let http = https(&server);
    let (alice, bob) = (connect(&server).await, connect(&server).await);
    let (alice_token, bob_token) = (token(&alice, "alice").await, token(&bob, "bob").await);
    let bytes = content(1, 3 << 20);

    let path = create(&http, &alice_token, bytes.len(), "photo.png").await.unwrap();
    let first = patch(&http, &alice_token, &path, 0, &bytes[..1_000_000]).await;
    assert_eq!((first.status, first.header("upload-offset")), (204, Some("1000000")));
    assert!(first.header("imbox-attachment").is_none());
    // A wrong offset is refused with the right one.
    let wrong = patch(&http, &alice_token, &path, 5, &bytes[5..10]).await;
    assert_eq!((wrong.status, wrong.header("upload-offset")), (409, Some("1000000")));
    let head = tus(&http, "HEAD", &path, &alice_token, &[], b"").await;
    assert_eq!((head.status, head.header("upload-offset")), (200, Some("1000000")));
    // Nobody else may see or touch it.
    assert_eq!(tus(&http, "HEAD", &path, &bob_token, &[], b"").await.status, 404);
    let rest = patch(&http, &alice_token, &path, 1_000_000, &bytes[1_000_000..]).await;
    assert_eq!(rest.status, 204, "{}", rest.body);
    let id = rest.header("imbox-attachment").unwrap().to_owned();
    assert_eq!(id, hex_sha(&bytes));
    let head = tus(&http, "HEAD", &path, &alice_token, &[], b"").await;
    assert_eq!(head.header("imbox-attachment"), Some(id.as_str()));

    // The uploader reads it whole; bob cannot until a message carries it.
    let whole = download(&http, &alice_token, &id, None).await;
    assert_eq!(whole.status, 200);
    assert_eq!(hex_sha(&whole.bytes), id);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.header("content-type"), Some("image/png"));
    assert_eq!(download(&http, &bob_token, &id, None).await.status, 404);
    match send_with(&alice, "bob", "m1", vec![described(&id, bytes.len())]).await {
        Ok(Response::Sent { .. }) => {}
        other => panic!("{other:?}"),
    }
    let len = bytes.len();
    let cases: [(&str, u16, std::ops::Range<usize>, Option<String>); 4] = [
        ("bytes=0-99", 206, 0..100, Some(format!("bytes 0-99/{len}"))),
        ("bytes=1000-1999", 206, 1000..2000, Some(format!("bytes 1000-1999/{len}"))),
        ("bytes=-500", 206, len - 500..len, Some(format!("bytes {}-{}/{len}", len - 500, len - 1))),
        ("bytes=oops", 200, 0..len, None),
    ];
    for (range, status, span, content_range) in cases {
        let answer = download(&http, &bob_token, &id, Some(range)).await;
        assert_eq!(answer.status, status, "{range}");
        assert_eq!(answer.bytes, bytes[span], "{range}");
        assert_eq!(answer.header("content-range").map(str::to_owned), content_range, "{range}");
    }
    let past = download(&http, &bob_token, &id, Some(&format!("bytes={len}-"))).await;
    assert_eq!((past.status, past.header("content-range")), (416, Some(format!("bytes */{len}").as_str())));

    // Bob's copy of the message says what alice said about the file.
    let history =
        bob.request(Request::History { conversation: Target::parse("alice"), before: None, limit: 10 });
    match history.await.unwrap() {
        Response::History { messages, .. } => assert_eq!(messages[0].attachments, vec![described(&id, len)]),
        other => panic!("{other:?}"),
    }
    let sync = bob.request(Request::Sync { since: 0, limit: 100 }).await.unwrap();
    let Response::Entries { entries, .. } = sync else { panic!("{sync:?}") };
    let carried = entries.iter().any(|e| matches!(&e.item, Item::Message(m) if m.attachments.len() == 1));
    assert!(carried, "{entries:?}");
}

#[tokio::test]
async fn only_members_read_and_nobody_learns_what_exists() {
    let server = Server::start().await;
    server.add_users(&["alice", "bob", "carol"]).await;
    let http = https(&server);
    let (alice, bob, carol) = (connect(&server).await, connect(&server).await, connect(&server).await);
    let alice_token = token(&alice, "alice").await;
    let bob_token = token(&bob, "bob").await;
    let carol_token = token(&carol, "carol").await;
    let bytes = content(2, 10_000);
    let id = upload(&http, &alice_token, &bytes).await;
    send_with(&alice, "bob", "m1", vec![described(&id, bytes.len())]).await.unwrap();

    assert_eq!(download(&http, &bob_token, &id, None).await.status, 200);
    let missing = "0".repeat(64);
    let refused = download(&http, &carol_token, &id, None).await;
    let unknown = download(&http, &carol_token, &missing, None).await;
    assert_eq!((refused.status, unknown.status), (404, 404));
    assert_eq!(refused.body, unknown.body, "a refusal reads exactly like a missing id");
    // Carol cannot send it either (she never had it), nor can she probe.
    let err = send_with(&carol, "bob", "c1", vec![described(&id, bytes.len())]).await.unwrap_err();
    let err2 = send_with(&carol, "bob", "c2", vec![described(&missing, bytes.len())]).await.unwrap_err();
    assert!(err.contains("upload it first") && err2.contains("upload it first"), "{err} / {err2}");

    // Bob may forward what he can read.
    send_with(&bob, "carol", "fwd", vec![described(&id, bytes.len())]).await.unwrap();
    assert_eq!(download(&http, &carol_token, &id, None).await.status, 200);

    // A revoked device reads nothing, and is told to authenticate.
    let devices = bob.request(Request::Devices).await.unwrap();
    let Response::Devices { devices } = devices else { panic!() };
    let other = connect(&server).await;
    let second_token = token(&other, "bob").await;
    assert_eq!(download(&http, &second_token, &id, None).await.status, 200);
    let second = match other.request(Request::Devices).await.unwrap() {
        Response::Devices { devices: all } => all.into_iter().find(|d| d.current).unwrap().id,
        _ => panic!(),
    };
    assert!(devices.iter().all(|d| d.id != second));
    bob.request(Request::RevokeDevice { device: second }).await.unwrap();
    let revoked = download(&http, &second_token, &id, None).await;
    assert_eq!(revoked.status, 401);
    assert_eq!(revoked.error_code(), "bad_credentials");
    // No token at all: the same.
    let anonymous = http.send_bytes("GET", &format!("/api/attachments/{id}"), &[], b"").await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn the_same_content_is_stored_once() {
    let server = Server::start().await;
    server.add_users(&["alice", "bob"]).await;
    let http = https(&server);
    let (alice, bob) = (connect(&server).await, connect(&server).await);
    let (alice_token, bob_token) = (token(&alice, "alice").await, token(&bob, "bob").await);
    let bytes = content(3, 200_000);
    let first = upload(&http, &alice_token, &bytes).await;
    let again = upload(&http, &alice_token, &bytes).await;
    let bobs = upload(&http, &bob_token, &bytes).await;
    assert!(first == again && again == bobs);
    let files: Vec<_> = walk(&server.dir.join("media/blobs"));
    assert_eq!(files.len(), 1, "{files:?}");
    let parts: Vec<_> =
        walk(&server.dir.join("media/uploads")).into_iter().filter(|p| p.ends_with(".part")).collect();
    assert!(parts.is_empty(), "finished uploads keep no part: {parts:?}");
    // It counts once to each uploader.
    let summary = imboxd_summary(&server).await;
    assert_eq!(summary, (200_000, 1, vec![200_000, 200_000]));
}

/// Media on the box: (bytes, contents, each user's usage), from the status API.
async fn imboxd_summary(server: &Server) -> (u64, u64, Vec<u64>) {
    let store = imboxd_store(server);
    let summary = store.media_summary().unwrap();
    (summary.bytes, summary.contents, summary.per_user.iter().map(|(_, b)| *b).collect())
}

fn imboxd_store(server: &Server) -> imboxd::store::Store {
    server.store().clone()
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

#[tokio::test]
async fn limits_refuse_with_typed_errors() {
    let temp = tempfile::tempdir().unwrap();
    let server = Server::start_in(temp.path(), |c| {
        c.media.max_file_mib = 2;
        c.media.user_quota_mib = 3;
    })
    .await;
    server.add_users(&["alice"]).await;
    let http = https(&server);
    let alice = connect(&server).await;
    let alice_token = token(&alice, "alice").await;

    let too_large = create(&http, &alice_token, 3 << 20, "big.bin").await.unwrap_err();
    assert_eq!((too_large.status, too_large.error_code().as_str()), (413, "too_large"));
    let id = upload(&http, &alice_token, &content(4, 2 << 20)).await;
    assert!(!id.is_empty());
    // 2 MiB stored + 1.5 MiB more is past the 3 MiB quota; an unfinished
    // upload counts too.
    let over = create(&http, &alice_token, 3 << 19, "more.bin").await.unwrap_err();
    assert_eq!((over.status, over.error_code().as_str()), (413, "quota_exceeded"), "{}", over.body);
    let small = create(&http, &alice_token, 1 << 20, "small.bin").await.unwrap();
    let over = create(&http, &alice_token, 1 << 19, "more.bin").await.unwrap_err();
    assert_eq!(over.error_code(), "quota_exceeded");
    // Deleting the unfinished one gives its room back.
    assert_eq!(tus(&http, "DELETE", &small, &alice_token, &[], b"").await.status, 204);
    create(&http, &alice_token, 1 << 19, "more.bin").await.unwrap();
    // More bytes than announced are refused.
    let path = create(&http, &alice_token, 10, "ten.bin").await.unwrap_err_or_path();
    let long = patch(&http, &alice_token, &path, 0, &[7u8; 11]).await;
    assert_eq!((long.status, long.error_code().as_str()), (413, "too_large"));
}

trait PathOrPanic {
    fn unwrap_err_or_path(self) -> String;
}

impl PathOrPanic for Result<String, Answer> {
    fn unwrap_err_or_path(self) -> String {
        self.unwrap_or_else(|a| panic!("{} {}", a.status, a.body))
    }
}

#[tokio::test]
async fn the_reserve_keeps_the_disk_for_messages() {
    let temp = tempfile::tempdir().unwrap();
    // A reserve larger than any disk here: every upload is refused, and
    // messages still go through.
    let server = Server::start_in(temp.path(), |c| c.media.reserve_mib = 1_048_576).await;
    server.add_users(&["alice", "bob"]).await;
    let http = https(&server);
    let alice = connect(&server).await;
    let alice_token = token(&alice, "alice").await;
    let refused = create(&http, &alice_token, 1000, "a.bin").await.unwrap_err();
    assert_eq!((refused.status, refused.error_code().as_str()), (507, "media_space_full"));
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains("messages still go through"));
    send_with(&alice, "bob", "text", Vec::new()).await.unwrap();
}

/// Logs `user` in to the web pages: the answer carries the session cookie
/// and the CSRF token.
async fn web_login(http: &Http, user: &str) -> Answer {
    let credentials = serde_json::json!({"username": user, "password": imbox_tests::PASSWORD});
    http.call("POST", "/api/login", None, None, credentials).await
}

#[tokio::test]
async fn a_browser_session_uploads_with_its_csrf_token() {
    let server = Server::start().await;
    server.add_users(&["alice"]).await;
    let http = https(&server);
    let login = web_login(&http, "alice").await;
    assert_eq!(login.status, 200, "{}", login.body);
    let cookie = format!("__Host-imbox={}", login.session_cookie().unwrap());
    let csrf = login.json()["csrf_token"].as_str().unwrap().to_owned();
    let base = [("Tus-Resumable", "1.0.0"), ("Cookie", cookie.as_str()), ("Upload-Length", "5")];
    let without = http.send_bytes("POST", "/api/uploads", &base, b"").await;
    assert_eq!(without.status, 403, "{}", without.body);
    let mut with = base.to_vec();
    with.extend([("X-CSRF-Token", csrf.as_str()), ("Sec-Fetch-Site", "same-origin")]);
    let created = http.send_bytes("POST", "/api/uploads", &with, b"").await;
    assert_eq!(created.status, 201, "{}", created.body);
    // A page elsewhere cannot make the browser upload.
    let mut cross = with.clone();
    cross.push(("Origin", "https://evil.example"));
    assert_eq!(http.send_bytes("POST", "/api/uploads", &cross, b"").await.status, 403);
}

/// SIGKILL in the middle of an upload: after the restart the upload goes
/// on from a durable offset, no partial content is ever served, and the
/// finished content is exactly the original.
#[tokio::test]
async fn an_upload_survives_sigkill() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let mut daemon = Daemon::start(&dir);
    daemon.add_user("alice");
    let bytes = content(5, 40 << 20);
    let url = imbox_client::ServerUrl::parse(&daemon.url).unwrap();
    let conn = Connection::connect_with(&url, &imbox_client::ConnectOptions::default()).await.unwrap();
    let alice_token = token(&conn, "alice").await;
    let http = Http::https(&dir, daemon.https);
    let path = create(&http, &alice_token, bytes.len(), "film.mp4").await.unwrap();

    // Send 30 MB of a 40 MB PATCH, then kill the daemon mid-body.
    let sender = {
        let (http, token, path, bytes) = (http.clone(), alice_token.clone(), path.clone(), bytes.clone());
        tokio::spawn(async move { slow_patch(&http, &token, &path, &bytes, 30 << 20).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    while sender_progress(&dir) < 20 << 20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = daemon.child.kill();
    daemon.child.wait().unwrap();
    sender.abort();
    assert!(walk(&dir.join("media/blobs")).is_empty(), "no content exists before the last byte");

    let daemon = Daemon::start(&dir);
    let http = Http::https(&dir, daemon.https);
    let head = tus(&http, "HEAD", &path, &alice_token, &[], b"").await;
    assert_eq!(head.status, 200, "{}", head.body);
    let offset: usize = head.header("upload-offset").unwrap().parse().unwrap();
    assert!(offset > 0 && offset <= 30 << 20, "resumes from a durable offset: {offset}");
    let part = std::fs::metadata(
        dir.join("media/uploads").join(format!("{}.part", path.rsplit('/').next().unwrap())),
    );
    assert_eq!(part.unwrap().len() as usize, offset, "the part was cut back to what was confirmed");
    let done = patch(&http, &alice_token, &path, offset, &bytes[offset..]).await;
    assert_eq!(done.status, 204, "{}", done.body);
    let id = done.header("imbox-attachment").unwrap().to_owned();
    assert_eq!(id, hex_sha(&bytes));
    let back = download(&http, &alice_token, &id, None).await;
    assert_eq!(hex_sha(&back.bytes), id);
}

/// Bytes of unfinished uploads on disk.
fn sender_progress(dir: &Path) -> u64 {
    walk(&dir.join("media/uploads"))
        .iter()
        .filter(|p| p.ends_with(".part"))
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

/// A PATCH announcing the whole rest but sending only `send` bytes, then
/// waiting (the daemon is killed meanwhile).
async fn slow_patch(http: &Http, token: &str, path: &str, bytes: &[u8], send: usize) {
    http.send_partial(
        "PATCH",
        path,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Authorization", &format!("Bearer {token}")),
            ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        bytes,
        send,
    )
    .await;
}

#[tokio::test]
async fn the_admin_sees_media_per_user_and_sets_its_retention() {
    let server = Server::start().await;
    server
        .admin(imboxd::admin::AdminRequest::UserAdd {
            name: "olivia".into(),
            password: imbox_tests::PASSWORD.into(),
            admin: true,
        })
        .await;
    server.add_users(&["alice"]).await;
    let http = https(&server);
    let alice = connect(&server).await;
    let alice_token = token(&alice, "alice").await;
    upload(&http, &alice_token, &content(6, 4096)).await;

    let login = web_login(&http, "olivia").await;
    let cookie = login.session_cookie().unwrap();
    let csrf = login.json()["csrf_token"].as_str().unwrap().to_owned();
    let media = http.get("/api/admin/media", Some(&cookie)).await.json();
    assert_eq!(media["bytes"], 4096);
    assert_eq!(media["per_user"], serde_json::json!([{"user": "alice", "bytes": 4096}]));
    assert_eq!(
        (media["retention_days"].as_u64(), media["retention_source"].as_str()),
        (Some(0), Some("configuration"))
    );
    let status = http.get("/api/admin/status", Some(&cookie)).await.json();
    assert_eq!(status["media"]["contents"], 1);

    let set = http
        .call(
            "PUT",
            "/api/admin/media",
            Some(&cookie),
            Some(&csrf),
            serde_json::json!({"retention_days": 30}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(
        (set.json()["retention_days"].as_u64(), set.json()["retention_source"].as_str()),
        (Some(30), Some("setting"))
    );
    let back = http
        .call(
            "PUT",
            "/api/admin/media",
            Some(&cookie),
            Some(&csrf),
            serde_json::json!({"retention_days": null}),
        )
        .await;
    assert_eq!(back.json()["retention_source"], "configuration");
    let bad = http
        .call(
            "PUT",
            "/api/admin/media",
            Some(&cookie),
            Some(&csrf),
            serde_json::json!({"retention_days": 99999}),
        )
        .await;
    assert_eq!(bad.status, 400);
    // A member may not.
    let member = web_login(&http, "alice").await;
    assert_eq!(http.get("/api/admin/media", Some(&member.session_cookie().unwrap())).await.status, 403);
}
