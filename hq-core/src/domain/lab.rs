//! The facilitator's lab controls, as the services apply them and the stores
//! keep them: faults on `/receiving/` (debugging lab) and order surges
//! (load-testing lab).

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::domain::TopicName;

/// Faults on `/receiving/`. (The order stream's malformed share is a topic rate.)
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceivingFaults {
    /// Extra latency per request, in milliseconds.
    pub latency_ms: u32,
    /// Random latency, uniform between 0 and `latency_ms`, instead of fixed.
    pub latency_random: bool,
    /// Share of requests answered with `error_status` instead of being stored.
    pub error_share: f64,
    /// 500 or 503.
    pub error_status: u16,
}

impl Default for ReceivingFaults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            latency_random: false,
            error_share: 0.0,
            error_status: 503,
        }
    }
}

/// The largest surge accepted: N orders over S seconds.
pub const MAX_SURGE_COUNT: u32 = 100_000;
pub const MAX_SURGE_SECONDS: u32 = 3600;
/// Most surges running (or upcoming) at once on one topic.
pub const MAX_RUNNING_SURGES: usize = 16;

/// A surge of `count` orders over `over` within the limits, or what is wrong.
pub fn check_surge(count: u32, over: std::time::Duration) -> Result<(), String> {
    if count == 0 || count > MAX_SURGE_COUNT {
        return Err(format!("count must be between 1 and {MAX_SURGE_COUNT}"));
    }
    if over > std::time::Duration::from_secs(MAX_SURGE_SECONDS as u64) {
        return Err(format!("seconds must be at most {MAX_SURGE_SECONDS}"));
    }
    Ok(())
}

/// A surge stored for a publisher in another process (the scheduled Lambda):
/// `count` extra orders on `topic`, spread evenly over `seconds` from
/// `starts_at`, the first at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurgeRecord {
    /// Unique, so two equal surges are two surges.
    pub id: String,
    pub topic: TopicName,
    pub starts_at: Millis,
    pub count: u32,
    pub seconds: u32,
}

impl SurgeRecord {
    /// When its last order is due, at the latest.
    pub fn ends_at(&self) -> Millis {
        self.starts_at + self.seconds as Millis * 1000
    }
}
