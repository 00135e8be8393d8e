//! Downloads over HTTPS: `GET /api/attachments/ID`, with `Range` for
//! seeking in audio and video. Only someone who may read the content gets
//! it; everyone else gets the same 404 as for an id that does not exist.
//!
//! A content is served as what its uploader said it is only for images,
//! audio and video, which browsers show inline without running anything;
//! everything else goes out as `application/octet-stream`, to be saved.
//! Either way it is sandboxed (`Content-Security-Policy: sandbox`), so that
//! an uploaded page can never run as the box's own.

use std::io::{Seek, SeekFrom};

use futures_util::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::tus::{error_reply, set, set_value, who, Refusal};
use super::MediaError;
use crate::store::media::{hex, parse_hex};
use crate::web::reply::{boxed, Body, StreamReply};
use crate::web::Web;

/// Bytes read from the file per body frame.
const READ_CHUNK: usize = 256 * 1024;

/// A byte range to serve, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

/// What a `Range` header asks of a content of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// No usable range (absent, malformed, or several): the whole content.
    Whole,
    /// One satisfiable range.
    Part(Span),
    /// A range that lies past the end: 416.
    Unsatisfiable,
}

/// Reads `bytes=A-B`, `bytes=A-` and `bytes=-N`. Anything else is ignored,
/// as RFC 9110 allows: the whole content is served.
pub fn range(header: Option<&str>, size: u64) -> Ranged {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return Ranged::Whole };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Ranged::Whole };
    let parse = |s: &str| if s.is_empty() { Some(None) } else { s.parse::<u64>().ok().map(Some) };
    let (Some(first), Some(last)) = (parse(first.trim()), parse(last.trim())) else { return Ranged::Whole };
    match (first, last) {
        (None, None) => Ranged::Whole,
        (None, Some(0)) => Ranged::Unsatisfiable,
        (None, Some(suffix)) if size == 0 => {
            let _ = suffix;
            Ranged::Unsatisfiable
        }
        (None, Some(suffix)) => Ranged::Part(Span { start: size.saturating_sub(suffix), end: size }),
        (Some(start), _) if start >= size => Ranged::Unsatisfiable,
        (Some(start), None) => Ranged::Part(Span { start, end: size }),
        (Some(start), Some(last)) if last < start => Ranged::Whole,
        (Some(start), Some(last)) => Ranged::Part(Span { start, end: last.saturating_add(1).min(size) }),
    }
}

/// Whether browsers may show this media type inline: images other than
/// SVG (which can carry script), audio and video.
fn shown_inline(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    (essence.starts_with("image/") && essence != "image/svg+xml")
        || essence.starts_with("audio/")
        || essence.starts_with("video/")
}

/// `Content-Disposition` with the file name: an ASCII fallback and the
/// UTF-8 name (RFC 6266).
fn disposition(inline: bool, name: &str) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let fallback: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' && c != '%' || c == ' ' { c } else { '_' })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// `GET` or `HEAD` of `/api/attachments/ID`.
pub fn handle(web: &Web, parts: &Parts, id: &str) -> StreamReply {
    match serve(web, parts, id) {
        Ok(reply) => reply,
        Err(Refusal::Media(e)) => error_reply(&e),
        Err(Refusal::Api(e)) => boxed(e.reply()),
    }
}

fn serve(web: &Web, parts: &Parts, id: &str) -> Result<StreamReply, Refusal> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let mut reply = error_reply(&MediaError::Invalid("attachments are read with GET or HEAD".into()));
        *reply.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        set(&mut reply, "allow", "GET, HEAD");
        return Ok(reply);
    }
    let caller = who(web, parts)?;
    let hash = parse_hex(id).ok_or(MediaError::NotFound)?;
    let (mut file, found) = web.hub.media.open_blob(caller.user, &hash)?;
    let size = found.size;
    let wanted = range(parts.headers.get("range").and_then(|v| v.to_str().ok()), size);
    let (status, span) = match wanted {
        Ranged::Whole => (StatusCode::OK, Span { start: 0, end: size }),
        Ranged::Part(span) => (StatusCode::PARTIAL_CONTENT, span),
        Ranged::Unsatisfiable => {
            let mut reply = error_reply(&MediaError::Invalid(format!(
                "the range lies outside the attachment's {size} bytes"
            )));
            *reply.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            set_value(&mut reply, "content-range", format!("bytes */{size}"));
            return Ok(reply);
        }
    };
    let length = span.end - span.start;
    let body: Body = if parts.method == Method::HEAD || length == 0 {
        http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync()
    } else {
        file.seek(SeekFrom::Start(span.start)).map_err(MediaError::from)?;
        let reader = tokio::fs::File::from_std(file).take(length);
        let frames = ReaderStream::with_capacity(reader, READ_CHUNK).map_ok(Frame::data);
        StreamBody::new(frames).boxed_unsync()
    };
    let mut reply = Response::new(body);
    *reply.status_mut() = status;
    let inline = shown_inline(&found.media_type);
    let content_type = if inline { found.media_type.as_str() } else { "application/octet-stream" };
    set_value(&mut reply, "content-type", content_type);
    set_value(&mut reply, CONTENT_LENGTH.as_str(), length);
    if status == StatusCode::PARTIAL_CONTENT {
        set_value(&mut reply, "content-range", format!("bytes {}-{}/{size}", span.start, span.end - 1));
    }
    set(&mut reply, "accept-ranges", "bytes");
    set_value(&mut reply, "etag", format!("\"{}\"", hex(&hash)));
    let query_name = parts
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("name=")).and_then(percent_decode));
    let name =
        query_name.filter(|n| imbox_protocol::attachment::valid_file_name(n)).unwrap_or_else(|| hex(&hash));
    set_value(&mut reply, "content-disposition", disposition(inline, &name));
    // A content never changes under its id: the browser may keep it.
    reply
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
    if reply.headers().get(CONTENT_TYPE).is_none() {
        set(&mut reply, "content-type", "application/octet-stream");
    }
    Ok(reply)
}

/// Sandboxes whatever an attachment path serves (after the box's usual
/// headers): nothing in it may run as the box's page.
pub fn contain(reply: &mut StreamReply) {
    set(reply, "content-security-policy", "default-src 'none'; sandbox");
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        let part = |start, end| Ranged::Part(Span { start, end });
        assert_eq!(range(None, 100), Ranged::Whole);
        assert_eq!(range(Some("bytes=0-9"), 100), part(0, 10));
        assert_eq!(range(Some("bytes=40-59"), 100), part(40, 60));
        assert_eq!(range(Some("bytes=90-"), 100), part(90, 100));
        assert_eq!(range(Some("bytes=-10"), 100), part(90, 100));
        assert_eq!(range(Some("bytes=-500"), 100), part(0, 100));
        assert_eq!(range(Some("bytes=50-5000"), 100), part(50, 100));
        assert_eq!(range(Some("bytes=100-"), 100), Ranged::Unsatisfiable);
        assert_eq!(range(Some("bytes=-0"), 100), Ranged::Unsatisfiable);
        for ignored in ["bytes=a-b", "bytes=5-1", "items=0-1", "bytes=0-1,5-6", "bytes=-", "bytes"] {
            assert_eq!(range(Some(ignored), 100), Ranged::Whole, "{ignored}");
        }
    }

    #[test]
    fn names_and_types_are_served_safely() {
        assert!(
            shown_inline("image/jpeg") && shown_inline("video/mp4") && shown_inline("audio/ogg; codecs=opus")
        );
        assert!(
            !shown_inline("text/html") && !shown_inline("image/svg+xml") && !shown_inline("application/pdf")
        );
        assert_eq!(
            disposition(false, "Ärger \"1\".pdf"),
            "attachment; filename=\"_rger _1_.pdf\"; filename*=UTF-8''%C3%84rger%20%221%22.pdf"
        );
        assert_eq!(percent_decode("caf%C3%A9+au+lait.jpg").as_deref(), Some("café au lait.jpg"));
        assert_eq!(percent_decode("%zz"), None);
    }
}
