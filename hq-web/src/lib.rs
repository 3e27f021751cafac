//! HTTP plumbing shared by every router of HQ, in every mode.
//!
//! * [`ApiError`]: the `{"error","message"}` answer of the JSON API.
//! * [`JsonBody`]: a JSON extractor that ignores Content-Type and answers with
//!   [`ApiError`] instead of plain text.
//! * [`observe`]: the per-request middleware: request id, span, log line, metrics.
//! * [`Metrics`] and [`ops_router`]: `/metrics` (Prometheus text) and `/healthz`.

mod error;
mod json;
mod metrics;
mod observe;

pub use error::ApiError;
pub use json::{read_body, JsonBody};
pub use metrics::{FulfillmentOutcome, Metrics};
pub use observe::{observe, RequestId};

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

/// `/healthz` and `/metrics`.
pub fn ops_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.render(),
                    )
                }
            }),
        )
}
