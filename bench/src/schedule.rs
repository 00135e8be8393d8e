//! The open-loop send schedule of one load step, and the random choices of
//! sender and recipient.
//!
//! Open loop: send `k` of a step is due at `k / rate` seconds after the step
//! starts, whatever the acknowledgements do. A closed loop (send, wait for the
//! answer, send again) would slow down with the server and so understate its
//! latency under load.

use std::time::Duration;

/// When each send of one step is due.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    total: u64,
}

impl Schedule {
    /// `rate` sends per second for `duration`.
    pub fn new(rate: u32, duration: Duration) -> Schedule {
        let rate = f64::from(rate.max(1));
        Schedule { rate, total: (rate * duration.as_secs_f64()).round() as u64 }
    }

    /// How many sends the step has in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// How many sends are due once `elapsed` has passed since the start (send
    /// 0 is due at once).
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        let due = (elapsed.as_secs_f64() * self.rate).floor() as u64 + 1;
        due.min(self.total)
    }

    /// When send `k` is due, in microseconds after the start.
    pub fn offset_us(&self, k: u64) -> u64 {
        (k as f64 * 1_000_000.0 / self.rate).round() as u64
    }
}

/// A small, fast, seedable random number generator (SplitMix64): the load
/// only needs well-spread choices, and a fixed seed makes runs repeatable.
#[derive(Debug, Clone)]
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        // The modulo bias is below 1e-9 for any n this program uses.
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// A number in `0..n` other than `not` (`n` > 1).
    pub fn other_than(&mut self, n: usize, not: usize) -> usize {
        let pick = self.below(n.saturating_sub(1).max(1));
        if pick >= not {
            pick + 1
        } else {
            pick
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_issues_rate_times_seconds_sends_evenly() {
        let step = Schedule::new(1000, Duration::from_secs(3));
        assert_eq!(step.total(), 3000);
        assert_eq!(step.due_by(Duration::ZERO), 1);
        assert_eq!(step.due_by(Duration::from_micros(999)), 1);
        assert_eq!(step.due_by(Duration::from_millis(1)), 2);
        assert_eq!(step.due_by(Duration::from_millis(1500)), 1501);
        assert_eq!(step.due_by(Duration::from_secs(60)), 3000, "never more than the step holds");
        assert_eq!(step.offset_us(0), 0);
        assert_eq!(step.offset_us(1500), 1_500_000);
        assert_eq!(step.offset_us(2999), 2_999_000);
    }

    #[test]
    fn fractional_rates_are_kept() {
        let step = Schedule::new(3, Duration::from_secs(2));
        assert_eq!(step.total(), 6);
        assert_eq!(step.offset_us(1), 333_333);
        assert_eq!(step.due_by(Duration::from_millis(700)), 3);
    }

    #[test]
    fn the_other_pick_is_never_the_excluded_one_and_covers_the_rest() {
        let mut dice = Dice::new(7);
        let mut seen = [0u32; 5];
        for _ in 0..10_000 {
            let pick = dice.other_than(5, 2);
            assert_ne!(pick, 2);
            seen[pick] += 1;
        }
        assert_eq!(seen[2], 0);
        for (i, count) in seen.iter().enumerate() {
            if i != 2 {
                assert!((2000..3000).contains(count), "{i}: {count}");
            }
        }
    }
}
