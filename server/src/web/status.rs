//! What the status page and `/metrics` report: version, uptime, connections
//! per transport, the message rate, stored messages, disk space and the box
//! identity.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::reply::{body, Reply};
use super::Web;
use crate::disks::{DiskReport, Problem, Progress};
use crate::transport::Kind;

/// How often the stored-message count is sampled for the rate.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// The rate is the average over this window.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Recent samples of the stored-message count, for messages per second.
#[derive(Debug, Default)]
pub struct MessageRate {
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl MessageRate {
    /// Records the count at `now` and forgets samples older than the window.
    pub fn record(&self, now: Instant, count: u64) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.push_back((now, count));
        while samples.front().is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW) {
            samples.pop_front();
        }
    }

    /// Messages stored per second over the samples held (0 with fewer than
    /// a second of samples).
    pub fn per_second(&self) -> f64 {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        match (samples.front(), samples.back()) {
            (Some(&(t0, c0)), Some(&(t1, c1))) if t1.duration_since(t0) >= Duration::from_secs(1) => {
                c1.saturating_sub(c0) as f64 / t1.duration_since(t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// Samples the stored-message count until shutdown.
pub async fn sample(web: Arc<Web>, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Ok((_, messages)) = web.hub.store.counts() {
            web.rate.record(Instant::now(), messages);
        }
    }
}

/// Where the data lives and how full that disk is.
#[derive(Debug, Serialize)]
pub struct Storage {
    pub data_dir: String,
    pub database_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    /// Why the sizes are missing, if they are.
    pub error: Option<String>,
    /// On the appliance image: where /data is and the USB disks found at
    /// boot (`None` elsewhere).
    pub appliance: Option<DiskReport>,
    /// Why the disk list cannot be read, if it cannot.
    pub disks_error: Option<String>,
    /// What the status page warns about the disks: a file system that
    /// failed its check (the storage service's other problems stop imboxd,
    /// so a running imboxd never shows them).
    pub disk_problem: Option<String>,
    /// The move to another disk this imboxd asked for, if any.
    #[serde(rename = "move")]
    pub moving: Option<Progress>,
}

/// The data directory's file system, measured now, and the appliance's disks.
pub fn storage(web: &Web) -> Storage {
    let database_bytes = std::fs::metadata(&web.database_path).ok().map(|m| m.len());
    let data_dir = web.data_dir.display().to_string();
    let (appliance, disks_error) = match web.disks.report() {
        Ok(report) => (report, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let disk_problem = appliance
        .as_ref()
        .and_then(|a| a.problem.as_ref())
        .filter(|p| matches!(p, Problem::CheckFailed { .. }))
        .map(|p| p.describe().1);
    let (sizes, error) = match fs4::statvfs(&web.data_dir) {
        Ok(stats) => (Some(stats), None),
        Err(e) => (None, Some(format!("cannot measure the data disk: {e}"))),
    };
    Storage {
        data_dir,
        database_bytes,
        total_bytes: sizes.as_ref().map(|s| s.total_space()),
        free_bytes: sizes.as_ref().map(|s| s.free_space()),
        available_bytes: sizes.as_ref().map(|s| s.available_space()),
        used_bytes: sizes.as_ref().map(|s| s.total_space().saturating_sub(s.free_space())),
        error,
        appliance,
        disks_error,
        disk_problem,
        moving: web.disks.progress(),
    }
}

#[derive(Debug, Serialize)]
pub struct Connections {
    pub ws: u64,
    pub wss: u64,
    pub quic: u64,
    /// Authenticated sessions, all transports.
    pub sessions: u64,
}

#[derive(Debug, Serialize)]
pub struct IdentityInfo {
    /// What clients pin (SHA-256 of the public key).
    pub fingerprint: String,
    /// The same, as hexadecimal pairs.
    pub fingerprint_hex: String,
    /// SHA-256 of the certificate, which is what browsers show.
    pub certificate_sha256: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Addresses {
    pub http: Vec<String>,
    pub https: Vec<String>,
    pub quic: Vec<String>,
}

/// The database writer, as the status page shows it.
#[derive(Debug, Serialize)]
pub struct WriterReport {
    /// `running`, `storage_full` or `failed`.
    pub state: crate::store::WriterState,
    /// Why it is not running, for people.
    pub message: Option<String>,
    /// Since the writer last went round its loop (at most a second or so
    /// when well).
    pub heartbeat_age_ms: u64,
}

/// The writer's state and heartbeat now.
pub fn writer(store: &crate::store::Store) -> WriterReport {
    let health = store.health();
    WriterReport {
        state: health.state(),
        message: health.reason(),
        heartbeat_age_ms: health.heartbeat_age().as_millis() as u64,
    }
}

/// `GET /health`: `ok` (200) while the writer takes writes and its heartbeat
/// is fresh; `storage_full` (507) while the disk is full (reads go on);
/// `writer_failed` or `writer_stuck` (503) otherwise, so that monitoring
/// sees a box that cannot store messages.
pub fn health(store: &crate::store::Store) -> (StatusCode, String) {
    use crate::store::WriterState;
    let h = store.health();
    let reason = h.reason().unwrap_or_default();
    match h.state() {
        WriterState::Failed => (StatusCode::SERVICE_UNAVAILABLE, format!("writer_failed: {reason}\n")),
        _ if !h.alive() => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "writer_stuck: the database writer has not answered for {} s\n",
                h.heartbeat_age().as_secs()
            ),
        ),
        WriterState::StorageFull => (StatusCode::INSUFFICIENT_STORAGE, format!("storage_full: {reason}\n")),
        WriterState::Running => (StatusCode::OK, "ok\n".to_owned()),
    }
}

/// Push health, for the status page and `GET /api/admin/push`.
pub fn push(web: &Web) -> crate::push::health::Report {
    web.hub.push.as_ref().map_or_else(crate::push::health::Report::disabled, |p| p.report())
}

/// Attachments on the box, for the status page and `GET /api/admin/media`.
#[derive(Debug, Serialize)]
pub struct MediaReport {
    /// Bytes of all stored contents (each once).
    pub bytes: u64,
    pub contents: u64,
    /// Each user's usage (a content counts to every user who uploaded it),
    /// largest first.
    pub per_user: Vec<UserMedia>,
    /// Unfinished uploads and the bytes they still expect.
    pub uploads_in_progress: usize,
    pub pending_bytes: u64,
    /// The retention in force (0: forever), and whether it is the owner's
    /// setting or the configuration's.
    pub retention_days: u32,
    pub retention_source: &'static str,
    pub max_file_bytes: u64,
    /// 0: no quota.
    pub user_quota_bytes: u64,
    /// Free space uploads never take.
    pub reserve_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct UserMedia {
    pub user: String,
    pub bytes: u64,
}

/// What attachments take, now.
pub fn media(web: &Web) -> Result<MediaReport, ApiError> {
    let store = &web.hub.store;
    let media = &web.hub.media;
    let summary = store.media_summary()?;
    let mut per_user = Vec::with_capacity(summary.per_user.len());
    for (user, bytes) in summary.per_user {
        let user = store.username(user)?.unwrap_or_else(|| format!("user-{user}"));
        per_user.push(UserMedia { user, bytes });
    }
    let (uploads_in_progress, pending_bytes) = media.pending();
    let setting = store.box_settings()?.media_retention_days;
    Ok(MediaReport {
        bytes: summary.bytes,
        contents: summary.contents,
        per_user,
        uploads_in_progress,
        pending_bytes,
        retention_days: setting.unwrap_or(media.limits.retention_days),
        retention_source: if setting.is_some() { "setting" } else { "configuration" },
        max_file_bytes: media.limits.max_file,
        user_quota_bytes: media.limits.user_quota,
        reserve_bytes: media.limits.reserve,
    })
}

/// The answer of `GET /api/admin/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    pub version: &'static str,
    pub box_name: String,
    pub uptime_seconds: u64,
    pub connections: Connections,
    pub messages_per_second: f64,
    pub messages_stored: u64,
    pub users: u64,
    pub web_sessions: usize,
    pub storage: Storage,
    /// Attachments: in all and per user.
    pub media: MediaReport,
    /// Whether messages can be stored now.
    pub writer: WriterReport,
    /// Push wake-ups: registrations, counters, health per push service.
    pub push: crate::push::health::Report,
    pub identity: IdentityInfo,
    pub listeners: Addresses,
}

/// Colon-separated upper-case hex, as certificate viewers show digests.
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// The SHA-256 of the certificate HTTPS shows browsers now: the owner's own
/// when one is installed (browsers trust it), else the box key's.
pub fn certificate_sha256(web: &Web) -> Option<String> {
    web.certs.browser_certificate().map(|der| colon_hex(&Sha256::digest(der.as_ref())))
}

/// Everything the status page shows.
pub fn status(web: &Web) -> Result<Status, ApiError> {
    let (users, messages) = web.hub.store.counts()?;
    web.rate.record(Instant::now(), messages);
    let list = |addrs: &[std::net::SocketAddr]| addrs.iter().map(ToString::to_string).collect();
    Ok(Status {
        version: env!("CARGO_PKG_VERSION"),
        box_name: web.box_name(),
        uptime_seconds: web.started.elapsed().as_secs(),
        connections: Connections {
            ws: web.open.get(Kind::Ws),
            wss: web.open.get(Kind::Wss),
            quic: web.open.get(Kind::Quic),
            sessions: web.hub.router.sessions(),
        },
        messages_per_second: (web.rate.per_second() * 100.0).round() / 100.0,
        messages_stored: messages,
        users,
        web_sessions: web.sessions.len(),
        storage: storage(web),
        media: media(web)?,
        writer: writer(&web.hub.store),
        push: push(web),
        identity: IdentityInfo {
            fingerprint: web.fingerprint.to_string(),
            fingerprint_hex: web.fingerprint.to_hex(),
            certificate_sha256: certificate_sha256(web),
        },
        listeners: Addresses {
            http: list(&web.listeners.http),
            https: list(&web.listeners.https),
            quic: list(&web.listeners.quic),
        },
    })
}

/// `GET /metrics`: Prometheus text exposition, written by hand since it is a
/// dozen lines.
pub fn metrics(web: &Web) -> Reply {
    let status = match status(web) {
        Ok(s) => s,
        Err(e) => return e.reply(),
    };
    let stats = web.hub.store.stats();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let build = format!("{{version=\"{}\"}}", status.version);
    metric("imbox_build_info", "gauge", "The running imboxd version.", &[(&build, 1.0)]);
    metric(
        "imbox_uptime_seconds",
        "gauge",
        "Seconds since imboxd started.",
        &[("", status.uptime_seconds as f64)],
    );
    let c = &status.connections;
    metric(
        "imbox_connections",
        "gauge",
        "Open client connections per transport.",
        &[
            ("{transport=\"ws\"}", c.ws as f64),
            ("{transport=\"wss\"}", c.wss as f64),
            ("{transport=\"quic\"}", c.quic as f64),
        ],
    );
    metric("imbox_sessions", "gauge", "Authenticated sessions.", &[("", c.sessions as f64)]);
    metric("imbox_users", "gauge", "Accounts.", &[("", status.users as f64)]);
    metric("imbox_messages_stored", "counter", "Messages stored.", &[("", status.messages_stored as f64)]);
    metric(
        "imbox_store_commits_total",
        "counter",
        "Database commits (each one fsync).",
        &[("", stats.commits.load(Ordering::Relaxed) as f64)],
    );
    metric(
        "imbox_store_writes_total",
        "counter",
        "Writes applied in those commits.",
        &[("", stats.writes.load(Ordering::Relaxed) as f64)],
    );
    metric("imbox_web_sessions", "gauge", "Logged-in web sessions.", &[("", status.web_sessions as f64)]);
    let s = &status.storage;
    let disk: Vec<(&str, f64)> = [
        ("{kind=\"total\"}", s.total_bytes),
        ("{kind=\"free\"}", s.free_bytes),
        ("{kind=\"available\"}", s.available_bytes),
        ("{kind=\"database\"}", s.database_bytes),
        ("{kind=\"media\"}", Some(status.media.bytes)),
    ]
    .into_iter()
    .filter_map(|(label, v)| v.map(|v| (label, v as f64)))
    .collect();
    metric(
        "imbox_disk_bytes",
        "gauge",
        "The data disk: size, free, available to imboxd, database file.",
        &disk,
    );
    body(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_an_average_over_the_window() {
        let rate = MessageRate::default();
        let t0 = Instant::now();
        rate.record(t0, 100);
        assert_eq!(rate.per_second(), 0.0, "one sample is no rate");
        rate.record(t0 + Duration::from_secs(10), 150);
        assert!((rate.per_second() - 5.0).abs() < 1e-9);
        rate.record(t0 + Duration::from_secs(100), 150);
        assert_eq!(rate.per_second(), 0.0, "old samples fall out of the window");
        assert_eq!(colon_hex(&[0xab, 0x01]), "AB:01");
    }
}
