//! The facilitator's lab faults, as the services apply them and the stores keep
//! them.

use serde::{Deserialize, Serialize};

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
