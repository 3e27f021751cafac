//! Who is calling: an attendee (bearer token or session cookie) or the facilitator
//! (admin bearer token).

use axum::extract::FromRequestParts;
use hq_core::domain::Username;
use hq_web::ApiError;
use http::request::Parts;

use crate::PortalState;

pub const SESSION_COOKIE: &str = "hq_session";
/// Cookie-authenticated changes must carry this header. A cross-site form or
/// image cannot set it, and a cross-site script cannot without a CORS grant,
/// which HQ never gives: so a page elsewhere cannot act with an attendee's cookie.
pub const CSRF_HEADER: &str = "x-hq-csrf";

/// The session token a request carries: `Authorization: Bearer` first, then the cookie.
pub(crate) fn session_token(parts: &Parts) -> Option<String> {
    if let Some(token) = bearer(parts) {
        return Some(token.to_owned());
    }
    cookie_token(parts)
}

fn cookie_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Refuses a cookie-authenticated state change without [`CSRF_HEADER`].
pub(crate) fn check_csrf(parts: &Parts) -> Result<(), ApiError> {
    let safe = matches!(parts.method, http::Method::GET | http::Method::HEAD);
    if safe || bearer(parts).is_some() || parts.headers.contains_key(CSRF_HEADER) {
        return Ok(());
    }
    Err(ApiError::new(
        http::StatusCode::FORBIDDEN,
        "csrf",
        format!("a change made with the session cookie needs the {CSRF_HEADER} header"),
    ))
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A signed-in attendee.
pub struct Attendee(pub Username);

impl FromRequestParts<PortalState> for Attendee {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, ApiError> {
        let token = session_token(parts).ok_or_else(ApiError::unauthorized)?;
        check_csrf(parts)?;
        Ok(Attendee(state.hq.accounts.authenticate(&token).await?))
    }
}

/// The facilitator, proven by the admin token.
pub struct Facilitator;

impl FromRequestParts<PortalState> for Facilitator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, ApiError> {
        let given = bearer(parts).unwrap_or("");
        if constant_time_eq(given.as_bytes(), state.admin_token.as_bytes()) && !given.is_empty() {
            Ok(Facilitator)
        } else {
            Err(ApiError::new(
                http::StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the facilitator API needs Authorization: Bearer <admin token>",
            ))
        }
    }
}

/// Compares digests so the time taken says nothing about how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::Digest;
    let (da, db) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
