//! The web API over real HTTPS on loopback: claiming, its rate limit, the
//! session cookie, CSRF and origin checks, 403 for members, disabling and
//! revoking, and what plain HTTP serves.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use imbox_client::{ConnectOptions, Connection, ServerUrl};
use imbox_tests::web::{Answer, Http};
use imbox_tests::Server;
use serde_json::json;

const OWNER_PASSWORD: &str = "violet tractor lantern 93";
const MEMBER_PASSWORD: &str = "quiet otter harbour 57";

fn https(server: &Server) -> Http {
    let addr: SocketAddr = server.wss.as_ref().unwrap().trim_start_matches("wss://").parse().unwrap();
    Http::https(&server.dir, addr)
}

fn plain(server: &Server) -> Http {
    Http::plain(server.url.trim_start_matches("ws://").parse().unwrap())
}

fn claim_code(server: &Server) -> String {
    let text = std::fs::read_to_string(server.dir.join("imbox-claim.txt")).unwrap();
    imboxd::web::claim::ClaimCode::from_file_text(&text).unwrap().grouped()
}

/// Claims the box as olivia; returns her session cookie and CSRF token.
async fn claim(web: &Http, code: &str) -> (String, String) {
    let body = json!({
        "code": code, "username": "olivia", "password": OWNER_PASSWORD, "password_confirm": OWNER_PASSWORD
    });
    let answer = web.call("POST", "/api/setup/claim", None, None, body).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    (answer.session_cookie().unwrap(), answer.json()["csrf_token"].as_str().unwrap().to_owned())
}

async fn login(web: &Http, name: &str, password: &str) -> (String, String) {
    let answer =
        web.call("POST", "/api/login", None, None, json!({ "username": name, "password": password })).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    (answer.session_cookie().unwrap(), answer.json()["csrf_token"].as_str().unwrap().to_owned())
}

fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!((answer.status, answer.error_code().as_str()), (status, code), "{}", answer.body);
    assert!(!answer.json()["error"]["message"].as_str().unwrap_or_default().is_empty());
}

#[tokio::test]
async fn the_claim_code_claims_once_and_is_void_afterwards() {
    let server = Server::start().await;
    let web = https(&server);
    let code = claim_code(&server);

    let wrong =
        web.call("POST", "/api/setup/verify", None, None, json!({ "code": "AAAA-BBBB-CCCC-DDDD" })).await;
    assert_error(&wrong, 400, "wrong_claim_code");
    let right =
        web.call("POST", "/api/setup/verify", None, None, json!({ "code": code.to_lowercase() })).await;
    assert_eq!(right.status, 200, "{}", right.body);

    let weak = json!({ "code": code, "username": "olivia", "password": "password1", "password_confirm": "password1" });
    let weak = web.call("POST", "/api/setup/claim", None, None, weak).await;
    assert_error(&weak, 400, "weak_password");
    assert!(weak.json()["error"]["strength"]["score"].as_u64().unwrap() < 3);
    let differ =
        json!({ "code": code, "username": "olivia", "password": OWNER_PASSWORD, "password_confirm": "x" });
    assert_error(&web.call("POST", "/api/setup/claim", None, None, differ).await, 400, "bad_request");

    let body = json!({ "code": code, "username": "olivia", "password": OWNER_PASSWORD, "password_confirm": OWNER_PASSWORD });
    let claimed = web.call("POST", "/api/setup/claim", None, None, body.clone()).await;
    assert_eq!(claimed.status, 201, "{}", claimed.body);
    let cookie = claimed.header("set-cookie").unwrap();
    for attribute in ["__Host-imbox=", "HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!server.dir.join("imbox-claim.txt").exists(), "the claim file is removed");

    assert_error(&web.call("POST", "/api/setup/claim", None, None, body).await, 410, "already_claimed");
    assert_error(
        &web.call("POST", "/api/setup/verify", None, None, json!({ "code": code })).await,
        410,
        "already_claimed",
    );
    assert_eq!(web.get("/setup", None).await.status, 410);
    assert_error(&web.get("/api/setup", None).await, 410, "already_claimed");

    // The owner is logged in by the claim.
    let session = web.get("/api/session", claimed.session_cookie().as_deref()).await;
    assert_eq!(session.json()["owner"], json!(true));
}

#[tokio::test]
async fn wrong_claim_codes_are_rate_limited() {
    let server = Server::start().await;
    let web = https(&server);
    let code = claim_code(&server);
    for _ in 0..imboxd::web::claim::PER_ADDRESS_PER_MINUTE {
        let answer =
            web.call("POST", "/api/setup/verify", None, None, json!({ "code": "0000-0000-0000-0000" })).await;
        assert_error(&answer, 400, "wrong_claim_code");
    }
    // Now even the right code waits: guessing cannot go faster than this.
    let limited = web.call("POST", "/api/setup/verify", None, None, json!({ "code": code })).await;
    assert_error(&limited, 429, "rate_limited");
    assert!(limited.header("retry-after").is_some());
    assert!(limited.json()["error"]["retry_after_ms"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn admin_endpoints_need_an_admin_session_and_the_csrf_token() {
    let server = Server::start().await;
    let web = https(&server);
    let (cookie, csrf) = claim(&web, &claim_code(&server)).await;
    let owner = Some(cookie.as_str());

    let member = json!({ "username": "bob", "password": MEMBER_PASSWORD, "admin": false });
    let no_token = web.call("POST", "/api/admin/users", owner, None, member.clone()).await;
    assert_error(&no_token, 403, "csrf");
    let wrong_token = web.call("POST", "/api/admin/users", owner, Some("nope"), member.clone()).await;
    assert_error(&wrong_token, 403, "csrf");
    let body = member.to_string();
    let cookie_header = format!("__Host-imbox={cookie}");
    let foreign = web
        .send(
            "POST",
            "/api/admin/users",
            &[
                ("Content-Type", "application/json"),
                ("Cookie", &cookie_header),
                ("X-CSRF-Token", &csrf),
                ("Origin", "https://evil.example"),
            ],
            Some(&body),
        )
        .await;
    assert_error(&foreign, 403, "bad_origin");
    // A valid token is not enough on its own: a cookie-authenticated change
    // must say, by Origin or Sec-Fetch-Site, that it came from the box.
    let unmarked = web
        .send(
            "POST",
            "/api/admin/users",
            &[("Content-Type", "application/json"), ("Cookie", &cookie_header), ("X-CSRF-Token", &csrf)],
            Some(&body),
        )
        .await;
    assert_error(&unmarked, 403, "bad_origin");
    let created = web.call("POST", "/api/admin/users", owner, Some(&csrf), member).await;
    assert_eq!(created.status, 201, "{}", created.body);

    let users = web.get("/api/admin/users", owner).await.json();
    let names: Vec<&str> =
        users["users"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["olivia", "bob"]);
    let status = web.get("/api/admin/status", owner).await;
    assert_eq!(status.status, 200, "{}", status.body);
    let status = status.json();
    assert_eq!(status["users"], json!(2));
    assert!(status["identity"]["fingerprint"].as_str().unwrap().starts_with("sha256:"));
    assert!(status["storage"]["total_bytes"].as_u64().unwrap() > 0);
    let metrics = web.get("/metrics", owner).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("imbox_connections{transport=\"quic\"}"), "{}", metrics.body);

    let (bob, bob_csrf) = login(&web, "bob", MEMBER_PASSWORD).await;
    let bob = Some(bob.as_str());
    for path in [
        "/api/admin/status",
        "/api/admin/users",
        "/api/admin/invites",
        "/api/admin/settings",
        "/api/admin/nothing",
    ] {
        assert_error(&web.get(path, bob).await, 403, "not_admin");
    }
    for (method, path) in [
        ("POST", "/api/admin/users"),
        ("DELETE", "/api/admin/users/olivia"),
        ("POST", "/api/admin/invites"),
        ("PUT", "/api/admin/settings"),
    ] {
        assert_error(&web.call(method, path, bob, Some(&bob_csrf), json!({})).await, 403, "not_admin");
    }
    assert_error(&web.get("/metrics", bob).await, 403, "not_admin");
    assert_eq!(web.get("/admin/users", bob).await.status, 403, "the pages too");
    assert_error(&web.get("/api/admin/status", None).await, 401, "not_logged_in");
    let to_login = web.get("/admin", None).await;
    assert_eq!((to_login.status, to_login.header("location")), (303, Some("/login?next=/admin")));

    // Members may not invite until the owner allows it.
    let invite = json!({ "uses": 1 });
    assert_error(
        &web.call("POST", "/api/invites", bob, Some(&bob_csrf), invite.clone()).await,
        403,
        "forbidden",
    );
    let allow = web
        .call("PUT", "/api/admin/settings", owner, Some(&csrf), json!({ "members_may_invite": true }))
        .await;
    assert_eq!(allow.status, 200, "{}", allow.body);
    let made = web.call("POST", "/api/invites", bob, Some(&bob_csrf), invite).await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert!(made.json()["qr_svg"].as_str().unwrap().contains("<svg"));

    // Logging out ends the session.
    assert_eq!(web.call("POST", "/api/logout", bob, Some(&bob_csrf), json!({})).await.status, 204);
    assert_error(&web.get("/api/session", bob).await, 401, "not_logged_in");
}

#[tokio::test]
async fn disabling_a_member_ends_its_sessions_and_refuses_its_logins() {
    let server = Server::start().await;
    let web = https(&server);
    let (cookie, csrf) = claim(&web, &claim_code(&server)).await;
    let owner = Some(cookie.as_str());
    let member = json!({ "username": "bob", "password": MEMBER_PASSWORD });
    assert_eq!(web.call("POST", "/api/admin/users", owner, Some(&csrf), member).await.status, 201);

    let url = ServerUrl::parse(&server.url).unwrap();
    let conn = Connection::connect_with(&url, &ConnectOptions::default()).await.unwrap();
    conn.login("bob", MEMBER_PASSWORD, "laptop").await.unwrap();
    let (bob_web, _) = login(&web, "bob", MEMBER_PASSWORD).await;

    let disabled = web.call("POST", "/api/admin/users/bob/disable", owner, Some(&csrf), json!({})).await;
    assert_eq!(disabled.status, 204, "{}", disabled.body);
    let event = tokio::time::timeout(Duration::from_secs(5), conn.next_event()).await.unwrap();
    assert!(matches!(event, Some(imbox_protocol::Event::Revoked)), "got {event:?}");
    assert_error(&web.get("/api/session", Some(&bob_web)).await, 401, "not_logged_in");
    let refused = web
        .call("POST", "/api/login", None, None, json!({ "username": "bob", "password": MEMBER_PASSWORD }))
        .await;
    assert_error(&refused, 403, "account_disabled");
    let again = Connection::connect_with(&url, &ConnectOptions::default()).await.unwrap();
    let err = again.login("bob", MEMBER_PASSWORD, "laptop").await.unwrap_err().to_string();
    assert!(err.contains("disabled"), "{err}");

    // The owner cannot be disabled or removed, not even by herself.
    let own = web.call("POST", "/api/admin/users/olivia/disable", owner, Some(&csrf), json!({})).await;
    assert_error(&own, 409, "refused");
    assert_error(
        &web.call("DELETE", "/api/admin/users/olivia", owner, Some(&csrf), json!({})).await,
        409,
        "refused",
    );

    let enabled = web.call("POST", "/api/admin/users/bob/enable", owner, Some(&csrf), json!({})).await;
    assert_eq!(enabled.status, 204);
    let back = Connection::connect_with(&url, &ConnectOptions::default()).await.unwrap();
    back.login("bob", MEMBER_PASSWORD, "laptop").await.unwrap();
}

#[tokio::test]
async fn plain_http_serves_the_landing_page_and_sends_the_rest_to_https() {
    let server = Server::start().await;
    let http = plain(&server);
    let landing = http.get("/", None).await;
    assert_eq!(landing.status, 200);
    assert!(landing.body.contains(&server.fingerprint.to_string()), "the key fingerprint is shown");
    let status = https(&server).get("/api/setup", None).await;
    assert_eq!(status.status, 200);
    let https_addr = server.wss.as_ref().unwrap().trim_start_matches("wss://").to_owned();
    assert!(landing.body.contains(&format!(":{}", https_addr.rsplit(':').next().unwrap())));
    for path in ["/setup", "/admin", "/api/admin/status", "/api/setup/claim"] {
        let answer = http.get(path, None).await;
        assert_eq!(answer.status, 308, "{path}");
        assert!(answer.header("location").unwrap().starts_with("https://"), "{path}");
    }
    assert_eq!(http.get("/health", None).await.status, 200);
    for header in ["content-security-policy", "x-content-type-options", "x-frame-options"] {
        assert!(landing.header(header).is_some(), "{header}");
    }

    let big = "x".repeat(imboxd::web::reply::MAX_BODY + 1);
    let too_large = https(&server)
        .send("POST", "/api/setup/verify", &[("Content-Type", "application/json")], Some(&big))
        .await;
    assert_error(&too_large, 413, "too_large");
}

#[tokio::test]
async fn websocket_over_plain_http_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), |c| c.http.plain_websocket = false).await;
    let refused =
        Connection::connect_with(&ServerUrl::parse(&server.url).unwrap(), &ConnectOptions::default()).await;
    assert!(refused.is_err(), "ws:// must be refused");
    let wss = ServerUrl::parse(server.wss.as_ref().unwrap()).unwrap();
    let options = ConnectOptions { pin: Some(server.fingerprint), ..ConnectOptions::default() };
    Connection::connect_with(&wss, &options).await.unwrap();
}

/// What the appliance's storage.sh would have found at boot: the data on the
/// SD card, a blank USB disk, one of another box, and a blank one udev
/// found no serial for (so no /dev/disk/by-id name).
fn disk_list() -> String {
    let disk = |device: &str, id: &str, model: &str, size_bytes: u64, state: &str| json!({ "device": device, "id": id, "model": model, "serial": "", "size_bytes": size_bytes, "state": state });
    json!({
        "box": "b0c5",
        "data": { "kind": "sd", "device": "/dev/mmcblk0p4", "sd_wear_warning": true },
        "disks": [
            disk("/dev/sda", "usb-Samsung_SSD_870_S1-0:0", "Samsung SSD 870", 500_107_862_016, "blank"),
            disk("/dev/sdb", "usb-SanDisk_Extreme_X9-0:0", "Extreme", 1_000_204_886_016, "other-box"),
            disk("/dev/sdc", "", "USB Flash", 16_000_000_000, "blank"),
        ],
    })
    .to_string()
}

/// Waits until the storage API reports the move in `state`.
async fn move_reaches(web: &Http, cookie: Option<&str>, state: &str) -> serde_json::Value {
    for _ in 0..100 {
        let storage = web.get("/api/admin/storage", cookie).await.json();
        if storage["move"]["state"] == state {
            return storage;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the move never reached {state}");
}

#[tokio::test]
async fn moving_the_data_pauses_writes_and_follows_the_storage_scripts_progress() {
    let server = Server::start().await;
    let web = https(&server);
    let (cookie, csrf) = claim(&web, &claim_code(&server)).await;
    let owner = Some(cookie.as_str());
    let adopt = |device: &str, erase: bool| {
        web.call(
            "POST",
            "/api/admin/storage/adopt",
            owner,
            Some(&csrf),
            json!({ "device": device, "erase": erase }),
        )
    };

    // Off the appliance image there is no disk list, and nothing to adopt.
    let storage = web.get("/api/admin/storage", owner).await.json();
    assert!(storage["appliance"].is_null() && storage["move"].is_null(), "{storage}");
    assert_error(&adopt("/dev/sda", false).await, 409, "refused");

    let run = server.dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("storage.json"), disk_list()).unwrap();
    let progress = run.join("storage-progress");
    // An earlier move's last line must not be taken for this one's.
    std::fs::write(&progress, "done 100\n").unwrap();
    let storage = web.get("/api/admin/storage", owner).await.json();
    assert_eq!(storage["appliance"]["data"]["sd_wear_warning"], json!(true));
    assert_eq!(storage["appliance"]["disks"][0]["model"], json!("Samsung SSD 870"));
    assert_eq!(storage["appliance"]["disks"][1]["state"], json!("other-box"));

    assert_error(&adopt("/dev/sdz", false).await, 404, "not_found");
    let unconsented = adopt("/dev/sdb", false).await;
    assert_error(&unconsented, 409, "refused");
    assert!(unconsented.body.contains("another imbox"), "{}", unconsented.body);
    // Consent names a disk by its by-id name and size, never by /dev/sdX
    // alone: a disk without one is refused.
    let unnamed = adopt("/dev/sdc", false).await;
    assert_error(&unnamed, 409, "refused");
    assert!(unnamed.body.contains("no serial number"), "{}", unnamed.body);
    let request = server.dir.join("storage-request");
    assert!(!request.exists(), "a refused adoption asked for a move");

    server.add_users(&["alice", "bob"]).await;
    let alice = server.connection("alice").await;
    let send = |text: &str| {
        alice.request(imbox_protocol::Request::Send {
            to: imbox_protocol::Target::parse("bob"),
            id: text.to_owned(),
            text: text.to_owned(),
            attachments: Vec::new(),
        })
    };
    send("before").await.unwrap();

    // A blank disk: no consent needed, nothing on it to lose.
    let started = adopt("/dev/sda", false).await;
    assert_eq!(started.status, 202, "{}", started.body);
    assert_eq!(started.json()["move"]["state"], json!("waiting"));
    assert_eq!(
        std::fs::read_to_string(&request).unwrap(),
        "adopt /dev/sda usb-Samsung_SSD_870_S1-0:0 500107862016\n"
    );
    let refused = send("during").await.unwrap_err();
    assert_eq!(refused.code(), Some(imbox_protocol::ErrorCode::Unavailable), "{refused}");
    assert!(refused.to_string().contains("moving its data"), "{refused}");
    assert_error(&adopt("/dev/sdb", true).await, 409, "refused");

    std::fs::remove_file(&request).unwrap();
    std::fs::write(&progress, "copying 40\n").unwrap();
    let copying = move_reaches(&web, owner, "copying").await;
    assert_eq!(copying["move"]["percent"], json!(40));
    std::fs::write(&progress, "failed 0 the disk vanished during the copy: plug it in again and retry\n")
        .unwrap();
    let failed = move_reaches(&web, owner, "failed").await;
    assert!(failed["move"]["message"].as_str().unwrap().contains("plug it in again"));
    // Nothing was moved: writes go on where they were.
    let mut resumed = Err(None);
    for _ in 0..50 {
        resumed = send("after-the-failure").await.map_err(Some);
        if resumed.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(resumed.is_ok(), "writes did not resume after the move failed: {resumed:?}");

    // Another box's disk, with the owner's consent to erase it.
    let started = adopt("/dev/sdb", true).await;
    assert_eq!(started.status, 202, "{}", started.body);
    assert_eq!(
        std::fs::read_to_string(&request).unwrap(),
        "adopt /dev/sdb usb-SanDisk_Extreme_X9-0:0 1000204886016 format\n"
    );
    std::fs::write(&progress, "done 100\n").unwrap();
    move_reaches(&web, owner, "done").await;
    // storage.sh restarts imboxd on the new disk; until then nothing changes.
    assert!(send("after-done").await.is_err());
    assert_error(&adopt("/dev/sda", false).await, 409, "refused");
}
