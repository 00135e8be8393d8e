//! The write-ahead log: what makes a batch durable between checkpoints.
//!
//! Why it exists: a redb commit rewrites every B-tree page the batch touched.
//! Messages spread over many users' logs and conversations touch a handful of
//! pages each, so a durable commit per batch wrote about 20 KiB per message
//! (measured at 2,000 messages/s), and the disk, not the CPU, capped the rate.
//! Instead, the writer appends each batch's requests to this file and
//! fdatasyncs it (a sequential write about the size of the requests), commits
//! the batch to redb without syncing (redb keeps the changed pages in memory),
//! and makes redb durable only at checkpoints, where a page changed by
//! hundreds of batches is written once.
//!
//! A checkpoint records the sequence number of the last record it includes
//! (`wal_through` in the meta table), and the log is then emptied. After a
//! crash, opening the store applies the records past `wal_through` again to
//! the last checkpoint: the same requests, in the same order, with the same
//! clock, on the same state, give the same result, so the database ends where
//! the acknowledged writes left it.
//!
//! Record layout: payload length (u32 LE), CRC-32 of the payload (u32 LE),
//! payload (MessagePack of [`Record`]). A record that is cut short or fails
//! its checksum ends the log: it was being written when the power went, so
//! nobody was answered for it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::apply::WriteOp;

/// A record larger than this is taken for damage, not read (a batch of the
/// largest allowed size with the longest messages is far smaller).
const MAX_RECORD: usize = 256 << 20;

/// One batch as the writer applied it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    /// Consecutive from 1 over the life of the database.
    pub seq: u64,
    /// The clock the batch was applied with (milliseconds since the epoch).
    pub now: u64,
    pub ops: Vec<WriteOp>,
}

/// Why the log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("the write-ahead log {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the write-ahead log {path} has a record that cannot be decoded: {reason}")]
    Undecodable { path: PathBuf, reason: String },
    /// The disk is full: the record was not written, and the file was cut
    /// back to its last whole record, so appending may go on once there is
    /// space.
    #[error("the disk of the write-ahead log {path} is full: {source}")]
    Full { path: PathBuf, source: std::io::Error },
}

/// The open log, positioned at its end.
#[derive(Debug)]
pub struct Wal {
    path: PathBuf,
    file: File,
    /// Bytes in the file.
    len: u64,
    /// The sequence number of the last record written (or checkpointed).
    last_seq: u64,
    /// Reused for encoding, so that appending allocates nothing in the
    /// steady state.
    buffer: Vec<u8>,
    /// An append failed: the file may end in part of a record, or (after a
    /// failed sync) the kernel may have dropped pages of it. A record appended
    /// after that could be lost when the log is read again, so no more are
    /// appended until imboxd restarts and reads the log anew.
    failed: bool,
}

impl Wal {
    /// Opens (or creates) the log and reads every whole record in it. A torn
    /// or damaged tail is cut off, so that new records follow good ones.
    pub fn open(path: &Path) -> Result<(Wal, Vec<Record>), WalError> {
        let io = |source| WalError::Io { path: path.to_owned(), source };
        let created = !path.exists();
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io)?;
        if created {
            // The new name must survive a crash too: sync the directory.
            if let Some(dir) = path.parent() {
                File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            }
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let (records, good) = parse(path, &bytes)?;
        if good < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = bytes.len() - good,
                "the write-ahead log ends in an incomplete record (written when the power went); it is dropped"
            );
            file.set_len(good as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let last_seq = records.last().map_or(0, |r| r.seq);
        let wal = Wal {
            path: path.to_owned(),
            file,
            len: good as u64,
            last_seq,
            buffer: Vec::new(),
            failed: false,
        };
        Ok((wal, records))
    }

    /// Appends one batch and waits until it is on the disk. Returns its
    /// sequence number.
    pub fn append(&mut self, now: u64, ops: &[&WriteOp]) -> Result<u64, WalError> {
        if self.failed {
            let refused =
                std::io::Error::other("an earlier write failed; restart imboxd to read the log anew");
            return Err(WalError::Io { path: self.path.clone(), source: refused });
        }
        let seq = self.last_seq + 1;
        self.buffer.clear();
        self.buffer.extend_from_slice(&[0; 8]);
        // Encoding plain derived data into a Vec cannot fail.
        rmp_serde::encode::write(&mut self.buffer, &(seq, now, ops))
            .unwrap_or_else(|e| unreachable!("encoding a log record failed: {e}"));
        let payload = self.buffer.len() - 8;
        let crc = crc32fast::hash(&self.buffer[8..]);
        self.buffer[0..4].copy_from_slice(&(payload as u32).to_le_bytes());
        self.buffer[4..8].copy_from_slice(&crc.to_le_bytes());
        if let Err(source) = self.file.write_all(&self.buffer) {
            // A full disk refuses the write before anything was synced: cut
            // the file back to its last whole record, and the log is as it
            // was. Any other failure, or a failed cut, leaves it unknown.
            if super::health::is_disk_full(&source) && self.file.set_len(self.len).is_ok() {
                return Err(WalError::Full { path: self.path.clone(), source });
            }
            self.failed = true;
            return Err(WalError::Io { path: self.path.clone(), source });
        }
        if let Err(source) = self.file.sync_data() {
            // After a failed sync the kernel may have dropped the dirty pages
            // and marked them clean: what is on the disk is unknown, even
            // records synced before. Only reading the log anew tells.
            self.failed = true;
            return Err(WalError::Io { path: self.path.clone(), source });
        }
        self.len += self.buffer.len() as u64;
        self.last_seq = seq;
        // One huge batch should not keep its buffer for ever.
        if self.buffer.capacity() > 1 << 20 {
            self.buffer = Vec::new();
        }
        Ok(seq)
    }

    /// Empties the log after a checkpoint made everything in it durable.
    /// Numbering goes on: should the emptying itself be lost in a crash, the
    /// records are older than the checkpoint and are skipped.
    pub fn clear(&mut self) -> Result<(), WalError> {
        self.file.set_len(0).map_err(|source| WalError::Io { path: self.path.clone(), source })?;
        self.len = 0;
        Ok(())
    }

    /// Starts numbering after `seq` (the checkpoint's), when the log holds
    /// nothing newer.
    pub fn continue_after(&mut self, seq: u64) {
        self.last_seq = self.last_seq.max(seq);
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Bytes waiting for a checkpoint.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Reads records from the start; returns them and the length of the good
/// prefix.
fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<Record>, usize), WalError> {
    let mut records: Vec<Record> = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 8 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap_or_default());
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else { break };
        if len > MAX_RECORD || crc32fast::hash(payload) != crc {
            break;
        }
        // A record that passed its checksum but does not decode was written
        // by another version: stop rather than drop acknowledged writes.
        let record: Record = rmp_serde::from_slice(payload)
            .map_err(|e| WalError::Undecodable { path: path.to_owned(), reason: e.to_string() })?;
        if let Some(previous) = records.last() {
            if record.seq != previous.seq + 1 {
                break;
            }
        }
        records.push(record);
        at += 8 + len;
    }
    Ok((records, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(position: u64) -> WriteOp {
        WriteOp::Ack { device: 7, position }
    }

    /// A new, empty log in a temporary directory (kept alive by the first
    /// element).
    fn new_log() -> (tempfile::TempDir, PathBuf, Wal) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.wal");
        let (wal, records) = Wal::open(&path).unwrap();
        assert!(records.is_empty() && wal.is_empty());
        (dir, path, wal)
    }

    /// The records a new opening of the log reads.
    fn reread(path: &Path) -> Vec<Record> {
        Wal::open(path).unwrap().1
    }

    #[test]
    fn records_come_back_in_order_after_reopening() {
        let (_dir, path, mut wal) = new_log();
        assert_eq!(wal.append(100, &[&ack(1), &ack(2)]).unwrap(), 1);
        assert_eq!(wal.append(200, &[&ack(3)]).unwrap(), 2);
        drop(wal);
        let (wal, records) = Wal::open(&path).unwrap();
        assert_eq!(
            records.iter().map(|r| (r.seq, r.now, r.ops.len())).collect::<Vec<_>>(),
            [(1, 100, 2), (2, 200, 1)]
        );
        assert!(matches!(records[1].ops[0], WriteOp::Ack { position: 3, .. }));
        assert_eq!(wal.last_seq(), 2);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_appending_goes_on_after_the_good_records() {
        let (_dir, path, mut wal) = new_log();
        wal.append(1, &[&ack(1)]).unwrap();
        wal.append(2, &[&ack(2)]).unwrap();
        let whole = wal.len();
        drop(wal);
        // The power went half-way through the second record.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(whole - 3).unwrap();
        let (mut wal, records) = Wal::open(&path).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(wal.append(3, &[&ack(3)]).unwrap(), 2);
        drop(wal);
        let records = reread(&path);
        assert_eq!(records.iter().map(|r| r.now).collect::<Vec<_>>(), [1, 3]);
    }

    #[test]
    fn a_damaged_record_ends_the_log() {
        let (_dir, path, mut wal) = new_log();
        wal.append(1, &[&ack(1)]).unwrap();
        let first = wal.len() as usize;
        wal.append(2, &[&ack(2)]).unwrap();
        drop(wal);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[first + 10] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let records = reread(&path);
        assert_eq!(records.len(), 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, first);
    }

    #[test]
    fn after_a_failed_append_nothing_more_is_appended() {
        let (_dir, path, mut wal) = new_log();
        wal.append(1, &[&ack(1)]).unwrap();
        // A handle the kernel refuses writes on stands in for a failing disk.
        let writable = std::mem::replace(&mut wal.file, File::open(&path).unwrap());
        assert!(matches!(wal.append(2, &[&ack(2)]), Err(WalError::Io { .. })));
        wal.file = writable;
        assert!(wal.append(3, &[&ack(3)]).is_err(), "a log that failed once takes no more records");
        drop(wal);
        let records = reread(&path);
        assert_eq!(records.iter().map(|r| r.now).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn clearing_keeps_the_numbering() {
        let (_dir, path, mut wal) = new_log();
        wal.append(1, &[&ack(1)]).unwrap();
        wal.clear().unwrap();
        assert!(wal.is_empty());
        assert_eq!(wal.append(2, &[&ack(2)]).unwrap(), 2);
        drop(wal);
        let records = reread(&path);
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);
    }
}
