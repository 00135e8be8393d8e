//! The scenarios, and what they share: building the system from the target
//! flags, opening many sessions at a bounded pace, running them, and the
//! result file's envelope.

pub mod chat;
pub mod idle;
pub mod phone;
pub mod provision;
pub mod startup;
pub mod storm;
pub mod transfer;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures_util::StreamExt;
use indicatif::ProgressBar;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::{SystemKind, TargetArgs};
use crate::clock;
use crate::cpu::CpuMark;
use crate::machine::Machine;
use crate::results::{FailureSamples, ResultFile, SCHEMA};
use crate::systems::imbox::{Imbox, TokensFile};
use crate::systems::mqtt::Mqtt;
use crate::systems::{Ended, Observer, Outgoing, Session, Slot, System};

/// Sessions being opened at once while building up a load: enough to keep
/// both cores busy, few enough that the server's accept queue never
/// overflows (that is the storm's business).
const OPEN_CONCURRENCY: usize = 256;

/// Messages queued for one session's task; the window of unacknowledged
/// messages ([`crate::systems::MAX_IN_FLIGHT`]) is the real bound.
const OUTBOX: usize = 32;

/// The system the target flags describe, ready for about `connections`
/// connections.
pub async fn system(args: &TargetArgs, connections: usize) -> anyhow::Result<System> {
    match args.system {
        SystemKind::Imbox => {
            let path = args
                .tokens
                .as_ref()
                .context("--tokens (from `imbox-bench provision`) is required for imbox")?;
            let tokens = TokensFile::read(path)?;
            // The pin the tokens were made with serves when none is given.
            let pin = args.pin.clone().unwrap_or_else(|| tokens.pin.clone());
            let imbox = Imbox::new(&args.url, Some(&pin), tokens, args.sources, connections).await?;
            Ok(System::Imbox(imbox))
        }
        SystemKind::Mqtt => {
            let login = match (&args.mqtt_user, &args.mqtt_password) {
                (Some(user), Some(password)) => Some((user.clone(), password.clone())),
                (None, None) => None,
                _ => anyhow::bail!("--mqtt-user and --mqtt-password go together"),
            };
            let mqtt = Mqtt::new(&args.url, args.ca.as_deref(), login, args.sources, connections).await?;
            Ok(System::Mqtt(mqtt))
        }
    }
}

/// How reports name the system when `--label` is not given.
pub fn label(args: &TargetArgs, system: &System) -> String {
    args.label.clone().unwrap_or_else(|| match system {
        System::Imbox(_) => format!("imbox ({})", system.transport().to_uppercase()),
        System::Mqtt(_) => "MQTT broker".to_owned(),
    })
}

/// Warns when the open-files limit cannot hold `connections`.
pub fn check_open_files(connections: usize) {
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, _)) if soft < connections as u64 + 256 => tracing::warn!(
            limit = soft,
            connections,
            "the open-files limit is below the connections asked for; raise the hard limit (ulimit -Hn) first"
        ),
        _ => {}
    }
}

/// What every result file says besides the figures.
#[derive(Debug)]
pub struct Envelope {
    started_at: String,
    start: Instant,
    cpu: CpuMark,
}

impl Envelope {
    /// Starts the clocks; `server_pid` is the server whose CPU time counts.
    pub fn start(server_pid: Option<u32>) -> Envelope {
        Envelope { started_at: clock::timestamp(), start: Instant::now(), cpu: CpuMark::now(server_pid) }
    }

    /// The finished result file.
    pub fn finish(
        self,
        scenario: &str,
        subject: Subject,
        parameters: serde_json::Value,
        figures: impl serde::Serialize,
    ) -> anyhow::Result<ResultFile> {
        let (generator_cpu_seconds, server_cpu_seconds) = self.cpu.since();
        Ok(ResultFile {
            schema: SCHEMA,
            tool: concat!("imbox-bench ", env!("CARGO_PKG_VERSION")).to_owned(),
            scenario: scenario.to_owned(),
            system: subject.system,
            label: subject.label,
            transport: subject.transport,
            url: subject.url,
            parameters,
            machine: Machine::this(),
            started_at: self.started_at,
            finished_at: clock::timestamp(),
            duration_seconds: self.start.elapsed().as_secs_f64(),
            generator_cpu_seconds,
            server_cpu_seconds,
            figures: serde_json::to_value(figures)?,
        })
    }
}

/// What a result is about.
#[derive(Debug)]
pub struct Subject {
    /// `imbox` or `mqtt`.
    pub system: String,
    pub label: String,
    pub transport: String,
    pub url: Option<String>,
}

impl Subject {
    /// The system under load, as reports name it.
    pub fn of(system: &System, label: String) -> Subject {
        Subject {
            system: system.kind().to_owned(),
            label,
            transport: system.transport().to_owned(),
            url: Some(system.url()),
        }
    }
}

/// Sessions opened for a scenario, by slot index.
#[derive(Debug)]
pub struct Opened {
    pub sessions: Vec<Option<Session>>,
    pub failures: FailureSamples,
    pub seconds: f64,
}

impl Opened {
    pub fn open_count(&self) -> usize {
        self.sessions.iter().filter(|s| s.is_some()).count()
    }
}

/// Opens a live session for every slot, [`OPEN_CONCURRENCY`] at a time.
pub async fn open_all(system: &System, slots: &[Slot], progress: &ProgressBar) -> Opened {
    let start = Instant::now();
    let mut sessions: Vec<Option<Session>> = (0..slots.len()).map(|_| None).collect();
    let mut failures = FailureSamples::default();
    let mut attempts = futures_util::stream::iter(slots.iter().copied())
        .map(|slot| async move { (slot.index, system.open(slot).await) })
        .buffer_unordered(OPEN_CONCURRENCY);
    while let Some((index, opened)) = attempts.next().await {
        match opened {
            Ok(session) => sessions[index] = Some(session),
            Err(e) => failures.add(format!("session {index}: {e:#}")),
        }
        progress.inc(1);
    }
    Opened { sessions, failures, seconds: start.elapsed().as_secs_f64() }
}

/// Sessions running in their own tasks.
#[derive(Debug)]
pub struct Running {
    /// Each session's queue of messages to send, by slot index.
    pub outboxes: Vec<Option<mpsc::Sender<Outgoing>>>,
    tasks: Vec<JoinHandle<Ended>>,
    stop: CancellationToken,
}

impl Running {
    /// Starts a task per open session.
    pub fn start(sessions: Vec<Option<Session>>, observer: Arc<dyn Observer>) -> Running {
        let stop = CancellationToken::new();
        let mut outboxes = Vec::with_capacity(sessions.len());
        let mut tasks = Vec::with_capacity(sessions.len());
        for session in sessions {
            match session {
                Some(session) => {
                    let (tx, rx) = mpsc::channel(OUTBOX);
                    outboxes.push(Some(tx));
                    tasks.push(tokio::spawn(session.run(rx, Arc::clone(&observer), stop.clone())));
                }
                None => outboxes.push(None),
            }
        }
        Running { outboxes, tasks, stop }
    }

    /// Sessions whose task has ended on its own (the server or the network
    /// ended them).
    pub fn dropped(&self) -> usize {
        self.tasks.iter().filter(|task| task.is_finished()).count()
    }

    /// Stops every session (each closes politely) and returns why sessions
    /// that ended early ended.
    pub async fn stop(self) -> FailureSamples {
        self.stop.cancel();
        let mut lost = FailureSamples::default();
        let all = futures_util::future::join_all(self.tasks);
        match tokio::time::timeout(std::time::Duration::from_secs(60), all).await {
            Ok(ended) => {
                for end in ended {
                    match end {
                        Ok(Ended::Stopped) => {}
                        Ok(Ended::Lost(reason)) => lost.add(reason),
                        Err(e) => lost.add(format!("session task failed: {e}")),
                    }
                }
            }
            Err(_) => lost.add("sessions did not close within 60 s"),
        }
        lost
    }
}
