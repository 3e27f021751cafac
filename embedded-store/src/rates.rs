use async_trait::async_trait;
use hq_core::domain::{Rate, TopicName};
use hq_core::ports::RateStore;
use hq_core::StoreError;
use redb::ReadableTable;

use crate::schema::RATES;
use crate::{err, from_json, to_json, EmbeddedStore};

#[async_trait]
impl RateStore for EmbeddedStore {
    async fn rates(&self) -> Result<Vec<(TopicName, Rate)>, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(err)?;
            let t = txn.open_table(RATES).map_err(err)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(err)? {
                let (k, v) = row.map_err(err)?;
                if let Some(topic) = TopicName::parse(k.value()) {
                    out.push((topic, from_json(v.value())?));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn put_rate(&self, topic: TopicName, rate: &Rate) -> Result<(), StoreError> {
        let value = to_json(rate)?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err)?;
            txn.open_table(RATES)
                .map_err(err)?
                .insert(topic.as_str(), value.as_slice())
                .map_err(err)?;
            txn.commit().map_err(err)
        })
        .await
    }
}
