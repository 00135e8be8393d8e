//! One clock for the whole process, so that a message's send time, written
//! into its text by one connection, can be compared with its arrival time on
//! another: both connections live in this process, so a monotonic clock is
//! enough and wall-clock steps cannot distort a latency.

use std::sync::OnceLock;
use std::time::Instant;

static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the process first asked.
pub fn now_us() -> u64 {
    let origin = ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// An id for this run, carried in every message, so that a message left over
/// from an earlier run (a backlog synced at connect, a late delivery) is never
/// taken for one of this run's.
pub fn run_id() -> u32 {
    static RUN: OnceLock<u32> = OnceLock::new();
    *RUN.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(7))
            .unwrap_or(0);
        nanos ^ std::process::id().rotate_left(16)
    })
}

/// Now as RFC 3339 in UTC, for result files.
pub fn timestamp() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".to_owned())
}
