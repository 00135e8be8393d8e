//! `storm`: N devices connect at once (the box rebooted, or the Wi-Fi came
//! back) with full handshakes and log in. Logins per second = N / the time
//! until the last one is in.

use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;

use crate::cli::StormArgs;
use crate::latency::Latencies;
use crate::progress;
use crate::results::{FailureSamples, StormFigures};
use crate::systems::{Session, Slot};

use super::{check_open_files, label, system, Envelope, Subject};

pub async fn run(args: StormArgs) -> anyhow::Result<()> {
    let envelope = Envelope::start(args.target.server_pid);
    let devices = args.devices;
    let system = Arc::new(system(&args.target, devices).await?);
    let label = label(&args.target, &system);
    check_open_files(devices);
    tracing::info!(%label, devices, "storm");

    let bar = progress::bar(devices as u64, "logins");
    let start = Instant::now();
    let mut attempts = JoinSet::new();
    // Every device starts now; none waits for another.
    for index in 0..devices {
        let system = Arc::clone(&system);
        attempts.spawn(async move {
            let began = Instant::now();
            let session = system.log_in(Slot { index, group: None }).await;
            (index, began.elapsed(), start.elapsed(), session)
        });
    }
    let mut latencies = Latencies::new();
    let mut failures = FailureSamples::default();
    let mut sessions: Vec<Session> = Vec::with_capacity(devices);
    let mut last_in = std::time::Duration::ZERO;
    while let Some(joined) = attempts.join_next().await {
        match joined {
            Ok((_, took, at, Ok(session))) => {
                latencies.record_us(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                last_in = last_in.max(at);
                sessions.push(session);
            }
            Ok((index, _, _, Err(e))) => failures.add(format!("device {index}: {e:#}")),
            Err(e) => failures.add(format!("a login task failed: {e}")),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let logged_in = sessions.len() as u64;
    let all_in_seconds = last_in.as_secs_f64();
    let logins_per_second = if all_in_seconds > 0.0 { logged_in as f64 / all_in_seconds } else { 0.0 };
    let login_latency = latencies.summary();
    tracing::info!(
        %label,
        logged_in,
        failed = failures.count,
        all_in_seconds,
        logins_per_second = logins_per_second.round(),
        p99_ms = login_latency.p99_ms,
        "storm done; closing"
    );

    let mut closing = JoinSet::new();
    for session in sessions {
        closing.spawn(session.close());
    }
    while closing.join_next().await.is_some() {}
    system.finish().await;

    let figures = StormFigures {
        devices: devices as u64,
        logged_in,
        failures: failures.count,
        all_in_seconds,
        logins_per_second,
        login_latency,
        failure_samples: failures.samples,
    };
    let parameters = serde_json::json!({ "devices": devices, "sources": args.target.sources });
    let result = envelope.finish("storm", Subject::of(&system, label), parameters, figures)?;
    result.write(&args.out)
}
