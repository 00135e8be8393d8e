//! Starting and stopping the daemon: [`start`] binds everything and returns a
//! [`Running`] server; [`run`] is start-and-wait for `main`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::control;
use crate::router::Router;
use crate::session::limits::LoginLimit;
use crate::session::password::Passwords;
use crate::session::Hub;
use crate::store::{Store, StoreError, StoreOptions};
use crate::transport::connection::ConnectionLimits;
use crate::transport::http::{self, HttpContext};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be created or secured.
    #[error("cannot prepare the data directory {path}: {source}; check that it is writable by this user")]
    DataDir { path: PathBuf, source: std::io::Error },
    /// The store could not be opened.
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}; is another program using that port?")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// The control socket could not be created.
    #[error("cannot create the control socket {path}: {source}")]
    Control { path: PathBuf, source: std::io::Error },
}

/// A started server.
#[derive(Debug)]
pub struct Running {
    /// The HTTP (WebSocket) addresses actually bound.
    pub http: Vec<SocketAddr>,
    /// Cancel to shut down.
    pub shutdown: CancellationToken,
    tasks: TaskTracker,
    store: Store,
    control_path: PathBuf,
}

impl Running {
    /// The WebSocket URL of the first HTTP listener.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}", self.http[0], imbox_protocol::WEBSOCKET_PATH)
    }

    /// Waits for shutdown, then stops accepting, tells every session, lets
    /// them finish, commits what is queued and returns.
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        tracing::info!("shutting down");
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), self.tasks.wait()).await.is_err() {
            tracing::warn!("some connections did not finish within 10 s");
        }
        self.store.shutdown().await;
        let _ = std::fs::remove_file(&self.control_path);
        tracing::info!("stopped");
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
    };
    let store = Store::open(&config.database_path(), options, router.clone())?;
    let l = &config.limits;
    let hub = Arc::new(Hub {
        store: store.clone(),
        router,
        limits: config.limits.clone(),
        passwords: Passwords::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
        logins: LoginLimit::new(l.login_attempts_per_minute),
        server_name: config.box_name.clone(),
    });

    let mut listeners = Vec::new();
    for &addr in &config.http.listen {
        let listener = TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| ServerError::Bind { addr, source })?;
        listeners.push((listener, local));
    }
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let control_path = config.control_socket_path();
    control::listen(&control_path, hub.clone(), shutdown.clone(), &tasks)
        .map_err(|source| ServerError::Control { path: control_path.clone(), source })?;

    let ctx = Arc::new(HttpContext {
        hub,
        limits: ConnectionLimits {
            max_inflight: l.max_inflight_requests as usize,
            handshake_timeout: Duration::from_millis(l.handshake_timeout_ms),
        },
        max_frame: l.max_frame_bytes as usize,
        shutdown: shutdown.clone(),
        tasks: tasks.clone(),
        connections: Arc::new(Semaphore::new(l.max_connections as usize)),
    });
    let mut http_addrs = Vec::new();
    for (listener, local) in listeners {
        tracing::info!(
            "listening on http://{local} (WebSocket ws://{local}{})",
            imbox_protocol::WEBSOCKET_PATH
        );
        http_addrs.push(local);
        tasks.spawn(http::accept_loop(listener, ctx.clone()));
    }
    // Tell systemd we are ready; outside systemd this does nothing.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    Ok(Running { http: http_addrs, shutdown, tasks, store, control_path })
}

/// Runs until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServerError> {
    let running = start(config).await?;
    let token = running.shutdown.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        token.cancel();
    });
    running.wait().await;
    Ok(())
}
