//! The order bus port (topics, subscriptions, publishing) and the persistence of
//! the embedded SNS engine's subscriptions.
//!
//! [`OrderBus`] is what the publisher and the portal talk to: the embedded engine
//! in the all-in-one mode, `aws-sdk-sns` in the deployed mode. Neither caller
//! knows which. [`SubscriptionStore`] is how the embedded engine keeps its
//! subscriptions and topic settings across restarts.

use async_trait::async_trait;

use crate::domain::{
    Endpoint, SubscriptionRecord, SubscriptionView, TopicName, TopicRecord, Username,
};
use crate::error::{CoreError, StoreError};

/// What an order bus call can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The topic or subscription does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request was refused (bad message, bad attribute, too many entries).
    #[error("{0}")]
    Invalid(String),
    /// The bus is shutting down and takes no more work.
    #[error("the order bus is shutting down")]
    ShuttingDown,
    /// The backend (store, AWS) failed.
    #[error("order bus: {0}")]
    Backend(String),
}

impl From<StoreError> for BusError {
    fn from(e: StoreError) -> Self {
        Self::Backend(e.0)
    }
}

impl From<BusError> for CoreError {
    fn from(e: BusError) -> Self {
        match e {
            BusError::NotFound(what) => CoreError::NotFound(what),
            BusError::Invalid(msg) => CoreError::Invalid(msg),
            BusError::ShuttingDown => {
                CoreError::Store(StoreError("the order bus is shutting down".into()))
            }
            BusError::Backend(msg) => CoreError::Store(StoreError(msg)),
        }
    }
}

/// Which subscriptions to list.
#[derive(Debug, Clone, Copy)]
pub enum SubscriptionFilter<'a> {
    All,
    Owner(&'a Username),
    Topic(TopicName),
}

/// The orders topics, their subscriptions and publishing. SNS semantics: an
/// HTTP(S) subscription starts pending and receives only its confirmation until
/// the endpoint confirms it.
#[async_trait]
pub trait OrderBus: Send + Sync + 'static {
    /// The topic's ARN (`arn:aws:sns:<region>:<account>:<name>`).
    fn topic_arn(&self, topic: TopicName) -> String;

    /// Subscribes an endpoint that passed the endpoint policy. Subscribing the same
    /// endpoint to the same topic again answers the existing subscription (and
    /// re-sends the confirmation while it is pending), as SNS does.
    async fn subscribe(
        &self,
        topic: TopicName,
        endpoint: &Endpoint,
        owner: Option<&Username>,
    ) -> Result<SubscriptionView, BusError>;

    /// Removes a subscription by ARN; `NotFound` if there is none.
    async fn unsubscribe(&self, subscription_arn: &str) -> Result<(), BusError>;

    /// One subscription by ARN or by id (the ARN's last part).
    async fn subscription(&self, arn_or_id: &str) -> Result<Option<SubscriptionView>, BusError>;

    /// Subscriptions with their status and delivery counters, oldest first.
    async fn list_subscriptions(
        &self,
        filter: SubscriptionFilter<'_>,
    ) -> Result<Vec<SubscriptionView>, BusError>;

    /// Publishes one message to every confirmed subscription; answers its id.
    async fn publish(&self, topic: TopicName, message: &str) -> Result<String, BusError>;

    /// Publishes up to 10 messages (SNS's batch limit); answers their ids in order.
    async fn publish_batch(
        &self,
        topic: TopicName,
        messages: &[String],
    ) -> Result<Vec<String>, BusError>;
}

/// Durable subscriptions and topics of the embedded engine.
#[async_trait]
pub trait SubscriptionStore: Send + Sync + 'static {
    /// Inserts or replaces a subscription (keyed by ARN).
    async fn put_subscription(&self, record: &SubscriptionRecord) -> Result<(), StoreError>;
    /// Removes a subscription; answers whether it existed.
    async fn delete_subscription(&self, arn: &str) -> Result<bool, StoreError>;
    /// Every stored subscription, pending and confirmed.
    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError>;
    /// Inserts or replaces a topic (keyed by name).
    async fn put_topic(&self, topic: &TopicRecord) -> Result<(), StoreError>;
    /// Every stored topic.
    async fn topics(&self) -> Result<Vec<TopicRecord>, StoreError>;
}
