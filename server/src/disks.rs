//! The appliance's disks, for the setup page's storage step: the USB disks
//! that imbox-storage found at boot (`setup.storage_status`, on the image
//! `/run/imbox/storage.json`), and moving the data to one of them.
//!
//! imboxd runs unprivileged and can neither format nor mount a disk, so a
//! move is shared with the image's `storage.sh`: imboxd pauses its database
//! (durable and unchanging from then on; reads go on, writes are refused),
//! asks for the move with a request file in the data directory, and reports
//! the progress the script writes (`setup.storage_progress`). The script
//! copies the data while imboxd keeps serving the progress bar, then stops
//! imboxd, mounts the new disk at /data and starts imboxd again. When the
//! script fails before that, or never answers, imboxd takes writes again by
//! itself. docs/IMAGE.md, "Storage requests", has the script's side.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// How long the script may take to answer a request with its first
/// progress line before imboxd gives up and takes writes again.
const PICKUP: Duration = Duration::from_secs(30);
/// How often the progress file is read during a move.
const POLL: Duration = Duration::from_millis(500);
/// The disk list and the progress line are small; anything larger is not
/// what the script writes.
const MAX_FILE_BYTES: u64 = 256 * 1024;
/// A failure the script reported this recently, before this imboxd started,
/// is the last move's: the script restarts imboxd after a move that failed
/// once imboxd was stopped, and the owner (logged out by the restart) should
/// still read why.
const RECENT_FAILURE: Duration = Duration::from_secs(15 * 60);
/// The request file's name in the data directory.
pub const REQUEST_FILE: &str = "storage-request";

/// Why the disks cannot be listed or a move cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// No disk list: imboxd runs outside the appliance image.
    #[error(
        "this imboxd does not run on the imbox appliance image (there is no {0}), so it cannot adopt \
         disks: stop imboxd and move its data directory yourself"
    )]
    NotAppliance(String),
    /// The disk list or the progress file cannot be read or understood.
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    /// The device is not among the USB disks found at boot.
    #[error("there is no USB disk {0}: reload the page to see the disks the box found")]
    UnknownDisk(String),
    /// The disk already holds this box's data.
    #[error("{0} already holds this box's data")]
    InUse(String),
    /// The disk holds data (or another box's) and the owner has not agreed
    /// to erase it.
    #[error("{device} ({what}) is not empty: adopting it erases everything on it, so confirm that first")]
    ConsentRequired { device: String, what: String },
    /// The storage service found no stable name for the disk (its
    /// /dev/disk/by-id name, from the serial number or WWN), so consent
    /// could name it only by /dev/sdX, which a replug can give to another
    /// disk.
    #[error(
        "{0} has no serial number or WWN the box can name it by, so the box will not erase or adopt it: \
         use another disk, or plug it into another USB port and reload the page"
    )]
    Unnamed(String),
    /// A move is under way already.
    #[error("the data is being moved to {0} already: wait until that is done")]
    Busy(String),
    /// The database could not be paused (made durable) for the copy.
    #[error("cannot prepare the database for the move, nothing was changed: {0}")]
    Pause(StoreError),
    /// The request file could not be written.
    #[error("cannot write the storage request {path}: {reason}; nothing was changed")]
    Request { path: String, reason: String },
}

/// What the storage step is told about a USB disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskState {
    /// Marked for this box (not mounted: the move makes it the data disk).
    Ours,
    /// Marked for another box: never written without consent.
    OtherBox,
    /// No partition table, no file system.
    Blank,
    /// Holds something else.
    HasData,
    /// Mounted at /data now.
    InUse,
}

/// A USB disk found at boot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Disk {
    pub device: String,
    /// The disk's /dev/disk/by-id name (vendor, model and serial, or WWN):
    /// the request names the disk by it and its size, so that consent given
    /// for one disk cannot erase another that took its /dev/sdX after a
    /// replug. Empty when udev found no serial.
    #[serde(default)]
    pub id: String,
    pub model: String,
    pub serial: String,
    pub size_bytes: u64,
    pub state: DiskState,
}

/// Where /data is now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataDisk {
    /// `usb` or `sd`, or `none` when the storage service mounted nothing
    /// (see [`Problem`]).
    pub kind: String,
    pub device: String,
    /// The data is on the SD card, which wears out under steady writes.
    #[serde(default)]
    pub sd_wear_warning: bool,
}

/// The disk list that `storage.sh` writes at boot and after a move.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskReport {
    pub data: DataDisk,
    pub disks: Vec<Disk>,
    /// Why the storage service did not start imboxd on the box's data
    /// (`null` when nothing is wrong). With a problem, the service runs
    /// `imboxd standby` instead, which shows it; a normally running imboxd
    /// shows only [`Problem::CheckFailed`] (of a disk that is not its data
    /// disk) and ignores the rest, which cannot hold while it runs.
    #[serde(default)]
    pub problem: Option<Problem>,
}

/// A disk as the storage service names it to people: what is printed on it
/// and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskIdentity {
    pub model: String,
    pub serial: String,
    pub size_bytes: u64,
}

/// A disk that is plugged in, with its device name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresentDisk {
    pub device: String,
    #[serde(flatten)]
    pub disk: DiskIdentity,
}

/// Why the box does not serve its data: the `problem` member of the
/// storage service's status file. docs/IMAGE.md, "When the data disk is
/// missing".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Problem {
    /// The USB disk the data lives on is not plugged in (or not yet seen).
    Missing { disk: DiskIdentity },
    /// The data disk's file system failed `e2fsck`; it was not mounted.
    CheckFailed { disk: DiskIdentity, device: String },
    /// More than one disk is marked as this box's data disk; none was
    /// mounted.
    TwoDisks { disks: Vec<PresentDisk> },
}

impl Problem {
    /// The name `/health` and the docs use for this kind of problem.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Missing { .. } => "missing",
            Problem::CheckFailed { .. } => "check-failed",
            Problem::TwoDisks { .. } => "two-disks",
        }
    }

    /// A title and what a person should read: what is wrong and what to do.
    pub fn describe(&self) -> (&'static str, String) {
        match self {
            Problem::Missing { disk } => (
                "The data disk is missing",
                format!(
                    "The data disk of this box is missing: {}. Plug it in; the box starts by itself \
                     when it appears. The box does not serve anything else meanwhile, so that nobody \
                     reads or writes an old copy of the data.",
                    disk.describe()
                ),
            ),
            Problem::CheckFailed { disk, device } => (
                "The data disk failed its check",
                format!(
                    "The file system on the data disk, {} at {device}, failed its check; it was not \
                     mounted, so nothing on it was changed. Unplug the disk, repair its file system on \
                     a Linux computer (e2fsck -f on the partition labelled imbox-data) or restore a \
                     backup onto it, and plug it in again: the box checks it again when it appears.",
                    disk.describe()
                ),
            ),
            Problem::TwoDisks { disks } => {
                let names: Vec<String> =
                    disks.iter().map(|d| format!("{} at {}", d.disk.describe(), d.device)).collect();
                let listed = match names.as_slice() {
                    [] => "(the storage service named none)".to_owned(),
                    [one] => one.clone(),
                    [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
                };
                let count = match disks.len() {
                    2 => "Two disks both".to_owned(),
                    n => format!("{n} disks all"),
                };
                (
                    "Two disks hold this box's data",
                    format!(
                        "{count} hold this box's data: {listed}. Neither was mounted, so neither was \
                         changed. Unplug the one you do not want to use; the box starts with the other \
                         by itself."
                    ),
                )
            }
        }
    }
}

impl DiskIdentity {
    /// "Samsung T7 (serial S5XX…, 500 GB)", leaving out what is unknown.
    pub fn describe(&self) -> String {
        let model = if self.model.trim().is_empty() { "a USB disk" } else { self.model.trim() };
        let mut details = Vec::new();
        if !self.serial.trim().is_empty() {
            details.push(format!("serial {}", self.serial.trim()));
        }
        if self.size_bytes > 0 {
            details.push(decimal_size(self.size_bytes));
        }
        if details.is_empty() {
            model.to_owned()
        } else {
            format!("{model} ({})", details.join(", "))
        }
    }
}

/// A size as disk makers print it on the label: decimal units, so a
/// 500,107,862,016-byte disk is "500 GB".
pub fn decimal_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        // One decimal where it tells disks apart: 1.5 TB, 64.0 GB.
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What the storage service's status file says, read for a page that must
/// always answer: the file is read afresh each time, at most
/// [`MAX_STATUS_BYTES`], and a missing, oversized or malformed file is a
/// state of its own rather than an error.
#[derive(Debug, Clone)]
pub enum StatusFile {
    /// The file holds a disk report.
    Report(DiskReport),
    /// There is no file yet: the storage service has not reported.
    Absent,
    /// The file cannot be read or is not what the storage service writes.
    Unreadable(String),
}

/// The most of the status file [`read_status`] reads.
pub const MAX_STATUS_BYTES: u64 = 64 * 1024;

/// Reads the storage service's status file (see [`StatusFile`]).
pub fn read_status(path: &Path) -> StatusFile {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return StatusFile::Absent,
        Err(e) => return StatusFile::Unreadable(format!("cannot read {}: {e}", path.display())),
    };
    // Read one byte more than allowed, to tell a full file from a cut one.
    let mut bytes = Vec::new();
    if let Err(e) = file.take(MAX_STATUS_BYTES + 1).read_to_end(&mut bytes) {
        return StatusFile::Unreadable(format!("cannot read {}: {e}", path.display()));
    }
    if bytes.len() as u64 > MAX_STATUS_BYTES {
        return StatusFile::Unreadable(format!(
            "{} is larger than {MAX_STATUS_BYTES} bytes, more than the storage service ever writes",
            path.display()
        ));
    }
    match serde_json::from_slice(&bytes) {
        Ok(report) => StatusFile::Report(report),
        Err(e) => StatusFile::Unreadable(format!(
            "{} is not the status the storage service writes: {e}",
            path.display()
        )),
    }
}

/// Where a move is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveState {
    /// Asked; the script has not answered yet.
    Waiting,
    /// Checking (and formatting) the disk.
    Preparing,
    /// Copying the data; imboxd serves but takes no changes.
    Copying,
    /// imboxd is about to stop and start again on the new disk.
    Switching,
    /// The data is on the new disk.
    Done,
    /// Nothing was moved; the message says why. Writes go on.
    Failed,
}

/// A move's progress, as the storage step shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub device: String,
    pub state: MoveState,
    pub percent: u8,
    pub message: String,
}

impl Progress {
    fn new(device: &str, state: MoveState, message: &str) -> Progress {
        Progress { device: device.to_owned(), state, percent: 0, message: message.to_owned() }
    }

    fn finished(&self) -> bool {
        matches!(self.state, MoveState::Done | MoveState::Failed)
    }
}

/// Parses the script's progress line, `STATE PERCENT [MESSAGE]`.
pub fn parse_progress(line: &str) -> Option<(MoveState, u8, String)> {
    let line = line.lines().next()?.trim();
    let mut words = line.splitn(3, ' ');
    let state = match words.next()? {
        "preparing" => MoveState::Preparing,
        "copying" => MoveState::Copying,
        "switching" => MoveState::Switching,
        "done" => MoveState::Done,
        "failed" => MoveState::Failed,
        _ => return None,
    };
    let percent: u8 = words.next()?.parse().ok()?;
    Some((state, percent.min(100), words.next().unwrap_or("").trim().to_owned()))
}

/// The disk list and the one move this imboxd may run.
#[derive(Debug)]
pub struct Disks {
    status: PathBuf,
    progress: PathBuf,
    request: PathBuf,
    /// The move this process asked for, if any: its last known progress.
    current: Mutex<Option<Progress>>,
    /// How long the script may take to answer (PICKUP but in tests).
    pickup: Duration,
}

/// Which version of a file this is: its inode, size and modification time.
/// The script replaces the progress file (a new inode each time); a
/// different stamp than when the move was asked for is a line about it.
type Stamp = (u64, u64, SystemTime);

fn read_small(path: &Path) -> Result<Option<(String, Stamp)>, DiskError> {
    use std::os::unix::fs::MetadataExt;
    let unreadable = |reason: String| DiskError::Unreadable { path: path.display().to_string(), reason };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e.to_string())),
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(unreadable(format!("it is {} bytes, more than the script ever writes", meta.len())));
    }
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
    Ok(Some((text, (meta.ino(), meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)))))
}

/// A move that failed within [`RECENT_FAILURE`], as the progress file says.
fn recent_failure(progress: &Path) -> Option<Progress> {
    let (line, (_, _, modified)) = read_small(progress).ok()??;
    let (state, _, message) = parse_progress(&line)?;
    // A time ahead of now (the coarse file clock, or a clock set back) is now.
    let age = SystemTime::now().duration_since(modified).unwrap_or_default();
    (state == MoveState::Failed && age < RECENT_FAILURE).then(|| Progress::new("", state, &message))
}

impl Disks {
    /// The disks listed in `status`; moves report through `progress` and are
    /// asked for in `data_dir`.
    pub fn new(status: PathBuf, progress: PathBuf, data_dir: &Path) -> Disks {
        let last = recent_failure(&progress);
        Disks {
            status,
            progress,
            request: data_dir.join(REQUEST_FILE),
            current: Mutex::new(last),
            pickup: PICKUP,
        }
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Option<Progress>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The disks found at boot; `None` off the appliance image.
    pub fn report(&self) -> Result<Option<DiskReport>, DiskError> {
        let Some((text, _)) = read_small(&self.status)? else { return Ok(None) };
        serde_json::from_str(&text).map(Some).map_err(|e| DiskError::Unreadable {
            path: self.status.display().to_string(),
            reason: format!("not the disk list storage.sh writes: {e}"),
        })
    }

    /// The progress of the move this imboxd asked for, if it asked.
    pub fn progress(&self) -> Option<Progress> {
        self.current().clone()
    }

    /// Starts moving the data to `device`, a USB disk from the list. `erase`
    /// is the owner's consent to erase a disk that holds data or belongs to
    /// another box (a blank disk is formatted without it: there is nothing
    /// to lose). Returns once the database is paused and the request is
    /// written; [`Disks::progress`] follows the rest.
    pub async fn adopt(
        self: &Arc<Self>,
        store: &Store,
        device: &str,
        erase: bool,
    ) -> Result<Progress, DiskError> {
        let report =
            self.report()?.ok_or_else(|| DiskError::NotAppliance(self.status.display().to_string()))?;
        let disk = report
            .disks
            .iter()
            .find(|d| d.device == device)
            .ok_or_else(|| DiskError::UnknownDisk(device.to_owned()))?;
        let format = match disk.state {
            DiskState::InUse => return Err(DiskError::InUse(device.to_owned())),
            DiskState::Ours | DiskState::Blank => false,
            DiskState::OtherBox | DiskState::HasData if !erase => {
                let what = if disk.state == DiskState::OtherBox {
                    "it belongs to another imbox"
                } else {
                    "it holds data"
                };
                return Err(DiskError::ConsentRequired { device: device.to_owned(), what: what.to_owned() });
            }
            DiskState::OtherBox | DiskState::HasData => true,
        };
        // By-id names are made of [A-Za-z0-9._:-] by udev; anything else
        // (or nothing) cannot be passed on the request line unambiguously.
        let named = !disk.id.is_empty()
            && disk.id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-+".contains(&b));
        if !named {
            return Err(DiskError::Unnamed(device.to_owned()));
        }
        let request = format!(
            "adopt {device} {} {}{}\n",
            disk.id,
            disk.size_bytes,
            if format { " format" } else { "" }
        );
        {
            let mut current = self.current();
            if let Some(busy) = current.as_ref().filter(|p| p.state != MoveState::Failed) {
                return Err(DiskError::Busy(busy.device.clone()));
            }
            *current = Some(Progress::new(device, MoveState::Waiting, "waiting for the storage service"));
        }
        let started = self.start(store, &request).await;
        match started {
            Ok(earlier) => {
                tokio::spawn(self.clone().follow(store.clone(), earlier));
                Ok(self.progress().unwrap_or_else(|| Progress::new(device, MoveState::Waiting, "")))
            }
            Err(e) => {
                *self.current() = None;
                Err(e)
            }
        }
    }

    /// Pauses the database and writes the request; returns the progress
    /// file's stamp before the request (a line left by an earlier move).
    async fn start(&self, store: &Store, line: &str) -> Result<Option<Stamp>, DiskError> {
        store.pause().await.map_err(DiskError::Pause)?;
        let earlier = read_small(&self.progress).ok().flatten().map(|(_, stamp)| stamp);
        // Written whole and then renamed: the script starts as soon as the
        // name appears.
        let tmp = self.request.with_extension("tmp");
        let written = std::fs::write(&tmp, line).and_then(|()| std::fs::rename(&tmp, &self.request));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            let _ = store.resume().await;
            return Err(DiskError::Request {
                path: self.request.display().to_string(),
                reason: e.to_string(),
            });
        }
        tracing::info!(request = line.trim_end(), "the data is to move to another disk; writes are paused");
        Ok(earlier)
    }

    /// Follows the script's progress until the move is done or has failed;
    /// after a failure (or no answer at all) writes resume.
    async fn follow(self: Arc<Self>, store: Store, earlier: Option<Stamp>) {
        let asked_at = std::time::Instant::now();
        loop {
            tokio::time::sleep(POLL).await;
            let fresh = match read_small(&self.progress) {
                Ok(Some((line, stamp))) if Some(stamp) != earlier => parse_progress(&line),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the move's progress");
                    None
                }
            };
            let progress = {
                let mut current = self.current();
                let Some(progress) = current.as_mut() else { return };
                match fresh {
                    Some((state, percent, message)) => {
                        progress.state = state;
                        progress.percent = percent;
                        progress.message = message;
                    }
                    None if progress.state == MoveState::Waiting && asked_at.elapsed() > self.pickup => {
                        let _ = std::fs::remove_file(&self.request);
                        progress.state = MoveState::Failed;
                        progress.message = format!(
                            "the box's storage service did not take the request within {} s, so nothing \
                             was moved: restart the box and try again",
                            self.pickup.as_secs()
                        );
                    }
                    None => {}
                }
                progress.clone()
            };
            if progress.finished() {
                if progress.state == MoveState::Failed {
                    tracing::error!(device = %progress.device, reason = %progress.message, "the data was not moved; writes resume");
                    if let Err(e) = store.resume().await {
                        tracing::error!(error = %e, "cannot resume writes");
                    }
                } else {
                    // The script stops imboxd now and starts it on the new disk.
                    tracing::info!(device = %progress.device, "the data is on the new disk");
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_are_read_and_anything_else_is_not() {
        assert_eq!(parse_progress("copying 42\n"), Some((MoveState::Copying, 42, String::new())));
        assert_eq!(
            parse_progress("failed 0 mkfs.ext4 failed: replace the disk\n"),
            Some((MoveState::Failed, 0, "mkfs.ext4 failed: replace the disk".into()))
        );
        assert_eq!(parse_progress("done 250"), Some((MoveState::Done, 100, String::new())));
        assert_eq!(parse_progress("copying"), None);
        assert_eq!(parse_progress("copying many"), None);
        assert_eq!(parse_progress("waiting 0"), None);
        assert_eq!(parse_progress(""), None);
    }

    const DISKS: &str = r#"{
  "box": "5d0c",
  "data": {"kind": "sd", "device": "/dev/mmcblk0p4", "sd_wear_warning": true},
  "disks": [
    {"device": "/dev/sda", "id": "usb-Samsung_SSD_S1-0:0", "model": "Samsung SSD", "serial": "S1", "size_bytes": 500107862016, "state": "blank"},
    {"device": "/dev/sdb", "model": "", "serial": "", "size_bytes": 0, "state": "other-box"}
  ]
}"#;

    #[test]
    fn the_disk_list_storage_sh_writes_is_understood() {
        let text = DISKS;
        let report: DiskReport = serde_json::from_str(text).unwrap();
        assert!(report.data.sd_wear_warning);
        assert_eq!(report.disks[0].state, DiskState::Blank);
        assert_eq!(report.disks[1].state, DiskState::OtherBox);
        assert!(serde_json::from_str::<DiskReport>(&text.replace("other-box", "mystery")).is_err());
    }

    /// A status file of the storage service in standby, with `problem`.
    fn standby_status(problem: &str) -> String {
        format!(
            r#"{{"box": "5d0c", "data": {{"kind": "none", "device": ""}},
  "disks": [{{"device": "/dev/sdb", "model": "Kingston", "serial": "K9", "size_bytes": 64000000000, "state": "has-data"}}],
  "problem": {problem}}}"#
        )
    }

    fn problem_of(text: &str) -> Option<Problem> {
        serde_json::from_str::<DiskReport>(text).unwrap().problem
    }

    #[test]
    fn each_kind_of_problem_is_read_and_told_with_the_disks_names() {
        assert_eq!(problem_of(DISKS), None, "a file without the member has no problem");
        assert_eq!(problem_of(&standby_status("null")), None);

        let t7 = DiskIdentity {
            model: "Samsung T7".into(),
            serial: "S5XXNJ0R".into(),
            size_bytes: 500_107_862_016,
        };
        let missing = problem_of(&standby_status(
            r#"{"kind": "missing", "disk": {"model": "Samsung T7", "serial": "S5XXNJ0R", "size_bytes": 500107862016}}"#,
        ))
        .unwrap();
        assert_eq!(missing, Problem::Missing { disk: t7.clone() });
        assert_eq!(missing.kind(), "missing");
        let (title, text) = missing.describe();
        assert_eq!(title, "The data disk is missing");
        assert!(
            text.starts_with(
                "The data disk of this box is missing: Samsung T7 (serial S5XXNJ0R, 500 GB). Plug it in;"
            ),
            "{text}"
        );

        let failed = problem_of(&standby_status(
            r#"{"kind": "check-failed", "device": "/dev/sda1",
                "disk": {"model": "Samsung T7", "serial": "S5XXNJ0R", "size_bytes": 500107862016}}"#,
        ))
        .unwrap();
        assert_eq!(failed, Problem::CheckFailed { disk: t7, device: "/dev/sda1".into() });
        assert_eq!(failed.kind(), "check-failed");
        let (_, text) = failed.describe();
        assert!(
            text.contains("Samsung T7 (serial S5XXNJ0R, 500 GB) at /dev/sda1, failed its check"),
            "{text}"
        );
        assert!(text.contains("it was not mounted"), "{text}");

        let two = problem_of(&standby_status(
            r#"{"kind": "two-disks", "disks": [
                {"device": "/dev/sda", "model": "Samsung T7", "serial": "S5XXNJ0R", "size_bytes": 500107862016},
                {"device": "/dev/sdb", "model": "", "serial": "", "size_bytes": 1500000000000}]}"#,
        ))
        .unwrap();
        assert_eq!(two.kind(), "two-disks");
        let (_, text) = two.describe();
        assert!(
            text.starts_with(
                "Two disks both hold this box's data: Samsung T7 (serial S5XXNJ0R, 500 GB) at /dev/sda \
                 and a USB disk (1.5 TB) at /dev/sdb. Neither was mounted"
            ),
            "{text}"
        );
        assert!(text.contains("Unplug the one you do not want to use"), "{text}");

        for bad in
            [r#"{"kind": "melted"}"#, r#"{"kind": "missing"}"#, r#"{"kind": "two-disks", "disks": 2}"#, "7"]
        {
            assert!(serde_json::from_str::<DiskReport>(&standby_status(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_read_as_on_the_label() {
        assert_eq!(decimal_size(0), "0 bytes");
        assert_eq!(decimal_size(999), "999 bytes");
        assert_eq!(decimal_size(64_000_000_000), "64.0 GB");
        assert_eq!(decimal_size(256_060_514_304), "256 GB");
        assert_eq!(decimal_size(4_000_787_030_016), "4.0 TB");
    }

    #[test]
    fn the_status_file_is_read_bounded_and_a_bad_one_is_a_state_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("storage.json");
        assert!(matches!(read_status(&path), StatusFile::Absent));
        std::fs::write(
            &path,
            standby_status(r#"{"kind": "missing", "disk": {"model": "", "serial": "", "size_bytes": 0}}"#),
        )
        .unwrap();
        let StatusFile::Report(report) = read_status(&path) else { panic!("not read") };
        assert_eq!(report.problem.map(|p| p.kind()), Some("missing"));
        std::fs::write(&path, "{\"data\": ").unwrap();
        assert!(matches!(read_status(&path), StatusFile::Unreadable(e) if e.contains("not the status")));
        let mut huge = standby_status("null");
        huge.push_str(&" ".repeat(MAX_STATUS_BYTES as usize));
        std::fs::write(&path, huge).unwrap();
        assert!(
            matches!(read_status(&path), StatusFile::Unreadable(e) if e.contains("larger than 65536 bytes"))
        );
    }

    #[test]
    fn a_recent_failure_is_reported_after_a_restart_and_an_old_one_or_a_success_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let progress = dir.path().join("progress");
        let disks = || Disks::new(dir.path().join("storage.json"), progress.clone(), dir.path());
        assert_eq!(disks().progress(), None);
        std::fs::write(&progress, "done 100\n").unwrap();
        assert_eq!(disks().progress(), None);
        std::fs::write(&progress, "failed 0 the new disk could not be mounted: try another disk\n").unwrap();
        let last = disks().progress().unwrap();
        assert_eq!(
            (last.state, last.message.as_str()),
            (MoveState::Failed, "the new disk could not be mounted: try another disk")
        );
        let file = std::fs::File::options().write(true).open(&progress).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();
        assert_eq!(disks().progress(), None);
    }

    #[tokio::test]
    async fn a_request_nobody_takes_is_withdrawn_and_writes_resume() {
        use crate::store::{NoListener, StoreOptions};
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open(&dir.path().join("s.redb"), StoreOptions::default(), Arc::new(NoListener)).unwrap();
        std::fs::write(dir.path().join("storage.json"), DISKS).unwrap();
        let mut disks = Disks::new(dir.path().join("storage.json"), dir.path().join("progress"), dir.path());
        disks.pickup = Duration::from_millis(300);
        let disks = Arc::new(disks);

        assert_eq!(disks.adopt(&store, "/dev/sda", false).await.unwrap().state, MoveState::Waiting);
        assert!(dir.path().join(REQUEST_FILE).exists());
        let paused = store.create_user("ann", "hash".into(), false).await;
        assert!(matches!(paused, Err(StoreError::Paused)), "{paused:?}");
        for _ in 0..50 {
            if disks.progress().is_some_and(|p| p.finished()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let progress = disks.progress().unwrap();
        assert_eq!(progress.state, MoveState::Failed);
        assert!(progress.message.contains("did not take the request"), "{}", progress.message);
        assert!(!dir.path().join(REQUEST_FILE).exists(), "the unanswered request is still there");
        // follow() resumes the store right after it records the failure.
        let mut created = store.create_user("ann", "hash".into(), false).await;
        for _ in 0..20 {
            if created.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            created = store.create_user("ann", "hash".into(), false).await;
        }
        assert!(created.is_ok(), "{created:?}");
    }
}
