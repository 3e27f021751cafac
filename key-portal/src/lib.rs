//! The key portal and HQ's JSON API (contract section 6): attendee accounts and
//! keys under `/api/`, the facilitator's API under `/admin/api/`.

mod admin;
mod api;
mod auth;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use hq_core::Hq;

pub use auth::SESSION_COOKIE;

#[derive(Clone)]
pub struct PortalState {
    pub hq: Arc<Hq>,
    /// The facilitator's bearer token for `/admin/api/`.
    pub admin_token: Arc<str>,
    /// Mark the session cookie `Secure` (when HQ is served over HTTPS).
    pub secure_cookies: bool,
}

pub fn router(state: PortalState) -> Router {
    Router::new()
        .route("/api/signup", post(api::signup))
        .route("/api/login", post(api::login))
        .route("/api/logout", post(api::logout))
        .route("/api/key", get(api::key))
        .route("/api/key/rotate", post(api::rotate_key))
        .route("/api/leaderboard", get(api::leaderboard))
        .route("/api/topics", get(api::topics))
        .route("/admin/api/users", get(admin::users))
        .route(
            "/admin/api/users/{username}/revoke-key",
            post(admin::revoke_key),
        )
        .route(
            "/admin/api/rates/{topic}",
            get(admin::get_rate).put(admin::put_rate),
        )
        .route("/admin/api/rates", get(api::topics))
        .route("/admin/api/chaos", get(admin::get_chaos).put(admin::put_chaos))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state)
}
