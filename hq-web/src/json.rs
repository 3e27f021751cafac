use axum::body::Body;
use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Largest JSON body the portal and admin APIs accept.
pub const MAX_JSON_BODY: usize = 16 * 1024;

/// Reads a body up to `limit` bytes: 413 past it, 400 if the client broke off.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is over the limit of {} KiB", limit / 1024),
        )),
        Err(_) => Err(ApiError::bad_request(
            "unreadable_body",
            "the request body could not be read",
        )),
    }
}

/// A JSON body, parsed whatever the Content-Type says, with JSON errors.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req.into_body(), MAX_JSON_BODY).await?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::bad_request(
                "malformed_json",
                format!("the request body is not the JSON expected: {e}"),
            )
        })
    }
}
