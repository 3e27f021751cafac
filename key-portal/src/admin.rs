//! The facilitator's API: attendees and their keys, topic rates.

use axum::extract::{Path, State};
use axum::Json;
use hq_core::domain::{RatePatch, TopicName, Username};
use hq_core::services::{AdminUserView, TopicView};
use hq_web::{ApiError, JsonBody};
use serde_json::{json, Value};

use crate::auth::Facilitator;
use crate::PortalState;

pub(crate) async fn users(
    _: Facilitator,
    State(s): State<PortalState>,
) -> Result<Json<Vec<AdminUserView>>, ApiError> {
    Ok(Json(s.hq.accounts.admin_users().await?))
}

pub(crate) async fn revoke_key(
    _: Facilitator,
    State(s): State<PortalState>,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = Username::parse(&username)
        .map_err(|_| ApiError::not_found(format!("no attendee named {username:?}")))?;
    match s.hq.accounts.revoke_key(&user).await? {
        Some(k) => Ok(Json(
            json!({"username": user, "keyId": k.id, "keyStatus": "revoked"}),
        )),
        None => Err(ApiError::not_found(format!(
            "{user} has no API key to revoke"
        ))),
    }
}

fn topic(name: &str) -> Result<TopicName, ApiError> {
    TopicName::parse(name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no topic {name:?}; topics are orders (orderTopic), iridium and magnesite"
        ))
    })
}

async fn view(s: &PortalState, t: TopicName) -> Result<Json<TopicView>, ApiError> {
    let rate = s.hq.rates.rate(t).await?;
    Ok(Json(TopicView {
        name: t.as_str(),
        arn: s.hq.rates.arn(t),
        rate,
    }))
}

pub(crate) async fn get_rate(
    _: Facilitator,
    State(s): State<PortalState>,
    Path(name): Path<String>,
) -> Result<Json<TopicView>, ApiError> {
    view(&s, topic(&name)?).await
}

pub(crate) async fn put_rate(
    _: Facilitator,
    State(s): State<PortalState>,
    Path(name): Path<String>,
    JsonBody(patch): JsonBody<RatePatch>,
) -> Result<Json<TopicView>, ApiError> {
    let t = topic(&name)?;
    let rate = s.hq.rates.rate(t).await?.patched(patch);
    s.hq.rates.set_rate(t, rate).await?;
    view(&s, t).await
}
