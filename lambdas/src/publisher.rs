//! The order-publisher Lambda's work: on each scheduled event, publish what the
//! rates say is due in the interval `(t, t + interval]` (t = the event's time),
//! each order at its own instant, so orders stay spread over the minute as in
//! the all-in-one mode.
//!
//! Stateless between invocations: the schedule is anchored at the Unix epoch
//! ([`order_publisher::schedule::due_indices`]), so back-to-back intervals
//! neither repeat nor skip an order, whichever instance runs them, and the
//! malformed share stays exact (order k's body depends on k alone).
//!
//! Orders due together go out together: up to [`BATCH`] per `PublishBatch`
//! call and [`IN_FLIGHT`] calls at once, so a large surge keeps up with its
//! schedule instead of waiting one SNS round trip per order.

use std::collections::HashSet;
use std::time::Duration;

use hq_core::domain::{SurgeRecord, TopicName};
use hq_core::ports::OrderBus;
use hq_core::services::{LabControls, RateService};
use hq_core::CoreError;
use order_publisher::schedule::{body_for, due_indices, SurgePlan};

/// Orders one invocation may publish at most (60 000/min is the highest rate
/// accepted, three topics): a bound, not a limit met in practice.
const MAX_ORDERS: usize = 200_000;

/// Most orders in one `PublishBatch` call (SNS's limit).
const BATCH: usize = 10;
/// `PublishBatch` calls in flight at once: behind schedule, an invocation
/// catches up by up to `BATCH * IN_FLIGHT` orders per SNS round trip.
const IN_FLIGHT: usize = 8;

/// What one invocation did, per topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicSummary {
    pub topic: &'static str,
    pub published: u64,
    pub malformed: u64,
    pub failed: u64,
}

/// The interval an event covers: from its `time` (RFC 3339; now if absent or
/// unreadable, as with a manual invoke) for `interval`, since the Unix epoch.
pub fn interval_of(event: &serde_json::Value, interval: Duration) -> (Duration, Duration) {
    let from = event
        .get("time")
        .and_then(|t| t.as_str())
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| Duration::from_millis((t.unix_timestamp_nanos() / 1_000_000).max(0) as u64))
        .unwrap_or_else(since_epoch);
    (from, from + interval)
}

fn since_epoch() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// How often an invocation re-reads the stored surges while its interval
/// runs: a surge the facilitator starts mid-interval begins within this.
const SURGE_POLL: Duration = Duration::from_secs(5);

type Due = (Duration, TopicName, &'static str, bool);

/// Publishes the orders due in `(from, to]`, each at its instant (at once when
/// already late): the rates' orders, and those of the surges the facilitator
/// stored (re-read every [`SURGE_POLL`] until the interval is over, so a surge
/// started mid-interval is covered by this invocation). A failed publish is
/// logged and counted, never retried into a burst.
pub async fn publish_interval(
    rates: &RateService,
    lab: &LabControls,
    bus: &dyn OrderBus,
    from: Duration,
    to: Duration,
) -> Result<Vec<TopicSummary>, CoreError> {
    let mut orders: Vec<Due> = Vec::new();
    let mut summaries = Vec::new();
    let mut shares = Vec::new();
    for topic in TopicName::ALL {
        let rate = rates.rate(topic).await?;
        summaries.push(TopicSummary {
            topic: topic.as_str(),
            ..TopicSummary::default()
        });
        shares.push((topic, rate.malformed_share));
        let period = if rate.rate_per_minute > 0.0 {
            60.0 / rate.rate_per_minute
        } else {
            0.0
        };
        let due = due_indices(&rate, Duration::ZERO, from, to)
            .map(|k| (Duration::from_secs_f64(k as f64 * period), k));
        push_orders(&mut orders, topic, rate.malformed_share, due);
    }
    orders.sort_by_key(|(at, ..)| *at);

    let mut known = HashSet::new();
    let mut next = 0;
    let mut next_poll = Duration::ZERO;
    // Where surges are shared, the last poll happens once the interval is over.
    let mut polled_after_end = !lab.is_shared();
    loop {
        let now = since_epoch();
        if !polled_after_end && (now >= next_poll || now >= to) {
            match lab.surges().await {
                Ok(surges) => {
                    for s in surges {
                        if known.insert(s.id.clone()) {
                            let share = shares
                                .iter()
                                .find(|(t, _)| *t == s.topic)
                                .map_or(0.0, |(_, share)| *share);
                            add_surge(&mut orders, next, &s, share, from, to);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the surges failed"),
            }
            polled_after_end = now >= to;
            next_poll = now + SURGE_POLL;
        }
        // When to look at the surges again, if ever.
        let poll_at = (!polled_after_end).then(|| next_poll.min(to));
        match orders.get(next) {
            Some(&(at, ..)) if at <= now => {
                // Everything already due, up to what the calls in flight carry.
                let due = orders[next..]
                    .iter()
                    .take(BATCH * IN_FLIGHT)
                    .take_while(|(at, ..)| *at <= now)
                    .count();
                publish_due(bus, &orders[next..next + due], &mut summaries).await;
                next += due;
            }
            Some(&(at, ..)) => {
                let until = poll_at.map_or(at, |p| p.min(at));
                tokio::time::sleep(until.saturating_sub(now)).await;
            }
            None => match poll_at {
                Some(p) => tokio::time::sleep(p.saturating_sub(now)).await,
                None => break,
            },
        }
    }
    Ok(summaries)
}

/// One `PublishBatch` call's worth of orders of one topic.
struct Batch {
    topic: TopicName,
    bodies: Vec<String>,
    malformed: u64,
}

/// Publishes `due` (in time order) as batches of at most [`BATCH`] orders of
/// one topic, all calls at once, and counts the outcome. A batch that fails
/// counts all its orders failed: SNS answers a batch as a whole here, and a
/// failed order is logged, never retried into a burst.
async fn publish_due(bus: &dyn OrderBus, due: &[Due], summaries: &mut [TopicSummary]) {
    let mut batches: Vec<Batch> = Vec::new();
    for &(_, topic, body, malformed) in due {
        let open = batches
            .iter_mut()
            .rev()
            .find(|b| b.topic == topic && b.bodies.len() < BATCH);
        let batch = match open {
            Some(b) => b,
            None => {
                batches.push(Batch {
                    topic,
                    bodies: Vec::with_capacity(BATCH),
                    malformed: 0,
                });
                batches.last_mut().expect("just pushed")
            }
        };
        batch.bodies.push(body.to_owned());
        batch.malformed += malformed as u64;
    }
    let calls = batches
        .iter()
        .map(|b| bus.publish_batch(b.topic, &b.bodies));
    let outcomes = futures_util::future::join_all(calls).await;
    for (batch, outcome) in batches.iter().zip(outcomes) {
        let Some(summary) = summaries
            .iter_mut()
            .find(|s| s.topic == batch.topic.as_str())
        else {
            continue;
        };
        let n = batch.bodies.len() as u64;
        match outcome {
            Ok(_) => {
                summary.published += n;
                summary.malformed += batch.malformed;
            }
            Err(e) => {
                summary.failed += n;
                tracing::warn!(topic = batch.topic.as_str(), orders = n, error = %e, "orders not published");
            }
        }
    }
}

/// Adds orders `(at, k)` of `topic` (k picks the body, as in the all-in-one
/// publisher), up to [`MAX_ORDERS`] in all.
fn push_orders(
    orders: &mut Vec<Due>,
    topic: TopicName,
    share: f64,
    due: impl Iterator<Item = (Duration, u64)>,
) {
    for (at, k) in due {
        if orders.len() >= MAX_ORDERS {
            tracing::warn!(
                topic = topic.as_str(),
                "order cap reached for this interval"
            );
            return;
        }
        let seen = (k as f64 * share.clamp(0.0, 1.0)).floor() as u64;
        let (body, malformed) = body_for(topic, k, share, seen);
        orders.push((at, topic, body, malformed));
    }
}

/// Adds a stored surge's orders due in `(from, to]` to those not yet sent
/// (`orders[next..]`), keeping them in time order.
fn add_surge(
    orders: &mut Vec<Due>,
    next: usize,
    s: &SurgeRecord,
    share: f64,
    from: Duration,
    to: Duration,
) {
    let start = Duration::from_millis(s.starts_at.max(0) as u64);
    let Ok(plan) = SurgePlan::new(s.count, Duration::from_secs(s.seconds as u64), start) else {
        tracing::warn!(surge = %s.id, "a stored surge is out of limits; skipped");
        return;
    };
    let due = plan.due_in(from, to).map(|i| (plan.time_of(i), i as u64));
    push_orders(orders, s.topic, share, due);
    orders[next..].sort_by_key(|(at, ..)| *at);
}
