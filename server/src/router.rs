//! Live delivery: which devices are online, and handing them what happens.
//!
//! Every authenticated session registers a [`Link`] here. After each commit
//! the store's writer hands the new log entries to [`Router::committed`],
//! which offers each one to every online device of its user. Queues are
//! bounded: when a session's queue is full, the entry is not queued and the
//! session is flagged as lagging; it then reads what it missed from the store.
//! Nothing is lost, because the store, not the queue, is the record.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use imbox_protocol::{Entry, Event, Item};
use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use crate::store::{CommitListener, Notice};

/// Something for one session to pass on. Payloads are shared, not copied:
/// one entry goes to every device of its user, and a small `Push` keeps each
/// session's queue allocation small (tokio allocates queue slots in blocks).
#[derive(Debug, Clone)]
pub enum Push {
    /// A new entry of the user's stream.
    Entry(Arc<SharedEntry>),
    /// An ephemeral event (typing, presence).
    Event(Arc<Event>),
    /// The device's token was revoked or its user removed.
    Revoked,
}

/// A new entry as every live session sends it. A group's event goes to
/// every member's sessions alike: its frame is encoded by the first session
/// that sends it and the same bytes go out on every other connection, so
/// that a message to a group of 1,000 costs one serialization, not 1,000.
#[derive(Debug)]
pub struct SharedEntry {
    entry: Arc<Entry>,
    frame: OnceLock<Bytes>,
}

impl SharedEntry {
    pub fn new(entry: Arc<Entry>) -> SharedEntry {
        SharedEntry { entry, frame: OnceLock::new() }
    }

    /// The entry's stream position.
    pub fn position(&self) -> u64 {
        self.entry.position
    }

    /// The entry's `event` frame, encoded once.
    pub fn frame(&self) -> Bytes {
        self.frame.get_or_init(|| Bytes::from(encode_entry_frame(&self.entry))).clone()
    }
}

/// `ServerFrame::Event { event: Event::Entry { entry } }` encoded from a
/// borrowed entry: the protocol's types own their entry, and building one
/// would copy every string of it first. The test
/// `a_shared_entry_encodes_as_the_protocol_frame` holds the two encodings
/// byte for byte equal.
fn encode_entry_frame(entry: &Entry) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(tag = "frame", rename_all = "snake_case")]
    enum Frame<'a> {
        Event { event: EntryEvent<'a> },
    }
    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum EntryEvent<'a> {
        Entry { entry: &'a Entry },
    }
    let frame = Frame::Event { event: EntryEvent::Entry { entry } };
    // As in `ServerFrame::encode`: plain data with string keys cannot fail
    // to encode into a Vec.
    rmp_serde::to_vec_named(&frame).unwrap_or_else(|e| unreachable!("encoding an entry frame failed: {e}"))
}

/// A session's side of its registration: its queue and its lag flag.
#[derive(Debug)]
pub struct Inbox {
    pub queue: mpsc::Receiver<Push>,
    pub signal: Arc<Signal>,
}

/// Raised when something could not be queued for a session.
#[derive(Debug, Default)]
pub struct Signal {
    lagged: AtomicBool,
    pub notify: Notify,
}

impl Signal {
    /// Takes the lag flag, clearing it.
    pub fn take_lagged(&self) -> bool {
        self.lagged.swap(false, Ordering::AcqRel)
    }

    /// Raises the lag flag and wakes the session: it has entries to read
    /// from the store.
    pub fn raise(&self) {
        self.lagged.store(true, Ordering::Release);
        self.notify.notify_one();
    }
}

#[derive(Debug)]
struct Link {
    session: u64,
    device: u64,
    queue: mpsc::Sender<Push>,
    signal: Arc<Signal>,
}

impl Link {
    fn offer(&self, push: Push) {
        if self.queue.try_send(push).is_err() {
            self.signal.raise();
        }
    }
}

const SHARDS: usize = 64;

/// The registry of online devices, sharded by user so that fan-out to
/// different users does not contend on one lock.
#[derive(Debug)]
pub struct Router {
    shards: Vec<Mutex<HashMap<u64, Vec<Link>>>>,
    next_session: AtomicU64,
    queue_len: usize,
    online: AtomicU64,
    /// Wakes devices without a session (set once at start, when push is on).
    push: OnceLock<Arc<crate::push::Pusher>>,
}

/// What [`Router::register`] returns: the session's inbox and whether it is
/// the user's first online session (for presence).
#[derive(Debug)]
pub struct Registration {
    pub session: u64,
    pub inbox: Inbox,
    pub first: bool,
}

impl Router {
    /// A router whose per-session queues hold `queue_len` pushes.
    pub fn new(queue_len: usize) -> Router {
        Router {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            next_session: AtomicU64::new(1),
            queue_len: queue_len.max(1),
            online: AtomicU64::new(0),
            push: OnceLock::new(),
        }
    }

    /// Hands new messages to the push sender from now on.
    pub fn attach_push(&self, pusher: Arc<crate::push::Pusher>) {
        let _ = self.push.set(pusher);
    }

    /// The devices of `user` with a session now.
    fn online_devices(&self, user: u64) -> Vec<u64> {
        self.shard(user).get(&user).map_or_else(Vec::new, |links| links.iter().map(|l| l.device).collect())
    }

    fn shard(&self, user: u64) -> MutexGuard<'_, HashMap<u64, Vec<Link>>> {
        // A panic while holding a shard lock leaves plain data behind, which
        // is still consistent: keep using it.
        self.shards[(user as usize) % SHARDS].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an authenticated session of `device`.
    pub fn register(&self, user: u64, device: u64) -> Registration {
        let (tx, rx) = mpsc::channel(self.queue_len);
        let signal = Arc::new(Signal::default());
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let mut shard = self.shard(user);
        let links = shard.entry(user).or_default();
        let first = links.is_empty();
        links.push(Link { session, device, queue: tx, signal: signal.clone() });
        self.online.fetch_add(1, Ordering::Relaxed);
        Registration { session, inbox: Inbox { queue: rx, signal }, first }
    }

    /// Removes a session; returns whether the user has no session left.
    pub fn unregister(&self, user: u64, session: u64) -> bool {
        let mut shard = self.shard(user);
        let Some(links) = shard.get_mut(&user) else { return false };
        let before = links.len();
        links.retain(|l| l.session != session);
        if links.len() < before {
            self.online.fetch_sub(1, Ordering::Relaxed);
        }
        if links.is_empty() {
            shard.remove(&user);
            return before > 0;
        }
        false
    }

    /// Whether any device of the user is online.
    pub fn is_online(&self, user: u64) -> bool {
        self.shard(user).get(&user).is_some_and(|l| !l.is_empty())
    }

    /// The number of registered sessions.
    pub fn sessions(&self) -> u64 {
        self.online.load(Ordering::Relaxed)
    }

    /// Offers an ephemeral event to every session of a user, except one.
    pub fn push_event(&self, user: u64, except_session: Option<u64>, event: &Arc<Event>) {
        if let Some(links) = self.shard(user).get(&user) {
            for link in links.iter().filter(|l| Some(l.session) != except_session) {
                link.offer(Push::Event(event.clone()));
            }
        }
    }

    /// Tells every session of a user (or of one of its devices) that its
    /// credentials are gone.
    fn revoke(&self, user: u64, device: Option<u64>) {
        if let Some(links) = self.shard(user).get(&user) {
            for link in links.iter().filter(|l| device.is_none_or(|d| d == l.device)) {
                // If the queue is full the lag flag is raised instead, and a
                // catching-up session checks that its token is still valid.
                link.offer(Push::Revoked);
            }
        }
    }
}

impl CommitListener for Router {
    fn committed(&self, notices: Vec<Notice>) {
        for notice in notices {
            match notice {
                Notice::Entry { users, entry } => {
                    let shared = Arc::new(SharedEntry::new(entry.clone()));
                    for &user in users.iter() {
                        if let Some(links) = self.shard(user).get(&user) {
                            for link in links {
                                link.offer(Push::Entry(shared.clone()));
                            }
                        }
                    }
                    // Messages only (not receipts or membership changes),
                    // and not to the sender: its sending device is online.
                    if let (Some(pusher), Item::Message(message)) = (self.push.get(), &entry.item) {
                        pusher.wake(message.conversation, &users, |user| {
                            let online = self.online_devices(user);
                            // The sender's own user (its sending device is
                            // online): its other devices need no wake-up for
                            // what it wrote.
                            (!online.contains(&message.from_device)).then_some(online)
                        });
                    }
                }
                Notice::DeviceRevoked { user, device } => {
                    if let Some(pusher) = self.push.get() {
                        pusher.committed(&Notice::DeviceRevoked { user, device });
                    }
                    self.revoke(user, Some(device))
                }
                Notice::UserRemoved { user } => {
                    if let Some(pusher) = self.push.get() {
                        pusher.committed(&Notice::UserRemoved { user });
                    }
                    self.revoke(user, None)
                }
                notice @ Notice::Push { .. } => {
                    if let Some(pusher) = self.push.get() {
                        pusher.committed(&notice);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imbox_protocol::{Item, Receipt, ReceiptKind};

    fn entry(position: u64) -> Entry {
        Entry {
            position,
            item: Item::Receipt(Receipt {
                conversation: 1,
                chat: "x".into(),
                user: "u".into(),
                kind: ReceiptKind::Read,
                seq: 1,
            }),
        }
    }

    #[test]
    fn entries_reach_every_device_of_the_user_only() {
        let router = Router::new(8);
        let mut a1 = router.register(1, 10);
        let mut a2 = router.register(1, 11);
        let mut b = router.register(2, 20);
        assert!(a1.first && !a2.first && b.first);
        router.committed(vec![Notice::Entry { users: Arc::from([1]), entry: Arc::new(entry(1)) }]);
        assert!(matches!(a1.inbox.queue.try_recv(), Ok(Push::Entry(e)) if e.position() == 1));
        assert!(matches!(a2.inbox.queue.try_recv(), Ok(Push::Entry(e)) if e.position() == 1));
        assert!(b.inbox.queue.try_recv().is_err());
    }

    #[test]
    fn a_shared_entry_encodes_as_the_protocol_frame() {
        let message = Entry {
            position: 7,
            item: Item::Message(imbox_protocol::Message {
                conversation: 3,
                chat: "#ops".into(),
                seq: 2,
                from: "alice".into(),
                from_device: 5,
                id: "m-1".into(),
                sent_at: 1_700_000_000_000,
                text: "héllo".into(),
                attachments: Vec::new(),
            }),
        };
        for entry in [message, entry(9)] {
            let expected =
                imbox_protocol::ServerFrame::Event { event: Event::Entry { entry: entry.clone() } };
            let shared = SharedEntry::new(Arc::new(entry));
            assert_eq!(&shared.frame()[..], &expected.encode()[..]);
            // Encoded once: later calls hand out the same bytes.
            assert_eq!(shared.frame().as_ptr(), shared.frame().as_ptr());
        }
    }

    #[test]
    fn a_full_queue_flags_the_session_as_lagging() {
        let router = Router::new(2);
        let reg = router.register(1, 10);
        let notices =
            (1..=3).map(|p| Notice::Entry { users: Arc::from([1]), entry: Arc::new(entry(p)) }).collect();
        router.committed(notices);
        assert!(reg.inbox.signal.take_lagged());
        assert!(!reg.inbox.signal.take_lagged());
    }

    #[test]
    fn revocation_reaches_only_that_device() {
        let router = Router::new(4);
        let mut a1 = router.register(1, 10);
        let mut a2 = router.register(1, 11);
        router.committed(vec![Notice::DeviceRevoked { user: 1, device: 11 }]);
        assert!(a1.inbox.queue.try_recv().is_err());
        assert!(matches!(a2.inbox.queue.try_recv(), Ok(Push::Revoked)));
    }

    #[test]
    fn last_session_out_reports_offline() {
        let router = Router::new(4);
        let a = router.register(1, 10);
        let b = router.register(1, 11);
        assert!(!router.unregister(1, a.session));
        assert!(router.unregister(1, b.session));
        assert!(!router.is_online(1));
        assert_eq!(router.sessions(), 0);
    }
}
