//! The in-memory cache in front of key lookups: the fulfillment hot path resolves
//! a key without touching storage once it has been seen.
//!
//! Rotation and revocation remove the old value at once. A lookup that raced with
//! such a change is not allowed to put a stale entry back: every invalidation bumps
//! an epoch, and a loader only inserts if the epoch it started under is unchanged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::clock::Millis;
use crate::domain::{KeyId, KeyRecord, Username};
use crate::error::StoreError;
use crate::ports::AccountStore;
use crate::services::usage_plan::{Admission, Limiter, UsagePlan};

/// A resolved key and its usage-plan state.
#[derive(Debug)]
pub struct KeyEntry {
    pub username: Username,
    pub key_id: KeyId,
    pub expires_at: Millis,
    pub revoked: bool,
    loaded: Instant,
    limiter: Mutex<Limiter>,
}

impl KeyEntry {
    pub fn usable(&self, now: Millis) -> bool {
        !self.revoked && now < self.expires_at
    }

    pub fn admit(&self, plan: &UsagePlan, wall: Millis) -> Admission {
        self.limiter.lock().admit(plan, Instant::now(), wall)
    }
}

pub struct KeyCache {
    entries: RwLock<HashMap<Box<str>, Arc<KeyEntry>>>,
    epoch: AtomicU64,
    plan: UsagePlan,
    /// How long an entry may be trusted. `None` when this process makes every key
    /// change itself (all-in-one); a time when other processes may change keys
    /// (several Lambda instances).
    ttl: Option<Duration>,
}

impl KeyCache {
    pub fn new(plan: UsagePlan, ttl: Option<Duration>) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            plan,
            ttl,
        }
    }

    pub fn plan(&self) -> &UsagePlan {
        &self.plan
    }

    /// Resolves a key value, from memory when possible.
    pub async fn lookup(
        &self,
        store: &dyn AccountStore,
        value: &str,
    ) -> Result<Option<Arc<KeyEntry>>, StoreError> {
        if let Some(e) = self.entries.read().get(value) {
            if self.ttl.is_none_or(|ttl| e.loaded.elapsed() < ttl) {
                return Ok(Some(e.clone()));
            }
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let Some((username, record)) = store.find_key(value).await? else {
            return Ok(None);
        };
        let entry = Arc::new(self.entry(username, &record));
        let mut map = self.entries.write();
        if self.epoch.load(Ordering::Acquire) == epoch {
            map.insert(value.into(), entry.clone());
        }
        Ok(Some(entry))
    }

    fn entry(&self, username: Username, record: &KeyRecord) -> KeyEntry {
        KeyEntry {
            username,
            key_id: record.id.clone(),
            expires_at: record.expires_at,
            revoked: record.revoked,
            loaded: Instant::now(),
            limiter: Mutex::new(Limiter::new(&self.plan)),
        }
    }

    /// Forgets a key value at once (rotation, revocation, reset).
    pub fn invalidate(&self, value: &str) {
        let mut map = self.entries.write();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        map.remove(value);
    }

    pub fn clear(&self) {
        let mut map = self.entries.write();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }
}
