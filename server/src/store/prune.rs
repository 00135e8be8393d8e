//! Pruning and retention: the write that deletes what nobody needs any more.
//!
//! Two kinds of rows go:
//!
//! - **Per-user records** that every device of the user still in use has
//!   synced past: legacy [`LOG`] rows and ended [`Span`]s. A device unused
//!   for longer than `device_inactive_ms` no longer holds them back; when it
//!   comes back, [`PRUNED`] tells `read::stream_page` to answer
//!   `resync: true`, and it still gets what is left, in order.
//! - **Messages past their conversation's retention** (the conversation's
//!   `retention_days`, else the box's): their [`MESSAGES`], [`MESSAGE_IDS`]
//!   and [`EVENTS`] rows, and the membership events older than the last of
//!   them. Receipt markers stay: they are one row per member and say where
//!   the member is, not what was said.
//!
//! One [`Prune`] does a bounded amount of work (`max_rows` rows looked at or
//! deleted), so that the writer, which applies it inside an ordinary batch,
//! is never held up for long; it says where it stopped, and the next one
//! goes on from there. Like every write it is logged and may be applied
//! again after a crash: everything depends only on the state, the op and
//! the batch clock.

use redb::{ReadableMultimapTable, ReadableTable};
use serde::{Deserialize, Serialize};

use super::apply::{Outcome, Tables};
use super::records::*;
use super::StoreError;

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// One bounded round of pruning, queued as [`super::WriteOp::Prune`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prune {
    /// A device not used for this long (milliseconds before the batch
    /// clock) no longer holds its user's records back.
    pub device_inactive_ms: u64,
    /// The box's retention in days (0: keep messages forever), for
    /// conversations without a setting of their own.
    pub retention_days: u32,
    /// The most rows this op looks at or deletes.
    pub max_rows: u32,
    /// Where to go on (from a previous op's [`PruneReport::next`]).
    pub from: PruneFrom,
}

/// Where a round of pruning stands: first every user's records, then every
/// conversation's retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PruneFrom {
    /// The users with ids above `after`.
    Users { after: u64 },
    /// The conversations with ids above `after` (the users are done).
    Conversations { after: u64 },
}

impl Default for PruneFrom {
    fn default() -> Self {
        PruneFrom::Users { after: 0 }
    }
}

/// What one [`Prune`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Legacy per-user log rows deleted.
    pub log_rows: u64,
    /// Ended spans deleted.
    pub spans: u64,
    /// Messages deleted for retention (with their id and event rows).
    pub messages: u64,
    /// Event rows deleted for retention (messages' and memberships').
    pub events: u64,
    /// Where the next op goes on; `None` when the round is complete.
    pub next: Option<PruneFrom>,
}

impl PruneReport {
    /// Rows deleted, of every kind.
    pub fn deleted(&self) -> u64 {
        self.log_rows + self.spans + self.messages + self.events
    }

    /// Whether work remains in this round.
    pub fn more(&self) -> bool {
        self.next.is_some()
    }
}

/// The least work an op does whatever its `max_rows`: enough to get past
/// any one user or conversation a little at a time.
const MIN_ROWS: u32 = 64;

/// Rows left to look at or delete in this op.
struct Budget(u64);

impl Budget {
    /// Spends one row; false when none was left.
    fn take(&mut self) -> bool {
        if self.0 == 0 {
            return false;
        }
        self.0 -= 1;
        true
    }
}

/// Applies one [`Prune`].
pub fn apply(t: &mut Tables<'_>, op: &Prune) -> Result<Outcome, StoreError> {
    let mut budget = Budget(u64::from(op.max_rows.max(MIN_ROWS)));
    let mut report = PruneReport::default();
    let mut from = op.from;
    if let PruneFrom::Users { after } = from {
        match prune_users(t, op, after, &mut budget, &mut report)? {
            Some(next) => {
                report.next = Some(next);
                return Ok(Outcome::Pruned(report));
            }
            None => from = PruneFrom::Conversations { after: 0 },
        }
    }
    if let PruneFrom::Conversations { after } = from {
        report.next = expire_messages(t, op, after, &mut budget, &mut report)?;
    }
    Ok(Outcome::Pruned(report))
}

/// Prunes the records of the users after `after`; returns where to go on
/// when the budget ran out first.
fn prune_users(
    t: &mut Tables<'_>,
    op: &Prune,
    after: u64,
    budget: &mut Budget,
    report: &mut PruneReport,
) -> Result<Option<PruneFrom>, StoreError> {
    let head = t.stream_head()?;
    let mut after = after;
    loop {
        if budget.0 == 0 {
            return Ok(Some(PruneFrom::Users { after }));
        }
        // A chunk of ids at a time: the users table cannot be iterated while
        // other tables of the same transaction change.
        let ids: Vec<u64> = t
            .users
            .range(after.saturating_add(1)..)?
            .take(budget.0.min(1024) as usize)
            .map(|row| row.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(None);
        }
        for user in ids {
            if !budget.take() {
                return Ok(Some(PruneFrom::Users { after }));
            }
            let floor = floor_of(t, user, op, head)?;
            let (deleted, complete) = prune_user(t, user, floor, budget, report)?;
            if deleted {
                let old = t.pruned.get(user)?.map_or(0, |v| v.value());
                t.pruned.insert(user, old.max(floor))?;
            }
            if !complete {
                // The budget ran out within this user: look at it again.
                return Ok(Some(PruneFrom::Users { after: user.saturating_sub(1) }));
            }
            after = user;
        }
    }
}

/// The lowest cursor among the user's devices used within the inactivity
/// limit; the stream head when there is none (nobody is left to hold the
/// user's records back).
fn floor_of(t: &Tables<'_>, user: u64, op: &Prune, head: u64) -> Result<u64, StoreError> {
    let since = t.now.saturating_sub(op.device_inactive_ms);
    let mut floor = head;
    for id in t.user_devices.get(user)? {
        let id = id?.value();
        if let Some(device) = t.device(id)?.filter(|d| !d.revoked) {
            if device.last_used.max(device.created_at) >= since {
                floor = floor.min(device.cursor);
            }
        }
    }
    Ok(floor)
}

/// Deletes the user's legacy log rows and ended spans at or below `floor`,
/// as far as the budget goes. Returns whether anything was deleted, and
/// whether the user is done (the budget did not run out first).
fn prune_user(
    t: &mut Tables<'_>,
    user: u64,
    floor: u64,
    budget: &mut Budget,
    report: &mut PruneReport,
) -> Result<(bool, bool), StoreError> {
    let mut deleted = false;
    // One more than the budget allows, to know whether any would be left.
    let mut old_log: Vec<u64> = t
        .log
        .range((user, 0)..=(user, floor))?
        .take(budget.0.saturating_add(1) as usize)
        .map(|row| row.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()?;
    let log_left = old_log.len() as u64 > budget.0;
    old_log.truncate(budget.0 as usize);
    for position in old_log {
        budget.take();
        t.log.remove((user, position))?;
        report.log_rows += 1;
        deleted = true;
    }
    if log_left {
        return Ok((deleted, false));
    }
    let mut records = Vec::new();
    for row in t.spans.range((user, 0)..=(user, u64::MAX))? {
        let (key, value) = row?;
        let record: SpansRecord = decode("spans", value.value())?;
        // An open span's `to` is `Span::OPEN`, above every floor.
        if record.spans.iter().any(|s| s.to <= floor) {
            records.push((key.value().1, record));
        }
    }
    let mut complete = true;
    for (conversation, mut record) in records {
        let mut kept = Vec::with_capacity(record.spans.len());
        for span in record.spans {
            if span.to > floor {
                kept.push(span);
            } else if budget.take() {
                report.spans += 1;
                deleted = true;
            } else {
                kept.push(span);
                complete = false;
            }
        }
        record.spans = kept;
        if record.spans.is_empty() {
            t.spans.remove((user, conversation))?;
        } else {
            t.spans.insert((user, conversation), encode(&record).as_slice())?;
        }
    }
    Ok((deleted, complete))
}

/// Deletes the messages past their retention in the conversations after
/// `after`; returns where to go on when the budget ran out first.
fn expire_messages(
    t: &mut Tables<'_>,
    op: &Prune,
    after: u64,
    budget: &mut Budget,
    report: &mut PruneReport,
) -> Result<Option<PruneFrom>, StoreError> {
    let mut after = after;
    loop {
        if budget.0 == 0 {
            return Ok(Some(PruneFrom::Conversations { after }));
        }
        let chunk: Vec<(u64, Option<u32>)> = {
            let mut chunk = Vec::new();
            for row in t.conversations.range(after.saturating_add(1)..)?.take(budget.0.min(1024) as usize) {
                let (key, value) = row?;
                let record: ConversationRecord = decode("conversations", value.value())?;
                chunk.push((key.value(), record.retention_days));
            }
            chunk
        };
        if chunk.is_empty() {
            return Ok(None);
        }
        for (conversation, own) in chunk {
            if !budget.take() {
                return Ok(Some(PruneFrom::Conversations { after }));
            }
            let days = own.unwrap_or(op.retention_days);
            if days > 0 {
                let cutoff = t.now.saturating_sub(u64::from(days).saturating_mul(DAY_MS));
                if !expire_conversation(t, conversation, cutoff, budget, report)? {
                    // The budget ran out within this conversation: look at it again.
                    return Ok(Some(PruneFrom::Conversations { after: conversation.saturating_sub(1) }));
                }
            }
            after = conversation;
        }
    }
}

/// Rows deleted per message: its text, its id and its event.
const ROWS_PER_MESSAGE: u64 = 3;

/// Deletes a conversation's messages sent before `cutoff` (milliseconds),
/// oldest first, as many as the budget allows, with their events and the
/// membership events older than the last of them. Returns whether the
/// conversation is done (the budget did not run out first).
fn expire_conversation(
    t: &mut Tables<'_>,
    conversation: u64,
    cutoff: u64,
    budget: &mut Budget,
    report: &mut PruneReport,
) -> Result<bool, StoreError> {
    // Messages are numbered in the order they were stored, and stamped with
    // the batch clock: the old ones are a prefix. (Should the clock ever
    // have gone back, the first message that is not old enough ends the
    // prefix, and the older ones after it wait for their turn.)
    let most = budget.0 / ROWS_PER_MESSAGE;
    let mut old: Vec<(u64, MessageRecord)> = Vec::new();
    let mut complete = true;
    for row in t.messages.range((conversation, 0)..=(conversation, u64::MAX))? {
        let (key, value) = row?;
        let message: MessageRecord = decode("messages", value.value())?;
        if message.sent_at >= cutoff {
            break;
        }
        if old.len() as u64 >= most {
            complete = false;
            break;
        }
        old.push((key.value().1, message));
    }
    let Some(&(last, _)) = old.last() else { return Ok(complete) };
    for (seq, message) in &old {
        budget.take();
        t.messages.remove((conversation, *seq))?;
        // Its attachments lose a carrier; one that has none left becomes
        // an orphan, removed by the media collection.
        for attachment in &message.attachments {
            super::media::unreference(t, &attachment.id, conversation, *seq)?;
        }
        // Only the id's own row: a later message may have reused the id
        // after this one expired, and its row must stay.
        if t.message_ids.get((message.sender, message.client_id.as_str()))?.map(|v| v.value())
            == Some((conversation, *seq))
        {
            budget.take();
            t.message_ids.remove((message.sender, message.client_id.as_str()))?;
        }
        report.messages += 1;
    }
    // Events in stream order: message rows in ascending seq, so those of
    // the expired messages come first, with receipt markers and membership
    // changes among them. Messages from before the storage model v2 have no
    // event row; their legacy log rows are skipped when read.
    let mut expired = Vec::new();
    let mut memberships = Vec::new();
    for row in t.events.range((conversation, 0)..=(conversation, u64::MAX))? {
        let (key, value) = row?;
        let position = key.value().1;
        match decode::<EventRecord>("events", value.value())? {
            EventRecord::Message { seq } if seq <= last => {
                expired.push(position);
                // Membership changes before an expired message go with it.
                expired.append(&mut memberships);
            }
            EventRecord::Message { .. } => break,
            EventRecord::Membership { .. } => memberships.push(position),
            EventRecord::Receipt { .. } => {}
        }
    }
    // A message's event must go with its text, or it would point at
    // nothing: these rows are deleted even past the budget (at most one per
    // message taken above, plus the membership events among them).
    for position in expired {
        budget.take();
        t.events.remove((conversation, position))?;
        report.events += 1;
    }
    Ok(complete)
}
