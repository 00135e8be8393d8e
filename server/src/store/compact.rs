//! Giving the database file's free space back to the disk.
//!
//! redb reuses the pages that deletions free, so a file that lost many rows
//! (pruning, retention) stops growing but does not shrink: only
//! [`Database::compact`] moves the live pages to the front and cuts the
//! file. It needs the database to itself (no transaction open anywhere), so
//! it runs either offline ([`compact_file`], `imboxd compact`) or in the
//! writer at an idle moment after a checkpoint, with reads held back by the
//! store's lock for as long as it takes (see `writer.rs`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::Database;

use super::{NoListener, Store, StoreError, StoreOptions};

/// When the writer compacts the file by itself. Measuring reads every page
/// of the database inside a write transaction (redb counts the pages in use
/// by walking every table), so it comes only after pruning deleted many
/// rows, and at most once per `check_interval`.
#[derive(Debug, Clone, Copy)]
pub struct Compaction {
    /// Measure once pruning has deleted this many rows since the last
    /// measurement (`u64::MAX`: never, so never compact by itself).
    pub min_deleted_rows: u64,
    /// At most this often.
    pub check_interval: Duration,
    /// Compact when at least this many bytes of the file are free…
    pub min_reclaim_bytes: u64,
    /// …and they are at least this share of the file, in percent.
    pub min_reclaim_percent: u64,
}

impl Default for Compaction {
    fn default() -> Self {
        Compaction {
            min_deleted_rows: 100_000,
            check_interval: Duration::from_secs(3600),
            min_reclaim_bytes: 64 << 20,
            min_reclaim_percent: 25,
        }
    }
}

/// How much of the file is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// The file's length.
    pub file_bytes: u64,
    /// Bytes of the pages redb has allocated; the rest of the file is free.
    pub allocated_bytes: u64,
}

impl Space {
    /// What compaction could give back, at most.
    pub fn reclaimable(&self) -> u64 {
        self.file_bytes.saturating_sub(self.allocated_bytes)
    }

    /// Whether compacting is worth a pause of the reads.
    pub fn worth_compacting(&self, c: &Compaction) -> bool {
        let free = self.reclaimable();
        free >= c.min_reclaim_bytes
            && free.saturating_mul(100) >= self.file_bytes.saturating_mul(c.min_reclaim_percent)
    }
}

/// Measures the file (see [`Compaction`] for what it costs).
pub fn measure(db: &Database, path: &Path) -> Result<Space, StoreError> {
    let txn = db.begin_write()?;
    let stats = txn.stats()?;
    txn.abort()?;
    let allocated_bytes = stats.allocated_pages().saturating_mul(stats.page_size() as u64);
    Ok(Space { file_bytes: file_len(path)?, allocated_bytes })
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// The file's length before and after.
    pub before: u64,
    pub after: u64,
    /// How long the database was taken (reads waited this long).
    pub took: Duration,
}

/// Compacts an open database that nobody else uses.
pub fn compact_db(db: &mut Database, path: &Path) -> Result<Compacted, StoreError> {
    let before = file_len(path)?;
    let started = Instant::now();
    db.compact().map_err(|e| match e {
        redb::CompactionError::Storage(e) => StoreError::from(e),
        other => StoreError::CompactionBusy(other.to_string()),
    })?;
    Ok(Compacted { before, after: file_len(path)?, took: started.elapsed() })
}

/// Compacts the database at `path` while imboxd is stopped (`imboxd
/// compact`): first applies what the write-ahead log holds from an unclean
/// stop and empties it, then compacts. [`StoreError::Locked`] when imboxd
/// (or anything else) has the database open.
pub async fn compact_file(path: &Path) -> Result<Compacted, StoreError> {
    if !path.exists() {
        return Err(StoreError::Invalid(format!(
            "there is no database at {}: check --data-dir and data_dir in the configuration",
            path.display()
        )));
    }
    // Opening the store applies the log; stopping it checkpoints and
    // empties the log and closes the database (the writer lets go of it
    // before the stop is confirmed, and this is the last handle).
    let store = Store::open(path, StoreOptions::default(), Arc::new(NoListener))?;
    store.shutdown().await;
    drop(store);
    let mut db = redb::Builder::new().create(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
        other => StoreError::from(other),
    })?;
    let done = compact_db(&mut db, path)?;
    // Closing records the allocator's state, which adds a little to the
    // file: the size after is the size after closing.
    drop(db);
    Ok(Compacted { after: file_len(path)?, ..done })
}

fn file_len(path: &Path) -> Result<u64, StoreError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| StoreError::Invalid(format!("cannot measure the database file {}: {e}", path.display())))
}
