//! Attachments over HTTPS, for `wss://` sessions: uploads with tus 1.0.0
//! (`POST` to create, `HEAD` to learn the box's offset, `PATCH` in chunks
//! of [`PATCH_BYTES`]) and downloads with `GET` (and `Range` to resume),
//! authenticated with `Authorization: Bearer <device token>`.
//!
//! The connection is the WebSocket's: same host and port, TLS checked
//! against the same pinned key ([`crate::tls`]), HTTP/1.1 kept alive for
//! the requests of one attempt. No tus crate for Rust is well kept, and the
//! part of tus this needs is small: [`Tus`] is all of it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{
    HeaderMap, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HOST, LOCATION, RANGE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use imbox_protocol::transfer::{ATTACHMENTS_PATH, ATTACHMENT_HEADER, TUS_VERSION, UPLOADS_PATH};
use imbox_protocol::{ErrorBody, ErrorCode};
use serde::Deserialize;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use super::{pending, transfer_error, Attempt, DownloadSink, LocalFile, Progress, UploadRun};
use crate::client::Client;
use crate::error::ClientError;
use crate::tls::{pinned_tls, PinnedTls};
use crate::transport::open_tcp;
use crate::url::ServerUrl;

/// The most bytes one `PATCH` carries. The box makes each `PATCH` durable
/// when it ends (and checkpoints within it), so this bounds what a cut
/// connection can cost, not what is kept.
pub(crate) const PATCH_BYTES: u64 = 8 * 1024 * 1024;

/// The largest error body read, in bytes.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Chunks of a `PATCH` body queued ahead of the connection.
const BODY_QUEUE: usize = 4;

/// A request body: nothing, or chunks from the task reading the file.
#[derive(Debug)]
pub(crate) enum RequestBody {
    Empty,
    Chunks { rx: mpsc::Receiver<Bytes>, remaining: u64 },
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Chunks { rx, remaining } => match rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => {
                    *remaining = remaining.saturating_sub(chunk.len() as u64);
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
                // The reader stopped early (the file could not be read):
                // an error, so that hyper does not send a short body as if
                // it were whole.
                Poll::Ready(None) if *remaining > 0 => Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the upload's body ended early",
                )))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Chunks { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Chunks { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}

/// An HTTPS connection to the box for one attempt of a transfer.
pub(crate) struct Tus {
    url: ServerUrl,
    tls: Arc<PinnedTls>,
    /// The path prefix before `/api` (a reverse proxy's, or empty).
    base: String,
    /// `host:port`, for the `Host` header.
    authority: String,
    bearer: String,
    connect_timeout: Duration,
    timeout: Duration,
    sender: Option<SendRequest<RequestBody>>,
    /// The task that drives the connection; aborted (closing the socket)
    /// when this is dropped, so that an interrupted upload stops at once.
    _driver: Option<AbortOnDropHandle<()>>,
}

impl std::fmt::Debug for Tus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tus")
            .field("url", &self.url.to_string())
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The box's view of an upload (`HEAD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UploadState {
    pub offset: u64,
    pub length: u64,
    /// Set once the content is complete and recorded.
    pub attachment: Option<String>,
}

/// What a `PATCH` came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Patched {
    /// The box holds the content up to `offset`; `attachment` when complete.
    To { offset: u64, attachment: Option<String> },
    /// Our offset is not the box's: ask it (`HEAD`) and go on from there.
    Conflict,
    /// The box no longer knows the upload.
    Gone,
}

impl Tus {
    fn new(client: &Client) -> Result<Tus, ClientError> {
        let url = client.server_url().clone();
        let pin = client.pin().ok_or_else(|| ClientError::NoPin { url: url.to_string() })?;
        let tls = pinned_tls(pin)?;
        let base = url.path().strip_suffix(imbox_protocol::WEBSOCKET_PATH).unwrap_or("").to_owned();
        let authority = if url.host().contains(':') {
            format!("[{}]:{}", url.host(), url.port())
        } else {
            format!("{}:{}", url.host(), url.port())
        };
        let options = &client.options().connect;
        Ok(Tus {
            base,
            authority,
            bearer: format!("Bearer {}", client.profile().token),
            connect_timeout: options.connect_timeout,
            timeout: options.request_timeout,
            url,
            tls,
            sender: None,
            _driver: None,
        })
    }

    fn uploads(&self) -> String {
        format!("{}{UPLOADS_PATH}", self.base)
    }

    fn upload_path(&self, id: &str) -> String {
        format!("{}{UPLOADS_PATH}/{id}", self.base)
    }

    fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.authority)
    }

    fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.authority)
            .header(AUTHORIZATION, &self.bearer)
            .header("tus-resumable", TUS_VERSION)
    }

    /// A connection ready for the next request, opened if needed.
    async fn ready(&mut self) -> Result<&mut SendRequest<RequestBody>, ClientError> {
        if let Some(sender) = &mut self.sender {
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return self.sender.as_mut().ok_or_else(|| closed("no connection"));
            }
        }
        self.sender = None;
        self._driver = None;
        let open = async {
            let stream = open_tcp(&self.url, Some(&self.tls)).await?;
            http1::handshake(TokioIo::new(stream)).await.map_err(|e| hyper_error(&e))
        };
        let (sender, connection) =
            tokio::time::timeout(self.connect_timeout, open).await.map_err(|_| ClientError::Connect {
                url: self.https_url(""),
                reason: format!("no answer within {}s", self.connect_timeout.as_secs_f32()),
            })??;
        self._driver = Some(AbortOnDropHandle::new(tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "the HTTPS connection to the box ended");
            }
        })));
        Ok(self.sender.insert(sender))
    }

    /// Sends a request with no body and waits for the response's head.
    async fn send(&mut self, request: Request<RequestBody>) -> Result<Response<Incoming>, ClientError> {
        let timeout = self.timeout;
        let response = self.ready().await?.send_request(request);
        match tokio::time::timeout(timeout, response).await {
            Ok(result) => result.map_err(|e| hyper_error(&e)),
            Err(_) => {
                Err(ClientError::Timeout { what: "an HTTPS request to the box".into(), after: timeout })
            }
        }
    }

    /// `POST`: a new upload of `file`; its id.
    async fn create(&mut self, file: &LocalFile) -> Result<String, ClientError> {
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let metadata = format!("filename {},filetype {}", b64(&file.name), b64(&file.media_type));
        let request = self
            .request(Method::POST, &self.uploads())
            .header("upload-length", file.size)
            .header("upload-metadata", metadata)
            .header(CONTENT_LENGTH, 0)
            .body(RequestBody::Empty)
            .map_err(|e| protocol(&e.to_string()))?;
        let response = self.send(request).await?;
        if response.status() != StatusCode::CREATED {
            return Err(self.refusal("upload", response, file.size, "").await);
        }
        let location = header(response.headers(), LOCATION.as_str()).unwrap_or_default();
        drain(response).await;
        upload_id(&location, &self.uploads())
            .ok_or_else(|| protocol(&format!("the box named the new upload {location:?}")))
    }

    /// `HEAD`: where the box is with an upload; `None` when it does not know it.
    async fn head(&mut self, id: &str) -> Result<Option<UploadState>, ClientError> {
        let request = self
            .request(Method::HEAD, &self.upload_path(id))
            .body(RequestBody::Empty)
            .map_err(|e| protocol(&e.to_string()))?;
        let response = self.send(request).await?;
        match response.status() {
            StatusCode::OK => {
                let headers = response.headers();
                let number = |name: &str| header(headers, name).and_then(|v| v.parse::<u64>().ok());
                let (Some(offset), Some(length)) = (number("upload-offset"), number("upload-length")) else {
                    return Err(protocol(
                        "the box's HEAD of an upload has no Upload-Offset or Upload-Length",
                    ));
                };
                let attachment = header(headers, ATTACHMENT_HEADER);
                drain(response).await;
                Ok(Some(UploadState { offset, length, attachment }))
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => {
                drain(response).await;
                Ok(None)
            }
            _ => Err(self.refusal("upload", response, 0, "").await),
        }
    }

    /// `PATCH`: sends the file from `offset`, at most [`PATCH_BYTES`].
    async fn patch(
        &mut self,
        id: &str,
        run: &mut UploadRun,
        offset: u64,
        resumed_at: u64,
        progress: &mut (impl FnMut(Progress) + Send),
    ) -> Result<Patched, ClientError> {
        let size = run.file.size;
        let end = size.min(offset + PATCH_BYTES);
        let (tx, rx) = mpsc::channel::<Bytes>(BODY_QUEUE);
        let request = self
            .request(Method::PATCH, &self.upload_path(id))
            .header("upload-offset", offset)
            .header(CONTENT_TYPE, "application/offset+octet-stream")
            .header(CONTENT_LENGTH, end - offset)
            .body(RequestBody::Chunks { rx, remaining: end - offset })
            .map_err(|e| protocol(&e.to_string()))?;
        let timeout = self.timeout;
        let response = self.ready().await?.send_request(request);
        let feed = async {
            let mut reader = run.file.reader_at(offset).await?;
            let mut at = offset;
            while at < end {
                let mut chunk = run.file.read_chunk(&mut reader, at).await?;
                chunk.truncate(usize::try_from(end - at).unwrap_or(usize::MAX));
                run.hash.feed(at, &chunk);
                let length = chunk.len() as u64;
                match tokio::time::timeout(timeout, tx.send(chunk)).await {
                    Err(_) => {
                        return Err(ClientError::Timeout {
                            what: "sending to the box".into(),
                            after: timeout,
                        })
                    }
                    // The connection ended: its response (or error) says how.
                    Ok(Err(_)) => return Ok(()),
                    Ok(Ok(())) => {}
                }
                at += length;
                run.sent += length;
                progress(Progress { done: at, total: size, resumed_at });
            }
            Ok(())
        };
        tokio::pin!(response, feed);
        // A box that refuses early answers before it has read the body:
        // then the rest is not sent.
        let response = tokio::select! {
            response = &mut response => response.map_err(|e| hyper_error(&e))?,
            result = &mut feed => {
                result?;
                // The box makes what it received durable, then answers.
                let wait = timeout * 2;
                tokio::time::timeout(wait, &mut response)
                    .await
                    .map_err(|_| ClientError::Timeout { what: "the box's answer to a PATCH".into(), after: wait })?
                    .map_err(|e| hyper_error(&e))?
            }
        };
        match response.status() {
            StatusCode::NO_CONTENT | StatusCode::OK => {
                let headers = response.headers();
                let Some(new) = header(headers, "upload-offset").and_then(|v| v.parse::<u64>().ok()) else {
                    return Err(protocol("the box's answer to a PATCH has no Upload-Offset"));
                };
                let attachment = header(headers, ATTACHMENT_HEADER);
                drain(response).await;
                if new > size {
                    return Err(protocol(&format!("the box is at offset {new} of a {size}-byte upload")));
                }
                Ok(Patched::To { offset: new, attachment })
            }
            StatusCode::CONFLICT => {
                drain(response).await;
                Ok(Patched::Conflict)
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => {
                drain(response).await;
                Ok(Patched::Gone)
            }
            _ => Err(self.refusal("upload", response, size, "").await),
        }
    }

    /// The error for a response that refused a request.
    async fn refusal(
        &self,
        request: &'static str,
        response: Response<Incoming>,
        size: u64,
        id: &str,
    ) -> ClientError {
        let status = response.status();
        let body = read_error(response, self.timeout).await;
        match (status, body) {
            (StatusCode::UNAUTHORIZED, _) => ClientError::Revoked {
                server: String::new(),
                dir: Default::default(),
                user: String::new(),
                pin: None,
            },
            (_, Ok(error)) => transfer_error(request, error, size, id),
            (StatusCode::NOT_FOUND, Err(_)) if !id.is_empty() => {
                ClientError::AttachmentNotFound { id: id.to_owned() }
            }
            (StatusCode::INSUFFICIENT_STORAGE, Err(message)) => ClientError::MediaSpaceFull { message },
            (StatusCode::PAYLOAD_TOO_LARGE, Err(message)) => {
                ClientError::AttachmentTooLarge { size, message }
            }
            (status, Err(message)) => ClientError::Http {
                request,
                url: self.https_url(&self.base),
                status: status.as_u16(),
                message,
            },
        }
    }
}

/// The upload id in a `Location` (`/api/uploads/ID`, or a whole URL).
fn upload_id(location: &str, uploads: &str) -> Option<String> {
    let path = match location.split_once("://") {
        Some((_, rest)) => &rest[rest.find('/')?..],
        None => location,
    };
    let id = path.strip_prefix(uploads)?.strip_prefix('/')?;
    let valid = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then(|| id.to_owned())
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_owned())
}

/// Reads what is left of a small body, so that the connection can carry
/// the next request.
async fn drain(response: Response<Incoming>) {
    let _ = http_body_util::Limited::new(response.into_body(), MAX_ERROR_BODY).collect().await;
}

/// The box's JSON error body, or else words for what came instead.
async fn read_error(response: Response<Incoming>, timeout: Duration) -> Result<ErrorBody, String> {
    #[derive(Deserialize)]
    struct Wrapper {
        error: Raw,
    }
    #[derive(Deserialize)]
    struct Raw {
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        retry_after_ms: Option<u64>,
    }
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), MAX_ERROR_BODY).collect();
    let bytes = match tokio::time::timeout(timeout, body).await {
        Ok(Ok(body)) => body.to_bytes(),
        _ => Bytes::new(),
    };
    let Ok(Wrapper { error }) = serde_json::from_slice::<Wrapper>(&bytes) else {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).trim().to_owned();
        return Err(if text.is_empty() {
            status.canonical_reason().unwrap_or("no reason given").to_owned()
        } else {
            text
        });
    };
    match serde_json::from_value::<ErrorCode>(serde_json::Value::String(error.code.clone())) {
        Ok(code) => Ok(ErrorBody { code, message: error.message, retry_after_ms: error.retry_after_ms }),
        Err(_) => Err(format!("{} ({})", error.message, error.code)),
    }
}

fn hyper_error(err: &hyper::Error) -> ClientError {
    use std::error::Error;
    let mut reason = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        reason = format!("{reason}: {inner}");
        source = inner.source();
    }
    closed(&format!("the HTTPS connection to the box failed ({reason})"))
}

fn closed(reason: &str) -> ClientError {
    ClientError::ConnectionClosed { reason: reason.to_owned() }
}

fn protocol(reason: &str) -> ClientError {
    ClientError::Protocol { reason: reason.to_owned() }
}

impl Client {
    /// One attempt at an upload with tus: create it (or take the saved
    /// one), ask the box where it is, send the rest in `PATCH`es.
    pub(super) async fn upload_https(
        &mut self,
        run: &mut UploadRun,
        progress: &mut (impl FnMut(Progress) + Send),
    ) -> Result<Attempt, ClientError> {
        let mut tus = Tus::new(self)?;
        let result = self.upload_tus(&mut tus, run, progress).await;
        self.revoked_if_unauthorized(result)
    }

    async fn upload_tus(
        &self,
        tus: &mut Tus,
        run: &mut UploadRun,
        progress: &mut (impl FnMut(Progress) + Send),
    ) -> Result<Attempt, ClientError> {
        let key = self.pending_key();
        let size = run.file.size;
        let upload = match run.upload.clone() {
            Some(id) => id,
            None => {
                let id = tus.create(&run.file).await?;
                pending::save(self.dir(), &key, &run.file, &id, None);
                run.upload = Some(id.clone());
                id
            }
        };
        let mut state = match tus.head(&upload).await? {
            Some(state) if state.length == size => state,
            // Gone, or (from a damaged state file) another length.
            _ => return Ok(Attempt::Forgotten),
        };
        let resumed_at = *run.resumed_at.get_or_insert(state.offset);
        run.hash.catch_up(&run.file, state.offset).await?;
        progress(Progress { done: state.offset, total: size, resumed_at });
        let mut completing = false;
        loop {
            if let Some(attachment) = state.attachment.take() {
                return Ok(Attempt::Stored { attachment });
            }
            if state.offset >= size && completing {
                return Err(protocol("the box holds the whole upload but names no attachment"));
            }
            // All there but not yet recorded (an empty file, or a cut just
            // before the last answer): an empty PATCH at the end completes it.
            completing = state.offset >= size;
            // The box may be further on than this run has read (a PATCH
            // of an earlier, cut connection it was still finishing).
            run.hash.catch_up(&run.file, state.offset).await?;
            match tus.patch(&upload, run, state.offset, resumed_at, progress).await? {
                Patched::To { offset, attachment } => {
                    if offset <= state.offset && attachment.is_none() && !completing {
                        return Err(protocol(&format!("the box took nothing of a PATCH at offset {offset}")));
                    }
                    state.offset = offset;
                    state.attachment = attachment;
                }
                Patched::Conflict => match tus.head(&upload).await? {
                    Some(now) => state = now,
                    None => return Ok(Attempt::Forgotten),
                },
                Patched::Gone => return Ok(Attempt::Forgotten),
            }
        }
    }

    /// One attempt at a download with `GET`, from what `sink` has written.
    pub(super) async fn download_https<W: AsyncWrite + Unpin + Send>(
        &mut self,
        id: &str,
        sink: &mut DownloadSink<'_, W>,
        progress: &mut (impl FnMut(Progress) + Send),
    ) -> Result<(), ClientError> {
        let mut tus = Tus::new(self)?;
        let result = download_with(&mut tus, id, sink, progress).await;
        self.revoked_if_unauthorized(result)
    }

    /// Fills in the profile's details of a 401 answer.
    fn revoked_if_unauthorized<T>(&self, result: Result<T, ClientError>) -> Result<T, ClientError> {
        match result {
            Err(ClientError::Revoked { .. }) => Err(self.revoked()),
            Err(ClientError::Server { error, .. }) if error.code == ErrorCode::BadCredentials => {
                Err(self.revoked())
            }
            other => other,
        }
    }
}

async fn download_with<W: AsyncWrite + Unpin + Send>(
    tus: &mut Tus,
    id: &str,
    sink: &mut DownloadSink<'_, W>,
    progress: &mut (impl FnMut(Progress) + Send),
) -> Result<(), ClientError> {
    let written = sink.written();
    let mut request = tus.request(Method::GET, &format!("{}{ATTACHMENTS_PATH}/{id}", tus.base));
    if written > 0 {
        request = request.header(RANGE, format!("bytes={written}-"));
    }
    let request = request.body(RequestBody::Empty).map_err(|e| protocol(&e.to_string()))?;
    let response = tus.send(request).await?;
    let headers = response.headers();
    let media_type = header(headers, CONTENT_TYPE.as_str()).unwrap_or_default();
    // Where the body starts in the content, and the content's size.
    let (start, size) = match response.status() {
        StatusCode::OK => {
            let Some(size) = header(headers, CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok())
            else {
                return Err(protocol("the box's download has no Content-Length"));
            };
            (0, size)
        }
        StatusCode::PARTIAL_CONTENT => {
            match header(headers, CONTENT_RANGE.as_str()).as_deref().and_then(content_range) {
                Some((start, size)) if start == written => (start, size),
                _ => return Err(protocol("the box answered a download's Range with another range")),
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            // Asked from past the end: the content is shorter than what
            // was written, so it is not the one the id names.
            return Err(ClientError::AttachmentCorrupt { id: id.to_owned(), actual: sink.hash.hex() });
        }
        _ => return Err(tus.refusal("download", response, 0, id).await),
    };
    sink.announce(id, size, &media_type)?;
    let mut body = response.into_body();
    // A box that ignored the Range sends what was written again: skipped.
    let mut skip = written - start;
    loop {
        let frame = tokio::time::timeout(tus.timeout, body.frame()).await.map_err(|_| {
            ClientError::Timeout { what: "receiving from the box".into(), after: tus.timeout }
        })?;
        let Some(frame) = frame else { break };
        let Ok(data) = frame.map_err(|e| hyper_error(&e))?.into_data() else { continue };
        let skipped = usize::try_from(skip).unwrap_or(usize::MAX).min(data.len());
        skip -= skipped as u64;
        if skipped < data.len() {
            sink.write(id, &data[skipped..], progress).await?;
        }
    }
    if Some(sink.written()) == sink.total {
        Ok(())
    } else {
        Err(closed("the box ended the download early"))
    }
}

/// `bytes START-END/SIZE` → (START, SIZE).
fn content_range(value: &str) -> Option<(u64, u64)> {
    let (range, size) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, size.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_come_from_the_location() {
        assert_eq!(upload_id("/api/uploads/u-1_x", "/api/uploads").as_deref(), Some("u-1_x"));
        assert_eq!(upload_id("https://box:8443/api/uploads/abc", "/api/uploads").as_deref(), Some("abc"));
        assert_eq!(upload_id("/imbox/api/uploads/abc", "/imbox/api/uploads").as_deref(), Some("abc"));
        for bad in
            ["/api/uploads/", "/api/uploads", "/api/other/abc", "/api/uploads/a/b", "/api/uploads/a%2f"]
        {
            assert_eq!(upload_id(bad, "/api/uploads"), None, "{bad}");
        }
    }

    #[test]
    fn content_ranges_parse() {
        assert_eq!(content_range("bytes 100-199/1000"), Some((100, 1000)));
        assert_eq!(content_range("bytes */1000"), None);
        assert_eq!(content_range("items 1-2/3"), None);
    }

    #[tokio::test]
    async fn a_body_that_ends_early_is_an_error_not_a_short_upload() {
        let (tx, rx) = mpsc::channel(2);
        let mut body = RequestBody::Chunks { rx, remaining: 10 };
        assert_eq!(body.size_hint().exact(), Some(10));
        tx.send(Bytes::from_static(b"12345")).await.expect("queued");
        drop(tx);
        let first = body.frame().await.expect("a frame").expect("data");
        assert_eq!(first.into_data().ok(), Some(Bytes::from_static(b"12345")));
        assert!(body.frame().await.expect("a frame").is_err());
        assert!(RequestBody::Empty.is_end_stream());
    }
}
