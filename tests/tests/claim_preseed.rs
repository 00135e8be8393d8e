//! A claim code chosen before the box first started
//! (`setup.preseeded_claim_file`; on the appliance, the code `make flash`
//! printed, which the preseed carries to /run/imbox/claim-code): it claims
//! the box over the real HTTPS API, a malformed one gives way to a random
//! code, and a claimed box ignores it. Also what the plain-HTTP landing
//! page says about where the code is.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use imbox_tests::web::{Answer, Http};
use imbox_tests::Server;
use imboxd::web::claim::ClaimCode;
use serde_json::json;

const PASSWORD: &str = "violet tractor lantern 93";
/// A code as image/flash.sh makes them.
const PRESEEDED: &str = "K7MQ-4XZT-0HJB-W9NE";

fn https(server: &Server) -> Http {
    let addr: SocketAddr = server.wss.as_ref().unwrap().trim_start_matches("wss://").parse().unwrap();
    Http::https(&server.dir, addr)
}

fn plain(server: &Server) -> Http {
    Http::plain(server.url.trim_start_matches("ws://").parse().unwrap())
}

/// The code in the claim file imboxd wrote.
fn claim_file_code(server: &Server) -> ClaimCode {
    let text = std::fs::read_to_string(server.dir.join("imbox-claim.txt")).unwrap();
    ClaimCode::from_file_text(&text).unwrap()
}

async fn try_claim(web: &Http, code: &str) -> Answer {
    let body =
        json!({ "code": code, "username": "olivia", "password": PASSWORD, "password_confirm": PASSWORD });
    web.call("POST", "/api/setup/claim", None, None, body).await
}

/// A server whose `setup.preseeded_claim_file` is `file` (outside its data
/// directory, as /run/imbox is on the box).
async fn start(dir: &Path, file: &Path) -> Server {
    let file: PathBuf = file.to_owned();
    Server::start_in(dir, move |config| config.setup.preseeded_claim_file = file).await
}

#[tokio::test]
async fn the_preseeded_code_claims_the_box() {
    let (data, run) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = run.path().join("claim-code");
    std::fs::write(&file, format!("{PRESEEDED}\n")).unwrap();
    let mut server = start(data.path(), &file).await;
    assert_eq!(claim_file_code(&server).grouped(), PRESEEDED, "the claim file shows the preseeded code");

    // The landing page tells a visitor where the code is.
    let landing = plain(&server).get("/", None).await;
    assert_eq!(landing.status, 200);
    for place in ["make flash", "imbox-claim.txt", "HDMI"] {
        assert!(landing.body.contains(place), "{place} missing from the landing page:\n{}", landing.body);
    }

    // Typed as a person might: lower case, no dashes.
    let claimed = try_claim(&https(&server), &PRESEEDED.to_lowercase().replace('-', "")).await;
    assert_eq!(claimed.status, 201, "{}", claimed.body);
    assert!(!server.dir.join("imbox-claim.txt").exists());
    let landing = plain(&server).get("/", None).await;
    assert!(!landing.body.contains("imbox-claim.txt"), "a claimed box still says where its claim code is");

    // The preseed stays on the box (the file is still there at every boot):
    // a claimed box ignores it.
    server.stop().await;
    let server = start(data.path(), &file).await;
    assert!(!server.dir.join("imbox-claim.txt").exists(), "a claimed box wrote a claim file");
    let again = try_claim(&https(&server), PRESEEDED).await;
    assert_eq!(again.status, 410, "{}", again.body);
}

#[tokio::test]
async fn a_malformed_preseeded_code_falls_back_to_a_random_one() {
    let (data, run) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = run.path().join("claim-code");
    // One character short, as a hand-edited preseed might be.
    std::fs::write(&file, "K7MQ-4XZT-0HJB-W9N\n").unwrap();
    let server = start(data.path(), &file).await;
    let code = claim_file_code(&server);
    assert_ne!(code.grouped(), PRESEEDED);
    let refused = try_claim(&https(&server), "K7MQ-4XZT-0HJB-W9N").await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let claimed = try_claim(&https(&server), &code.grouped()).await;
    assert_eq!(claimed.status, 201, "{}", claimed.body);
}

#[tokio::test]
async fn a_box_claimed_before_the_preseed_ignores_it() {
    let (data, run) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = run.path().join("claim-code");
    let mut server = start(data.path(), &file).await;
    let random = claim_file_code(&server);
    let claimed = try_claim(&https(&server), &random.grouped()).await;
    assert_eq!(claimed.status, 201, "{}", claimed.body);
    server.stop().await;

    std::fs::write(&file, PRESEEDED).unwrap();
    let server = start(data.path(), &file).await;
    assert!(!server.dir.join("imbox-claim.txt").exists());
    let setup = https(&server).get("/api/setup", None).await;
    assert_eq!(setup.status, 410, "{}", setup.body);
    assert_eq!(try_claim(&https(&server), PRESEEDED).await.status, 410);
}
