//! `idle`: N authenticated sessions held open, and what they cost the server
//! in resident memory. A box's capacity in connected devices is its memory
//! divided by this figure.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::IdleArgs;
use crate::memory;
use crate::progress;
use crate::results::IdleFigures;
use crate::systems::{Quiet, Slot};

use super::{check_open_files, label, open_all, system, Envelope, Running, Subject};

pub async fn run(args: IdleArgs) -> anyhow::Result<()> {
    let envelope = Envelope::start(args.target.server_pid);
    let sessions = args.sessions;
    let system = system(&args.target, sessions).await?;
    let label = label(&args.target, &system);
    check_open_files(sessions);
    let settle = Duration::from_secs(args.settle_seconds);
    let pid = args.target.server_pid;
    if pid.is_none() {
        tracing::warn!("no --server-pid: memory per session cannot be measured");
    }

    // The baseline after a pause, so that whatever the previous scenario
    // left behind (closing connections, a pending commit) has settled.
    tokio::time::sleep(settle).await;
    let baseline = pid.map(memory::resident_bytes).transpose()?;
    tracing::info!(%label, sessions, baseline_rss = ?baseline, "opening sessions");

    let slots: Vec<Slot> = (0..sessions).map(|index| Slot { index, group: None }).collect();
    let bar = progress::bar(sessions as u64, "sessions");
    let opened = open_all(&system, &slots, &bar).await;
    bar.finish_and_clear();
    let open = opened.open_count();
    tracing::info!(open, failed = opened.failures.count, seconds = opened.seconds, "sessions open");
    let (failures, connect_seconds) = (opened.failures, opened.seconds);

    let running = Running::start(opened.sessions, Arc::new(Quiet));
    tokio::time::sleep(settle).await;
    let loaded = pid.map(memory::resident_bytes).transpose()?;
    let dropped = running.dropped() as u64;
    tracing::info!(loaded_rss = ?loaded, dropped, "measured; closing sessions");
    let lost = running.stop().await;
    system.finish().await;

    let bytes_per_session = match (baseline, loaded) {
        (Some(before), Some(after)) if open > 0 => Some((after as f64 - before as f64) / open as f64),
        _ => None,
    };
    let mut failure_samples = failures.samples;
    failure_samples.extend(lost.samples);
    let figures = IdleFigures {
        sessions_requested: sessions as u64,
        sessions_open: open as u64,
        failures: failures.count,
        dropped,
        connect_seconds,
        connects_per_second: if connect_seconds > 0.0 { open as f64 / connect_seconds } else { 0.0 },
        baseline_rss_bytes: baseline,
        loaded_rss_bytes: loaded,
        bytes_per_session,
        failure_samples,
    };
    if bytes_per_session.is_some_and(|bytes| bytes < 1024.0) {
        // An allocator keeps what it freed: sessions of an earlier scenario
        // leave room that these sessions fill without the RSS growing.
        tracing::warn!(
            "under 1 KiB per session: the server probably reused memory freed by an earlier load; \
             measure idle memory on a freshly started server"
        );
    }
    match bytes_per_session {
        Some(bytes) => tracing::info!(%label, open, kib_per_session = bytes / 1024.0, "idle done"),
        None => tracing::info!(%label, open, "idle done"),
    }
    let parameters = serde_json::json!({
        "sessions": sessions,
        "settle_seconds": args.settle_seconds,
        "server_pid": pid,
        "sources": args.target.sources,
    });
    let result = envelope.finish("idle", Subject::of(&system, label), parameters, figures)?;
    result.write(&args.out)
}
