//! The attendees' JSON API.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hq_core::clock::{now_millis, rfc3339};
use hq_core::domain::{SubscriptionView, TopicName};
use hq_core::services::KeyView;
use hq_web::{ApiError, JsonBody};
use http::{header, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{check_csrf, session_token, Attendee, SESSION_COOKIE};
use crate::PortalState;

#[derive(Deserialize)]
pub(crate) struct Credentials {
    username: String,
    password: String,
}

pub(crate) async fn signup(
    State(s): State<PortalState>,
    JsonBody(c): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    let username = s.hq.accounts.signup(&c.username, &c.password).await?;
    Ok((StatusCode::CREATED, Json(json!({ "username": username }))).into_response())
}

pub(crate) async fn login(
    State(s): State<PortalState>,
    JsonBody(c): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    let session = s.hq.accounts.login(&c.username, &c.password).await?;
    let max_age = ((session.expires_at - now_millis()) / 1000).max(0);
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        session.token.0,
        if s.secure_cookies { "; Secure" } else { "" }
    );
    let mut res = Json(json!({
        "token": session.token.0,
        "expiresAt": rfc3339(session.expires_at),
        "username": c.username,
    }))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

pub(crate) async fn logout(
    State(s): State<PortalState>,
    req: http::Request<axum::body::Body>,
) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    check_csrf(&parts)?;
    if let Some(token) = session_token(&parts) {
        s.hq.accounts.logout(&token).await?;
    }
    let mut res = Json(json!({ "signedOut": true })).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("hq_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(res)
}

pub(crate) async fn me(Attendee(user): Attendee) -> Json<serde_json::Value> {
    Json(json!({ "username": user }))
}

/// What attendees paste into their stack; public, the same for everyone.
pub(crate) async fn info(State(s): State<PortalState>) -> Json<serde_json::Value> {
    let topics: Vec<_> = TopicName::ALL
        .iter()
        .map(|t| json!({"name": t.as_str(), "arn": s.hq.rates.arn(*t)}))
        .collect();
    let url = &s.info.public_url;
    Json(json!({
        "portalUrl": format!("{url}/"),
        "leaderboardUrl": format!("{url}/leaderboard"),
        "fulfillmentUrl": s.info.fulfillment_url,
        "snsEndpoint": s.info.sns_endpoint,
        "region": s.hq.config.region,
        "topics": topics,
        "assetsUrl": s.assets.as_ref().map(|_| format!("{url}/assets/")),
    }))
}

#[derive(Deserialize)]
pub(crate) struct NewSubscription {
    topic: String,
    endpoint: String,
}

pub(crate) async fn subscriptions(
    State(s): State<PortalState>,
    Attendee(user): Attendee,
) -> Result<Json<Vec<SubscriptionView>>, ApiError> {
    Ok(Json(s.subscriptions.list_own(&user).await?))
}

pub(crate) async fn subscribe(
    State(s): State<PortalState>,
    Attendee(user): Attendee,
    JsonBody(req): JsonBody<NewSubscription>,
) -> Result<Response, ApiError> {
    let view = s
        .subscriptions
        .subscribe(&user, &req.topic, &req.endpoint)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

pub(crate) async fn unsubscribe(
    State(s): State<PortalState>,
    Attendee(user): Attendee,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.subscriptions.unsubscribe_own(&user, &id).await?;
    Ok(Json(json!({ "unsubscribed": id })))
}

pub(crate) async fn key(
    State(s): State<PortalState>,
    Attendee(user): Attendee,
) -> Result<Json<KeyView>, ApiError> {
    let key = s.hq.accounts.key(&user).await?;
    Ok(Json(KeyView::of(&key, now_millis())))
}

pub(crate) async fn rotate_key(
    State(s): State<PortalState>,
    Attendee(user): Attendee,
) -> Result<Json<KeyView>, ApiError> {
    let key = s.hq.accounts.rotate_key(&user).await?;
    Ok(Json(KeyView::of(&key, now_millis())))
}

pub(crate) async fn leaderboard(State(s): State<PortalState>) -> Result<Response, ApiError> {
    let board = s.hq.leaderboard().await?;
    let mut res = Json(board).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

pub(crate) async fn topics(State(s): State<PortalState>) -> Result<Response, ApiError> {
    Ok(Json(s.hq.rates.topics().await?).into_response())
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed here",
    )
}
