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
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut res = next.run(req).instrument(span.clone()).await;
    let status = res.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    metrics.observe_request(route, &method, status, seconds);
    span.in_scope(|| {
        let ms = seconds * 1000.0;
        if status >= 500 {
            tracing::warn!(status, ms, "served");
        } else if route.starts_with("/receiving") && status == 200 {
            tracing::debug!(status, ms, "served");
        } else {
            tracing::info!(status, ms, "served");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-amzn-requestid", v);
    }
    res
}
