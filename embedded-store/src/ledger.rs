//! The ledger port over redb's blocks and the journal's overlay. Reads hold
//! the applier's gate, so a record moving from the overlay into redb is seen
//! once.

use crate::schema::{BLOCKS, META};
use crate::{blocks, err, EmbeddedStore};
use async_trait::async_trait;
use hq_core::domain::{Fulfillment, UserTotals};
use hq_core::ports::Ledger;
use hq_core::StoreError;

#[async_trait]
impl Ledger for EmbeddedStore {
    async fn record(&self, fulfillment: Fulfillment) -> Result<uuid::Uuid, StoreError> {
        self.writer.record(fulfillment).await
    }

    async fn get(&self, id: uuid::Uuid) -> Result<Option<Fulfillment>, StoreError> {
        let ledger = self.ledger.clone();
        self.blocking(move |db| {
            let _gate = ledger.gate.read();
            if let Some(f) = ledger.overlay.lock().get(id) {
                return Ok(Some(f.clone()));
            }
            let txn = db.begin_read().map_err(err)?;
            blocks::find(&txn.open_table(BLOCKS).map_err(err)?, id)
        })
        .await
    }

    async fn count(&self) -> Result<u64, StoreError> {
        let ledger = self.ledger.clone();
        self.blocking(move |db| {
            let _gate = ledger.gate.read();
            let txn = db.begin_read().map_err(err)?;
            let stored = blocks::count(&txn.open_table(META).map_err(err)?)?;
            Ok(stored + ledger.overlay.lock().len() as u64)
        })
        .await
    }

    async fn list(
        &self,
        after: Option<uuid::Uuid>,
        limit: usize,
    ) -> Result<Vec<Fulfillment>, StoreError> {
        let ledger = self.ledger.clone();
        self.blocking(move |db| {
            let _gate = ledger.gate.read();
            let txn = db.begin_read().map_err(err)?;
            let mut out = blocks::list(&txn.open_table(BLOCKS).map_err(err)?, after, limit)?;
            // The overlay's records were numbered after every stored one.
            let overlay = ledger.overlay.lock();
            let recent = overlay
                .after(after)
                .take(limit.saturating_sub(out.len()))
                .cloned();
            out.extend(recent);
            Ok(out)
        })
        .await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        // Through the writer, so no group in flight can land after the clear.
        self.writer.clear().await
    }

    async fn totals(&self) -> Result<Vec<UserTotals>, StoreError> {
        // In memory, exact as of the last synced group; no disk read however
        // many records exist.
        Ok(self.ledger.aggregates.lock().totals())
    }
}
