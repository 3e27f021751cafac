//! What to publish when: plain, clock-injected code with no I/O.
//!
//! Time is a [`Duration`] since an origin the caller picks (the runner's start
//! instant, or the Unix epoch for a scheduled Lambda). Base orders of a topic
//! fall at `anchor + k * 60 s / rate` for k = 1, 2, ...: each instant is computed
//! from the anchor, never by adding up sleeps, so there is no drift over hours.
//! Changing the rate (or un-pausing) re-anchors at the change, so a new rate
//! applies at once, without a burst or a gap.
//!
//! The malformed share is exact and evenly spread: order k is malformed when
//! `floor((k+1)·share) > floor(k·share)`, so any window of n orders holds
//! n·share ± 1 malformed ones; the malformed body rotates through plausible-
//! but-wrong variants for the topic.

use std::collections::VecDeque;
use std::time::Duration;

use hq_core::domain::{Rate, TopicName};

/// Orders due longer ago than this are skipped (counted), not sent in a burst,
/// e.g. after the laptop slept.
pub const MAX_LATENESS: Duration = Duration::from_secs(5);
pub use hq_core::domain::{MAX_RUNNING_SURGES, MAX_SURGE_COUNT, MAX_SURGE_SECONDS};

/// One order to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub topic: TopicName,
    /// When it is due.
    pub at: Duration,
    /// The exact message body.
    pub body: &'static str,
    pub malformed: bool,
}

/// Plausible-but-wrong bodies, for the debugging lab.
pub fn malformed_bodies(topic: TopicName) -> &'static [&'static str] {
    match topic {
        TopicName::Orders => &[
            r#"{"bundle": "1"}"#,
            r#"{"bundel": 1}"#,
            "bundle",
            r#"{"bundle": 1, "extra": true}"#,
        ],
        TopicName::Iridium => &[
            r#"{"iridium": "1"}"#,
            r#"{"iridium": 1, "magnesite": 1}"#,
            "iridium",
            r#"{"magnesite": 1}"#,
        ],
        TopicName::Magnesite => &[
            r#"{"iridium": "1"}"#,
            r#"{"magnesite": 1, "iridium": 0}"#,
            "magnesite",
            r#"{"magnesite": "one"}"#,
        ],
    }
}

/// Whether the `k`-th order (0-based) under `share` is malformed.
pub fn is_malformed(k: u64, share: f64) -> bool {
    if share.is_nan() || share <= 0.0 {
        return false;
    }
    let share = share.min(1.0);
    ((k + 1) as f64 * share).floor() > (k as f64 * share).floor()
}

/// The body of the `k`-th order of a topic (well-formed or not).
pub fn body_for(topic: TopicName, k: u64, share: f64, malformed_seen: u64) -> (&'static str, bool) {
    if is_malformed(k, share) {
        let list = malformed_bodies(topic);
        (list[(malformed_seen % list.len() as u64) as usize], true)
    } else {
        (topic.order_message(), false)
    }
}

/// The period between base orders, `None` when nothing flows.
fn period(rate: &Rate) -> Option<f64> {
    (!rate.paused && rate.rate_per_minute > 0.0 && rate.rate_per_minute.is_finite())
        .then(|| 60.0 / rate.rate_per_minute)
}

/// Indices k >= 1 of the base orders at `anchor + k·period` within `(from, to]`.
/// Stateless: a scheduled Lambda can call it for "what is due in this interval".
pub fn due_indices(
    rate: &Rate,
    anchor: Duration,
    from: Duration,
    to: Duration,
) -> std::ops::Range<u64> {
    let Some(p) = period(rate) else { return 0..0 };
    let idx = |t: Duration| -> u64 {
        // Number of k >= 1 with anchor + k·p <= t.
        if t <= anchor {
            0
        } else {
            ((t - anchor).as_secs_f64() / p + 1e-9).floor() as u64
        }
    };
    let (a, b) = (idx(from), idx(to));
    (a + 1)..(b + 1)
}

fn at(anchor: Duration, k: u64, period: f64) -> Duration {
    anchor + Duration::from_secs_f64(k as f64 * period)
}

/// `count` orders spread evenly over `over` from `start`, the first at once:
/// the same instants for the in-process runner and the scheduled Lambda.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurgePlan {
    pub start: Duration,
    pub count: u32,
    pub over: Duration,
}

impl SurgePlan {
    /// A plan within the limits, or what is wrong with it.
    pub fn new(count: u32, over: Duration, start: Duration) -> Result<Self, String> {
        hq_core::domain::check_surge(count, over)?;
        Ok(Self { start, count, over })
    }

    /// When order `i` (0-based) is due.
    pub fn time_of(&self, i: u32) -> Duration {
        self.start + self.over.mul_f64(i as f64 / self.count as f64)
    }

    /// When the last order is due.
    pub fn end(&self) -> Duration {
        self.time_of(self.count - 1)
    }

    /// The orders due within `(from, to]`: back-to-back intervals cover each
    /// order once, whichever instance runs them.
    pub fn due_in(&self, from: Duration, to: Duration) -> std::ops::Range<u32> {
        // Orders are in time order, so each bound is a partition point.
        let first = |t: Duration| -> u32 {
            let (mut lo, mut hi) = (0u32, self.count);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if self.time_of(mid) <= t {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        first(from)..first(to)
    }
}

#[derive(Debug, Clone)]
struct Surge {
    plan: SurgePlan,
    sent: u32,
}

impl Surge {
    fn time_of(&self, i: u32) -> Duration {
        self.plan.time_of(i)
    }
}

/// Counters of one schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScheduleStats {
    pub orders: u64,
    pub malformed: u64,
    pub skipped_late: u64,
}

/// One topic's schedule: base rate plus surges.
#[derive(Debug, Clone)]
pub struct Schedule {
    topic: TopicName,
    rate: Rate,
    anchor: Duration,
    /// Base orders up to this index are done (sent or skipped).
    done: u64,
    surges: VecDeque<Surge>,
    stats: ScheduleStats,
}

impl Schedule {
    pub fn new(topic: TopicName, rate: Rate, now: Duration) -> Self {
        Self {
            topic,
            rate,
            anchor: now,
            done: 0,
            surges: VecDeque::new(),
            stats: ScheduleStats::default(),
        }
    }

    pub fn topic(&self) -> TopicName {
        self.topic
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    pub fn stats(&self) -> ScheduleStats {
        self.stats
    }

    /// Applies a new rate. A change of pace (rate or pause) re-anchors at `now`
    /// so the next order comes one new period later; a change of the malformed
    /// share alone keeps the rhythm.
    pub fn set_rate(&mut self, rate: Rate, now: Duration) {
        let pace_changed =
            rate.paused != self.rate.paused || rate.rate_per_minute != self.rate.rate_per_minute;
        self.rate = rate;
        if pace_changed {
            self.anchor = now;
            self.done = 0;
        }
    }

    /// Adds `count` orders spread evenly over `over`, starting now (the first at
    /// once). Surges run even while the topic is paused: a facilitator asked.
    pub fn surge(&mut self, count: u32, over: Duration, now: Duration) -> Result<(), String> {
        let plan = SurgePlan::new(count, over, now)?;
        if self.surges.len() >= MAX_RUNNING_SURGES {
            return Err("too many surges running on this topic".into());
        }
        self.surges.push_back(Surge { plan, sent: 0 });
        Ok(())
    }

    /// When the next order is due, if any is scheduled.
    pub fn next_due(&self) -> Option<Duration> {
        let base = period(&self.rate).map(|p| at(self.anchor, self.done + 1, p));
        let surge = self.surges.iter().map(|s| s.time_of(s.sent)).min();
        match (base, surge) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Every order due at or before `now`, in time order; those later than
    /// [`MAX_LATENESS`] are skipped and counted instead.
    pub fn due(&mut self, now: Duration) -> Vec<Order> {
        let mut times: Vec<Duration> = Vec::new();
        if let Some(p) = period(&self.rate) {
            let range = due_indices(&self.rate, self.anchor, at(self.anchor, self.done, p), now);
            for k in range {
                times.push(at(self.anchor, k, p));
                self.done = k;
            }
        }
        for s in self.surges.iter_mut() {
            while s.sent < s.plan.count && s.time_of(s.sent) <= now {
                times.push(s.time_of(s.sent));
                s.sent += 1;
            }
        }
        self.surges.retain(|s| s.sent < s.plan.count);
        times.sort();
        let mut out = Vec::with_capacity(times.len());
        for t in times {
            if now.saturating_sub(t) > MAX_LATENESS {
                self.stats.skipped_late += 1;
                continue;
            }
            let (body, malformed) = body_for(
                self.topic,
                self.stats.orders,
                self.rate.malformed_share,
                self.stats.malformed,
            );
            self.stats.orders += 1;
            if malformed {
                self.stats.malformed += 1;
            }
            out.push(Order {
                topic: self.topic,
                at: t,
                body,
                malformed,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_minute: f64) -> Rate {
        Rate {
            rate_per_minute: per_minute,
            paused: false,
            malformed_share: 0.0,
        }
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Steps a simulated clock by `step` until `end`, collecting orders.
    fn run(s: &mut Schedule, from: f64, end: f64, step: f64) -> Vec<Order> {
        let mut out = Vec::new();
        let mut t = from;
        while t <= end + 1e-9 {
            out.extend(s.due(secs(t)));
            t += step;
        }
        out
    }

    #[test]
    fn default_rate_is_two_a_minute_evenly_spread() {
        let mut s = Schedule::new(TopicName::Orders, Rate::default(), Duration::ZERO);
        let orders = run(&mut s, 0.0, 120.0, 0.25);
        let at: Vec<f64> = orders.iter().map(|o| o.at.as_secs_f64()).collect();
        assert_eq!(at, vec![30.0, 60.0, 90.0, 120.0]);
        assert!(orders
            .iter()
            .all(|o| o.body == r#"{"bundle": 1}"# && !o.malformed));
    }

    #[test]
    fn even_spacing_whatever_the_polling() {
        let mut s = Schedule::new(TopicName::Iridium, rate(600.0), Duration::ZERO);
        // Irregular polling (0.37 s) does not change when orders are due.
        let mut orders = run(&mut s, 0.0, 10.0, 0.37);
        orders.extend(s.due(secs(10.0)));
        assert_eq!(orders.len(), 100);
        for (i, o) in orders.iter().enumerate() {
            let want = (i + 1) as f64 * 0.1;
            assert!((o.at.as_secs_f64() - want).abs() < 1e-6, "{i}: {:?}", o.at);
            assert_eq!(o.body, r#"{"iridium": 1}"#);
        }
    }

    #[test]
    fn no_drift_over_simulated_hours() {
        let mut s = Schedule::new(TopicName::Magnesite, rate(7.0), Duration::ZERO);
        let mut n = 0u64;
        let mut last = Duration::ZERO;
        // 10 hours in 1-second ticks.
        for tick in 1..=36_000u64 {
            for o in s.due(Duration::from_secs(tick)) {
                n += 1;
                last = o.at;
            }
        }
        assert_eq!(n, 4200, "7 a minute for 600 minutes");
        let want = 4200.0 * 60.0 / 7.0;
        assert!(
            (last.as_secs_f64() - want).abs() < 1e-6,
            "{last:?} vs {want}"
        );
        assert_eq!(s.stats().skipped_late, 0);
    }

    #[test]
    fn rate_changes_apply_at_once_without_burst() {
        let mut s = Schedule::new(TopicName::Orders, rate(60.0), Duration::ZERO);
        assert_eq!(run(&mut s, 0.0, 10.0, 0.5).len(), 10);
        s.set_rate(rate(600.0), secs(10.2));
        let next = s.next_due().unwrap().as_secs_f64();
        assert!((next - 10.3).abs() < 1e-6, "{next}");
        let orders = run(&mut s, 10.5, 20.0, 0.5);
        assert_eq!(orders.len(), 98);
        // Changing only the malformed share keeps the rhythm.
        s.set_rate(
            Rate {
                malformed_share: 0.5,
                ..rate(600.0)
            },
            secs(20.05),
        );
        assert!((s.next_due().unwrap().as_secs_f64() - 20.1).abs() < 1e-6);
    }

    #[test]
    fn pause_stops_and_resumes() {
        let mut s = Schedule::new(TopicName::Orders, rate(60.0), Duration::ZERO);
        s.set_rate(
            Rate {
                paused: true,
                ..rate(60.0)
            },
            secs(0.5),
        );
        assert!(run(&mut s, 0.5, 100.0, 1.0).is_empty());
        assert_eq!(s.next_due(), None);
        s.set_rate(rate(60.0), secs(100.0));
        let orders = run(&mut s, 100.0, 103.0, 0.1);
        assert_eq!(orders.len(), 3);
        assert!((orders[0].at.as_secs_f64() - 101.0).abs() < 1e-6);
        // Rate zero sends nothing either.
        let mut z = Schedule::new(TopicName::Orders, rate(0.0), Duration::ZERO);
        assert!(run(&mut z, 0.0, 600.0, 10.0).is_empty());
    }

    #[test]
    fn surge_spreads_n_orders_over_s_seconds() {
        let mut s = Schedule::new(
            TopicName::Iridium,
            Rate {
                paused: true,
                ..Rate::default()
            },
            Duration::ZERO,
        );
        s.surge(20, secs(10.0), secs(5.0)).unwrap();
        let orders = run(&mut s, 5.0, 20.0, 0.05);
        assert_eq!(orders.len(), 20);
        for (i, o) in orders.iter().enumerate() {
            assert!((o.at.as_secs_f64() - (5.0 + i as f64 * 0.5)).abs() < 1e-6);
        }
        assert!(s.surge(0, secs(1.0), secs(0.0)).is_err());
        assert!(s.surge(10, secs(4000.0), secs(0.0)).is_err());
        // A surge on top of a running rate adds to it.
        let mut s = Schedule::new(TopicName::Orders, rate(60.0), Duration::ZERO);
        s.surge(10, secs(1.0), Duration::ZERO).unwrap();
        assert_eq!(run(&mut s, 0.0, 10.0, 0.01).len(), 20);
    }

    #[test]
    fn a_surge_plan_covers_each_order_once_over_back_to_back_intervals() {
        let plan = SurgePlan::new(7, secs(3.0), secs(100.25)).unwrap();
        assert_eq!(plan.time_of(0), secs(100.25));
        assert_eq!(plan.end(), plan.time_of(6));
        for step in [0.1, 0.5, 1.0, 3.0, 60.0] {
            let mut covered = Vec::new();
            let mut t = 99.0;
            while t < 110.0 {
                let (from, to) = (secs(t), secs(t + step));
                for i in plan.due_in(from, to) {
                    let at = plan.time_of(i);
                    assert!(
                        from < at && at <= to,
                        "{i} at {at:?} not in ({from:?}, {to:?}]"
                    );
                    covered.push(i);
                }
                t += step;
            }
            assert_eq!(covered, (0..7).collect::<Vec<_>>(), "step {step}");
        }
        // All at once: every order at the start.
        let burst = SurgePlan::new(3, Duration::ZERO, secs(5.0)).unwrap();
        assert_eq!(burst.due_in(secs(4.0), secs(5.0)), 0..3);
        assert_eq!(burst.due_in(secs(5.0), secs(6.0)), 3..3);
        assert!(SurgePlan::new(0, secs(1.0), secs(0.0)).is_err());
        assert!(SurgePlan::new(MAX_SURGE_COUNT + 1, secs(1.0), secs(0.0)).is_err());
        assert!(SurgePlan::new(1, secs(MAX_SURGE_SECONDS as f64 + 1.0), secs(0.0)).is_err());
    }

    #[test]
    fn malformed_share_is_exact_and_plausible() {
        let share = 0.25;
        let mut s = Schedule::new(
            TopicName::Magnesite,
            Rate {
                malformed_share: share,
                ..rate(600.0)
            },
            Duration::ZERO,
        );
        let orders = run(&mut s, 0.0, 100.0, 0.5);
        assert_eq!(orders.len(), 1000);
        let bad: Vec<&Order> = orders.iter().filter(|o| o.malformed).collect();
        assert_eq!(bad.len(), 250);
        // Evenly spread: every window of 20 holds 5 ± 1.
        for w in orders.windows(20) {
            let n = w.iter().filter(|o| o.malformed).count();
            assert!((4..=6).contains(&n), "{n}");
        }
        assert!(bad.iter().any(|o| o.body == r#"{"iridium": "1"}"#));
        assert!(
            bad.iter()
                .any(|o| serde_json::from_str::<serde_json::Value>(o.body).is_err()),
            "some are not JSON"
        );
        for o in &bad {
            assert_ne!(o.body, TopicName::Magnesite.order_message());
        }
        assert!(orders
            .iter()
            .filter(|o| !o.malformed)
            .all(|o| o.body == r#"{"magnesite": 1}"#));
        for share in [0.0, 1.0] {
            let mut s = Schedule::new(
                TopicName::Orders,
                Rate {
                    malformed_share: share,
                    ..rate(600.0)
                },
                Duration::ZERO,
            );
            let n = run(&mut s, 0.0, 10.0, 1.0)
                .iter()
                .filter(|o| o.malformed)
                .count();
            assert_eq!(n, (share * 100.0) as usize);
        }
    }

    #[test]
    fn late_orders_are_skipped_not_burst() {
        let mut s = Schedule::new(TopicName::Orders, rate(60.0), Duration::ZERO);
        let orders = s.due(secs(3600.0));
        assert_eq!(
            orders.len(),
            6,
            "only the last 5 s worth (inclusive) are sent"
        );
        assert_eq!(s.stats().skipped_late, 3594);
    }

    #[test]
    fn stateless_interval_for_a_lambda() {
        let r = rate(120.0);
        // Minute-long invocations for an hour, anchored at 0: 120 orders each,
        // none lost or doubled at the boundaries.
        let mut all = Vec::new();
        for m in 0..60u64 {
            all.extend(due_indices(
                &r,
                Duration::ZERO,
                Duration::from_secs(m * 60),
                Duration::from_secs((m + 1) * 60),
            ));
        }
        assert!(
            all == (1..=7200).collect::<Vec<u64>>(),
            "{} indices",
            all.len()
        );
    }
}
