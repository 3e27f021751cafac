use axum::response::{IntoResponse, Response};
use hq_core::CoreError;
use http::StatusCode;

/// An error answer of the JSON API: `{"error":"<code>","message":"<text>"}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sign in first: send Authorization: Bearer <token> or the session cookie",
        )
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on HQ's side; it has been logged",
        )
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Invalid(m) => Self::bad_request("invalid", m),
            CoreError::UsernameTaken => {
                Self::new(StatusCode::CONFLICT, "username_taken", e.to_string())
            }
            CoreError::BadCredentials => {
                Self::new(StatusCode::UNAUTHORIZED, "bad_credentials", e.to_string())
            }
            CoreError::LoginLocked { retry_after_secs } => Self {
                retry_after: Some(retry_after_secs),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    e.to_string(),
                )
            },
            CoreError::Unauthenticated => Self::unauthorized(),
            CoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            CoreError::Store(s) => {
                tracing::error!(error = %s, "storage failure");
                Self::internal()
            }
        }
    }
}

impl From<hq_core::StoreError> for ApiError {
    fn from(e: hq_core::StoreError) -> Self {
        CoreError::Store(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = axum::Json(serde_json::json!({"error": self.code, "message": self.message}));
        let mut res = (self.status, body).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(http::header::RETRY_AFTER, secs.into());
        }
        res
    }
}
