//! Fan-out benchmark: `cargo run --release -p sns-engine --example fanout`
//!
//! 1,000 confirmed HTTP subscriptions on loopback sinks (one sink server per
//! subscription, as each attendee is a host of their own), all in this process on the same cores as the engine
//! (so the figures are conservative: the sinks' work is counted against HQ).
//!
//! 1. Throughput: publishes at increasing rates (5 to 40 publishes/s, i.e.
//!    5,000 to 40,000 deliveries/s offered) for 4 s each; prints deliveries/s
//!    actually sustained (deliveries done / time until the last one arrived).
//! 2. Latency at a fixed 2,000 deliveries/s (2 publishes/s) for 10 s: p50/p99
//!    from publish to arrival at the sink, measured by the sinks.
//! 3. The same with 10 % of the subscriptions black-holed (they accept TCP and
//!    never answer): the healthy 900's p50/p99.
//!
//! Loopback only, bounded in count and time (about 90 s in all).
//! `FANOUT_SUBS` changes the number of subscriptions, `FANOUT_IN_FLIGHT` the
//! per-subscription cap on deliveries in flight.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use hq_core::domain::{Endpoint, EndpointPolicy, SubscriptionRecord, TopicName, TopicRecord};
use hq_core::ports::{OrderBus, SubscriptionStore};
use hq_core::StoreError;
use parking_lot::Mutex;
use sns_engine::metrics::Histogram;
use sns_engine::{EngineConfig, SnsEngine};
use tokio::net::TcpListener;

/// Subscriptions kept in memory: the benchmark measures delivery, not disk.
#[derive(Default)]
struct MemoryStore {
    subs: Mutex<BTreeMap<String, SubscriptionRecord>>,
    topics: Mutex<BTreeMap<String, TopicRecord>>,
}

#[async_trait]
impl SubscriptionStore for MemoryStore {
    async fn put_subscription(&self, r: &SubscriptionRecord) -> Result<(), StoreError> {
        self.subs.lock().insert(r.arn.clone(), r.clone());
        Ok(())
    }
    async fn delete_subscription(&self, arn: &str) -> Result<bool, StoreError> {
        Ok(self.subs.lock().remove(arn).is_some())
    }
    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        Ok(self.subs.lock().values().cloned().collect())
    }
    async fn put_topic(&self, t: &TopicRecord) -> Result<(), StoreError> {
        self.topics.lock().insert(t.name.clone(), t.clone());
        Ok(())
    }
    async fn topics(&self) -> Result<Vec<TopicRecord>, StoreError> {
        Ok(self.topics.lock().values().cloned().collect())
    }
}

/// What the sinks measured.
struct Sink {
    received: AtomicU64,
    confirmations: AtomicU64,
    latency: Mutex<Arc<Histogram>>,
    last_arrival: Mutex<Instant>,
    client: reqwest::Client,
}

fn origin() -> Instant {
    static O: OnceLock<Instant> = OnceLock::new();
    *O.get_or_init(Instant::now)
}

async fn sink_handler(State(s): State<Arc<Sink>>, body: Bytes) -> &'static str {
    let now = origin().elapsed().as_nanos() as u64;
    let text = std::str::from_utf8(&body).unwrap_or("");
    if let Some(i) = text.find("\"Message\" : \"t=") {
        let digits: String = text[i + 15..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        if let Ok(t) = digits.parse::<u64>() {
            s.latency
                .lock()
                .record(Duration::from_nanos(now.saturating_sub(t)));
        }
        s.received.fetch_add(1, Relaxed);
        *s.last_arrival.lock() = Instant::now();
    } else if let Some(i) = text.find("\"SubscribeURL\" : \"") {
        let url: String = text[i + 18..].chars().take_while(|c| *c != '"').collect();
        if s.client
            .get(&url)
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
        {
            s.confirmations.fetch_add(1, Relaxed);
        }
    }
    "ok"
}

async fn start_black_hole() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            if held.len() < 20_000 {
                held.push(sock);
            }
        }
    });
    base
}

struct Setup {
    engine: Arc<SnsEngine>,
    sink: Arc<Sink>,
    healthy: u64,
}

async fn setup(subs: usize, black_holed: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap().keep();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let store = Arc::new(MemoryStore::default());
    let engine = SnsEngine::start(EngineConfig::new(base, dir), store.clone())
        .await
        .unwrap();
    let app = engine.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let sink = Arc::new(Sink {
        received: AtomicU64::new(0),
        confirmations: AtomicU64::new(0),
        latency: Mutex::new(Arc::new(Histogram::default())),
        last_arrival: Mutex::new(Instant::now()),
        client: reqwest::Client::new(),
    });
    // One sink server per subscription, as every attendee is their own host:
    // the engine pools connections per host and caps each subscription's.
    let mut sink_bases = Vec::new();
    for _ in 0..subs - black_holed {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        sink_bases.push(format!("http://{}", l.local_addr().unwrap()));
        let app = Router::new()
            .route("/{id}", post(sink_handler))
            .with_state(sink.clone());
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
    }
    let hole = start_black_hole().await;
    let healthy = subs - black_holed;
    for i in 0..subs {
        let url = if i < healthy {
            format!("{}/{i}", sink_bases[i % sink_bases.len()])
        } else {
            format!("{hole}/{i}")
        };
        let ep = Endpoint::resolve(&url, EndpointPolicy::default())
            .await
            .unwrap();
        engine
            .subscribe(TopicName::Orders, &ep, None)
            .await
            .unwrap();
    }
    // Healthy sinks confirm by GET on SubscribeURL; black holes through the API.
    let deadline = Instant::now() + Duration::from_secs(60);
    while sink.confirmations.load(Relaxed) < healthy as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sns = engine.sns_url().to_string();
    let client = reqwest::Client::new();
    for r in store.subscriptions().await.unwrap() {
        if r.endpoint.starts_with(&hole) {
            let url = format!(
                "{sns}?Action=ConfirmSubscription&TopicArn={}&Token={}",
                r.topic_arn, r.token
            );
            client.get(url).send().await.unwrap();
        }
    }
    let m = engine.metrics();
    assert_eq!(
        m.subscriptions_confirmed as usize, subs,
        "all subscriptions confirmed"
    );
    Setup {
        engine,
        sink,
        healthy: healthy as u64,
    }
}

/// Publishes `per_second` messages a second for `secs`, on an absolute schedule.
async fn publish_at(engine: &SnsEngine, per_second: f64, secs: f64) -> u64 {
    let start = tokio::time::Instant::now();
    let n = (per_second * secs).round() as u64;
    for k in 0..n {
        tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 / per_second)).await;
        let msg = format!("t={}", origin().elapsed().as_nanos());
        engine.publish(TopicName::Orders, &msg).await.unwrap();
    }
    n
}

async fn wait_drained(s: &Setup, expected: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while s.sink.received.load(Relaxed) < expected {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

fn reset(s: &Setup) {
    s.sink.received.store(0, Relaxed);
    *s.sink.latency.lock() = Arc::new(Histogram::default());
}

fn quantiles(s: &Setup) -> (f64, f64) {
    let q = s.sink.latency.lock().quantiles_ms(&[0.5, 0.99]);
    (q[0].unwrap_or(f64::NAN), q[1].unwrap_or(f64::NAN))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    origin();
    let subs: usize = std::env::var("FANOUT_SUBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    println!(
        "fan-out benchmark: {subs} confirmed subscriptions on loopback sinks, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let s = setup(subs, 0).await;

    println!("\n1. throughput (4 s per step)");
    println!(
        "{:>14} {:>14} {:>16} {:>10} {:>10} {:>8}",
        "offered/s", "publishes/s", "sustained deliv/s", "p50 ms", "p99 ms", "dropped"
    );
    for per_second in [5.0, 10.0, 20.0, 40.0] {
        reset(&s);
        let dropped_before = s.engine.metrics().deliveries_dropped;
        let failed_before = s.engine.metrics().delivery_attempts_failed;
        let start = Instant::now();
        let n = publish_at(&s.engine, per_second, 4.0).await;
        let expected = n * s.healthy;
        let dropped = |s: &Setup| s.engine.metrics().deliveries_dropped - dropped_before;
        let ok = wait_drained(
            &s,
            expected - dropped(&s).min(expected),
            Duration::from_secs(30),
        )
        .await;
        let elapsed = s
            .sink
            .last_arrival
            .lock()
            .duration_since(start)
            .as_secs_f64();
        let got = s.sink.received.load(Relaxed);
        let (p50, p99) = quantiles(&s);
        println!(
            "{:>14.0} {:>14.0} {:>16.0} {:>10.1} {:>10.1} {:>8} {:>8}{}",
            per_second * subs as f64,
            per_second,
            got as f64 / elapsed,
            p50,
            p99,
            dropped(&s),
            s.engine.metrics().delivery_attempts_failed - failed_before,
            if ok { "" } else { "  (not drained in 30 s)" }
        );
    }

    println!("\n2. latency at a fixed 2,000 deliveries/s for 10 s");
    reset(&s);
    let per_second = 2000.0 / subs as f64;
    let n = publish_at(&s.engine, per_second, 10.0).await;
    wait_drained(&s, n * s.healthy, Duration::from_secs(30)).await;
    let (p50, p99) = quantiles(&s);
    println!(
        "   delivered {} of {}; p50 {p50:.1} ms, p99 {p99:.1} ms",
        s.sink.received.load(Relaxed),
        n * s.healthy
    );
    s.engine.shutdown().await;

    println!("\n3. latency at 2,000 deliveries/s offered for 10 s, 10% black-holed");
    let s = setup(subs, subs / 10).await;
    reset(&s);
    let n = publish_at(&s.engine, per_second, 10.0).await;
    wait_drained(&s, n * s.healthy, Duration::from_secs(30)).await;
    let (p50, p99) = quantiles(&s);
    let m = s.engine.metrics();
    println!(
        "   healthy {} delivered {} of {}; p50 {p50:.1} ms, p99 {p99:.1} ms; black-holed: {} attempts in flight, {} queued, {} dropped",
        s.healthy,
        s.sink.received.load(Relaxed),
        n * s.healthy,
        m.attempts_in_flight,
        m.queued,
        m.deliveries_dropped
    );
    s.engine.shutdown().await;
}
