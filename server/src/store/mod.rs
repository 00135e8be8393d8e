//! The durable store: one redb database under the data directory.
//!
//! Reads (log pages, history, authentication) open their own read
//! transactions on the caller's thread: redb serves them from its cache
//! without waiting for writers. Every write goes to one writer thread
//! ([`writer`]), which applies many callers' writes in one transaction and one
//! fsync (group commit), answers each caller only after the commit is durable,
//! and then hands the new log entries to a [`CommitListener`] (the router)
//! for live delivery.

mod admin_ops;
mod apply;
mod compact;
pub mod health;
pub mod media;
mod migrate;
mod prune;
pub mod push;
mod read;
pub mod records;
mod render;
mod wal;
mod writer;

#[cfg(test)]
mod prune_tests;
#[cfg(test)]
mod row_costs;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use imbox_protocol::{ConversationInfo, DeviceInfo, Entry, Message, ReceiptKind, Target};
use redb::Database;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

pub use admin_ops::{
    conversation_ref, invite_id, parse_invite_id, valid_box_name, AccountState, AdminOp, InviteSummary,
    MAX_RETENTION_DAYS,
};
pub use apply::{Outcome, WriteOp};
pub use compact::{compact_file, Compacted, Compaction};
pub use health::{WriterHealth, WriterState};
pub use migrate::MigrateError;
pub use prune::{Prune, PruneFrom, PruneReport, DAY_MS};
pub use read::Page;
pub use writer::Checkpoints;
use writer::{Command, Job};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (usually the running imboxd) holds the database.
    #[error("the database is in use by another process (is imboxd running? then use its control socket)")]
    Locked,
    /// redb failed to read or write the file.
    #[error("storage failure: {0}")]
    Storage(#[from] Box<redb::Error>),
    /// A record could not be decoded: the file is damaged or from an
    /// incompatible version.
    #[error("damaged record in table {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    /// The database was written by a newer imboxd.
    #[error(
        "the database has layout version {found}; this imboxd understands up to {supported}: upgrade imboxd"
    )]
    NewerSchema { found: u64, supported: u64 },
    /// The database is of an older layout that could not be migrated to
    /// this one (the reason says what to do).
    #[error("{0}")]
    Migrate(#[from] MigrateError),
    /// The write-ahead log could not be written or read.
    #[error("{0}")]
    Log(#[from] wal::WalError),
    /// The commit carrying this write failed; nothing of it was stored.
    #[error("storage failure, nothing was stored: {0}")]
    BatchFailed(String),
    /// The writer has stopped (the server is shutting down).
    #[error("the store is closed")]
    Closed,
    /// The write queue is full: the server is overloaded.
    #[error("the write queue is full")]
    Overloaded,
    /// The data disk is full: nothing was stored. Writes resume by
    /// themselves once space is freed.
    #[error(
        "the box's data disk is full, so nothing was stored; its owner must free space on it \
         (the status page shows how much is left), and writes resume by themselves"
    )]
    StorageFull,
    /// Writes are paused while the data moves to another disk.
    #[error("the box is moving its data to another disk and takes no changes until it is done")]
    Paused,
    /// No such user.
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    /// No such group or conversation visible to the caller.
    #[error("no such conversation: {0}")]
    NoSuchConversation(String),
    /// No such device of the caller's.
    #[error("no device {0} belongs to you")]
    NoSuchDevice(u64),
    /// The caller is not a member of the conversation.
    #[error("you are not a member of {0}")]
    NotMember(String),
    /// The caller is not an admin of the group.
    #[error("only admins of {0} may do that")]
    NotAdmin(String),
    /// The user is already a member.
    #[error("{user} is already a member of {group}")]
    AlreadyMember { user: String, group: String },
    /// The user or group name is taken.
    #[error("the name {0:?} is already taken")]
    NameTaken(String),
    /// The invite token is unknown, used up or expired.
    #[error("the invite is unknown, used up or expired: ask for a new one")]
    InvalidInvite,
    /// The message id was used before for a different message.
    #[error("message id {0:?} was already used for a different message")]
    IdConflict(String),
    /// No attachment with that id that the caller may use (it was never
    /// uploaded, was removed, or was sent where the caller cannot see it).
    #[error("no attachment {0} is available to you: upload it first")]
    NoSuchAttachment(String),
    /// A group would exceed the member limit.
    #[error("a group may have at most {0} members")]
    TooManyMembers(u32),
    /// The request makes no sense (for example a direct message to oneself).
    #[error("{0}")]
    Invalid(String),
    /// The box already has an owner: claiming is over.
    #[error("this box has already been claimed by its owner")]
    AlreadyClaimed,
    /// The claim code is not the one this box wrote to its claim file.
    #[error("the claim code is wrong: copy it again from the claim file or the console")]
    WrongClaimCode,
    /// No invite with that id exists (it was used up, revoked or never made).
    #[error("no such invite: it was used up, revoked or never existed")]
    NoSuchInvite,
    /// Compaction found the database in use (a transaction or savepoint
    /// open); nothing was changed, and it can be tried again.
    #[error("the database could not be compacted because it is in use ({0}); try again later")]
    CompactionBusy(String),
}

macro_rules! storage_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Storage(Box::new(e.into()))
            }
        }
    )*};
}
storage_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl StoreError {
    /// Whether the failure is of the storage itself (the whole batch fails)
    /// rather than of one request (only that request fails).
    pub fn is_storage(&self) -> bool {
        matches!(
            self,
            StoreError::Storage(_)
                | StoreError::Corrupt { .. }
                | StoreError::Log(_)
                | StoreError::Closed
                | StoreError::BatchFailed(_)
        )
    }
}

/// Who an authenticated device is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuth {
    pub user: u64,
    pub username: String,
    pub device: u64,
    pub admin: bool,
    /// The cursor the device last acknowledged.
    pub cursor: u64,
}

/// A device that was just created, with its secret token.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub auth: DeviceAuth,
    /// Returned once; only its hash is stored.
    pub token: String,
}

/// The result of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub conversation: u64,
    pub seq: u64,
    pub sent_at: u64,
    pub duplicate: bool,
}

/// A user as the administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserSummary {
    pub id: u64,
    pub name: String,
    pub admin: bool,
    pub created_at: u64,
    pub devices: u32,
    /// Disabled accounts cannot log in (absent in answers of older daemons).
    #[serde(default)]
    pub disabled: bool,
}

/// What a user needs to log in: kept out of [`UserSummary`] so that hashes
/// do not travel further than the password check.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: u64,
    pub username: String,
    pub admin: bool,
    /// A disabled user's right password is still refused.
    pub disabled: bool,
    pub password_hash: String,
}

/// Something a commit made happen, for whoever delivers live.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A new entry of the stream of each of `users` (a group's event goes
    /// to every member, rendered once).
    Entry { users: Arc<[u64]>, entry: Arc<Entry> },
    /// A device's token was revoked: end its sessions.
    DeviceRevoked { user: u64, device: u64 },
    /// A user was removed: end all their sessions.
    UserRemoved { user: u64 },
    /// A device's push registration was set (`Some`) or removed (`None`)
    /// by a push write; removals by revocation come as
    /// [`Notice::DeviceRevoked`] and [`Notice::UserRemoved`].
    Push { user: u64, device: u64, registration: Option<Arc<push::PushRecord>> },
}

/// Receives what each commit made happen, after it is durable. Called on the
/// writer thread: it must not block.
pub trait CommitListener: Send + Sync + 'static {
    fn committed(&self, notices: Vec<Notice>);
}

/// A listener that drops everything (for offline administration).
#[derive(Debug)]
pub struct NoListener;

impl CommitListener for NoListener {
    fn committed(&self, _notices: Vec<Notice>) {}
}

/// Tuning of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The most writes applied in one transaction.
    pub commit_batch_max: usize,
    /// Writes waiting for the writer before callers are refused.
    pub write_queue: usize,
    /// redb's page cache, in bytes.
    pub cache_bytes: usize,
    /// When the database itself is made durable (the write-ahead log keeps
    /// writes durable in between).
    pub checkpoints: Checkpoints,
    /// Writes are refused while the data disk has less than this free
    /// (0: only when a write fails for want of space).
    pub min_free_bytes: u64,
    /// Where each batch's time comes from.
    pub clock: Clock,
    /// When the writer compacts the file by itself.
    pub compaction: Compaction,
}

/// Where the writer reads each batch's time (milliseconds since the Unix
/// epoch). The reading is logged with the batch, so that applying the log
/// again gives the same records whatever the clock says then.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock that moves only when told to: for tests of what happens
    /// days later (retention, inactive devices) without waiting for days.
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// A manual clock that starts at `start_ms`.
    pub fn manual(start_ms: u64) -> Clock {
        Clock::Manual(Arc::new(AtomicU64::new(start_ms)))
    }

    /// The time now.
    pub fn now(&self) -> u64 {
        match self {
            Clock::System => now_ms(),
            Clock::Manual(at) => at.load(Ordering::Relaxed),
        }
    }

    /// Moves a manual clock forward; the system clock moves by itself.
    pub fn advance(&self, ms: u64) {
        if let Clock::Manual(at) = self {
            at.fetch_add(ms, Ordering::Relaxed);
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            commit_batch_max: 2048,
            write_queue: 8192,
            cache_bytes: 64 << 20,
            checkpoints: Checkpoints {
                idle: std::time::Duration::from_millis(500),
                interval: std::time::Duration::from_secs(60),
                log_max_bytes: 16 << 20,
            },
            min_free_bytes: 0,
            clock: Clock::System,
            compaction: Compaction::default(),
        }
    }
}

/// Counters of the writer, for metrics and tests.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Commits made (each one fsync).
    pub commits: AtomicU64,
    /// Writes applied (successful or refused) in those commits.
    pub writes: AtomicU64,
    /// Checkpoints made (each one a durable database commit).
    pub checkpoints: AtomicU64,
    /// Times the writer compacted the file by itself.
    pub compactions: AtomicU64,
}

/// The database, shared by every reader and the writer. Readers hold the
/// read lock for the life of their read transaction; the writer takes the
/// write lock only to compact the file, which redb refuses while any
/// transaction is open.
type SharedDb = Arc<RwLock<Database>>;

/// The store. Cheap to clone; the writer stops at [`Store::shutdown`].
#[derive(Clone)]
pub struct Store {
    db: SharedDb,
    writes: mpsc::Sender<Command>,
    stats: Arc<WriterStats>,
    health: Arc<WriterHealth>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// A queued write; [`Pending::wait`] resolves once it is durable.
#[derive(Debug)]
pub struct Pending(oneshot::Receiver<Result<apply::Outcome, StoreError>>);

impl Pending {
    /// Waits for the commit that carries this write.
    pub async fn wait(self) -> Result<apply::Outcome, StoreError> {
        self.0.await.map_err(|_| StoreError::Closed)?
    }

    /// Waits, expecting a send's result.
    pub async fn sent(self) -> Result<Sent, StoreError> {
        self.wait().await?.sent()
    }
}

/// Makes the database file readable by its owner only: it holds password
/// hashes and every conversation.
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot restrict the database file's permissions");
    }
}

/// Opens the write-ahead log and applies what the database does not hold
/// yet: the batches logged after the last checkpoint, when imboxd stopped
/// without one (a crash or a power cut). Then checkpoints, so that the log
/// starts empty.
fn recover(db: &Database, mut log: wal::Wal, records: &[wal::Record]) -> Result<wal::Wal, StoreError> {
    let through = wal_through(db)?;
    let pending: Vec<&wal::Record> = records.iter().filter(|r| r.seq > through).collect();
    if let Some(last) = pending.last().map(|r| r.seq) {
        let started = std::time::Instant::now();
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        let writes = {
            let mut tables = apply::Tables::open(&txn, 0)?;
            let (mut fresh, mut notices, mut writes) = (Vec::new(), Vec::new(), 0);
            for record in &pending {
                // The clock the batch had the first time: same input, same result.
                tables.now = record.now;
                for op in &record.ops {
                    match apply::apply(&mut tables, op, &mut fresh, &mut notices) {
                        Err(e) if e.is_storage() => return Err(e),
                        _ => writes += 1,
                    }
                }
                // Nobody is online yet to hear about these entries.
                fresh.clear();
                notices.clear();
            }
            tables.finish()?;
            writes
        };
        txn.commit()?;
        writer::mark_durable(db, last)?;
        // Which release's log this was: after an upgrade the first start
        // applies a log in the format of the release before.
        let oldest_format = pending.iter().map(|r| r.format).min().unwrap_or(wal::WAL_FORMAT);
        tracing::info!(
            batches = pending.len(),
            writes,
            oldest_format,
            format_introduced_by = wal::introduced_by(oldest_format).unwrap_or("?"),
            took_ms = started.elapsed().as_millis() as u64,
            "applied the write-ahead log left by an unclean stop"
        );
    }
    log.continue_after(through);
    if !log.is_empty() {
        log.clear()?;
    }
    Ok(log)
}

/// The last log record the durable database includes.
fn wal_through(db: &Database) -> Result<u64, StoreError> {
    use redb::ReadableDatabase;
    Ok(db.begin_read()?.open_table(records::META)?.get(writer::WAL_THROUGH)?.map_or(0, |v| v.value()))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The SHA-256 of a secret token, the only form in which tokens are stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random secret: 32 bytes, base64url without padding.
pub fn new_secret() -> Result<String, StoreError> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Invalid(format!("the system random source failed: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl Store {
    /// Opens (or creates) the database at `path` and starts its writer.
    /// Opening costs the same for an empty and a full database: nothing is
    /// scanned, and crash recovery uses redb's quick repair. The exception
    /// is the first start on a database of an older layout, which is
    /// migrated first (`migrate.rs`: it walks the legacy logs once).
    pub fn open(
        path: &Path,
        options: StoreOptions,
        listener: Arc<dyn CommitListener>,
    ) -> Result<Store, StoreError> {
        let db =
            redb::Builder::new().set_cache_size(options.cache_bytes).create(path).map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
                other => StoreError::from(other),
            })?;
        apply::initialize(&db)?;
        restrict(path);
        // An older layout is migrated before the log is applied: a log left
        // by the release before holds writes of that release, which apply
        // to the new layout. Those writes made entries in the old per-user
        // logs, which devices may have received and acknowledged before the
        // crash; the migration keeps room for them below the new stream
        // (see `migrate::place_base`).
        let wal_path = path.with_extension("wal");
        let (log, records) = wal::Wal::open(&wal_path)?;
        let through = wal_through(&db)?;
        let unreplayed: u64 = records.iter().filter(|r| r.seq > through).map(|r| r.ops.len() as u64).sum();
        migrate::run(&db, migrate::Budget::default(), unreplayed)?;
        let wal = recover(&db, log, &records)?;
        restrict(&wal_path);
        let db = Arc::new(RwLock::new(db));
        let (tx, rx) = mpsc::channel(options.write_queue.max(1));
        let stats = Arc::new(WriterStats::default());
        let batch_max = options.commit_batch_max.max(1);
        let health = Arc::new(WriterHealth::default());
        let reserve = writer::Reserve {
            dir: path.parent().map_or_else(|| Path::new(".").to_owned(), Path::to_owned),
            min_free_bytes: options.min_free_bytes,
        };
        let tuning = writer::Tuning {
            batch_max,
            checkpoints: options.checkpoints,
            reserve,
            clock: options.clock,
            compaction: options.compaction,
            path: path.to_owned(),
        };
        writer::spawn(db.clone(), wal, rx, listener, tuning, stats.clone(), health.clone())?;
        Ok(Store { db, writes: tx, stats, health })
    }

    /// Queues one write for the group commit without waiting. Writes are
    /// applied in the order they were queued, so a session that queues two
    /// sends gets them stored in that order; the returned future resolves once
    /// the write is durable (or refused).
    pub fn submit(&self, op: WriteOp) -> Result<Pending, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes.try_send(Command::Write(Job { op, reply })).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        })?;
        Ok(Pending(answer))
    }

    /// Applies one write through the group commit and waits until it is durable.
    pub async fn write(&self, op: WriteOp) -> Result<apply::Outcome, StoreError> {
        self.submit(op)?.wait().await
    }

    /// The database for one read: the guard must outlive the read
    /// transaction, so that compaction never finds one open.
    fn db(&self) -> RwLockReadGuard<'_, Database> {
        // A reader that panicked leaves nothing half-done in the database
        // (its transaction was read-only): the lock's data is still sound.
        self.db.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one bounded round of pruning and retention (see [`Prune`]).
    pub async fn prune(&self, op: Prune) -> Result<PruneReport, StoreError> {
        self.write(WriteOp::Prune(op)).await?.pruned()
    }

    /// The writer's counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Whether the writer takes writes, and its heartbeat.
    pub fn health(&self) -> &WriterHealth {
        &self.health
    }

    /// Commits everything queued so far, then stops the writer. Later writes
    /// fail with [`StoreError::Closed`].
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.writes.send(Command::Stop(done)).await.is_ok() {
            let _ = finished.await;
        }
    }

    /// Commits what is queued, makes the database durable by itself, and
    /// refuses every later write with [`StoreError::Paused`] until
    /// [`Store::resume`]. Reads go on. Meanwhile neither the database file
    /// nor the log changes, so both can be copied as they are.
    pub async fn pause(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes.send(Command::Pause(reply)).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Takes writes again after [`Store::pause`].
    pub async fn resume(&self) -> Result<(), StoreError> {
        self.writes.send(Command::Resume).await.map_err(|_| StoreError::Closed)
    }

    // ---- writes, typed ----

    /// Creates an account (by an administrator: no invite).
    pub async fn create_user(
        &self,
        name: &str,
        password_hash: String,
        admin: bool,
    ) -> Result<u64, StoreError> {
        self.write(WriteOp::CreateUser { name: name.to_owned(), password_hash, admin, invite: None })
            .await?
            .user()
    }

    /// Creates an account with an invite, then its first device. (Should the
    /// second step fail, the account exists and its owner can log in.)
    pub async fn register(
        &self,
        name: &str,
        password_hash: String,
        invite: &str,
        device_name: &str,
    ) -> Result<NewDevice, StoreError> {
        let user = self
            .write(WriteOp::CreateUser {
                name: name.to_owned(),
                password_hash,
                admin: false,
                invite: Some(token_hash(invite)),
            })
            .await?
            .user()?;
        self.add_device(user, device_name).await
    }

    /// Creates a device with a new token for a user.
    pub async fn add_device(&self, user: u64, device_name: &str) -> Result<NewDevice, StoreError> {
        self.add_device_capped(user, device_name, 0).await
    }

    /// Creates a device with a new token for a user who may have at most
    /// `max_devices` (0: no cap): at the cap, the longest-unused device is
    /// revoked (its sessions get `revoked`) to make room.
    pub async fn add_device_capped(
        &self,
        user: u64,
        device_name: &str,
        max_devices: u32,
    ) -> Result<NewDevice, StoreError> {
        let token = new_secret()?;
        let op = WriteOp::AddDevice {
            user,
            name: device_name.to_owned(),
            token_hash: token_hash(&token),
            max_devices,
        };
        let auth = self.write(op).await?.device()?;
        Ok(NewDevice { auth, token })
    }

    /// Sends a message; returns once it is durable.
    pub async fn send(
        &self,
        sender: u64,
        device: u64,
        to: Target,
        client_id: String,
        text: String,
    ) -> Result<Sent, StoreError> {
        self.write(WriteOp::Send { sender, device, to, client_id, text, attachments: Vec::new() })
            .await?
            .sent()
    }

    /// Records a device's cursor (never moves it backwards).
    pub async fn ack(&self, device: u64, position: u64) -> Result<(), StoreError> {
        self.write(WriteOp::Ack { device, position }).await.map(drop)
    }

    /// Records a delivered or read mark.
    pub async fn receipt(
        &self,
        user: u64,
        conversation: Target,
        kind: ReceiptKind,
        seq: u64,
    ) -> Result<(), StoreError> {
        self.write(WriteOp::Receipt { user, conversation, kind, seq }).await.map(drop)
    }

    /// Creates a group; returns its id.
    pub async fn create_group(
        &self,
        creator: u64,
        name: &str,
        members: Vec<String>,
        max_members: u32,
    ) -> Result<u64, StoreError> {
        self.write(WriteOp::CreateGroup { creator, name: name.to_owned(), members, max_members })
            .await?
            .conversation()
    }

    /// Adds a member (the actor must be a group admin).
    pub async fn add_member(
        &self,
        actor: u64,
        group: Target,
        user: &str,
        max_members: u32,
    ) -> Result<u64, StoreError> {
        self.write(WriteOp::AddMember { actor, group, user: user.to_owned(), max_members })
            .await?
            .conversation()
    }

    /// Removes a member (the actor must be a group admin).
    pub async fn remove_member(&self, actor: u64, group: Target, user: &str) -> Result<u64, StoreError> {
        self.write(WriteOp::RemoveMember { actor, group, user: user.to_owned() }).await?.conversation()
    }

    /// Leaves a group.
    pub async fn leave(&self, user: u64, group: Target) -> Result<u64, StoreError> {
        self.write(WriteOp::Leave { user, group }).await?.conversation()
    }

    /// Revokes one of a user's devices.
    pub async fn revoke_device(&self, user: u64, device: u64) -> Result<(), StoreError> {
        self.write(WriteOp::RevokeDevice { user, device }).await.map(drop)
    }

    /// Removes a user: frees the name, revokes every device, leaves every group.
    pub async fn remove_user(&self, name: &str) -> Result<(), StoreError> {
        self.write(WriteOp::RemoveUser { name: name.to_owned() }).await.map(drop)
    }

    /// Creates an invite; returns its one-time token.
    pub async fn create_invite(
        &self,
        created_by: Option<u64>,
        uses: u32,
        expires_at: Option<u64>,
    ) -> Result<String, StoreError> {
        let token = new_secret()?;
        self.write(WriteOp::CreateInvite { token_hash: token_hash(&token), created_by, uses, expires_at })
            .await?;
        Ok(token)
    }

    // ---- reads ----

    /// Whether an invite token can still be used (checked again, atomically,
    /// when it is used).
    pub fn invite_usable(&self, token: &str) -> Result<bool, StoreError> {
        read::invite_usable(&self.db(), &token_hash(token))
    }

    /// The device a token belongs to, if it is valid.
    pub fn authenticate(&self, token: &str) -> Result<Option<DeviceAuth>, StoreError> {
        read::authenticate(&self.db(), &token_hash(token))
    }

    /// A user's password hash, for login.
    pub fn credentials(&self, name: &str) -> Result<Option<Credentials>, StoreError> {
        read::credentials(&self.db(), name)
    }

    /// A page of a user's stream after the cursor `since`.
    pub fn stream_page(&self, user: u64, since: u64, limit: u32) -> Result<Page, StoreError> {
        read::stream_page(&self.db(), user, since, limit)
    }

    /// Messages of a conversation before `before`, newest `limit`, oldest
    /// first, and whether older ones exist.
    pub fn history(
        &self,
        user: u64,
        conversation: &Target,
        before: Option<u64>,
        limit: u32,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        read::history(&self.db(), user, conversation, before, limit)
    }

    /// The user's conversations.
    pub fn conversations(&self, user: u64) -> Result<Vec<ConversationInfo>, StoreError> {
        read::conversations(&self.db(), user)
    }

    /// One conversation as the user sees it.
    pub fn conversation(&self, user: u64, id: u64) -> Result<ConversationInfo, StoreError> {
        read::conversation(&self.db(), user, id)
    }

    /// The user's devices.
    pub fn devices(&self, user: u64, current: u64) -> Result<Vec<DeviceInfo>, StoreError> {
        read::devices(&self.db(), user, current)
    }

    /// Every push registration, by device (`crate::push` loads them at
    /// start).
    pub fn push_registrations(&self) -> Result<Vec<(u64, push::PushRecord)>, StoreError> {
        push::registrations(&self.db())
    }

    /// Every user, for administrators.
    pub fn users(&self) -> Result<Vec<UserSummary>, StoreError> {
        read::users(&self.db())
    }

    /// The users who share a conversation with `user` (at most `limit`), for
    /// presence.
    pub fn contacts(&self, user: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        read::contacts(&self.db(), user, limit)
    }

    /// A conversation's members and its label for `viewer`, if `viewer` is a
    /// member.
    pub fn members_for(
        &self,
        viewer: u64,
        conversation: &Target,
    ) -> Result<(u64, String, Vec<u64>), StoreError> {
        read::members_for(&self.db(), viewer, conversation)
    }

    /// The last stream position given out (0 before the first).
    pub fn stream_head(&self) -> Result<u64, StoreError> {
        read::stream_head(&self.db())
    }

    /// The names of those of `users` that exist, in one read.
    pub fn usernames(&self, users: &[u64]) -> Result<Vec<String>, StoreError> {
        read::usernames(&self.db(), users)
    }

    /// The user's name, if the id exists.
    pub fn username(&self, user: u64) -> Result<Option<String>, StoreError> {
        read::username(&self.db(), user)
    }

    /// Records a content that is durable in its file, for `user`.
    pub async fn store_blob(
        &self,
        user: u64,
        hash: media::Hash,
        size: u64,
        media_type: String,
    ) -> Result<(), StoreError> {
        self.write(WriteOp::Media(media::MediaOp::Store { user, hash, size, media_type })).await.map(drop)
    }

    /// One bounded round of removing orphans and expired media.
    pub async fn collect_media(&self, collect: media::Collect) -> Result<media::Collected, StoreError> {
        self.write(WriteOp::Media(media::MediaOp::Collect(collect))).await?.collected()
    }

    /// The content `hash` if `user` may download it.
    pub fn downloadable(
        &self,
        user: u64,
        hash: &media::Hash,
    ) -> Result<Option<media::Downloadable>, StoreError> {
        media::downloadable(&self.db(), user, hash)
    }

    /// Whether the content `hash` is stored.
    pub fn blob_exists(&self, hash: &media::Hash) -> Result<bool, StoreError> {
        media::exists(&self.db(), hash)
    }

    /// What `user`'s uploads take, in bytes.
    pub fn media_usage(&self, user: u64) -> Result<u64, StoreError> {
        media::usage(&self.db(), user)
    }

    /// Media on the box, in all and per user.
    pub fn media_summary(&self) -> Result<media::MediaSummary, StoreError> {
        media::summary(&self.db())
    }

    /// Every stored content's hash.
    pub fn blob_hashes(&self) -> Result<std::collections::HashSet<media::Hash>, StoreError> {
        media::all_hashes(&self.db())
    }
}
