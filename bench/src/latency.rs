//! Latencies recorded in HDR histograms, and their summary in milliseconds.
//!
//! HDR histograms keep every percentile within 0.1 % at a fixed memory cost,
//! so a long run at a high rate can record every single message instead of a
//! sample.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The longest latency recorded as itself; anything slower counts as this.
const MAX_US: u64 = 120_000_000;

/// Latencies in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    pub fn new() -> Latencies {
        // Three significant figures from 1 µs to two minutes: about 200 KiB.
        match Histogram::new_with_bounds(1, MAX_US, 3) {
            Ok(histogram) => Latencies(histogram),
            // The bounds are constants that hdrhistogram accepts.
            Err(_) => unreachable!("valid histogram bounds"),
        }
    }

    /// Records one latency; values outside the range are clamped to it.
    pub fn record_us(&mut self, us: u64) {
        self.0.saturating_record(us.max(1));
    }

    /// The percentiles in milliseconds.
    pub fn summary(&self) -> Summary {
        let ms = |us: u64| us as f64 / 1000.0;
        if self.0.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.0.len(),
            p50_ms: ms(self.0.value_at_quantile(0.5)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            p999_ms: ms(self.0.value_at_quantile(0.999)),
            max_ms: ms(self.0.max()),
            mean_ms: self.0.mean() / 1000.0,
        }
    }
}

/// A latency distribution as result files report it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many latencies were recorded.
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// The median of some values (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 { sorted[mid] } else { (sorted[mid - 1] + sorted[mid]) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * 0.002 + 0.001
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut latencies = Latencies::new();
        for ms in 1..=1000u64 {
            latencies.record_us(ms * 1000);
        }
        let summary = latencies.summary();
        assert_eq!(summary.count, 1000);
        assert!(close(summary.p50_ms, 500.0), "{summary:?}");
        assert!(close(summary.p99_ms, 990.0), "{summary:?}");
        assert!(close(summary.p999_ms, 999.0), "{summary:?}");
        assert!(close(summary.max_ms, 1000.0), "{summary:?}");
        assert!(close(summary.mean_ms, 500.5), "{summary:?}");
    }

    #[test]
    fn one_slow_message_in_a_thousand_shows_in_max_only() {
        let mut latencies = Latencies::new();
        for _ in 0..999 {
            latencies.record_us(2_000);
        }
        latencies.record_us(3_000_000);
        let summary = latencies.summary();
        assert!(close(summary.p99_ms, 2.0), "{summary:?}");
        assert!(close(summary.p999_ms, 2.0), "{summary:?}");
        assert!(close(summary.max_ms, 3000.0), "{summary:?}");
    }

    #[test]
    fn out_of_range_values_are_clamped_and_empty_is_zero() {
        let mut latencies = Latencies::new();
        assert_eq!(latencies.summary(), Summary::default());
        latencies.record_us(0);
        latencies.record_us(u64::MAX);
        assert_eq!(latencies.summary().count, 2);
        assert!(latencies.summary().max_ms >= 119_000.0);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
