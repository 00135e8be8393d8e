//! Bytes a process has made the kernel write to storage, from
//! `/proc/PID/io` (`write_bytes`: counted when pages are dirtied, so a
//! buffered write counts before it reaches the disk, and a write-ahead log
//! append counts once however often it is synced).
//!
//! imboxd writes in two places: its write-ahead log with every batch, and
//! its database at checkpoints, which come only once writes pause (or the log
//! is large). A figure per message is only honest if the checkpoint that
//! follows a load is inside the measurement: [`settle`] waits until the
//! counter stops moving before each reading.

use std::time::{Duration, Instant};

/// How long the counter must stay still to count as settled: longer than
/// imboxd's idle time before a checkpoint (500 ms) plus a checkpoint's first
/// writes.
const QUIET: Duration = Duration::from_millis(1200);

/// The longest wait for a server that keeps writing.
const SETTLE_MAX: Duration = Duration::from_secs(15);

const POLL: Duration = Duration::from_millis(100);

/// `write_bytes` of process `pid`, if readable.
pub fn write_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    parse_write_bytes(&text)
}

/// The `write_bytes:` line of a /proc/PID/io text.
fn parse_write_bytes(text: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix("write_bytes:")).and_then(|v| v.trim().parse().ok())
}

/// Waits until `pid` has written nothing for [`QUIET`] (at most
/// [`SETTLE_MAX`]) and returns its `write_bytes` then; `None` without a pid
/// or when /proc/PID/io cannot be read.
pub async fn settle(pid: Option<u32>) -> Option<u64> {
    let pid = pid?;
    let start = Instant::now();
    let mut last = write_bytes(pid)?;
    let mut still_since = Instant::now();
    while still_since.elapsed() < QUIET && start.elapsed() < SETTLE_MAX {
        tokio::time::sleep(POLL).await;
        let now = write_bytes(pid)?;
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
    if still_since.elapsed() < QUIET {
        tracing::warn!(
            pid,
            "the server kept writing for {}s; the step's disk figure includes that",
            SETTLE_MAX.as_secs()
        );
    }
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_bytes_is_read_from_its_line() {
        let text = "rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 81920\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_write_bytes(text), Some(81920));
        assert_eq!(parse_write_bytes("rchar: 1\n"), None);
    }

    #[test]
    fn this_process_has_a_counter() {
        assert!(write_bytes(std::process::id()).is_some());
    }
}
