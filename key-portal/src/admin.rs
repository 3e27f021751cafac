//! The facilitator's API: attendees and their keys, topic rates.

use axum::extract::{Path, State};
use axum::Json;
use hq_core::domain::SubscriptionView;
use hq_core::domain::{RatePatch, TopicName, Username};
use hq_core::services::{AdminUserView, ReceivingFaults, ReceivingFaultsPatch, TopicView};
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
    s.hq.rates.patch_rate(t, patch).await?;
    if let Some(stream) = &s.order_stream {
        stream.rates_changed();
    }
    view(&s, t).await
}

/// The lab controls: faults on `/receiving/`, and the malformed share of each topic.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Chaos {
    receiving: ReceivingFaults,
    malformed_share: std::collections::BTreeMap<&'static str, f64>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ChaosPatch {
    #[serde(default)]
    receiving: Option<ReceivingFaultsPatch>,
    /// Topic name → share of malformed orders.
    #[serde(default)]
    malformed_share: Option<std::collections::BTreeMap<String, f64>>,
}

async fn chaos_view(s: &PortalState) -> Result<Json<Chaos>, ApiError> {
    let malformed_share =
        s.hq.rates
            .topics()
            .await?
            .into_iter()
            .map(|t| (t.name, t.rate.malformed_share))
            .collect();
    Ok(Json(Chaos {
        receiving: s.hq.lab.receiving().await,
        malformed_share,
    }))
}

pub(crate) async fn get_chaos(
    _: Facilitator,
    State(s): State<PortalState>,
) -> Result<Json<Chaos>, ApiError> {
    chaos_view(&s).await
}

pub(crate) async fn put_chaos(
    _: Facilitator,
    State(s): State<PortalState>,
    JsonBody(patch): JsonBody<ChaosPatch>,
) -> Result<Json<Chaos>, ApiError> {
    // Check everything before changing anything.
    let mut shares = Vec::new();
    for (name, share) in patch.malformed_share.unwrap_or_default() {
        let t = topic(&name)?;
        let share = RatePatch {
            malformed_share: Some(share),
            ..Default::default()
        };
        share
            .validate()
            .map_err(|m| ApiError::bad_request("invalid", m))?;
        shares.push((t, share));
    }
    if let Some(r) = patch.receiving {
        s.hq.lab.set_receiving(r).await?;
    }
    for (t, share) in shares {
        s.hq.rates.patch_rate(t, share).await?;
    }
    if let Some(stream) = &s.order_stream {
        stream.rates_changed();
    }
    chaos_view(&s).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SurgeRequest {
    topic: String,
    count: u32,
    seconds: u32,
}

pub(crate) async fn surge(
    _: Facilitator,
    State(s): State<PortalState>,
    JsonBody(req): JsonBody<SurgeRequest>,
) -> Result<(http::StatusCode, Json<Value>), ApiError> {
    let t = topic(&req.topic)?;
    if let Some(stream) = &s.order_stream {
        stream
            .surge(t, req.count, req.seconds)
            .map_err(|m| ApiError::bad_request("invalid", m))?;
    } else if s.hq.lab.is_shared() {
        // The publisher is another process (the scheduled Lambda): it finds
        // the surge in the store.
        s.hq.lab
            .add_surge(t, req.count, req.seconds, hq_core::clock::now_millis())
            .await?;
    } else {
        return Err(ApiError::new(
            http::StatusCode::NOT_IMPLEMENTED,
            "not_available",
            "no order publisher runs in this process",
        ));
    }
    tracing::info!(
        topic = t.as_str(),
        count = req.count,
        seconds = req.seconds,
        "surge started"
    );
    Ok((
        http::StatusCode::ACCEPTED,
        Json(json!({"topic": t.as_str(), "count": req.count, "seconds": req.seconds})),
    ))
}

pub(crate) async fn subscriptions(
    _: Facilitator,
    State(s): State<PortalState>,
) -> Result<Json<Vec<SubscriptionView>>, ApiError> {
    Ok(Json(s.subscriptions.list_all().await?))
}

pub(crate) async fn unsubscribe(
    _: Facilitator,
    State(s): State<PortalState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    s.subscriptions.unsubscribe_any(&id).await?;
    Ok(Json(json!({ "unsubscribed": id })))
}

/// Event totals for the console.
pub(crate) async fn stats(
    _: Facilitator,
    State(s): State<PortalState>,
) -> Result<Json<Value>, ApiError> {
    let board = s.hq.leaderboard().await?;
    let subs = s.subscriptions.list_all().await?;
    let published: std::collections::BTreeMap<&str, u64> = s
        .order_stream
        .as_ref()
        .map(|o| {
            o.published()
                .into_iter()
                .map(|(t, n)| (t.as_str(), n))
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(json!({
        "attendees": board.entries.len(),
        "fulfillments": board.entries.iter().map(|e| e.total).sum::<u64>(),
        "fulfillmentsLastMinute": board.entries.iter().map(|e| e.per_minute.last().copied().unwrap_or(0) as u64).sum::<u64>(),
        "ordersPublished": published.values().sum::<u64>(),
        "publishedByTopic": published,
        "subscriptions": subs.len(),
        "deliveries": subs.iter().map(|s| s.delivered).sum::<u64>(),
        "deliveryFailures": subs.iter().map(|s| s.failed_attempts).sum::<u64>(),
    })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetRequest {
    scope: String,
    confirm: String,
}

/// Empties the event's data. Needs the word RESET typed, so no stray click does it.
pub(crate) async fn reset(
    _: Facilitator,
    State(s): State<PortalState>,
    JsonBody(req): JsonBody<ResetRequest>,
) -> Result<Json<Value>, ApiError> {
    if req.confirm != "RESET" {
        return Err(ApiError::bad_request(
            "confirmation_required",
            "type RESET in \"confirm\" to reset the event",
        ));
    }
    match req.scope.as_str() {
        "fulfillments" => s.hq.ledger.clear().await?,
        "everything" => {
            for sub in s.subscriptions.list_all().await? {
                s.subscriptions
                    .unsubscribe_any(&sub.subscription_arn)
                    .await?;
            }
            s.hq.ledger.clear().await?;
            s.hq.accounts.store().clear_accounts().await?;
            s.hq.keys.clear();
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid",
                "scope must be \"fulfillments\" or \"everything\"",
            ))
        }
    }
    tracing::warn!(scope = %req.scope, "event data reset by the facilitator");
    Ok(Json(json!({ "reset": req.scope })))
}
