//! API Gateway's usage plan, as HQ enforces it in the all-in-one mode: a token
//! bucket per key (rate and burst) and an optional daily quota.

use std::time::Instant;

use crate::clock::{Millis, DAY_MS};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UsagePlan {
    /// Steady requests per second per key.
    pub rate: f64,
    /// Bucket size: how many requests may arrive at once.
    pub burst: u32,
    /// Requests per key per UTC day, if limited.
    pub quota_per_day: Option<u64>,
}

impl Default for UsagePlan {
    fn default() -> Self {
        Self {
            rate: 100.0,
            burst: 200,
            quota_per_day: None,
        }
    }
}

/// What the usage plan says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Over rate/burst: 429 "Too Many Requests".
    Throttled,
    /// Over the daily quota: 429 "Limit Exceeded".
    QuotaExceeded,
}

/// One key's bucket and quota counter. Lives in the key's cache entry behind its
/// own lock, so keys never contend with each other.
#[derive(Debug)]
pub struct Limiter {
    tokens: f64,
    refilled: Instant,
    day: i64,
    used_today: u64,
}

impl Limiter {
    pub fn new(plan: &UsagePlan) -> Self {
        Self {
            tokens: plan.burst as f64,
            refilled: Instant::now(),
            day: 0,
            used_today: 0,
        }
    }

    pub fn admit(&mut self, plan: &UsagePlan, now: Instant, wall: Millis) -> Admission {
        if let Some(quota) = plan.quota_per_day {
            let day = wall.div_euclid(DAY_MS);
            if day != self.day {
                self.day = day;
                self.used_today = 0;
            }
            if self.used_today >= quota {
                return Admission::QuotaExceeded;
            }
        }
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * plan.rate).min(plan.burst as f64);
        if self.tokens < 1.0 {
            return Admission::Throttled;
        }
        self.tokens -= 1.0;
        self.used_today += 1;
        Admission::Admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let plan = UsagePlan {
            rate: 10.0,
            burst: 5,
            quota_per_day: None,
        };
        let mut l = Limiter::new(&plan);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(l.admit(&plan, t0, 0), Admission::Admitted);
        }
        assert_eq!(l.admit(&plan, t0, 0), Admission::Throttled);
        // 100 ms at 10/s refills one token.
        assert_eq!(
            l.admit(&plan, t0 + Duration::from_millis(100), 0),
            Admission::Admitted
        );
        assert_eq!(
            l.admit(&plan, t0 + Duration::from_millis(100), 0),
            Admission::Throttled
        );
    }

    #[test]
    fn quota_resets_each_day() {
        let plan = UsagePlan {
            rate: 1000.0,
            burst: 1000,
            quota_per_day: Some(2),
        };
        let mut l = Limiter::new(&plan);
        let t = Instant::now();
        assert_eq!(l.admit(&plan, t, 5), Admission::Admitted);
        assert_eq!(l.admit(&plan, t, 5), Admission::Admitted);
        assert_eq!(l.admit(&plan, t, 5), Admission::QuotaExceeded);
        assert_eq!(l.admit(&plan, t, DAY_MS + 5), Admission::Admitted);
    }
}
