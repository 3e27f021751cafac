//! Domain types and the pure rules over them.

mod account;
mod amounts;
mod api_key;
mod lab;
mod leaderboard;
mod subscription;
mod topic;

pub use account::{Password, SessionToken, UserRecord, Username};
pub use amounts::{Amounts, AmountsError, MAX_AMOUNT};
pub use api_key::{ApiKey, KeyId, KeyRecord, KeyStatus, KEY_LEN, KEY_LIFETIME_DAYS};
pub use lab::{
    check_surge, ReceivingFaults, SurgeRecord, MAX_RUNNING_SURGES, MAX_SURGE_COUNT,
    MAX_SURGE_SECONDS,
};
pub use leaderboard::{Leaderboard, LeaderboardEntry, UserTotals, WINDOW_MINUTES};
pub use subscription::*;
pub use topic::{Rate, RatePatch, TopicName, DEFAULT_RATE_PER_MINUTE};

/// One accepted fulfillment, as stored. The key itself is never part of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fulfillment {
    pub id: uuid::Uuid,
    pub username: Username,
    pub key_id: KeyId,
    pub at: crate::clock::Millis,
    pub amounts: Amounts,
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}
