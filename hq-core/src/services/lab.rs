//! Lab controls: faults the facilitator injects for the debugging and resiliency
//! labs. Off by default and applied at once.
//!
//! The all-in-one server keeps them in memory only, so a restart always comes
//! back healthy. In the AWS mode the portal Lambda sets them and the
//! fulfillment Lambda applies them: they go through a [`LabStore`], and every
//! instance re-reads it at most every [`LabControls::REFRESH`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::Deserialize;

use crate::clock::Millis;
pub use crate::domain::ReceivingFaults;
use crate::domain::{check_surge, SurgeRecord, TopicName, MAX_RUNNING_SURGES};
use crate::error::CoreError;
use crate::ports::{LabStore, Written};

/// A change to the faults: only the fields given change.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceivingFaultsPatch {
    pub latency_ms: Option<u32>,
    pub latency_random: Option<bool>,
    pub error_share: Option<f64>,
    pub error_status: Option<u16>,
}

impl ReceivingFaultsPatch {
    /// `current` with the fields given changed, if the result is valid.
    fn apply(self, current: ReceivingFaults) -> Result<ReceivingFaults, CoreError> {
        let next = ReceivingFaults {
            latency_ms: self.latency_ms.unwrap_or(current.latency_ms),
            latency_random: self.latency_random.unwrap_or(current.latency_random),
            error_share: self.error_share.unwrap_or(current.error_share),
            error_status: self.error_status.unwrap_or(current.error_status),
        };
        if next.latency_ms > 30_000 {
            return Err(CoreError::Invalid("latencyMs must be at most 30000".into()));
        }
        if !next.error_share.is_finite() || !(0.0..=1.0).contains(&next.error_share) {
            return Err(CoreError::Invalid(
                "errorShare must be between 0 and 1".into(),
            ));
        }
        if !matches!(next.error_status, 500 | 503) {
            return Err(CoreError::Invalid("errorStatus must be 500 or 503".into()));
        }
        Ok(next)
    }
}

/// What the lab controls decide for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub delay_ms: u32,
    /// `Some(status)`: answer this error and store nothing.
    pub fail_with: Option<u16>,
}

#[derive(Default)]
pub struct LabControls {
    receiving: RwLock<ReceivingFaults>,
    /// Where other processes see the faults (AWS mode); `None`: this process only.
    shared: Option<Shared>,
}

struct Shared {
    store: Arc<dyn LabStore>,
    refresh: Duration,
    /// When the store was last read (`None`: never).
    read_at: Mutex<Option<Instant>>,
    /// When this instance last stored a change. A read that started before
    /// it may answer the faults from before the change, and is dropped rather
    /// than undo it. (Time, not versions: an item deleted and written again
    /// starts over at version 1, and must still be taken.)
    written_at: Mutex<Option<Instant>>,
}

impl Shared {
    /// Takes what a read that started at `started` found, unless this
    /// instance stored a change after that read began.
    fn adopt(&self, faults: &RwLock<ReceivingFaults>, value: ReceivingFaults, started: Instant) {
        let written_at = self.written_at.lock();
        if written_at.is_none_or(|w| started >= w) {
            *faults.write() = value;
        }
    }

    /// Takes this instance's own change, just stored.
    fn stored(&self, faults: &RwLock<ReceivingFaults>, value: ReceivingFaults) {
        let mut written_at = self.written_at.lock();
        *written_at = Some(Instant::now());
        *faults.write() = value;
    }
}

impl LabControls {
    /// How stale another instance's view of the faults may be in the AWS mode:
    /// the lab is "applied at once" within this, at one read per instance.
    pub const REFRESH: Duration = Duration::from_secs(2);
    /// How long a stored surge is kept after its end: a publisher that covers
    /// an interval late still finds it.
    pub const SURGE_KEPT: Millis = 3_600_000;

    /// Faults shared through `store` with the other instances, re-read at most
    /// every `refresh` ([`Self::REFRESH`] in HQ).
    pub fn shared(store: Arc<dyn LabStore>, refresh: Duration) -> Self {
        Self {
            receiving: RwLock::default(),
            shared: Some(Shared {
                store,
                refresh,
                read_at: Mutex::new(None),
                written_at: Mutex::new(None),
            }),
        }
    }

    /// Re-reads the shared faults if the last read is older than the refresh
    /// interval. A store that cannot be read keeps the faults as they
    /// were (logged): the lab must not take the fulfillment API down.
    pub async fn refresh(&self) {
        let Some(shared) = &self.shared else { return };
        {
            let mut read_at = shared.read_at.lock();
            if read_at.is_some_and(|t| t.elapsed() < shared.refresh) {
                return;
            }
            // Claimed before the read, so concurrent requests read once.
            *read_at = Some(Instant::now());
        }
        let started = Instant::now();
        match shared.store.receiving_faults().await {
            Ok(f) => shared.adopt(
                &self.receiving,
                f.map(|f| f.value).unwrap_or_default(),
                started,
            ),
            Err(e) => {
                tracing::warn!(error = %e, "reading the lab controls failed; keeping the last ones")
            }
        }
    }

    /// The faults in force (re-read first where they are shared).
    pub async fn receiving(&self) -> ReceivingFaults {
        self.refresh().await;
        *self.receiving.read()
    }

    /// How often a shared change is tried again when another change came
    /// between its read and its write.
    const SET_ATTEMPTS: usize = 5;

    /// Applies a change. In this process alone it is one step under the lock;
    /// where the faults are shared, it patches what the store holds now (not
    /// this instance's copy, which may be up to a refresh old), written only if
    /// nobody changed them since (else read again and retried), and is stored
    /// first, so an error changes nothing.
    pub async fn set_receiving(
        &self,
        patch: ReceivingFaultsPatch,
    ) -> Result<ReceivingFaults, CoreError> {
        let next = match &self.shared {
            None => {
                let mut current = self.receiving.write();
                *current = patch.apply(*current)?;
                *current
            }
            Some(shared) => self.set_shared(shared, patch).await?,
        };
        tracing::warn!(?next, "lab controls for /receiving/ changed");
        Ok(next)
    }

    async fn set_shared(
        &self,
        shared: &Shared,
        patch: ReceivingFaultsPatch,
    ) -> Result<ReceivingFaults, CoreError> {
        for _ in 0..Self::SET_ATTEMPTS {
            let stored = shared.store.receiving_faults().await?;
            let next = patch.apply(stored.map(|f| f.value).unwrap_or_default())?;
            let expected = stored.map(|f| f.version);
            match shared.store.put_receiving_faults(&next, expected).await? {
                Written::Done => {
                    shared.stored(&self.receiving, next);
                    return Ok(next);
                }
                Written::Conflict => continue,
            }
        }
        Err(CoreError::Store(crate::error::StoreError(
            "the lab controls kept changing during this change; try again".into(),
        )))
    }

    /// Whether the controls are shared with other processes (the AWS mode).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Stores a surge of `count` orders on `topic` over `seconds`, starting
    /// `now`, for a publisher in another process. Surges that ended over
    /// [`Self::SURGE_KEPT`] ago are deleted first; at most
    /// [`MAX_RUNNING_SURGES`] may be running or upcoming on one topic.
    pub async fn add_surge(
        &self,
        topic: TopicName,
        count: u32,
        seconds: u32,
        now: Millis,
    ) -> Result<SurgeRecord, CoreError> {
        let Some(shared) = &self.shared else {
            return Err(CoreError::Invalid(
                "no publisher shares surges in this mode".into(),
            ));
        };
        check_surge(count, Duration::from_secs(seconds as u64)).map_err(CoreError::Invalid)?;
        let mut running = 0;
        for old in shared.store.surges().await? {
            if old.ends_at() + Self::SURGE_KEPT < now {
                shared.store.delete_surge(&old).await?;
            } else if old.topic == topic && old.ends_at() >= now {
                running += 1;
            }
        }
        if running >= MAX_RUNNING_SURGES {
            return Err(CoreError::Invalid(
                "too many surges running on this topic".into(),
            ));
        }
        let surge = SurgeRecord {
            id: uuid::Uuid::new_v4().to_string(),
            topic,
            starts_at: now,
            count,
            seconds,
        };
        shared.store.put_surge(&surge).await?;
        tracing::info!(topic = topic.as_str(), count, seconds, "surge stored");
        Ok(surge)
    }

    /// The stored surges (none where the controls are not shared).
    pub async fn surges(&self) -> Result<Vec<SurgeRecord>, CoreError> {
        match &self.shared {
            Some(shared) => Ok(shared.store.surges().await?),
            None => Ok(Vec::new()),
        }
    }

    /// Rolls the dice for one request. Cheap when everything is off; callers
    /// [`refresh`](Self::refresh) first where the faults are shared.
    pub fn verdict(&self) -> Verdict {
        let f = *self.receiving.read();
        let delay_ms = match (f.latency_ms, f.latency_random) {
            (0, _) => 0,
            (ms, false) => ms,
            (ms, true) => rand::random_range(0..=ms),
        };
        let fail_with = (f.error_share > 0.0 && rand::random::<f64>() < f.error_share)
            .then_some(f.error_status);
        Verdict {
            delay_ms,
            fail_with,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::domain::{MAX_SURGE_COUNT, MAX_SURGE_SECONDS};
    use crate::error::StoreError;
    use crate::ports::Versioned;

    #[tokio::test]
    async fn off_by_default_and_validated() {
        let lab = LabControls::default();
        assert_eq!(
            lab.verdict(),
            Verdict {
                delay_ms: 0,
                fail_with: None
            }
        );
        assert!(lab
            .set_receiving(ReceivingFaultsPatch {
                error_share: Some(1.5),
                ..Default::default()
            })
            .await
            .is_err());
        assert!(lab
            .set_receiving(ReceivingFaultsPatch {
                error_status: Some(404),
                ..Default::default()
            })
            .await
            .is_err());
        assert_eq!(lab.receiving().await, ReceivingFaults::default());
        lab.set_receiving(ReceivingFaultsPatch {
            error_share: Some(1.0),
            latency_ms: Some(5),
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(
            lab.verdict(),
            Verdict {
                delay_ms: 5,
                fail_with: Some(503)
            }
        );
    }

    /// One store two instances share, as the Lambdas share a table.
    #[derive(Default)]
    struct Store {
        faults: Mutex<Option<Versioned<ReceivingFaults>>>,
        surges: Mutex<Vec<SurgeRecord>>,
        reads: AtomicUsize,
        broken: AtomicBool,
        /// Stages races: this many of the next reads wait at the barrier
        /// after reading.
        hold: Mutex<Option<(Arc<tokio::sync::Barrier>, usize)>>,
    }

    impl Store {
        fn value(&self) -> ReceivingFaults {
            self.faults.lock().expect("stored").value
        }

        fn hold_reads(&self, reads: usize, parties: usize) -> Arc<tokio::sync::Barrier> {
            let barrier = Arc::new(tokio::sync::Barrier::new(parties));
            *self.hold.lock() = Some((barrier.clone(), reads));
            barrier
        }
    }

    #[async_trait]
    impl LabStore for Store {
        async fn receiving_faults(&self) -> Result<Option<Versioned<ReceivingFaults>>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if self.broken.load(Ordering::SeqCst) {
                return Err(StoreError("unavailable".into()));
            }
            let read = *self.faults.lock();
            let hold = match &mut *self.hold.lock() {
                Some((barrier, n)) if *n > 0 => {
                    *n -= 1;
                    Some(barrier.clone())
                }
                _ => None,
            };
            if let Some(barrier) = hold {
                barrier.wait().await;
            }
            Ok(read)
        }

        async fn put_receiving_faults(
            &self,
            f: &ReceivingFaults,
            expected: Option<u64>,
        ) -> Result<Written, StoreError> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(StoreError("unavailable".into()));
            }
            let mut stored = self.faults.lock();
            if stored.map(|v| v.version) != expected {
                return Ok(Written::Conflict);
            }
            *stored = Some(Versioned {
                value: *f,
                version: Versioned::<ReceivingFaults>::next(expected),
            });
            Ok(Written::Done)
        }

        async fn surges(&self) -> Result<Vec<SurgeRecord>, StoreError> {
            Ok(self.surges.lock().clone())
        }

        async fn put_surge(&self, surge: &SurgeRecord) -> Result<(), StoreError> {
            self.surges.lock().push(surge.clone());
            Ok(())
        }

        async fn delete_surge(&self, surge: &SurgeRecord) -> Result<(), StoreError> {
            self.surges.lock().retain(|s| s.id != surge.id);
            Ok(())
        }
    }

    #[tokio::test]
    async fn shared_faults_reach_the_other_instances_after_the_refresh() {
        let store = Arc::new(Store::default());
        let portal = LabControls::shared(store.clone(), Duration::ZERO);
        // Two fulfillment instances: one within its refresh interval for the
        // whole test, one whose interval is always over.
        let cached = LabControls::shared(store.clone(), Duration::from_secs(3600));
        let fresh = LabControls::shared(store.clone(), Duration::ZERO);

        cached.refresh().await;
        cached.refresh().await;
        assert_eq!(
            store.reads.load(Ordering::SeqCst),
            1,
            "one read per interval"
        );

        let first = portal
            .set_receiving(ReceivingFaultsPatch {
                error_share: Some(1.0),
                error_status: Some(500),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(store.value(), first);
        cached.refresh().await;
        assert_eq!(
            cached.verdict().fail_with,
            None,
            "not re-read within the interval"
        );
        fresh.refresh().await;
        assert_eq!(fresh.verdict().fail_with, Some(500));

        // A change through an instance whose copy is old patches what the
        // store holds, not that copy.
        let set = cached
            .set_receiving(ReceivingFaultsPatch {
                latency_ms: Some(7),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            (set.error_share, set.error_status, set.latency_ms),
            (1.0, 500, 7)
        );
        assert_eq!(store.value(), set);

        // A store that cannot be read keeps the last faults; one that cannot be
        // written refuses the change and changes nothing.
        store.broken.store(true, Ordering::SeqCst);
        fresh.refresh().await;
        assert_eq!(fresh.verdict().fail_with, Some(500));
        assert!(portal
            .set_receiving(ReceivingFaultsPatch {
                error_share: Some(0.0),
                ..Default::default()
            })
            .await
            .is_err());
        store.broken.store(false, Ordering::SeqCst);
        assert_eq!(store.value(), set);
        assert_eq!(portal.receiving().await, set);
    }

    /// Two facilitators change different faults at the same moment, through
    /// two portal instances: both reads happen before either write. The
    /// second write finds the version moved on, reads again and patches the
    /// first one's result, so neither change is lost.
    #[tokio::test]
    async fn concurrent_changes_through_two_instances_both_hold() {
        let store = Arc::new(Store::default());
        let a = LabControls::shared(store.clone(), Duration::ZERO);
        let b = LabControls::shared(store.clone(), Duration::ZERO);
        store.hold_reads(2, 2);
        let (ra, rb) = tokio::join!(
            a.set_receiving(ReceivingFaultsPatch {
                latency_ms: Some(300),
                ..Default::default()
            }),
            b.set_receiving(ReceivingFaultsPatch {
                error_share: Some(0.5),
                ..Default::default()
            }),
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let stored = store.faults.lock().unwrap();
        assert_eq!(
            (stored.value.latency_ms, stored.value.error_share),
            (300, 0.5),
            "both changes are stored"
        );
        assert_eq!(stored.version, 2);
        // The later of the two answers what is stored; the earlier its own step.
        let (first, last) = if ra.error_share == 0.5 {
            (rb, ra)
        } else {
            (ra, rb)
        };
        assert_eq!(last, stored.value);
        assert_ne!(first, stored.value);
        assert_eq!(store.reads.load(Ordering::SeqCst), 3, "one retry");
    }

    /// A refresh whose read started before this instance's own change and
    /// answers after it does not bring the old faults back.
    #[tokio::test]
    async fn a_stale_read_does_not_undo_this_instances_change() {
        let store = Arc::new(Store::default());
        let lab = Arc::new(LabControls::shared(store.clone(), Duration::ZERO));
        let release = store.hold_reads(1, 2);
        let refresh = tokio::spawn({
            let lab = lab.clone();
            async move { lab.refresh().await }
        });
        // The refresh has read "never set" and waits; the change goes through.
        while store.reads.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let set = lab
            .set_receiving(ReceivingFaultsPatch {
                error_share: Some(1.0),
                ..Default::default()
            })
            .await
            .unwrap();
        release.wait().await;
        refresh.await.unwrap();
        assert_eq!(*lab.receiving.read(), set, "the old read was dropped");
        assert_eq!(lab.verdict().fail_with, Some(503));
    }

    /// Versions may start over (the item deleted, then written again at
    /// version 1): another instance still takes the new faults.
    #[tokio::test]
    async fn faults_written_again_from_scratch_are_taken() {
        let store = Arc::new(Store::default());
        let portal = LabControls::shared(store.clone(), Duration::ZERO);
        let fulfillment = LabControls::shared(store.clone(), Duration::ZERO);
        for share in [0.1, 0.2, 0.3] {
            portal
                .set_receiving(ReceivingFaultsPatch {
                    error_share: Some(share),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        assert_eq!(fulfillment.receiving().await.error_share, 0.3);
        *store.faults.lock() = None;
        assert_eq!(fulfillment.receiving().await, ReceivingFaults::default());
        portal
            .set_receiving(ReceivingFaultsPatch {
                error_share: Some(1.0),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(store.faults.lock().unwrap().version, 1);
        assert_eq!(fulfillment.receiving().await.error_share, 1.0);
    }

    #[tokio::test]
    async fn surges_are_checked_stored_limited_per_topic_and_pruned() {
        use crate::domain::TopicName::{Iridium, Orders};
        assert!(LabControls::default()
            .add_surge(Orders, 10, 60, 0)
            .await
            .is_err());
        assert!(LabControls::default().surges().await.unwrap().is_empty());

        let store = Arc::new(Store::default());
        let lab = LabControls::shared(store.clone(), Duration::ZERO);
        let now = 10_000_000;
        let old = |id: &str, starts_at| SurgeRecord {
            id: id.into(),
            topic: Orders,
            starts_at,
            count: 10,
            seconds: 60,
        };
        store
            .put_surge(&old("long-over", now - LabControls::SURGE_KEPT - 61_000))
            .await
            .unwrap();
        store
            .put_surge(&old("just-over", now - 120_000))
            .await
            .unwrap();

        for (count, seconds) in [
            (0, 60),
            (MAX_SURGE_COUNT + 1, 60),
            (10, MAX_SURGE_SECONDS + 1),
        ] {
            let e = lab.add_surge(Orders, count, seconds, now).await;
            assert!(matches!(e, Err(CoreError::Invalid(_))), "{e:?}");
        }
        let mut added = Vec::new();
        for _ in 0..MAX_RUNNING_SURGES {
            added.push(lab.add_surge(Orders, 10, 60, now).await.unwrap());
        }
        let refused = lab.add_surge(Orders, 10, 60, now).await;
        assert!(matches!(refused, Err(CoreError::Invalid(_))), "{refused:?}");
        // The limit is per topic.
        let iridium = lab.add_surge(Iridium, 5, 0, now).await.unwrap();
        assert_eq!(
            (iridium.starts_at, iridium.count, iridium.seconds),
            (now, 5, 0)
        );

        let stored = lab.surges().await.unwrap();
        assert_eq!(
            stored.len(),
            1 + MAX_RUNNING_SURGES + 1,
            "the long-over one is pruned"
        );
        assert!(stored.iter().any(|s| s.id == "just-over"));
        assert!(!stored.iter().any(|s| s.id == "long-over"));
        assert!(added.iter().chain([&iridium]).all(|a| stored.contains(a)));
    }
}
