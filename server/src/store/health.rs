//! What the writer thread tells the rest of imboxd about itself: whether it
//! takes writes, refuses them for want of disk space, or has failed for good,
//! and when it last went round its loop (its heartbeat).
//!
//! Why: a writer that failed used to refuse every write "until a restart",
//! while reads went on, so the systemd watchdog kept being pinged, `/health`
//! said ok, and nothing restarted it. Now a failure that cannot be retried
//! fires [`WriterHealth::failed`], which ends imboxd with an error (systemd
//! restarts it, and the write-ahead log is applied again); the watchdog is
//! pinged only while the heartbeat is fresh; `/health` and the status page
//! report the state.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// The writer goes round its loop at least this often when idle, so that
/// its heartbeat stays fresh and a full disk is measured again.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// A heartbeat older than this means the writer is stuck (a disk that no
/// longer answers, or a commit that never ends). Far longer than the slowest
/// checkpoint on an SD card, and as long as the watchdog's own timeout in the
/// image's unit (`WatchdogSec=30s`).
pub const STALE: Duration = Duration::from_secs(30);

/// How far before its creation [`WriterHealth`] counts its beats from.
const ORIGIN: Duration = Duration::from_secs(24 * 3600);

/// Where the writer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriterState {
    /// Taking writes.
    Running,
    /// Refusing writes because the data disk has too little free space;
    /// reads go on, and writes resume by themselves when space is freed.
    StorageFull,
    /// Failed in a way it cannot recover from without a restart.
    Failed,
}

/// Shared between the writer thread and everyone who asks about it.
#[derive(Debug)]
pub struct WriterHealth {
    state: AtomicU8,
    started: Instant,
    /// Milliseconds after `started` of the last heartbeat.
    beat_ms: AtomicU64,
    /// Why the writer is not running, for people.
    reason: Mutex<Option<String>>,
    failed: CancellationToken,
    /// A fault the next log append meets instead of the disk (tests only).
    #[cfg(test)]
    fault: Mutex<Option<i32>>,
}

impl Default for WriterHealth {
    fn default() -> Self {
        WriterHealth {
            state: AtomicU8::new(0),
            // An origin well in the past keeps every beat far above zero, so
            // that ages are plain subtractions.
            started: Instant::now().checked_sub(ORIGIN).unwrap_or_else(Instant::now),
            beat_ms: AtomicU64::new(0),
            reason: Mutex::new(None),
            failed: CancellationToken::new(),
            #[cfg(test)]
            fault: Mutex::new(None),
        }
    }
}

impl WriterHealth {
    /// The writer's state now.
    pub fn state(&self) -> WriterState {
        match self.state.load(Ordering::Acquire) {
            0 => WriterState::Running,
            1 => WriterState::StorageFull,
            _ => WriterState::Failed,
        }
    }

    /// Why the writer is not running (`None` while it is).
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How long ago the writer last went round its loop.
    pub fn heartbeat_age(&self) -> Duration {
        let now = self.started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.beat_ms.load(Ordering::Acquire)))
    }

    /// Whether the writer can take writes, or at least is alive and will take
    /// them again by itself (a full disk): what the watchdog is pinged for.
    pub fn alive(&self) -> bool {
        self.state() != WriterState::Failed && self.heartbeat_age() < STALE
    }

    /// Cancelled when the writer has failed for good and let go of the
    /// database.
    pub fn failed(&self) -> CancellationToken {
        self.failed.clone()
    }

    pub(super) fn beat(&self) {
        self.beat_ms.store(self.started.elapsed().as_millis() as u64, Ordering::Release);
    }

    /// Records a full disk (or its end). Returns whether the state changed.
    pub(super) fn set_full(&self, full: Option<String>) -> bool {
        if self.state() == WriterState::Failed {
            return false;
        }
        let state = u8::from(full.is_some());
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = full;
        self.state.swap(state, Ordering::AcqRel) != state
    }

    pub(super) fn fail(&self, reason: String) {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.state.store(2, Ordering::Release);
    }

    /// Called by the failed writer once it has let go of the database, so
    /// that whoever hears of the failure may reopen it at once.
    pub(super) fn announce_failure(&self) {
        self.failed.cancel();
    }

    /// Makes the next log append fail with this OS error (tests only).
    #[cfg(test)]
    pub fn inject_log_fault(&self, errno: i32) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = Some(errno);
    }

    /// Makes the last heartbeat look `age` older, as a writer stuck that
    /// long would leave it (tests only).
    #[cfg(test)]
    pub fn backdate_heartbeat(&self, age: Duration) {
        let age = age.as_millis() as u64;
        let _ =
            self.beat_ms.fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| Some(b.saturating_sub(age)));
    }

    #[cfg(test)]
    pub(super) fn take_fault(&self) -> Option<std::io::Error> {
        self.fault.lock().unwrap_or_else(|p| p.into_inner()).take().map(std::io::Error::from_raw_os_error)
    }
}

/// Whether an I/O error means that the disk (or the user's quota) is full.
pub fn is_disk_full(err: &std::io::Error) -> bool {
    matches!(err.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}
