//! The uploads a profile has started: `DIR/uploads.json`, beside the
//! profile, so that uploading the same file again resumes it.
//!
//! An entry matches a file by its canonical path, size and modification
//! time, for one user on one box; anything else about the file changing is
//! caught when the box's id is checked against the file's hash. The file is
//! rewritten whole and atomically (like the profile), and bounded: the
//! oldest entries go first past [`MAX_ENTRIES`], and entries older than
//! [`MAX_AGE_MS`] go at every save (the box drops unfinished uploads after a
//! day by default, and unsent ones too).
//!
//! Two processes uploading at once may each write the file without the
//! other's entry; the loser's upload then starts from 0 next time. Nothing
//! worse can happen, so there is no lock.
//!
//! Failing to read or write this file never fails an upload: it costs only
//! the ability to resume, and a warning says so.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{now_ms, LocalFile};
use crate::profile::write_private;

/// The file's name in the profile directory.
pub const UPLOADS_FILE: &str = "uploads.json";

/// Entries kept at most.
const MAX_ENTRIES: usize = 100;

/// Entries older than this are dropped: 30 days.
const MAX_AGE_MS: u64 = 30 * 24 * 3600 * 1000;

#[derive(Debug, Default, Serialize, Deserialize)]
struct UploadsFile {
    #[serde(default)]
    uploads: Vec<Saved>,
}

/// One upload, started or finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Saved {
    /// `user@box` (the box by its key's fingerprint).
    key: String,
    path: String,
    size: u64,
    /// Nanoseconds since the Unix epoch, as a string: JSON numbers lose
    /// precision past 2^53.
    modified_ns: String,
    /// The box's id of the upload.
    pub upload: String,
    /// The attachment id, once the box had all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<String>,
    /// When this entry was last written, in milliseconds since the epoch.
    updated_ms: u64,
}

impl Saved {
    fn matches(&self, key: &str, file: &LocalFile) -> bool {
        self.key == key
            && self.path == file.path.to_string_lossy()
            && self.size == file.size
            && self.modified_ns == file.modified_ns.to_string()
    }
}

fn load(dir: &Path) -> UploadsFile {
    let path = dir.join(UPLOADS_FILE);
    match std::fs::read(&path) {
        Ok(text) => serde_json::from_slice(&text).unwrap_or_else(|err| {
            tracing::warn!("{} is damaged ({err}); unfinished uploads start anew", path.display());
            UploadsFile::default()
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => UploadsFile::default(),
        Err(err) => {
            tracing::warn!("cannot read {} ({err}); unfinished uploads start anew", path.display());
            UploadsFile::default()
        }
    }
}

fn store(dir: &Path, mut file: UploadsFile) {
    let now = now_ms();
    file.uploads.retain(|s| now.saturating_sub(s.updated_ms) < MAX_AGE_MS);
    file.uploads.sort_by_key(|s| std::cmp::Reverse(s.updated_ms));
    file.uploads.truncate(MAX_ENTRIES);
    let written = serde_json::to_vec_pretty(&file)
        .map_err(|e| e.to_string())
        .and_then(|text| write_private(dir, UPLOADS_FILE, &text).map_err(|e| e.to_string()));
    if let Err(err) = written {
        tracing::warn!("cannot save the upload's state ({err}); if it is interrupted, it will start anew");
    }
}

/// The saved upload of this version of `file`, if any.
pub(crate) fn find(dir: &Path, key: &str, file: &LocalFile) -> Option<Saved> {
    load(dir).uploads.into_iter().find(|s| s.matches(key, file))
}

/// Saves (or updates) the upload of `file`.
pub(crate) fn save(dir: &Path, key: &str, file: &LocalFile, upload: &str, attachment: Option<&str>) {
    let mut all = load(dir);
    all.uploads.retain(|s| !s.matches(key, file));
    // First: among entries of the same millisecond, the newest is kept.
    all.uploads.insert(
        0,
        Saved {
            key: key.to_owned(),
            path: file.path.to_string_lossy().into_owned(),
            size: file.size,
            modified_ns: file.modified_ns.to_string(),
            upload: upload.to_owned(),
            attachment: attachment.map(str::to_owned),
            updated_ms: now_ms(),
        },
    );
    store(dir, all);
}

/// Forgets the upload of `file` (the box no longer has it, or it was of
/// another content).
pub(crate) fn forget(dir: &Path, key: &str, file: &LocalFile) {
    let mut all = load(dir);
    let before = all.uploads.len();
    all.uploads.retain(|s| !s.matches(key, file));
    if all.uploads.len() != before {
        store(dir, all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64, modified_ns: u128) -> LocalFile {
        LocalFile {
            path: path.into(),
            name: "f".into(),
            media_type: "application/octet-stream".into(),
            size,
            modified_ns,
        }
    }

    #[test]
    fn an_upload_is_found_again_only_for_the_same_version_of_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let big = file("/data/film.mp4", 200 << 20, 1_765_000_000_123_456_789);
        assert_eq!(find(dir.path(), "alice@box", &big), None);
        save(dir.path(), "alice@box", &big, "u1", None);
        let found = find(dir.path(), "alice@box", &big).expect("saved");
        assert_eq!((found.upload.as_str(), found.attachment), ("u1", None));
        // Another user, another size, another modification time: another upload.
        assert_eq!(find(dir.path(), "bob@box", &big), None);
        assert_eq!(
            find(dir.path(), "alice@box", &file("/data/film.mp4", 1, 1_765_000_000_123_456_789)),
            None
        );
        assert_eq!(
            find(dir.path(), "alice@box", &file("/data/film.mp4", 200 << 20, 1_765_000_000_123_456_790)),
            None
        );

        let id = "ab".repeat(32);
        save(dir.path(), "alice@box", &big, "u1", Some(&id));
        let all = load(dir.path());
        assert_eq!(all.uploads.len(), 1, "one entry per file");
        assert_eq!(all.uploads[0].attachment.as_deref(), Some(id.as_str()));
        forget(dir.path(), "alice@box", &big);
        assert_eq!(find(dir.path(), "alice@box", &big), None);
    }

    #[test]
    fn the_file_is_bounded_and_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        for i in 0..(MAX_ENTRIES as u64 + 5) {
            save(dir.path(), "alice@box", &file(&format!("/f{i}"), i, 1), &format!("u{i}"), None);
        }
        let all = load(dir.path());
        assert_eq!(all.uploads.len(), MAX_ENTRIES);
        assert!(find(
            dir.path(),
            "alice@box",
            &file(&format!("/f{}", MAX_ENTRIES + 4), MAX_ENTRIES as u64 + 4, 1)
        )
        .is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(UPLOADS_FILE)).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_damaged_file_costs_only_resumption() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(UPLOADS_FILE), b"{\"uploads\": [").expect("write");
        let f = file("/f", 1, 1);
        assert_eq!(find(dir.path(), "alice@box", &f), None);
        save(dir.path(), "alice@box", &f, "u1", None);
        assert!(find(dir.path(), "alice@box", &f).is_some());
    }
}
