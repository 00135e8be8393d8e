//! Rate limits: sends per session, and failed logins per account and per
//! address.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

/// Sends (and typing notices) of one session: a token bucket.
#[derive(Debug)]
pub struct SendLimit(DefaultDirectRateLimiter);

impl SendLimit {
    pub fn new(per_second: u32, burst: u32) -> SendLimit {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        SendLimit(RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)))
    }

    /// `Ok` when the send may go now, else how long to wait.
    pub fn check(&self) -> Result<(), Duration> {
        self.0.check().map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Failed logins, counted per account name and per client address in
/// one-minute windows. Only failures count, so a family behind one router
/// logging in is never slowed, while guessing is. A success clears the
/// account's count.
#[derive(Debug)]
pub struct LoginLimit {
    per_minute: u32,
    accounts: Mutex<Failures<String>>,
    addresses: Mutex<Failures<IpAddr>>,
}

/// Keys tracked at most; past that, expired windows are dropped, and if that
/// is not enough the oldest half goes, so memory stays bounded under a flood.
const MAX_TRACKED: usize = 100_000;
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Failures<K> {
    windows: HashMap<K, (u32, Instant)>,
}

impl<K: Hash + Eq + Clone> Failures<K> {
    fn wait(&self, key: &K, limit: u32, now: Instant) -> Option<Duration> {
        let &(count, started) = self.windows.get(key)?;
        let ends = started + WINDOW;
        (count >= limit && ends > now).then(|| ends - now)
    }

    fn fail(&mut self, key: K, now: Instant) {
        if self.windows.len() >= MAX_TRACKED && !self.windows.contains_key(&key) {
            self.windows.retain(|_, (_, started)| *started + WINDOW > now);
            if self.windows.len() >= MAX_TRACKED {
                let mut starts: Vec<Instant> = self.windows.values().map(|w| w.1).collect();
                starts.sort_unstable();
                let cut = starts[starts.len() / 2];
                self.windows.retain(|_, (_, started)| *started > cut);
            }
        }
        let window = self.windows.entry(key).or_insert((0, now));
        if window.1 + WINDOW <= now {
            *window = (0, now);
        }
        window.0 += 1;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LoginLimit {
    pub fn new(per_minute: u32) -> LoginLimit {
        LoginLimit {
            per_minute: per_minute.max(1),
            accounts: Mutex::new(Failures { windows: HashMap::new() }),
            addresses: Mutex::new(Failures { windows: HashMap::new() }),
        }
    }

    /// `Ok` when another attempt is allowed now, else how long to wait.
    pub fn allowed(&self, account: &str, address: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let by_account = lock(&self.accounts).wait(&account.to_owned(), self.per_minute, now);
        let by_address = lock(&self.addresses).wait(&address, self.per_minute, now);
        match by_account.max(by_address) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failed attempt.
    pub fn failed(&self, account: &str, address: IpAddr) {
        let now = Instant::now();
        lock(&self.accounts).fail(account.to_owned(), now);
        lock(&self.addresses).fail(address, now);
    }

    /// Forgets an account's failures after a successful login.
    pub fn succeeded(&self, account: &str) {
        lock(&self.accounts).windows.remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_lock_the_account_and_the_address_for_a_minute() {
        let limit = LoginLimit::new(3);
        let home: IpAddr = [192, 0, 2, 1].into();
        let other: IpAddr = [192, 0, 2, 2].into();
        for _ in 0..3 {
            assert!(limit.allowed("alice", home).is_ok());
            limit.failed("alice", home);
        }
        assert!(limit.allowed("alice", home).is_err());
        // The account is locked from anywhere, the address for any account.
        assert!(limit.allowed("alice", other).is_err());
        assert!(limit.allowed("bob", home).is_err());
        assert!(limit.allowed("bob", other).is_ok());
        tokio::time::advance(WINDOW).await;
        assert!(limit.allowed("alice", home).is_ok());
    }

    #[test]
    fn sends_beyond_the_burst_must_wait() {
        let limit = SendLimit::new(1, 3);
        for _ in 0..3 {
            assert!(limit.check().is_ok());
        }
        let wait = limit.check().unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
    }
}
