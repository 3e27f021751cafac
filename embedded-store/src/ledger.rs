//! The ledger port over redb and the journal's overlay. Reads hold the
//! applier's gate, so a record moving from the overlay into redb is seen once.

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
        let ledger = self.ledger.clone();
        self.blocking(move |db| {
            let _gate = ledger.gate.read();
            if let Some(f) = ledger.overlay.lock().get(&id) {
                return Ok(Some(f.as_ref().clone()));
            }
            let txn = db.begin_read().map_err(err)?;
            let t = txn.open_table(FULFILLMENTS).map_err(err)?;
            let v = t.get(id.as_bytes().as_slice()).map_err(err)?;
            v.map(|v| from_json(v.value())).transpose()
        })
        .await
    }

    async fn count(&self) -> Result<u64, StoreError> {
        let ledger = self.ledger.clone();
        self.blocking(move |db| {
            let _gate = ledger.gate.read();
            let txn = db.begin_read().map_err(err)?;
            let t = txn.open_table(FULFILLMENTS).map_err(err)?;
            Ok(t.len().map_err(err)? + ledger.overlay.lock().len() as u64)
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
            let first = after.map_or(uuid::Uuid::nil(), |a| a);
            let is_after = |id: uuid::Uuid| after.is_none_or(|a| id > a);
            let recent: Vec<Fulfillment> = ledger
                .overlay
                .lock()
                .range(first..)
                .filter(|(id, _)| is_after(**id))
                .take(limit)
                .map(|(_, f)| f.as_ref().clone())
                .collect();
            let txn = db.begin_read().map_err(err)?;
            let t = txn.open_table(FULFILLMENTS).map_err(err)?;
            let mut stored = Vec::new();
            for row in t.range(first.as_bytes().as_slice()..).map_err(err)? {
                let (_, v) = row.map_err(err)?;
                let f: Fulfillment = from_json(v.value())?;
                if !is_after(f.id) {
                    continue;
                }
                stored.push(f);
                if stored.len() >= limit {
                    break;
                }
            }
            // Both sorted by id: merge, keep the first `limit`.
            let mut out = Vec::with_capacity(limit.min(stored.len() + recent.len()));
            let (mut a, mut b) = (stored.into_iter().peekable(), recent.into_iter().peekable());
            while out.len() < limit {
                let take_a = match (a.peek(), b.peek()) {
                    (Some(x), Some(y)) => x.id < y.id,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => break,
                };
                out.extend(if take_a { a.next() } else { b.next() });
            }
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
