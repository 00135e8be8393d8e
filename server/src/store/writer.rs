//! Group commit: one thread applies every queued write, many per transaction.
//!
//! The thread takes what is queued (up to the batch limit), applies it in one
//! write transaction, commits once (one fsync for all of them), and only then
//! answers each caller and publishes the new log entries. While it waits on
//! the disk, new writes queue up and form the next batch, so the batch size
//! grows by itself with the load and throughput is not capped by the fsync
//! rate.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use imbox_protocol::Entry;
use redb::Database;
use tokio::sync::{mpsc, oneshot};

use super::apply::{apply, Outcome, Tables, WriteOp};
use super::render::Lookup;
use super::{CommitListener, Notice, StoreError, WriterStats};

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
}

pub fn spawn(
    db: Arc<Database>,
    mut queue: mpsc::Receiver<Command>,
    listener: Arc<dyn CommitListener>,
    batch_max: usize,
    stats: Arc<WriterStats>,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("imbox-writer".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(batch_max);
            let mut stopped = None;
            while let Some(first) = queue.blocking_recv() {
                match first {
                    Command::Write(job) => batch.push(job),
                    Command::Stop(done) => stopped = Some(done),
                }
                while stopped.is_none() && batch.len() < batch_max {
                    match queue.try_recv() {
                        Ok(Command::Write(job)) => batch.push(job),
                        Ok(Command::Stop(done)) => stopped = Some(done),
                        Err(_) => break,
                    }
                }
                if !batch.is_empty() {
                    commit(&db, &mut batch, listener.as_ref(), &stats);
                }
                if stopped.is_some() {
                    break;
                }
            }
            // Writes queued after the stop are refused: their callers see
            // `Closed` when their reply senders drop with the queue. The
            // database handle goes before the stop is confirmed, so that the
            // file can be reopened as soon as the last `Store` is dropped.
            drop(queue);
            drop(db);
            tracing::debug!("writer stopped");
            if let Some(done) = stopped {
                let _ = done.send(());
            }
        })
        .map_err(|e| StoreError::Invalid(format!("cannot start the writer thread: {e}")))?;
    Ok(())
}

/// Applies and commits a batch, then answers every job in it.
fn commit(db: &Database, batch: &mut Vec<Job>, listener: &dyn CommitListener, stats: &WriterStats) {
    let size = batch.len();
    let started = std::time::Instant::now();
    let applied = apply_batch(db, batch);
    let took = started.elapsed();
    if took > std::time::Duration::from_millis(100) {
        // Every write in the batch waited this long for its acknowledgement.
        tracing::warn!(size, took_ms = took.as_millis() as u64, "slow commit");
    }
    match applied {
        Ok((results, notices)) => {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats.writes.fetch_add(size as u64, Ordering::Relaxed);
            // Live delivery first: by the time a sender hears that its
            // message is stored, the recipients' sessions have it queued.
            if !notices.is_empty() {
                listener.committed(notices);
            }
            for (job, result) in batch.drain(..).zip(results) {
                let _ = job.reply.send(result);
            }
            tracing::trace!(size, "batch committed");
        }
        Err(err) => {
            // Nothing of this batch is on disk: every caller gets the error and
            // may retry (sends with the same id stay idempotent).
            tracing::error!(size, error = %err, "commit failed; the batch was not stored");
            let message = err.to_string();
            for job in batch.drain(..) {
                let _ = job.reply.send(Err(StoreError::BatchFailed(message.clone())));
            }
        }
    }
}

type Applied = (Vec<Result<Outcome, StoreError>>, Vec<Notice>);

fn apply_batch(db: &Database, batch: &[Job]) -> Result<Applied, StoreError> {
    let mut txn = db.begin_write()?;
    // Quick repair saves the allocator state with each commit, so that start-up
    // after a crash does not walk the whole file.
    txn.set_quick_repair(true);
    let mut results = Vec::with_capacity(batch.len());
    let mut notices = Vec::new();
    {
        let mut tables = Tables::open(&txn)?;
        let mut fresh = Vec::new();
        for job in batch {
            match apply(&mut tables, &job.op, &mut fresh, &mut notices) {
                Err(e) if e.is_storage() => return Err(e),
                result => results.push(result),
            }
        }
        let lookup =
            Lookup { users: &tables.users, conversations: &tables.conversations, messages: &tables.messages };
        for (user, position, item) in fresh {
            notices.push(Notice::Entry { user, entry: Entry { position, item: lookup.item(&item, user)? } });
        }
    }
    txn.commit()?;
    Ok((results, notices))
}
