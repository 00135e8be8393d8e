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
//! payload (MessagePack). A record that is cut short or fails its checksum
//! ends the log: it was being written when the power went, so nobody was
//! answered for it.
//!
//! The payload says which format it is in, so that a log left by a crash of
//! one release can be applied by the next one, and a release that meets a
//! log it cannot read says so instead of misreading it:
//!
//! - format 1 (imboxd 0.1.0): the array `[seq, now, ops]`. It carries no
//!   format number; being the only 3-element array tells it apart.
//! - format 2 (imboxd 0.2.0) and later: the array `[format, seq, now, ops,
//!   ...]`, at least 4 elements, the format first. A later format may add
//!   elements after these, but must never be a 3-element array.
//! - format 3 (imboxd 0.3.0): the shape of 2, with the operations of
//!   attachments among the ops.
//! - format 4 (imboxd 0.4.0): the shape of 2, with push registrations
//!   (`WriteOp::Push`) among the ops.
//!
//! `ops` is a list of [`WriteOp`] in every format so far. A format this
//! imboxd does not know is refused before anything of the log is applied:
//! skipping it would drop acknowledged writes, and guessing could apply them
//! wrongly.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::apply::WriteOp;

/// A record larger than this is taken for damage, not read (a batch of the
/// largest allowed size with the longest messages is far smaller).
const MAX_RECORD: usize = 256 << 20;

/// The format of the records this imboxd writes. Raise it (and add a row to
/// [`FORMATS`]) whenever what a record holds changes, a new [`WriteOp`]
/// variant or field included: an older imboxd then refuses the log naming
/// the newer release, instead of failing to decode it or misreading it.
/// (Once per release: changes between two releases share one format, since
/// no released imboxd wrote the intermediate one.)
pub const WAL_FORMAT: u32 = 4;

/// Every record format this imboxd reads, and the release that introduced
/// it: what an error about a format names, so that the reader knows which
/// imboxd can read the log. A new format adds a row here.
const FORMATS: &[(u32, &str)] = &[(1, "0.1.0"), (2, "0.2.0"), (3, "0.3.0"), (4, "0.4.0")];

/// This imboxd's release, as error messages name it.
const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// One batch as the writer applied it.
#[derive(Debug)]
pub struct Record {
    /// The format the record was written in (see the module documentation):
    /// 1 for a log left by imboxd 0.1.0.
    pub format: u32,
    /// Consecutive from 1 over the life of the database.
    pub seq: u64,
    /// The clock the batch was applied with (milliseconds since the epoch).
    pub now: u64,
    pub ops: Vec<WriteOp>,
}

/// Why the log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// Reading, writing, syncing or cutting the file failed.
    #[error("the write-ahead log {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A record passed its checksum but does not decode as any format this
    /// imboxd reads: the file was changed by something other than imboxd,
    /// or a newer imboxd wrote operations this one does not know without
    /// raising [`WAL_FORMAT`]. Nothing of the log is applied.
    #[error(
        "the write-ahead log {path} has a record that this imboxd ({RELEASE}) cannot decode \
         ({reason}): if a newer imboxd ran on this data, start it again so it can apply its log; \
         otherwise the file is damaged: restore it and the database beside it from a backup"
    )]
    Undecodable { path: PathBuf, reason: String },
    /// A record is in a format newer than this imboxd's: the log was left by
    /// a newer imboxd (stopped without a checkpoint, then this older one
    /// started on its data). Nothing of the log is applied, so the newer
    /// imboxd can still apply all of it.
    #[error(
        "the write-ahead log {path} holds records of format {format}, written by a newer imboxd than \
         this one ({RELEASE}, which reads formats {readable}): start that newer imboxd again so it can \
         apply its log, or restore a backup",
        readable = readable_formats()
    )]
    NewerFormat { path: PathBuf, format: u32 },
    /// A record names a format that no imboxd release ever wrote (older than
    /// this one's, yet not in its table): the file is damaged.
    #[error(
        "the write-ahead log {path} holds a record of format {format}, which no imboxd release \
         writes (this one, {RELEASE}, reads formats {readable}): the file is damaged; restore it \
         and the database beside it from a backup",
        readable = readable_formats()
    )]
    UnknownFormat { path: PathBuf, format: u32 },
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
        rmp_serde::encode::write(&mut self.buffer, &(WAL_FORMAT, seq, now, ops))
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
        // A record that passed its checksum was written whole: one that
        // cannot be read stops the opening rather than dropping
        // acknowledged writes.
        let record = decode(path, payload)?;
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

/// Decodes one payload of any format this imboxd reads.
fn decode(path: &Path, payload: &[u8]) -> Result<Record, WalError> {
    let undecodable = |reason: String| WalError::Undecodable { path: path.to_owned(), reason };
    // The array's length and first element tell the format; both are read
    // before the operations, so that a newer format is named rather than
    // reported as garbage.
    let mut header = payload;
    let len = rmp::decode::read_array_len(&mut header)
        .map_err(|e| undecodable(format!("the record is not an array: {e}")))?;
    let format = match len {
        3 => 1,
        4.. => rmp::decode::read_int::<u32, _>(&mut header)
            .map_err(|e| undecodable(format!("the record's first element is not a format number: {e}")))?,
        _ => return Err(undecodable(format!("the record is an array of {len} elements"))),
    };
    let ops = |e: rmp_serde::decode::Error| undecodable(e.to_string());
    match format {
        1 => {
            let (seq, now, ops) = rmp_serde::from_slice::<(u64, u64, Vec<WriteOp>)>(payload).map_err(ops)?;
            Ok(Record { format, seq, now, ops })
        }
        // Format 3 (0.3.0) has the shape of 2; its ops may be attachments'
        // (`WriteOp::Media`, `Send::attachments`), which 0.2.0 cannot read;
        // format 4 (0.4.0) adds push registrations (`WriteOp::Push`).
        2..=4 => {
            let (_, seq, now, ops) =
                rmp_serde::from_slice::<(u32, u64, u64, Vec<WriteOp>)>(payload).map_err(ops)?;
            Ok(Record { format, seq, now, ops })
        }
        newer if newer > WAL_FORMAT => Err(WalError::NewerFormat { path: path.to_owned(), format }),
        _ => Err(WalError::UnknownFormat { path: path.to_owned(), format }),
    }
}

/// The release that introduced a record format, if this imboxd knows it.
pub fn introduced_by(format: u32) -> Option<&'static str> {
    FORMATS.iter().find(|(f, _)| *f == format).map(|(_, release)| *release)
}

/// "1 and 2": the formats this imboxd reads, for error messages.
fn readable_formats() -> String {
    let numbers: Vec<String> = FORMATS.iter().map(|(format, _)| format.to_string()).collect();
    match numbers.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => numbers.join(""),
    }
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

    /// A whole record around `payload`, as every format frames it: length,
    /// CRC-32, payload.
    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    /// A record exactly as imboxd 0.1.0 wrote it: the tuple (seq, now, ops).
    fn format_1(seq: u64, now: u64, ops: &[&WriteOp]) -> Vec<u8> {
        framed(&rmp_serde::to_vec(&(seq, now, ops)).unwrap())
    }

    /// A new log holding `bytes` (opened afterwards by the caller).
    fn log_of(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.wal");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn a_record_of_imboxd_0_1_0_is_read_as_format_1() {
        let (_dir, path) = log_of(&format_1(1, 100, &[&ack(1), &ack(2)]));
        let records = reread(&path);
        assert_eq!(records.len(), 1);
        let record = &records[0];
        assert_eq!((record.format, record.seq, record.now, record.ops.len()), (1, 1, 100, 2));
        assert!(matches!(record.ops[1], WriteOp::Ack { device: 7, position: 2 }));
    }

    #[test]
    fn new_records_are_written_in_the_current_format() {
        let (_dir, path, mut wal) = new_log();
        wal.append(100, &[&ack(1)]).unwrap();
        drop(wal);
        let bytes = std::fs::read(&path).unwrap();
        // On the disk: a 4-element array whose first element is the format.
        let (format, seq, now, ops): (u32, u64, u64, Vec<WriteOp>) =
            rmp_serde::from_slice(&bytes[8..]).unwrap();
        assert_eq!((format, seq, now, ops.len()), (WAL_FORMAT, 1, 100, 1));
        let records = reread(&path);
        assert_eq!(records.iter().map(|r| (r.format, r.seq)).collect::<Vec<_>>(), [(WAL_FORMAT, 1)]);
    }

    #[test]
    fn a_record_of_a_newer_format_is_refused_naming_the_releases() {
        // A format-99 record with a good checksum, whose operations this
        // imboxd could not decode anyway.
        let payload = rmp_serde::to_vec(&(99u32, 1u64, 100u64, ["an operation of the future"])).unwrap();
        let (_dir, path) = log_of(&framed(&payload));
        let err = Wal::open(&path).unwrap_err();
        assert!(matches!(err, WalError::NewerFormat { format: 99, .. }), "{err:?}");
        let message = err.to_string();
        let expected = format!(
            "the write-ahead log {} holds records of format 99, written by a newer imboxd than this one \
             ({}, which reads formats 1, 2, 3 and 4): start that newer imboxd again so it can apply its log, \
             or restore a backup",
            path.display(),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(message, expected);
        // Refused, not cut off: the newer imboxd must still find it.
        assert_eq!(std::fs::read(&path).unwrap(), framed(&payload));
    }

    #[test]
    fn a_format_no_release_wrote_is_refused_as_damage() {
        let payload = rmp_serde::to_vec(&(0u32, 1u64, 100u64, [ack(1)])).unwrap();
        let (_dir, path) = log_of(&framed(&payload));
        let err = Wal::open(&path).unwrap_err();
        assert!(matches!(err, WalError::UnknownFormat { format: 0, .. }), "{err:?}");
        assert!(err.to_string().contains("restore it"), "{err}");
    }

    #[test]
    fn records_of_format_1_then_2_in_one_log_are_read_in_order() {
        // A log of imboxd 0.1.0 that this imboxd appends to.
        let mut bytes = format_1(1, 100, &[&ack(1)]);
        bytes.extend(format_1(2, 200, &[&ack(2), &ack(3)]));
        let (_dir, path) = log_of(&bytes);
        let (mut wal, records) = Wal::open(&path).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(wal.append(300, &[&ack(4)]).unwrap(), 3);
        drop(wal);
        let records = reread(&path);
        assert_eq!(
            records.iter().map(|r| (r.format, r.seq, r.now, r.ops.len())).collect::<Vec<_>>(),
            [(1, 1, 100, 1), (1, 2, 200, 2), (WAL_FORMAT, 3, 300, 1)]
        );
    }

    /// A prune (an operation of 0.2.0) comes back as it was written.
    #[test]
    fn a_prune_comes_back_as_written() {
        let prune = WriteOp::Prune(crate::store::Prune {
            device_inactive_ms: 7,
            retention_days: 30,
            max_rows: 5000,
            from: crate::store::PruneFrom::Conversations { after: 4 },
        });
        let payload = rmp_serde::to_vec(&(2u32, 1u64, 200u64, [&prune])).unwrap();
        let (_dir, path) = log_of(&framed(&payload));
        let records = reread(&path);
        assert_eq!(records.iter().map(|r| (r.format, r.seq)).collect::<Vec<_>>(), [(2, 1)]);
        assert!(matches!(
            records[0].ops[0],
            WriteOp::Prune(crate::store::Prune {
                retention_days: 30,
                from: crate::store::PruneFrom::Conversations { after: 4 },
                ..
            })
        ));
    }

    /// The operations of attachments (0.3.0) come back as written.
    #[test]
    fn the_operations_of_attachments_come_back_as_written() {
        let store = WriteOp::Media(crate::store::media::MediaOp::Store {
            user: 3,
            hash: [9; 32],
            size: 1234,
            media_type: "image/png".into(),
        });
        let (_dir, path, mut wal) = new_log();
        wal.append(100, &[&store]).unwrap();
        drop(wal);
        let records = reread(&path);
        assert_eq!(records[0].format, WAL_FORMAT);
        assert!(matches!(
            &records[0].ops[0],
            WriteOp::Media(crate::store::media::MediaOp::Store { user: 3, size: 1234, hash, .. }) if *hash == [9; 32]
        ));
    }

    /// The other way round: imboxd 0.1.0 decoded a record as the struct
    /// (seq, now, ops). A format-2 record must fail that decoding (0.1.0
    /// then refuses the log) rather than be misread as another batch.
    #[test]
    fn a_format_2_record_does_not_decode_as_format_1() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct RecordOf010 {
            seq: u64,
            now: u64,
            ops: Vec<WriteOp>,
        }
        let (_dir, path, mut wal) = new_log();
        wal.append(100, &[&ack(1)]).unwrap();
        drop(wal);
        let bytes = std::fs::read(&path).unwrap();
        assert!(rmp_serde::from_slice::<RecordOf010>(&bytes[8..]).is_err());
    }

    #[test]
    fn the_table_of_formats_ends_with_the_one_written() {
        assert_eq!(FORMATS.last().map(|(f, _)| *f), Some(WAL_FORMAT));
        assert_eq!(introduced_by(1), Some("0.1.0"));
        assert_eq!(introduced_by(3), Some("0.3.0"));
        assert_eq!(introduced_by(4), Some("0.4.0"));
        assert_eq!(readable_formats(), "1, 2, 3 and 4");
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
