//! The all-in-one order stream as the portal and `/metrics` see it: the embedded
//! publisher behind the `OrderStream` port, and the engine's and publisher's
//! figures read at scrape time (no second set of counters to keep in step).

use std::sync::Arc;

use hq_core::domain::TopicName;
use hq_core::ports::OrderStream;
use hq_web::Metrics;
use order_publisher::OrderPublisher;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use sns_engine::SnsEngine;

pub(crate) struct Publisher(pub Arc<OrderPublisher>);

impl OrderStream for Publisher {
    fn rates_changed(&self) {
        self.0.rates_changed();
    }

    fn surge(&self, topic: TopicName, count: u32, seconds: u32) -> Result<(), String> {
        self.0.surge(topic, count, seconds)
    }

    fn published(&self) -> Vec<(TopicName, u64)> {
        self.0
            .stats()
            .into_iter()
            .filter_map(|s| TopicName::parse(s.topic).map(|t| (t, s.published)))
            .collect()
    }
}

struct StreamCollector {
    engine: Arc<SnsEngine>,
    publisher: Arc<OrderPublisher>,
}

impl std::fmt::Debug for StreamCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamCollector")
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for StreamCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let m = self.engine.metrics();
        counter(
            &mut e,
            "sns_publishes",
            "Messages published to the embedded SNS",
            m.publishes,
        )?;
        counter(
            &mut e,
            "sns_deliveries",
            "Notifications delivered (answered 2xx)",
            m.deliveries_ok,
        )?;
        counter(
            &mut e,
            "sns_delivery_attempts_failed",
            "Delivery attempts that failed",
            m.delivery_attempts_failed,
        )?;
        counter(
            &mut e,
            "sns_deliveries_abandoned",
            "Deliveries given up after the last retry",
            m.deliveries_abandoned,
        )?;
        counter(
            &mut e,
            "sns_deliveries_dropped",
            "Deliveries dropped on a full subscription queue",
            m.deliveries_dropped,
        )?;
        gauge(
            &mut e,
            "sns_subscriptions_confirmed",
            "Confirmed subscriptions",
            m.subscriptions_confirmed as f64,
        )?;
        gauge(
            &mut e,
            "sns_subscriptions_pending",
            "Subscriptions awaiting confirmation",
            m.subscriptions_pending as f64,
        )?;
        gauge(
            &mut e,
            "sns_retries_pending",
            "Deliveries waiting for a retry",
            m.retries_pending as f64,
        )?;
        gauge(
            &mut e,
            "sns_queued",
            "Deliveries queued, not yet attempted",
            m.queued as f64,
        )?;
        gauge(
            &mut e,
            "sns_delivery_latency_p50_seconds",
            "Publish-to-delivery latency, median",
            m.latency_p50_ms.unwrap_or(0.0) / 1000.0,
        )?;
        gauge(
            &mut e,
            "sns_delivery_latency_p99_seconds",
            "Publish-to-delivery latency, 99th percentile",
            m.latency_p99_ms.unwrap_or(0.0) / 1000.0,
        )?;
        for s in self.publisher.stats() {
            let name = format!("orders_published_{}", s.topic);
            counter(
                &mut e,
                &name,
                "Orders the publisher sent to this topic",
                s.published,
            )?;
            let name = format!("orders_malformed_{}", s.topic);
            counter(
                &mut e,
                &name,
                "Deliberately malformed orders sent to this topic",
                s.malformed,
            )?;
        }
        Ok(())
    }
}

pub(crate) fn register_metrics(
    metrics: &Metrics,
    engine: Arc<SnsEngine>,
    publisher: Arc<OrderPublisher>,
) {
    metrics.register(|r| r.register_collector(Box::new(StreamCollector { engine, publisher })));
}
