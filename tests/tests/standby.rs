//! `imboxd standby` on loopback, over plain HTTP and real TLS: for each
//! problem the storage service can report, the page says what is wrong and
//! what to do, `/health` answers 503 with the problem's kind, and nothing
//! is written.

#![allow(clippy::unwrap_used)]

use imbox_tests::test_config;
use imbox_tests::web::{Answer, Http};

/// What storage.sh writes when it does not start imboxd, with `problem`.
fn status(problem: &str) -> String {
    format!(
        r#"{{"box": "0b7e3c52-3f7d-4c1e-9a51-2f1d8f0c6a10",
  "data": {{"kind": "none", "device": ""}},
  "disks": [{{"device": "/dev/sdb", "model": "Kingston DataTraveler", "serial": "K9", "size_bytes": 64000000000, "state": "has-data"}}],
  "problem": {problem}}}"#
    )
}

const MISSING: &str = r#"{"kind": "missing", "disk": {"model": "Samsung T7", "serial": "S5XXNJ0R", "size_bytes": 500107862016}}"#;
const CHECK_FAILED: &str = r#"{"kind": "check-failed", "device": "/dev/sda1",
    "disk": {"model": "Samsung T7", "serial": "S5XXNJ0R", "size_bytes": 500107862016}}"#;
const TWO_DISKS: &str = r#"{"kind": "two-disks", "disks": [
    {"device": "/dev/sda", "model": "Samsung T7", "serial": "S5XXNJ0R", "size_bytes": 500107862016},
    {"device": "/dev/sdb", "model": "SanDisk Extreme", "serial": "SD77", "size_bytes": 1000204886016}]}"#;

/// The text a browser without scripts shows (tags removed, spaces
/// collapsed): the page marks each sentence for translation, and what the
/// disk reports sits inside those sentences in elements of its own.
fn visible(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks that `answer` is the standby page, 503, saying `text` (in English,
/// with every sentence translatable).
fn assert_page(answer: &Answer, text: &str) {
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(answer.header("content-type").unwrap_or("").starts_with("text/html"));
    assert_eq!(answer.header("retry-after"), Some("5"));
    assert!(answer.body.contains("<meta name=\"imbox-standby-check\" content=\"5\">"), "{}", answer.body);
    assert!(answer.body.contains("/assets/style.css"), "the page has the look of the others");
    assert!(visible(&answer.body).contains(text), "expected {text:?} in:\n{}", answer.body);
    assert!(answer.body.contains("data-i18n=\"standby.until\""), "{}", answer.body);
}

async fn assert_health(web: &Http, kind: &str) {
    let health = web.get("/health", None).await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(health.json(), serde_json::json!({ "status": "standby", "problem": kind }));
}

#[tokio::test]
async fn standby_says_what_is_wrong_with_the_data_disk_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = test_config(&data, "127.0.0.1:0".parse().unwrap());
    let file = dir.path().join("storage.json");
    let standby = imboxd::standby::start(&config, file.clone()).await.unwrap();

    // Trust the temporary certificate, as a person does who accepts the
    // browser's warning after comparing it.
    let trust = dir.path().join("trust");
    std::fs::create_dir(&trust).unwrap();
    std::fs::write(trust.join("identity.crt"), &standby.certificate_pem).unwrap();
    let https = Http::https(&trust, standby.https[0]);
    let plain = Http::plain(standby.http[0]);

    // Before the storage service writes anything.
    for web in [&https, &plain] {
        assert_page(&web.get("/", None).await, "has not reported yet");
        assert_health(web, "unreported").await;
    }

    // The file is read again for every request: no restart between these.
    let cases = [
        (
            MISSING,
            "missing",
            "The data disk of this box is missing: Samsung T7 (serial S5XXNJ0R, 500 GB). Plug it in; \
             the box starts by itself when it appears.",
        ),
        (
            CHECK_FAILED,
            "check-failed",
            "The file system on the data disk, Samsung T7 (serial S5XXNJ0R, 500 GB) at /dev/sda1, \
             failed its check; it was not mounted",
        ),
        (
            TWO_DISKS,
            "two-disks",
            "2 disks hold this box&#39;s data, so none of them was mounted and none was changed: \
             Samsung T7 (serial S5XXNJ0R, 500 GB) at /dev/sda SanDisk Extreme (serial SD77, 1.0 TB) at \
             /dev/sdb Unplug the ones you do not want to use",
        ),
    ];
    for (problem, kind, text) in cases {
        std::fs::write(&file, status(problem)).unwrap();
        for web in [&https, &plain] {
            assert_page(&web.get("/", None).await, text);
            // Every path is the page: bookmarks and the setup address too.
            assert_page(&web.get("/admin/storage", None).await, text);
            assert_page(&web.send("POST", "/api/login", &[], Some("{}")).await, text);
            assert_health(web, kind).await;
        }
    }

    std::fs::write(&file, status("null")).unwrap();
    assert_page(&https.get("/", None).await, "starts in a moment");
    assert_health(&https, "none").await;

    // A file cut short, or too large to be the storage service's.
    std::fs::write(&file, &status(MISSING)[..40]).unwrap();
    let cut = https.get("/", None).await;
    assert_page(&cut, "has not reported yet");
    assert!(cut.body.contains("is not the status the storage service writes"), "{}", cut.body);
    assert_health(&plain, "unreported").await;
    std::fs::write(&file, format!("{}{}", status(MISSING), " ".repeat(70_000))).unwrap();
    assert_page(&plain.get("/", None).await, "larger than 65536 bytes");

    let style = plain.get("/assets/style.css", None).await;
    assert_eq!(style.status, 200);
    assert!(style.header("content-type").unwrap_or("").starts_with("text/css"));

    standby.shutdown.cancel();
    standby.wait().await;
    assert!(!data.exists(), "standby wrote to the data directory");
}

/// The real binary: `imboxd standby` starts from its command line, answers,
/// and stops cleanly on SIGTERM (what systemd sends when imboxd takes over).
#[tokio::test]
async fn the_standby_command_serves_and_stops_on_sigterm() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("imbox.toml");
    std::fs::write(&config, "").unwrap();
    let file = dir.path().join("storage.json");
    std::fs::write(&file, status(MISSING)).unwrap();
    // Ports found by the harness, as for the other child processes: the
    // log that names the bound ports goes to journald where there is one.
    let (http, https) = (imbox_tests::free_port(), imbox_tests::free_port());
    let mut child = Command::new(imbox_tests::bin("imboxd"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["standby", "--status"])
        .arg(&file)
        .env("IMBOX_HTTP__LISTEN", http.to_string())
        .env("IMBOX_HTTPS__LISTEN", https.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(http).await.is_err() {
        assert!(child.try_wait().unwrap().is_none(), "imboxd standby exited");
        assert!(Instant::now() < deadline, "imboxd standby did not start listening on {http}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let plain = Http::plain(http);
    assert_page(&plain.get("/", None).await, "The data disk of this box is missing: Samsung T7");
    assert_health(&plain, "missing").await;

    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "imboxd standby did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    assert!(!dir.path().join("data").exists(), "standby wrote to the data directory");
}
