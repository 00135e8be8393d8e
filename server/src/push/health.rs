//! What the admin pages show of push: counters, the queue, and the last
//! success and error per push service host.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// Hosts remembered, at most; beyond it the one heard from longest ago
/// goes (a box has a handful: a browser vendor or two, an ntfy server).
const MAX_HOSTS: usize = 64;

/// How one try ended.
#[derive(Debug)]
pub enum Outcome {
    Sent,
    /// 404 or 410: the registration is removed.
    Gone(u16),
    /// A failure that is retried (429, 5xx, network).
    Retry(String),
    /// A refusal that is not retried (another 4xx).
    Failed(String),
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct HostHealth {
    pub host: String,
    /// Registrations whose endpoint is on this host.
    pub registrations: u64,
    pub sent: u64,
    pub errors: u64,
    /// Milliseconds since the epoch.
    pub last_success_at: Option<u64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<u64>,
    #[serde(skip)]
    last_heard: u64,
}

/// Counters, shared by every sender.
#[derive(Debug, Default)]
pub struct Health {
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    coalesced: AtomicU64,
    retried: AtomicU64,
    removed: AtomicU64,
    tries: AtomicU64,
    last_success_at: AtomicU64,
    hosts: Mutex<BTreeMap<String, HostHealth>>,
}

/// `GET /api/admin/push` (docs/API.md).
#[derive(Debug, Serialize)]
pub struct Report {
    pub enabled: bool,
    /// The VAPID public key (base64url); empty when push is off.
    pub public_key: String,
    /// Registrations by kind (`webpush`, `unifiedpush`).
    pub registrations: BTreeMap<String, u64>,
    /// Wake-ups a push service accepted.
    pub sent: u64,
    /// Wake-ups given up: refused, or failing every try.
    pub failed: u64,
    /// Wake-ups not queued because the queue was full.
    pub dropped: u64,
    /// Messages that joined a wake-up already waiting.
    pub coalesced: u64,
    /// Tries that failed and were tried again.
    pub retried: u64,
    /// Registrations removed because their push service answered 404/410.
    pub removed: u64,
    /// Requests started (first tries and retries). Counted together with
    /// `queue` under one lock: a wake-up is always in one or the other.
    pub tries: u64,
    /// Wake-ups waiting, and the most that may.
    pub queue: u64,
    pub queue_capacity: u64,
    /// Milliseconds since the epoch; absent before the first success.
    pub last_success_at: Option<u64>,
    pub hosts: Vec<HostHealth>,
}

impl Report {
    /// The report of a box with push turned off.
    pub fn disabled() -> Report {
        Report {
            enabled: false,
            public_key: String::new(),
            registrations: BTreeMap::new(),
            sent: 0,
            failed: 0,
            dropped: 0,
            coalesced: 0,
            retried: 0,
            removed: 0,
            tries: 0,
            queue: 0,
            queue_capacity: 0,
            last_success_at: None,
            hosts: Vec::new(),
        }
    }
}

impl Health {
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn coalesced(&self) {
        self.coalesced.fetch_add(1, Ordering::Relaxed);
    }

    /// A request is about to go out (counted under the registry's lock).
    pub fn tried(&self) {
        self.tries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn gave_up(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one try to `host`.
    pub fn record(&self, host: &str, outcome: Outcome) {
        let now = crate::store::now_ms();
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if !hosts.contains_key(host) && hosts.len() >= MAX_HOSTS {
            let oldest = hosts.iter().min_by_key(|(_, h)| h.last_heard).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                hosts.remove(&oldest);
            }
        }
        let entry = hosts
            .entry(host.to_owned())
            .or_insert_with(|| HostHealth { host: host.to_owned(), ..HostHealth::default() });
        entry.last_heard = now;
        let mut error = |e: String| {
            entry.errors += 1;
            entry.last_error = Some(e);
            entry.last_error_at = Some(now);
        };
        match outcome {
            Outcome::Sent => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                self.last_success_at.store(now, Ordering::Relaxed);
                entry.sent += 1;
                entry.last_success_at = Some(now);
            }
            Outcome::Gone(status) => {
                self.removed.fetch_add(1, Ordering::Relaxed);
                error(format!(
                    "{host} answered {status}: the subscription is gone, its registration was removed"
                ));
            }
            Outcome::Retry(e) => {
                self.retried.fetch_add(1, Ordering::Relaxed);
                error(e);
            }
            Outcome::Failed(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                error(e);
            }
        }
    }

    /// The report, with the registrations as (kind, host).
    pub fn report<'a>(
        &self,
        registrations: impl Iterator<Item = (&'a str, &'a str)>,
        queue: usize,
        queue_capacity: u32,
        public_key: &str,
    ) -> Report {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for host in hosts.values_mut() {
            host.registrations = 0;
        }
        let mut kinds = BTreeMap::new();
        for (kind, host) in registrations {
            *kinds.entry(kind.to_owned()).or_insert(0) += 1;
            // Hosts with registrations but no try yet are shown too (up to the bound).
            if hosts.len() < MAX_HOSTS || hosts.contains_key(host) {
                hosts
                    .entry(host.to_owned())
                    .or_insert_with(|| HostHealth { host: host.to_owned(), ..HostHealth::default() })
                    .registrations += 1;
            }
        }
        let last = self.last_success_at.load(Ordering::Relaxed);
        Report {
            enabled: true,
            public_key: public_key.to_owned(),
            registrations: kinds,
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            removed: self.removed.load(Ordering::Relaxed),
            tries: self.tries.load(Ordering::Relaxed),
            queue: queue as u64,
            queue_capacity: queue_capacity.into(),
            last_success_at: (last > 0).then_some(last),
            hosts: hosts.into_values().collect(),
        }
    }
}
