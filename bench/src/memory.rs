//! A process's resident memory, read from /proc: what the server holds in RAM,
//! which is what a Raspberry Pi runs out of.

use std::path::PathBuf;

use anyhow::Context;

/// The resident set size (VmRSS) of process `pid`, in bytes.
pub fn resident_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let status = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {} (is the server running?)", path.display()))?;
    vm_rss_bytes(&status).with_context(|| format!("{} has no VmRSS line", path.display()))
}

/// The VmRSS line of a /proc/PID/status text, in bytes.
pub fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value * 1024),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\timboxd\nVmPeak:\t  200000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(vm_rss_bytes(status), Some(12345 * 1024));
        assert_eq!(vm_rss_bytes("Name:\tx\n"), None);
    }

    #[test]
    fn our_own_memory_is_readable() {
        let rss = resident_bytes(std::process::id()).expect("own status");
        assert!(rss > 100 * 1024);
    }
}
