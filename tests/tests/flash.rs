//! image/flash.sh (`make flash`) on a file acting as an SD card: it writes
//! the image (plain or .xz), puts a fresh claim code in the preseed on the
//! FAT boot partition, merged into the owner's preseed in a form the box's
//! own preseed parser (`toml_get` in overlay/usr/lib/imbox/lib.sh) reads,
//! and prints the code and the setup address. That code then claims a real
//! imboxd through `setup.preseeded_claim_file`, the way provision.sh hands
//! it over on the box. And it refuses what it must refuse.
//!
//! Needs the Debian packages fdisk, dosfstools, mtools and xz-utils (which
//! .ci/run installs); qrencode is optional for the script, and checked only
//! when present.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use imbox_tests::web::Http;
use imbox_tests::Server;
use imboxd::web::claim::ClaimCode;
use serde_json::json;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn have(program: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().unwrap().status.success()
}

fn need_tools() {
    for (program, package) in
        [("sfdisk", "fdisk"), ("mkfs.vfat", "dosfstools"), ("mcopy", "mtools"), ("xz", "xz-utils")]
    {
        assert!(have(program), "{program} is missing: install the Debian package {package} (.ci/run does)");
    }
}

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program).args(args).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A small image laid out as imbox's: an MBR with the FAT boot partition
/// (label `label`) first, then a root partition. 20 MiB.
fn make_image(dir: &Path, label: &str) -> PathBuf {
    let path = dir.join("imbox-rpi4.img");
    std::fs::File::create(&path).unwrap().set_len(20 << 20).unwrap();
    let mut sfdisk = Command::new("sfdisk").arg("-q").arg(&path).stdin(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    sfdisk
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"label: dos\nlabel-id: 0x1b0c5d4e\nstart=2048, size=32768, type=c\nstart=34816, type=83\n",
        )
        .unwrap();
    assert!(sfdisk.wait().unwrap().success());
    run("mkfs.vfat", &["-n", label, "--offset", "2048", path.to_str().unwrap(), "16384"]);
    // Something to recognise in the root partition.
    use std::os::unix::fs::FileExt;
    std::fs::File::options().write(true).open(&path).unwrap().write_all_at(ROOT_MARK, ROOT_START).unwrap();
    path
}

/// Where the root partition starts in [`make_image`]'s image, and what it holds.
const ROOT_START: u64 = 34816 * 512;
const ROOT_MARK: &[u8] = b"the read-only root of imbox";

/// Whether `card` holds the image's partition table and root partition
/// (the boot partition changes: the preseed is written into it).
fn holds_image(card: &Path, image: &[u8]) -> bool {
    let card = std::fs::read(card).unwrap();
    let root = ROOT_START as usize..ROOT_START as usize + ROOT_MARK.len();
    card[..512] == image[..512] && card[root.clone()] == image[root.clone()] && &image[root] == ROOT_MARK
}

/// A card: a sparse file larger than the image, with something on it.
fn card(dir: &Path) -> PathBuf {
    let path = dir.join("card.img");
    std::fs::write(&path, b"old data").unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_len(64 << 20).unwrap();
    path
}

fn flash(image: &Path, card: &Path, extra: &[&str]) -> Output {
    Command::new(repo().join("image/flash.sh"))
        .arg(image)
        .arg(card)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The preseed on the card's boot partition.
fn preseed_on(card: &Path) -> String {
    let fat = format!("{}@@{}", card.display(), 2048 * 512);
    let out = Command::new("mtype").args(["-i", &fat, "::imbox.toml"]).env("MTOOLS_SKIP_CHECK", "1").output();
    let out = out.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// What the box's preseed parser reads: `toml_get FILE SECTION KEY` from
/// overlay/usr/lib/imbox/lib.sh (which cannot be sourced whole off the box).
fn toml_get(file: &Path, section: &str, key: &str) -> String {
    let lib = std::fs::read_to_string(repo().join("overlay/usr/lib/imbox/lib.sh")).unwrap();
    let start = lib.find("toml_get() {").expect("toml_get in lib.sh");
    let end = start + lib[start..].find("\n}\n").expect("the end of toml_get") + 3;
    let script = format!("{}\ntoml_get \"$1\" \"$2\" \"$3\"\n", &lib[start..end]);
    let out = run("bash", &["-c", &script, "toml_get", file.to_str().unwrap(), section, key]);
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

/// The code flash.sh printed, as imboxd reads it.
fn printed_code(stdout: &str) -> ClaimCode {
    let line = stdout.lines().map(str::trim).find(|l| l.len() == 19 && l.matches('-').count() == 3);
    let code = ClaimCode::parse(line.expect("a code in the output")).expect("a code imboxd accepts");
    assert_eq!(Some(code.grouped().as_str()), line, "printed as XXXX-XXXX-XXXX-XXXX");
    code
}

#[tokio::test]
async fn a_flashed_card_carries_a_claim_code_that_claims_the_box() {
    need_tools();
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "IMBOX-BOOT");
    let card = card(dir.path());
    let mine = dir.path().join("imbox.toml");
    std::fs::write(
        &mine,
        "# the name on the LAN\nhostname = \"kitchen\"\ntimezone = \"Europe/Berlin\"\n\n\
         [setup]\nclaim_code = \"AAAA-AAAA-AAAA-AAAA\"\n\n[wifi]\nssid = \"Home\"\npsk = \"a passphrase\"",
    )
    .unwrap();

    let out = flash(&image, &card, &["--preseed", mine.to_str().unwrap(), "--yes"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}{stdout}", String::from_utf8_lossy(&out.stderr));
    let code = printed_code(&stdout);
    assert_ne!(code.grouped(), "AAAA-AAAA-AAAA-AAAA", "a claim_code in the preseed is replaced");
    assert!(stdout.contains("http://kitchen.local/setup"), "{stdout}");
    if have("qrencode") {
        assert!(stdout.contains('█'), "no QR code in:\n{stdout}");
    }

    // The card holds the image (the old bytes are gone) and keeps its size.
    assert!(holds_image(&card, &std::fs::read(&image).unwrap()));
    assert_eq!(std::fs::metadata(&card).unwrap().len(), 64 << 20);

    // The preseed on the card: the owner's settings and one [setup] table
    // with the new code, as the box's parser reads it.
    let preseed = preseed_on(&card);
    assert_eq!(preseed.matches("[setup]").count(), 1, "{preseed}");
    assert_eq!(preseed.matches("claim_code").count(), 1, "{preseed}");
    let copy = dir.path().join("preseed-read-back.toml");
    std::fs::write(&copy, &preseed).unwrap();
    assert_eq!(toml_get(&copy, "setup", "claim_code"), code.grouped());
    assert_eq!(toml_get(&copy, "", "hostname"), "kitchen");
    assert_eq!(toml_get(&copy, "wifi", "psk"), "a passphrase");

    // On the box provision.sh writes that value to /run/imbox/claim-code,
    // and imboxd takes it.
    let run_dir = tempfile::tempdir().unwrap();
    let handed_over = run_dir.path().join("claim-code");
    std::fs::write(&handed_over, format!("{}\n", toml_get(&copy, "setup", "claim_code"))).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server =
        Server::start_in(data.path(), move |config| config.setup.preseeded_claim_file = handed_over).await;
    let addr: SocketAddr = server.wss.as_ref().unwrap().trim_start_matches("wss://").parse().unwrap();
    let password = "violet tractor lantern 93";
    let body = json!({
        "code": code.grouped(), "username": "olivia", "password": password, "password_confirm": password
    });
    let claimed = Http::https(&server.dir, addr).call("POST", "/api/setup/claim", None, None, body).await;
    assert_eq!(claimed.status, 201, "{}", claimed.body);

    // Flashed again: a new code, and without a preseed the default name.
    let again = flash(&image, &card, &["--yes"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let second = printed_code(&String::from_utf8_lossy(&again.stdout));
    assert_ne!(second, code, "every flash makes its own code");
    assert!(String::from_utf8_lossy(&again.stdout).contains("http://imbox.local/setup"));
    let preseed = preseed_on(&card);
    assert!(preseed.contains(&format!("[setup]\nclaim_code = \"{}\"", second.grouped())), "{preseed}");
}

#[test]
fn a_compressed_image_is_written_as_it_is_downloaded() {
    need_tools();
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "IMBOX-BOOT");
    let plain = std::fs::read(&image).unwrap();
    run("xz", &["-T1", "-0", image.to_str().unwrap()]);
    let xz = dir.path().join("imbox-rpi4.img.xz");
    let card = card(dir.path());
    let out = flash(&xz, &card, &["--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    printed_code(&String::from_utf8_lossy(&out.stdout));
    assert!(holds_image(&card, &plain), "the decompressed image is on the card");
    assert!(preseed_on(&card).contains("claim_code = \""));
}

#[test]
fn it_refuses_what_it_must_not_write_and_leaves_the_card_alone() {
    need_tools();
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "IMBOX-BOOT");
    let card = card(dir.path());
    let refused = |extra: &[&str], device: &Path, says: &str| {
        let out = flash(&image, device, extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{device:?} {extra:?} was written");
        assert!(stderr.contains(says), "expected {says:?} in: {stderr}");
        assert!(out.stdout.is_empty(), "a refused flash printed a code");
    };
    // No terminal to ask on, and no --yes.
    refused(&[], &card, "add --yes");
    refused(&["--yes"], &image, "DEVICE is the image itself");
    refused(&["--yes"], &dir.path().join("no-such-card"), "create it first");
    refused(&["--yes"], Path::new("/dev/null"), "neither a disk nor a regular file");
    refused(&["--yes", "--preseed", "/nonexistent/imbox.toml"], &card, "cannot read the preseed");
    let windows = dir.path().join("windows.toml");
    std::fs::write(&windows, "hostname = \"box\"\r\n").unwrap();
    refused(&["--yes", "--preseed", windows.to_str().unwrap()], &card, "Windows line endings");
    assert!(std::fs::read(&card).unwrap().starts_with(b"old data"), "a refused flash wrote to the card");

    // An image that is not imbox's: written, but no preseed on a partition
    // that is not imbox's boot partition.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let foreign = make_image(&other, "SOMETHING");
    let out = flash(&foreign, &card, &["--yes"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not imbox's boot partition (label 'SOMETHING'"), "{stderr}");
    assert!(out.stdout.is_empty());
}
