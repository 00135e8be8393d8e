//! Result files: one JSON document per run of a scenario, the same envelope
//! for every scenario (what ran, against what, where, when) around the
//! scenario's figures. `report` reads them back, so every figure type here is
//! both written and read.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::latency::Summary;
use crate::machine::Machine;

/// The version of this file format; bumped when a field changes meaning.
pub const SCHEMA: u32 = 1;

/// One result file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultFile {
    pub schema: u32,
    /// This program and its version.
    pub tool: String,
    /// `provision`, `idle`, `chat`, `chat-group-<size>` (`chat-group` in
    /// files of runs before groups came in several sizes), `storm`,
    /// `startup`, `transfer-<cipher offer>` or `phone`.
    pub scenario: String,
    /// `imbox` or `mqtt`.
    pub system: String,
    /// How reports name the system, e.g. "imbox (QUIC)" or "mosquitto".
    pub label: String,
    /// `wss`, `quic`, `ws`, `mqtts` or `mqtt`.
    pub transport: String,
    /// What was driven (no credentials).
    pub url: Option<String>,
    /// The scenario's parameters as given or defaulted.
    pub parameters: serde_json::Value,
    pub machine: Machine,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
    pub duration_seconds: f64,
    /// CPU seconds the load generator used: it shares the cores with the
    /// server, so a busy generator means a starved server.
    #[serde(default)]
    pub generator_cpu_seconds: Option<f64>,
    /// CPU seconds the server used during the scenario (with `--server-pid`).
    #[serde(default)]
    pub server_cpu_seconds: Option<f64>,
    /// The scenario's figures: one of the `*Figures` types below.
    pub figures: serde_json::Value,
}

impl ResultFile {
    /// Writes the file (pretty JSON), creating its directory.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        tracing::info!(path = %path.display(), "result written");
        Ok(())
    }

    /// Reads a file; an error for anything that is not a result file.
    pub fn read(path: &Path) -> anyhow::Result<ResultFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file: ResultFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a result file", path.display()))?;
        anyhow::ensure!(
            file.schema == SCHEMA,
            "{} has schema {}, this program reads {SCHEMA}",
            path.display(),
            file.schema
        );
        Ok(file)
    }

    /// The figures as the type the scenario wrote.
    pub fn figures<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_value(self.figures.clone())
            .with_context(|| format!("the {} figures of {} are malformed", self.scenario, self.label))
    }
}

/// `idle`: sessions held open and what they cost the server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdleFigures {
    pub sessions_requested: u64,
    pub sessions_open: u64,
    pub failures: u64,
    /// Sessions that ended on their own while held.
    pub dropped: u64,
    /// Time to open every session.
    pub connect_seconds: f64,
    pub connects_per_second: f64,
    /// The server's VmRSS before any session (after settling).
    pub baseline_rss_bytes: Option<u64>,
    /// The server's VmRSS with every session open (after settling).
    pub loaded_rss_bytes: Option<u64>,
    /// (loaded − baseline) / sessions open.
    pub bytes_per_session: Option<f64>,
    /// The first few failure reasons.
    pub failure_samples: Vec<String>,
}

/// `chat` and `chat-group`: one entry per load step, and the headline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatFigures {
    /// Sessions asked for (one per user).
    pub users: u64,
    pub sessions_open: u64,
    /// Members per group (`chat-group` only).
    pub group_size: Option<u64>,
    pub groups: Option<u64>,
    /// The delivery p99 a step must stay under to count.
    pub target_p99_ms: f64,
    pub steps: Vec<StepFigures>,
    /// The highest offered rate (messages/s) that met the target, if any.
    pub headline_rate: Option<u64>,
    /// Deliveries per second at the headline step.
    pub headline_delivered_rate: Option<f64>,
}

/// One step of the chat load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepFigures {
    /// Messages per second the schedule offered.
    pub offered_rate: u64,
    pub seconds: f64,
    /// Sends the schedule held.
    pub scheduled: u64,
    /// Sends not made because the sender's window of unacknowledged messages
    /// (or its queue) was full, or its session had ended.
    pub missed: u64,
    /// Sends made more than 10 ms after they were due (generator overload).
    pub late: u64,
    pub acked: u64,
    /// Sends answered with an error.
    pub failed: u64,
    /// Sends with no answer by the end of the step's drain.
    pub unanswered: u64,
    /// Acknowledgements per second.
    pub ack_rate: f64,
    /// Deliveries to recipients' sessions (every group member counts).
    pub delivered: u64,
    /// Deliveries the acknowledged messages should have made.
    pub expected_deliveries: u64,
    pub delivered_rate: f64,
    pub ack_latency: Summary,
    pub delivery_latency: Summary,
    /// Error reasons and how often each came.
    pub errors: BTreeMap<String, u64>,
    /// Delivery p99 under the target and at least 95 % of the offered
    /// messages acknowledged and delivered.
    pub meets_target: bool,
    /// What the server made the kernel write to storage (`/proc/PID/io`
    /// `write_bytes`) from before the step until it was quiet after it,
    /// checkpoints included ([`crate::diskio`]); absent without
    /// `--server-pid` and in older result files.
    #[serde(default)]
    pub server_write_bytes: Option<u64>,
    /// `server_write_bytes` per acknowledged message (a group message counts
    /// once, however many members it reaches).
    #[serde(default)]
    pub write_bytes_per_message: Option<f64>,
    /// CPU seconds the server used over the same span as
    /// `server_write_bytes`: per message, a figure that other work on the
    /// machine disturbs less than latency.
    #[serde(default)]
    pub server_cpu_seconds: Option<f64>,
}

/// `storm`: devices logging in at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StormFigures {
    pub devices: u64,
    pub logged_in: u64,
    pub failures: u64,
    /// From the start until the last device was in.
    pub all_in_seconds: f64,
    pub logins_per_second: f64,
    /// Each device's time from its first packet to being logged in.
    pub login_latency: Summary,
    pub failure_samples: Vec<String>,
}

/// `startup`: imboxd's start-to-ready time over a big database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartupFigures {
    /// Messages stored in the data directory.
    pub messages: u64,
    /// Filling the database in this run, if it had to be.
    pub seeding: Option<SeedFigures>,
    pub runs: Vec<StartupRun>,
    pub ready_ms_median: Option<f64>,
    pub rss_bytes_median: Option<f64>,
    /// The size of imbox.redb.
    pub database_bytes: u64,
}

/// Filling the startup database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedFigures {
    pub messages: u64,
    pub seconds: f64,
    pub messages_per_second: f64,
}

/// One start of imboxd.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartupRun {
    /// From spawn until a WebSocket hello was answered.
    pub ready_ms: f64,
    /// VmRSS after 2 s idle.
    pub rss_bytes: u64,
}

/// `provision`: accounts and device tokens made for the scenarios.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProvisionFigures {
    pub users: u64,
    pub created: u64,
    pub existed: u64,
    pub logged_in: u64,
    pub failures: u64,
    pub seconds: f64,
    pub failure_samples: Vec<String>,
}

/// `transfer-<cipher offer>`: one big file uploaded and downloaded, a few
/// times, over one system and transport.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransferFigures {
    /// The file's size.
    pub size_bytes: u64,
    pub repetitions: u64,
    /// The TLS 1.3 suites the client offered, in its order of preference.
    pub offered_ciphers: Vec<String>,
    /// The suite negotiated, as the client's TLS reported it (over QUIC:
    /// the suite that made the packet keys after the handshake).
    pub cipher: Option<String>,
    pub upload: DirectionFigures,
    pub download: DirectionFigures,
    pub failures: u64,
    pub failure_samples: Vec<String>,
}

/// One direction of [`TransferFigures`]: every repetition and the medians.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectionFigures {
    pub runs: Vec<TransferRun>,
    /// Megabytes (10^6 bytes) per second, the median of the runs.
    pub mb_per_second_median: Option<f64>,
    /// The server's CPU seconds per gigabyte (10^9 bytes) moved, median.
    pub server_cpu_seconds_per_gb_median: Option<f64>,
    /// The same for the client (this process), median.
    pub client_cpu_seconds_per_gb_median: Option<f64>,
}

/// One upload or download that succeeded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransferRun {
    pub bytes: u64,
    /// From opening the connection until the server's last answer (upload:
    /// the content is durable; download: the last byte arrived).
    pub seconds: f64,
    pub mb_per_second: f64,
    pub server_cpu_seconds: Option<f64>,
    pub client_cpu_seconds: Option<f64>,
}

/// The figures of a `phone` run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhoneFigures {
    /// Resume latency at each simulated round-trip time.
    pub resume: Vec<ResumeFigures>,
    /// Idle sessions, without and with keep-alives.
    pub idle: Vec<IdleTraffic>,
}

/// Reconnect-to-first-sync times at one round-trip time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResumeFigures {
    /// The round-trip time the relay added.
    pub rtt_ms: f64,
    /// The protocol's own round trip on an open connection (`ping`).
    pub ping_ms_median: Option<f64>,
    pub zero_rtt_ms_median: Option<f64>,
    pub full_handshake_ms_median: Option<f64>,
    pub zero_rtt_ms: Vec<f64>,
    pub full_handshake_ms: Vec<f64>,
    /// Resumptions whose early data the box refused (they count as full).
    pub zero_rtt_refused: usize,
}

/// One idle session's traffic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleTraffic {
    /// Keep-alive interval of the client; `None`: no keep-alives.
    pub keep_alive_seconds: Option<u64>,
    pub window_seconds: f64,
    pub datagrams_up: u64,
    pub datagrams_down: u64,
    /// UDP payload bytes.
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Payload plus IPv4 and UDP headers, both ways.
    pub wire_bytes: u64,
    /// Whether the session was still open at the end of the window.
    pub open_at_end: bool,
    /// Wire bytes per idle hour (`scenarios::phone` says how it is extrapolated).
    pub wire_bytes_per_hour: f64,
}

/// A bounded list of failure reasons: the first few are enough to tell what
/// went wrong, and thousands would drown the result file.
#[derive(Debug, Default)]
pub struct FailureSamples {
    pub count: u64,
    pub samples: Vec<String>,
}

impl FailureSamples {
    const KEPT: usize = 8;

    pub fn add(&mut self, reason: impl std::fmt::Display) {
        self.count += 1;
        if self.samples.len() < Self::KEPT {
            self.samples.push(reason.to_string());
        }
    }
}
