//! The open-files limit: every connection is a file descriptor, and the
//! default soft limit (often 1024) would stop a run long before the server
//! is tested.

/// What the load generator asks for: more than the 100,000 connections of the
/// full run, plus files and the QUIC endpoints.
const WANTED: u64 = 1_048_576;

/// Raises this process's open-files limit as far as it may go and returns
/// the new soft limit. Root may raise the hard limit too (up to the kernel's
/// fs.nr_open); anyone else only the soft limit up to the hard one.
pub fn raise() -> std::io::Result<u64> {
    use rlimit::Resource;
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(WANTED);
    let wanted = WANTED.min(nr_open);
    let (soft, hard) = rlimit::getrlimit(Resource::NOFILE)?;
    if soft >= wanted {
        return Ok(soft);
    }
    if hard < wanted && rlimit::setrlimit(Resource::NOFILE, wanted, wanted).is_ok() {
        return Ok(wanted);
    }
    rlimit::increase_nofile_limit(wanted)
}
