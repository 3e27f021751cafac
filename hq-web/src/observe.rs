//! The middleware every request passes: a request id (answered as
//! `x-amzn-RequestId`, as API Gateway does), a tracing span carrying it, one log
//! line, and the request metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use tracing::Instrument;

use crate::Metrics;

/// The id of the request being served, for handlers that store or log it.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The fulfillment API is the hot path (every attendee's fulfiller, and the
/// load-testing lab): its requests get no span. Creating, entering and closing
/// one costs ~1 µs of the ~20 µs a fulfillment takes (measured with `perf`
/// during the ingest benchmark); its handler logs only failures, and those name
/// the request id themselves.
fn is_hot(route: &str) -> bool {
    route.starts_with("/receiving")
}

pub async fn observe(
    State(metrics): State<Arc<Metrics>>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = uuid::Uuid::new_v4().to_string();
    // MatchedPath is a shared string: cloning it does not allocate.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", |p| p.as_str());
    let method = req.method().clone();
    req.extensions_mut().insert(RequestId(id.clone()));
    let hot = is_hot(route);
    let mut res = if hot {
        next.run(req).await
    } else {
        // Whatever the handler logs carries the request id.
        let span = tracing::info_span!("request", request_id = %id);
        next.run(req).instrument(span).await
    };
    let status = res.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    metrics.observe_request(route, &method, status, seconds);
    let ms = seconds * 1000.0;
    macro_rules! served {
        ($level:ident) => {
            tracing::$level!(request_id = %id, method = %method, route, status, ms, "served")
        };
    }
    if status >= 500 {
        served!(warn);
    } else if hot && status == 200 {
        served!(debug);
    } else {
        served!(info);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-amzn-requestid", v);
    }
    res
}
