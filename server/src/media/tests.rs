//! Uploads, collection and retention on real files and a real redb store,
//! with a manual clock for what happens hours and days later.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use imbox_protocol::Target;

use super::collect::round;
use super::uploads::{ByteSource, Media, Progress, Uploader};
use super::MediaLimits;
use crate::store::media::{hex, parse_hex};
use crate::store::records::AttachmentRecord;
use crate::store::{Clock, NoListener, Prune, PruneFrom, Store, StoreOptions, WriteOp, DAY_MS};

const START: u64 = 1000 * DAY_MS;
const HOUR_MS: u64 = 3_600_000;

struct World {
    media: Media,
    store: Store,
    clock: Clock,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(START);
    let options = StoreOptions { clock: clock.clone(), ..StoreOptions::default() };
    let store = Store::open(&dir.path().join("s.redb"), options, Arc::new(NoListener)).unwrap();
    for name in ["alice", "bob"] {
        store.create_user(name, "hash".into(), false).await.unwrap();
    }
    let limits = MediaLimits { orphan: Duration::from_secs(24 * 3600), ..MediaLimits::for_tests() };
    let media = Media::open(dir.path().join("media"), store.clone(), limits).unwrap();
    World { media, store, clock, _dir: dir }
}

/// Bytes handed over in pieces, as a body or a stream would.
struct Pieces(Vec<Bytes>);

impl ByteSource for Pieces {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        Ok(if self.0.is_empty() { None } else { Some(self.0.remove(0)) })
    }
}

const ALICE: Uploader = Uploader { user: 1, device: 0 };

async fn upload(media: &Media, who: Uploader, bytes: &[u8]) -> String {
    let upload = media.create(who, bytes.len() as u64, "f.bin", "application/octet-stream").await.unwrap();
    let pieces = bytes.chunks(1000).map(Bytes::copy_from_slice).collect();
    match media.append(&upload, 0, &mut Pieces(pieces)).await.unwrap() {
        Progress::Stored(id) => id,
        other => panic!("{other:?}"),
    }
}

async fn send(store: &Store, id: &str, size: u64, client_id: &str) -> (u64, u64) {
    let attachment = AttachmentRecord {
        id: parse_hex(id).unwrap(),
        media_type: "application/octet-stream".into(),
        size,
        name: "f.bin".into(),
        width: None,
        height: None,
        duration_ms: None,
        blurhash: None,
        thumbnail: None,
        expired: false,
    };
    let op = WriteOp::Send {
        sender: 1,
        device: 0,
        to: Target::parse("bob"),
        client_id: client_id.into(),
        text: "see".into(),
        attachments: vec![attachment],
    };
    let sent = store.write(op).await.unwrap().sent_for_tests();
    (sent.conversation, sent.seq)
}

fn file_exists(w: &World, id: &str) -> bool {
    super::blobs::blob_path(w.media.dir(), &parse_hex(id).unwrap()).exists()
}

#[tokio::test]
async fn an_upload_cut_off_goes_on_from_its_offset() {
    let w = world().await;
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let upload = w.media.create(ALICE, bytes.len() as u64, "f.bin", "image/png").await.unwrap();
    let first = vec![Bytes::copy_from_slice(&bytes[..20_000])];
    assert_eq!(w.media.append(&upload, 0, &mut Pieces(first)).await.unwrap(), Progress::At(20_000));
    // A stale offset is refused with the durable one.
    let stale = w.media.append(&upload, 0, &mut Pieces(vec![])).await.unwrap_err();
    assert!(matches!(stale, super::MediaError::OffsetMismatch { expected: 20_000, given: 0 }), "{stale:?}");
    // Reopened as after a restart: the hash is rebuilt from the part.
    let reopened = Media::open(w.media.dir().to_owned(), w.store.clone(), MediaLimits::for_tests()).unwrap();
    let again = reopened.find(ALICE, &upload.id).unwrap();
    let rest = vec![Bytes::copy_from_slice(&bytes[20_000..])];
    let id = match reopened.append(&again, 20_000, &mut Pieces(rest)).await.unwrap() {
        Progress::Stored(id) => id,
        other => panic!("{other:?}"),
    };
    use sha2::Digest;
    assert_eq!(id, hex(&sha2::Sha256::digest(&bytes).into()));
    // Someone else's upload does not exist for them.
    assert!(reopened.find(Uploader { user: 2, device: 0 }, &upload.id).is_err());
}

#[tokio::test]
async fn orphans_go_after_their_time() {
    let w = world().await;
    let id = upload(&w.media, ALICE, b"never sent").await;
    w.clock.advance(23 * HOUR_MS);
    assert_eq!(round(&w.media).await.unwrap().orphans, 0);
    assert!(file_exists(&w, &id));
    w.clock.advance(2 * HOUR_MS);
    assert_eq!(round(&w.media).await.unwrap().orphans, 1);
    assert!(!file_exists(&w, &id));
    assert_eq!(w.store.media_usage(1).unwrap(), 0);
    assert_eq!(w.store.media_summary().unwrap().contents, 0);
}

#[tokio::test]
async fn sent_media_stays_until_retention_and_then_shows_as_expired() {
    let w = world().await;
    let bytes = vec![9u8; 5000];
    let id = upload(&w.media, ALICE, &bytes).await;
    let (conversation, seq) = send(&w.store, &id, 5000, "m1").await;
    // Sent: no longer an orphan, however long it waits without retention.
    w.clock.advance(400 * DAY_MS);
    assert_eq!(round(&w.media).await.unwrap(), super::collect::Round::default());
    assert!(w.store.downloadable(2, &parse_hex(&id).unwrap()).unwrap().is_some(), "bob may read it");

    w.store.set_media_retention(Some(30)).await.unwrap();
    // Sent again on day 400: it is kept 30 days from then.
    send(&w.store, &id, 5000, "m2").await;
    w.clock.advance(29 * DAY_MS);
    assert_eq!(round(&w.media).await.unwrap().expired, 0);
    w.clock.advance(2 * DAY_MS);
    let done = round(&w.media).await.unwrap();
    assert_eq!((done.expired, done.messages_marked), (1, 2));
    assert!(!file_exists(&w, &id));
    assert!(w.store.downloadable(2, &parse_hex(&id).unwrap()).unwrap().is_none());
    let (messages, _) = w.store.history(2, &Target::Id(conversation), None, 10).unwrap();
    assert_eq!(messages.len(), 2);
    assert!(messages.iter().all(|m| m.attachments.len() == 1 && m.attachments[0].expired), "{messages:?}");
    assert_eq!(messages[0].seq, seq);
    assert_eq!(messages[0].text, "see", "the text stays");
    assert_eq!(w.store.media_usage(1).unwrap(), 0);
}

#[tokio::test]
async fn deleted_messages_leave_orphans_behind() {
    let w = world().await;
    let id = upload(&w.media, ALICE, b"a voice note").await;
    send(&w.store, &id, 12, "m1").await;
    w.clock.advance(11 * DAY_MS);
    let prune = Prune {
        device_inactive_ms: 90 * DAY_MS,
        retention_days: 10,
        max_rows: 1000,
        from: PruneFrom::default(),
    };
    let report = w.store.prune(prune).await.unwrap();
    assert_eq!(report.messages, 1);
    // The message is gone, the content waits its orphan time.
    assert_eq!(round(&w.media).await.unwrap().orphans, 0);
    w.clock.advance(25 * HOUR_MS);
    assert_eq!(round(&w.media).await.unwrap().orphans, 1);
    assert!(!file_exists(&w, &id));
}

#[tokio::test]
async fn a_file_without_its_row_is_swept() {
    let w = world().await;
    let hash = [7u8; 32];
    let path = super::blobs::blob_path(w.media.dir(), &hash);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"left by a crash").unwrap();
    let kept = upload(&w.media, ALICE, b"stored properly").await;
    assert_eq!(w.media.sweep().await.unwrap(), 1);
    assert!(!path.exists());
    assert!(file_exists(&w, &kept));
}

/// Bytes, then silence: a sender whose connection died without a word.
struct Stalls(Vec<Bytes>);

impl ByteSource for Stalls {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        if self.0.is_empty() {
            std::future::pending::<()>().await;
        }
        Ok(Some(self.0.remove(0)))
    }
}

#[tokio::test]
async fn a_new_request_takes_an_upload_over_from_a_silent_one() {
    let w = world().await;
    let media = Arc::new(w.media);
    let bytes = vec![5u8; 10_000];
    let upload = media.create(ALICE, bytes.len() as u64, "f.bin", "image/png").await.unwrap();
    let stalled = {
        let (media, upload) = (media.clone(), upload.clone());
        let first = vec![Bytes::copy_from_slice(&bytes[..3000])];
        tokio::spawn(async move { media.append(&upload, 0, &mut Stalls(first)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The newer request wins: the silent one keeps what it wrote and ends.
    let second = media.append(&upload, 0, &mut Pieces(vec![])).await.unwrap_err();
    assert!(matches!(second, super::MediaError::OffsetMismatch { expected: 3000, .. }), "{second:?}");
    assert_eq!(stalled.await.unwrap().unwrap(), Progress::At(3000));
    let rest = vec![Bytes::copy_from_slice(&bytes[3000..])];
    assert!(matches!(media.append(&upload, 3000, &mut Pieces(rest)).await.unwrap(), Progress::Stored(_)));
}
