//! Subscriptions as the portal and the facilitator make and see them: the
//! endpoint policy is applied here, once, before the order bus is asked.

use std::sync::Arc;

use crate::domain::{Endpoint, EndpointPolicy, SubscriptionView, TopicName, Username};
use crate::error::CoreError;
use crate::ports::{OrderBus, SubscriptionFilter};

/// Backs `POST/GET/DELETE /api/subscriptions` and `GET /admin/api/subscriptions`.
pub struct SubscriptionService {
    bus: Arc<dyn OrderBus>,
    policy: EndpointPolicy,
}

impl SubscriptionService {
    pub fn new(bus: Arc<dyn OrderBus>, policy: EndpointPolicy) -> Self {
        Self { bus, policy }
    }

    pub fn policy(&self) -> EndpointPolicy {
        self.policy
    }

    /// Subscribes `endpoint` to `topic` (`orders`, `iridium`, `magnesite`, the SNS
    /// name or the full ARN) for `owner`. A refused endpoint is `Invalid` with
    /// the reason (shown to the attendee as a 400).
    pub async fn subscribe(
        &self,
        owner: &Username,
        topic: &str,
        endpoint: &str,
    ) -> Result<SubscriptionView, CoreError> {
        let topic = self.parse_topic(topic)?;
        let endpoint = Endpoint::resolve(endpoint.trim(), self.policy)
            .await
            .map_err(|e| CoreError::Invalid(e.to_string()))?;
        let view = self.bus.subscribe(topic, &endpoint, Some(owner)).await?;
        tracing::info!(owner = %owner, topic = topic.as_str(), subscription = %view.subscription_arn, "subscribed");
        Ok(view)
    }

    /// The caller's own subscriptions.
    pub async fn list_own(&self, owner: &Username) -> Result<Vec<SubscriptionView>, CoreError> {
        Ok(self
            .bus
            .list_subscriptions(SubscriptionFilter::Owner(owner))
            .await?)
    }

    /// Every subscription with its delivery health (facilitator).
    pub async fn list_all(&self) -> Result<Vec<SubscriptionView>, CoreError> {
        Ok(self.bus.list_subscriptions(SubscriptionFilter::All).await?)
    }

    /// Removes one of the caller's subscriptions, by id or ARN. Someone else's
    /// answers `NotFound`, exactly like a missing one, so ids cannot be probed.
    pub async fn unsubscribe_own(&self, owner: &Username, id: &str) -> Result<(), CoreError> {
        let not_found = || CoreError::NotFound("subscription".into());
        let view = self.bus.subscription(id).await?.ok_or_else(not_found)?;
        if view.owner.as_ref() != Some(owner) {
            return Err(not_found());
        }
        self.bus.unsubscribe(&view.subscription_arn).await?;
        tracing::info!(owner = %owner, subscription = %view.subscription_arn, "unsubscribed");
        Ok(())
    }

    /// Removes any subscription (facilitator).
    pub async fn unsubscribe_any(&self, id: &str) -> Result<(), CoreError> {
        let view = self
            .bus
            .subscription(id)
            .await?
            .ok_or_else(|| CoreError::NotFound("subscription".into()))?;
        self.bus.unsubscribe(&view.subscription_arn).await?;
        Ok(())
    }

    fn parse_topic(&self, topic: &str) -> Result<TopicName, CoreError> {
        let t = TopicName::parse(topic.trim()).ok_or_else(|| {
            CoreError::Invalid("topic must be orders, iridium or magnesite (or its ARN)".into())
        })?;
        if topic.starts_with("arn:") && topic.trim() != self.bus.topic_arn(t) {
            return Err(CoreError::Invalid(format!("unknown topic ARN {topic}")));
        }
        Ok(t)
    }
}
