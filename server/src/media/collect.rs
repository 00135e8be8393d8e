//! The background round of media housekeeping, every [`EVERY`] and at
//! start: drop abandoned uploads, remove orphans (contents no message has
//! carried for `media.orphan_hours`) and, with a media retention, contents
//! not sent for that many days. Rows go first, in bounded writes; files
//! after, under [`Media::files`], and only if no new upload stored the same
//! content again in between.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::blobs;
use super::uploads::{blocking, Media};
use super::MediaError;
use crate::store::media::{hex, Collect};
use crate::store::now_ms;

/// How often the round runs.
pub const EVERY: Duration = Duration::from_secs(600);

/// Contents removed per write: each removal rewrites the messages that
/// carried it, so a round is bounded by contents, not rows.
const BLOBS_PER_WRITE: u32 = 256;

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub uploads_dropped: u64,
    pub orphans: u64,
    pub expired: u64,
    pub messages_marked: u64,
}

/// The media retention in force: the owner's setting, else the
/// configuration's.
pub fn retention_days(media: &Media) -> u32 {
    match media.store.box_settings() {
        Ok(settings) => settings.media_retention_days.unwrap_or(media.limits.retention_days),
        Err(_) => media.limits.retention_days,
    }
}

/// Runs one whole round.
pub async fn round(media: &Media) -> Result<Round, MediaError> {
    let mut done = Round::default();
    for upload in media.expired_uploads(now_ms()) {
        media.remove(&upload).await?;
        done.uploads_dropped += 1;
    }
    let collect = Collect {
        orphan_ms: media.limits.orphan.as_millis() as u64,
        retention_days: retention_days(media),
        max_blobs: BLOBS_PER_WRITE,
    };
    loop {
        let collected = media.store.collect_media(collect).await?;
        done.orphans += collected.orphans;
        done.expired += collected.removed.len() as u64 - collected.orphans;
        done.messages_marked += collected.messages_marked;
        let _files = media.files.lock().await;
        for hash in collected.removed {
            if media.store.blob_exists(&hash)? {
                // Uploaded again since its row went: the file is in use.
                continue;
            }
            let dir = media.dir().to_owned();
            if let Err(e) = blocking(move || blobs::delete(&dir, &hash)).await {
                tracing::warn!(attachment = %hex(&hash), error = %e, "cannot delete a removed content's file");
            }
        }
        if !collected.more {
            break;
        }
    }
    Ok(done)
}

/// Runs a round at start and every [`EVERY`] until shutdown.
pub async fn periodically(media: Arc<Media>, shutdown: CancellationToken) {
    if let Err(e) = media.sweep().await {
        tracing::warn!(error = %e, "cannot sweep the contents' files; trying again at the next start");
    }
    let mut ticks = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match round(&media).await {
            Ok(done) if done != Round::default() => tracing::info!(
                uploads_dropped = done.uploads_dropped,
                orphans = done.orphans,
                expired = done.expired,
                messages_marked = done.messages_marked,
                "media housekeeping"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "media housekeeping failed; trying again later"),
        }
    }
}
