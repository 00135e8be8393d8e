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

pub mod blobs;
pub mod collect;
pub mod download;
pub mod quic;
pub mod tus;
pub mod uploads;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use imbox_protocol::{check_attachments, Attachment, AttachmentError, ErrorBody, ErrorCode};

use crate::config::Config;
use crate::store::media::parse_hex;
use crate::store::records::AttachmentRecord;
use crate::store::StoreError;

pub use uploads::{Media, Upload};

/// The limits of `[media]` in the configuration.
#[derive(Debug, Clone)]
pub struct MediaLimits {
    /// The largest file, in bytes.
    pub max_file: u64,
    /// What one user's uploads may take, in bytes (0: no quota).
    pub user_quota: u64,
    /// Free space uploads never take, in bytes (`reserve_mib` plus
    /// `storage.min_free_mib`).
    pub reserve: u64,
    /// An unreferenced content is removed after this long.
    pub orphan: Duration,
    /// An upload that has not moved for this long is dropped.
    pub upload_expiry: Duration,
    /// The configured media retention in days (0: forever); the owner's
    /// setting in the database wins.
    pub retention_days: u32,
}

impl MediaLimits {
    pub fn from_config(config: &Config) -> MediaLimits {
        let m = &config.media;
        MediaLimits {
            max_file: u64::from(m.max_file_mib) << 20,
            user_quota: u64::from(m.user_quota_mib) << 20,
            reserve: (u64::from(m.reserve_mib) + u64::from(config.storage.min_free_mib)) << 20,
            orphan: Duration::from_secs(u64::from(m.orphan_hours) * 3600),
            upload_expiry: Duration::from_secs(u64::from(m.upload_expiry_hours) * 3600),
            retention_days: m.retention_days,
        }
    }
}

impl MediaLimits {
    /// Limits for tests and tools: 100 MiB files, no quota, no reserve.
    pub fn for_tests() -> MediaLimits {
        MediaLimits {
            max_file: 100 << 20,
            user_quota: 0,
            reserve: 0,
            orphan: Duration::from_secs(24 * 3600),
            upload_expiry: Duration::from_secs(24 * 3600),
            retention_days: 0,
        }
    }
}

/// Where attachments live: `<data_dir>/media`.
pub fn media_dir(config: &Config) -> PathBuf {
    config.data_dir.join("media")
}

/// Why an upload or a download failed: the same on HTTPS and QUIC.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// No such upload or attachment that the caller may use; said the same
    /// way whether it exists or not.
    #[error("no such upload or attachment (or it is not yours to read): check the id")]
    NotFound,
    /// No valid device token or web session.
    #[error("log in first: send the device token as `Authorization: Bearer TOKEN`")]
    NotAuthenticated,
    /// The file is larger than `media.max_file_mib`.
    #[error("the file has {size} bytes; this box takes files of at most {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    /// The upload would take the user past the quota.
    #[error(
        "this upload of {size} bytes would take you past your media quota ({used} of {quota} bytes used,          unfinished uploads included): delete old attachments or ask the box's owner for more"
    )]
    QuotaExceeded { size: u64, used: u64, quota: u64 },
    /// The upload would eat into the space kept for messages.
    #[error(
        "the box keeps its last {reserve} bytes of disk for messages, and this upload of {size} bytes          would take them ({free} bytes free, unfinished uploads counted): the box's owner must free          space or shorten media retention; messages still go through"
    )]
    SpaceFull { size: u64, free: u64, reserve: u64 },
    /// The client's offset is not the server's.
    #[error(
        "the upload is at offset {expected}, not {given}: ask for the offset (HEAD) and go on from there"
    )]
    OffsetMismatch { expected: u64, given: u64 },
    /// More bytes than the upload's length.
    #[error("more bytes than the upload's length of {length}")]
    TooLong { length: u64 },
    /// Another request is writing to this upload.
    #[error("another request is writing to this upload: retry in a moment")]
    Busy,
    /// Too many unfinished uploads for one user.
    #[error("you have {0} unfinished uploads, the most allowed: finish or delete some first")]
    TooManyUploads(usize),
    /// A request that breaks the rules (the message says which).
    #[error("{0}")]
    Invalid(String),
    /// The store refused or failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Reading or writing a file failed.
    #[error("the box could not read or write the file: {0}")]
    Io(#[from] std::io::Error),
}

impl MediaError {
    /// The protocol's typed error.
    pub fn body(&self) -> ErrorBody {
        let code = match self {
            MediaError::NotFound => ErrorCode::NotFound,
            MediaError::NotAuthenticated => ErrorCode::BadCredentials,
            MediaError::TooLarge { .. } | MediaError::TooLong { .. } => ErrorCode::TooLarge,
            MediaError::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            MediaError::SpaceFull { .. } => ErrorCode::MediaSpaceFull,
            MediaError::OffsetMismatch { .. } | MediaError::Invalid(_) => ErrorCode::InvalidArgument,
            MediaError::Busy => {
                return ErrorBody {
                    retry_after_ms: Some(1000),
                    ..ErrorBody::new(ErrorCode::Unavailable, self.to_string())
                }
            }
            MediaError::TooManyUploads(_) => ErrorCode::RateLimited,
            MediaError::Store(e) => return crate::session::errors::from_store(e),
            MediaError::Io(e) => {
                tracing::error!(error = %e, "media file failure");
                ErrorCode::Internal
            }
        };
        ErrorBody::new(code, self.to_string())
    }
}

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
