//! Attachments: the files members send beside their messages.
//!
//! Layout — each module is one concept:
//! - [`uploads`]: uploads in progress, resumable from the offset held
//!   durably, and their end: a content-addressed file and its row.
//! - [`blobs`]: where contents live on the data disk, and the sweep that
//!   keeps files and rows in step after a crash.
//! - [`tus`]: the HTTPS upload endpoint (the tus protocol);
//!   [`download`]: the HTTPS download with `Range`.
//! - [`quic`]: uploads and downloads on QUIC streams of their own.
//! - [`collect`]: the background round that removes orphans, expired
//!   media and abandoned uploads.
//!
//! The server never decodes media: it stores bytes, their SHA-256 and the
//! media type the sender gave. Previews come from the sender, inside the
//! message (`imbox_protocol::Attachment`).

use imbox_protocol::{check_attachments, Attachment, AttachmentError};

use crate::store::media::parse_hex;
use crate::store::records::AttachmentRecord;

/// A message's attachments as the store keeps them, once their
/// descriptions pass the protocol's rules.
pub fn records_of(attachments: &[Attachment]) -> Result<Vec<AttachmentRecord>, AttachmentError> {
    check_attachments(attachments)?;
    attachments
        .iter()
        .map(|a| {
            let id = parse_hex(&a.id).ok_or_else(|| AttachmentError::BadId(a.id.clone()))?;
            Ok(AttachmentRecord {
                id,
                media_type: a.media_type.clone(),
                size: a.size,
                name: a.name.clone(),
                width: a.width,
                height: a.height,
                duration_ms: a.duration_ms,
                blurhash: a.blurhash.clone(),
                thumbnail: a.thumbnail.clone(),
                expired: false,
            })
        })
        .collect()
}
