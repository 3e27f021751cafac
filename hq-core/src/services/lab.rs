//! Lab controls: faults the facilitator injects for the debugging and resiliency
//! labs. Off by default, applied at once, and kept in memory only, so a restart
//! always comes back healthy.

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;

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

/// A change to the faults: only the fields given change.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceivingFaultsPatch {
    pub latency_ms: Option<u32>,
    pub latency_random: Option<bool>,
    pub error_share: Option<f64>,
    pub error_status: Option<u16>,
}

/// What the lab controls decide for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub delay_ms: u32,
    /// `Some(status)`: answer this error and store nothing.
    pub fail_with: Option<u16>,
}

#[derive(Default)]
pub struct LabControls {
    receiving: RwLock<ReceivingFaults>,
}

impl LabControls {
    pub fn receiving(&self) -> ReceivingFaults {
        *self.receiving.read()
    }

    pub fn set_receiving(&self, patch: ReceivingFaultsPatch) -> Result<ReceivingFaults, CoreError> {
        let mut current = self.receiving.write();
        let next = ReceivingFaults {
            latency_ms: patch.latency_ms.unwrap_or(current.latency_ms),
            latency_random: patch.latency_random.unwrap_or(current.latency_random),
            error_share: patch.error_share.unwrap_or(current.error_share),
            error_status: patch.error_status.unwrap_or(current.error_status),
        };
        if next.latency_ms > 30_000 {
            return Err(CoreError::Invalid("latencyMs must be at most 30000".into()));
        }
        if !next.error_share.is_finite() || !(0.0..=1.0).contains(&next.error_share) {
            return Err(CoreError::Invalid(
                "errorShare must be between 0 and 1".into(),
            ));
        }
        if !matches!(next.error_status, 500 | 503) {
            return Err(CoreError::Invalid("errorStatus must be 500 or 503".into()));
        }
        *current = next;
        tracing::warn!(?next, "lab controls for /receiving/ changed");
        Ok(next)
    }

    /// Rolls the dice for one request. Cheap when everything is off.
    pub fn verdict(&self) -> Verdict {
        let f = *self.receiving.read();
        let delay_ms = match (f.latency_ms, f.latency_random) {
            (0, _) => 0,
            (ms, false) => ms,
            (ms, true) => rand::random_range(0..=ms),
        };
        let fail_with = (f.error_share > 0.0 && rand::random::<f64>() < f.error_share)
            .then_some(f.error_status);
        Verdict {
            delay_ms,
            fail_with,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_validated() {
        let lab = LabControls::default();
        assert_eq!(
            lab.verdict(),
            Verdict {
                delay_ms: 0,
                fail_with: None
            }
        );
        assert!(lab
            .set_receiving(ReceivingFaultsPatch {
                error_share: Some(1.5),
                ..Default::default()
            })
            .is_err());
        assert!(lab
            .set_receiving(ReceivingFaultsPatch {
                error_status: Some(404),
                ..Default::default()
            })
            .is_err());
        assert_eq!(lab.receiving(), ReceivingFaults::default());
        lab.set_receiving(ReceivingFaultsPatch {
            error_share: Some(1.0),
            latency_ms: Some(5),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            lab.verdict(),
            Verdict {
                delay_ms: 5,
                fail_with: Some(503)
            }
        );
    }
}
