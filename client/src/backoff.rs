//! How long to wait before reconnecting: exponential back-off with jitter.
//!
//! The delay doubles from `initial` up to `max`. Each delay is drawn from the
//! upper half of that range ("equal jitter"), so that the many devices a
//! restarting server drops do not all come back in the same millisecond,
//! while no device retries much sooner than the schedule says.

use std::time::Duration;

/// A back-off schedule and how far along it the client is.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 100 ms doubling to 10 s.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

impl Backoff {
    /// A schedule starting at `initial` and never exceeding `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max: max.max(initial), attempt: 0 }
    }

    /// The ceiling of the delay before retry number `attempt` (from 0).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        // 2^20 × any sane initial delay is far past any sane maximum, and
        // capping the exponent keeps the multiplication from overflowing.
        let factor = 1u32 << attempt.min(20);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry number `attempt`, given a `jitter` in `[0, 1]`:
    /// between half the ceiling and the ceiling.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// The delay before the next retry, with random jitter; advances the
    /// schedule.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.delay(self.attempt, random_unit());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Starts the schedule over, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A random number in `[0, 1)`. Without an entropy source (which never happens
/// on Linux), no jitter is better than no reconnecting.
fn random_unit() -> f64 {
    match getrandom::u64() {
        // The top 53 bits fill an f64 mantissa exactly.
        Ok(bits) => (bits >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_initial_to_max() {
        let backoff = Backoff::default();
        let ceilings: Vec<u64> = (0..10).map(|n| backoff.ceiling(n).as_millis() as u64).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_within_the_upper_half() {
        let backoff = Backoff::default();
        for attempt in [0, 3, 40] {
            let ceiling = backoff.ceiling(attempt);
            assert_eq!(backoff.delay(attempt, 0.0), ceiling / 2);
            assert_eq!(backoff.delay(attempt, 1.0), ceiling);
            assert_eq!(backoff.delay(attempt, 7.0), ceiling, "jitter is clamped");
        }
    }

    #[test]
    fn random_delays_stay_in_bounds_and_reset() {
        let mut backoff = Backoff::default();
        for attempt in 0..30 {
            let delay = backoff.next_delay();
            let ceiling = backoff.ceiling(attempt);
            assert!(delay >= ceiling / 2 && delay <= ceiling, "attempt {attempt}: {delay:?}");
            assert!(delay <= Duration::from_secs(10));
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
