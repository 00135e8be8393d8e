//! Writing small files so that a power cut leaves the old content or the
//! new one, never a mix: the box key and certificate, the owner's own
//! certificate and its choice.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `path` whole or not at all, with permissions `mode`: a temporary
/// file of its own beside it (so that two files written together never
/// collide), fsynced, renamed over `path`, and the directory fsynced so that
/// the rename survives power loss.
pub fn write_whole(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    sync_parent(path)
}

/// Makes a change of the directory that holds `path` (a rename, a removal)
/// durable.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}
