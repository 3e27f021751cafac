//! The engine's state: topics, subscriptions, publishing, and the order-bus port.
//!
//! State lives in memory behind one `RwLock` (topics, subscriptions by ARN,
//! confirmation tokens), loaded from the [`SubscriptionStore`] at start. Every
//! change (subscribe, confirm, unsubscribe, attributes) is written to the store
//! first, under one async mutex so the store and memory change in the same
//! order, then applied in memory. Publishing never touches the store: it reads
//! the topic's snapshot of confirmed subscribers (an `Arc<Vec<_>>` replaced on
//! change) and queues one shared, signed message to each.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http::HeaderValue;
use hq_core::clock::{now_millis, rfc3339};
use hq_core::domain::{
    DeliveryPolicy, EffectivePolicy, Endpoint, EndpointUrl, Protocol, SubscriptionRecord,
    SubscriptionStatus, SubscriptionView, TopicName, TopicRecord, Username,
};
use hq_core::ports::{BusError, OrderBus, SubscriptionFilter, SubscriptionStore};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{watch, Semaphore};

use crate::envelope::{self, json_str, Outgoing};
use crate::metrics::{Counters, Histogram, LATENCY_BOUNDS_S};
use crate::signing::{SignatureVersion, Signer};
use crate::{EngineConfig, EngineError, MAX_MESSAGE_BYTES};

/// Topic attributes that `SetTopicAttributes` accepts.
pub(crate) const SETTABLE_TOPIC_ATTRIBUTES: &[&str] = &[
    "DisplayName",
    "Policy",
    "DeliveryPolicy",
    "SignatureVersion",
    "TracingConfig",
    "KmsMasterKeyId",
];

/// The in-process SNS. Cheap to share (`Arc`); see the crate docs.
pub struct SnsEngine {
    pub(crate) core: Arc<Core>,
}

pub(crate) struct Core {
    pub config: EngineConfig,
    /// `<public url>/sns`, the base of SubscribeURL and UnsubscribeURL.
    pub sns_base: String,
    pub cert_url: String,
    pub signer: Signer,
    pub store: Arc<dyn SubscriptionStore>,
    pub client: reqwest::Client,
    pub state: RwLock<State>,
    /// Serialises changes so the store and memory see them in the same order.
    pub changes: tokio::sync::Mutex<()>,
    pub counters: Counters,
    pub closing: AtomicBool,
    pub shutdown_tx: watch::Sender<bool>,
    pub shutdown_rx: watch::Receiver<bool>,
    pub active_tasks: AtomicUsize,
}

#[derive(Default)]
pub(crate) struct State {
    pub topics: BTreeMap<String, Arc<Topic>>,
    pub subs: HashMap<String, Arc<Sub>>,
    pub tokens: HashMap<String, Arc<Sub>>,
}

pub(crate) struct Topic {
    pub name: String,
    pub arn: String,
    pub record: Mutex<TopicRecord>,
    pub settings: RwLock<TopicSettings>,
    /// Confirmed subscriptions: what a publish fans out to.
    pub subscribers: RwLock<Arc<Vec<Arc<Sub>>>>,
}

#[derive(Clone)]
pub(crate) struct TopicSettings {
    pub signature_version: SignatureVersion,
    pub policy: Option<(DeliveryPolicy, bool)>,
}

impl TopicSettings {
    fn from_attributes(attrs: &BTreeMap<String, String>) -> Self {
        Self {
            signature_version: attrs
                .get("SignatureVersion")
                .and_then(|v| SignatureVersion::parse(v))
                .unwrap_or(SignatureVersion::V1),
            policy: attrs
                .get("DeliveryPolicy")
                .and_then(|p| DeliveryPolicy::parse_topic(p).ok()),
        }
    }
}

pub(crate) struct Sub {
    pub arn: String,
    pub id: String,
    pub topic: Arc<Topic>,
    pub url: reqwest::Url,
    pub literal_ip: Option<IpAddr>,
    pub protocol: Protocol,
    pub record: Mutex<SubscriptionRecord>,
    pub settings: RwLock<SubSettings>,
    pub arn_header: HeaderValue,
    /// The UnsubscribeURL, JSON-escaped, without quotes.
    pub unsubscribe_json: String,
    pub queue: Mutex<VecDeque<Arc<Outgoing>>>,
    pub slots: Arc<Semaphore>,
    pub next_slot: Mutex<Option<Instant>>,
    pub removed: AtomicBool,
    pub stats: SubStats,
}

#[derive(Clone, Default)]
pub(crate) struct SubSettings {
    pub policy: Option<DeliveryPolicy>,
    pub raw: bool,
}

impl SubSettings {
    fn from_attributes(attrs: &BTreeMap<String, String>) -> Self {
        Self {
            policy: attrs
                .get("DeliveryPolicy")
                .and_then(|p| DeliveryPolicy::parse_subscription(p).ok()),
            raw: attrs
                .get("RawMessageDelivery")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }
    }
}

#[derive(Default)]
pub(crate) struct SubStats {
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub retries_pending: AtomicU64,
    pub dropped: AtomicU64,
    pub abandoned: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    pub last_ok_ms: AtomicI64,
    pub latency: Histogram,
}

impl Sub {
    pub(crate) fn effective_policy(&self) -> EffectivePolicy {
        let topic = self.topic.settings.read().policy.clone();
        let sub = self.settings.read().policy.clone();
        DeliveryPolicy::effective(topic.as_ref(), sub.as_ref())
    }

    pub(crate) fn raw_delivery(&self) -> bool {
        self.settings.read().raw
    }

    pub(crate) fn status(&self) -> SubscriptionStatus {
        self.record.lock().status
    }
}

/// Engine-wide figures for `/metrics`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSnapshot {
    pub topics: u64,
    pub subscriptions_confirmed: u64,
    pub subscriptions_pending: u64,
    /// Messages published (each counted once, whatever its fan-out).
    pub publishes: u64,
    /// Notifications answered with 2xx.
    pub deliveries_ok: u64,
    /// Attempts that failed (confirmations included).
    pub delivery_attempts_failed: u64,
    /// Deliveries given up after their last retry.
    pub deliveries_abandoned: u64,
    /// Deliveries dropped because a subscription's queue was full.
    pub deliveries_dropped: u64,
    pub confirmations_sent: u64,
    pub retries_pending: u64,
    pub attempts_in_flight: u64,
    pub queued: u64,
    /// Publish-to-delivery latency of successful notifications.
    pub latency_p50_ms: Option<f64>,
    pub latency_p90_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_count: u64,
    pub latency_sum_seconds: f64,
    /// Cumulative `(upper bound in seconds, count)` pairs, Prometheus style
    /// (the `+Inf` bucket is `latency_count`).
    pub latency_buckets: Vec<(f64, u64)>,
}

/// A message to publish: the default body and optional per-protocol bodies
/// (`MessageStructure=json`).
pub(crate) struct PublishMessage {
    pub default: String,
    pub http: Option<String>,
    pub https: Option<String>,
    pub subject: Option<String>,
}

fn bus_store(e: hq_core::StoreError) -> BusError {
    BusError::Backend(e.0)
}

impl SnsEngine {
    /// Starts the engine: loads (or makes) the signing key, loads topics and
    /// subscriptions from `store`, creates the three order topics if missing.
    pub async fn start(
        config: EngineConfig,
        store: Arc<dyn SubscriptionStore>,
    ) -> Result<Arc<Self>, EngineError> {
        let public = config.public_url.trim_end_matches('/').to_string();
        if !(public.starts_with("http://") || public.starts_with("https://")) {
            return Err(EngineError::Config(format!(
                "public URL {public} must start with http:// or https://"
            )));
        }
        if config.queue_capacity == 0 || config.max_in_flight_per_subscription == 0 {
            return Err(EngineError::Config(
                "queue capacity and in-flight cap must be at least 1".into(),
            ));
        }
        let dir = config.data_dir.clone();
        let signer = tokio::task::spawn_blocking(move || Signer::load_or_create(&dir))
            .await
            .map_err(|e| EngineError::Signing(e.to_string()))??;
        let client = reqwest::Client::builder()
            .user_agent("Amazon Simple Notification Service Agent")
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.attempt_timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .dns_resolver(Arc::new(crate::delivery::PolicyResolver {
                policy: config.endpoint_policy,
            }))
            .build()
            .map_err(|e| EngineError::Client(e.to_string()))?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let core = Arc::new(Core {
            sns_base: format!("{public}/sns"),
            cert_url: format!("{public}{}", crate::CERT_PATH),
            config,
            signer,
            store,
            client,
            state: RwLock::new(State::default()),
            changes: tokio::sync::Mutex::new(()),
            counters: Counters::default(),
            closing: AtomicBool::new(false),
            shutdown_tx,
            shutdown_rx,
            active_tasks: AtomicUsize::new(0),
        });
        core.load().await?;
        Ok(Arc::new(Self { core }))
    }

    /// The SNS query API and the signing certificate, at `/sns`.
    pub fn router(&self) -> axum::Router {
        crate::query::router(self.core.clone())
    }

    /// The base URL of the SNS endpoint (`<public url>/sns`).
    pub fn sns_url(&self) -> &str {
        &self.core.sns_base
    }

    /// The certificate subscribers verify signatures with (PEM).
    pub fn certificate_pem(&self) -> &str {
        self.core.signer.cert_pem()
    }

    /// A topic's ARN by name, if it exists.
    pub fn topic_arn_by_name(&self, name: &str) -> Option<String> {
        self.core
            .state
            .read()
            .topics
            .get(name)
            .map(|t| t.arn.clone())
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.core.metrics()
    }

    /// Stops taking work, cancels retry waits, and waits (up to the configured
    /// grace) for attempts in flight to end. Queued deliveries are discarded.
    pub async fn shutdown(&self) {
        let core = &self.core;
        core.closing.store(true, Relaxed);
        let _ = core.shutdown_tx.send(true);
        let deadline = Instant::now() + core.config.shutdown_grace;
        while core.active_tasks.load(Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = core.active_tasks.load(Relaxed);
        if left > 0 {
            tracing::warn!(
                tasks = left,
                "SNS engine stopped with deliveries still in flight"
            );
        }
    }
}

impl Core {
    pub(crate) fn topic_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:sns:{}:{}:{name}",
            self.config.region, self.config.account_id
        )
    }

    fn subscribe_url(&self, topic_arn: &str, token: &str) -> String {
        format!(
            "{}?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}",
            self.sns_base
        )
    }

    async fn load(self: &Arc<Self>) -> Result<(), EngineError> {
        let mut records: BTreeMap<String, TopicRecord> = self
            .store
            .topics()
            .await?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        for t in TopicName::ALL {
            if !records.contains_key(t.as_str()) {
                let r = TopicRecord {
                    name: t.as_str().into(),
                    arn: self.topic_arn(t.as_str()),
                    attributes: BTreeMap::new(),
                    created_at: now_millis(),
                };
                self.store.put_topic(&r).await?;
                records.insert(r.name.clone(), r);
            }
        }
        let mut state = State::default();
        for (name, mut r) in records {
            // A changed region or account re-homes the topics.
            r.arn = self.topic_arn(&name);
            state.topics.insert(name, Arc::new(new_topic(r)));
        }
        let by_arn: HashMap<String, Arc<Topic>> = state
            .topics
            .values()
            .map(|t| (t.arn.clone(), t.clone()))
            .collect();
        let mut subs = self.store.subscriptions().await?;
        subs.sort_by_key(|s| s.created_at);
        for mut r in subs {
            let topic_name = r
                .topic_arn
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_string();
            let Some(topic) = by_arn
                .get(&r.topic_arn)
                .or_else(|| state.topics.get(&topic_name))
                .cloned()
            else {
                tracing::warn!(subscription = %r.arn, "subscription of an unknown topic skipped");
                continue;
            };
            if r.topic_arn != topic.arn {
                r.topic_arn = topic.arn.clone();
                r.arn = format!("{}:{}", topic.arn, r.id());
            }
            match self.new_sub(topic.clone(), r) {
                Ok(sub) => {
                    state
                        .tokens
                        .insert(sub.record.lock().token.clone(), sub.clone());
                    state.subs.insert(sub.arn.clone(), sub);
                }
                Err(e) => tracing::warn!(error = %e, "stored subscription skipped"),
            }
        }
        for topic in state.topics.values() {
            let confirmed: Vec<Arc<Sub>> = state
                .subs
                .values()
                .filter(|s| {
                    Arc::ptr_eq(&s.topic, topic) && s.status() == SubscriptionStatus::Confirmed
                })
                .cloned()
                .collect();
            *topic.subscribers.write() = Arc::new(confirmed);
        }
        tracing::info!(
            topics = state.topics.len(),
            subscriptions = state.subs.len(),
            "SNS engine loaded"
        );
        *self.state.write() = state;
        Ok(())
    }

    fn new_sub(&self, topic: Arc<Topic>, record: SubscriptionRecord) -> Result<Arc<Sub>, String> {
        let parsed =
            EndpointUrl::parse(&record.endpoint).map_err(|e| format!("{}: {e}", record.arn))?;
        let url =
            reqwest::Url::parse(&record.endpoint).map_err(|e| format!("{}: {e}", record.arn))?;
        let unsubscribe = format!(
            "{}?Action=Unsubscribe&SubscriptionArn={}",
            self.sns_base, record.arn
        );
        let json = json_str(&unsubscribe);
        let unsubscribe_json = json[1..json.len() - 1].to_string();
        Ok(Arc::new(Sub {
            arn: record.arn.clone(),
            id: record.id().to_string(),
            arn_header: HeaderValue::from_str(&record.arn).map_err(|e| e.to_string())?,
            topic,
            url,
            literal_ip: parsed.ip_literal(),
            protocol: parsed.protocol(),
            settings: RwLock::new(SubSettings::from_attributes(&record.attributes)),
            record: Mutex::new(record),
            unsubscribe_json,
            queue: Mutex::new(VecDeque::new()),
            slots: Arc::new(Semaphore::new(self.config.max_in_flight_per_subscription)),
            next_slot: Mutex::new(None),
            removed: AtomicBool::new(false),
            stats: SubStats::default(),
        }))
    }

    pub(crate) fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.state.read().topics.get(name).cloned()
    }

    pub(crate) fn topic_by_arn(&self, arn: &str) -> Option<Arc<Topic>> {
        let name = arn.rsplit(':').next()?;
        self.topic(name).filter(|t| t.arn == arn)
    }

    pub(crate) fn sub(&self, arn_or_id: &str) -> Option<Arc<Sub>> {
        let state = self.state.read();
        if let Some(s) = state.subs.get(arn_or_id) {
            return Some(s.clone());
        }
        if arn_or_id.contains(':') {
            return None;
        }
        state.subs.values().find(|s| s.id == arn_or_id).cloned()
    }

    pub(crate) fn topics(&self) -> Vec<Arc<Topic>> {
        self.state.read().topics.values().cloned().collect()
    }

    pub(crate) fn all_subs(&self) -> Vec<Arc<Sub>> {
        let mut v: Vec<Arc<Sub>> = self.state.read().subs.values().cloned().collect();
        v.sort_by(|a, b| {
            let (ra, rb) = (a.record.lock().created_at, b.record.lock().created_at);
            ra.cmp(&rb).then_with(|| a.arn.cmp(&b.arn))
        });
        v
    }

    fn check_open(&self) -> Result<(), BusError> {
        if self.closing.load(Relaxed) {
            Err(BusError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    /// CreateTopic: idempotent; the name is SNS's rule (1-256 of letters,
    /// digits, `-`, `_`). FIFO topics are not offered.
    pub(crate) async fn create_topic(
        &self,
        name: &str,
        attributes: &[(String, String)],
    ) -> Result<Arc<Topic>, BusError> {
        self.check_open()?;
        if name.is_empty()
            || name.len() > 256
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            if name.ends_with(".fifo") {
                return Err(BusError::Invalid(
                    "Invalid parameter: FIFO topics are not supported by HQ".into(),
                ));
            }
            return Err(BusError::Invalid(
                "Invalid parameter: Topic Name must be 1 to 256 letters, digits, hyphens or underscores".into(),
            ));
        }
        for (k, v) in attributes {
            validate_topic_attribute(k, v)?;
        }
        let _change = self.changes.lock().await;
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        if self.state.read().topics.len() >= 1000 {
            return Err(BusError::Invalid(
                "Invalid parameter: too many topics (HQ keeps at most 1000)".into(),
            ));
        }
        let record = TopicRecord {
            name: name.to_string(),
            arn: self.topic_arn(name),
            attributes: attributes.iter().cloned().collect(),
            created_at: now_millis(),
        };
        self.store.put_topic(&record).await.map_err(bus_store)?;
        let topic = Arc::new(new_topic(record));
        self.state
            .write()
            .topics
            .insert(name.to_string(), topic.clone());
        Ok(topic)
    }

    pub(crate) async fn set_topic_attribute(
        &self,
        topic: &Arc<Topic>,
        name: &str,
        value: &str,
    ) -> Result<(), BusError> {
        validate_topic_attribute(name, value)?;
        let _change = self.changes.lock().await;
        let mut record = topic.record.lock().clone();
        record
            .attributes
            .insert(name.to_string(), value.to_string());
        self.store.put_topic(&record).await.map_err(bus_store)?;
        *topic.settings.write() = TopicSettings::from_attributes(&record.attributes);
        *topic.record.lock() = record;
        Ok(())
    }

    pub(crate) async fn set_subscription_attribute(
        &self,
        sub: &Arc<Sub>,
        name: &str,
        value: &str,
    ) -> Result<(), BusError> {
        validate_subscription_attribute(name, value)?;
        let _change = self.changes.lock().await;
        let mut record = sub.record.lock().clone();
        record
            .attributes
            .insert(name.to_string(), value.to_string());
        self.store
            .put_subscription(&record)
            .await
            .map_err(bus_store)?;
        *sub.settings.write() = SubSettings::from_attributes(&record.attributes);
        *sub.record.lock() = record;
        Ok(())
    }

    /// Subscribes an admitted endpoint. An existing subscription of the same
    /// endpoint to the same topic is answered instead (its confirmation re-sent
    /// while pending), as SNS does.
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        topic: &Arc<Topic>,
        endpoint: &Endpoint,
        owner: Option<&Username>,
        attributes: &[(String, String)],
    ) -> Result<Arc<Sub>, BusError> {
        self.check_open()?;
        for (k, v) in attributes {
            validate_subscription_attribute(k, v)?;
        }
        let _change = self.changes.lock().await;
        let existing = self
            .state
            .read()
            .subs
            .values()
            .find(|s| Arc::ptr_eq(&s.topic, topic) && s.record.lock().endpoint == endpoint.as_str())
            .cloned();
        if let Some(sub) = existing {
            if sub.status() == SubscriptionStatus::PendingConfirmation {
                self.send_confirmation(&sub);
            }
            return Ok(sub);
        }
        if self.state.read().subs.len() >= 100_000 {
            return Err(BusError::Invalid(
                "Invalid parameter: too many subscriptions".into(),
            ));
        }
        let token = {
            let a: [u8; 32] = rand_bytes();
            let b: [u8; 32] = rand_bytes();
            let mut s = String::with_capacity(128);
            for byte in a.iter().chain(b.iter()) {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        };
        let record = SubscriptionRecord {
            arn: format!("{}:{}", topic.arn, uuid::Uuid::new_v4()),
            topic_arn: topic.arn.clone(),
            protocol: endpoint.protocol(),
            endpoint: endpoint.as_str().to_string(),
            owner: owner.cloned(),
            status: SubscriptionStatus::PendingConfirmation,
            token: token.clone(),
            created_at: now_millis(),
            confirmed_at: None,
            attributes: attributes.iter().cloned().collect(),
        };
        let sub = self
            .new_sub(topic.clone(), record.clone())
            .map_err(BusError::Invalid)?;
        self.store
            .put_subscription(&record)
            .await
            .map_err(bus_store)?;
        {
            let mut state = self.state.write();
            state.tokens.insert(token, sub.clone());
            state.subs.insert(sub.arn.clone(), sub.clone());
        }
        tracing::info!(subscription = %sub.arn, endpoint = %endpoint, "subscription pending confirmation");
        self.send_confirmation(&sub);
        Ok(sub)
    }

    fn send_confirmation(self: &Arc<Self>, sub: &Arc<Sub>) {
        let token = sub.record.lock().token.clone();
        let version = sub.topic.settings.read().signature_version;
        let out = envelope::confirmation(
            &self.signer,
            version,
            &self.cert_url,
            &sub.topic.arn,
            &token,
            &self.subscribe_url(&sub.topic.arn, &token),
            time::OffsetDateTime::now_utc(),
        );
        self.enqueue(sub, Arc::new(out));
    }

    /// ConfirmSubscription: the token must belong to a subscription of that
    /// topic. Confirming again answers the same ARN.
    pub(crate) async fn confirm(
        &self,
        topic: &Arc<Topic>,
        token: &str,
    ) -> Result<Arc<Sub>, BusError> {
        let _change = self.changes.lock().await;
        let sub = self
            .state
            .read()
            .tokens
            .get(token)
            .filter(|s| Arc::ptr_eq(&s.topic, topic))
            .cloned()
            .ok_or_else(|| BusError::Invalid("Invalid token".into()))?;
        if sub.status() == SubscriptionStatus::Confirmed {
            return Ok(sub);
        }
        let mut record = sub.record.lock().clone();
        record.status = SubscriptionStatus::Confirmed;
        record.confirmed_at = Some(now_millis());
        self.store
            .put_subscription(&record)
            .await
            .map_err(bus_store)?;
        *sub.record.lock() = record;
        let mut list: Vec<Arc<Sub>> = topic.subscribers.read().as_ref().clone();
        list.push(sub.clone());
        *topic.subscribers.write() = Arc::new(list);
        tracing::info!(subscription = %sub.arn, "subscription confirmed");
        Ok(sub)
    }

    pub(crate) async fn unsubscribe(&self, arn: &str) -> Result<(), BusError> {
        let _change = self.changes.lock().await;
        let sub = self
            .state
            .read()
            .subs
            .get(arn)
            .cloned()
            .ok_or_else(|| BusError::NotFound("Subscription".into()))?;
        self.store
            .delete_subscription(arn)
            .await
            .map_err(bus_store)?;
        sub.removed.store(true, Relaxed);
        {
            let mut state = self.state.write();
            state.subs.remove(arn);
            let token = sub.record.lock().token.clone();
            state.tokens.remove(&token);
        }
        let list: Vec<Arc<Sub>> = sub
            .topic
            .subscribers
            .read()
            .iter()
            .filter(|s| s.arn != arn)
            .cloned()
            .collect();
        *sub.topic.subscribers.write() = Arc::new(list);
        sub.queue.lock().clear();
        tracing::info!(subscription = %arn, "unsubscribed");
        Ok(())
    }

    /// Signs once per body variant and queues the message to every confirmed
    /// subscription of the topic.
    pub(crate) fn publish(
        self: &Arc<Self>,
        topic: &Arc<Topic>,
        msg: PublishMessage,
    ) -> Result<String, BusError> {
        self.check_open()?;
        validate_message(&msg.default)?;
        let message_id = uuid::Uuid::new_v4().to_string();
        let now = time::OffsetDateTime::now_utc();
        let version = topic.settings.read().signature_version;
        let build = |body: &str| {
            Arc::new(envelope::notification(
                &self.signer,
                version,
                &self.cert_url,
                &topic.arn,
                &message_id,
                Arc::from(body),
                msg.subject.as_deref(),
                now,
            ))
        };
        let subscribers = topic.subscribers.read().clone();
        self.counters.publishes.fetch_add(1, Relaxed);
        if subscribers.is_empty() {
            return Ok(message_id);
        }
        let default = build(&msg.default);
        let http = msg.http.as_deref().map(build);
        let https = msg.https.as_deref().map(build);
        for sub in subscribers.iter() {
            let out = match sub.protocol {
                Protocol::Http => http.as_ref().unwrap_or(&default),
                Protocol::Https => https.as_ref().unwrap_or(&default),
            };
            self.enqueue(sub, out.clone());
        }
        Ok(message_id)
    }

    pub(crate) fn view(&self, sub: &Sub) -> SubscriptionView {
        let r = sub.record.lock().clone();
        let q = sub.stats.latency.quantiles_ms(&[0.5, 0.99]);
        let last_ok = sub.stats.last_ok_ms.load(Relaxed);
        SubscriptionView {
            id: sub.id.clone(),
            subscription_arn: sub.arn.clone(),
            topic: sub.topic.name.clone(),
            topic_arn: sub.topic.arn.clone(),
            endpoint: r.endpoint,
            protocol: r.protocol,
            status: r.status,
            owner: r.owner,
            created_at: rfc3339(r.created_at),
            delivered: sub.stats.delivered.load(Relaxed),
            failed_attempts: sub.stats.failed_attempts.load(Relaxed),
            retries_pending: sub.stats.retries_pending.load(Relaxed),
            queued: sub.queue.lock().len() as u64,
            dropped: sub.stats.dropped.load(Relaxed),
            abandoned: sub.stats.abandoned.load(Relaxed),
            last_error: sub.stats.last_error.lock().clone(),
            last_delivered_at: (last_ok > 0).then(|| rfc3339(last_ok)),
            latency_p50_ms: q[0],
            latency_p99_ms: q[1],
        }
    }

    fn metrics(&self) -> MetricsSnapshot {
        let (topics, subs) = {
            let s = self.state.read();
            (
                s.topics.len() as u64,
                s.subs.values().cloned().collect::<Vec<_>>(),
            )
        };
        let confirmed = subs
            .iter()
            .filter(|s| s.status() == SubscriptionStatus::Confirmed)
            .count() as u64;
        let queued = subs.iter().map(|s| s.queue.lock().len() as u64).sum();
        let c = &self.counters;
        let q = c.latency.quantiles_ms(&[0.5, 0.9, 0.99]);
        MetricsSnapshot {
            topics,
            subscriptions_confirmed: confirmed,
            subscriptions_pending: subs.len() as u64 - confirmed,
            publishes: c.publishes.load(Relaxed),
            deliveries_ok: c.deliveries_ok.load(Relaxed),
            delivery_attempts_failed: c.attempts_failed.load(Relaxed),
            deliveries_abandoned: c.abandoned.load(Relaxed),
            deliveries_dropped: c.dropped.load(Relaxed),
            confirmations_sent: c.confirmations_sent.load(Relaxed),
            retries_pending: c.retries_pending.load(Relaxed),
            attempts_in_flight: c.in_flight.load(Relaxed),
            queued,
            latency_p50_ms: q[0],
            latency_p90_ms: q[1],
            latency_p99_ms: q[2],
            latency_count: c.latency.count(),
            latency_sum_seconds: c.latency.sum().as_secs_f64(),
            latency_buckets: c.latency.cumulative(LATENCY_BOUNDS_S),
        }
    }
}

fn rand_bytes() -> [u8; 32] {
    rand::random()
}

fn new_topic(record: TopicRecord) -> Topic {
    Topic {
        name: record.name.clone(),
        arn: record.arn.clone(),
        settings: RwLock::new(TopicSettings::from_attributes(&record.attributes)),
        record: Mutex::new(record),
        subscribers: RwLock::new(Arc::new(Vec::new())),
    }
}

pub(crate) fn validate_message(m: &str) -> Result<(), BusError> {
    if m.is_empty() {
        return Err(BusError::Invalid("Empty message".into()));
    }
    if m.len() > MAX_MESSAGE_BYTES {
        return Err(BusError::Invalid(
            "Invalid parameter: Message too long".into(),
        ));
    }
    Ok(())
}

fn validate_topic_attribute(name: &str, value: &str) -> Result<(), BusError> {
    let bad = |why: String| Err(BusError::Invalid(format!("Invalid parameter: {why}")));
    match name {
        "SignatureVersion" if SignatureVersion::parse(value).is_none() => {
            bad("Attribute Name: SignatureVersion must be 1 or 2".into())
        }
        "DeliveryPolicy" => DeliveryPolicy::parse_topic(value).map(|_| ()).or_else(bad),
        "DisplayName" if value.len() > 100 => {
            bad("DisplayName must be at most 100 characters".into())
        }
        n if !SETTABLE_TOPIC_ATTRIBUTES.contains(&n) => {
            bad(format!("AttributeName {n} is not supported"))
        }
        _ if value.len() > 30_720 => bad("AttributeValue is too long".into()),
        _ => Ok(()),
    }
}

fn validate_subscription_attribute(name: &str, value: &str) -> Result<(), BusError> {
    let bad = |why: String| Err(BusError::Invalid(format!("Invalid parameter: {why}")));
    match name {
        "DeliveryPolicy" => DeliveryPolicy::parse_subscription(value)
            .map(|_| ())
            .or_else(bad),
        "RawMessageDelivery"
            if !(value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")) =>
        {
            bad("RawMessageDelivery must be true or false".into())
        }
        "RawMessageDelivery" => Ok(()),
        n => bad(format!("AttributeName {n} is not supported")),
    }
}

#[async_trait]
impl OrderBus for SnsEngine {
    fn topic_arn(&self, topic: TopicName) -> String {
        self.core.topic_arn(topic.as_str())
    }

    async fn subscribe(
        &self,
        topic: TopicName,
        endpoint: &Endpoint,
        owner: Option<&Username>,
    ) -> Result<SubscriptionView, BusError> {
        let t = self
            .core
            .topic(topic.as_str())
            .ok_or_else(|| BusError::NotFound("Topic".into()))?;
        let sub = self.core.subscribe(&t, endpoint, owner, &[]).await?;
        Ok(self.core.view(&sub))
    }

    async fn unsubscribe(&self, subscription_arn: &str) -> Result<(), BusError> {
        self.core.unsubscribe(subscription_arn).await
    }

    async fn subscription(&self, arn_or_id: &str) -> Result<Option<SubscriptionView>, BusError> {
        Ok(self.core.sub(arn_or_id).map(|s| self.core.view(&s)))
    }

    async fn list_subscriptions(
        &self,
        filter: SubscriptionFilter<'_>,
    ) -> Result<Vec<SubscriptionView>, BusError> {
        let subs = self.core.all_subs();
        Ok(subs
            .iter()
            .filter(|s| match filter {
                SubscriptionFilter::All => true,
                SubscriptionFilter::Owner(o) => s.record.lock().owner.as_ref() == Some(o),
                SubscriptionFilter::Topic(t) => s.topic.name == t.as_str(),
            })
            .map(|s| self.core.view(s))
            .collect())
    }

    async fn publish(&self, topic: TopicName, message: &str) -> Result<String, BusError> {
        let t = self
            .core
            .topic(topic.as_str())
            .ok_or_else(|| BusError::NotFound("Topic".into()))?;
        self.core.publish(
            &t,
            PublishMessage {
                default: message.to_string(),
                http: None,
                https: None,
                subject: None,
            },
        )
    }

    async fn publish_batch(
        &self,
        topic: TopicName,
        messages: &[String],
    ) -> Result<Vec<String>, BusError> {
        if messages.is_empty() || messages.len() > 10 {
            return Err(BusError::Invalid("a batch holds 1 to 10 messages".into()));
        }
        let total: usize = messages.iter().map(|m| m.len()).sum();
        if total > MAX_MESSAGE_BYTES {
            return Err(BusError::Invalid(
                "Invalid parameter: the batch is longer than 262144 bytes".into(),
            ));
        }
        let t = self
            .core
            .topic(topic.as_str())
            .ok_or_else(|| BusError::NotFound("Topic".into()))?;
        messages
            .iter()
            .map(|m| {
                self.core.publish(
                    &t,
                    PublishMessage {
                        default: m.clone(),
                        http: None,
                        https: None,
                        subject: None,
                    },
                )
            })
            .collect()
    }
}
