//! Uploads in progress, and where they end: a content-addressed file and
//! its row in the store.
//!
//! An upload is two files in `media/uploads`: `ID.part`, the bytes so far,
//! and `ID.json`, its [`UploadMeta`] with the offset that is durable. Bytes
//! are written in chunks; every [`CHECKPOINT`] bytes, and whenever a request
//! ends (finished, cut off or refused), the part is fsynced and then the
//! offset recorded. After a crash the part is cut back to the recorded
//! offset, so bytes the box never confirmed are never part of a content,
//! and the client resumes from the offset it is told.
//!
//! The last byte makes the upload a content: its SHA-256 (computed while
//! writing) names the file it is renamed to under `media/blobs`; the
//! directory is fsynced, and only then is the row written to the store —
//! the upload is acknowledged when that write is durable. A content stored
//! before is not stored again (the part is dropped); it counts once more,
//! to the uploader, if it is new to them.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::blobs::{self, fsync_dir};
use super::{MediaError, MediaLimits};
use crate::store::media::{hex, Hash};
use crate::store::{now_ms, Store};

/// Bytes gathered before one write to the part file.
const WRITE_CHUNK: usize = 1 << 20;

/// Bytes written between two durable checkpoints of an upload.
pub const CHECKPOINT: u64 = 8 << 20;

/// Unfinished uploads one user may have at once.
pub const MAX_UPLOADS_PER_USER: usize = 16;

/// What is known of an upload, kept in `ID.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadMeta {
    pub user: u64,
    /// The device that started it (0 for a web session).
    pub device: u64,
    pub length: u64,
    pub name: String,
    pub media_type: String,
    pub created_at: u64,
    /// Bytes durable in the part file.
    pub offset: u64,
    /// When a byte last arrived (milliseconds since the epoch).
    pub touched: u64,
    /// The content's id once the upload is stored.
    #[serde(default)]
    pub attachment: Option<String>,
}

/// Someone asking: a user, and the device or web session (0) they use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uploader {
    pub user: u64,
    pub device: u64,
}

/// One upload, shared by the requests that write to it or ask about it.
#[derive(Debug)]
pub struct Upload {
    pub id: String,
    meta: Mutex<UploadMeta>,
    /// Held by the one request writing.
    writer: tokio::sync::Mutex<Writer>,
    /// Raised by a request that wants to write while another holds the
    /// writer: usually the same uploader again, whose old connection died
    /// without a word (a killed app, a phone that changed networks) and
    /// would otherwise hold the upload until a timeout noticed.
    takeovers: AtomicU64,
    takeover: tokio::sync::Notify,
}

/// How long a request waits for the one it takes an upload over from to
/// let go (it stops at its next chunk, keeping what it wrote).
const TAKEOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The open part file and the hash of what it holds.
#[derive(Debug, Default)]
struct Writer {
    file: Option<File>,
    /// `None` until the part's bytes were hashed in this process (after a
    /// restart, the first write hashes what the part holds).
    hasher: Option<Sha256>,
    /// Bytes in the file (durable or not).
    offset: u64,
}

impl Upload {
    fn new(id: String, meta: UploadMeta) -> Upload {
        Upload {
            id,
            meta: Mutex::new(meta),
            writer: tokio::sync::Mutex::new(Writer::default()),
            takeovers: AtomicU64::new(0),
            takeover: tokio::sync::Notify::new(),
        }
    }

    /// A copy of what is known of it.
    pub fn meta(&self) -> UploadMeta {
        self.meta.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn update(&self, change: impl FnOnce(&mut UploadMeta)) -> UploadMeta {
        let mut meta = self.meta.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut meta);
        meta.clone()
    }
}

/// The right to write to an upload, held by one request at a time.
#[derive(Debug)]
pub struct Held<'a> {
    writer: tokio::sync::MutexGuard<'a, Writer>,
}

/// How a write to an upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Durable up to this offset; more is expected.
    At(u64),
    /// The upload is a stored content with this id.
    Stored(String),
}

/// A source of an upload's bytes: a request body or a QUIC stream.
pub trait ByteSource {
    /// The next bytes; `None` at the end, `Err` when the sender went away
    /// or broke the transfer (the reason is for the log).
    fn next_chunk(&mut self) -> impl std::future::Future<Output = Result<Option<Bytes>, String>> + Send;
}

/// The attachments of the box: uploads, contents and their limits.
#[derive(Debug)]
pub struct Media {
    dir: PathBuf,
    pub store: Store,
    pub limits: MediaLimits,
    uploads: Mutex<HashMap<String, Arc<Upload>>>,
    /// Held while a content's file and row are made or removed, so that a
    /// content being stored is never deleted as an orphan at the same time.
    pub(super) files: tokio::sync::Mutex<()>,
}

impl Media {
    /// Opens the media directory: creates it and loads the unfinished
    /// uploads (each cut back to its durable offset).
    pub fn open(dir: PathBuf, store: Store, limits: MediaLimits) -> Result<Media, MediaError> {
        fs::create_dir_all(dir.join("uploads"))?;
        fs::create_dir_all(dir.join("blobs"))?;
        let mut uploads = HashMap::new();
        for entry in fs::read_dir(dir.join("uploads"))? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(id) = name.strip_suffix(".json") else { continue };
            match load_upload(&dir, id) {
                Ok(upload) => {
                    uploads.insert(id.to_owned(), Arc::new(upload));
                }
                Err(e) => {
                    tracing::warn!(upload = id, error = %e, "dropping an upload whose record cannot be read");
                    let _ = fs::remove_file(&path);
                    let _ = fs::remove_file(part_path(&dir, id));
                }
            }
        }
        Ok(Media { dir, store, limits, uploads: Mutex::new(uploads), files: tokio::sync::Mutex::new(()) })
    }

    /// Deletes the contents' files that no row names (a crash between a
    /// file and its row). Run by the first round of [`super::collect`],
    /// not at start: it reads every row and lists every file. It holds
    /// [`Media::files`], so that a content being stored meanwhile (its file
    /// there, its row not yet) is left alone.
    pub async fn sweep(&self) -> Result<usize, MediaError> {
        let _files = self.files.lock().await;
        let known = self.store.blob_hashes()?;
        let dir = self.dir.clone();
        let swept = blocking(move || blobs::sweep(&dir, &known)).await?;
        if swept > 0 {
            tracing::info!(
                files = swept,
                "removed content files that no record names (an interrupted store)"
            );
        }
        Ok(swept)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn uploads(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Upload>>> {
        self.uploads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts an upload of `length` bytes, if the limits allow it.
    pub async fn create(
        &self,
        who: Uploader,
        length: u64,
        name: &str,
        media_type: &str,
    ) -> Result<Arc<Upload>, MediaError> {
        if length > self.limits.max_file {
            return Err(MediaError::TooLarge { size: length, limit: self.limits.max_file });
        }
        if !imbox_protocol::attachment::valid_file_name(name) {
            return Err(MediaError::Invalid(
                "the file name must have 1 to 255 bytes, with no '/', '\\' or control characters".into(),
            ));
        }
        if !imbox_protocol::attachment::valid_media_type(media_type) {
            return Err(MediaError::Invalid(format!(
                "{media_type:?} is not a media type such as image/jpeg"
            )));
        }
        self.admit(who.user, length)?;
        let id = new_upload_id()?;
        let now = now_ms();
        let meta = UploadMeta {
            user: who.user,
            device: who.device,
            length,
            name: name.to_owned(),
            media_type: media_type.to_owned(),
            created_at: now,
            offset: 0,
            touched: now,
            attachment: None,
        };
        let dir = self.dir.clone();
        let (file_id, written) = (id.clone(), meta.clone());
        blocking(move || {
            File::create(part_path(&dir, &file_id))?.sync_all()?;
            write_meta(&dir, &file_id, &written)?;
            fsync_dir(&dir.join("uploads"))
        })
        .await?;
        let upload = Arc::new(Upload::new(id.clone(), meta));
        self.uploads().insert(id, upload.clone());
        Ok(upload)
    }

    /// Checks the quota and the reserve for a new upload of `length` bytes.
    fn admit(&self, user: u64, length: u64) -> Result<(), MediaError> {
        let (mine, count, pending) = {
            let uploads = self.uploads();
            let mut mine = 0u64;
            let mut count = 0usize;
            let mut pending = 0u64;
            for upload in uploads.values() {
                let meta = upload.meta();
                if meta.attachment.is_some() {
                    continue;
                }
                pending += meta.length - meta.offset.min(meta.length);
                if meta.user == user {
                    mine += meta.length;
                    count += 1;
                }
            }
            (mine, count, pending)
        };
        if count >= MAX_UPLOADS_PER_USER {
            return Err(MediaError::TooManyUploads(count));
        }
        if self.limits.user_quota > 0 {
            let used = self.store.media_usage(user)?.saturating_add(mine);
            if used.saturating_add(length) > self.limits.user_quota {
                return Err(MediaError::QuotaExceeded { size: length, used, quota: self.limits.user_quota });
            }
        }
        let available = fs4::available_space(&self.dir)?;
        let free = available.saturating_sub(pending);
        if free < length.saturating_add(self.limits.reserve) {
            return Err(MediaError::SpaceFull { size: length, free, reserve: self.limits.reserve });
        }
        Ok(())
    }

    /// The caller's upload `id`; [`MediaError::NotFound`] for anyone else's.
    pub fn find(&self, who: Uploader, id: &str) -> Result<Arc<Upload>, MediaError> {
        let upload = self.uploads().get(id).cloned().ok_or(MediaError::NotFound)?;
        if upload.meta().user != who.user {
            return Err(MediaError::NotFound);
        }
        Ok(upload)
    }

    /// Drops an upload and its files (tus termination, expiry).
    pub async fn remove(&self, upload: &Arc<Upload>) -> Result<(), MediaError> {
        // Wait for a writer to let go, so that no request writes to a file
        // being deleted.
        let _writer = upload.writer.lock().await;
        self.uploads().remove(&upload.id);
        let (dir, id) = (self.dir.clone(), upload.id.clone());
        blocking(move || {
            for path in [part_path(&dir, &id), meta_path(&dir, &id)] {
                match fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .await
    }

    /// Uploads no byte reached for longer than `media.upload_expiry_hours`.
    pub fn expired_uploads(&self, now: u64) -> Vec<Arc<Upload>> {
        let expiry = self.limits.upload_expiry.as_millis() as u64;
        self.uploads().values().filter(|u| u.meta().touched.saturating_add(expiry) < now).cloned().collect()
    }

    /// Unfinished uploads: how many, and the bytes they still expect.
    pub fn pending(&self) -> (usize, u64) {
        let uploads = self.uploads();
        let open = uploads.values().map(|u| u.meta()).filter(|m| m.attachment.is_none());
        open.fold((0, 0), |(n, bytes), m| (n + 1, bytes + (m.length - m.offset.min(m.length))))
    }

    /// Becomes the one request writing to `upload`, taking it over from
    /// another that holds it (only its uploader gets this far: `find`
    /// checked, and the newer request wins). What the upload holds durably
    /// is then settled: [`Upload::meta`] tells where to go on.
    pub async fn hold<'a>(&self, upload: &'a Upload) -> Result<Held<'a>, MediaError> {
        let writer = match upload.writer.try_lock() {
            Ok(writer) => writer,
            Err(_) => {
                upload.takeovers.fetch_add(1, Ordering::AcqRel);
                upload.takeover.notify_waiters();
                tokio::time::timeout(TAKEOVER_WAIT, upload.writer.lock())
                    .await
                    .map_err(|_| MediaError::Busy)?
            }
        };
        Ok(Held { writer })
    }

    /// Writes the bytes of `source` at `offset`, which must be the durable
    /// offset. Whatever arrives is kept, up to a cut or a refusal: the
    /// offset returned (or found by [`Upload::meta`] after an error) is
    /// where to resume. The last byte stores the content.
    pub async fn append<S: ByteSource>(
        &self,
        upload: &Arc<Upload>,
        offset: u64,
        source: &mut S,
    ) -> Result<Progress, MediaError> {
        let held = self.hold(upload).await?;
        self.append_held(upload, held, offset, source).await
    }

    /// [`Media::append`] for a request that already holds the upload.
    pub async fn append_held<S: ByteSource>(
        &self,
        upload: &Arc<Upload>,
        held: Held<'_>,
        offset: u64,
        source: &mut S,
    ) -> Result<Progress, MediaError> {
        let mut writer = held.writer;
        let generation = upload.takeovers.load(Ordering::Acquire);
        let meta = upload.meta();
        if let Some(id) = meta.attachment {
            return Ok(Progress::Stored(id));
        }
        if offset != meta.offset {
            return Err(MediaError::OffsetMismatch { expected: meta.offset, given: offset });
        }
        self.open_part(upload, &mut writer, meta.offset).await?;
        let mut buffer: Vec<u8> = Vec::new();
        let mut pipeline = Pipeline::default();
        let mut unsynced = 0u64;
        let ended = loop {
            // Registered before the check, so that a takeover between the
            // two is not missed.
            let taken = upload.takeover.notified();
            if upload.takeovers.load(Ordering::Acquire) != generation {
                tracing::debug!(upload = %upload.id, "a newer request takes this upload over");
                break Ok(());
            }
            let chunk = tokio::select! {
                chunk = source.next_chunk() => chunk,
                () = taken => continue,
            };
            match chunk {
                Ok(Some(bytes)) => {
                    let end = writer.offset + buffer.len() as u64 + bytes.len() as u64;
                    if end > meta.length {
                        break Err(MediaError::TooLong { length: meta.length });
                    }
                    buffer.extend_from_slice(&bytes);
                    if buffer.len() >= WRITE_CHUNK {
                        unsynced += buffer.len() as u64;
                        pipeline.launch(&mut writer, &mut buffer).await?;
                        if unsynced >= CHECKPOINT {
                            pipeline.land(&mut writer).await?;
                            self.checkpoint(upload, &mut writer).await?;
                            unsynced = 0;
                        }
                    }
                }
                Ok(None) => break Ok(()),
                Err(reason) => {
                    tracing::debug!(upload = %upload.id, %reason, "upload cut off; keeping what arrived");
                    break Ok(());
                }
            }
        };
        pipeline.flush(&mut writer, &mut buffer).await?;
        self.checkpoint(upload, &mut writer).await?;
        ended?;
        if writer.offset < meta.length {
            return Ok(Progress::At(writer.offset));
        }
        self.finish(upload, &mut writer).await
    }

    /// Opens the part file at the durable offset (cutting off anything
    /// after it) and hashes what it holds, if this process has not yet.
    async fn open_part(&self, upload: &Upload, writer: &mut Writer, durable: u64) -> Result<(), MediaError> {
        if writer.file.is_some() && writer.hasher.is_some() && writer.offset == durable {
            return Ok(());
        }
        let path = part_path(&self.dir, &upload.id);
        let (file, hasher) = blocking(move || {
            let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
            file.set_len(durable)?;
            file.seek(SeekFrom::Start(0))?;
            let mut hasher = Sha256::new();
            let mut left = durable;
            let mut chunk = vec![0u8; WRITE_CHUNK];
            while left > 0 {
                let n = file.read(&mut chunk[..WRITE_CHUNK.min(left as usize)])?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the part file is shorter than its durable offset",
                    ));
                }
                hasher.update(&chunk[..n]);
                left -= n as u64;
            }
            file.seek(SeekFrom::Start(durable))?;
            Ok((file, hasher))
        })
        .await?;
        *writer = Writer { file: Some(file), hasher: Some(hasher), offset: durable };
        Ok(())
    }

    /// Makes the part durable up to the writer's offset, then records it.
    async fn checkpoint(&self, upload: &Upload, writer: &mut Writer) -> Result<(), MediaError> {
        let Some(file) = writer.file.take() else { return Ok(()) };
        let file = blocking(move || file.sync_data().map(|()| file)).await?;
        writer.file = Some(file);
        let offset = writer.offset;
        let meta = upload.update(|m| {
            m.offset = offset;
            m.touched = now_ms();
        });
        let (dir, id) = (self.dir.clone(), upload.id.clone());
        blocking(move || write_meta(&dir, &id, &meta)).await
    }

    /// Turns a complete upload into a stored content.
    async fn finish(&self, upload: &Upload, writer: &mut Writer) -> Result<Progress, MediaError> {
        let meta = upload.meta();
        let hash: Hash = writer
            .hasher
            .take()
            .map(|h| h.finalize().into())
            .ok_or_else(|| MediaError::Invalid("internal: an upload finished without its hash".into()))?;
        writer.file = None;
        let _files = self.files.lock().await;
        let (dir, id) = (self.dir.clone(), upload.id.clone());
        let adopted = blocking(move || blobs::adopt(&dir, &part_path(&dir, &id), &hash)).await?;
        let stored = self.store.store_blob(meta.user, hash, meta.length, meta.media_type.clone()).await;
        let (dir, id) = (self.dir.clone(), upload.id.clone());
        match (stored, adopted) {
            (Ok(()), blobs::Adopted::Moved) => {}
            // The same content was stored before: this copy is not needed.
            (Ok(()), blobs::Adopted::AlreadyThere) => {
                blocking(move || fs::remove_file(part_path(&dir, &id))).await?;
            }
            // Nothing acknowledged: the bytes go back where a retry finds
            // them (the next write, of no bytes, finishes again).
            (Err(e), blobs::Adopted::Moved) => {
                blocking(move || blobs::give_back(&dir, &hash, &part_path(&dir, &id))).await?;
                return Err(e.into());
            }
            (Err(e), blobs::Adopted::AlreadyThere) => return Err(e.into()),
        }
        let attachment = hex(&hash);
        let done = upload.update(|m| {
            m.attachment = Some(attachment.clone());
            m.touched = now_ms();
        });
        let (dir, id) = (self.dir.clone(), upload.id.clone());
        blocking(move || write_meta(&dir, &id, &done)).await?;
        tracing::debug!(upload = %upload.id, %attachment, bytes = meta.length, "upload stored");
        Ok(Progress::Stored(attachment))
    }

    /// Opens a content for `user`, if they may read it.
    pub fn open_blob(
        &self,
        user: u64,
        hash: &Hash,
    ) -> Result<(File, crate::store::media::Downloadable), MediaError> {
        let found = self.store.downloadable(user, hash)?.ok_or(MediaError::NotFound)?;
        match File::open(blobs::blob_path(&self.dir, hash)) {
            Ok(file) => Ok((file, found)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(attachment = %hex(hash), "a stored content's file is missing");
                Err(MediaError::NotFound)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The write of a chunk to the part file and the hash, running on a
/// blocking thread while the next chunk arrives; what it gives back.
type Landing = tokio::task::JoinHandle<std::io::Result<(File, Sha256, Vec<u8>)>>;

/// Writes to the part file and the hash off the runtime's threads, at
/// most one chunk at a time, so that receiving the next chunk overlaps
/// writing and hashing this one (hashing is an upload's largest cost on a
/// Pi, which has no SHA instructions).
#[derive(Default)]
struct Pipeline {
    in_flight: Option<Landing>,
    /// The buffer of the last write, for the next chunk.
    spare: Vec<u8>,
}

impl Pipeline {
    /// Waits for the write in flight, if any: then the writer holds the
    /// file and the hash again.
    async fn land(&mut self, writer: &mut Writer) -> Result<(), MediaError> {
        let Some(handle) = self.in_flight.take() else { return Ok(()) };
        let (file, hasher, mut bytes) = match handle.await {
            Ok(result) => result?,
            Err(e) => return Err(MediaError::Io(std::io::Error::other(format!("file task failed: {e}")))),
        };
        writer.file = Some(file);
        writer.hasher = Some(hasher);
        bytes.clear();
        self.spare = bytes;
        Ok(())
    }

    /// Starts writing `buffer` (after the last write landed) and gives
    /// `buffer` the spare one to fill meanwhile. The writer's offset counts
    /// the bytes at once; they are durable only at the next checkpoint,
    /// which lands them first.
    async fn launch(&mut self, writer: &mut Writer, buffer: &mut Vec<u8>) -> Result<(), MediaError> {
        self.land(writer).await?;
        if buffer.is_empty() {
            return Ok(());
        }
        let (Some(mut file), Some(mut hasher)) = (writer.file.take(), writer.hasher.take()) else {
            return Err(MediaError::Invalid("internal: an upload's file is not open".into()));
        };
        let bytes = std::mem::replace(buffer, std::mem::take(&mut self.spare));
        writer.offset += bytes.len() as u64;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            file.write_all(&bytes)?;
            hasher.update(&bytes);
            Ok((file, hasher, bytes))
        }));
        Ok(())
    }

    /// Writes what is buffered and waits until every write has landed.
    async fn flush(&mut self, writer: &mut Writer, buffer: &mut Vec<u8>) -> Result<(), MediaError> {
        self.launch(writer, buffer).await?;
        self.land(writer).await
    }
}

/// Runs file work on tokio's blocking threads.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, MediaError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(MediaError::from),
        Err(e) => Err(MediaError::Io(std::io::Error::other(format!("file task failed: {e}")))),
    }
}

fn part_path(dir: &Path, id: &str) -> PathBuf {
    dir.join("uploads").join(format!("{id}.part"))
}

fn meta_path(dir: &Path, id: &str) -> PathBuf {
    dir.join("uploads").join(format!("{id}.json"))
}

/// Writes an upload's record: a temporary file, fsynced, renamed over the
/// old one, and the directory fsynced.
fn write_meta(dir: &Path, id: &str, meta: &UploadMeta) -> std::io::Result<()> {
    let tmp = dir.join("uploads").join(format!("{id}.json.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(meta).map_err(std::io::Error::other)?)?;
    file.sync_all()?;
    fs::rename(&tmp, meta_path(dir, id))?;
    fsync_dir(&dir.join("uploads"))
}

/// Reads an upload's record, and cuts its part back to the durable offset.
fn load_upload(dir: &Path, id: &str) -> std::io::Result<Upload> {
    if !valid_upload_id(id) {
        return Err(std::io::Error::other("not an upload id"));
    }
    let meta: UploadMeta =
        serde_json::from_slice(&fs::read(meta_path(dir, id))?).map_err(std::io::Error::other)?;
    if meta.attachment.is_none() {
        let part = OpenOptions::new().write(true).open(part_path(dir, id))?;
        if part.metadata()?.len() != meta.offset {
            part.set_len(meta.offset)?;
            part.sync_all()?;
        }
    }
    Ok(Upload::new(id.to_owned(), meta))
}

/// A new upload id: 128 random bits, base64url.
fn new_upload_id() -> Result<String, MediaError> {
    use base64::Engine;
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| MediaError::Io(std::io::Error::other(e.to_string())))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `id` could be an upload id (it names files: nothing else may).
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 22 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
