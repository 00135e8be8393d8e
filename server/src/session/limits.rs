//! Rate limits: sends per device and per user, and failed logins per
//! (account, address) and per address.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

/// How many times one device's rate all the devices of one user may send
/// together: a user may type on a phone and a laptop at once at full speed,
/// but a dozen devices (or a script logged in a dozen times) cannot multiply
/// the rate by a dozen.
pub const USER_SENDS_FACTOR: u32 = 2;

/// Sends (and typing notices): a token bucket per device and one per user,
/// shared by every session of that device or user. Per session, a client
/// could open a second session with the same token and send at twice the
/// rate.
#[derive(Debug)]
pub struct SendLimit {
    devices: DefaultKeyedRateLimiter<u64>,
    users: DefaultKeyedRateLimiter<u64>,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl SendLimit {
    /// `per_second` and `burst` for each device; [`USER_SENDS_FACTOR`] times
    /// that for each user.
    pub fn new(per_second: u32, burst: u32) -> SendLimit {
        let f = USER_SENDS_FACTOR;
        SendLimit {
            devices: RateLimiter::keyed(quota(per_second, burst)),
            users: RateLimiter::keyed(quota(per_second.saturating_mul(f), burst.saturating_mul(f))),
        }
    }

    /// `Ok` when `device` of `user` may send now, else how long to wait.
    pub fn check(&self, user: u64, device: u64) -> Result<(), Duration> {
        self.forget_idle();
        // The limiter's own clock: making a new one (`DefaultClock::default()`)
        // calibrates quanta's clock with `cpuid`, which traps to the
        // hypervisor in a virtual machine: a quarter of the session threads'
        // time went there under the chat load.
        let now = self.devices.clock().now();
        self.devices.check_key(&device).map_err(|not_until| not_until.wait_time_from(now))?;
        self.users.check_key(&user).map_err(|not_until| not_until.wait_time_from(now))
    }

    /// Keeps memory bounded: past [`MAX_TRACKED`] keys, buckets that have
    /// refilled (they limit nothing) are dropped.
    fn forget_idle(&self) {
        for limiter in [&self.devices, &self.users] {
            if limiter.len() >= MAX_TRACKED {
                limiter.retain_recent();
            }
        }
    }
}

/// Failed logins in one-minute windows, counted per (account name, client
/// address) and per client address. Only failures count, so a family behind
/// one router logging in is never slowed, while guessing is. Nothing is
/// counted per account alone: a stranger who knows a user name would then
/// lock its owner out from everywhere. A success clears that pair's count.
#[derive(Debug)]
pub struct LoginLimit {
    per_minute: u32,
    pairs: Mutex<Failures<(String, IpAddr)>>,
    addresses: Mutex<Failures<IpAddr>>,
}

/// How many times the failures allowed for one (account, address) one
/// address may make over all accounts: a household behind one router may
/// mistype several passwords, while one address cannot try many accounts.
pub const ADDRESS_FACTOR: u32 = 3;

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
            pairs: Mutex::new(Failures { windows: HashMap::new() }),
            addresses: Mutex::new(Failures { windows: HashMap::new() }),
        }
    }

    /// `Ok` when another attempt is allowed now, else how long to wait.
    pub fn allowed(&self, account: &str, address: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let by_pair = lock(&self.pairs).wait(&(account.to_owned(), address), self.per_minute, now);
        let per_address = self.per_minute.saturating_mul(ADDRESS_FACTOR);
        let by_address = lock(&self.addresses).wait(&address, per_address, now);
        match by_pair.max(by_address) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failed attempt.
    pub fn failed(&self, account: &str, address: IpAddr) {
        let now = Instant::now();
        lock(&self.pairs).fail((account.to_owned(), address), now);
        lock(&self.addresses).fail(address, now);
    }

    /// Forgets the failures of `account` from `address` after a successful
    /// login there (the address's own count stays).
    pub fn succeeded(&self, account: &str, address: IpAddr) {
        lock(&self.pairs).windows.remove(&(account.to_owned(), address));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_lock_the_pair_then_the_address_for_a_minute_but_never_the_account() {
        let limit = LoginLimit::new(3);
        let stranger: IpAddr = [192, 0, 2, 1].into();
        let home: IpAddr = [192, 0, 2, 2].into();
        for _ in 0..3 {
            assert!(limit.allowed("alice", stranger).is_ok());
            limit.failed("alice", stranger);
        }
        assert!(limit.allowed("alice", stranger).is_err());
        // The owner, elsewhere, is not locked out of her account.
        assert!(limit.allowed("alice", home).is_ok());
        // The stranger's address may still try other accounts, up to its own limit.
        for i in 0..(3 * ADDRESS_FACTOR - 3) {
            let account = format!("user{i}");
            assert!(limit.allowed(&account, stranger).is_ok());
            limit.failed(&account, stranger);
        }
        assert!(limit.allowed("bob", stranger).is_err(), "the address is locked for every account");
        assert!(limit.allowed("bob", home).is_ok());
        tokio::time::advance(WINDOW).await;
        assert!(limit.allowed("alice", stranger).is_ok());
    }

    #[test]
    fn sends_beyond_the_burst_must_wait_per_device_and_per_user() {
        let limit = SendLimit::new(1, 3);
        for _ in 0..3 {
            assert!(limit.check(1, 10).is_ok());
        }
        let wait = limit.check(1, 10).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        // Another device of the same user has its own bucket, but the user's
        // (twice one device's) runs out too.
        for _ in 0..3 {
            assert!(limit.check(1, 11).is_ok());
        }
        assert!(limit.check(1, 12).is_err(), "the user's devices together are limited");
        assert!(limit.check(2, 20).is_ok(), "another user is not");
    }
}
