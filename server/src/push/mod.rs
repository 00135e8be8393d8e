//! Push wake-ups: when a message arrives for a device that registered a
//! push endpoint and has no session, the box POSTs a content-free wake-up
//! to that endpoint — RFC 8291 encrypted (`aes128gcm`, RFC 8188), signed
//! with the box's VAPID key (RFC 8292). Web Push (browsers) and
//! UnifiedPush (Android without Google) are sent the same way.
//!
//! Layout:
//! - [`Pusher`] (here): the registrations in memory, the bounded queue of
//!   wake-ups, the senders, and the counters the admin pages show.
//! - [`vapid`]: the box's VAPID key and the `Authorization` header.
//! - [`delivery`]: one HTTPS request to a push service.
//! - [`health`]: what the admin pages show of it.
//!
//! Delivery never waits for any of this: the router offers each new
//! message with [`Pusher::wake`], which only flips a flag and `try_send`s
//! on a bounded queue from the writer thread. At most one wake-up per
//! device waits at a time (later messages only update its conversation),
//! and one device is woken at most every `push.min_interval_s`.

pub mod delivery;
pub mod health;
pub mod vapid;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use web_push_native::p256;

use crate::config::PushConfig;
use crate::store::push::{PushOp, PushRecord};
use crate::store::{Notice, Store, WriteOp};
use delivery::{Delivery, PushRequest};
use health::{Health, Outcome};
use vapid::Vapid;

/// The `Topic` of every wake-up: a push service keeps only the newest
/// undelivered message of one topic, so a phone that was unreachable gets
/// one wake-up, not one per message.
const TOPIC: &str = "imbox-wake";

/// The first retry waits about this long; each later one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Why push could not start.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The VAPID key.
    #[error(transparent)]
    Vapid(#[from] vapid::VapidError),
    /// The extra CA file.
    #[error(transparent)]
    Ca(#[from] delivery::CaError),
    /// The registrations could not be read.
    #[error("cannot read the push registrations: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Why a registration is refused (to the client: `invalid_argument`).
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// A field breaks the protocol's rules.
    #[error(transparent)]
    Fields(#[from] imbox_protocol::push::PushError),
    /// `p256dh` is 65 bytes but not a point on P-256.
    #[error("p256dh is not a point on the P-256 curve; pass the key the push subscription gave")]
    NotOnCurve,
}

/// A device's registration as the sender uses it.
#[derive(Debug)]
struct Target {
    user: u64,
    record: Arc<PushRecord>,
    url: url::Url,
    public: p256::PublicKey,
    /// A wake-up waits in the queue (not yet tried).
    queued: bool,
    /// The conversation of the newest message it wakes the device for.
    conversation: u64,
    /// When the last wake-up was first tried.
    last_sent: Option<Instant>,
}

impl Target {
    fn new(user: u64, record: Arc<PushRecord>) -> Option<Target> {
        let url = url::Url::parse(&record.endpoint).ok()?;
        let public = p256::PublicKey::from_sec1_bytes(&record.p256dh).ok()?;
        Some(Target { user, record, url, public, queued: false, conversation: 0, last_sent: None })
    }
}

/// The registrations, by device and by user.
#[derive(Debug, Default)]
struct Registry {
    devices: HashMap<u64, Target>,
    by_user: HashMap<u64, Vec<u64>>,
}

impl Registry {
    fn insert(&mut self, device: u64, target: Target) {
        let user = target.user;
        if let Some(old) = self.devices.insert(device, target) {
            self.forget_user_device(old.user, device);
        }
        self.by_user.entry(user).or_default().push(device);
    }

    fn remove(&mut self, device: u64) -> Option<Target> {
        let old = self.devices.remove(&device)?;
        self.forget_user_device(old.user, device);
        Some(old)
    }

    fn forget_user_device(&mut self, user: u64, device: u64) {
        if let Some(list) = self.by_user.get_mut(&user) {
            list.retain(|&d| d != device);
            if list.is_empty() {
                self.by_user.remove(&user);
            }
        }
    }
}

/// The push sender, shared by the router (which wakes), the sessions
/// (which register) and the admin pages (which look).
#[derive(Debug)]
pub struct Pusher {
    config: PushConfig,
    vapid: Vapid,
    delivery: Delivery,
    store: Store,
    registry: Mutex<Registry>,
    queue: mpsc::Sender<u64>,
    queue_rx: Mutex<Option<mpsc::Receiver<u64>>>,
    /// Wake-ups queued and not yet tried: the queue's bound.
    waiting: AtomicUsize,
    permits: Arc<Semaphore>,
    health: Health,
}

impl Pusher {
    /// Loads the VAPID key (making it on first start, in `data_dir`) and
    /// the registrations.
    pub fn open(config: &PushConfig, data_dir: &Path, store: Store) -> Result<Pusher, PushError> {
        let vapid = Vapid::load_or_create(&data_dir.join("push-vapid.pem"))?;
        let extra_ca =
            (!config.extra_ca_file.as_os_str().is_empty()).then_some(config.extra_ca_file.as_path());
        let delivery = Delivery::new(
            extra_ca,
            Duration::from_millis(config.connect_timeout_ms),
            Duration::from_millis(config.request_timeout_ms),
        )?;
        let mut registry = Registry::default();
        for (device, record) in store.push_registrations()? {
            let user = record.user;
            match Target::new(user, Arc::new(record)) {
                Some(target) => registry.insert(device, target),
                None => tracing::warn!(device, "a stored push registration cannot be used; it is ignored"),
            }
        }
        let (queue, rx) = mpsc::channel(config.queue as usize);
        Ok(Pusher {
            config: config.clone(),
            vapid,
            delivery,
            store,
            registry: Mutex::new(registry),
            queue,
            queue_rx: Mutex::new(Some(rx)),
            waiting: AtomicUsize::new(0),
            permits: Arc::new(Semaphore::new(config.concurrency as usize)),
            health: Health::default(),
        })
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Plain data: still consistent after a panic elsewhere.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The VAPID public key (base64url), for `push_key`.
    pub fn public_key(&self) -> &str {
        self.vapid.public_key()
    }

    /// Checks a registration's fields, the curve included.
    pub fn check(endpoint: &str, p256dh: &str, auth: &str) -> Result<PushOpFields, RegistrationError> {
        let checked = imbox_protocol::push::check_registration(endpoint, p256dh, auth)?;
        p256::PublicKey::from_sec1_bytes(&checked.p256dh).map_err(|_| RegistrationError::NotOnCurve)?;
        Ok(PushOpFields {
            endpoint: endpoint.to_owned(),
            p256dh: checked.p256dh.to_vec(),
            auth: checked.auth,
        })
    }

    /// Wakes the devices of `users` that have a registration and are not
    /// among `online(user)` (the devices with a session; `None` when none
    /// of the user's devices is to be woken), for a message in
    /// `conversation`. Called on the writer thread: takes short locks,
    /// never waits.
    pub fn wake(&self, conversation: u64, users: &[u64], online: impl Fn(u64) -> Option<Vec<u64>>) {
        let mut registry = self.registry();
        if registry.by_user.is_empty() {
            return;
        }
        for &user in users {
            let Some(devices) = registry.by_user.get(&user) else { continue };
            let devices = devices.clone();
            let Some(online) = online(user) else { continue };
            for device in devices.into_iter().filter(|d| !online.contains(d)) {
                let Some(target) = registry.devices.get_mut(&device) else { continue };
                target.conversation = conversation;
                if target.queued {
                    self.health.coalesced();
                    continue;
                }
                if self.waiting.load(Ordering::Relaxed) >= self.config.queue as usize {
                    self.health.dropped();
                    continue;
                }
                if self.queue.try_send(device).is_ok() {
                    target.queued = true;
                    self.waiting.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.health.dropped();
                }
            }
        }
    }

    /// Keeps the registrations in step with what was committed.
    pub fn committed(&self, notice: &Notice) {
        let mut registry = self.registry();
        match notice {
            Notice::Push { user, device, registration: Some(record) } => {
                match Target::new(*user, record.clone()) {
                    Some(target) => registry.insert(*device, target),
                    None => tracing::warn!(device, "a push registration cannot be used; it is ignored"),
                }
            }
            Notice::Push { device, registration: None, .. } | Notice::DeviceRevoked { device, .. } => {
                registry.remove(*device);
            }
            Notice::UserRemoved { user } => {
                for device in registry.by_user.get(user).cloned().unwrap_or_default() {
                    registry.remove(device);
                }
            }
            Notice::Entry { .. } => {}
        }
    }

    /// What the admin pages show.
    pub fn report(&self) -> health::Report {
        let registry = self.registry();
        let hosts =
            registry.devices.values().map(|t| (t.record.kind.as_str(), t.url.host_str().unwrap_or("")));
        self.health.report(hosts, self.waiting.load(Ordering::Relaxed), self.config.queue, self.public_key())
    }

    /// Sends the queued wake-ups until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let rx = self.queue_rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut rx) = rx else { return };
        let tasks = TaskTracker::new();
        loop {
            let device = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                device = rx.recv() => match device { Some(d) => d, None => break },
            };
            let pusher = self.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move {
                tokio::select! {
                    biased;
                    () = stop.cancelled() => {}
                    () = pusher.wake_device(device) => {}
                }
            });
        }
        tasks.close();
        tasks.wait().await;
    }

    /// One wake-up of one device, with its retries.
    async fn wake_device(&self, device: u64) {
        let mut backoff = FIRST_BACKOFF;
        let max_backoff = Duration::from_secs(self.config.max_backoff_s.into());
        let min_interval = Duration::from_secs(self.config.min_interval_s.into());
        // Not sooner than the minimum interval after the previous one:
        // messages meanwhile join this wake-up.
        let last = self.registry().devices.get(&device).and_then(|t| t.last_sent);
        if let Some(wait) = last.map(|at| min_interval.saturating_sub(at.elapsed())).filter(|w| !w.is_zero())
        {
            tokio::time::sleep(wait).await;
        }
        for attempt in 1..=self.config.attempts {
            let Ok(_permit) = self.permits.acquire().await else { return };
            let Some((request, endpoint)) = self.request_for(device, attempt == 1) else { return };
            let host = request.url.host_str().unwrap_or("").to_owned();
            let wait = match self.delivery.send(&request).await {
                Ok(answer) if answer.status.is_success() => {
                    self.health.record(&host, Outcome::Sent);
                    tracing::debug!(device, %host, "push wake-up sent");
                    return;
                }
                Ok(answer) if matches!(answer.status.as_u16(), 404 | 410) => {
                    self.health.record(&host, Outcome::Gone(answer.status.as_u16()));
                    tracing::info!(device, %host, status = answer.status.as_u16(), "the push subscription is gone; its registration is removed");
                    let op = WriteOp::Push(PushOp::Gone { device, endpoint });
                    if let Err(e) = self.store.write(op).await {
                        tracing::warn!(device, error = %e, "the gone push registration could not be removed");
                    }
                    return;
                }
                Ok(answer) if answer.status.as_u16() == 429 || answer.status.is_server_error() => {
                    let error = format!("{host} answered {} (will retry)", answer.status);
                    self.health.record(&host, Outcome::Retry(error.clone()));
                    tracing::info!(device, %host, status = answer.status.as_u16(), attempt, "push refused for now");
                    answer.retry_after
                }
                Ok(answer) => {
                    let error = format!(
                        "{host} refused the wake-up with {} — the subscription may belong to another \
                         server key; the device should turn push off and on again",
                        answer.status
                    );
                    self.health.record(&host, Outcome::Failed(error));
                    tracing::warn!(device, %host, status = answer.status.as_u16(), "push refused");
                    return;
                }
                Err(e) => {
                    self.health.record(&host, Outcome::Retry(e.to_string()));
                    tracing::info!(device, %host, error = %e, attempt, "push failed");
                    None
                }
            };
            if attempt == self.config.attempts {
                break;
            }
            drop(_permit);
            let wait = jitter(backoff).max(wait.unwrap_or_default()).min(max_backoff);
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(max_backoff);
        }
        self.health.gave_up();
        tracing::warn!(device, attempts = self.config.attempts, "push wake-up given up");
    }

    /// The request for the device's wake-up now, and the endpoint it goes
    /// to; `None` when the device has no registration any more. The first
    /// try takes the wake-up off the queue: a message after it queues the
    /// next one.
    fn request_for(&self, device: u64, first: bool) -> Option<(PushRequest, String)> {
        let mut registry = self.registry();
        let target = registry.devices.get_mut(&device);
        if first {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        let target = target?;
        self.health.tried();
        if first {
            target.queued = false;
            target.last_sent = Some(Instant::now());
        }
        let payload = serde_json::json!({ "conversation": target.conversation }).to_string();
        let auth = web_push_native::Auth::clone_from_slice(&target.record.auth);
        let body = match web_push_native::encrypt(payload.into_bytes(), &target.public, &auth) {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(device, error = %e, "a push payload could not be encrypted");
                return None;
            }
        };
        let url = target.url.clone();
        let origin = url.origin().ascii_serialization();
        let authorization =
            match self.vapid.authorization(&origin, &self.config.contact, crate::store::now_ms() / 1000) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(device, error = %e, "a push request could not be signed");
                    return None;
                }
            };
        let header = |v: &str| HeaderValue::from_str(v).ok();
        let headers = [
            (AUTHORIZATION, header(&authorization)),
            (CONTENT_ENCODING, header("aes128gcm")),
            (CONTENT_TYPE, header("application/octet-stream")),
            (HeaderName::from_static("ttl"), header(&self.config.ttl_s.to_string())),
            (HeaderName::from_static("urgency"), header("high")),
            (HeaderName::from_static("topic"), header(TOPIC)),
        ];
        let headers = headers.into_iter().filter_map(|(name, value)| Some((name, value?))).collect();
        Some((PushRequest { url, headers, body }, target.record.endpoint.clone()))
    }
}

/// A registration's fields once checked: what [`PushOp::Register`] stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOpFields {
    pub endpoint: String,
    pub p256dh: Vec<u8>,
    pub auth: [u8; 16],
}

/// Between half and all of `wait`, so that many devices failing together
/// (a push service down) do not retry in step.
fn jitter(wait: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    wait.mul_f64(0.5 + f64::from(byte[0]) / 510.0)
}
