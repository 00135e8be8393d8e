//! `startup`: how long imboxd takes from spawn to answering a WebSocket hello,
//! and its resident memory once idle, with a big database. A box restarts
//! after every update and power cut; its members wait that long.
//!
//! The database is filled once (through the protocol, as members would fill
//! it) and a marker file in the data directory remembers how many messages
//! it holds, so that later runs reuse it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use futures_util::StreamExt;
use imbox_client::{ClientError, Connection};
use imbox_protocol::{ErrorCode, Request, Response, Target};
use imboxd::admin::{AdminReply, AdminRequest};
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use crate::cli::StartupArgs;
use crate::latency::median;
use crate::memory;
use crate::progress;
use crate::results::{SeedFigures, StartupFigures, StartupRun};

use super::{Envelope, Subject};

/// The file in the data directory that says how many messages were seeded.
const MARKER: &str = "imbox-bench-seeded.json";

/// Users that exchange the seeded messages, and how many of them send.
const SEED_USERS: usize = 10;
const SEED_CONNECTIONS: usize = 4;

/// Sends outstanding per seeding connection: imboxd's default window.
const SEED_WINDOW: usize = 64;

const SEED_PASSWORD: &str = "imbox-bench seed password";

/// How long imboxd may take to answer, and to stop.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle time before the memory reading.
const IDLE_BEFORE_RSS: Duration = Duration::from_secs(2);

#[derive(Debug, Default, Serialize, Deserialize)]
struct Marker {
    messages: u64,
}

/// How to start imboxd on the data directory.
#[derive(Debug)]
struct Daemon {
    binary: PathBuf,
    config: PathBuf,
    data_dir: PathBuf,
    http: SocketAddr,
    tls: SocketAddr,
    log: PathBuf,
}

impl Daemon {
    /// Starts imboxd with a clean environment: nothing from this shell
    /// (RUST_LOG, IMBOX_*) may change what is measured.
    fn spawn(&self, extra_env: &[(&str, &str)]) -> anyhow::Result<Child> {
        let log = std::fs::File::create(&self.log)
            .with_context(|| format!("cannot write {}", self.log.display()))?;
        let mut command = Command::new(&self.binary);
        command
            .env_clear()
            .env("IMBOX_HTTPS__LISTEN", self.tls.to_string())
            .env("IMBOX_QUIC__LISTEN", self.tls.to_string())
            .envs(extra_env.iter().copied())
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("run")
            .arg("--listen")
            .arg(self.http.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        command.spawn().with_context(|| format!("cannot start {}", self.binary.display()))
    }

    fn url(&self) -> String {
        format!("ws://{}", self.http)
    }

    /// Waits until imboxd answers a hello; the time from `spawned`.
    async fn wait_ready(&self, child: &mut Child, spawned: Instant) -> anyhow::Result<Duration> {
        let url = self.url();
        while spawned.elapsed() < READY_TIMEOUT {
            if let Some(status) = child.try_wait()? {
                bail!("imboxd exited with {status} before it was ready:\n{}", self.log_tail());
            }
            // The port first: a refused TCP connection costs microseconds, a
            // failed WebSocket attempt more.
            if tokio::net::TcpStream::connect(self.http).await.is_ok() {
                if let Ok(connection) = Connection::connect(&url).await {
                    let ready = spawned.elapsed();
                    connection.close().await;
                    return Ok(ready);
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        bail!("imboxd did not answer within {}s:\n{}", READY_TIMEOUT.as_secs(), self.log_tail())
    }

    /// SIGTERM, and a wait for the orderly stop (SIGKILL after a minute).
    async fn stop(&self, child: &mut Child) -> anyhow::Result<()> {
        if let Some(pid) = child.id().and_then(|pid| rustix::process::Pid::from_raw(pid as i32)) {
            rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => {
                let status = status?;
                ensure!(status.success(), "imboxd stopped with {status}:\n{}", self.log_tail());
                Ok(())
            }
            Err(_) => {
                child.kill().await?;
                bail!("imboxd did not stop within {}s of SIGTERM", STOP_TIMEOUT.as_secs())
            }
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// A free TCP port on 127.0.0.1 (UDP is free on it too, as nothing of ours
/// uses it).
fn free_address() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free port on 127.0.0.1")?;
    Ok(listener.local_addr()?)
}

fn address(given: Option<&str>) -> anyhow::Result<SocketAddr> {
    match given {
        Some(text) => text.parse().with_context(|| format!("{text} is not an address (IP:PORT)")),
        None => free_address(),
    }
}

pub async fn run(args: StartupArgs) -> anyhow::Result<()> {
    let envelope = Envelope::start(None);
    ensure!(args.runs > 0, "--runs must be at least 1");
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    // imboxd wants an absolute data directory.
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let binary = std::fs::canonicalize(&args.imboxd).with_context(|| {
        format!("no imboxd at {} (cargo build --release -p imboxd)", args.imboxd.display())
    })?;
    let scratch = std::env::temp_dir().join(format!("imbox-bench-startup-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let config = scratch.join("empty.toml");
    std::fs::write(&config, "")?;
    let daemon = Daemon {
        binary,
        config,
        data_dir: data_dir.clone(),
        http: address(args.listen.as_deref())?,
        tls: address(args.tls_listen.as_deref())?,
        log: scratch.join("imboxd.log"),
    };

    let marker_path = data_dir.join(MARKER);
    let stored = std::fs::read_to_string(&marker_path)
        .ok()
        .and_then(|text| serde_json::from_str::<Marker>(&text).ok())
        .unwrap_or_default()
        .messages;
    let seeding = if stored < args.messages {
        let figures = seed(&daemon, stored, args.messages).await?;
        let marker = serde_json::to_string(&Marker { messages: args.messages })?;
        std::fs::write(&marker_path, marker)?;
        Some(figures)
    } else {
        tracing::info!(stored, "the data directory already holds the messages");
        None
    };
    let messages = stored.max(args.messages);

    let mut runs = Vec::with_capacity(args.runs);
    for run in 0..args.runs {
        let spawned = Instant::now();
        let mut child = daemon.spawn(&[])?;
        let ready = daemon.wait_ready(&mut child, spawned).await?;
        tokio::time::sleep(IDLE_BEFORE_RSS).await;
        let pid = child.id().context("imboxd has no pid")?;
        let rss = memory::resident_bytes(pid)?;
        daemon.stop(&mut child).await?;
        let ready_ms = ready.as_secs_f64() * 1000.0;
        tracing::info!(run, ready_ms, rss_mib = rss as f64 / 1048576.0, "imboxd started");
        runs.push(StartupRun { ready_ms, rss_bytes: rss });
    }
    let database_bytes = std::fs::metadata(data_dir.join("imbox.redb")).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_dir_all(&scratch);

    let ready: Vec<f64> = runs.iter().map(|run| run.ready_ms).collect();
    let rss: Vec<f64> = runs.iter().map(|run| run.rss_bytes as f64).collect();
    let figures = StartupFigures {
        messages,
        seeding,
        ready_ms_median: median(&ready),
        rss_bytes_median: median(&rss),
        runs,
        database_bytes,
    };
    tracing::info!(ready_ms = ?figures.ready_ms_median, database_mib = database_bytes / 1048576, "startup done");
    let parameters = serde_json::json!({
        "messages": args.messages,
        "runs": args.runs,
        "data_dir": data_dir,
        "imboxd": daemon.binary,
    });
    let label = args.label.clone().unwrap_or_else(|| "imbox".to_owned());
    let result = envelope.finish(
        "startup",
        Subject { system: "imbox".into(), label, transport: "ws".into(), url: Some(daemon.url()) },
        parameters,
        figures,
    )?;
    result.write(&args.out)
}

/// Fills the data directory up to `target` messages, from `stored`.
async fn seed(daemon: &Daemon, stored: u64, target: u64) -> anyhow::Result<SeedFigures> {
    let count = target - stored;
    tracing::info!(stored, target, "seeding the database");
    // Lifted send limits: one device sends a share of a million messages.
    let limits = [
        ("IMBOX_LIMITS__SENDS_PER_SECOND", "100000"),
        ("IMBOX_LIMITS__SEND_BURST", "1000000"),
        ("IMBOX_LOG__LEVEL", "warn"),
    ];
    let spawned = Instant::now();
    let mut child = daemon.spawn(&limits)?;
    daemon.wait_ready(&mut child, spawned).await?;
    let outcome = fill(daemon, stored, count).await;
    let stopped = daemon.stop(&mut child).await;
    let seconds = outcome?;
    stopped?;
    Ok(SeedFigures { messages: count, seconds, messages_per_second: count as f64 / seconds.max(1e-9) })
}

/// Creates the seed users and sends `count` messages; the seconds it took.
async fn fill(daemon: &Daemon, stored: u64, count: u64) -> anyhow::Result<f64> {
    let socket = daemon.data_dir.join("control.sock");
    let existing: Vec<String> = match imboxd::control::request(&socket, &AdminRequest::UserList).await? {
        AdminReply::Users { users } => users.into_iter().map(|user| user.name).collect(),
        other => bail!("imboxd answered the user list with {other:?}"),
    };
    let names: Vec<String> = (0..SEED_USERS).map(|i| format!("seed{i}")).collect();
    for name in names.iter().filter(|name| !existing.contains(name)) {
        let add =
            AdminRequest::UserAdd { name: name.clone(), password: SEED_PASSWORD.to_owned(), admin: false };
        imboxd::control::request(&socket, &add).await.with_context(|| format!("cannot create {name}"))?;
    }
    let mut connections = Vec::with_capacity(SEED_CONNECTIONS);
    for name in names.iter().take(SEED_CONNECTIONS) {
        let connection = Connection::connect(&daemon.url()).await?;
        connection.login(name, SEED_PASSWORD, "imbox-bench seeder").await?;
        connections.push(connection);
    }

    let bar = progress::bar(count, "seeding");
    let start = Instant::now();
    let senders = connections.iter().enumerate().map(|(sender, connection)| {
        let (names, bar) = (&names, &bar);
        async move {
            // Message i goes out on connection i % SEED_CONNECTIONS; ids go on
            // from what earlier seeding stored, so none is a duplicate.
            let mine = (stored..stored + count).filter(move |i| *i as usize % SEED_CONNECTIONS == sender);
            let mut sends = futures_util::stream::iter(mine)
                .map(|i| async move {
                    let to = &names[(sender + 1 + i as usize % (SEED_USERS - 1)) % SEED_USERS];
                    send_with_retry(connection, to, i).await
                })
                .buffer_unordered(SEED_WINDOW);
            while let Some(sent) = sends.next().await {
                sent?;
                bar.inc(1);
            }
            anyhow::Ok(())
        }
    });
    let results = futures_util::future::join_all(senders).await;
    bar.finish_and_clear();
    for result in results {
        result?;
    }
    let seconds = start.elapsed().as_secs_f64();
    for connection in connections {
        connection.close().await;
    }
    tracing::info!(count, seconds, rate = (count as f64 / seconds.max(1e-9)).round(), "seeded");
    Ok(seconds)
}

/// Sends seed message `i`, retrying (same id, so never twice) while the
/// server asks to slow down.
async fn send_with_retry(connection: &Connection, to: &str, i: u64) -> anyhow::Result<()> {
    let mut text = format!("seed message {i} ");
    while text.len() < crate::payload::MESSAGE_BYTES {
        text.push('.');
    }
    let request =
        Request::Send { to: Target::User(to.to_owned()), id: format!("s{i}"), text, attachments: Vec::new() };
    for attempt in 0..10u64 {
        match connection.request(request.clone()).await {
            Ok(Response::Sent { .. }) => return Ok(()),
            Ok(other) => bail!("send was answered with {other:?}"),
            Err(ClientError::Server { error, .. })
                if matches!(error.code, ErrorCode::RateLimited | ErrorCode::Unavailable) =>
            {
                let wait = error.retry_after_ms.unwrap_or(50 * (attempt + 1));
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!("message {i} was refused ten times")
}
