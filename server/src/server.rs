//! Starting and stopping the daemon: [`start`] binds everything and returns a
//! [`Running`] server; [`run`] is start-and-wait for `main`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::AdminContext;
use crate::config::Config;
use crate::control;
use crate::identity::{CertResolver, Identity, Validity};
use crate::pairing::PairingTemplate;
use crate::router::Router;
use crate::session::limits::{LoginLimit, SendLimit};
use crate::session::password::Passwords;
use crate::session::Hub;
use crate::store::{Checkpoints, Prune, PruneFrom, PruneReport, Store, StoreError, StoreOptions, DAY_MS};
use crate::transport::connection::ConnectionLimits;
use crate::transport::quic::{self, QuicTuning};
use crate::transport::websocket::Heartbeat;
use crate::transport::{http, HttpLimits, ListenerContext, OpenConnections};
use crate::web::{Listeners, Web, WebParts};
use tokio_rustls::TlsAcceptor;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be created or secured.
    #[error("cannot prepare the data directory {path}: {source}; check that it is writable by this user")]
    DataDir { path: PathBuf, source: std::io::Error },
    /// The store could not be opened.
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    /// The media directory could not be opened.
    #[error("cannot open the attachments in the data directory: {0}")]
    Media(#[from] crate::media::MediaError),
    /// Push could not start (its key, its extra CA file).
    #[error("cannot start push: {0}")]
    Push(#[from] crate::push::PushError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}; is another program using that port?")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// The box identity could not be loaded or made.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// TLS or QUIC settings were refused.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The control socket could not be created.
    #[error("cannot create the control socket {path}: {source}")]
    Control { path: PathBuf, source: std::io::Error },
    /// The database writer failed in a way that only a restart repairs.
    #[error(
        "stopped because the database writer failed ({0}); start imboxd again (systemd does): \
         it applies the write-ahead log, and nothing acknowledged is lost. If this repeats, \
         check the data disk"
    )]
    WriterFailed(String),
}

/// A started server.
#[derive(Debug)]
pub struct Running {
    /// The HTTP (WebSocket) addresses actually bound.
    pub http: Vec<SocketAddr>,
    /// The HTTPS (wss://) addresses actually bound.
    pub https: Vec<SocketAddr>,
    /// The QUIC (UDP) addresses actually bound.
    pub quic: Vec<SocketAddr>,
    /// The box identity's fingerprint, which clients pin.
    pub fingerprint: imbox_protocol::Fingerprint,
    /// Cancel to shut down.
    pub shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The database, for tests and tools that inspect a running box.
    pub store: Store,
    control_path: PathBuf,
}

impl Running {
    /// The WebSocket URL of the first HTTP listener.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}", self.http[0], imbox_protocol::WEBSOCKET_PATH)
    }

    /// The URL of the first HTTPS listener's WebSocket, if any.
    pub fn wss_url(&self) -> Option<String> {
        self.https.first().map(|a| format!("wss://{a}{}", imbox_protocol::WEBSOCKET_PATH))
    }

    /// The URL of the first QUIC listener, if any.
    pub fn quic_url(&self) -> Option<String> {
        self.quic.first().map(|a| format!("quic://{a}"))
    }

    /// Waits for shutdown, then stops accepting, tells every session, lets
    /// them finish, commits what is queued and returns. A failed writer
    /// shuts down too; [`Running::finish`] says so.
    pub async fn wait(self) {
        if let Err(e) = self.finish().await {
            tracing::error!(error = %e, "imboxd stopped");
        }
    }

    /// As [`Running::wait`], and an error when the writer failed: the
    /// daemon must then exit with a failure so that systemd restarts it (the
    /// restart applies the write-ahead log). Without this the writer would
    /// refuse every write while reads, and so the watchdog, went on.
    pub async fn finish(self) -> Result<(), ServerError> {
        let failed = self.store.health().failed();
        tokio::select! {
            () = self.shutdown.cancelled() => {}
            () = failed.cancelled() => {
                tracing::error!("the database writer failed: shutting down so that imboxd is restarted");
                self.shutdown.cancel();
            }
        }
        tracing::info!("shutting down");
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), self.tasks.wait()).await.is_err() {
            tracing::warn!("some connections did not finish within 10 s");
        }
        self.store.shutdown().await;
        let _ = std::fs::remove_file(&self.control_path);
        tracing::info!("stopped");
        let health = self.store.health();
        match health.state() {
            crate::store::WriterState::Failed => {
                Err(ServerError::WriterFailed(health.reason().unwrap_or_default()))
            }
            _ => Ok(()),
        }
    }
}

/// Creates the data directory, readable only by this user.
pub fn prepare_data_dir(config: &Config) -> Result<(), ServerError> {
    let dir = &config.data_dir;
    let fail = |source| ServerError::DataDir { path: dir.clone(), source };
    std::fs::create_dir_all(dir).map_err(fail)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    Ok(())
}

/// Opens the store, binds every listener and starts serving.
pub async fn start(config: Config) -> Result<Running, ServerError> {
    prepare_data_dir(&config)?;
    let router = Arc::new(Router::new(config.limits.session_queue as usize));
    let options = StoreOptions {
        commit_batch_max: config.storage.commit_batch_max as usize,
        write_queue: config.storage.write_queue as usize,
        cache_bytes: (config.storage.cache_mib as usize) << 20,
        checkpoints: Checkpoints {
            idle: std::time::Duration::from_millis(config.storage.checkpoint_idle_ms),
            interval: std::time::Duration::from_millis(config.storage.checkpoint_interval_ms),
            log_max_bytes: u64::from(config.storage.log_max_mib) << 20,
        },
        min_free_bytes: u64::from(config.storage.min_free_mib) << 20,
        ..StoreOptions::default()
    };
    let store = Store::open(&config.database_path(), options, router.clone())?;
    // The name the owner gave the box wins over the configured default.
    let box_name = store.box_settings()?.name.unwrap_or_else(|| config.box_name.clone());
    let l = &config.limits;
    let media = Arc::new(crate::media::Media::open(
        crate::media::media_dir(&config),
        store.clone(),
        crate::media::MediaLimits::from_config(&config),
    )?);
    let push = if config.push.enabled {
        let pusher = Arc::new(crate::push::Pusher::open(&config.push, &config.data_dir, store.clone())?);
        router.attach_push(pusher.clone());
        Some(pusher)
    } else {
        None
    };
    let hub = Arc::new(Hub {
        store: store.clone(),
        router,
        limits: config.limits.clone(),
        passwords: Passwords::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
        logins: LoginLimit::new(l.login_attempts_per_minute),
        sends: SendLimit::new(l.sends_per_second, l.send_burst),
        max_attachment_bytes: u64::from(config.media.max_file_mib) << 20,
        media: media.clone(),
        server_name: std::sync::RwLock::new(box_name.clone()),
        push: push.clone(),
    });

    let validity = Validity {
        days: config.identity.certificate_days,
        renew_before_days: config.identity.renew_before_days,
    };
    let identity =
        Identity::load_or_create(&config.identity_key_path(), &config.identity_cert_path(), validity)?;
    let fingerprint = identity.fingerprint();
    let resolver = Arc::new(CertResolver::new(identity.certified_key()?));
    let https_certs = Arc::new(https_certificates(&config, resolver.clone()));

    // Bind everything before serving anything, so that a port in use stops
    // start-up with nothing half-running.
    let mut http_listeners = Vec::new();
    for &addr in &config.http.listen {
        http_listeners.push(bind_tcp(addr).await?);
    }
    let mut https_listeners = Vec::new();
    for &addr in &config.https.listen {
        https_listeners.push(bind_tcp(addr).await?);
    }
    let mut quic_endpoints = Vec::new();
    if !config.quic.listen.is_empty() {
        let quic_server = quic_server_config(&config, resolver.clone())?;
        for &addr in &config.quic.listen {
            quic_endpoints.push(bind_quic(addr, quic_server.clone())?);
        }
    }
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let control_path = config.control_socket_path();
    let quic_bound: Vec<SocketAddr> = quic_endpoints.iter().map(|(_, a)| *a).collect();
    let https_bound: Vec<SocketAddr> = https_listeners.iter().map(|(_, a)| *a).collect();
    let http_bound: Vec<SocketAddr> = http_listeners.iter().map(|(_, a)| *a).collect();
    let pairing =
        PairingTemplate::new(&config.pairing.hosts, &quic_bound, &https_bound, fingerprint, &box_name);
    let admin = Arc::new(AdminContext {
        store: store.clone(),
        pairing: pairing.clone(),
        passwords: hub.passwords.clone(),
    });
    control::listen(&control_path, admin, shutdown.clone(), &tasks)
        .map_err(|source| ServerError::Control { path: control_path.clone(), source })?;
    tasks.spawn(crate::identity::renew_daily(identity, validity, resolver.clone(), shutdown.clone()));
    tasks.spawn(crate::own_cert::reload_periodically(
        crate::own_cert::OwnCertFiles::new(&config.data_dir),
        https_certs.clone(),
        shutdown.clone(),
    ));

    let open = Arc::new(OpenConnections::default());
    let web = Arc::new(Web::new(
        &config,
        WebParts {
            hub: hub.clone(),
            pairing,
            certs: https_certs.clone(),
            fingerprint,
            open: open.clone(),
            listeners: Listeners { http: http_bound, https: https_bound.clone(), quic: quic_bound.clone() },
        },
    ));
    if let Some(code) =
        crate::web::claim::prepare(&store, web.claim_file(), &config.setup.preseeded_claim_file).await?
    {
        let setup = https_bound.first().map_or_else(
            || "(HTTPS is off: set https.listen to claim it)".to_owned(),
            |a| format!("https://{a}/setup"),
        );
        tracing::info!(
            "this box has no owner yet: open {setup} and enter the claim code {} (also in {})",
            code.grouped(),
            web.claim_file().display()
        );
    }
    tasks.spawn(crate::web::status::sample(web.clone(), shutdown.clone()));
    if let Some(pusher) = push {
        tasks.spawn(pusher.run(shutdown.clone()));
    }
    tasks.spawn(crate::media::collect::periodically(media, shutdown.clone()));
    tasks.spawn(prune_periodically(store.clone(), PruneSchedule::from_config(&config), shutdown.clone()));

    let ctx = Arc::new(ListenerContext {
        hub,
        limits: ConnectionLimits {
            max_inflight: l.max_inflight_requests as usize,
            handshake_timeout: Duration::from_millis(l.handshake_timeout_ms),
            write_timeout: Duration::from_millis(l.write_timeout_ms),
        },
        max_frame: l.max_frame_bytes as usize,
        shutdown: shutdown.clone(),
        tasks: tasks.clone(),
        connections: Arc::new(Semaphore::new(l.max_connections as usize)),
        open,
        web,
        http: HttpLimits {
            request_timeout: Duration::from_millis(config.http.request_timeout_ms),
            heartbeat: Heartbeat {
                interval: Duration::from_millis(config.http.ping_interval_ms),
                timeout: Duration::from_millis(config.http.ping_timeout_ms),
            },
        },
    });
    let ws = imbox_protocol::WEBSOCKET_PATH;
    let mut http_addrs = Vec::new();
    for (listener, local) in http_listeners {
        tracing::info!("listening on http://{local} (WebSocket ws://{local}{ws})");
        http_addrs.push(local);
        tasks.spawn(http::accept_loop(listener, ctx.clone(), None));
    }
    let mut https_addrs = Vec::new();
    if !https_listeners.is_empty() {
        let acceptor =
            TlsAcceptor::from(Arc::new(crate::tls::server_config(https_certs, &[b"http/1.1"], false)?));
        for (listener, local) in https_listeners {
            tracing::info!("listening on https://{local} (WebSocket wss://{local}{ws})");
            https_addrs.push(local);
            tasks.spawn(http::accept_loop(listener, ctx.clone(), Some(acceptor.clone())));
        }
    }
    let mut quic_addrs = Vec::new();
    for (endpoint, local) in quic_endpoints {
        tracing::info!("listening on quic://{local}");
        quic_addrs.push(local);
        tasks.spawn(quic::accept_loop(endpoint, ctx.clone()));
    }
    tracing::info!(identity = %fingerprint, "box identity");
    // Tell systemd we are ready; outside systemd this does nothing.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let mut watchdog_usec = 0;
    if sd_notify::watchdog_enabled(false, &mut watchdog_usec) {
        tasks.spawn(watchdog(store.clone(), Duration::from_micros(watchdog_usec / 2), shutdown.clone()));
    }
    Ok(Running {
        http: http_addrs,
        https: https_addrs,
        quic: quic_addrs,
        fingerprint,
        shutdown,
        tasks,
        store,
        control_path,
    })
}

/// The HTTPS certificates: the box key's, and the owner's own if one is
/// chosen and usable. One that is not is logged and reported on the settings
/// page, and the box key's is served: a broken certificate file must not stop
/// the box.
fn https_certificates(config: &Config, box_cert: Arc<CertResolver>) -> crate::tls::HttpsCertificates {
    let files = crate::own_cert::OwnCertFiles::new(&config.data_dir);
    match files.load(time::OffsetDateTime::now_utc()) {
        Ok(own) => {
            if let Some(own) = &own {
                tracing::info!(subject = %own.info.subject, sha256 = %own.info.sha256, "HTTPS serves the owner's certificate to browsers");
            }
            crate::tls::HttpsCertificates::new(box_cert, own)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the owner's certificate cannot be used; HTTPS serves the box's own");
            let certs = crate::tls::HttpsCertificates::new(box_cert, None);
            certs.set_problem(e.to_string());
            certs
        }
    }
}

/// Pings systemd's watchdog while the runtime schedules tasks, the database
/// answers reads and the writer's heartbeat is fresh; a hung daemon or a
/// stuck writer stops pinging and systemd restarts it.
async fn watchdog(store: Store, every: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(100)));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let writer = store.health();
        if !writer.alive() {
            tracing::error!(
                state = ?writer.state(),
                heartbeat_age_ms = writer.heartbeat_age().as_millis() as u64,
                "the database writer is stuck or failed; not pinging the watchdog"
            );
            continue;
        }
        match store.stream_head() {
            Ok(_) => {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
            Err(e) => tracing::error!(error = %e, "database unreadable; not pinging the watchdog"),
        }
    }
}

/// When and how pruning runs (see `store/prune.rs`).
#[derive(Debug, Clone, Copy)]
struct PruneSchedule {
    /// After start-up, once the box has settled.
    first: Duration,
    /// Between complete rounds.
    every: Duration,
    device_inactive_ms: u64,
    retention_days: u32,
}

impl PruneSchedule {
    fn from_config(config: &Config) -> PruneSchedule {
        PruneSchedule {
            first: Duration::from_secs(30),
            every: Duration::from_secs(600),
            device_inactive_ms: u64::from(config.storage.device_inactive_days).saturating_mul(DAY_MS),
            retention_days: config.storage.retention_days,
        }
    }
}

/// The most rows one prune op deletes: at about a microsecond or two a row,
/// a few milliseconds added to the batch that carries it.
const PRUNE_MAX_ROWS: u32 = 5000;

/// Prunes in rounds: a round is a series of bounded ops, each queued as
/// soon as the previous one said work remains (other writes queued
/// meanwhile go between them), then a pause. A refused op (disk full, data
/// moving, overloaded) is tried again at the next round, from where it was.
async fn prune_periodically(store: Store, schedule: PruneSchedule, shutdown: CancellationToken) {
    let mut wait = schedule.first;
    let mut from = PruneFrom::default();
    let mut round = PruneReport::default();
    let mut ops = 0u64;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let op = Prune {
            device_inactive_ms: schedule.device_inactive_ms,
            retention_days: schedule.retention_days,
            max_rows: PRUNE_MAX_ROWS,
            from,
        };
        let report = match store.prune(op).await {
            Ok(report) => report,
            Err(e) => {
                let retry_in_s = schedule.every.as_secs();
                tracing::warn!(error = %e, retry_in_s, "pruning was refused; it is tried again later");
                wait = schedule.every;
                continue;
            }
        };
        ops += 1;
        round.log_rows += report.log_rows;
        round.spans += report.spans;
        round.messages += report.messages;
        round.events += report.events;
        tracing::debug!(?report, "prune op");
        if let Some(next) = report.next {
            from = next;
            wait = Duration::ZERO;
            continue;
        }
        if round.deleted() > 0 {
            tracing::info!(
                log_rows = round.log_rows,
                spans = round.spans,
                messages = round.messages,
                events = round.events,
                ops,
                "pruned what no device needs and what is past its retention"
            );
        }
        (from, round, ops, wait) = (PruneFrom::default(), PruneReport::default(), 0, schedule.every);
    }
}

/// The accept queue of each TCP listener (the kernel caps it at
/// net.core.somaxconn): when thousands of phones reconnect at once after a
/// network outage, a short queue drops their SYNs and delays them by seconds.
const LISTEN_BACKLOG: u32 = 4096;

/// The kernel buffers of each QUIC socket: every phone's packets go through
/// one UDP socket, and the default (about 200 KiB) overflows during a
/// reconnect storm, dropping handshakes. The kernel caps it at
/// net.core.rmem_max / wmem_max, which the appliance raises.
const QUIC_SOCKET_BUFFER: usize = 8 << 20;

async fn bind_tcp(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let fail = |source| ServerError::Bind { addr, source };
    let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(fail)?;
    socket.set_reuseaddr(true).map_err(fail)?;
    socket.bind(addr).map_err(fail)?;
    let listener = socket.listen(LISTEN_BACKLOG).map_err(fail)?;
    let local = listener.local_addr().map_err(fail)?;
    Ok((listener, local))
}

fn bind_quic(
    addr: SocketAddr,
    server: quinn::ServerConfig,
) -> Result<(quinn::Endpoint, SocketAddr), ServerError> {
    let fail = |source| ServerError::Bind { addr, source };
    let socket = std::net::UdpSocket::bind(addr).map_err(fail)?;
    let sock = socket2::SockRef::from(&socket);
    // Best effort: an unprivileged process gets what rmem_max allows.
    if let Err(e) = sock.set_recv_buffer_size(QUIC_SOCKET_BUFFER) {
        tracing::warn!(error = %e, "cannot enlarge the QUIC receive buffer");
    }
    if let Err(e) = sock.set_send_buffer_size(QUIC_SOCKET_BUFFER) {
        tracing::warn!(error = %e, "cannot enlarge the QUIC send buffer");
    }
    let runtime =
        quinn::default_runtime().ok_or_else(|| fail(std::io::Error::other("no async runtime for QUIC")))?;
    let endpoint = quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server), socket, runtime)
        .map_err(fail)?;
    let local = endpoint.local_addr().map_err(fail)?;
    Ok((endpoint, local))
}

fn quic_server_config(config: &Config, certs: Arc<CertResolver>) -> Result<quinn::ServerConfig, ServerError> {
    let tls = crate::tls::server_config(certs, &[imbox_protocol::QUIC_ALPN], true)?;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| crate::tls::TlsError::Quic(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let tuning = QuicTuning {
        idle_timeout: Duration::from_millis(config.quic.idle_timeout_ms),
        send_window: config.quic.send_window_bytes.into(),
        max_frame: config.limits.max_frame_bytes,
    };
    let transport = quic::transport_config(&tuning).map_err(crate::tls::TlsError::Quic)?;
    server.transport_config(Arc::new(transport));
    // Phones move between Wi-Fi and mobile data, and NATs rebind: keep the
    // session when the client's address changes.
    server.migration(true);
    Ok(server)
}

/// Runs until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServerError> {
    let running = start(config).await?;
    let token = running.shutdown.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        token.cancel();
    });
    running.finish().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, Sources};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on 127.0.0.1:0, plain HTTP only, in `dir`.
    async fn server(dir: &std::path::Path) -> Running {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let overrides =
            Overrides { config_file: None, data_dir: Some(dir.to_owned()), http_listen: vec![any] };
        let mut config = Config::load_from(&overrides, &Sources::none()).unwrap();
        config.https.listen = vec![];
        config.quic.listen = vec![];
        config.setup.storage_status = dir.join("run/storage.json");
        config.setup.storage_progress = dir.join("run/storage-progress");
        start(config).await.unwrap()
    }

    /// `GET /health`: the status line and the body.
    async fn health(addr: SocketAddr) -> String {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /health HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn a_writer_that_fails_ends_the_server_with_an_error_and_health_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let running = server(dir.path()).await;
        let addr = running.http[0];
        assert!(health(addr).await.starts_with("HTTP/1.1 200"));
        running.store.create_user("alice", "hash".into(), false).await.unwrap();
        // The disk fails the next log write (EIO): not something to retry.
        running.store.health().inject_log_fault(5);
        assert!(running.store.create_user("bob", "hash".into(), false).await.is_err());
        let failed = running.store.health().failed();
        failed.cancelled().await;
        let answer = health(addr).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("writer_failed"), "{answer}");
        // The server stops by itself, with an error that main turns into a
        // failed exit status (systemd restarts it).
        let stopped = running.finish().await;
        assert!(matches!(stopped, Err(ServerError::WriterFailed(_))), "{stopped:?}");
        // The restart finds what was acknowledged.
        let again = server(dir.path()).await;
        let users: Vec<String> = again.store.users().unwrap().into_iter().map(|u| u.name).collect();
        assert_eq!(users, ["alice"]);
        again.shutdown.cancel();
        again.finish().await.unwrap();
    }
}
