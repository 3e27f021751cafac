//! The fulfillment API, exactly as contract section 5 describes it: the answers
//! API Gateway gives (403 / 429 with its bodies) and the answers of the Lambda
//! behind it (400 naming the problem, 413, 200 once durable).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::{Extension, Json, Router};
use hq_core::services::{FulfillmentService, IngestError, IngestRequest};
use hq_web::{read_body, ApiError, FulfillmentOutcome, Metrics, RequestId};
use serde_json::json;

/// Bodies over 64 KiB are refused with 413.
pub const MAX_BODY: usize = 64 * 1024;
/// A trace header longer than this is not kept.
const MAX_TRACE_ID: usize = 256;

#[derive(Clone)]
pub struct FulfillmentState {
    pub service: Arc<FulfillmentService>,
    pub metrics: Arc<Metrics>,
}

/// `POST`/`PUT` on `/receiving/` and `/receiving`; any other method is 405.
pub fn router(state: FulfillmentState) -> Router {
    let methods = || -> MethodRouter<FulfillmentState> {
        post(receive).put(receive).fallback(method_not_allowed)
    };
    Router::new()
        .route("/receiving/", methods())
        .route("/receiving", methods())
        .with_state(state)
}

async fn method_not_allowed() -> Response {
    let mut res = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "use POST or PUT to report a fulfillment",
    )
    .into_response();
    res.headers_mut().insert(
        http::header::ALLOW,
        http::HeaderValue::from_static("POST, PUT"),
    );
    res
}

/// The 200 body, fields in the contract's order.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    result: &'static str,
    fulfillment_id: uuid::Uuid,
}

/// API Gateway's own answers, byte for byte.
fn gateway(status: StatusCode, error_type: &'static str, message: &'static str) -> Response {
    let mut res = (status, Json(json!({ "message": message }))).into_response();
    res.headers_mut().insert(
        "x-amzn-errortype",
        http::HeaderValue::from_static(error_type),
    );
    res
}

async fn receive(
    State(s): State<FulfillmentState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    req: axum::extract::Request,
) -> Response {
    // The headers are read in place: the `HeaderMap` extractor would copy them.
    let (parts, body) = req.into_parts();
    let (outcome, res) = ingest(&s, request_id, &parts.headers, body).await;
    s.metrics.fulfillment(outcome);
    res
}

async fn ingest(
    s: &FulfillmentState,
    request_id: String,
    headers: &HeaderMap,
    body: Body,
) -> (FulfillmentOutcome, Response) {
    use FulfillmentOutcome as O;
    let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let entry = match s.service.admit(api_key).await {
        Ok(entry) => entry,
        Err(e) => return refused(e, &request_id),
    };
    let bytes = match read_body(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) if e.status == StatusCode::PAYLOAD_TOO_LARGE => {
            return (
                O::too_large,
                ApiError {
                    message: "the request body is over the 64 KiB limit".into(),
                    ..e
                }
                .into_response(),
            )
        }
        Err(e) => return (O::invalid, e.into_response()),
    };
    let trace_id = headers
        .get("x-amzn-trace-id")
        .and_then(|v| v.to_str().ok())
        .filter(|t| t.len() <= MAX_TRACE_ID)
        .map(str::to_owned);
    // Kept for the error log: this route has no span to carry it (see `hq_web::observe`).
    let request = IngestRequest {
        request_id: request_id.clone(),
        trace_id,
    };
    match s.service.record(&entry, &bytes, request).await {
        Ok(id) => {
            tracing::debug!(user = %entry.username, key_id = %entry.key_id, fulfillment_id = %id, "fulfillment stored");
            (
                O::accepted,
                Json(Accepted {
                    result: "success",
                    fulfillment_id: id,
                })
                .into_response(),
            )
        }
        Err(e) => refused(e, &request_id),
    }
}

fn refused(e: IngestError, request_id: &str) -> (FulfillmentOutcome, Response) {
    use FulfillmentOutcome as O;
    match e {
        IngestError::Forbidden => (
            O::forbidden,
            gateway(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden"),
        ),
        IngestError::Throttled => (
            O::throttled,
            gateway(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                "Too Many Requests",
            ),
        ),
        IngestError::QuotaExceeded => (
            O::quota_exceeded,
            gateway(
                StatusCode::TOO_MANY_REQUESTS,
                "LimitExceededException",
                "Limit Exceeded",
            ),
        ),
        IngestError::Invalid(problem) => (
            O::invalid,
            ApiError::bad_request(problem.code(), problem.to_string()).into_response(),
        ),
        IngestError::Injected(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let res = ApiError::new(
                status,
                "injected_fault",
                "a lab control made this request fail; nothing was stored",
            );
            (O::injected_error, res.into_response())
        }
        IngestError::Store(err) => {
            tracing::error!(request_id, error = %err, "fulfillment not stored");
            (O::error, ApiError::internal().into_response())
        }
    }
}
