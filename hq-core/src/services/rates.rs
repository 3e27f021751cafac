//! Topics and their rates, as the portal and the facilitator see them.

use std::sync::Arc;

use serde::Serialize;

use crate::domain::{Rate, RatePatch, TopicName};
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
    /// One change at a time in this process: a change reads the rate, patches
    /// it and writes it, and two interleaved changes would undo each other.
    patching: tokio::sync::Mutex<()>,
}

impl RateService {
    pub fn new(store: Arc<dyn RateStore>, region: String, account_id: String) -> Self {
        Self {
            store,
            region,
            account_id,
            patching: tokio::sync::Mutex::new(()),
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

    /// Changes the fields `patch` gives and keeps the others, as one step in
    /// this process (the facilitator's console; the chaos controls).
    pub async fn patch_rate(&self, topic: TopicName, patch: RatePatch) -> Result<Rate, CoreError> {
        patch.validate().map_err(CoreError::Invalid)?;
        let _one_at_a_time = self.patching.lock().await;
        let rate = self.store.patch_rate(topic, patch).await?;
        Ok(logged(topic, rate))
    }

    pub async fn set_rate(&self, topic: TopicName, rate: Rate) -> Result<Rate, CoreError> {
        rate.validate().map_err(CoreError::Invalid)?;
        self.store.put_rate(topic, &rate).await?;
        Ok(logged(topic, rate))
    }
}

fn logged(topic: TopicName, rate: Rate) -> Rate {
    tracing::info!(
        topic = topic.as_str(),
        rate = rate.rate_per_minute,
        paused = rate.paused,
        share = rate.malformed_share,
        "rate set"
    );
    rate
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;
    use parking_lot::Mutex;

    use super::*;
    use crate::error::StoreError;

    /// A store slow to answer a read, as a remote table is: time enough for
    /// another change to read the same rate.
    #[derive(Default)]
    struct SlowStore(Mutex<Vec<(TopicName, Rate)>>);

    #[async_trait]
    impl RateStore for SlowStore {
        async fn rates(&self) -> Result<Vec<(TopicName, Rate)>, StoreError> {
            let read = self.0.lock().clone();
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok(read)
        }

        async fn put_rate(&self, topic: TopicName, rate: &Rate) -> Result<(), StoreError> {
            let mut rates = self.0.lock();
            rates.retain(|(t, _)| *t != topic);
            rates.push((topic, *rate));
            Ok(())
        }
    }

    #[tokio::test]
    async fn concurrent_changes_to_one_topic_both_hold() {
        let rates = RateService::new(Arc::new(SlowStore::default()), "r".into(), "1".into());
        let topic = TopicName::Iridium;
        let (a, b) = tokio::join!(
            rates.patch_rate(
                topic,
                RatePatch {
                    rate_per_minute: Some(120.0),
                    ..Default::default()
                }
            ),
            rates.patch_rate(
                topic,
                RatePatch {
                    malformed_share: Some(0.25),
                    ..Default::default()
                }
            ),
        );
        a.unwrap();
        b.unwrap();
        let stored = rates.rate(topic).await.unwrap();
        assert_eq!(
            (stored.rate_per_minute, stored.malformed_share),
            (120.0, 0.25)
        );
        // An invalid change stores nothing.
        assert!(rates
            .patch_rate(
                topic,
                RatePatch {
                    malformed_share: Some(2.0),
                    ..Default::default()
                }
            )
            .await
            .is_err());
        assert_eq!(rates.rate(topic).await.unwrap(), stored);
    }
}
