//! Building responses and reading request bodies.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::ApiError;

/// What every handler returns.
pub type Reply = Response<Full<Bytes>>;

/// A body of any kind: whole, or streamed from a file (attachments).
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// A reply whose body may be streamed.
pub type StreamReply = Response<Body>;

/// A whole reply as a [`StreamReply`].
pub fn boxed(reply: Reply) -> StreamReply {
    reply.map(|body| body.map_err(|never| match never {}).boxed_unsync())
}

/// The largest request body read: every form of the pages fits many times.
pub const MAX_BODY: usize = 16 * 1024;

/// Content-Security-Policy of every answer: nothing from elsewhere, no inline
/// script or style, no framing. QR codes and the previews inside messages are
/// `data:` images; the chat app shows downloaded attachments and recorded
/// voice notes as `blob:` URLs, talks to the box over its WebSocket
/// (`connect-src 'self'` covers `wss:` to the same host), and registers a
/// service worker from this box.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
media-src 'self' blob:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; form-action 'self'; \
base-uri 'none'; frame-ancestors 'none'";

/// A reply with a body of the given type.
pub fn body(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut reply = Response::new(Full::new(body.into()));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

/// A JSON reply.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(bytes) => body(status, "application/json", bytes),
        Err(e) => body(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            format!("{{\"error\":{{\"code\":\"internal\",\"message\":\"cannot encode the answer: {e}\"}}}}"),
        ),
    }
}

/// An HTML page.
pub fn html(status: StatusCode, page: String) -> Reply {
    body(status, "text/html; charset=utf-8", page)
}

/// A redirect to `location` (a path on this box, or an https:// URL built
/// by the caller).
pub fn redirect(status: StatusCode, location: &str) -> Reply {
    let mut reply = body(status, "text/plain; charset=utf-8", format!("see {location}\n"));
    if let Ok(value) = HeaderValue::from_str(location) {
        reply.headers_mut().insert(LOCATION, value);
    }
    reply
}

/// 204 No Content.
pub fn no_content() -> Reply {
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = StatusCode::NO_CONTENT;
    reply
}

/// Adds the headers every answer carries. Pages and API answers hold
/// account data, so nothing is cached. There is deliberately no HSTS: with a
/// self-signed certificate it would turn the browser's warning into a wall,
/// and the plain-HTTP landing page must stay reachable.
pub fn harden<B>(reply: &mut Response<B>) {
    let headers = reply.headers_mut();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    };
    set(headers, "content-security-policy", CSP);
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "x-frame-options", "DENY");
    set(headers, "cross-origin-opener-policy", "same-origin");
    set(headers, "cross-origin-resource-policy", "same-origin");
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// A request header as text, if present and readable.
pub fn header(parts: &Parts, name: impl hyper::header::AsHeaderName) -> Option<&str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes. The content type must
/// be JSON: an HTML form cannot send that without JavaScript, which is a
/// second line against cross-site posts behind the CSRF token.
pub async fn read_json<T: DeserializeOwned>(parts: &Parts, body: Incoming) -> Result<T, ApiError> {
    read_json_up_to(parts, body, MAX_BODY).await
}

/// [`read_json`] with a bound of `limit` bytes, for the few endpoints whose
/// bodies are larger (a certificate chain and its key).
pub async fn read_json_up_to<T: DeserializeOwned>(
    parts: &Parts,
    body: Incoming,
    limit: usize,
) -> Result<T, ApiError> {
    let content_type = header(parts, CONTENT_TYPE).unwrap_or("");
    if !content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")) {
        return Err(ApiError::BadRequest(
            "send the request body as JSON (Content-Type: application/json)".into(),
        ));
    }
    // The body must arrive by the deadline the HTTP listener set
    // (`http.request_timeout_ms` after the head): one that never finishes
    // would hold its connection and its place under `max_connections`.
    let deadline = parts.extensions.get::<crate::transport::http::BodyDeadline>().map(|d| d.0);
    let read = Limited::new(body, limit).collect();
    let collected = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, read).await.map_err(|_| {
            ApiError::BadRequest(
                "the request body did not arrive in time; send the whole request at once and retry".into(),
            )
        })?,
        None => read.await,
    };
    let bytes = collected
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                ApiError::TooLarge(limit)
            } else {
                ApiError::BadRequest(format!("the request body could not be read: {e}"))
            }
        })?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not valid: {e}")))
}
