//! HQ's Prometheus metrics. One registry per running app (not a global), so tests
//! that run several apps in one process each see their own numbers.

use parking_lot::Mutex;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

/// What became of one request to `/receiving/`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum FulfillmentOutcome {
    accepted,
    forbidden,
    throttled,
    quota_exceeded,
    invalid,
    too_large,
    injected_error,
    error,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: FulfillmentOutcome,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    fulfillments: Family<OutcomeLabels, Counter>,
    /// Route templates seen so far, leaked once each so labels are `&'static str`
    /// and counting a request allocates nothing. Bounded by the routes that exist.
    routes: Mutex<Vec<&'static str>>,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~4 s
    Histogram::new(exponential_buckets(0.00025, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hq");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let fulfillments = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "fulfillments",
            "Requests to /receiving/ by outcome",
            fulfillments.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            latency,
            fulfillments,
            routes: Mutex::new(Vec::new()),
        }
    }

    /// Lets another part of the app (the SNS engine, the publisher) add its metrics.
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        f(&mut self.registry.lock());
    }

    fn intern(&self, route: &str) -> &'static str {
        let mut routes = self.routes.lock();
        if let Some(r) = routes.iter().find(|r| **r == route) {
            return r;
        }
        if routes.len() >= 256 {
            return "other";
        }
        let leaked: &'static str = Box::leak(route.to_owned().into_boxed_str());
        routes.push(leaked);
        leaked
    }

    pub fn observe_request(&self, route: &str, method: &http::Method, status: u16, seconds: f64) {
        let route = self.intern(route);
        let method = match *method {
            http::Method::GET => "GET",
            http::Method::POST => "POST",
            http::Method::PUT => "PUT",
            http::Method::DELETE => "DELETE",
            http::Method::HEAD => "HEAD",
            http::Method::PATCH => "PATCH",
            http::Method::OPTIONS => "OPTIONS",
            _ => "OTHER",
        };
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(seconds);
    }

    pub fn fulfillment(&self, outcome: FulfillmentOutcome) {
        self.fulfillments
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock());
        out
    }
}
