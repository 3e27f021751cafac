//! Counters and latency histograms: lock-free atomics, so recording on the
//! delivery path costs a few increments.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Sub-buckets per power of two: about 6 % resolution.
const SUB: u32 = 16;
const SUB_BITS: u32 = 4;
/// Largest exponent kept (2^36 µs is 19 hours; longer is clamped).
const MAX_EXP: u32 = 36;
const BUCKETS: usize = ((MAX_EXP - SUB_BITS + 2) * SUB) as usize;

/// A log-linear histogram of durations in microseconds.
pub struct Histogram {
    counts: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }
}

fn index(us: u64) -> usize {
    let us = us.min((1u64 << (MAX_EXP + 1)) - 1);
    if us < SUB as u64 {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros(); // >= SUB_BITS
    let sub = (us >> (exp - SUB_BITS)) & (SUB as u64 - 1);
    ((exp - SUB_BITS + 1) * SUB) as usize + sub as usize
}

/// The middle of bucket `i`, in microseconds.
fn value(i: usize) -> f64 {
    let i = i as u32;
    if i < SUB {
        return i as f64;
    }
    let exp = i / SUB + SUB_BITS - 1;
    let sub = (i % SUB) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    let low = (1u64 << exp) + sub * width;
    low as f64 + width as f64 / 2.0
}

impl Histogram {
    pub fn record(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.counts[index(us)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_us.load(Relaxed))
    }

    /// Quantiles (0..=1) in milliseconds; `None` while empty.
    pub fn quantiles_ms(&self, qs: &[f64]) -> Vec<Option<f64>> {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        qs.iter()
            .map(|q| {
                if total == 0 {
                    return None;
                }
                let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
                let mut seen = 0;
                for (i, c) in counts.iter().enumerate() {
                    seen += c;
                    if seen >= rank {
                        return Some(value(i) / 1000.0);
                    }
                }
                None
            })
            .collect()
    }

    /// Cumulative counts at Prometheus-style upper bounds (seconds); a sample is
    /// counted under the first bound at or above its bucket's middle.
    pub fn cumulative(&self, bounds_s: &[f64]) -> Vec<(f64, u64)> {
        let mut out: Vec<(f64, u64)> = bounds_s.iter().map(|b| (*b, 0)).collect();
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Relaxed);
            if n == 0 {
                continue;
            }
            let v = value(i) / 1e6;
            for (b, cum) in out.iter_mut() {
                if v <= *b {
                    *cum += n;
                }
            }
        }
        out
    }
}

/// Bounds used for [`crate::MetricsSnapshot::latency_buckets`], in seconds.
pub const LATENCY_BOUNDS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Engine-wide counters.
#[derive(Default)]
pub struct Counters {
    pub publishes: AtomicU64,
    pub deliveries_ok: AtomicU64,
    pub attempts_failed: AtomicU64,
    pub abandoned: AtomicU64,
    pub dropped: AtomicU64,
    pub retries_pending: AtomicU64,
    pub in_flight: AtomicU64,
    pub confirmations_sent: AtomicU64,
    pub latency: Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_close() {
        let h = Histogram::default();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let q = h.quantiles_ms(&[0.5, 0.99]);
        let (p50, p99) = (q[0].unwrap(), q[1].unwrap());
        assert!((p50 - 500.0).abs() / 500.0 < 0.07, "{p50}");
        assert!((p99 - 990.0).abs() / 990.0 < 0.07, "{p99}");
        assert_eq!(h.count(), 1000);
        let cum = h.cumulative(&[0.1, 1.0, 10.0]);
        assert!((95..=105).contains(&cum[0].1), "{cum:?}");
        assert_eq!(cum[2].1, 1000);
        assert_eq!(Histogram::default().quantiles_ms(&[0.5]), vec![None]);
        // Tiny and huge values do not panic.
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(10_000_000));
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut last = -1.0;
        for i in 0..BUCKETS {
            let v = value(i);
            assert!(v > last, "{i}");
            last = v;
        }
        for us in [0u64, 15, 16, 17, 1000, 123_456, 1 << 40] {
            assert!(index(us) < BUCKETS);
        }
    }
}
