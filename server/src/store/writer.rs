//! Group commit: one thread applies every queued write, many per batch.
//!
//! The thread takes what is queued (up to the batch limit), applies it in one
//! redb transaction, appends the batch to the write-ahead log and syncs that
//! (one fdatasync for all of them), commits the transaction without syncing,
//! and only then answers each caller and publishes the new log entries. While
//! it waits on the disk, new writes queue up and form the next batch, so the
//! batch size grows by itself with the load.
//!
//! When writes pause (or the log has grown large, or a minute has passed) a
//! checkpoint makes redb itself durable and empties the log; see `wal.rs` for
//! why the work is split this way.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use imbox_protocol::Entry;
use redb::{Database, Durability};
use tokio::sync::{mpsc, oneshot};

use super::apply::{apply, Outcome, Tables, WriteOp};
use super::compact::{self, Compaction};
use super::health::{WriterHealth, HEARTBEAT};
use super::records::META;
use super::render::Lookup;
use super::wal::Wal;
use super::{Clock, CommitListener, Notice, SharedDb, StoreError, WriterStats};

/// The meta key holding the sequence number of the last log record that the
/// durable database includes.
pub const WAL_THROUGH: &str = "wal_through";

/// One queued write and where its answer goes.
pub struct Job {
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// What the writer thread receives.
pub enum Command {
    Write(Job),
    /// Commit what came before, then stop; answer on the sender.
    Stop(oneshot::Sender<()>),
    /// Commit what came before and checkpoint, then refuse every write until
    /// [`Command::Resume`]: the database file and the log stop changing, so
    /// that they can be copied to another disk while imboxd keeps serving.
    Pause(oneshot::Sender<Result<(), StoreError>>),
    /// Take writes again after a pause.
    Resume,
}

/// When the writer makes the database itself durable. A checkpoint writes
/// every page changed since the previous one and waits for the disk, and no
/// write is applied meanwhile (hundreds of milliseconds under heavy load), so
/// it comes when writes pause, and under steady load only as often as the
/// log's size and the interval demand.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoints {
    /// As soon as no write has come for this long.
    pub idle: Duration,
    /// At most this long after the previous checkpoint.
    pub interval: Duration,
    /// When the log has grown to this many bytes (this bounds the work of
    /// applying it again after a crash).
    pub log_max_bytes: u64,
}

/// How the writer batches, checkpoints and keeps space.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// The most writes in one batch.
    pub batch_max: usize,
    pub checkpoints: Checkpoints,
    pub reserve: Reserve,
    /// Each batch's time.
    pub clock: Clock,
    pub compaction: Compaction,
    /// The database file, for its size.
    pub path: PathBuf,
}

/// How much free space the writer keeps on the data disk.
#[derive(Debug, Clone)]
pub struct Reserve {
    /// The directory of the database and the log.
    pub dir: PathBuf,
    /// Writes are refused (`StorageFull`), and checkpoints put off, while
    /// less than this is available: a checkpoint rewrites the pages changed
    /// since the last one and needs room for them, and redb cannot go on
    /// after a write of its own failed, so the disk must never fill under it.
    pub min_free_bytes: u64,
}

struct Writer {
    db: SharedDb,
    wal: Wal,
    listener: Arc<dyn CommitListener>,
    stats: Arc<WriterStats>,
    checkpoints: Checkpoints,
    last_checkpoint: Instant,
    /// Between a pause and a resume: writes are refused.
    paused: bool,
    health: Arc<WriterHealth>,
    reserve: Reserve,
    /// When the last write came, for the idle checkpoint.
    last_write: Instant,
    clock: Clock,
    compaction: Compaction,
    path: PathBuf,
    /// Rows pruning deleted since the file was last measured.
    deleted_since_measure: u64,
    /// When the file was last measured for compaction.
    last_measure: Option<Instant>,
}

pub fn spawn(
    db: SharedDb,
    wal: Wal,
    mut queue: mpsc::Receiver<Command>,
    listener: Arc<dyn CommitListener>,
    tuning: Tuning,
    stats: Arc<WriterStats>,
    health: Arc<WriterHealth>,
) -> Result<(), StoreError> {
    let Tuning { batch_max, checkpoints, reserve, clock, compaction, path } = tuning;
    let cannot = |e: std::io::Error| StoreError::Invalid(format!("cannot start the writer thread: {e}"));
    // A small runtime of its own, for waiting on the queue with a timeout.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().map_err(cannot)?;
    let now = Instant::now();
    let mut writer = Writer {
        db,
        wal,
        listener,
        stats,
        checkpoints,
        last_checkpoint: now,
        paused: false,
        health,
        reserve,
        last_write: now,
        clock,
        compaction,
        path,
        deleted_since_measure: 0,
        last_measure: None,
    };
    writer.health.beat();
    writer.measure_space();
    std::thread::Builder::new()
        .name("imbox-writer".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(batch_max);
            let mut stopped = None;
            let mut broken = false;
            loop {
                writer.health.beat();
                // Never wait longer than a heartbeat, so that a live writer
                // is seen to be alive even when nobody writes.
                let full = writer.health.state() == super::health::WriterState::StorageFull;
                let wait = if writer.wal.is_empty() || full {
                    HEARTBEAT
                } else {
                    writer.checkpoints.idle.saturating_sub(writer.last_write.elapsed()).min(HEARTBEAT)
                };
                // The timer must be made inside the runtime.
                let first = match runtime.block_on(async { tokio::time::timeout(wait, queue.recv()).await }) {
                    Ok(next) => next,
                    Err(_) => {
                        if !writer.idle() {
                            broken = true;
                            break;
                        }
                        continue;
                    }
                };
                // Awake again: beat before the batch, so that whoever hears
                // its answer finds the heartbeat fresh.
                writer.health.beat();
                // A command other than a write ends the batch; it is carried
                // out after the writes queued before it.
                let mut control = None;
                match first {
                    Some(Command::Write(job)) => batch.push(job),
                    Some(other) => control = Some(other),
                    None => break,
                }
                while control.is_none() && batch.len() < batch_max {
                    match queue.try_recv() {
                        Ok(Command::Write(job)) => batch.push(job),
                        Ok(other) => control = Some(other),
                        Err(_) => break,
                    }
                }
                if !batch.is_empty() {
                    writer.last_write = Instant::now();
                }
                if writer.paused {
                    refuse_paused(&mut batch);
                } else if !batch.is_empty() && !writer.measure_space() {
                    refuse(&mut batch, || StoreError::StorageFull);
                } else if !batch.is_empty() && !writer.commit(&mut batch) {
                    broken = true;
                    break;
                }
                match control {
                    Some(Command::Stop(done)) => {
                        stopped = Some(done);
                        break;
                    }
                    Some(Command::Pause(reply)) => {
                        let _ = reply.send(writer.pause());
                    }
                    Some(Command::Resume) => {
                        if writer.paused {
                            tracing::info!("writes resume");
                        }
                        writer.paused = false;
                    }
                    Some(Command::Write(_)) | None => {}
                }
                if writer.checkpoint_due() && !writer.checkpoint() {
                    broken = true;
                    break;
                }
            }
            if !broken && writer.health.state() == super::health::WriterState::StorageFull {
                // No room for a checkpoint: the log keeps every write, and
                // the next start applies it.
                tracing::warn!("stopping without a checkpoint: the data disk is full");
            } else if !broken {
                writer.checkpoint();
            }
            // Writes queued after the stop are refused: their callers see
            // `Closed` when their reply senders drop with the queue. The
            // database handle goes before the stop is confirmed, so that the
            // file can be reopened as soon as the last `Store` is dropped.
            drop(queue);
            if writer.paused {
                // Stopped during a pause, that is while the data moves to
                // another disk: the files must stay byte for byte what was
                // copied. Closing the database would rewrite its header (the
                // clean-shutdown mark), and the mover would have to copy the
                // whole file again while the box is down. Left open, the file
                // is as a power cut leaves it after a checkpoint, which the
                // next open repairs quickly from the saved allocator state.
                std::mem::forget(writer.db.clone());
            }
            let health = writer.health.clone();
            drop(writer);
            tracing::debug!("writer stopped");
            if broken {
                health.announce_failure();
            }
            if let Some(done) = stopped {
                let _ = done.send(());
            }
        })
        .map_err(cannot)?;
    Ok(())
}

type Applied = (Vec<Result<Outcome, StoreError>>, Vec<Notice>);

impl Writer {
    /// Applies, logs and commits a batch, then answers every job in it.
    /// Returns false when the writer cannot go on (see below).
    fn commit(&mut self, batch: &mut Vec<Job>) -> bool {
        let size = batch.len();
        let started = Instant::now();
        let now = self.clock.now();
        // Held until the batch is committed: compaction, which takes the
        // database alone, comes between batches on this same thread.
        let shared = self.db.clone();
        let db = shared.read().unwrap_or_else(PoisonError::into_inner);
        let (txn, (results, notices)) = match Self::apply_batch(&db, batch, now) {
            Ok(applied) => applied,
            Err(err @ StoreError::Storage(_)) => {
                // redb failed to read or write its file, and refuses every
                // later transaction after an I/O error of its own: only a
                // restart (which reopens it and applies the log) goes on.
                fail(batch, &err);
                self.fail(format!("the database failed: {err}"));
                return false;
            }
            Err(err) => {
                fail(batch, &err);
                return true;
            }
        };
        // The log record first: once it is on the disk the batch survives a
        // crash. Until the transaction commits nobody can read any of it, so
        // if the log cannot be written, dropping the transaction undoes it.
        let ops: Vec<&WriteOp> = batch.iter().map(|job| &job.op).collect();
        #[cfg(test)]
        if let Some(source) = self.health.take_fault() {
            // The injected fault stands for the disk, as the log sees it.
            let path = std::path::PathBuf::from("injected");
            let err = if super::health::is_disk_full(&source) {
                super::wal::WalError::Full { path, source }
            } else {
                super::wal::WalError::Io { path, source }
            };
            return self.log_failed(batch, err);
        }
        if let Err(err) = self.wal.append(now, &ops) {
            return self.log_failed(batch, err);
        }
        if self.health.state() == super::health::WriterState::StorageFull && self.health.set_full(None) {
            tracing::info!("the data disk has room again: writes resume");
        }
        if let Err(err) = txn.commit() {
            // The log holds a batch the database does not: every later batch
            // would be applied to a state that the log, replayed after a
            // restart, does not reproduce. Stop writing; a restart applies
            // the log and goes on from there.
            let reason = format!("the database refused a commit after its batch was logged: {err}");
            fail(batch, &StoreError::from(err));
            self.fail(reason);
            return false;
        }
        let took = started.elapsed();
        if took > Duration::from_millis(100) {
            // Every write in the batch waited this long for its acknowledgement.
            tracing::warn!(size, took_ms = took.as_millis() as u64, "slow commit");
        }
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats.writes.fetch_add(size as u64, Ordering::Relaxed);
        // Live delivery first: by the time a sender hears that its message is
        // stored, the recipients' sessions have it queued.
        if !notices.is_empty() {
            self.listener.committed(notices);
        }
        for result in &results {
            if let Ok(Outcome::Pruned(report)) = result {
                self.deleted_since_measure = self.deleted_since_measure.saturating_add(report.deleted());
            }
        }
        for (job, result) in batch.drain(..).zip(results) {
            let _ = job.reply.send(result);
        }
        tracing::trace!(size, "batch committed");
        true
    }

    fn apply_batch(
        db: &Database,
        batch: &[Job],
        now: u64,
    ) -> Result<(redb::WriteTransaction, Applied), StoreError> {
        let mut txn = db.begin_write()?;
        // Durable through the log; redb syncs at checkpoints.
        txn.set_durability(Durability::None)?;
        let mut results = Vec::with_capacity(batch.len());
        let mut notices = Vec::new();
        {
            let mut tables = Tables::open(&txn, now)?;
            let mut fresh = Vec::new();
            for job in batch {
                match apply(&mut tables, &job.op, &mut fresh, &mut notices) {
                    Err(e) if e.is_storage() => return Err(e),
                    result => results.push(result),
                }
            }
            let lookup = Lookup::new(&tables.users, &tables.conversations, &tables.messages);
            for event in fresh {
                // `None` only for a message deleted later in the same batch,
                // which nobody is told of: the store is the record.
                let render = |viewer| -> Result<Option<Arc<Entry>>, StoreError> {
                    let item = lookup.event(event.conversation, &event.event, viewer, event.marker)?;
                    Ok(item.map(|item| Arc::new(Entry { position: event.position, item })))
                };
                if lookup.shared_label(event.conversation)? {
                    // A group's event reads the same for every member:
                    // rendered once, shared by every member's sessions.
                    let Some(&first) = event.recipients.first() else { continue };
                    if let Some(entry) = render(first)? {
                        notices.push(Notice::Entry { users: event.recipients.clone(), entry });
                    }
                } else {
                    for &user in event.recipients.iter() {
                        if let Some(entry) = render(user)? {
                            notices.push(Notice::Entry { users: Arc::from([user]), entry });
                        }
                    }
                }
            }
            drop(lookup);
            tables.finish()?;
        }
        Ok((txn, (results, notices)))
    }

    /// A log append failed and the batch is not stored. Returns whether the
    /// writer can go on: only when the disk was full (the log was cut back to
    /// its last whole record, so it is as it was).
    fn log_failed(&mut self, batch: &mut Vec<Job>, err: super::wal::WalError) -> bool {
        if let super::wal::WalError::Full { .. } = err {
            if self.health.set_full(Some(full_reason(&err.to_string()))) {
                tracing::warn!(error = %err, "the data disk is full: writes are refused until space is freed");
            }
            refuse(batch, || StoreError::StorageFull);
            return true;
        }
        fail(batch, &StoreError::from(err));
        // After a failed write or sync the log's end on the disk is unknown.
        self.fail("the write-ahead log could not be written".into());
        false
    }

    /// Stops taking writes for good and tells imboxd, which then exits with
    /// an error so that systemd restarts it; the restart applies the log.
    fn fail(&self, reason: String) {
        tracing::error!(
            %reason,
            "the writer cannot go on; imboxd stops and must be restarted (systemd does), \
             which applies the write-ahead log"
        );
        self.health.fail(reason);
    }

    /// Measures the data disk's free space; records a full disk or its end.
    /// Returns whether there is room to write.
    fn measure_space(&self) -> bool {
        if self.reserve.min_free_bytes == 0 {
            return true;
        }
        let available = match fs4::available_space(&self.reserve.dir) {
            Ok(bytes) => bytes,
            // Unmeasurable is not full: a real lack of space still shows as
            // a failed append.
            Err(_) => return self.health.state() != super::health::WriterState::StorageFull,
        };
        let full = available < self.reserve.min_free_bytes;
        let reason = full.then(|| {
            full_reason(&format!(
                "{} has {} KiB free; imboxd keeps at least {} KiB",
                self.reserve.dir.display(),
                available >> 10,
                self.reserve.min_free_bytes >> 10
            ))
        });
        if self.health.set_full(reason) {
            if full {
                tracing::warn!(available, "the data disk is full: writes are refused until space is freed");
            } else {
                tracing::info!(available, "the data disk has room again: writes resume");
            }
        }
        !full
    }

    /// Between writes: re-measures a full disk, and checkpoints once writes
    /// have paused. Returns false when the writer cannot go on.
    fn idle(&mut self) -> bool {
        if self.health.state() == super::health::WriterState::StorageFull && !self.measure_space() {
            return true;
        }
        if !self.wal.is_empty() && self.last_write.elapsed() >= self.checkpoints.idle && !self.checkpoint() {
            return false;
        }
        self.maybe_compact()
    }

    /// At an idle moment, with everything checkpointed: measures the file
    /// once pruning has freed enough rows, and compacts it when enough of it
    /// is free (see [`Compaction`]). Reads wait while it compacts. Returns
    /// false when the writer cannot go on.
    fn maybe_compact(&mut self) -> bool {
        let c = self.compaction;
        let due = self.deleted_since_measure >= c.min_deleted_rows
            && self.last_measure.is_none_or(|at| at.elapsed() >= c.check_interval)
            && self.wal.is_empty()
            && !self.paused
            && self.health.state() == super::health::WriterState::Running;
        if !due {
            return true;
        }
        self.deleted_since_measure = 0;
        self.last_measure = Some(Instant::now());
        let started = Instant::now();
        let measured = {
            let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
            compact::measure(&db, &self.path)
        };
        let space = match measured {
            Ok(space) => space,
            Err(err) => {
                // Nothing was written: the next batch finds out whether
                // the database itself is in trouble.
                tracing::warn!(error = %err, "cannot measure the database's free space");
                return true;
            }
        };
        let worth = space.worth_compacting(&c);
        tracing::info!(
            file_bytes = space.file_bytes,
            reclaimable_bytes = space.reclaimable(),
            took_ms = started.elapsed().as_millis() as u64,
            compact = worth,
            "measured the database's free space after pruning"
        );
        if !worth {
            return true;
        }
        self.health.beat();
        let result = {
            // Waits for the reads in progress to end; new ones wait for this.
            let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
            compact::compact_db(&mut db, &self.path)
        };
        self.health.beat();
        match result {
            Ok(done) => {
                self.stats.compactions.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    before_bytes = done.before,
                    after_bytes = done.after,
                    took_ms = done.took.as_millis() as u64,
                    "compacted the database: reads waited this long"
                );
                true
            }
            Err(err) if err.is_storage() => {
                self.fail(format!("compacting the database failed: {err}"));
                false
            }
            Err(err) => {
                tracing::warn!(error = %err, "the database was not compacted");
                true
            }
        }
    }

    fn checkpoint_due(&self) -> bool {
        if self.health.state() == super::health::WriterState::StorageFull {
            return false;
        }
        self.wal.len() >= self.checkpoints.log_max_bytes
            || (!self.wal.is_empty() && self.last_checkpoint.elapsed() >= self.checkpoints.interval)
    }

    /// Makes everything committed so far durable in the database itself and
    /// empties the log. Returns false when it failed: the log still holds
    /// every batch, but redb takes no transaction after a failed write of its
    /// own, so the writer cannot go on.
    fn checkpoint(&mut self) -> bool {
        if !self.measure_space() {
            // No room for the pages: put it off; the log keeps every write.
            return true;
        }
        match self.try_checkpoint() {
            Ok(()) => true,
            Err(err) => {
                self.fail(format!("a checkpoint failed: {err}"));
                false
            }
        }
    }

    fn try_checkpoint(&mut self) -> Result<(), StoreError> {
        self.last_checkpoint = Instant::now();
        if self.wal.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let through = self.wal.last_seq();
        mark_durable(&self.db.read().unwrap_or_else(PoisonError::into_inner), through)?;
        let log_bytes = self.wal.len();
        if let Err(err) = self.wal.clear() {
            // Harmless for correctness: the records are older than the
            // checkpoint and are skipped when the log is read again.
            tracing::warn!(error = %err, "cannot empty the write-ahead log after a checkpoint");
        }
        self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        let took = started.elapsed();
        if took > Duration::from_millis(100) {
            tracing::warn!(took_ms = took.as_millis() as u64, log_bytes, "slow checkpoint");
        }
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Checkpoints and stops taking writes. After this the database file is
    /// durable and complete by itself, and nothing writes to it or to the
    /// log (checkpoints find the log empty) until a resume.
    fn pause(&mut self) -> Result<(), StoreError> {
        self.try_checkpoint()?;
        self.paused = true;
        tracing::info!("writes paused: the database is durable and stays as it is");
        Ok(())
    }
}

/// A durable commit that records `through` as the last log record included.
/// It makes every earlier non-durable commit durable too.
pub fn mark_durable(db: &Database, through: u64) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    // Quick repair saves the allocator state with the commit, so that start-up
    // after a crash does not walk the whole file.
    txn.set_quick_repair(true);
    txn.open_table(META)?.insert(WAL_THROUGH, through)?;
    txn.commit()?;
    Ok(())
}

/// What people read about a full disk.
fn full_reason(detail: &str) -> String {
    format!("the data disk is full ({detail}): writes are refused until space is freed on it; reads go on")
}

/// Answers every job of a batch with an error made by `error`.
fn refuse(batch: &mut Vec<Job>, error: impl Fn() -> StoreError) {
    for job in batch.drain(..) {
        let _ = job.reply.send(Err(error()));
    }
}

/// Answers every job that came while writes are paused.
fn refuse_paused(batch: &mut Vec<Job>) {
    for job in batch.drain(..) {
        let _ = job.reply.send(Err(StoreError::Paused));
    }
}

/// Answers every job of a batch that was not stored.
fn fail(batch: &mut Vec<Job>, err: &StoreError) {
    // Nothing of this batch is stored: every caller gets the error and may
    // retry (sends with the same id stay idempotent).
    tracing::error!(size = batch.len(), error = %err, "the batch was not stored");
    let message = err.to_string();
    for job in batch.drain(..) {
        let _ = job.reply.send(Err(StoreError::BatchFailed(message.clone())));
    }
}
