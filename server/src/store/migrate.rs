//! Migrates a layout-2 (or 1) database to layout 3, on the first start of an
//! imboxd that keeps each conversation's events once ([`EVENTS`]) instead
//! of a copy in every member's own log ([`LOG`]).
//!
//! 1. `stream_base` goes above every legacy position (the highest log head
//!    plus room for what the old release's unreplayed write-ahead log gave
//!    out, see [`place_base`]), and `stream_head` just below it. Device cursors stay as
//!    they are: below the base a cursor still counts in its user's legacy
//!    log, from the base on in the box-wide stream.
//! 2. The receipt rows of the legacy logs are deleted: a receipt is now a
//!    marker, one row per member and kind, which step 3 writes. Message and
//!    membership rows stay at their positions for the devices that have not
//!    read them yet.
//! 3. Every current member gets a span from the base on, and each of its
//!    markers that was ever set (above `visible_after`) a row at a new
//!    position, so that every device, wherever its cursor, gets each marker
//!    once, after what is left of its legacy log.
//! 4. Layout 3 is recorded, last, with the progress keys removed: until then
//!    nothing serves the database, since `Store::open` runs the migration to
//!    its end before the write-ahead log is applied.
//!
//! Steps 2 and 3 walk their table in transactions of at most
//! [`Budget::chunk_rows`] rows, each committed durably together with the
//! progress it made (the `migrate_v3_*` keys in [`META`]): memory stays
//! bounded whatever the size of the database, and after a power cut the next
//! start resumes after the last committed chunk. Positions are given out in
//! table order, so the result does not depend on the chunk size or on where
//! the migration was interrupted.

use std::ops::Bound;
use std::time::{Duration, Instant};

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
    WriteTransaction,
};

use super::records::*;
use super::StoreError;

/// The step under way (absent: none begun).
const STEP: &str = "migrate_v3_step";
/// The key `(at, at_2)` of the last row of the step's table that is done
/// (absent: the step has not begun its table).
const AT: &str = "migrate_v3_at";
const AT_2: &str = "migrate_v3_at_2";
/// Rows of the step's table done so far, for the progress log.
const ROWS_DONE: &str = "migrate_v3_done";

/// How often a long step reports its progress.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// This imboxd's release, as error messages name it.
const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// Why a database of an older layout cannot be migrated. Nothing has been
/// lost when one of these is returned: the steps done so far changed
/// nothing that the older layout reads.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The database records a layout number no imboxd release wrote.
    #[error(
        "the database records layout version {found}, which no imboxd release wrote: the file is \
         damaged or not an imboxd database; restore the data directory from a backup"
    )]
    UnknownLayout { found: u64 },
    /// The database records an older layout, yet already holds rows of the
    /// new one without a migration under way: it was written by an
    /// unreleased build, and migrating it could give out positions twice.
    #[error(
        "the database records layout version {found}, but its {table} table already holds rows of \
         layout {SCHEMA_VERSION} and no migration was under way: it was written by an unreleased \
         imboxd; start the release that wrote it, or restore the data directory from a backup"
    )]
    MixedLayout { found: u64, table: &'static str },
    /// A legacy log row lies at or beyond the stream base computed from the
    /// log heads: the heads do not match the logs, so the base could not
    /// keep legacy and new positions apart.
    #[error(
        "user {user}'s delivery log has a row at position {position}, beyond every recorded log \
         head (the highest is {head}): the database is damaged and cannot be migrated; restore \
         the data directory from a backup, and keep this copy for a bug report"
    )]
    LogBeyondHead { user: u64, position: u64, head: u64 },
    /// An interrupted migration recorded a step this imboxd does not have.
    #[error(
        "an interrupted migration of the database recorded step {step}, which this imboxd \
         ({RELEASE}) does not know: start the imboxd release that began it so that it can finish, \
         or restore the data directory from a backup"
    )]
    UnknownStep { step: u64 },
}

/// How much the migration does per transaction, and when it stops.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// The most rows of a table one transaction walks.
    pub chunk_rows: usize,
    /// Stop after this many transactions, as a power cut would between two
    /// of them (tests); `None` runs to the end.
    pub stop_after: Option<u64>,
}

impl Default for Budget {
    fn default() -> Self {
        // About 10,000 rows make a transaction of a few MiB of dirty pages:
        // small beside the cache, large enough that the fsync per commit is
        // not what takes the time.
        Budget { chunk_rows: 10_000, stop_after: None }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// The database was of the current layout: nothing to do.
    Current,
    /// The migration finished: the database is of the current layout.
    Migrated,
    /// [`Budget::stop_after`] stopped it; the next run resumes.
    Stopped,
}

/// The steps, as numbered in the progress key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Base = 1,
    Receipts = 2,
    Markers = 3,
    Finish = 4,
}

impl Step {
    fn from_key(value: Option<u64>) -> Result<Step, MigrateError> {
        match value {
            None | Some(1) => Ok(Step::Base),
            Some(2) => Ok(Step::Receipts),
            Some(3) => Ok(Step::Markers),
            Some(4) => Ok(Step::Finish),
            Some(step) => Err(MigrateError::UnknownStep { step }),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Step::Base => "placing the stream after the legacy logs",
            Step::Receipts => "deleting receipt copies from the legacy logs",
            Step::Markers => "giving each member a span and each set marker a row",
            Step::Finish => "recording the new layout",
        }
    }
}

/// Migrates the database to the current layout if it is older, resuming an
/// interrupted migration. Must run before anything else reads or writes it.
pub fn run(db: &Database, budget: Budget, unreplayed: u64) -> Result<Ran, StoreError> {
    let (found, step) = {
        let txn = db.begin_read()?;
        let meta = txn.open_table(META)?;
        let found = meta.get("schema")?.map(|v| v.value());
        let step = meta.get(STEP)?.map(|v| v.value());
        (found, step)
    };
    let found = match found {
        Some(SCHEMA_VERSION) => return Ok(Ran::Current),
        Some(older @ (1 | 2)) => older,
        other => return Err(MigrateError::UnknownLayout { found: other.unwrap_or(0) }.into()),
    };
    tracing::info!(
        from_layout = found,
        to_layout = SCHEMA_VERSION,
        resuming_step = step,
        "migrating the database to the new layout; it is served once this is done"
    );
    let started = Instant::now();
    let chunk_rows = budget.chunk_rows.max(1);
    let mut last_report = Instant::now();
    let mut transactions = 0u64;
    loop {
        let step = {
            let txn = db.begin_read()?;
            Step::from_key(txn.open_table(META)?.get(STEP)?.map(|v| v.value()))?
        };
        match step {
            Step::Base => place_base(db, found, unreplayed)?,
            Step::Receipts => walk_chunk(db, LOG, chunk_rows, &mut last_report, drop_receipts)?,
            Step::Markers => walk_chunk(db, MEMBERS, chunk_rows, &mut last_report, place_markers)?,
            Step::Finish => {
                finish(db)?;
                tracing::info!(
                    took_ms = started.elapsed().as_millis() as u64,
                    "the database is migrated to layout {SCHEMA_VERSION}"
                );
                return Ok(Ran::Migrated);
            }
        }
        transactions += 1;
        if budget.stop_after.is_some_and(|n| transactions >= n) {
            return Ok(Ran::Stopped);
        }
    }
}

/// Step 1: places the stream after every legacy position, including those
/// that the unreplayed writes of the old release's write-ahead log
/// (`unreplayed`, applied after the migration) gave out before the crash.
/// Devices may have received and acknowledged those entries; applied again
/// by this release they get new stream positions, and a device's cursor (on
/// the box, and the one its client keeps) must stay below them so that it
/// receives them again rather than skip them. One write added at most one
/// entry per conversation to any user's log (removing a user touches each of
/// the user's groups once), so the gap below is enough; positions are u64,
/// so a generous gap costs nothing.
fn place_base(db: &Database, found: u64, unreplayed: u64) -> Result<(), StoreError> {
    let txn = begin(db)?;
    let base = {
        // Rows here without a migration under way would collide with the
        // positions this one gives out.
        for (table, rows) in
            [("events", txn.open_table(EVENTS)?.len()?), ("spans", txn.open_table(SPANS)?.len()?)]
        {
            if rows > 0 {
                return Err(MigrateError::MixedLayout { found, table }.into());
            }
        }
        let mut highest = 0;
        for row in txn.open_table(LOG_HEADS)?.iter()? {
            highest = highest.max(row?.1.value());
        }
        let mut meta = txn.open_table(META)?;
        let conversations = meta.get("next_conversation")?.map_or(0, |v| v.value());
        let reserve = unreplayed.saturating_mul(conversations.saturating_add(1));
        let base = highest.saturating_add(reserve).saturating_add(1);
        meta.insert(STREAM_BASE, base)?;
        meta.insert(STREAM_HEAD, base - 1)?;
        meta.insert(STEP, Step::Receipts as u64)?;
        base
    };
    txn.commit()?;
    tracing::info!(step = Step::Base as u64, stream_base = base, "{}: done", Step::Base.what());
    Ok(())
}

/// Rows of a table keyed `(u64, u64)`, as one chunk reads them.
type Rows = Vec<((u64, u64), Vec<u8>)>;

/// What a step does with one chunk of its table's rows, in the transaction
/// that records them as done. The meta table is open for it.
type ChunkWork = fn(&WriteTransaction, &mut Table<'_, &'static str, u64>, Rows) -> Result<(), StoreError>;

/// One transaction of a step that walks a table keyed `(u64, u64)`: the
/// next `chunk_rows` rows after the last one done go to `work`, and the
/// progress keys move past them in the same transaction. An empty chunk ends
/// the step.
fn walk_chunk(
    db: &Database,
    table: TableDefinition<(u64, u64), &[u8]>,
    chunk_rows: usize,
    last_report: &mut Instant,
    work: ChunkWork,
) -> Result<(), StoreError> {
    let txn = begin(db)?;
    let (step, rows_done, table_rows, step_done) = {
        let mut meta = txn.open_table(META)?;
        let step = Step::from_key(meta.get(STEP)?.map(|v| v.value()))?;
        let at = meta.get(AT)?.map(|v| v.value());
        let at_2 = meta.get(AT_2)?.map(|v| v.value());
        let after = match (at, at_2) {
            (Some(a), Some(b)) => Bound::Excluded((a, b)),
            _ => Bound::Unbounded,
        };
        let mut rows_done = meta.get(ROWS_DONE)?.map_or(0, |v| v.value());
        let (rows, table_rows) = {
            let walked = txn.open_table(table)?;
            let mut rows = Vec::with_capacity(chunk_rows.min(1 << 16));
            for row in walked.range::<(u64, u64)>((after, Bound::Unbounded))?.take(chunk_rows) {
                let (key, value) = row?;
                rows.push((key.value(), value.value().to_vec()));
            }
            (rows, walked.len()?)
        };
        if rows_done == 0 && matches!(after, Bound::Unbounded) {
            tracing::info!(step = step as u64, table_rows, "{}", step.what());
        }
        let last = rows.last().map(|(key, _)| *key);
        rows_done += rows.len() as u64;
        work(&txn, &mut meta, rows)?;
        match last {
            Some((a, b)) => {
                meta.insert(AT, a)?;
                meta.insert(AT_2, b)?;
                meta.insert(ROWS_DONE, rows_done)?;
            }
            None => {
                let next = match step {
                    Step::Receipts => Step::Markers,
                    _ => Step::Finish,
                };
                meta.insert(STEP, next as u64)?;
                for key in [AT, AT_2, ROWS_DONE] {
                    meta.remove(key)?;
                }
            }
        }
        (step, rows_done, table_rows, last.is_none())
    };
    txn.commit()?;
    if step_done {
        tracing::info!(step = step as u64, rows_done, "{}: done", step.what());
    } else if last_report.elapsed() >= REPORT_EVERY {
        tracing::info!(step = step as u64, rows_done, table_rows, "{}", step.what());
        *last_report = Instant::now();
    }
    Ok(())
}

/// Step 2: deletes the receipt rows of a chunk of the legacy logs, and
/// checks that every row lies below the stream base.
fn drop_receipts(
    txn: &WriteTransaction,
    meta: &mut Table<'_, &'static str, u64>,
    rows: Rows,
) -> Result<(), StoreError> {
    let base = meta_value(meta, STREAM_BASE)?;
    let mut log = txn.open_table(LOG)?;
    for ((user, position), value) in rows {
        if position >= base {
            return Err(MigrateError::LogBeyondHead { user, position, head: base - 1 }.into());
        }
        if let LogItem::Receipt { .. } = decode("log", &value)? {
            log.remove((user, position))?;
        }
    }
    Ok(())
}

/// Step 3: for a chunk of member rows, opens each member's span at the
/// stream base and gives each marker that was ever set a row at the next
/// position.
fn place_markers(
    txn: &WriteTransaction,
    meta: &mut Table<'_, &'static str, u64>,
    rows: Rows,
) -> Result<(), StoreError> {
    let base = meta_value(meta, STREAM_BASE)?;
    let mut head = meta_value(meta, STREAM_HEAD)?;
    let mut members = txn.open_table(MEMBERS)?;
    let mut events = txn.open_table(EVENTS)?;
    let mut spans = txn.open_table(SPANS)?;
    let span = encode(&SpansRecord { spans: vec![Span { from: base, to: Span::OPEN }] });
    for ((conversation, user), value) in rows {
        let mut member: MemberRecord = decode("members", &value)?;
        spans.insert((user, conversation), span.as_slice())?;
        let visible_after = member.visible_after;
        let markers = [
            (ReceiptKindRecord::Delivered, member.delivered_seq, &mut member.delivered_pos),
            (ReceiptKindRecord::Read, member.read_seq, &mut member.read_pos),
        ];
        for (kind, seq, position) in markers {
            // A marker still at `visible_after` was never moved: layout 3
            // gives such a marker no row either.
            if seq > visible_after {
                head += 1;
                events
                    .insert((conversation, head), encode(&EventRecord::Receipt { user, kind }).as_slice())?;
                *position = head;
            }
        }
        members.insert((conversation, user), encode(&member).as_slice())?;
    }
    meta.insert(STREAM_HEAD, head)?;
    Ok(())
}

/// Step 4: records the new layout, which ends the migration.
fn finish(db: &Database) -> Result<(), StoreError> {
    let txn = begin(db)?;
    {
        let mut meta = txn.open_table(META)?;
        for key in [STEP, AT, AT_2, ROWS_DONE] {
            meta.remove(key)?;
        }
        meta.insert("schema", SCHEMA_VERSION)?;
    }
    txn.commit()?;
    Ok(())
}

/// A transaction of the migration: durable when committed (the default),
/// and with redb's quick repair, as at checkpoints, so that a start after a
/// power cut in the middle of the migration does not walk the whole file
/// before resuming it.
fn begin(db: &Database) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    Ok(txn)
}

/// A meta value step 1 wrote.
fn meta_value(meta: &Table<'_, &'static str, u64>, key: &'static str) -> Result<u64, StoreError> {
    meta.get(key)?.map(|v| v.value()).ok_or(StoreError::Corrupt {
        table: "meta",
        reason: format!("{key} is missing during the migration"),
    })
}

#[cfg(test)]
mod tests;
