//! The key portal and HQ's JSON API (contract section 6): the pages, attendee
//! accounts, keys and subscriptions under `/api/`, the facilitator's API under
//! `/admin/api/`, and the workshop's files under `/assets/`.

mod admin;
mod api;
pub mod assets;
mod auth;
mod pages;

use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::{delete, get, post};
use axum::Router;
use hq_core::ports::OrderStream;
use hq_core::services::SubscriptionService;
use hq_core::Hq;

pub use auth::{CSRF_HEADER, SESSION_COOKIE};
pub use pages::CSP;

/// Where things are, as attendees must be told (`GET /api/info`).
#[derive(Debug, Clone)]
pub struct PortalInfo {
    /// The base URL attendees reach HQ at, without a trailing slash.
    pub public_url: String,
    /// Where the fulfillment API answers (in AWS, the API Gateway stage URL).
    pub fulfillment_url: String,
    /// `AWS_ENDPOINT_URL_SNS` for the attendees' boto3, where HQ speaks SNS itself.
    pub sns_endpoint: Option<String>,
}

#[derive(Clone)]
pub struct PortalState {
    pub hq: Arc<Hq>,
    pub subscriptions: Arc<SubscriptionService>,
    /// The running publisher, where this process runs one (surges, counts).
    pub order_stream: Option<Arc<dyn OrderStream>>,
    pub info: Arc<PortalInfo>,
    /// The facilitator's bearer token for `/admin/api/`.
    pub admin_token: Arc<str>,
    /// Mark the session cookie `Secure` (when HQ is served over HTTPS).
    pub secure_cookies: bool,
    /// Workshop files served under `/assets/`.
    pub assets: Option<Assets>,
}

/// Where the workshop's files come from.
#[derive(Clone)]
pub enum Assets {
    /// A folder on this machine (the all-in-one mode's `--assets-dir`).
    Dir(PathBuf),
    /// A store elsewhere (the AWS mode: the stack's assets bucket).
    Store(Arc<dyn hq_core::ports::AssetStore>),
}

pub fn router(state: PortalState) -> Router {
    Router::new()
        .route("/", get(pages::portal))
        .route("/leaderboard", get(pages::leaderboard))
        .route("/admin", get(pages::admin))
        .route("/static/{file}", get(pages::file))
        .route("/assets", get(assets::root))
        .route("/assets/", get(assets::root))
        .route("/assets/{*path}", get(assets::path))
        .route("/api/info", get(api::info))
        .route("/api/signup", post(api::signup))
        .route("/api/login", post(api::login))
        .route("/api/logout", post(api::logout))
        .route("/api/me", get(api::me))
        .route("/api/key", get(api::key))
        .route("/api/key/rotate", post(api::rotate_key))
        .route(
            "/api/subscriptions",
            get(api::subscriptions).post(api::subscribe),
        )
        .route("/api/subscriptions/{id}", delete(api::unsubscribe))
        .route("/api/leaderboard", get(api::leaderboard))
        .route("/api/topics", get(api::topics))
        .route("/admin/api/users", get(admin::users))
        .route(
            "/admin/api/users/{username}/revoke-key",
            post(admin::revoke_key),
        )
        .route("/admin/api/rates", get(api::topics))
        .route(
            "/admin/api/rates/{topic}",
            get(admin::get_rate).put(admin::put_rate),
        )
        .route("/admin/api/surge", post(admin::surge))
        .route(
            "/admin/api/chaos",
            get(admin::get_chaos).put(admin::put_chaos),
        )
        .route("/admin/api/subscriptions", get(admin::subscriptions))
        .route("/admin/api/subscriptions/{id}", delete(admin::unsubscribe))
        .route("/admin/api/stats", get(admin::stats))
        .route("/admin/api/reset", post(admin::reset))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state)
}
