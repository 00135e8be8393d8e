//! The HTTPS upload endpoint: tus 1.0.0 (tus.io), core protocol with the
//! creation, creation-with-upload, expiration and termination extensions.
//! Any tus client (tus-js-client, TUSKit, tus-android-client) can upload to
//! a box; docs/API.md lists the requests.
//!
//! Apps authenticate with `Authorization: Bearer DEVICE-TOKEN`; the box's
//! own pages with their session cookie and, for every change, the CSRF
//! token, as on the rest of the API.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use imbox_protocol::transfer::{ATTACHMENT_HEADER, TUS_VERSION, UPLOADS_PATH};

use super::uploads::{ByteSource, Progress, Upload, Uploader};
use super::MediaError;
use crate::store::StoreError;
use crate::web::reply::{self, boxed, header, StreamReply};
use crate::web::Web;

const OFFSET_STREAM: &str = "application/offset+octet-stream";

/// A request under `/api/uploads` or `/api/attachments`.
pub async fn handle(web: &Web, req: Request<Incoming>) -> StreamReply {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    if let Some(rest) = path.strip_prefix(imbox_protocol::transfer::ATTACHMENTS_PATH) {
        return super::download::handle(web, &parts, rest.trim_start_matches('/'));
    }
    let rest = path.strip_prefix(UPLOADS_PATH).unwrap_or("").trim_start_matches('/');
    let mut reply = match uploads(web, &parts, body, rest).await {
        Ok(reply) => reply,
        Err(Refusal::Media(e)) => error_reply(&e),
        Err(Refusal::Api(e)) => boxed(e.reply()),
    };
    set(&mut reply, "tus-resumable", TUS_VERSION);
    reply
}

/// Why a request was refused: a media rule, or the API's checks (origin,
/// CSRF) before it.
#[derive(Debug)]
pub enum Refusal {
    Media(MediaError),
    Api(crate::web::error::ApiError),
}

impl From<MediaError> for Refusal {
    fn from(e: MediaError) -> Self {
        Refusal::Media(e)
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Media(e.into())
    }
}

/// Who is asking: a device by its token, or a logged-in browser (whose
/// changes must carry the CSRF token and come from the box's pages).
pub fn who(web: &Web, parts: &Parts) -> Result<Uploader, Refusal> {
    if let Some(value) = header(parts, AUTHORIZATION) {
        let token = value.strip_prefix("Bearer ").map(str::trim).ok_or(MediaError::NotAuthenticated)?;
        let device = web.hub.store.authenticate(token)?.ok_or(MediaError::NotAuthenticated)?;
        return Ok(Uploader { user: device.user, device: device.device });
    }
    let caller = web.caller(parts).map_err(|_| MediaError::NotAuthenticated)?;
    if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        crate::web::routes::check_csrf(&caller, parts).map_err(Refusal::Api)?;
    }
    Ok(Uploader { user: caller.account.id, device: 0 })
}

async fn uploads(web: &Web, parts: &Parts, body: Incoming, rest: &str) -> Result<StreamReply, Refusal> {
    let media = &web.hub.media;
    if parts.method == Method::OPTIONS {
        let mut reply = boxed(reply::no_content());
        set(&mut reply, "tus-version", TUS_VERSION);
        set(&mut reply, "tus-extension", "creation,creation-with-upload,expiration,termination");
        set_value(&mut reply, "tus-max-size", media.limits.max_file);
        return Ok(reply);
    }
    if parts.method != Method::GET && header(parts, "tus-resumable") != Some(TUS_VERSION) {
        let mut reply = error_reply(&MediaError::Invalid(format!(
            "this endpoint speaks tus {TUS_VERSION}: send Tus-Resumable: {TUS_VERSION}"
        )));
        *reply.status_mut() = StatusCode::PRECONDITION_FAILED;
        set(&mut reply, "tus-version", TUS_VERSION);
        return Ok(reply);
    }
    if parts.method != Method::GET && parts.method != Method::HEAD {
        crate::web::routes::check_origin(parts).map_err(Refusal::Api)?;
    }
    let caller = who(web, parts)?;
    let idle = web.request_timeout();
    match (&parts.method, rest) {
        (&Method::POST, "") => {
            if header(parts, "upload-defer-length").is_some() {
                return Err(
                    MediaError::Invalid("give Upload-Length: this box needs the size first".into()).into()
                );
            }
            let length = number(parts, "upload-length")?;
            let (name, media_type) = metadata(header(parts, "upload-metadata").unwrap_or(""))?;
            let upload = media.create(caller, length, &name, &media_type).await?;
            let mut progress = Progress::At(0);
            if is_offset_stream(parts) {
                progress = media.append(&upload, 0, &mut BodySource { body, idle }).await?;
            }
            let mut reply = boxed(reply::body(StatusCode::CREATED, "text/plain; charset=utf-8", ""));
            set_value(&mut reply, LOCATION.as_str(), format!("{UPLOADS_PATH}/{}", upload.id));
            describe(&mut reply, media, &upload, &progress);
            Ok(reply)
        }
        (&Method::HEAD, id) => {
            let upload = media.find(caller, id)?;
            let meta = upload.meta();
            let mut reply = boxed(reply::body(StatusCode::OK, "text/plain; charset=utf-8", ""));
            set_value(&mut reply, "upload-length", meta.length);
            let progress = meta.attachment.map_or(Progress::At(meta.offset), Progress::Stored);
            describe(&mut reply, media, &upload, &progress);
            Ok(reply)
        }
        (&Method::PATCH, id) => {
            let upload = media.find(caller, id)?;
            if !is_offset_stream(parts) {
                let mut reply =
                    error_reply(&MediaError::Invalid(format!("send the bytes as {OFFSET_STREAM}")));
                *reply.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
                return Ok(reply);
            }
            let offset = number(parts, "upload-offset")?;
            let progress = media.append(&upload, offset, &mut BodySource { body, idle }).await?;
            let mut reply = boxed(reply::no_content());
            describe(&mut reply, media, &upload, &progress);
            Ok(reply)
        }
        (&Method::DELETE, id) => {
            let upload = media.find(caller, id)?;
            media.remove(&upload).await?;
            Ok(boxed(reply::no_content()))
        }
        _ => {
            let mut reply = boxed(reply::body(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "tus uploads take OPTIONS, POST, HEAD, PATCH and DELETE (see docs/API.md)\n",
            ));
            set(&mut reply, "allow", "OPTIONS, POST, HEAD, PATCH, DELETE");
            Ok(reply)
        }
    }
}

/// The headers that say where an upload stands.
fn describe(reply: &mut StreamReply, media: &super::Media, upload: &Arc<Upload>, progress: &Progress) {
    let meta = upload.meta();
    let offset = match progress {
        Progress::At(offset) => *offset,
        Progress::Stored(id) => {
            set_value(reply, ATTACHMENT_HEADER, id);
            meta.length
        }
    };
    set_value(reply, "upload-offset", offset);
    let expires = SystemTime::UNIX_EPOCH + Duration::from_millis(meta.touched) + media.limits.upload_expiry;
    set_value(reply, "upload-expires", httpdate::fmt_http_date(expires));
    reply.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn is_offset_stream(parts: &Parts) -> bool {
    header(parts, CONTENT_TYPE).is_some_and(|t| t.trim().eq_ignore_ascii_case(OFFSET_STREAM))
}

fn number(parts: &Parts, name: &'static str) -> Result<u64, MediaError> {
    header(parts, name)
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| MediaError::Invalid(format!("give {name} as a number of bytes")))
}

/// The file name and media type from `Upload-Metadata` (`key base64,…`):
/// `filename` (or `name`) and `filetype` (or `type`, `contentType`).
pub fn metadata(value: &str) -> Result<(String, String), MediaError> {
    let (mut name, mut media_type) = (None, None);
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, encoded) = pair.split_once(' ').unwrap_or((pair, ""));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                MediaError::Invalid(format!("Upload-Metadata {key:?} is not base64 of UTF-8 text"))
            })?;
        match key {
            "filename" | "name" => name = Some(decoded),
            "filetype" | "type" | "contentType" => media_type = Some(decoded),
            _ => {}
        }
    }
    Ok((
        name.unwrap_or_else(|| "file".to_owned()),
        media_type.filter(|t| !t.is_empty()).unwrap_or_else(|| "application/octet-stream".to_owned()),
    ))
}

/// A request body as upload bytes; a pause longer than `idle` ends it
/// like a cut connection.
struct BodySource {
    body: Incoming,
    idle: Duration,
}

impl ByteSource for BodySource {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            match tokio::time::timeout(self.idle, self.body.frame()).await {
                Err(_) => return Err("no bytes arrived in time".into()),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

/// The HTTP status of a media error.
pub fn status(e: &MediaError) -> StatusCode {
    match e {
        MediaError::NotFound => StatusCode::NOT_FOUND,
        MediaError::NotAuthenticated => StatusCode::UNAUTHORIZED,
        MediaError::TooLarge { .. } | MediaError::TooLong { .. } | MediaError::QuotaExceeded { .. } => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        MediaError::SpaceFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
        MediaError::OffsetMismatch { .. } => StatusCode::CONFLICT,
        MediaError::Busy => StatusCode::LOCKED,
        MediaError::TooManyUploads(_) => StatusCode::TOO_MANY_REQUESTS,
        MediaError::Invalid(_) => StatusCode::BAD_REQUEST,
        MediaError::Store(StoreError::StorageFull) => StatusCode::INSUFFICIENT_STORAGE,
        MediaError::Store(StoreError::Overloaded | StoreError::Closed | StoreError::Paused) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        MediaError::Store(StoreError::NoSuchAttachment(_)) => StatusCode::NOT_FOUND,
        MediaError::Store(_) | MediaError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A media error as the API's JSON error body.
pub fn error_reply(e: &MediaError) -> StreamReply {
    let body = e.body();
    let mut reply = boxed(reply::json(status(e), &serde_json::json!({ "error": body })));
    if let MediaError::OffsetMismatch { expected, .. } = e {
        set_value(&mut reply, "upload-offset", expected);
    }
    if matches!(e, MediaError::NotAuthenticated) {
        set(&mut reply, "www-authenticate", "Bearer");
    }
    reply
}

pub fn set(reply: &mut Response<impl Sized>, name: &'static str, value: &'static str) {
    reply.headers_mut().insert(HeaderName::from_static(name), HeaderValue::from_static(value));
}

pub fn set_value(reply: &mut Response<impl Sized>, name: &'static str, value: impl ToString) {
    if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
        reply.headers_mut().insert(HeaderName::from_static(name), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_read_as_tus_clients_send_it() {
        let value = "filename Y2F0LmpwZw==,filetype aW1hZ2UvanBlZw==,relativePath bnVsbA==";
        assert_eq!(metadata(value).ok(), Some(("cat.jpg".into(), "image/jpeg".into())));
        assert_eq!(metadata("").ok(), Some(("file".into(), "application/octet-stream".into())));
        assert!(matches!(metadata("filename !!!"), Err(MediaError::Invalid(_))));
    }
}
