//! The client over QUIC and WebSocket-over-TLS against a small in-process
//! box: a real quinn endpoint and a real tokio-rustls listener on loopback,
//! with a self-signed rcgen certificate whose names match nothing, answering
//! the few requests these tests make. It refuses requests that are unsafe to
//! replay while a QUIC handshake is unconfirmed, as imboxd does. The
//! end-to-end tests against imboxd itself live in the `tests` crate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use imbox_client::protocol::stream::{length_prefixed, FrameBuffer};
use imbox_client::protocol::{
    ClientFrame, ErrorBody, ErrorCode, Fingerprint, Limits, PairingUri, Request, Response, ServerFrame,
    QUIC_ALPN,
};
use imbox_client::{Client, ClientError, ConnectOptions, Connection, Profile, ServerUrl, ZeroRtt};
use rcgen::PublicKeyData;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const PASSWORD: &str = "correct horse";
const INVITE: &str = "invite-1";
const TOKEN: &str = "device-7-token";

/// The box's identity: its key and a self-signed certificate for it.
struct Identity {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
    fingerprint: Fingerprint,
}

impl Identity {
    fn new() -> Identity {
        let key = rcgen::KeyPair::generate().expect("P-256 key");
        let mut params =
            rcgen::CertificateParams::new(vec!["nothing.invalid".to_owned()]).expect("certificate params");
        // Expired long ago: a box may have no clock, so dates must not matter.
        params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        params.not_after = rcgen::date_time_ymd(2002, 1, 1);
        let cert = params.self_signed(&key).expect("self-signed certificate").der().clone();
        let fingerprint = Fingerprint::of_spki(&key.subject_public_key_info());
        Identity { cert, key: key.serialize_der(), fingerprint }
    }

    fn rustls_config(
        &self,
        alpn: &[u8],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> rustls::ServerConfig {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(vec![self.cert.clone()], key)
                .expect("certificate and key");
        config.alpn_protocols = vec![alpn.to_vec()];
        config
    }
}

#[derive(Default)]
struct Counters {
    /// Requests refused with `not_in_early_data`.
    refused_early: AtomicU32,
    registrations: AtomicU32,
    quic_connections: Mutex<Vec<quinn::Connection>>,
}

/// A box serving QUIC and wss on loopback.
struct TestBox {
    quic: SocketAddr,
    wss: SocketAddr,
    fingerprint: Fingerprint,
    counters: Arc<Counters>,
    endpoint: quinn::Endpoint,
}

impl TestBox {
    async fn start() -> TestBox {
        TestBox::start_as(&Identity::new()).await
    }

    async fn start_as(identity: &Identity) -> TestBox {
        let counters = Arc::new(Counters::default());

        let mut tls = identity.rustls_config(QUIC_ALPN, &[&rustls::version::TLS13]);
        // QUIC allows only 0 or u32::MAX; the latter enables 0-RTT.
        tls.max_early_data_size = u32::MAX;
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("QUIC TLS config");
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.max_concurrent_bidi_streams(1u8.into()).max_concurrent_uni_streams(0u8.into());
        config.transport_config(Arc::new(transport));
        let endpoint =
            quinn::Endpoint::server(config, "127.0.0.1:0".parse().expect("addr")).expect("QUIC endpoint");
        let quic = endpoint.local_addr().expect("QUIC addr");
        tokio::spawn(accept_quic(endpoint.clone(), Arc::clone(&counters)));

        let tls = identity.rustls_config(b"http/1.1", rustls::ALL_VERSIONS);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let wss = listener.local_addr().expect("wss addr");
        tokio::spawn(accept_wss(
            listener,
            tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
            Arc::clone(&counters),
        ));

        TestBox { quic, wss, fingerprint: identity.fingerprint, counters, endpoint }
    }

    fn quic_url(&self) -> String {
        format!("quic://{}", self.quic)
    }

    fn wss_url(&self) -> String {
        format!("wss://{}", self.wss)
    }

    fn pairing_uri(&self) -> PairingUri {
        PairingUri {
            hosts: vec!["127.0.0.1".into()],
            quic_port: Some(self.quic.port()),
            wss_port: Some(self.wss.port()),
            fingerprint: self.fingerprint,
            invite: Some(INVITE.into()),
            name: Some("Test box".into()),
        }
    }
}

async fn accept_quic(endpoint: quinn::Endpoint, counters: Arc<Counters>) {
    while let Some(incoming) = endpoint.accept().await {
        let counters = Arc::clone(&counters);
        tokio::spawn(async move {
            let Ok(connecting) = incoming.accept() else { return };
            // On a server this always succeeds; the future says when the
            // handshake is confirmed, before which requests may be replays.
            let Ok((connection, confirmed)) = connecting.into_0rtt() else { return };
            counters.quic_connections.lock().expect("lock").push(connection.clone());
            let handshake_done = Arc::new(AtomicBool::new(false));
            tokio::spawn({
                let handshake_done = Arc::clone(&handshake_done);
                async move {
                    confirmed.await;
                    handshake_done.store(true, Ordering::SeqCst);
                }
            });
            let Ok((mut send, mut recv)) = connection.accept_bi().await else { return };
            let mut frames = FrameBuffer::new(64 * 1024);
            loop {
                while let Ok(Some(bytes)) = frames.next_frame() {
                    let early = !handshake_done.load(Ordering::SeqCst);
                    let Some(answer) = answer(&bytes, early, &counters) else { return };
                    if send.write_all(&length_prefixed(&answer.encode())).await.is_err() {
                        return;
                    }
                }
                match recv.read_chunk(64 * 1024, true).await {
                    Ok(Some(chunk)) => frames.extend(&chunk.bytes),
                    _ => return,
                }
            }
        });
    }
}

async fn accept_wss(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, counters: Arc<Counters>) {
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        let counters = Arc::clone(&counters);
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else { return };
            while let Some(Ok(WsMessage::Binary(bytes))) = ws.next().await {
                let Some(answer) = answer(&bytes, false, &counters) else { return };
                if ws.send(WsMessage::Binary(answer.encode().into())).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn answer(bytes: &[u8], early: bool, counters: &Counters) -> Option<ServerFrame> {
    let ClientFrame { id, req } = ClientFrame::decode(bytes).ok()?;
    let ok = |body| Some(ServerFrame::Ok { id, body });
    let err = |code, message: &str| Some(ServerFrame::Err { id, error: ErrorBody::new(code, message) });
    if early && !req.is_replay_safe() {
        counters.refused_early.fetch_add(1, Ordering::SeqCst);
        return err(ErrorCode::NotInEarlyData, "not in early data");
    }
    let authenticated = |user: String, token| Response::Authenticated {
        user,
        device: 7,
        token,
        cursor: 0,
        admin: false,
        online: Vec::new(),
    };
    match req {
        Request::Hello { .. } => ok(Response::Welcome {
            version: 1,
            server: "test-box".into(),
            limits: Limits {
                max_frame_bytes: 64 * 1024,
                max_text_bytes: 4096,
                max_sync_page: 100,
                max_history_page: 100,
                sends_per_second: 100,
                max_attachment_bytes: 0,
                max_group_members: 100,
            },
        }),
        Request::Ping => ok(Response::Pong),
        Request::Login { username, password, .. } if password == PASSWORD => {
            ok(authenticated(username, Some(TOKEN.into())))
        }
        Request::Login { .. } => err(ErrorCode::BadCredentials, "wrong user name or password"),
        Request::Register { username, password, invite, .. } if invite == INVITE && password == PASSWORD => {
            counters.registrations.fetch_add(1, Ordering::SeqCst);
            ok(authenticated(username, Some(TOKEN.into())))
        }
        Request::Register { .. } => err(ErrorCode::BadCredentials, "unknown invite"),
        Request::Resume { token } if token == TOKEN => ok(authenticated("alice".into(), None)),
        Request::Resume { .. } => err(ErrorCode::BadCredentials, "unknown token"),
        Request::Conversations => ok(Response::Conversations { conversations: Vec::new() }),
        _ => err(ErrorCode::UnknownRequest, "not in the test box"),
    }
}

fn pinned(pin: Fingerprint) -> ConnectOptions {
    ConnectOptions { pin: Some(pin), connect_timeout: Duration::from_secs(5), ..ConnectOptions::default() }
}

async fn connect(url: &str, pin: Fingerprint) -> Result<Connection, ClientError> {
    Connection::connect_with(&ServerUrl::parse(url)?, &pinned(pin)).await
}

#[tokio::test]
async fn quic_connects_to_the_pinned_box() {
    let test_box = TestBox::start().await;
    let conn = Connection::connect_pinned(&test_box.quic_url(), test_box.fingerprint).await.expect("connect");
    assert_eq!(conn.welcome().server, "test-box");
    assert_eq!(conn.request(Request::Ping).await.expect("ping"), Response::Pong);
    // Not safe to replay, but this connection used no early data.
    let auth = conn.login("alice", PASSWORD, "test").await.expect("login");
    assert_eq!(auth.token.as_deref(), Some(TOKEN));
    assert_eq!(conn.zero_rtt(), ZeroRtt::NotAttempted, "a first connection has no session ticket");
    assert!(conn.local_addr().is_some_and(|addr| addr.port() != 0));
    conn.close().await;
}

#[tokio::test]
async fn wss_connects_to_the_pinned_box() {
    let test_box = TestBox::start().await;
    let conn = connect(&test_box.wss_url(), test_box.fingerprint).await.expect("connect");
    assert_eq!(conn.url().to_string(), format!("{}/ws", test_box.wss_url()));
    assert_eq!(conn.request(Request::Ping).await.expect("ping"), Response::Pong);
    assert_eq!(conn.zero_rtt(), ZeroRtt::NotAttempted);
    let err = conn.rebind().expect_err("TCP cannot migrate");
    assert!(matches!(err, ClientError::RebindUnsupported { .. }), "{err}");
    assert_eq!(conn.request(Request::Ping).await.expect("still usable"), Response::Pong);
    conn.close().await;
}

#[tokio::test]
async fn another_key_is_refused_on_both_transports() {
    let test_box = TestBox::start().await;
    let paired = Identity::new().fingerprint;
    for url in [test_box.quic_url(), test_box.wss_url()] {
        let err = connect(&url, paired).await.expect_err("another box");
        match &err {
            ClientError::KeyMismatch { expected, seen, .. } => {
                assert_eq!((*expected, *seen), (paired, test_box.fingerprint), "{url}");
            }
            other => panic!("{url}: not a key mismatch: {other}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(&paired.to_string()) && text.contains(&test_box.fingerprint.to_string()),
            "{text}"
        );
        assert!(text.contains("pair again"), "{text}");
        // The right key still works afterwards: nothing stale was kept.
        let conn = connect(&url, test_box.fingerprint).await.expect("the right pin");
        conn.close().await;
    }
}

#[tokio::test]
async fn tls_without_a_pin_is_refused_before_connecting() {
    let test_box = TestBox::start().await;
    for url in [test_box.quic_url(), test_box.wss_url()] {
        let err = Connection::connect(&url).await.expect_err("no pin");
        assert!(matches!(err, ClientError::NoPin { .. }), "{url}: {err}");
    }
}

#[tokio::test]
async fn a_second_quic_connection_in_the_process_uses_0rtt() {
    let test_box = TestBox::start().await;
    let first = connect(&test_box.quic_url(), test_box.fingerprint).await.expect("first connection");
    // A round trip after the handshake, so that the session tickets the box
    // sends right after it have arrived.
    first.request(Request::Ping).await.expect("ping");
    first.close().await;

    let second = connect(&test_box.quic_url(), test_box.fingerprint).await.expect("second connection");
    assert_ne!(second.zero_rtt(), ZeroRtt::NotAttempted, "no early data was sent");
    // Not safe to replay: held until the handshake is confirmed, so the box
    // never has to refuse it.
    let auth = second.login("alice", PASSWORD, "test").await.expect("login");
    assert_eq!(auth.user, "alice");
    assert_eq!(second.zero_rtt_settled().await, ZeroRtt::Accepted);
    assert_eq!(test_box.counters.refused_early.load(Ordering::SeqCst), 0);
    second.close().await;
}

#[tokio::test]
async fn refused_early_data_is_sent_again() {
    // Two boxes with the same key: the second knows nothing of the tickets
    // the first issued, so it refuses the early data.
    let identity = Identity::new();
    let first_box = TestBox::start_as(&identity).await;
    let first = connect(&first_box.quic_url(), identity.fingerprint).await.expect("first box");
    first.request(Request::Ping).await.expect("ping");
    first.close().await;
    first_box.endpoint.close(0u32.into(), b"restart");

    let second_box = TestBox::start_as(&identity).await;
    let conn = connect(&second_box.quic_url(), identity.fingerprint).await.expect("second box");
    assert_eq!(conn.welcome().server, "test-box");
    assert_eq!(conn.zero_rtt_settled().await, ZeroRtt::Rejected);
    assert_eq!(conn.request(Request::Ping).await.expect("ping"), Response::Pong);
    conn.login("alice", PASSWORD, "test").await.expect("login");
    conn.close().await;
}

#[tokio::test]
async fn a_rebound_quic_connection_keeps_working() {
    let test_box = TestBox::start().await;
    let conn = connect(&test_box.quic_url(), test_box.fingerprint).await.expect("connect");
    conn.request(Request::Ping).await.expect("ping");
    let before = conn.local_addr().expect("local address");

    conn.rebind().expect("rebind");
    let after = conn.local_addr().expect("local address");
    assert_ne!(before.port(), after.port());
    for _ in 0..3 {
        assert_eq!(conn.request(Request::Ping).await.expect("ping after rebind"), Response::Pong);
    }
    // The box follows the connection to its new address.
    let seen_by_box = test_box.counters.quic_connections.lock().expect("lock")[0].remote_address();
    assert_eq!(seen_by_box.port(), after.port());
    assert!(!conn.is_closed());
    conn.close().await;
}

#[tokio::test]
async fn pairing_registers_over_quic_and_remembers_the_box() {
    let test_box = TestBox::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let client = Client::pair(
        dir.path(),
        &test_box.pairing_uri(),
        &ConnectOptions::default(),
        "alice",
        PASSWORD,
        "phone",
    )
    .await
    .expect("pair");
    client.close().await;
    let profile = Profile::load(dir.path()).expect("profile");
    assert_eq!(profile.server, test_box.quic_url(), "QUIC is tried first");
    assert_eq!(profile.pin, Some(test_box.fingerprint.to_string()));
    assert_eq!(profile.token, TOKEN);
    assert_eq!(test_box.counters.registrations.load(Ordering::SeqCst), 1);

    // A later run connects with the stored pin and resumes.
    let mut client = Client::open(dir.path()).expect("open");
    assert_eq!(client.pin(), Some(test_box.fingerprint));
    assert!(client.conversations().await.expect("conversations").is_empty());
    client.close().await;
}

#[tokio::test]
async fn pairing_falls_back_to_wss_when_quic_does_not_answer() {
    let test_box = TestBox::start().await;
    // A UDP port that swallows everything.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut uri = test_box.pairing_uri();
    uri.quic_port = Some(silent.local_addr().expect("addr").port());
    let dir = tempfile::tempdir().expect("temp dir");
    let options = ConnectOptions { connect_timeout: Duration::from_millis(500), ..ConnectOptions::default() };
    let client = Client::pair(dir.path(), &uri, &options, "alice", PASSWORD, "phone").await.expect("pair");
    client.close().await;
    assert_eq!(Profile::load(dir.path()).expect("profile").server, format!("{}/ws", test_box.wss_url()));
}

#[tokio::test]
async fn pairing_with_the_wrong_key_or_no_invite_fails_clearly() {
    let test_box = TestBox::start().await;
    let dir = tempfile::tempdir().expect("temp dir");

    let mut uri = test_box.pairing_uri();
    uri.invite = None;
    let err = Client::pair(dir.path(), &uri, &ConnectOptions::default(), "alice", PASSWORD, "phone")
        .await
        .expect_err("no invite");
    assert!(matches!(err, ClientError::NoInvite), "{err}");

    let mut uri = test_box.pairing_uri();
    uri.fingerprint = Identity::new().fingerprint;
    let err = Client::pair(dir.path(), &uri, &ConnectOptions::default(), "alice", PASSWORD, "phone")
        .await
        .expect_err("another key");
    let ClientError::NoAddressWorked { errors } = &err else { panic!("unexpected error {err}") };
    assert_eq!(errors.len(), 2, "{err}");
    assert!(errors.iter().all(|e| matches!(e, ClientError::KeyMismatch { .. })), "{err}");
    assert_eq!(test_box.counters.registrations.load(Ordering::SeqCst), 0);
    assert!(matches!(Profile::load(dir.path()), Err(ClientError::NoProfile { .. })));
}

/// The `imbox` binary against the test box.
mod cli {
    use super::*;
    use std::process::{Command, Output, Stdio};

    async fn imbox(args: &[&str], password: Option<&str>) -> Output {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let password = password.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let mut command = Command::new(env!("CARGO_BIN_EXE_imbox"));
            command
                .args(&args)
                .env_remove("IMBOX_SERVER")
                .env_remove("IMBOX_PROFILE")
                .env_remove("IMBOX_PIN")
                .env_remove("IMBOX_PASSWORD")
                .stdin(Stdio::null());
            if let Some(password) = password {
                command.env("IMBOX_PASSWORD", password);
            }
            command.output().expect("run imbox")
        })
        .await
        .expect("join")
    }

    fn stderr(out: &Output) -> String {
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    #[tokio::test]
    async fn pair_then_use_the_profile() {
        let test_box = TestBox::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let profile = dir.path().to_str().expect("utf-8 path").to_owned();
        let uri = test_box.pairing_uri().to_string();

        let out = imbox(&["--profile", &profile, "pair", &uri, "alice"], Some(PASSWORD)).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let stored = Profile::load(dir.path()).expect("profile");
        assert_eq!(
            (stored.server.as_str(), stored.pin),
            (test_box.quic_url().as_str(), Some(test_box.fingerprint.to_string()))
        );

        let out = imbox(&["--profile", &profile, "conversations"], None).await;
        assert!(out.status.success(), "{}", stderr(&out));

        // A --pin for another key overrides the stored one, and is refused.
        let other = Identity::new().fingerprint.to_string();
        let out = imbox(&["--profile", &profile, "--pin", &other, "conversations"], None).await;
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains("not the box you paired with"), "{}", stderr(&out));
    }

    #[tokio::test]
    async fn login_stores_the_pin_and_refuses_tls_without_one() {
        let test_box = TestBox::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let profile = dir.path().to_str().expect("utf-8 path").to_owned();
        let server = test_box.wss_url();

        let out =
            imbox(&["--server", &server, "--profile", &profile, "login", "alice"], Some(PASSWORD)).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("no key fingerprint to check"), "{}", stderr(&out));

        let pin = test_box.fingerprint.to_hex();
        let out = imbox(
            &["--server", &server, "--pin", &pin, "--profile", &profile, "login", "alice"],
            Some(PASSWORD),
        )
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(Profile::load(dir.path()).expect("profile").pin, Some(test_box.fingerprint.to_string()));

        let out = imbox(&["--profile", &profile, "--pin", "sha256:nope", "conversations"], None).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("is not a key fingerprint"), "{}", stderr(&out));

        let out = imbox(&["--profile", &profile, "pair", "imbox:pair?v=1", "alice"], Some(PASSWORD)).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("pairing URI has no valid"), "{}", stderr(&out));
    }
}
