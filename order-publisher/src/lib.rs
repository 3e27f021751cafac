//! The order publisher: per-topic order streams at the facilitator's rates.
//!
//! * [`schedule`] is the core, "what to publish when", as plain clock-injected
//!   code: rates, pause, malformed share, surges, drift-free over hours. The
//!   scheduled Lambda of the deployed mode reuses it ([`schedule::due_indices`]
//!   answers "what is due in this interval" without state).
//! * [`OrderPublisher`] is the embedded runner of the all-in-one mode: one task
//!   that reads rates through [`RateService`], publishes through the
//!   [`OrderBus`] port (so it never knows which SNS it talks to), picks up rate
//!   changes at once when told ([`OrderPublisher::rates_changed`]) and at the
//!   latest after `poll_interval`, and stops cleanly on [`OrderPublisher::shutdown`].

pub mod schedule;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use hq_core::domain::TopicName;
use hq_core::ports::OrderBus;
use hq_core::services::RateService;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

pub use schedule::{Order, Schedule, ScheduleStats};

/// How the runner behaves.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Rates are re-read at least this often (besides [`OrderPublisher::rates_changed`]).
    pub poll_interval: Duration,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
        }
    }
}

/// Per-topic figures for the admin API and `/metrics`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TopicStats {
    pub topic: &'static str,
    pub published: u64,
    pub malformed: u64,
    pub skipped_late: u64,
    pub publish_errors: u64,
}

struct Shared {
    schedules: Mutex<BTreeMap<TopicName, Schedule>>,
    wake: Notify,
    origin: Instant,
    published: [AtomicU64; 3],
    errors: [AtomicU64; 3],
}

fn slot(t: TopicName) -> usize {
    match t {
        TopicName::Orders => 0,
        TopicName::Iridium => 1,
        TopicName::Magnesite => 2,
    }
}

impl Shared {
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }
}

/// The embedded runner. See the crate docs.
pub struct OrderPublisher {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl OrderPublisher {
    /// Reads the current rates and starts publishing.
    pub async fn start(
        rates: Arc<RateService>,
        bus: Arc<dyn OrderBus>,
        config: PublisherConfig,
    ) -> Result<Arc<Self>, hq_core::CoreError> {
        let origin = Instant::now();
        let mut schedules = BTreeMap::new();
        for t in TopicName::ALL {
            schedules.insert(t, Schedule::new(t, rates.rate(t).await?, Duration::ZERO));
        }
        let shared = Arc::new(Shared {
            schedules: Mutex::new(schedules),
            wake: Notify::new(),
            origin,
            published: Default::default(),
            errors: Default::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(shared.clone(), rates, bus, config, stopped));
        Ok(Arc::new(Self {
            shared,
            stop,
            task: Mutex::new(Some(task)),
        }))
    }

    /// Tells the runner the rates changed (call after `RateService::set_rate`):
    /// it re-reads them at once.
    pub fn rates_changed(&self) {
        self.shared.wake.notify_one();
    }

    /// Publishes `count` extra orders on `topic`, spread evenly over `seconds`.
    pub fn surge(&self, topic: TopicName, count: u32, seconds: u32) -> Result<(), String> {
        let now = self.shared.now();
        self.shared
            .schedules
            .lock()
            .get_mut(&topic)
            .ok_or_else(|| "unknown topic".to_string())?
            .surge(count, Duration::from_secs(seconds as u64), now)?;
        tracing::info!(topic = topic.as_str(), count, seconds, "surge scheduled");
        self.shared.wake.notify_one();
        Ok(())
    }

    pub fn stats(&self) -> Vec<TopicStats> {
        let schedules = self.shared.schedules.lock();
        TopicName::ALL
            .iter()
            .map(|&t| {
                let s = schedules.get(&t).map(|s| s.stats()).unwrap_or_default();
                TopicStats {
                    topic: t.as_str(),
                    published: self.shared.published[slot(t)].load(Relaxed),
                    malformed: s.malformed,
                    skipped_late: s.skipped_late,
                    publish_errors: self.shared.errors[slot(t)].load(Relaxed),
                }
            })
            .collect()
    }

    /// Stops publishing and waits for the runner to end (it finishes the
    /// publish in progress, if any).
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn run(
    shared: Arc<Shared>,
    rates: Arc<RateService>,
    bus: Arc<dyn OrderBus>,
    config: PublisherConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let mut next_poll = Instant::now() + config.poll_interval;
    let mut reload = false;
    loop {
        if *stopped.borrow() {
            return;
        }
        if reload || Instant::now() >= next_poll {
            reload = false;
            next_poll = Instant::now() + config.poll_interval;
            match rates.topics().await {
                Ok(views) => {
                    let now = shared.now();
                    let mut schedules = shared.schedules.lock();
                    for v in views {
                        let Some(t) = TopicName::parse(v.name) else {
                            continue;
                        };
                        if let Some(sched) = schedules.get_mut(&t) {
                            if sched.rate() != v.rate {
                                sched.set_rate(v.rate, now);
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading order rates failed"),
            }
        }
        let due: Vec<Order> = {
            let now = shared.now();
            let mut schedules = shared.schedules.lock();
            let mut all: Vec<Order> = schedules.values_mut().flat_map(|s| s.due(now)).collect();
            all.sort_by_key(|o| o.at);
            all
        };
        for order in due {
            match bus.publish(order.topic, order.body).await {
                Ok(_) => {
                    shared.published[slot(order.topic)].fetch_add(1, Relaxed);
                }
                Err(e) => {
                    shared.errors[slot(order.topic)].fetch_add(1, Relaxed);
                    tracing::warn!(topic = order.topic.as_str(), error = %e, "publishing an order failed");
                }
            }
        }
        let next_due = shared
            .schedules
            .lock()
            .values()
            .filter_map(|s| s.next_due())
            .min();
        let mut wake_at = next_poll;
        if let Some(d) = next_due {
            wake_at = wake_at.min(shared.origin + d);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake_at) => {}
            _ = shared.wake.notified() => { reload = true; }
            _ = stopped.changed() => {}
        }
    }
}
