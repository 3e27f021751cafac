use async_trait::async_trait;
use hq_core::domain::{Fulfillment, UserTotals};
use hq_core::ports::Ledger;
use hq_core::StoreError;
use redb::ReadableTableMetadata;

use crate::schema::FULFILLMENTS;
use crate::{err, from_json, EmbeddedStore};

#[async_trait]
impl Ledger for EmbeddedStore {
    async fn record(&self, fulfillment: Fulfillment) -> Result<(), StoreError> {
        self.writer.record(fulfillment).await
    }

    async fn get(&self, id: uuid::Uuid) -> Result<Option<Fulfillment>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err)?;
            let t = txn.open_table(FULFILLMENTS).map_err(err)?;
            let v = t.get(id.as_bytes().as_slice()).map_err(err)?;
            v.map(|v| from_json(v.value())).transpose()
        })
        .await
    }

    async fn count(&self) -> Result<u64, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(err)?;
            let t = txn.open_table(FULFILLMENTS).map_err(err)?;
            t.len().map_err(err)
        })
        .await
    }

    async fn list(
        &self,
        after: Option<uuid::Uuid>,
        limit: usize,
    ) -> Result<Vec<Fulfillment>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err)?;
            let t = txn.open_table(FULFILLMENTS).map_err(err)?;
            let start = after.map(|a| *a.as_bytes()).unwrap_or([0; 16]);
            let mut out = Vec::new();
            for row in t.range(start.as_slice()..).map_err(err)? {
                let (k, v) = row.map_err(err)?;
                if after.is_some() && k.value() == start.as_slice() {
                    continue;
                }
                out.push(from_json(v.value())?);
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        // Through the writer, so no batch in flight can land after the clear.
        self.writer.clear().await
    }

    async fn totals(&self) -> Result<Vec<UserTotals>, StoreError> {
        // In memory, exact as of the last commit; no disk read however many records.
        Ok(self.aggregates.lock().totals())
    }
}
