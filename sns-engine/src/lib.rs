//! The all-in-one mode's SNS: an in-process engine that behaves towards
//! subscribers exactly as Amazon SNS does over HTTP(S), and SNS's query API.
//!
//! * [`SnsEngine`] holds the topics (`orderTopic`, `iridium`, `magnesite` from the
//!   first start, plus any made with `CreateTopic`, all persisted with their
//!   attributes), the subscriptions (pending and confirmed, persisted through a
//!   [`SubscriptionStore`]) and the delivery machinery. It implements the
//!   [`OrderBus`](hq_core::ports::OrderBus) port, so the publisher and the portal
//!   do not know they are not talking to AWS.
//! * Delivery ([`delivery`]): every subscription has its own bounded queue and a
//!   cap on deliveries in flight; a dead, slow or black-holed subscriber fills
//!   only its own queue (overflow is counted, never silent) and holds only its
//!   own slots, so it never delays the others. Connections are pooled and kept
//!   alive; each attempt has a timeout (15 s like SNS); retries follow the SNS
//!   delivery policy of the subscription or topic.
//! * Envelopes and signatures ([`envelope`], [`signing`]): SNS's JSON bodies and
//!   headers, signature versions 1 and 2 with a key pair and certificate made at
//!   first start and kept in the data dir.
//! * The query API ([`query`]): an axum router at `/sns` speaking SNS's
//!   form-encoded actions and XML answers, for boto3, aws-sdk-sns and the
//!   attendees' `AWS_ENDPOINT_URL_SNS`.

pub mod delivery;
mod engine;
pub mod envelope;
pub mod metrics;
pub mod query;
pub mod signing;
pub mod xml;

use std::path::PathBuf;
use std::time::Duration;

use hq_core::domain::EndpointPolicy;

pub use engine::{MetricsSnapshot, SnsEngine};
pub use hq_core::ports::SubscriptionStore;
pub use signing::SignatureVersion;

/// Path of the certificate under the public base URL.
pub const CERT_PATH: &str = "/sns/SimpleNotificationService-hq.pem";

/// SNS's limit on a message (and on a whole batch): 256 KiB.
pub const MAX_MESSAGE_BYTES: usize = 262_144;

/// How the engine is set up. [`EngineConfig::new`] gives SNS's defaults.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Base URL subscribers reach HQ at (no trailing slash needed), e.g.
    /// `http://192.168.1.10:8080`. SubscribeURL, UnsubscribeURL and
    /// SigningCertURL are built from it.
    pub public_url: String,
    pub region: String,
    pub account_id: String,
    /// Where the signing key and certificate live (PEM files).
    pub data_dir: PathBuf,
    /// Checked on subscribe and again on every connection (DNS re-checks).
    pub endpoint_policy: EndpointPolicy,
    /// Time allowed for one delivery attempt, connect to last byte (SNS: 15 s).
    pub attempt_timeout: Duration,
    /// Deliveries a subscription may have queued; beyond that they are dropped
    /// and counted.
    pub queue_capacity: usize,
    /// Deliveries (attempts and retry waits) a subscription may have at once.
    pub max_in_flight_per_subscription: usize,
    /// How long [`SnsEngine::shutdown`] waits for deliveries in flight.
    pub shutdown_grace: Duration,
}

impl EngineConfig {
    pub fn new(public_url: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            public_url: public_url.into(),
            region: "us-west-2".into(),
            account_id: "000000000000".into(),
            data_dir: data_dir.into(),
            endpoint_policy: EndpointPolicy::default(),
            attempt_timeout: Duration::from_secs(15),
            queue_capacity: 1000,
            max_in_flight_per_subscription: 4,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Io(String),
    #[error("signing key: {0}")]
    Signing(String),
    #[error(transparent)]
    Store(#[from] hq_core::StoreError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("HTTP client: {0}")]
    Client(String),
}
