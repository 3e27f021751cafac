//! Subscriptions and topic settings of the embedded SNS engine.
//!
//! | table | key | value |
//! |---|---|---|
//! | `sns_subscriptions` | subscription ARN | JSON `SubscriptionRecord` (status, confirmation token, owner, attributes) |
//! | `sns_topics` | topic name | JSON `TopicRecord` (ARN, attributes such as `SignatureVersion`, `DeliveryPolicy`) |
//!
//! Both are small (one row per subscription or topic) and written only when a
//! subscription or attribute changes, never on the publish path; the engine
//! keeps the working copy in memory and loads these rows at start.

use async_trait::async_trait;
use hq_core::domain::{SubscriptionRecord, TopicRecord};
use hq_core::ports::SubscriptionStore;
use hq_core::StoreError;
use redb::{ReadableTable, TableDefinition};

use crate::{err, from_json, to_json, EmbeddedStore};

pub(crate) const SUBSCRIPTIONS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("sns_subscriptions");
pub(crate) const TOPICS: TableDefinition<&str, &[u8]> = TableDefinition::new("sns_topics");

/// Creates the tables this module uses; called from `schema::prepare`.
pub(crate) fn open_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(SUBSCRIPTIONS).map_err(err)?;
    txn.open_table(TOPICS).map_err(err)?;
    Ok(())
}

#[async_trait]
impl SubscriptionStore for EmbeddedStore {
    async fn put_subscription(&self, record: &SubscriptionRecord) -> Result<(), StoreError> {
        let (key, value) = (record.arn.clone(), to_json(record)?);
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err)?;
            txn.open_table(SUBSCRIPTIONS)
                .map_err(err)?
                .insert(key.as_str(), value.as_slice())
                .map_err(err)?;
            txn.commit().map_err(err)
        })
        .await
    }

    async fn delete_subscription(&self, arn: &str) -> Result<bool, StoreError> {
        let key = arn.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err)?;
            let existed = txn
                .open_table(SUBSCRIPTIONS)
                .map_err(err)?
                .remove(key.as_str())
                .map_err(err)?
                .is_some();
            txn.commit().map_err(err)?;
            Ok(existed)
        })
        .await
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(err)?;
            let t = txn.open_table(SUBSCRIPTIONS).map_err(err)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(err)? {
                let (_, v) = row.map_err(err)?;
                out.push(from_json(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn put_topic(&self, topic: &TopicRecord) -> Result<(), StoreError> {
        let (key, value) = (topic.name.clone(), to_json(topic)?);
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err)?;
            txn.open_table(TOPICS)
                .map_err(err)?
                .insert(key.as_str(), value.as_slice())
                .map_err(err)?;
            txn.commit().map_err(err)
        })
        .await
    }

    async fn topics(&self) -> Result<Vec<TopicRecord>, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(err)?;
            let t = txn.open_table(TOPICS).map_err(err)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(err)? {
                let (_, v) = row.map_err(err)?;
                out.push(from_json(v.value())?);
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hq_core::domain::{Protocol, SubscriptionStatus, Username};

    use super::*;

    fn record(arn: &str) -> SubscriptionRecord {
        SubscriptionRecord {
            arn: arn.into(),
            topic_arn: "arn:aws:sns:us-west-2:000000000000:orderTopic".into(),
            protocol: Protocol::Http,
            endpoint: "http://10.0.0.5:5000/order/".into(),
            owner: Some(Username::parse("alice").unwrap()),
            status: SubscriptionStatus::PendingConfirmation,
            token: "tok".into(),
            created_at: 1,
            confirmed_at: None,
            attributes: BTreeMap::from([("RawMessageDelivery".into(), "false".into())]),
        }
    }

    #[tokio::test]
    async fn subscriptions_and_topics_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            store.put_subscription(&record("arn:1")).await.unwrap();
            let mut confirmed = record("arn:2");
            confirmed.status = SubscriptionStatus::Confirmed;
            store.put_subscription(&confirmed).await.unwrap();
            store.put_subscription(&record("arn:3")).await.unwrap();
            assert!(store.delete_subscription("arn:3").await.unwrap());
            assert!(!store.delete_subscription("arn:3").await.unwrap());
            let topic = TopicRecord {
                name: "iridium".into(),
                arn: "arn:aws:sns:us-west-2:000000000000:iridium".into(),
                attributes: BTreeMap::from([("SignatureVersion".into(), "2".into())]),
                created_at: 5,
            };
            store.put_topic(&topic).await.unwrap();
        }
        // The group-commit thread lets go of the file just after the drop.
        let mut reopened = EmbeddedStore::open(dir.path());
        for _ in 0..100 {
            if reopened.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            reopened = EmbeddedStore::open(dir.path());
        }
        let store = reopened.unwrap();
        let mut subs = store.subscriptions().await.unwrap();
        subs.sort_by(|a, b| a.arn.cmp(&b.arn));
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[0], record("arn:1"));
        assert_eq!(subs[1].status, SubscriptionStatus::Confirmed);
        let topics = store.topics().await.unwrap();
        assert_eq!(topics.len(), 1);
        assert_eq!(topics[0].attributes["SignatureVersion"], "2");
    }
}
