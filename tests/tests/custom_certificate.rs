//! "Use my own certificate" end to end: a test CA made here issues a leaf
//! for localhost and 127.0.0.1; the owner installs it through the admin API
//! (uploaded, then as files in the data directory); a client that trusts
//! only that CA (a browser) is served it over HTTPS, while clients that pin
//! the box key (QUIC, wss) keep connecting; it survives a restart, DELETE
//! goes back, and bad certificates are refused with typed errors.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use imbox_client::{ConnectOptions, Connection, ServerUrl};
use imbox_protocol::{Request, Response, Target};
use imbox_tests::web::{pinned_marker_connector, Answer, Http};
use imbox_tests::{Server, PASSWORD};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::json;
use time::{Duration, OffsetDateTime};

const OWNER_PASSWORD: &str = "violet tractor lantern 93";

/// Message ids: unique per process, so that no send is taken for a retry.
static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

type Ca = rcgen::CertifiedIssuer<'static, rcgen::KeyPair>;

fn test_ca() -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "imbox test CA");
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
}

/// A leaf for localhost and 127.0.0.1 valid from `from` to `until` days
/// from now: its PEM, its DER and its key's PEM.
fn leaf(ca: &Ca, from: i64, until: i64) -> (String, CertificateDer<'static>, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    let now = OffsetDateTime::now_utc();
    params.not_before = now + Duration::days(from);
    params.not_after = now + Duration::days(until);
    let cert = params.signed_by(&key, &**ca).unwrap();
    (cert.pem(), cert.der().clone(), key.serialize_pem())
}

fn https_addr(server: &Server) -> SocketAddr {
    server.wss.as_ref().unwrap().trim_start_matches("wss://").parse().unwrap()
}

/// The admin's HTTP client: it offers the pinned-client marker, so it
/// reaches the box whatever certificate browsers are shown.
fn admin_http(server: &Server) -> Http {
    Http::with_connector(https_addr(server), pinned_marker_connector(&server.dir))
}

/// Claims the box; returns the owner's session cookie and CSRF token.
async fn claim(server: &Server, web: &Http) -> (String, String) {
    let text = std::fs::read_to_string(server.dir.join("imbox-claim.txt")).unwrap();
    let code = imboxd::web::claim::ClaimCode::from_file_text(&text).unwrap().grouped();
    let body = json!({
        "code": code, "username": "olivia", "password": OWNER_PASSWORD, "password_confirm": OWNER_PASSWORD
    });
    let answer = web.call("POST", "/api/setup/claim", None, None, body).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    (answer.session_cookie().unwrap(), answer.json()["csrf_token"].as_str().unwrap().to_owned())
}

async fn login(web: &Http) -> (String, String) {
    let body = json!({ "username": "olivia", "password": OWNER_PASSWORD });
    let answer = web.call("POST", "/api/login", None, None, body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    (answer.session_cookie().unwrap(), answer.json()["csrf_token"].as_str().unwrap().to_owned())
}

async fn put(web: &Http, session: &(String, String), body: serde_json::Value) -> Answer {
    web.call("PUT", "/api/admin/certificate", Some(&session.0), Some(&session.1), body).await
}

fn refused(answer: &Answer, code: &str) {
    assert_eq!((answer.status, answer.error_code().as_str()), (400, code), "{}", answer.body);
}

/// What a TLS handshake with `alpn` offered shows: the leaf and the ALPN
/// protocol agreed, or why it failed.
async fn handshake(
    addr: SocketAddr,
    roots: rustls::RootCertStore,
    name: &str,
    alpn: &[&[u8]],
) -> Result<(CertificateDer<'static>, Option<Vec<u8>>), String> {
    let config = imbox_tests::web::client_config(roots, alpn);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, conn) = tls.get_ref();
    let leaf = conn.peer_certificates().unwrap()[0].clone().into_owned();
    Ok((leaf, conn.alpn_protocol().map(<[u8]>::to_vec)))
}

/// A browser-like client that trusts only the test CA, at `localhost`.
async fn as_browser(addr: SocketAddr, ca: &Ca) -> Result<CertificateDer<'static>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    handshake(addr, roots, "localhost", &[b"h2", b"http/1.1"]).await.map(|(leaf, _)| leaf)
}

/// The box key's certificate, as the data directory holds it.
fn box_certificate(dir: &Path) -> CertificateDer<'static> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(&std::fs::read(dir.join("identity.crt")).unwrap()).unwrap()
}

/// Clients that pin the box key still connect, log in and send: QUIC and
/// wss through the client library, and a raw TLS client offering the marker
/// (which must be served the box key's certificate and agree on http/1.1).
async fn pinned_clients_work(server: &Server, text: &str) {
    let options = ConnectOptions { pin: Some(server.fingerprint), ..ConnectOptions::default() };
    for url in [format!("quic://{}", server.quic.unwrap()), server.wss.clone().unwrap()] {
        let conn = Connection::connect_with(&ServerUrl::parse(&url).unwrap(), &options)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        conn.login("alice", PASSWORD, "pinned").await.unwrap();
        let sent = conn
            .request(Request::Send {
                to: Target::parse("bob"),
                id: format!("m{}", SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
                text: text.to_owned(),
                attachments: Vec::new(),
            })
            .await
            .unwrap();
        assert!(matches!(sent, Response::Sent { .. }), "{url}: {sent:?}");
        conn.close().await;
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add(box_certificate(&server.dir)).unwrap();
    let (leaf, alpn) =
        handshake(https_addr(server), roots, "imbox.local", &[imbox_protocol::PINNED_ALPN, b"http/1.1"])
            .await
            .unwrap();
    assert_eq!(leaf, box_certificate(&server.dir));
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]), "the marker is never selected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_certificate_is_served_to_browsers_while_pinned_clients_keep_the_box_key() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().to_owned();
    let mut server = Server::start_in(&dir, |_| {}).await;
    server.add_users(&["alice", "bob"]).await;
    let web = admin_http(&server);
    let session = claim(&server, &web).await;
    let ca = test_ca();
    assert!(as_browser(https_addr(&server), &ca).await.is_err(), "the box's own is not the CA's");

    let (chain, der, key) = leaf(&ca, -1, 90);
    let answer = put(&web, &session, json!({ "chain_pem": chain, "key_pem": key })).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let report = answer.json();
    assert_eq!(report["source"], "uploaded");
    assert_eq!(report["dns_names"], json!(["localhost"]));
    assert_eq!(report["ip_addresses"], json!(["127.0.0.1"]));
    assert!(report["issuer"].as_str().unwrap().contains("imbox test CA"), "{report}");
    assert!(report["warning"].is_null());
    let sha256 = report["sha256"].as_str().unwrap().to_owned();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("own-certificate.pem")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the key is readable by the box only");

    // Served at once, without a restart, to a client that trusts the CA.
    assert_eq!(as_browser(https_addr(&server), &ca).await.unwrap(), der);
    pinned_clients_work(&server, "after the upload").await;
    // The landing page and the status page show what browsers now see.
    let landing = Http::plain(server.url.trim_start_matches("ws://").parse().unwrap()).get("/", None).await;
    assert!(landing.body.contains(&sha256), "the landing page shows the browsers' certificate");
    assert!(landing.body.contains("id=\"certificate-own\""), "and says browsers trust it");
    assert!(!landing.body.contains("warns once"), "not that the browser warns");
    // A pinning client that does not offer the marker (written before it
    // existed) is shown the owner's certificate, and its pin fails: the
    // limitation docs/PROTOCOL.md states.
    let provider = rustls::crypto::ring::default_provider();
    let verifier = Arc::new(imbox_client::tls::PinnedKey::new(
        server.fingerprint,
        provider.signature_verification_algorithms,
    ));
    let mut old_client = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    old_client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(https_addr(&server)).await.unwrap();
    let refused = tokio_rustls::TlsConnector::from(Arc::new(old_client))
        .connect(ServerName::try_from("imbox.local").unwrap(), tcp)
        .await
        .unwrap_err();
    let why = refused.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(why, Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(_)))),
        "refused by the pin: {refused}"
    );
    let status = web.get("/api/admin/status", Some(&session.0)).await.json();
    assert_eq!(status["identity"]["certificate_sha256"], sha256.as_str());

    // A restart keeps it.
    server.stop().await;
    let mut server = Server::start_in(&dir, |_| {}).await;
    assert_eq!(as_browser(https_addr(&server), &ca).await.unwrap(), der);
    pinned_clients_work(&server, "after a restart").await;
    let web = admin_http(&server);
    let session = login(&web).await;
    let report = web.get("/api/admin/certificate", Some(&session.0)).await.json();
    assert_eq!(
        (report["source"].as_str(), report["sha256"].as_str()),
        (Some("uploaded"), Some(sha256.as_str()))
    );

    // DELETE: back to the box key's certificate for everyone.
    let answer =
        web.call("DELETE", "/api/admin/certificate", Some(&session.0), Some(&session.1), json!({})).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["source"], "box");
    assert!(!dir.join("own-certificate.pem").exists(), "the uploaded key is removed");
    let landing = Http::plain(server.url.trim_start_matches("ws://").parse().unwrap()).get("/", None).await;
    assert!(landing.body.contains("warns once") && !landing.body.contains("certificate-own"));
    let err = as_browser(https_addr(&server), &ca).await.unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    pinned_clients_work(&server, "after going back").await;

    // The same, as files in the data directory.
    let (chain, der, key) = leaf(&ca, -1, 20);
    std::fs::create_dir(dir.join("tls")).unwrap();
    std::fs::write(dir.join("tls/fullchain.pem"), format!("{chain}{}", ca.pem())).unwrap();
    std::fs::write(dir.join("tls/privkey.pem"), &key).unwrap();
    let answer = put(
        &web,
        &session,
        json!({ "chain_path": dir.join("tls/fullchain.pem"), "key_path": "tls/privkey.pem" }),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let report = answer.json();
    assert_eq!((report["source"].as_str(), report["chain_length"].as_u64()), (Some("files"), Some(2)));
    assert_eq!(report["warning"], "expires_soon", "20 days left is within the 30-day warning");
    assert_eq!(as_browser(https_addr(&server), &ca).await.unwrap(), der);
    pinned_clients_work(&server, "with files").await;
    server.stop().await;
    let server = Server::start_in(&dir, |_| {}).await;
    assert_eq!(as_browser(https_addr(&server), &ca).await.unwrap(), der, "the files are read again at start");
}

#[tokio::test]
async fn bad_certificates_are_refused_and_nothing_changes() {
    let server = Server::start().await;
    let web = admin_http(&server);
    let session = claim(&server, &web).await;
    let ca = test_ca();
    let (chain, _, key) = leaf(&ca, -1, 90);
    let (_, _, other_key) = leaf(&ca, -1, 90);
    let (old_chain, _, old_key) = leaf(&ca, -90, -1);

    refused(&put(&web, &session, json!({ "chain_pem": chain, "key_pem": other_key })).await, "key_mismatch");
    refused(&put(&web, &session, json!({ "chain_pem": "garbage", "key_pem": key })).await, "no_certificate");
    refused(&put(&web, &session, json!({ "chain_pem": chain, "key_pem": "garbage" })).await, "no_key");
    refused(
        &put(&web, &session, json!({ "chain_pem": old_chain, "key_pem": old_key })).await,
        "certificate_expired",
    );
    let answer = put(&web, &session, json!({ "chain_pem": chain })).await;
    assert_eq!((answer.status, answer.error_code().as_str()), (400, "bad_request"), "{}", answer.body);

    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("chain.pem"), &chain).unwrap();
    std::fs::write(outside.path().join("key.pem"), &key).unwrap();
    let paths =
        json!({ "chain_path": outside.path().join("chain.pem"), "key_path": outside.path().join("key.pem") });
    refused(&put(&web, &session, paths).await, "outside_data_dir");
    // A link inside that leads out is refused too.
    std::os::unix::fs::symlink(outside.path().join("key.pem"), server.dir.join("key.pem")).unwrap();
    std::fs::write(server.dir.join("chain.pem"), &chain).unwrap();
    let linked = json!({ "chain_path": "chain.pem", "key_path": "key.pem" });
    refused(&put(&web, &session, linked).await, "outside_data_dir");

    let report = web.get("/api/admin/certificate", Some(&session.0)).await.json();
    assert_eq!(report["source"], "box");
    assert!(!server.dir.join("own-certificate.json").exists());
    assert!(as_browser(https_addr(&server), &ca).await.is_err());
}

#[tokio::test]
async fn an_unusable_certificate_at_start_falls_back_to_the_box_key_and_says_so() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().to_owned();
    let ca = test_ca();
    let (chain, _, key) = leaf(&ca, -1, 90);
    std::fs::write(dir.join("chain.pem"), &chain).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    std::fs::write(
        dir.join("own-certificate.json"),
        json!({ "source": "files", "chain_path": "chain.pem", "key_path": "key.pem" }).to_string(),
    )
    .unwrap();
    // The key file is lost before the box starts.
    std::fs::remove_file(dir.join("key.pem")).unwrap();
    let server = Server::start_in(&dir, |_| {}).await;
    let web = admin_http(&server);
    let session = claim(&server, &web).await;
    let report = web.get("/api/admin/certificate", Some(&session.0)).await.json();
    assert_eq!(report["source"], "box");
    assert!(report["problem"].as_str().unwrap().contains("key.pem"), "{report}");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(box_certificate(&dir)).unwrap();
    let (served, _) = handshake(https_addr(&server), roots, "imbox.local", &[b"http/1.1"]).await.unwrap();
    assert_eq!(served, box_certificate(&dir), "browsers get the box's own");
}
