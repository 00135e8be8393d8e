//! Files carried beside messages: what a message says about each one
//! ([`Attachment`]), and the rules that metadata must keep.
//!
//! The bytes themselves travel apart from the session: uploaded over HTTPS
//! with the tus protocol or over a QUIC stream of their own
//! ([`crate::transfer`]), downloaded over either. A message only names them,
//! by the SHA-256 of their content; the server stores each content once.
//! docs/PROTOCOL.md, "Attachments", is the specification.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// The most attachments one message may carry.
pub const MAX_ATTACHMENTS: usize = 10;
/// The longest file name, in bytes of UTF-8.
pub const MAX_FILE_NAME: usize = 255;
/// The longest media type (`type/subtype`, parameters included).
pub const MAX_MEDIA_TYPE: usize = 127;
/// The longest BlurHash string.
pub const MAX_BLURHASH: usize = 100;
/// The largest thumbnail, in bytes of image data (before base64).
pub const MAX_THUMBNAIL_BYTES: usize = 1024;
/// Media types a thumbnail may have. The server never decodes images; a
/// client draws a thumbnail only from these well-known formats.
pub const THUMBNAIL_TYPES: &[&str] = &["image/jpeg", "image/png", "image/webp"];

/// One attachment of a message, as the sender describes it and every
/// member receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The SHA-256 of the content, 64 lowercase hex digits: the id the
    /// upload returned, and the one to download.
    pub id: String,
    /// The content's media type as the sender gave it (`image/jpeg`).
    pub media_type: String,
    /// The content's size in bytes (the server checks it against the
    /// stored content).
    pub size: u64,
    /// The file name to offer when saving it.
    pub name: String,
    /// Width and height in pixels, for images and video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Length in milliseconds, for audio and video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// A BlurHash of the image (at most [`MAX_BLURHASH`] characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blurhash: Option<String>,
    /// A tiny image the sender drew, as a `data:` URL
    /// (`data:image/webp;base64,…`, at most [`MAX_THUMBNAIL_BYTES`] bytes of
    /// image), ready for an `<img>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
    /// Set by the server when the box's media retention deleted the
    /// content: the message keeps its text and this description, and the
    /// download is gone. Ignored in `send`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
}

/// Why an attachment's description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    #[error("a message may carry at most {MAX_ATTACHMENTS} attachments")]
    TooMany,
    #[error("attachment id {0:?} is not a SHA-256 in 64 lowercase hex digits")]
    BadId(String),
    #[error("the file name must have 1 to {MAX_FILE_NAME} bytes, with no '/', '\\' or control characters")]
    BadName,
    #[error("the media type {0:?} is not of the form type/subtype (at most {MAX_MEDIA_TYPE} bytes)")]
    BadMediaType(String),
    #[error("the BlurHash must have 6 to {MAX_BLURHASH} characters of its base-83 alphabet")]
    BadBlurhash,
    #[error(
        "the thumbnail must be a data: URL of a JPEG, PNG or WebP image of at most {MAX_THUMBNAIL_BYTES} bytes"
    )]
    BadThumbnail,
    #[error("width, height and duration must be greater than 0")]
    BadDimension,
    #[error("attachment {0} appears twice in one message")]
    Duplicate(String),
}

/// Whether `id` is a SHA-256 in lowercase hex.
pub fn valid_attachment_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `name` may name a file offered for saving: no path separators, no
/// control or bidirectional formatting characters, not `.` or `..`.
pub fn valid_file_name(name: &str) -> bool {
    !name.trim().is_empty()
        && name.len() <= MAX_FILE_NAME
        && name != "."
        && name != ".."
        && !name.chars().any(|c| {
            c == '/'
                || c == '\\'
                || c.is_control()
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
        })
}

/// Whether `media_type` looks like `type/subtype[; parameters]` in
/// printable ASCII.
pub fn valid_media_type(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or("").trim();
    let token =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    media_type.len() <= MAX_MEDIA_TYPE
        && media_type.bytes().all(|b| (0x20..0x7f).contains(&b))
        && matches!(essence.split_once('/'), Some((t, s)) if token(t) && token(s))
}

fn valid_blurhash(hash: &str) -> bool {
    const ALPHABET: &[u8] =
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";
    (6..=MAX_BLURHASH).contains(&hash.len()) && hash.bytes().all(|b| ALPHABET.contains(&b))
}

fn valid_thumbnail(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("data:") else { return false };
    let Some((media_type, data)) = rest.split_once(";base64,") else { return false };
    if !THUMBNAIL_TYPES.contains(&media_type) {
        return false;
    }
    // Checked by length first, so that a huge string is refused without
    // decoding it.
    data.len() <= MAX_THUMBNAIL_BYTES.div_ceil(3) * 4
        && base64::engine::general_purpose::STANDARD
            .decode(data)
            .is_ok_and(|bytes| !bytes.is_empty() && bytes.len() <= MAX_THUMBNAIL_BYTES)
}

impl Attachment {
    /// Checks the description's own rules (not whether the content exists:
    /// that is the server's).
    pub fn check(&self) -> Result<(), AttachmentError> {
        if !valid_attachment_id(&self.id) {
            return Err(AttachmentError::BadId(self.id.chars().take(80).collect()));
        }
        if !valid_file_name(&self.name) {
            return Err(AttachmentError::BadName);
        }
        if !valid_media_type(&self.media_type) {
            return Err(AttachmentError::BadMediaType(self.media_type.chars().take(80).collect()));
        }
        if self.blurhash.as_deref().is_some_and(|h| !valid_blurhash(h)) {
            return Err(AttachmentError::BadBlurhash);
        }
        if self.thumbnail.as_deref().is_some_and(|t| !valid_thumbnail(t)) {
            return Err(AttachmentError::BadThumbnail);
        }
        if self.width == Some(0) || self.height == Some(0) || self.duration_ms == Some(0) {
            return Err(AttachmentError::BadDimension);
        }
        Ok(())
    }
}

/// Checks a message's list of attachments: each one's rules, the count,
/// and that none appears twice.
pub fn check_attachments(attachments: &[Attachment]) -> Result<(), AttachmentError> {
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(AttachmentError::TooMany);
    }
    for (i, attachment) in attachments.iter().enumerate() {
        attachment.check()?;
        if attachments[..i].iter().any(|a| a.id == attachment.id) {
            return Err(AttachmentError::Duplicate(attachment.id.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo() -> Attachment {
        Attachment {
            id: "ab".repeat(32),
            media_type: "image/jpeg".into(),
            size: 1000,
            name: "cat.jpg".into(),
            width: Some(640),
            height: Some(480),
            duration_ms: None,
            blurhash: Some("LEHV6nWB2yk8pyo0adR*.7kCMdnj".into()),
            thumbnail: Some("data:image/png;base64,iVBORw0KGgo=".into()),
            expired: false,
        }
    }

    #[test]
    fn good_descriptions_pass() {
        assert_eq!(photo().check(), Ok(()));
        assert_eq!(check_attachments(&[photo()]), Ok(()));
        let plain = Attachment {
            media_type: "application/pdf; charset=binary".into(),
            width: None,
            height: None,
            blurhash: None,
            thumbnail: None,
            ..photo()
        };
        assert_eq!(plain.check(), Ok(()));
    }

    #[test]
    fn bad_descriptions_are_named() {
        type Expect = fn(&AttachmentError) -> bool;
        let cases: [(Attachment, Expect); 8] = [
            (Attachment { id: "AB".repeat(32), ..photo() }, |e| matches!(e, AttachmentError::BadId(_))),
            (Attachment { id: "ab".into(), ..photo() }, |e| matches!(e, AttachmentError::BadId(_))),
            (Attachment { name: "../etc/passwd".into(), ..photo() }, |e| *e == AttachmentError::BadName),
            (Attachment { name: "a\u{202E}gpj.exe".into(), ..photo() }, |e| *e == AttachmentError::BadName),
            (Attachment { media_type: "jpeg".into(), ..photo() }, |e| {
                matches!(e, AttachmentError::BadMediaType(_))
            }),
            (Attachment { blurhash: Some("<script>".into()), ..photo() }, |e| {
                *e == AttachmentError::BadBlurhash
            }),
            (Attachment { thumbnail: Some("data:text/html;base64,PGI+".into()), ..photo() }, |e| {
                *e == AttachmentError::BadThumbnail
            }),
            (Attachment { width: Some(0), ..photo() }, |e| *e == AttachmentError::BadDimension),
        ];
        for (attachment, expected) in cases {
            let error = attachment.check().expect_err("refused");
            assert!(expected(&error), "{error:?}");
        }
        let huge = format!("data:image/png;base64,{}", "A".repeat(4000));
        assert_eq!(
            Attachment { thumbnail: Some(huge), ..photo() }.check(),
            Err(AttachmentError::BadThumbnail)
        );
        assert!(matches!(check_attachments(&[photo(), photo()]), Err(AttachmentError::Duplicate(_))));
        assert_eq!(check_attachments(&vec![photo(); 11]), Err(AttachmentError::TooMany));
    }
}
