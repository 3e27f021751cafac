//! Fulfillment ingest: the hot path behind `POST /receiving/`.
//!
//! Two steps, in API Gateway's order: [`FulfillmentService::admit`] checks the key
//! and the usage plan before the body is read; [`FulfillmentService::record`]
//! parses the body and returns once the record is durable.

use std::sync::Arc;

use crate::clock::now_millis;
use crate::domain::{Amounts, AmountsError, Fulfillment};
use crate::error::StoreError;
use crate::ports::{AccountStore, Ledger};
use crate::services::{Admission, KeyCache, KeyEntry, LabControls};

#[derive(Debug)]
pub enum IngestError {
    /// Missing, unknown, revoked or expired key.
    Forbidden,
    Throttled,
    QuotaExceeded,
    Invalid(AmountsError),
    /// A lab control answered this request with an error (nothing stored).
    Injected(u16),
    Store(StoreError),
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Where a fulfillment came from, as the HTTP edge saw it.
pub struct IngestRequest {
    pub request_id: String,
    pub trace_id: Option<String>,
}

pub struct FulfillmentService {
    accounts: Arc<dyn AccountStore>,
    ledger: Arc<dyn Ledger>,
    keys: Arc<KeyCache>,
    lab: Arc<LabControls>,
    /// Off where API Gateway already enforced the usage plan.
    enforce_plan: bool,
}

/// Longer than any key HQ issues; anything longer is refused without a lookup.
const MAX_KEY_LEN: usize = 128;

impl FulfillmentService {
    pub fn new(
        accounts: Arc<dyn AccountStore>,
        ledger: Arc<dyn Ledger>,
        keys: Arc<KeyCache>,
        lab: Arc<LabControls>,
        enforce_plan: bool,
    ) -> Self {
        Self {
            lab,
            accounts,
            ledger,
            keys,
            enforce_plan,
        }
    }

    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }

    /// Resolves the key and applies the usage plan.
    pub async fn admit(&self, api_key: Option<&str>) -> Result<Arc<KeyEntry>, IngestError> {
        let key = api_key
            .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
            .ok_or(IngestError::Forbidden)?;
        let entry = self
            .keys
            .lookup(self.accounts.as_ref(), key)
            .await?
            .ok_or(IngestError::Forbidden)?;
        let now = now_millis();
        if !entry.usable(now) {
            return Err(IngestError::Forbidden);
        }
        if self.enforce_plan {
            match entry.admit(self.keys.plan(), now) {
                Admission::Admitted => {}
                Admission::Throttled => return Err(IngestError::Throttled),
                Admission::QuotaExceeded => return Err(IngestError::QuotaExceeded),
            }
        }
        Ok(entry)
    }

    /// Validates the body and stores the record durably; answers its id. The
    /// record itself moves into the ledger (no copy on the hot path).
    pub async fn record(
        &self,
        entry: &KeyEntry,
        body: &[u8],
        req: IngestRequest,
    ) -> Result<uuid::Uuid, IngestError> {
        self.lab.refresh().await;
        let verdict = self.lab.verdict();
        if verdict.delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(verdict.delay_ms as u64)).await;
        }
        if let Some(status) = verdict.fail_with {
            return Err(IngestError::Injected(status));
        }
        let amounts = Amounts::parse(body).map_err(IngestError::Invalid)?;
        let at = now_millis();
        let fulfillment = Fulfillment {
            id: uuid::Uuid::now_v7(),
            username: entry.username.clone(),
            key_id: entry.key_id.clone(),
            at,
            amounts,
            request_id: req.request_id,
            trace_id: req.trace_id,
        };
        Ok(self.ledger.record(fulfillment).await?)
    }
}
