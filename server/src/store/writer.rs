//! Group commit: one thread applies every queued write, many per transaction.
//!
//! The thread takes what is queued (up to the batch limit), applies it in one
//! write transaction, commits once (one fsync for all of them), and only then
//! answers each caller and publishes the new log entries. While it waits on
//! the disk, new writes queue up and form the next batch, so the batch size
//! grows by itself with the load and throughput is not capped by the fsync
//! rate.

use std::sync::Arc;

use imbox_protocol::Entry;
use redb::{Database, ReadableTable};
use tokio::sync::{mpsc, oneshot};

use super::apply::{apply, Outcome, Tables, WriteOp};
use super::records::{decode, LogItem};
use super::render::Lookup;
use super::{CommitListener, Notice, StoreError};

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
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("imbox-writer".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(batch_max);
            while let Some(first) = queue.blocking_recv() {
                let mut stop = None;
                match first {
                    Command::Write(job) => batch.push(job),
                    Command::Stop(done) => stop = Some(done),
                }
                while stop.is_none() && batch.len() < batch_max {
                    match queue.try_recv() {
                        Ok(Command::Write(job)) => batch.push(job),
                        Ok(Command::Stop(done)) => stop = Some(done),
                        Err(_) => break,
                    }
                }
                if !batch.is_empty() {
                    commit(&db, &mut batch, listener.as_ref());
                }
                if let Some(done) = stop {
                    queue.close();
                    // Writes queued after the stop are refused: their callers
                    // see `Closed` when their reply senders drop here.
                    let _ = done.send(());
                    tracing::debug!("writer stopped");
                    return;
                }
            }
        })
        .map_err(|e| StoreError::Invalid(format!("cannot start the writer thread: {e}")))?;
    Ok(())
}

/// Applies and commits a batch, then answers every job in it.
fn commit(db: &Database, batch: &mut Vec<Job>, listener: &dyn CommitListener) {
    let size = batch.len();
    match apply_batch(db, batch) {
        Ok((results, notices)) => {
            for (job, result) in batch.drain(..).zip(results) {
                let _ = job.reply.send(result);
            }
            tracing::trace!(size, "batch committed");
            if !notices.is_empty() {
                listener.committed(notices);
            }
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
        for (user, position) in fresh {
            let stored = tables
                .log
                .get((user, position))?
                .ok_or(StoreError::Corrupt { table: "log", reason: "a fresh entry vanished".into() })?;
            let item: LogItem = decode("log", stored.value())?;
            drop(stored);
            notices.push(Notice::Entry { user, entry: Entry { position, item: lookup.item(&item, user)? } });
        }
    }
    txn.commit()?;
    Ok((results, notices))
}
