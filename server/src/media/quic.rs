//! Uploads and downloads on QUIC streams of their own, beside the session
//! stream of the same connection (`imbox_protocol::transfer` has the
//! exchange). Each stream carries one transfer and authenticates on its
//! own, with the device token, so a transfer needs nothing of the
//! session's state and a phone can resume an upload on a new connection.

use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use imbox_protocol::transfer::{TransferRequest, TransferResponse, MAX_TRANSFER_HEADER};
use quinn::{Connection, RecvStream, SendStream, VarInt};
use tokio_util::sync::CancellationToken;

use super::uploads::{blocking, ByteSource, Progress, Uploader};
use super::{Media, MediaError};
use crate::store::media::parse_hex;

/// Bytes per read of a content being sent.
const SEND_CHUNK: usize = 256 * 1024;

/// The connection-level receive window while uploads run on a connection
/// (an idle session keeps the small one the transport set): enough for
/// full speed over a LAN, bounded per connection.
pub const UPLOAD_RECEIVE_WINDOW: u32 = 4 << 20;

/// Accepts transfer streams on a connection whose session stream is
/// already taken, until the connection closes.
pub async fn accept(
    conn: Connection,
    media: Arc<Media>,
    idle: Duration,
    base_window: u32,
    shutdown: CancellationToken,
) {
    let uploads = Arc::new(AtomicUsize::new(0));
    loop {
        let (send, recv) = tokio::select! {
            () = shutdown.cancelled() => return,
            stream = conn.accept_bi() => match stream {
                Ok(pair) => pair,
                Err(_) => return,
            },
        };
        let (media, conn, uploads) = (media.clone(), conn.clone(), uploads.clone());
        // quinn bounds how many are open at once (the transport's stream
        // limit); each ends with its stream.
        tokio::spawn(async move {
            let window = Window { conn: &conn, uploads: &uploads, base: base_window };
            transfer(&media, send, recv, idle, window).await;
        });
    }
}

/// The connection's receive window, widened while uploads run.
#[derive(Clone, Copy)]
struct Window<'a> {
    conn: &'a Connection,
    uploads: &'a AtomicUsize,
    base: u32,
}

impl Window<'_> {
    fn open(self) {
        if self.uploads.fetch_add(1, Ordering::AcqRel) == 0 {
            self.conn.set_receive_window(VarInt::from_u32(UPLOAD_RECEIVE_WINDOW));
        }
    }

    fn close(self) {
        if self.uploads.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.conn.set_receive_window(VarInt::from_u32(self.base));
        }
    }
}

async fn transfer(
    media: &Media,
    mut send: SendStream,
    mut recv: RecvStream,
    idle: Duration,
    window: Window<'_>,
) {
    let answer = match tokio::time::timeout(idle, read_header(&mut recv)).await {
        Err(_) => Err(MediaError::Invalid("no transfer header arrived in time".into())),
        Ok(Err(e)) => Err(e),
        Ok(Ok(request)) => match request {
            TransferRequest::Upload { token, upload, length, name, media_type } => {
                window.open();
                let result =
                    upload_stream(media, &mut send, recv, idle, (token, upload, length), (name, media_type))
                        .await;
                window.close();
                result
            }
            TransferRequest::Download { token, attachment, offset } => {
                download_stream(media, &mut send, &token, &attachment, offset).await
            }
        },
    };
    if let Err(e) = answer {
        let _ = write_header(&mut send, &TransferResponse::Error { error: e.body() }).await;
    }
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
}

async fn read_header(recv: &mut RecvStream) -> Result<TransferRequest, MediaError> {
    let mut length = [0u8; 4];
    recv.read_exact(&mut length)
        .await
        .map_err(|e| MediaError::Invalid(format!("no transfer header: {e}")))?;
    let length = u32::from_be_bytes(length) as usize;
    if length > MAX_TRANSFER_HEADER {
        return Err(MediaError::Invalid(format!(
            "a transfer header of {length} bytes; the limit is {MAX_TRANSFER_HEADER}"
        )));
    }
    let mut header = vec![0u8; length];
    recv.read_exact(&mut header)
        .await
        .map_err(|e| MediaError::Invalid(format!("a cut transfer header: {e}")))?;
    TransferRequest::decode(&header)
        .map_err(|e| MediaError::Invalid(format!("a malformed transfer header: {e}")))
}

async fn write_header(send: &mut SendStream, response: &TransferResponse) -> Result<(), MediaError> {
    let frame = imbox_protocol::stream::length_prefixed(&response.encode());
    send.write_all(&frame).await.map_err(|e| MediaError::Io(std::io::Error::other(e.to_string())))
}

fn authenticate(media: &Media, token: &str) -> Result<Uploader, MediaError> {
    let device = media.store.authenticate(token)?.ok_or(MediaError::NotAuthenticated)?;
    Ok(Uploader { user: device.user, device: device.device })
}

async fn upload_stream(
    media: &Media,
    send: &mut SendStream,
    recv: RecvStream,
    idle: Duration,
    (token, id, length): (String, Option<String>, u64),
    (name, media_type): (String, String),
) -> Result<(), MediaError> {
    let who = authenticate(media, &token)?;
    let upload = match id {
        None => media.create(who, length, &name, &media_type).await?,
        Some(id) => {
            let upload = media.find(who, &id)?;
            if upload.meta().length != length {
                return Err(MediaError::Invalid(format!(
                    "upload {id} has a length of {} bytes, not {length}",
                    upload.meta().length
                )));
            }
            upload
        }
    };
    // Held before the offset is told: a request this one takes the upload
    // over from has then made what it received durable.
    let held = media.hold(&upload).await?;
    let meta = upload.meta();
    if let Some(attachment) = meta.attachment {
        let stored = TransferResponse::Stored { upload: upload.id.clone(), attachment, size: meta.length };
        return write_header(send, &stored).await;
    }
    write_header(send, &TransferResponse::Ready { upload: upload.id.clone(), offset: meta.offset }).await?;
    let mut source = StreamSource { recv, idle };
    match media.append_held(&upload, held, meta.offset, &mut source).await? {
        Progress::Stored(attachment) => {
            let stored =
                TransferResponse::Stored { upload: upload.id.clone(), attachment, size: meta.length };
            write_header(send, &stored).await
        }
        Progress::At(offset) => Err(MediaError::Invalid(format!(
            "the stream ended at byte {offset} of {length}: open a new stream with this upload id to go on"
        ))),
    }
}

async fn download_stream(
    media: &Media,
    send: &mut SendStream,
    token: &str,
    attachment: &str,
    offset: u64,
) -> Result<(), MediaError> {
    let who = authenticate(media, token)?;
    let hash = parse_hex(attachment).ok_or(MediaError::NotFound)?;
    let (mut file, found) = media.open_blob(who.user, &hash)?;
    if offset > found.size {
        return Err(MediaError::Invalid(format!(
            "offset {offset} is past the attachment's {} bytes",
            found.size
        )));
    }
    let blob = TransferResponse::Blob { size: found.size, media_type: found.media_type, offset };
    write_header(send, &blob).await?;
    file = blocking(move || file.seek(SeekFrom::Start(offset)).map(|_| file)).await?;
    loop {
        let (back, chunk) = blocking(move || {
            let mut chunk = vec![0u8; SEND_CHUNK];
            let n = file.read(&mut chunk)?;
            chunk.truncate(n);
            Ok((file, chunk))
        })
        .await?;
        file = back;
        if chunk.is_empty() {
            return Ok(());
        }
        // A reader that went away ends the transfer; nothing to tell it.
        if send.write_chunk(Bytes::from(chunk)).await.is_err() {
            return Ok(());
        }
    }
}

/// A QUIC stream as upload bytes; a pause longer than `idle` ends it like
/// a cut.
struct StreamSource {
    recv: RecvStream,
    idle: Duration,
}

impl ByteSource for StreamSource {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        match tokio::time::timeout(self.idle, self.recv.read_chunk(usize::MAX, true)).await {
            Err(_) => Err("no bytes arrived in time".into()),
            Ok(Ok(Some(chunk))) => Ok(Some(chunk.bytes)),
            Ok(Ok(None)) => Ok(None),
            Ok(Err(e)) => Err(e.to_string()),
        }
    }
}
