//! The ports: what the domain needs from the outside, as traits.
//!
//! Each method is one atomic step a DynamoDB table can do with a single-item
//! conditional write or one `TransactWriteItems`, so the AWS adapters implement
//! the same contract as the embedded store without weaker guarantees.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::domain::{
    Fulfillment, KeyId, KeyRecord, Rate, RatePatch, ReceivingFaults, SurgeRecord, TopicName,
    UserRecord, UserTotals, Username,
};
use crate::error::StoreError;

/// A signed-in session, stored under the SHA-256 of its token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub username: Username,
    pub expires_at: Millis,
}

/// Outcome of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Done,
    /// The condition did not hold (the username exists, the key changed meanwhile).
    Conflict,
}

/// A stored value and its version, for writes conditional on the version.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

impl<T> Versioned<T> {
    /// The version a write stores when it expects `expected` (`None`: never
    /// set; 0: stored before versions existed).
    pub fn next(expected: Option<u64>) -> u64 {
        expected.map_or(1, |v| v + 1)
    }
}

/// Attendee accounts, their API key and their sessions.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates the account unless the username exists (a conditional put).
    async fn create_user(&self, user: &UserRecord) -> Result<Written, StoreError>;
    async fn get_user(&self, username: &Username) -> Result<Option<UserRecord>, StoreError>;
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;
    /// Replaces the user's key if its current id is `expected` (compare-and-set,
    /// `None` meaning "has no key yet") and keeps the lookup by key value in step:
    /// the old value stops resolving in the same write.
    async fn set_key(
        &self,
        username: &Username,
        expected: Option<&KeyId>,
        new: &KeyRecord,
    ) -> Result<Written, StoreError>;
    /// Resolves a key value to its owner and record.
    async fn find_key(&self, value: &str) -> Result<Option<(Username, KeyRecord)>, StoreError>;
    /// Deletes every account, key and session (the facilitator's event reset).
    async fn clear_accounts(&self) -> Result<(), StoreError>;

    async fn put_session(&self, digest: &[u8; 32], session: &Session) -> Result<(), StoreError>;
    async fn get_session(&self, digest: &[u8; 32]) -> Result<Option<Session>, StoreError>;
    async fn delete_session(&self, digest: &[u8; 32]) -> Result<(), StoreError>;
}

/// Fulfillment records and the per-attendee totals kept with them.
#[async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// Stores the record and adds it to its owner's totals in one atomic, durable
    /// write. Returns only once both survive a crash, with the id the record is
    /// stored under: the one given, or a later UUIDv7 where the store numbers
    /// records in its own commit order (the embedded store does, so that its
    /// blocks of records never overlap).
    async fn record(&self, fulfillment: Fulfillment) -> Result<uuid::Uuid, StoreError>;
    async fn get(&self, id: uuid::Uuid) -> Result<Option<Fulfillment>, StoreError>;
    /// How many records exist (admin and consistency checks; may scan).
    async fn count(&self) -> Result<u64, StoreError>;
    /// Records in id (= time) order after `after`, at most `limit` (export, checks).
    async fn list(
        &self,
        after: Option<uuid::Uuid>,
        limit: usize,
    ) -> Result<Vec<Fulfillment>, StoreError>;
    /// Every attendee's totals: one item per attendee, not per record.
    async fn totals(&self) -> Result<Vec<UserTotals>, StoreError>;
    /// Deletes every record and total (the facilitator's event reset).
    async fn clear(&self) -> Result<(), StoreError>;
}

/// The gateway in front of the fulfillment API, where a key must also exist:
/// API Gateway's API keys and usage plan in AWS; nothing in the all-in-one mode,
/// where HQ enforces keys itself ([`NoGateway`]).
#[async_trait]
pub trait KeyGateway: Send + Sync + 'static {
    /// Makes a newly issued key usable at the gateway.
    async fn enable(&self, username: &Username, key: &KeyRecord) -> Result<(), StoreError>;
    /// Stops a key at the gateway (rotated away or revoked).
    async fn disable(&self, username: &Username, key: &KeyRecord) -> Result<(), StoreError>;
}

/// No gateway: HQ checks keys itself (the all-in-one mode).
pub struct NoGateway;

#[async_trait]
impl KeyGateway for NoGateway {
    async fn enable(&self, _: &Username, _: &KeyRecord) -> Result<(), StoreError> {
        Ok(())
    }
    async fn disable(&self, _: &Username, _: &KeyRecord) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The running order publisher, as the facilitator steers it.
pub trait OrderStream: Send + Sync + 'static {
    /// Rates were changed in the [`RateStore`]: apply them now.
    fn rates_changed(&self);
    /// Publishes `count` extra orders spread over `seconds`.
    fn surge(&self, topic: TopicName, count: u32, seconds: u32) -> Result<(), String>;
    /// Orders published so far, per topic.
    fn published(&self) -> Vec<(TopicName, u64)>;
}

/// Per-topic order rates, which survive restarts.
#[async_trait]
pub trait RateStore: Send + Sync + 'static {
    /// The stored rates; topics never set are absent (the caller applies defaults).
    async fn rates(&self) -> Result<Vec<(TopicName, Rate)>, StoreError>;
    async fn put_rate(&self, topic: TopicName, rate: &Rate) -> Result<(), StoreError>;
    /// Changes the fields `patch` gives and keeps the others; answers the rate
    /// now stored. A store shared by several processes writes only the given
    /// fields, atomically (DynamoDB: one `UpdateItem`), so concurrent changes
    /// of different fields all hold. This default reads, then writes: callers
    /// in one process take turns (`RateService::patch_rate`).
    async fn patch_rate(&self, topic: TopicName, patch: RatePatch) -> Result<Rate, StoreError> {
        let current = self
            .rates()
            .await?
            .into_iter()
            .find(|(t, _)| *t == topic)
            .map_or_else(Rate::default, |(_, r)| r);
        let next = current.patched(patch);
        self.put_rate(topic, &next).await?;
        Ok(next)
    }
}

/// The lab controls, where more than one process applies them (the AWS mode:
/// the portal Lambda sets them; every fulfillment Lambda instance reads the
/// faults, the publisher Lambda the surges).
#[async_trait]
pub trait LabStore: Send + Sync + 'static {
    /// The faults and the version they were stored as; `None` when never set
    /// (everything off).
    async fn receiving_faults(&self) -> Result<Option<Versioned<ReceivingFaults>>, StoreError>;
    /// Stores `faults` as the next version if the stored version is still
    /// `expected` (`None`: never set); `Conflict` (nothing written) if another
    /// change came first. Two facilitators' changes then never undo each other.
    async fn put_receiving_faults(
        &self,
        faults: &ReceivingFaults,
        expected: Option<u64>,
    ) -> Result<Written, StoreError>;
    /// Every stored surge, running, upcoming or over.
    async fn surges(&self) -> Result<Vec<SurgeRecord>, StoreError>;
    async fn put_surge(&self, surge: &SurgeRecord) -> Result<(), StoreError>;
    async fn delete_surge(&self, surge: &SurgeRecord) -> Result<(), StoreError>;
}

/// The workshop's downloadable files where they live outside this process
/// (the AWS mode: an S3 bucket). Paths are relative and `/`-separated, and
/// the caller has checked them (no empty, `.`-led or `..` parts).
#[async_trait]
pub trait AssetStore: Send + Sync + 'static {
    /// The file at `path`, or `None` if there is none.
    async fn file(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The names directly inside folder `path` (`""`: the top), folders with
    /// a trailing `/`, sorted; `None` if there is no such folder.
    async fn folder(&self, path: &str) -> Result<Option<Vec<String>>, StoreError>;
}

mod order_bus;
pub use order_bus::*;
