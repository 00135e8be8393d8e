//! Files beside messages: uploading them (resumably), downloading them
//! (checked against their id), and sending messages that carry them.
//!
//! # Layout
//!
//! - this file: the [`Client`] methods ([`Client::upload`],
//!   [`Client::download`], [`Client::download_to`],
//!   [`Client::send_with_attachments`]), their progress reports and
//!   results, the local file being uploaded ([`LocalFile`]) and the
//!   running SHA-256 that checks both directions ([`ContentHash`]).
//! - `quic`: transfers on streams of their own on the session's QUIC
//!   connection (`imbox_protocol::transfer`).
//! - `https`: a small tus 1.0.0 client (POST, HEAD, PATCH) and downloads
//!   with `GET`, over HTTPS with the box's pinned key (for `wss://`).
//! - `pending`: the uploads a profile has started, saved beside it, so
//!   that running the same upload again resumes it.
//! - `media_type`: the media type of a file from its extension.
//!
//! Which transport carries the bytes follows the session's: `quic://`
//! sends them on the same QUIC connection, `wss://` over HTTPS to the same
//! host and port. Plain `ws://` has neither and refuses
//! ([`ClientError::AttachmentsNeedTls`]).
//!
//! Both directions survive lost connections: an upload asks the box where
//! to go on (tus `HEAD`, or the offset of QUIC's `ready`), a download asks
//! for the bytes from what it has written (HTTP `Range`, or QUIC's
//! `offset`). Within one call, transient failures are retried for as long as
//! [`crate::ClientOptions::retry_for`] allows; after that, running the same
//! upload again (in another process, say) resumes it from the box's offset,
//! because the upload's id is saved in the profile directory.
//!
//! ```no_run
//! # async fn demo() -> Result<(), imbox_client::ClientError> {
//! use imbox_client::protocol::Target;
//! use imbox_client::Client;
//!
//! let mut client = Client::open("/home/alice/.config/imbox")?;
//! let uploaded = client.upload("film.mp4", |p| eprintln!("{} of {} bytes", p.done, p.total)).await?;
//! let attachment = uploaded.attachment;
//! client.send_with_attachments(&Target::parse("bob"), "the film", vec![attachment.clone()]).await?;
//! // A recipient, with the id from the message:
//! client.download(&attachment.id, "film.mp4", |_| {}).await?;
//! # Ok(()) }
//! ```

mod https;
pub mod media_type;
mod pending;
mod quic;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use imbox_protocol::{Attachment, ErrorBody, ErrorCode, Target};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

use crate::client::{Client, Sent};
use crate::error::ClientError;
use crate::url::Scheme;

pub use pending::UPLOADS_FILE;

/// How far a transfer has come, handed to the progress callback after every
/// chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the content the box has or is being sent (an upload), or
    /// that were written (a download), from the start of the content.
    pub done: u64,
    /// The content's size.
    pub total: u64,
    /// Where this run started: the box's offset of a resumed upload, or 0.
    /// `done - resumed_at` is what this run moved, for a rate.
    pub resumed_at: u64,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The description to send in a message
    /// ([`Client::send_with_attachments`]).
    pub attachment: Attachment,
    /// The box's offset this run started from: 0 for a new upload, more
    /// for a resumed one, the size for one the box had finished already.
    pub resumed_at: u64,
    /// The bytes this run sent.
    pub sent: u64,
}

/// What a download did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// The attachment's size, which is what was written.
    pub size: u64,
    /// The media type the box keeps with the content.
    pub media_type: String,
}

/// A file being uploaded: where it is, what it is called, and what
/// identifies this version of it (size and modification time) for
/// resumption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalFile {
    /// The canonical path.
    pub path: PathBuf,
    /// The name offered to recipients (valid by the protocol's rules).
    pub name: String,
    pub media_type: String,
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch (0 when the
    /// file system keeps none).
    pub modified_ns: u128,
}

/// The bytes read per step of an upload, and so the granularity of its
/// progress reports.
const CHUNK: usize = 256 * 1024;

impl LocalFile {
    pub(crate) fn open(path: &Path) -> Result<LocalFile, ClientError> {
        let failed = |action: &'static str| {
            let path = path.to_owned();
            move |error| ClientError::File { action, path, error }
        };
        let canonical = std::fs::canonicalize(path).map_err(failed("find"))?;
        let metadata = std::fs::metadata(&canonical).map_err(failed("read"))?;
        if !metadata.is_file() {
            let error = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
            return Err(ClientError::File { action: "upload", path: path.to_owned(), error });
        }
        let modified_ns = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let raw_name = canonical.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(LocalFile {
            name: offered_name(&raw_name),
            media_type: media_type::for_path(&canonical).to_owned(),
            path: canonical,
            size: metadata.len(),
            modified_ns,
        })
    }

    /// Opens the file for reading at `offset`.
    pub(crate) async fn reader_at(&self, offset: u64) -> Result<tokio::fs::File, ClientError> {
        let failed = |action| {
            let path = self.path.clone();
            move |error| ClientError::File { action, path, error }
        };
        let mut file = tokio::fs::File::open(&self.path).await.map_err(failed("open"))?;
        file.seek(std::io::SeekFrom::Start(offset)).await.map_err(failed("read"))?;
        Ok(file)
    }

    /// Reads the next chunk of at most [`CHUNK`] bytes, stopping at the
    /// size the upload announced even if the file grew since. An empty
    /// chunk before `end` means the file shrank.
    pub(crate) async fn read_chunk(
        &self,
        file: &mut tokio::fs::File,
        at: u64,
    ) -> Result<bytes::Bytes, ClientError> {
        let want = usize::try_from(self.size.saturating_sub(at)).unwrap_or(usize::MAX).min(CHUNK);
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            let read = file.read(&mut buf[filled..]).await.map_err(|error| ClientError::File {
                action: "read",
                path: self.path.clone(),
                error,
            })?;
            if read == 0 {
                let error = std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file became shorter while it was being uploaded",
                );
                return Err(ClientError::File { action: "read", path: self.path.clone(), error });
            }
            filled += read;
        }
        Ok(bytes::Bytes::from(buf))
    }
}

/// A name for recipients from a local file name: the protocol refuses
/// control characters, separators and names over 255 bytes, which some
/// file systems allow.
fn offered_name(raw: &str) -> String {
    let mut name = String::new();
    for c in raw.chars() {
        let c = if c.is_control() || matches!(c, '/' | '\\') { '_' } else { c };
        if name.len() + c.len_utf8() > imbox_protocol::attachment::MAX_FILE_NAME {
            break;
        }
        name.push(c);
    }
    if imbox_protocol::attachment::valid_file_name(&name) {
        name
    } else {
        // Only or bidirectional-formatting characters: nothing worth keeping.
        "file".to_owned()
    }
}

/// The SHA-256 of a content read in order, possibly more than once: an
/// upload that resumes at an offset the box gave hashes the part before it
/// from the file ([`ContentHash::catch_up`]) and skips bytes it has hashed
/// already when a retry sends them again ([`ContentHash::feed`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct ContentHash {
    sha: Sha256,
    upto: u64,
}

impl ContentHash {
    /// Hashes `bytes`, which start at `at` in the content; `at` must not be
    /// past what was hashed so far.
    pub(crate) fn feed(&mut self, at: u64, bytes: &[u8]) {
        debug_assert!(at <= self.upto, "a gap in the hashed content");
        let skip = usize::try_from(self.upto.saturating_sub(at)).unwrap_or(usize::MAX);
        if let Some(new) = bytes.get(skip..) {
            self.sha.update(new);
            self.upto += new.len() as u64;
        }
    }

    /// Hashes the file's bytes from what was hashed so far up to `to`.
    pub(crate) async fn catch_up(&mut self, file: &LocalFile, to: u64) -> Result<(), ClientError> {
        if self.upto >= to {
            return Ok(());
        }
        let mut reader = file.reader_at(self.upto).await?;
        while self.upto < to {
            let chunk = file.read_chunk(&mut reader, self.upto).await?;
            let keep = usize::try_from(to - self.upto).unwrap_or(usize::MAX).min(chunk.len());
            let at = self.upto;
            self.feed(at, &chunk[..keep]);
        }
        Ok(())
    }

    /// How many bytes were hashed.
    pub(crate) fn len(&self) -> u64 {
        self.upto
    }

    /// The hash in lowercase hex: an attachment id.
    pub(crate) fn hex(&self) -> String {
        hex(&self.sha.clone().finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The client error for a refusal by the box of a transfer (over QUIC) or
/// an HTTPS request about one.
pub(crate) fn transfer_error(request: &'static str, error: ErrorBody, size: u64, id: &str) -> ClientError {
    let message = error.message.clone();
    match error.code {
        ErrorCode::QuotaExceeded => ClientError::QuotaExceeded { message },
        ErrorCode::MediaSpaceFull => ClientError::MediaSpaceFull { message },
        ErrorCode::TooLarge => ClientError::AttachmentTooLarge { size, message },
        ErrorCode::NotFound if !id.is_empty() => ClientError::AttachmentNotFound { id: id.to_owned() },
        _ => ClientError::Server { request, error },
    }
}

/// The state of one upload across its attempts within a call.
#[derive(Debug)]
pub(crate) struct UploadRun {
    pub file: LocalFile,
    /// The box's id of the upload, once it gave one (or the saved one).
    pub upload: Option<String>,
    pub hash: ContentHash,
    /// The offset the first attempt started from.
    pub resumed_at: Option<u64>,
    /// Bytes sent by this call.
    pub sent: u64,
}

/// What one attempt at an upload ended with, short of an error.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// The box holds the whole content under this id.
    Stored { attachment: String },
    /// The box does not know the saved upload (it expired): start anew.
    Forgotten,
}

impl Client {
    /// Uploads the file at `path` to the box and returns its description,
    /// ready for [`Client::send_with_attachments`]. `progress` is called as
    /// bytes go out.
    ///
    /// Resumable: the upload's id is saved in the profile directory
    /// ([`UPLOADS_FILE`]) with the file's identity (canonical path, size,
    /// modification time), so that uploading the same file again after an
    /// interruption goes on from the box's offset, and one the box finished
    /// already is not sent again. Transient failures are retried within the
    /// call as long as [`crate::ClientOptions::retry_for`] allows.
    ///
    /// The box computes the id (the SHA-256 of what it received); it is
    /// checked against the file's own, so a file changed during the upload
    /// gives [`ClientError::FileChanged`] rather than a mix of versions.
    pub async fn upload(
        &mut self,
        path: impl AsRef<Path>,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<Uploaded, ClientError> {
        self.attachments_transport()?;
        let file = LocalFile::open(path.as_ref())?;
        let key = self.pending_key();
        let saved = pending::find(self.dir(), &key, &file);
        let mut run = UploadRun {
            upload: saved.map(|s| s.upload),
            file,
            hash: ContentHash::default(),
            resumed_at: None,
            sent: 0,
        };
        // A box that forgets every upload it creates must not keep this
        // loop going.
        let mut forgotten = 0;
        let mut busy = Busy::default();
        loop {
            let attempt = match self.attachments_transport()? {
                Scheme::Quic => self.upload_quic(&mut run, &mut progress).await,
                _ => self.upload_https(&mut run, &mut progress).await,
            };
            match attempt {
                Ok(Attempt::Stored { attachment }) => {
                    self.attachment_succeeded();
                    return self.uploaded(run, &key, attachment).await;
                }
                Ok(Attempt::Forgotten) if forgotten >= 2 => {
                    return Err(ClientError::Protocol {
                        reason: "the box keeps forgetting the uploads it has just created".to_owned(),
                    });
                }
                Ok(Attempt::Forgotten) => {
                    forgotten += 1;
                    tracing::info!("the box no longer knows the saved upload; starting anew");
                    pending::forget(self.dir(), &key, &run.file);
                    run.upload = None;
                }
                Err(err) if err.code() == Some(ErrorCode::Unavailable) && busy.wait(&err).await => {}
                Err(err) => self.recover_attachment(err).await?,
            }
        }
    }

    /// Checks the box's id against the file's and saves that it is done.
    async fn uploaded(
        &mut self,
        mut run: UploadRun,
        key: &str,
        attachment: String,
    ) -> Result<Uploaded, ClientError> {
        run.hash.catch_up(&run.file, run.file.size).await?;
        let local = run.hash.hex();
        if local != attachment {
            pending::forget(self.dir(), key, &run.file);
            return Err(ClientError::FileChanged { path: run.file.path, stored: attachment, local });
        }
        if let Some(upload) = &run.upload {
            pending::save(self.dir(), key, &run.file, upload, Some(&attachment));
        }
        let description = Attachment {
            id: attachment,
            media_type: run.file.media_type.clone(),
            size: run.file.size,
            name: run.file.name.clone(),
            width: None,
            height: None,
            duration_ms: None,
            blurhash: None,
            thumbnail: None,
            expired: false,
        };
        Ok(Uploaded {
            attachment: description,
            resumed_at: run.resumed_at.unwrap_or(run.file.size),
            sent: run.sent,
        })
    }

    /// Downloads attachment `id` into the file `path`: written beside it
    /// under a temporary name, checked against the id, then renamed, so that
    /// `path` never holds a partial or damaged content.
    pub async fn download(
        &mut self,
        id: &str,
        path: impl AsRef<Path>,
        progress: impl FnMut(Progress) + Send,
    ) -> Result<Downloaded, ClientError> {
        let path = path.as_ref();
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = path.with_file_name(format!(".{file_name}.{}.part", uuid::Uuid::new_v4()));
        let failed = |action: &'static str, at: &Path| {
            let path = at.to_owned();
            move |error| ClientError::File { action, path, error }
        };
        let mut out = tokio::fs::File::create(&temp).await.map_err(failed("create", &temp))?;
        // Removes the temporary file on every way out but success, this
        // future being dropped (an interrupted download) included.
        let mut partial = RemoveOnDrop(Some(temp.clone()));
        let downloaded = self.download_to(id, &mut out, progress).await?;
        out.sync_all().await.map_err(failed("write", &temp))?;
        tokio::fs::rename(&temp, path).await.map_err(failed("replace", path))?;
        partial.0 = None;
        Ok(downloaded)
    }

    /// Downloads attachment `id` into `out`, checking that what was written
    /// has the SHA-256 the id names ([`ClientError::AttachmentCorrupt`]
    /// otherwise, after the bytes were written: a caller writing somewhere
    /// it cannot take back must treat them as untrusted until this returns
    /// `Ok`). Lost connections are resumed from what was written.
    pub async fn download_to<W: AsyncWrite + Unpin + Send>(
        &mut self,
        id: &str,
        out: &mut W,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<Downloaded, ClientError> {
        self.attachments_transport()?;
        if !imbox_protocol::valid_attachment_id(id) {
            return Err(imbox_protocol::AttachmentError::BadId(id.chars().take(80).collect()).into());
        }
        let mut sink = DownloadSink {
            out,
            hash: ContentHash::default(),
            total: None,
            media_type: None,
            buffer: Vec::with_capacity(CHUNK),
        };
        loop {
            let attempt = match self.attachments_transport()? {
                Scheme::Quic => self.download_quic(id, &mut sink, &mut progress).await,
                _ => self.download_https(id, &mut sink, &mut progress).await,
            };
            match attempt {
                Ok(()) => break,
                Err(err) => self.recover_attachment(err).await?,
            }
        }
        self.attachment_succeeded();
        sink.flush(&mut progress).await?;
        sink.out.flush().await.map_err(output_error)?;
        let actual = sink.hash.hex();
        if actual != id || Some(sink.hash.len()) != sink.total {
            return Err(ClientError::AttachmentCorrupt { id: id.to_owned(), actual });
        }
        Ok(Downloaded { size: sink.hash.len(), media_type: sink.media_type.unwrap_or_default() })
    }

    /// Sends a message carrying `attachments` (each uploaded by
    /// [`Client::upload`], or received in another message) with `caption`
    /// as its text, which may be empty. Retried across reconnects under one
    /// message id, like [`Client::send`].
    pub async fn send_with_attachments(
        &mut self,
        to: &Target,
        caption: &str,
        attachments: Vec<Attachment>,
    ) -> Result<Sent, ClientError> {
        self.send_message(to, &uuid::Uuid::new_v4().to_string(), caption, attachments).await
    }

    /// The scheme that carries attachments, or why there is none.
    fn attachments_transport(&self) -> Result<Scheme, ClientError> {
        match self.server_url().scheme() {
            Scheme::Ws => Err(ClientError::AttachmentsNeedTls { url: self.server_url().to_string() }),
            scheme => Ok(scheme),
        }
    }

    /// Uploads are the user's on the box, whichever of its addresses and
    /// transports they went through: keyed by the box's key and the user.
    fn pending_key(&self) -> String {
        let place = self.pin().map_or_else(|| self.server_url().to_string(), |pin| pin.to_string());
        format!("{}@{place}", self.profile().user)
    }
}

/// How long an upload waits for the box to let go of an earlier writer of
/// it: a run that was killed leaves its QUIC connection open on the box
/// until the box's idle timeout (a minute) ends it, and until then the box
/// answers that the upload is busy (`unavailable`).
const BUSY_UPLOAD_WAIT: Duration = Duration::from_secs(75);

/// The wait for a busy upload, apart from the client's usual retries,
/// which give up much sooner.
#[derive(Debug, Default)]
struct Busy {
    since: Option<Instant>,
}

impl Busy {
    /// Waits a little and says `true` while the upload may still become
    /// free; `false` once it has been busy for too long.
    async fn wait(&mut self, err: &ClientError) -> bool {
        let since = match self.since {
            Some(since) if since.elapsed() >= BUSY_UPLOAD_WAIT => return false,
            Some(since) => since,
            None => {
                tracing::warn!(
                    "{err}: an interrupted run may still hold this upload on the box; \
                     waiting up to {} s for the box to let go of it",
                    BUSY_UPLOAD_WAIT.as_secs()
                );
                *self.since.insert(Instant::now())
            }
        };
        let pause = err.retry_after().unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(5));
        tokio::time::sleep(pause.min(BUSY_UPLOAD_WAIT.saturating_sub(since.elapsed()))).await;
        true
    }
}

/// A file removed when this is dropped, unless taken out first.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Where a download goes, and what has gone there.
struct DownloadSink<'a, W> {
    out: &'a mut W,
    /// Of everything received, written or still in `buffer`.
    hash: ContentHash,
    /// The size the box announced.
    total: Option<u64>,
    media_type: Option<String>,
    /// Received bytes not yet written: QUIC and TLS hand over a packet's or
    /// a record's worth at a time, and a write per packet to a file (each a
    /// trip to tokio's blocking pool) would cost more than the transfer.
    buffer: Vec<u8>,
}

fn output_error(error: std::io::Error) -> ClientError {
    ClientError::File { action: "write", path: PathBuf::from("the output"), error }
}

impl<W: AsyncWrite + Unpin + Send> DownloadSink<'_, W> {
    /// How many bytes were received: where a resumed download starts
    /// (bytes still buffered are written before any that come after them).
    fn written(&self) -> u64 {
        self.hash.len()
    }

    /// Records the size the box announced; a different size on a resumed
    /// request means another content, which is not spliced on.
    fn announce(&mut self, id: &str, size: u64, media_type: &str) -> Result<(), ClientError> {
        match self.total {
            Some(total) if total != size => {
                Err(ClientError::AttachmentCorrupt { id: id.to_owned(), actual: self.hash.hex() })
            }
            _ => {
                self.total = Some(size);
                if self.media_type.is_none() && !media_type.is_empty() {
                    self.media_type = Some(media_type.to_owned());
                }
                Ok(())
            }
        }
    }

    /// Takes the next bytes of the content.
    async fn write(
        &mut self,
        id: &str,
        bytes: &[u8],
        progress: &mut (impl FnMut(Progress) + Send),
    ) -> Result<(), ClientError> {
        let total = self.total.unwrap_or(0);
        if self.written() + bytes.len() as u64 > total {
            // More than announced: not the content the id names.
            return Err(ClientError::AttachmentCorrupt { id: id.to_owned(), actual: self.hash.hex() });
        }
        let at = self.written();
        self.hash.feed(at, bytes);
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.flush(progress).await?;
        }
        Ok(())
    }

    /// Writes out what is buffered.
    async fn flush(&mut self, progress: &mut (impl FnMut(Progress) + Send)) -> Result<(), ClientError> {
        if !self.buffer.is_empty() {
            self.out.write_all(&self.buffer).await.map_err(output_error)?;
            self.buffer.clear();
        }
        progress(Progress { done: self.written(), total: self.total.unwrap_or(0), resumed_at: 0 });
        Ok(())
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_hash_skips_what_it_has_and_names_the_content() {
        let content: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut hash = ContentHash::default();
        hash.feed(0, &content[..600]);
        // A retry resends from 400: the overlap is not hashed twice.
        hash.feed(400, &content[400..]);
        assert_eq!(hash.len(), 1000);
        assert_eq!(hash.hex(), hex(&Sha256::digest(&content)));
        assert_eq!(
            ContentHash::default().hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[tokio::test]
    async fn catching_up_hashes_the_part_the_box_already_has() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("film.mp4");
        let content: Vec<u8> = (0..(3 * CHUNK + 17)).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &content).expect("write");
        let file = LocalFile::open(&path).expect("open");
        assert_eq!(
            (file.name.as_str(), file.media_type.as_str(), file.size),
            ("film.mp4", "video/mp4", content.len() as u64)
        );
        let mut hash = ContentHash::default();
        hash.catch_up(&file, 2 * CHUNK as u64 + 5).await.expect("catch up");
        let at = hash.len();
        hash.feed(at, &content[usize::try_from(at).expect("small")..]);
        assert_eq!(hash.hex(), hex(&Sha256::digest(&content)));
    }

    #[tokio::test]
    async fn a_download_takes_no_more_than_announced_and_writes_in_order() {
        let mut out = Vec::new();
        let mut sink = DownloadSink {
            out: &mut out,
            hash: ContentHash::default(),
            total: None,
            media_type: None,
            buffer: Vec::new(),
        };
        let mut reports = Vec::new();
        let mut progress = |p: Progress| reports.push(p.done);
        sink.announce("id", 5, "text/plain").expect("first announcement");
        sink.write("id", b"abc", &mut progress).await.expect("within the size");
        // A resumed request that announces another size is another content.
        assert!(matches!(sink.announce("id", 6, ""), Err(ClientError::AttachmentCorrupt { .. })));
        sink.announce("id", 5, "").expect("same size");
        assert!(matches!(
            sink.write("id", b"def", &mut progress).await,
            Err(ClientError::AttachmentCorrupt { .. })
        ));
        sink.write("id", b"de", &mut progress).await.expect("the rest");
        sink.flush(&mut progress).await.expect("flush");
        assert_eq!(sink.media_type.as_deref(), Some("text/plain"));
        assert_eq!(sink.hash.hex(), hex(&Sha256::digest(b"abcde")));
        assert_eq!(out, b"abcde");
        assert_eq!(reports, [5]);
    }

    #[test]
    fn local_names_become_names_the_protocol_takes() {
        assert_eq!(offered_name("report.pdf"), "report.pdf");
        assert_eq!(offered_name("a\nb.txt"), "a_b.txt");
        assert_eq!(offered_name(&"é".repeat(200)).len(), 254);
        assert_eq!(offered_name("\u{202e}"), "file");
        assert_eq!(offered_name(".."), "file");
    }

    #[test]
    fn refusals_become_typed_errors() {
        let body = |code| ErrorBody::new(code, "no");
        assert!(matches!(
            transfer_error("upload", body(ErrorCode::QuotaExceeded), 5, ""),
            ClientError::QuotaExceeded { .. }
        ));
        assert!(matches!(
            transfer_error("upload", body(ErrorCode::MediaSpaceFull), 5, ""),
            ClientError::MediaSpaceFull { .. }
        ));
        let too_large = transfer_error("upload", body(ErrorCode::TooLarge), 250_000_000, "");
        assert!(too_large.to_string().contains("250 MB"), "{too_large}");
        assert_eq!(too_large.code(), Some(ErrorCode::TooLarge));
        let missing = transfer_error("download", body(ErrorCode::NotFound), 0, &"ab".repeat(32));
        assert!(matches!(missing, ClientError::AttachmentNotFound { .. }), "{missing}");
        assert!(matches!(
            transfer_error("download", body(ErrorCode::Unavailable), 0, ""),
            ClientError::Server { .. }
        ));
    }
}
