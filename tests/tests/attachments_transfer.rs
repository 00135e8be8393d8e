//! Attachments end to end, through the client library and the `imbox`
//! command line against a real imboxd on loopback: a 200 MB upload cut in
//! the middle and resumed from the box's offset (tus over HTTPS, and a
//! QUIC transfer stream), the message that carries it, and the download
//! checked byte for byte.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use imbox_client::{Client, ClientError};
use imbox_protocol::{Item, Message, Target};
use imbox_tests::{bin, Server, Transport, PASSWORD};
use sha2::{Digest, Sha256};

/// The size of the big file.
const BIG: u64 = 200 * 1_000_000;

/// Where the first run is cut off.
const CUT_AT: u64 = 80 * 1_000_000;

/// A file of `size` pseudo-random bytes (xorshift, so that nothing
/// compresses or deduplicates it by accident); its SHA-256 in hex.
fn random_file(path: &Path, size: u64, seed: u64) -> String {
    let mut state = seed | 1;
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut sha = Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = usize::try_from(left.min(block.len() as u64)).unwrap();
        sha.update(&block[..n]);
        file.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    file.flush().unwrap();
    hex(&sha.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_of(path: &Path) -> String {
    let mut sha = Sha256::new();
    let mut file = std::fs::File::open(path).unwrap();
    std::io::copy(&mut file, &mut sha).unwrap();
    hex(&sha.finalize())
}

/// A server whose files may be as big as the test's, its clients on
/// `transport`.
async fn media_server(dir: &Path, transport: Transport) -> Server {
    let mut server = Server::start_in(dir, |config| {
        config.media.max_file_mib = 512;
        // The test machine's disk, not the box's: keep no reserve.
        config.media.reserve_mib = 0;
    })
    .await;
    server.transport = transport;
    server.add_users(&["alice", "bob", "carol"]).await;
    server
}

/// The messages of a client's backlog.
async fn messages(client: &mut Client) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(entry) = client.next_backlog_entry().await.unwrap() {
        if let Item::Message(message) = entry.item {
            out.push(message);
        }
    }
    out
}

/// Uploads 200 MB, cuts the first run off after 80 MB by dropping it and
/// its connection, and checks that the next run (a new client on the same
/// profile, as a new process would be) starts from the box's offset, that
/// a third run sends nothing, and that the recipient downloads the same
/// bytes.
async fn a_cut_upload_resumes_from_the_box_offset(transport: Transport) {
    let temp = tempfile::tempdir().unwrap();
    let server = media_server(&temp.path().join("data"), transport).await;
    let source = temp.path().join("film.mp4");
    let started = Instant::now();
    let sha = random_file(&source, BIG, 0x1234_5678_9abc_def0);
    eprintln!("{transport:?}: 200 MB written and hashed in {:?}", started.elapsed());
    let alice_dir = temp.path().join("alice");
    // A device reads the stream from when it logged in.
    let mut bob = server.client("bob", &temp.path().join("bob")).await;

    // First run, cut off.
    let mut alice = server.client("alice", &alice_dir).await;
    let (cut, cut_off) = tokio::sync::oneshot::channel::<u64>();
    let mut cut = Some(cut);
    let started = Instant::now();
    let first = alice.upload(&source, |p| {
        if p.done >= CUT_AT {
            if let Some(cut) = cut.take() {
                let _ = cut.send(p.done);
            }
        }
    });
    let sent_before_cut = tokio::select! {
        result = first => panic!("the upload ended before the cut: {result:?}"),
        done = cut_off => done.unwrap(),
    };
    let first_run = started.elapsed();
    drop(alice);
    let saved = std::fs::read_to_string(alice_dir.join(imbox_client::attachments::UPLOADS_FILE)).unwrap();
    assert!(saved.contains("film.mp4"), "the upload's id is saved beside the profile: {saved}");

    // Second run: a new client on the same profile.
    let mut alice = Client::open(&alice_dir).unwrap();
    let started = Instant::now();
    let mut first_report = None;
    let uploaded = alice
        .upload(&source, |p| {
            first_report.get_or_insert(p);
        })
        .await
        .unwrap();
    let second_run = started.elapsed();
    eprintln!(
        "{transport:?}: cut at {sent_before_cut} bytes after {first_run:?}; resumed at {} bytes, \
         sent {} in {second_run:?} ({:.1} MB/s)",
        uploaded.resumed_at,
        uploaded.sent,
        uploaded.sent as f64 / 1e6 / second_run.as_secs_f64()
    );
    assert!(uploaded.resumed_at > 0, "the second run started from the box's offset, not from 0");
    assert!(uploaded.resumed_at <= sent_before_cut, "the box cannot hold more than was sent");
    // Only the rest was sent: from the offset the box gave, or from
    // further on where the box was still finishing the cut run's last
    // PATCH when asked (it then answers 409 and a second HEAD says where).
    assert!(uploaded.sent <= BIG - uploaded.resumed_at, "more than the rest was sent");
    assert!(
        uploaded.sent + sent_before_cut + 256 * 1024 >= BIG,
        "the box cannot hold more than the first run sent (one chunk after the cut at most)"
    );
    assert_eq!(first_report.map(|p| p.done), Some(uploaded.resumed_at));
    let attachment = uploaded.attachment;
    assert_eq!(attachment.id, sha);
    assert_eq!(
        (attachment.size, attachment.name.as_str(), attachment.media_type.as_str()),
        (BIG, "film.mp4", "video/mp4")
    );

    // Third run: the box has it all; nothing is sent again.
    let again = alice.upload(&source, |_| {}).await.unwrap();
    assert_eq!((again.sent, again.resumed_at, &again.attachment), (0, BIG, &attachment));

    let sent = alice
        .send_with_attachments(&Target::parse("bob"), "the film", vec![attachment.clone()])
        .await
        .unwrap();
    assert!(!sent.duplicate);

    // Bob receives the description and downloads the same bytes.
    let received = messages(&mut bob).await;
    assert_eq!(received.len(), 1);
    assert_eq!(
        (received[0].text.as_str(), &received[0].attachments),
        ("the film", &vec![attachment.clone()])
    );
    let out = temp.path().join("received.mp4");
    let started = Instant::now();
    let mut reports = 0u32;
    let downloaded = bob.download(&attachment.id, &out, |_| reports += 1).await.unwrap();
    eprintln!("{transport:?}: downloaded 200 MB in {:?}", started.elapsed());
    assert_eq!(downloaded.size, BIG);
    assert!(reports > 10, "progress was reported along the way ({reports} times)");
    assert_eq!(sha256_of(&out), sha);

    // Carol, in no conversation that carried it, gets the same answer as
    // for an id that does not exist.
    let mut carol = server.client("carol", &temp.path().join("carol")).await;
    let refused = carol.download(&attachment.id, temp.path().join("carol.mp4"), |_| {}).await.unwrap_err();
    assert!(matches!(refused, ClientError::AttachmentNotFound { .. }), "{refused}");
    assert!(!temp.path().join("carol.mp4").exists(), "no partial file is left");
    let missing = bob.download(&"0".repeat(64), temp.path().join("missing"), |_| {}).await.unwrap_err();
    assert!(matches!(missing, ClientError::AttachmentNotFound { .. }), "{missing}");
}

mod wss {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cut_upload_resumes_from_the_box_offset() {
        super::a_cut_upload_resumes_from_the_box_offset(imbox_tests::Transport::Wss).await;
    }
}

mod quic {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cut_upload_resumes_from_the_box_offset() {
        super::a_cut_upload_resumes_from_the_box_offset(imbox_tests::Transport::Quic).await;
    }
}

/// The box restarts in the middle of an upload: the same call reconnects
/// (on the same addresses), asks the box where it is and finishes, sending
/// again only what the box had not made durable.
async fn an_upload_survives_a_restart_of_the_box(transport: Transport) {
    const SIZE: u64 = 64 * 1024 * 1024;
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let mut server = media_server(&data, transport).await;
    let (https, quic) = (server.wss.clone().unwrap(), server.quic.unwrap());
    let source = temp.path().join("backup.tar");
    let sha = random_file(&source, SIZE, 99);
    let mut alice = server.client("alice", &temp.path().join("alice")).await;

    let (halfway, at_halfway) = tokio::sync::oneshot::channel::<()>();
    let upload = tokio::spawn(async move {
        let mut halfway = Some(halfway);
        // Whether a report ever failed to move forward: each attempt starts
        // with one at the box's offset, so this is a second attempt, which
        // went on from where the box was after the restart.
        let (mut last, mut resumed) = (0, false);
        let result = alice
            .upload(&source, |p| {
                resumed |= last > 0 && p.done <= last;
                last = p.done;
                if p.done >= SIZE / 2 {
                    if let Some(halfway) = halfway.take() {
                        let _ = halfway.send(());
                    }
                }
            })
            .await;
        (result, resumed)
    });
    at_halfway.await.unwrap();
    server.stop().await;
    let https_addr: std::net::SocketAddr = https.trim_start_matches("wss://").parse().unwrap();
    let _restarted = Server::start_in(&data, |config| {
        config.https.listen = vec![https_addr];
        config.quic.listen = vec![quic];
        config.media.max_file_mib = 512;
        config.media.reserve_mib = 0;
    })
    .await;
    let (result, resumed) = upload.await.unwrap();
    let uploaded = result.unwrap();
    assert_eq!(uploaded.attachment.id, sha);
    assert_eq!(uploaded.resumed_at, 0);
    assert!(resumed, "the call went on from the box's offset after the restart");
    // What was resent: at most what the box had not made durable (it does
    // every 8 MiB) and what was in flight, not the whole file again.
    eprintln!("{transport:?}: {} bytes sent for {SIZE} across a restart", uploaded.sent);
    assert!(uploaded.sent >= SIZE && uploaded.sent < SIZE + SIZE / 2, "sent {} bytes", uploaded.sent);
}

mod restart {
    use imbox_tests::Transport;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_wss() {
        super::an_upload_survives_a_restart_of_the_box(Transport::Wss).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_quic() {
        super::an_upload_survives_a_restart_of_the_box(Transport::Quic).await;
    }
}

/// Small files both ways, the limits' errors, and plain ws:// refusing.
async fn refusals_say_what_to_do(transport: Transport) {
    let temp = tempfile::tempdir().unwrap();
    // Each limit on a box of its own.
    let boxes = [
        (|c: &mut imboxd::config::Config| c.media.max_file_mib = 1) as fn(&mut imboxd::config::Config),
        |c| c.media.user_quota_mib = 1,
        // All the disk (and more) kept for messages.
        |c| c.media.reserve_mib = 1_048_576,
    ];
    let mut servers = Vec::new();
    for (i, limit) in boxes.into_iter().enumerate() {
        let mut server = Server::start_in(&temp.path().join(format!("data{i}")), |config| {
            config.media.reserve_mib = 0;
            limit(config);
        })
        .await;
        server.transport = transport;
        server.add_users(&["alice"]).await;
        servers.push(server);
    }
    let big = temp.path().join("big.bin");
    random_file(&big, 2 * 1024 * 1024, 7);
    let mut errors = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let mut alice = server.client("alice", &temp.path().join(format!("alice{i}"))).await;
        errors.push(alice.upload(&big, |_| {}).await.unwrap_err());
    }
    let [too_large, over_quota, no_space] = &errors[..] else { unreachable!() };
    assert!(matches!(too_large, ClientError::AttachmentTooLarge { size: 2_097_152, .. }), "{too_large}");
    assert!(too_large.to_string().contains("send a smaller file"), "{too_large}");
    assert!(matches!(over_quota, ClientError::QuotaExceeded { .. }), "{over_quota}");
    assert!(over_quota.to_string().contains("ask the box's owner for a larger quota"), "{over_quota}");
    assert!(matches!(no_space, ClientError::MediaSpaceFull { .. }), "{no_space}");
    assert!(no_space.to_string().contains("messages without attachments still go through"), "{no_space}");

    let mut alice = servers[0].client("alice", &temp.path().join("alice")).await;
    let empty = temp.path().join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    let uploaded = alice.upload(&empty, |_| {}).await.unwrap();
    assert_eq!(uploaded.attachment.id, hex(&Sha256::digest(b"")));
    assert_eq!(uploaded.attachment.media_type, "text/plain");
    let mut out = Vec::new();
    alice.download_to(&uploaded.attachment.id, &mut out, |_| {}).await.unwrap();
    assert!(out.is_empty());

    let err = alice.download("not an id", temp.path().join("x"), |_| {}).await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidAttachment(_)), "{err}");
}

mod limits {
    use imbox_tests::Transport;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_wss() {
        super::refusals_say_what_to_do(Transport::Wss).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_quic() {
        super::refusals_say_what_to_do(Transport::Quic).await;
    }

    #[tokio::test]
    async fn plain_ws_refuses_attachments() {
        let temp = tempfile::tempdir().unwrap();
        let server = super::media_server(&temp.path().join("data"), Transport::Ws).await;
        let mut alice = server.client("alice", &temp.path().join("alice")).await;
        let file = temp.path().join("note.txt");
        std::fs::write(&file, b"hello").unwrap();
        let err = alice.upload(&file, |_| {}).await.unwrap_err();
        assert!(err.to_string().starts_with("attachments need wss:// or quic://"), "{err}");
    }
}

/// A content that changed on the box's disk is refused by the download's
/// check: a typed error, and nothing left where it was to be written.
async fn a_damaged_content_is_not_kept(transport: Transport) {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let server = media_server(&data, transport).await;
    let mut alice = server.client("alice", &temp.path().join("alice")).await;
    let file = temp.path().join("scan.pdf");
    let sha = random_file(&file, 1_500_000, 3);
    let uploaded = alice.upload(&file, |_| {}).await.unwrap();
    assert_eq!(uploaded.attachment.id, sha);

    // One byte flipped in the stored content (same length).
    let blob = data.join("media/blobs").join(&sha[..2]).join(&sha);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[700_000] ^= 0x55;
    std::fs::write(&blob, &bytes).unwrap();

    let out_dir = temp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let err = alice.download(&sha, out_dir.join("scan.pdf"), |_| {}).await.unwrap_err();
    let ClientError::AttachmentCorrupt { id, actual } = &err else { panic!("{err}") };
    assert_eq!((id, actual), (&sha, &hex(&Sha256::digest(&bytes))));
    assert!(err.to_string().contains("download it again"), "{err}");
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0, "neither the file nor a partial one is left");
}

mod damaged {
    use imbox_tests::Transport;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_wss() {
        super::a_damaged_content_is_not_kept(Transport::Wss).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_quic() {
        super::a_damaged_content_is_not_kept(Transport::Quic).await;
    }
}

/// `imbox` with a clean environment.
fn imbox(profile: &Path) -> Command {
    let mut cmd = Command::new(bin("imbox"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("IMBOX_PASSWORD", PASSWORD)
        .arg("--profile")
        .arg(profile)
        .stdin(Stdio::null());
    cmd
}

fn ok(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn a_file_goes_from_the_command_line_to_the_command_line(transport: Transport) {
    let temp = tempfile::tempdir().unwrap();
    let server = media_server(&temp.path().join("data"), transport).await;
    let (a, b) = (temp.path().join("alice"), temp.path().join("bob"));
    let url = server.client_url();
    let pin = server.fingerprint.to_string();
    let photo = temp.path().join("photo.jpg");
    let sha = random_file(&photo, 3_000_000, 42);
    let out: PathBuf = temp.path().join("out.jpg");
    let work = temp.path().to_owned();
    tokio::task::spawn_blocking(move || {
        for (dir, user) in [(&a, "alice"), (&b, "bob")] {
            let mut login = imbox(dir);
            login.args(["--server", &url, "--pin", &pin, "login", user]);
            ok(login);
        }
        let mut send = imbox(&a);
        send.arg("send").arg("bob").arg("--file").arg(&photo).args(["--caption", "hi"]);
        let sent = send.output().unwrap();
        assert!(sent.status.success(), "send failed: {}", String::from_utf8_lossy(&sent.stderr));
        // Progress goes to a terminal only; a successful send prints nothing.
        assert!(sent.stdout.is_empty() && sent.stderr.is_empty(), "{sent:?}");

        let mut sync = imbox(&b);
        sync.arg("sync");
        let lines = json_lines(&ok(sync));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["text"], "hi");
        let attachment = &lines[0]["attachments"][0];
        assert_eq!(attachment["id"], sha.as_str());
        assert_eq!(attachment["name"], "photo.jpg");
        assert_eq!(attachment["media_type"], "image/jpeg");
        assert_eq!(attachment["size"], 3_000_000);

        let mut history = imbox(&b);
        history.args(["history", "alice"]);
        let lines = json_lines(&ok(history));
        assert_eq!(lines[0]["attachments"][0]["id"], sha.as_str());

        let mut download = imbox(&b);
        download.args(["download", &sha, "-o"]).arg(&out);
        assert_eq!(ok(download), "");
        assert_eq!(sha256_of(&out), sha);

        // By default the file is named as asked, in the current directory.
        let mut named = imbox(&b);
        named.current_dir(&work).args(["download", &sha, "--name", "saved.jpg"]);
        ok(named);
        assert_eq!(sha256_of(&work.join("saved.jpg")), sha);
        // Into a directory: under the given name, and told with --verbose.
        let dir = work.join("inbox");
        std::fs::create_dir(&dir).unwrap();
        let mut into_dir = imbox(&b);
        into_dir.args(["--verbose", "download", &sha, "--name", "photo.jpg", "-o"]).arg(&dir);
        let told = json_lines(&ok(into_dir));
        assert_eq!(told[0]["type"], "downloaded");
        assert_eq!(told[0]["size"], 3_000_000);
        assert_eq!(told[0]["path"], dir.join("photo.jpg").to_str().unwrap());
        assert_eq!(sha256_of(&dir.join("photo.jpg")), sha);
        let mut stdout = imbox(&b);
        stdout.args(["download", &sha, "-o", "-"]);
        let bytes = stdout.output().unwrap().stdout;
        assert_eq!(hex(&Sha256::digest(&bytes)), sha);

        // Sending the same file again uploads nothing new and still works.
        let mut again = imbox(&a);
        again.arg("--verbose").arg("send").arg("bob").arg("--file").arg(&photo);
        let sent = json_lines(&ok(again));
        assert_eq!(sent[0]["attachments"][0]["id"], sha.as_str());
    })
    .await
    .unwrap();
}

/// Ctrl-C in the middle of `imbox send --file` stops it cleanly, says how
/// to go on, and the same command run again finishes the upload and sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_send_is_finished_by_running_it_again() {
    let temp = tempfile::tempdir().unwrap();
    let server = media_server(&temp.path().join("data"), Transport::Quic).await;
    let (a, b) = (temp.path().join("alice"), temp.path().join("bob"));
    let (url, pin) = (server.client_url(), server.fingerprint.to_string());
    let video = temp.path().join("clip.webm");
    let sha = random_file(&video, 96 * 1024 * 1024, 5);
    tokio::task::spawn_blocking(move || {
        for (dir, user) in [(&a, "alice"), (&b, "bob")] {
            let mut login = imbox(dir);
            login.args(["--server", &url, "--pin", &pin, "login", user]);
            ok(login);
        }
        let mut send = imbox(&a);
        send.arg("send").arg("bob").arg("--file").arg(&video).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = send.spawn().unwrap();
        // The upload's id is saved as soon as the box gives it.
        let saved = a.join(imbox_client::attachments::UPLOADS_FILE);
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        while !saved.exists() {
            assert!(Instant::now() < deadline, "no upload started");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            // A fast machine finished first: nothing left to interrupt.
            eprintln!("the send finished before the interrupt");
        } else {
            assert!(stderr.contains("interrupted: run the same command again"), "{stderr}");
            let mut again = imbox(&a);
            again.arg("send").arg("bob").arg("--file").arg(&video);
            ok(again);
        }
        let mut sync = imbox(&b);
        sync.arg("sync");
        let lines = json_lines(&ok(sync));
        assert_eq!(lines.len(), 1, "sent once: {lines:?}");
        assert_eq!(lines[0]["attachments"][0]["id"], sha.as_str());
    })
    .await
    .unwrap();
}

mod cli {
    use imbox_tests::Transport;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_wss() {
        super::a_file_goes_from_the_command_line_to_the_command_line(Transport::Wss).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_quic() {
        super::a_file_goes_from_the_command_line_to_the_command_line(Transport::Quic).await;
    }
}
