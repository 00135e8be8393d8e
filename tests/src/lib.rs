//! The harness of the end-to-end tests: imboxd started in-process on
//! `127.0.0.1:0` with a temporary data directory ([`Server`]), or the real
//! `imboxd` binary as a child process ([`Daemon`]) for what only a process
//! can show (SIGKILL, SIGTERM, the command lines).

#![allow(clippy::unwrap_used)]

pub mod quic;
pub mod web;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imbox_client::{Client, ConnectOptions, Connection, ServerUrl};
use imboxd::admin::{AdminReply, AdminRequest};
use imboxd::config::{Config, Overrides, Sources};

/// The password every test account gets.
pub const PASSWORD: &str = "correct horse battery";

/// A configuration for tests: loopback, a port chosen by the kernel, and
/// limits loose enough for many clients on one address.
pub fn test_config(dir: &Path, listen: SocketAddr) -> Config {
    let overrides =
        Overrides { config_file: None, data_dir: Some(dir.to_owned()), http_listen: vec![listen] };
    let mut config = Config::load_from(&overrides, &Sources::none()).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    config.https.listen = vec![any];
    config.quic.listen = vec![any];
    config.limits.login_attempts_per_minute = 1000;
    config.limits.sends_per_second = 100_000;
    config.limits.send_burst = 100_000;
    // Tests make small files; a build machine's disk may be nearly full.
    config.media.reserve_mib = 16;
    // What the appliance's storage.sh writes under /run/imbox, never the host's.
    config.setup.storage_status = dir.join("run/storage.json");
    config.setup.storage_progress = dir.join("run/storage-progress");
    config
}

/// How a test's clients reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// WebSocket over plain HTTP.
    Ws,
    /// WebSocket over HTTPS, with the box key pinned.
    Wss,
    /// QUIC, with the box key pinned.
    Quic,
}

/// Runs async test bodies once per transport, as separate tests:
/// `over_every_transport!(name, …);` makes a module per transport (`ws`,
/// `wss`, `quic`) with a test `name` that calls `super::name(Transport::…)`.
#[macro_export]
macro_rules! over_every_transport {
    ($($name:ident),* $(,)?) => {
        mod ws {
            $(#[tokio::test] async fn $name() { super::$name($crate::Transport::Ws).await })*
        }
        mod wss {
            $(#[tokio::test] async fn $name() { super::$name($crate::Transport::Wss).await })*
        }
        mod quic {
            $(#[tokio::test] async fn $name() { super::$name($crate::Transport::Quic).await })*
        }
    };
}

/// imboxd running inside the test process.
#[derive(Debug)]
pub struct Server {
    pub dir: PathBuf,
    pub url: String,
    /// The QUIC address, and the wss:// URL.
    pub quic: Option<SocketAddr>,
    pub wss: Option<String>,
    pub fingerprint: imbox_protocol::Fingerprint,
    /// The transport [`Server::client`] and [`Server::connection`] use.
    pub transport: Transport,
    running: Option<imboxd::Running>,
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// A server with a fresh data directory.
    pub async fn start() -> Server {
        let temp = tempfile::tempdir().unwrap();
        let mut server = Server::start_in(temp.path(), |_| {}).await;
        server._temp = Some(temp);
        server
    }

    /// A server on `dir`, with the configuration adjusted by `tweak`.
    pub async fn start_in(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Server {
        let mut config = test_config(dir, "127.0.0.1:0".parse().unwrap());
        tweak(&mut config);
        let running = imboxd::start(config).await.unwrap();
        let url = format!("ws://{}", running.http[0]);
        let quic = running.quic.first().copied();
        let wss = running.https.first().map(|a| format!("wss://{a}"));
        let fingerprint = running.fingerprint;
        Server {
            dir: dir.to_owned(),
            url,
            quic,
            wss,
            fingerprint,
            transport: Transport::Ws,
            running: Some(running),
            _temp: None,
        }
    }

    /// A server with a fresh data directory whose clients use `transport`.
    pub async fn over(transport: Transport) -> Server {
        let mut server = Server::start().await;
        server.transport = transport;
        server
    }

    /// The URL clients use on this server's transport.
    pub fn client_url(&self) -> String {
        match self.transport {
            Transport::Ws => self.url.clone(),
            Transport::Wss => self.wss.clone().unwrap(),
            Transport::Quic => format!("quic://{}", self.quic.unwrap()),
        }
    }

    /// Connection options that pin this box's key.
    pub fn options(&self) -> ConnectOptions {
        ConnectOptions { pin: Some(self.fingerprint), ..ConnectOptions::default() }
    }

    /// The running server's store.
    pub fn store(&self) -> &imboxd::store::Store {
        &self.running.as_ref().unwrap().store
    }

    /// Stops the server the way SIGTERM does and waits until it has.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown.cancel();
            running.wait().await;
        }
    }

    /// Runs an administrative request through the control socket.
    pub async fn admin(&self, request: AdminRequest) -> AdminReply {
        imboxd::control::request(&self.dir.join("control.sock"), &request).await.unwrap()
    }

    /// Creates accounts with [`PASSWORD`].
    pub async fn add_users(&self, names: &[&str]) {
        for name in names {
            self.admin(AdminRequest::UserAdd {
                name: (*name).into(),
                password: PASSWORD.into(),
                admin: false,
            })
            .await;
        }
    }

    /// A one-time invite token.
    pub async fn invite(&self) -> String {
        match self.admin(AdminRequest::InviteCreate { uses: 1, expires_in_hours: None, uri: false }).await {
            AdminReply::Invite { token, .. } => token,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Logs a new device of `name` in, with its profile in `profile`.
    pub async fn client(&self, name: &str, profile: &Path) -> Client {
        Client::login_with(profile, &self.client_url(), &self.options(), name, PASSWORD, "test")
            .await
            .unwrap()
    }

    /// A new authenticated connection of `name`.
    pub async fn connection(&self, name: &str) -> Connection {
        let url = ServerUrl::parse(&self.client_url()).unwrap();
        let conn = Connection::connect_with(&url, &self.options()).await.unwrap();
        conn.login(name, PASSWORD, "test").await.unwrap();
        conn
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.shutdown.cancel();
        }
    }
}

/// A binary of this workspace, built by `cargo build --workspace --bins`
/// (which `make test` runs first).
pub fn bin(name: &str) -> PathBuf {
    // target/debug/deps/<test> → target/debug/<name>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path
}

/// A free loopback port (bound and released; the caller binds it right after).
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A free loopback UDP port.
pub fn free_udp_port() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The `imboxd` binary running as a child process.
#[derive(Debug)]
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub url: String,
    pub https: SocketAddr,
    pub quic: SocketAddr,
    pub dir: PathBuf,
}

/// A `Command` for `imboxd` with a clean environment and an empty
/// configuration file, so that nothing on the machine leaks in.
pub fn imboxd(dir: &Path) -> Command {
    let empty = dir.with_extension("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let mut cmd = Command::new(bin("imboxd"));
    cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd.arg("--config").arg(empty).arg("--data-dir").arg(dir);
    cmd
}

impl Daemon {
    /// Starts `imboxd run` on `dir` and waits until it answers.
    pub fn start(dir: &Path) -> Daemon {
        let addr = free_port();
        let (https, quic) = (free_port(), free_udp_port());
        let child = imboxd(dir)
            .env("IMBOX_HTTPS__LISTEN", https.to_string())
            .env("IMBOX_QUIC__LISTEN", quic.to_string())
            .env("IMBOX_LIMITS__SENDS_PER_SECOND", "100000")
            .env("IMBOX_LIMITS__SEND_BURST", "100000")
            .env("IMBOX_LIMITS__LOGIN_ATTEMPTS_PER_MINUTE", "1000")
            .env("IMBOX_MEDIA__RESERVE_MIB", "16")
            .args(["run", "--listen", &addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        // The control socket comes after the listeners (the pairing link
        // it serves names their bound ports), so a port that answers does
        // not yet mean that `imboxd user add` reaches the running daemon.
        let control = dir.join("control.sock");
        while std::net::TcpStream::connect(addr).is_err() || !control.exists() {
            assert!(
                Instant::now() < deadline,
                "imboxd did not start listening on {addr} and {}",
                control.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon { child, addr, url: format!("ws://{addr}"), https, quic, dir: dir.to_owned() }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "imboxd did not exit in {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `imboxd user add` against this daemon's data directory.
    pub fn add_user(&self, name: &str) {
        add_user_cli(&self.dir, name, false);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `echo PASSWORD | imboxd user add NAME [--admin]`.
pub fn add_user_cli(dir: &Path, name: &str, admin: bool) {
    use std::io::Write;
    let mut cmd = imboxd(dir);
    cmd.args(["user", "add", name]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if admin {
        cmd.arg("--admin");
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "user add failed: {}", String::from_utf8_lossy(&out.stderr));
}
