//! The embedded runner end to end: rates from the durable store, orders through
//! the real SNS engine over HTTP to a subscriber written as contract section 1
//! describes (parse any body as JSON, GET SubscribeURL, answer 200).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use embedded_store::EmbeddedStore;
use hq_core::domain::{Endpoint, EndpointPolicy, Rate, SubscriptionStatus, TopicName};
use hq_core::ports::OrderBus;
use hq_core::services::RateService;
use order_publisher::{OrderPublisher, PublisherConfig};
use parking_lot::Mutex;
use sns_engine::{EngineConfig, SnsEngine};
use tokio::net::TcpListener;

type Log = Arc<Mutex<Vec<(Instant, String)>>>;

async fn receive(State(log): State<Log>, body: Bytes) -> &'static str {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return "not json";
    };
    if let Some(url) = json.get("SubscribeURL").and_then(|u| u.as_str()) {
        let _ = reqwest::get(url).await;
        return "subscribed";
    }
    let message = json
        .get("Message")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_string();
    log.lock().push((Instant::now(), message));
    "ok"
}

fn since(log: &Log, t: Instant) -> Vec<(Instant, String)> {
    log.lock()
        .iter()
        .filter(|(at, _)| *at >= t)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_at_the_configured_rate_with_exact_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let rates = Arc::new(RateService::new(
        Arc::new(store.clone()),
        "us-west-2".into(),
        "000000000000".into(),
    ));
    rates
        .set_rate(
            TopicName::Orders,
            Rate {
                rate_per_minute: 120.0,
                paused: false,
                malformed_share: 0.0,
            },
        )
        .await
        .unwrap();
    for t in [TopicName::Iridium, TopicName::Magnesite] {
        rates
            .set_rate(
                t,
                Rate {
                    paused: true,
                    ..Rate::default()
                },
            )
            .await
            .unwrap();
    }

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let engine = SnsEngine::start(EngineConfig::new(base, dir.path()), Arc::new(store.clone()))
        .await
        .unwrap();
    let app = engine.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let log: Log = Arc::default();
    let sub_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/order/", sub_listener.local_addr().unwrap());
    let app = Router::new()
        .route("/order/", post(receive))
        .with_state(log.clone());
    tokio::spawn(async move {
        let _ = axum::serve(sub_listener, app).await;
    });
    let ep = Endpoint::resolve(&endpoint, EndpointPolicy::default())
        .await
        .unwrap();
    let sub = engine
        .subscribe(TopicName::Orders, &ep, None)
        .await
        .unwrap();
    for _ in 0..1000 {
        if engine
            .subscription(&sub.subscription_arn)
            .await
            .unwrap()
            .unwrap()
            .status
            == SubscriptionStatus::Confirmed
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let bus: Arc<dyn OrderBus> = engine.clone();
    let publisher = OrderPublisher::start(
        rates.clone(),
        bus,
        PublisherConfig {
            poll_interval: Duration::from_millis(500),
        },
    )
    .await
    .unwrap();

    // 120 a minute: one every 0.5 s, evenly spaced, exact bodies.
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let got = since(&log, t0);
    assert!(
        (6..=7).contains(&got.len()),
        "{} orders in 3.2 s",
        got.len()
    );
    assert!(got.iter().all(|(_, m)| m == r#"{"bundle": 1}"#));
    for w in got.windows(2) {
        let gap = (w[1].0 - w[0].0).as_secs_f64();
        assert!((0.4..=0.6).contains(&gap), "gap {gap}");
    }

    // A rate change applies at once: 600 a minute.
    rates
        .set_rate(
            TopicName::Orders,
            Rate {
                rate_per_minute: 600.0,
                paused: false,
                malformed_share: 0.0,
            },
        )
        .await
        .unwrap();
    publisher.rates_changed();
    let t1 = Instant::now();
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let n = since(&log, t1).len();
    assert!((9..=11).contains(&n), "{n} orders in 1.05 s at 600/min");

    // Paused: nothing flows; a surge still does (5 over 1 s).
    rates
        .set_rate(
            TopicName::Orders,
            Rate {
                rate_per_minute: 600.0,
                paused: true,
                malformed_share: 0.0,
            },
        )
        .await
        .unwrap();
    publisher.rates_changed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t2 = Instant::now();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(since(&log, t2).len(), 0, "paused");
    publisher.surge(TopicName::Orders, 5, 1).unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(since(&log, t2).len(), 5, "surge");

    let stats = publisher.stats();
    assert!(stats[0].published >= 20, "{stats:?}");
    assert_eq!(stats[1].published, 0);

    // Shutdown stops the stream.
    rates
        .set_rate(
            TopicName::Orders,
            Rate {
                rate_per_minute: 600.0,
                paused: false,
                malformed_share: 0.0,
            },
        )
        .await
        .unwrap();
    publisher.rates_changed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    publisher.shutdown().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t3 = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(since(&log, t3).len(), 0, "stopped");
    engine.shutdown().await;
}
