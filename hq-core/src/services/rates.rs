//! Topics and their rates, as the portal and the facilitator see them.

use std::sync::Arc;

use serde::Serialize;

use crate::domain::{Rate, TopicName};
use crate::error::CoreError;
use crate::ports::RateStore;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicView {
    pub name: &'static str,
    pub arn: String,
    #[serde(flatten)]
    pub rate: Rate,
}

pub struct RateService {
    store: Arc<dyn RateStore>,
    region: String,
    account_id: String,
}

impl RateService {
    pub fn new(store: Arc<dyn RateStore>, region: String, account_id: String) -> Self {
        Self {
            store,
            region,
            account_id,
        }
    }

    pub fn arn(&self, topic: TopicName) -> String {
        topic.arn(&self.region, &self.account_id)
    }

    pub async fn rate(&self, topic: TopicName) -> Result<Rate, CoreError> {
        let stored = self.store.rates().await?;
        Ok(stored
            .into_iter()
            .find(|(t, _)| *t == topic)
            .map(|(_, r)| r)
            .unwrap_or_default())
    }

    pub async fn topics(&self) -> Result<Vec<TopicView>, CoreError> {
        let stored = self.store.rates().await?;
        Ok(TopicName::ALL
            .iter()
            .map(|&t| TopicView {
                name: t.as_str(),
                arn: self.arn(t),
                rate: stored
                    .iter()
                    .find(|(s, _)| *s == t)
                    .map(|(_, r)| *r)
                    .unwrap_or_default(),
            })
            .collect())
    }

    pub async fn set_rate(&self, topic: TopicName, rate: Rate) -> Result<Rate, CoreError> {
        rate.validate().map_err(CoreError::Invalid)?;
        self.store.put_rate(topic, &rate).await?;
        tracing::info!(
            topic = topic.as_str(),
            rate = rate.rate_per_minute,
            paused = rate.paused,
            "rate set"
        );
        Ok(rate)
    }
}
