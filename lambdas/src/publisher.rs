//! The order-publisher Lambda's work: on each scheduled event, publish what the
//! rates say is due in the interval `(t, t + interval]` (t = the event's time),
//! each order at its own instant, so orders stay spread over the minute as in
//! the all-in-one mode.
//!
//! Stateless between invocations: the schedule is anchored at the Unix epoch
//! ([`order_publisher::schedule::due_indices`]), so back-to-back intervals
//! neither repeat nor skip an order, whichever instance runs them, and the
//! malformed share stays exact (order k's body depends on k alone).

use std::time::Duration;

use hq_core::domain::TopicName;
use hq_core::ports::OrderBus;
use hq_core::services::RateService;
use hq_core::CoreError;
use order_publisher::schedule::{body_for, due_indices};

/// Orders one invocation may publish at most (60 000/min is the highest rate
/// accepted, three topics): a bound, not a limit met in practice.
const MAX_ORDERS: usize = 200_000;

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

/// Publishes the orders due in `(from, to]`, each at its instant (at once when
/// already late). A failed publish is logged and counted, never retried into
/// a burst.
pub async fn publish_interval(
    rates: &RateService,
    bus: &dyn OrderBus,
    from: Duration,
    to: Duration,
) -> Result<Vec<TopicSummary>, CoreError> {
    let mut orders = Vec::new();
    let mut summaries = Vec::new();
    for topic in TopicName::ALL {
        let rate = rates.rate(topic).await?;
        summaries.push(TopicSummary {
            topic: topic.as_str(),
            ..TopicSummary::default()
        });
        let period = if rate.rate_per_minute > 0.0 {
            60.0 / rate.rate_per_minute
        } else {
            0.0
        };
        for k in due_indices(&rate, Duration::ZERO, from, to) {
            if orders.len() >= MAX_ORDERS {
                tracing::warn!(
                    topic = topic.as_str(),
                    "order cap reached for this interval"
                );
                break;
            }
            let seen = (k as f64 * rate.malformed_share.clamp(0.0, 1.0)).floor() as u64;
            let (body, malformed) = body_for(topic, k, rate.malformed_share, seen);
            orders.push((
                Duration::from_secs_f64(k as f64 * period),
                topic,
                body,
                malformed,
            ));
        }
    }
    orders.sort_by_key(|(at, ..)| *at);
    for (at, topic, body, malformed) in orders {
        let wait = at.saturating_sub(since_epoch());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let Some(summary) = summaries.iter_mut().find(|s| s.topic == topic.as_str()) else {
            continue;
        };
        match bus.publish(topic, body).await {
            Ok(_) => {
                summary.published += 1;
                summary.malformed += malformed as u64;
            }
            Err(e) => {
                summary.failed += 1;
                tracing::warn!(topic = topic.as_str(), error = %e, "order not published");
            }
        }
    }
    Ok(summaries)
}
