//! The box identity as clients meet it: the key is pinned, names and CAs do
//! not matter, the wrong key is refused with a clear error, pairing links
//! carry everything a phone needs, and ChaCha20-Poly1305 is preferred.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use imbox_client::{ClientError, ConnectOptions, Connection, ServerUrl};
use imbox_protocol::Fingerprint;
use imbox_tests::{bin, imboxd, Server, PASSWORD};

async fn connect(url: &str, pin: Fingerprint) -> Result<Connection, ClientError> {
    let options = ConnectOptions { pin: Some(pin), ..ConnectOptions::default() };
    Connection::connect_with(&ServerUrl::parse(url).unwrap(), &options).await
}

#[tokio::test]
async fn the_right_pin_works_although_no_name_matches_and_a_wrong_pin_is_refused() {
    let server = Server::start().await;
    server.add_users(&["alice"]).await;
    // The certificate names imbox.local and imbox; we connect to 127.0.0.1.
    let pem = std::fs::read_to_string(server.dir.join("identity.crt")).unwrap();
    assert!(!pem.is_empty());
    let urls = [format!("quic://{}", server.quic.unwrap()), server.wss.clone().unwrap()];
    for url in &urls {
        let conn = connect(url, server.fingerprint).await.unwrap();
        conn.login("alice", PASSWORD, "pinned").await.unwrap();

        let stranger = Fingerprint::of_spki(b"some other box");
        match connect(url, stranger).await {
            Err(ClientError::KeyMismatch { expected, seen, .. }) => {
                assert_eq!((expected, seen), (stranger, server.fingerprint));
            }
            other => panic!("{url}: expected a key mismatch, got {other:?}"),
        }
    }
    let err = connect(&urls[0], Fingerprint::of_spki(b"x")).await.unwrap_err().to_string();
    assert!(err.contains("paired with"), "{err}");
}

#[tokio::test]
async fn chacha20_poly1305_is_chosen_even_when_the_client_prefers_aes() {
    let server = Server::start().await;
    let pem = std::fs::read(server.dir.join("identity.crt")).unwrap();
    let cert =
        <rustls_pki_types::CertificateDer as rustls_pki_types::pem::PemObject>::from_pem_slice(&pem).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let mut provider = rustls::crypto::ring::default_provider();
    // AES first, as phones with AES hardware order them.
    provider.cipher_suites.sort_by_key(|s| s.suite() == rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    assert_ne!(provider.cipher_suites[0].suite(), rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = server.wss.clone().unwrap().trim_start_matches("wss://").to_owned();
    let suite = tokio::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(&https).unwrap();
        let name = rustls_pki_types::ServerName::try_from("imbox.local").unwrap();
        let mut tls = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: imbox\r\nConnection: close\r\n\r\n").unwrap();
        stream.flush().unwrap();
        tls.negotiated_cipher_suite().unwrap().suite()
    })
    .await
    .unwrap();
    assert_eq!(suite, rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pairing_link_registers_a_member_over_quic() {
    let server = Server::start().await;
    let data = server.dir.clone();
    let fingerprint = server.fingerprint;
    let quic = server.quic.unwrap();
    let profiles = tempfile::tempdir().unwrap();
    let dir = profiles.path().join("erin");
    tokio::task::spawn_blocking(move || {
        let mut cmd = imboxd(&data);
        let out = cmd.args(["invite", "create", "--uri"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let uri = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let parsed: imbox_protocol::PairingUri = uri.parse().unwrap();
        assert_eq!(parsed.fingerprint, fingerprint);
        assert_eq!(parsed.quic_port, Some(quic.port()));
        assert!(parsed.invite.is_some());

        let imbox = |args: &[&str]| {
            let mut cmd = Command::new(bin("imbox"));
            cmd.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .arg("--profile")
                .arg(&dir);
            cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
            child.wait_with_output().unwrap()
        };
        let paired = imbox(&["pair", &uri, "erin"]);
        assert!(paired.status.success(), "{}", String::from_utf8_lossy(&paired.stderr));
        let profile = std::fs::read_to_string(dir.join("profile.json")).unwrap();
        assert!(profile.contains("quic://") && profile.contains(&fingerprint.to_string()), "{profile}");
        let conversations = imbox(&["conversations"]);
        assert!(conversations.status.success(), "{}", String::from_utf8_lossy(&conversations.stderr));
        let again = imbox(&["pair", &uri, "frank"]);
        assert!(!again.status.success(), "a one-time invite worked twice");
        let wrong = imbox(&["--pin", &Fingerprint::of_spki(b"x").to_string(), "conversations"]);
        assert!(!wrong.status.success());
        assert!(String::from_utf8_lossy(&wrong.stderr).contains("paired with"));
    })
    .await
    .unwrap();
    let list = server.admin(imboxd::admin::AdminRequest::UserList).await;
    assert!(format!("{list:?}").contains("erin"));
}
