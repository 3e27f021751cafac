use async_trait::async_trait;
use hq_core::domain::{Fulfillment, UserTotals};
use hq_core::ports::Ledger;
use hq_core::StoreError;
use redb::{ReadableTable, ReadableTableMetadata};

use crate::schema::{FULFILLMENTS, TOTALS};
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

    async fn totals(&self) -> Result<Vec<UserTotals>, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(err)?;
            let t = txn.open_table(TOTALS).map_err(err)?;
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
