//! Where contents live: `media/blobs/XX/HASH`, named by the SHA-256 of
//! their bytes (`XX` its first two hex digits, so that no directory holds
//! more than a few thousand files).

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::store::media::{hex, parse_hex, Hash};

/// The file of a content.
pub fn blob_path(dir: &Path, hash: &Hash) -> PathBuf {
    let name = hex(hash);
    dir.join("blobs").join(&name[..2]).join(name)
}

/// Makes a directory's entries durable (a rename or a new file in it).
pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What [`adopt`] did with a finished part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// The part became the content's file.
    Moved,
    /// The content's file was there already; the part was left in place.
    AlreadyThere,
}

/// Makes a finished part the content `hash`'s file, durably (the part was
/// fsynced at its last checkpoint; the rename and its directory are synced
/// here).
pub fn adopt(dir: &Path, part: &Path, hash: &Hash) -> std::io::Result<Adopted> {
    let target = blob_path(dir, hash);
    if target.exists() {
        return Ok(Adopted::AlreadyThere);
    }
    let parent = target.parent().unwrap_or(dir);
    if !parent.exists() {
        fs::create_dir_all(parent)?;
        fsync_dir(&dir.join("blobs"))?;
    }
    fs::rename(part, &target)?;
    fsync_dir(parent)?;
    fsync_dir(&dir.join("uploads"))?;
    Ok(Adopted::Moved)
}

/// Undoes [`adopt`] when the content's row could not be written.
pub fn give_back(dir: &Path, hash: &Hash, part: &Path) -> std::io::Result<()> {
    fs::rename(blob_path(dir, hash), part)?;
    fsync_dir(&dir.join("uploads"))
}

/// Deletes a content's file (its row is gone).
pub fn delete(dir: &Path, hash: &Hash) -> std::io::Result<()> {
    match fs::remove_file(blob_path(dir, hash)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes the content files that `known` (the store's rows) does not
/// name: a crash after a file was made and before its row was written, or
/// after a row was removed and before its file was. Returns how many.
pub fn sweep(dir: &Path, known: &HashSet<Hash>) -> std::io::Result<usize> {
    let mut removed = 0;
    for shard in fs::read_dir(dir.join("blobs"))? {
        let shard = shard?.path();
        if !shard.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&shard)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            match parse_hex(name) {
                Some(hash) if known.contains(&hash) => {}
                _ => {
                    fs::remove_file(&path)?;
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}
