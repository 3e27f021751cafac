//! SNS's query API at `/sns`: form-encoded actions in (POST body, or the query
//! string for the URL actions SNS puts in messages), SNS XML out.
//!
//! Errors are SNS's documents with SNS's codes: `InvalidParameter` (400) for
//! bad or missing parameters and malformed ARNs, `NotFound` (404) for unknown
//! topics and subscriptions, `InvalidAction` (400) for unknown actions,
//! `MissingAction` (400) without one, and the batch codes of `PublishBatch`.
//! Credentials and signatures of requests are not checked (local modes only).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hq_core::domain::{DeliveryPolicy, Endpoint, Protocol, SubscriptionStatus};
use hq_core::ports::BusError;

use crate::engine::{validate_message, Core, PublishMessage, Sub, Topic};
use crate::xml::{Doc, SnsError};
use crate::{CERT_PATH, MAX_MESSAGE_BYTES};

/// Form bodies are at most this long: a 256 KiB message percent-encoded, plus
/// the other parameters.
const MAX_BODY: usize = 1024 * 1024;
/// Page size of the List* actions, as in SNS.
const PAGE: usize = 100;

pub(crate) fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/sns", get(handle).post(handle))
        .route("/sns/", get(handle).post(handle))
        .route(CERT_PATH, get(certificate))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(core)
}

async fn certificate(State(core): State<Arc<Core>>) -> Response {
    let mut r = core.signer.cert_pem().to_string().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-x509-ca-cert"),
    );
    r
}

async fn handle(
    State(core): State<Arc<Core>>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let outcome = async {
        let body = body.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                SnsError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    "Request body is too large",
                )
            } else {
                SnsError::invalid(format!("Could not read the request body: {e}"))
            }
        })?;
        let params = Params::parse(query.as_deref(), &body)?;
        dispatch(&core, &params).await
    }
    .await;
    match outcome {
        Ok(doc) => doc.finish(&request_id),
        Err(e) => e.into_response(&request_id),
    }
}

/// The request's parameters: the query string's, then the body's.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: Option<&str>, body: &[u8]) -> Result<Self, SnsError> {
        let malformed = |_| {
            SnsError::new(
                StatusCode::BAD_REQUEST,
                "MalformedQueryString",
                "The request is not form-encoded",
            )
        };
        let mut all: Vec<(String, String)> = match query {
            Some(q) => serde_urlencoded::from_str(q).map_err(malformed)?,
            None => Vec::new(),
        };
        if !body.is_empty() {
            let b: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(malformed)?;
            all.extend(b);
        }
        Ok(Self(all))
    }

    /// The last value of `name` (body wins over query string).
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, SnsError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(SnsError::invalid(format!(
                "Invalid parameter: {name} Reason: {name} is required"
            ))),
        }
    }

    /// `Prefix.N.Field` groups in N order: `Attributes.entry.N.key/value`,
    /// `PublishBatchRequestEntries.member.N.Id`, ...
    fn members(&self, prefix: &str) -> BTreeMap<u32, BTreeMap<String, String>> {
        let mut out: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
                continue;
            };
            let Some((n, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(n) = n.parse::<u32>() else { continue };
            out.entry(n)
                .or_default()
                .insert(field.to_string(), v.clone());
        }
        out
    }

    /// `Attributes.entry.N.key` / `.value` pairs.
    fn attributes(&self) -> Vec<(String, String)> {
        self.members("Attributes.entry")
            .into_values()
            .filter_map(|mut e| Some((e.remove("key")?, e.remove("value").unwrap_or_default())))
            .collect()
    }
}

fn bus(e: BusError) -> SnsError {
    match e {
        BusError::NotFound(what) => SnsError::not_found(format!("{what} does not exist")),
        BusError::Invalid(msg) => SnsError::invalid(msg),
        BusError::ShuttingDown => SnsError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "HQ is shutting down",
        ),
        BusError::Backend(msg) => SnsError::internal(msg),
    }
}

fn topic_param(core: &Core, p: &Params, name: &str) -> Result<Arc<Topic>, SnsError> {
    let arn = p.required(name)?;
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" || parts[5].is_empty() {
        return Err(SnsError::invalid(format!(
            "Invalid parameter: {name} Reason: {arn} is not a topic ARN (arn:aws:sns:<region>:<account>:<name>)"
        )));
    }
    core.topic_by_arn(arn)
        .ok_or_else(|| SnsError::not_found("Topic does not exist"))
}

fn sub_param(core: &Core, p: &Params) -> Result<Arc<Sub>, SnsError> {
    let arn = p.required("SubscriptionArn")?;
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() != 7 || parts[0] != "arn" || parts[2] != "sns" || parts[6].is_empty() {
        return Err(SnsError::invalid(format!(
            "Invalid parameter: SubscriptionArn Reason: {arn} is not a subscription ARN"
        )));
    }
    core.sub(arn)
        .ok_or_else(|| SnsError::not_found("Subscription does not exist"))
}

fn page_start(p: &Params) -> Result<usize, SnsError> {
    match p.get("NextToken") {
        None | Some("") => Ok(0),
        Some(t) => t
            .parse()
            .map_err(|_| SnsError::invalid("Invalid parameter: NextToken")),
    }
}

async fn dispatch(core: &Arc<Core>, p: &Params) -> Result<Doc, SnsError> {
    let action = p.get("Action").ok_or_else(|| {
        SnsError::new(
            StatusCode::BAD_REQUEST,
            "MissingAction",
            "Missing required parameter: Action",
        )
    })?;
    match action {
        "CreateTopic" => {
            let topic = core
                .create_topic(p.required("Name")?, &p.attributes())
                .await
                .map_err(bus)?;
            let mut d = Doc::new("CreateTopic");
            d.el("TopicArn", &topic.arn);
            Ok(d)
        }
        "ListTopics" => {
            let start = page_start(p)?;
            let topics = core.topics();
            let mut d = Doc::new("ListTopics");
            d.open("Topics");
            for t in topics.iter().skip(start).take(PAGE) {
                d.open("member").el("TopicArn", &t.arn).close("member");
            }
            d.close("Topics");
            if topics.len() > start + PAGE {
                d.el("NextToken", &(start + PAGE).to_string());
            }
            Ok(d)
        }
        "GetTopicAttributes" => {
            let topic = topic_param(core, p, "TopicArn")?;
            Ok(topic_attributes(core, &topic))
        }
        "SetTopicAttributes" => {
            let topic = topic_param(core, p, "TopicArn")?;
            let name = p.required("AttributeName")?;
            core.set_topic_attribute(&topic, name, p.get("AttributeValue").unwrap_or_default())
                .await
                .map_err(bus)?;
            Ok(Doc::new("SetTopicAttributes"))
        }
        "Subscribe" => subscribe(core, p).await,
        "ConfirmSubscription" => {
            let topic = topic_param(core, p, "TopicArn")?;
            let sub = core
                .confirm(&topic, p.required("Token")?)
                .await
                .map_err(bus)?;
            let mut d = Doc::new("ConfirmSubscription");
            d.el("SubscriptionArn", &sub.arn);
            Ok(d)
        }
        "Unsubscribe" => {
            let sub = sub_param(core, p)?;
            core.unsubscribe(&sub.arn).await.map_err(bus)?;
            Ok(Doc::new("Unsubscribe"))
        }
        "ListSubscriptions" => Ok(list_subscriptions(
            core,
            "ListSubscriptions",
            None,
            page_start(p)?,
        )),
        "ListSubscriptionsByTopic" => {
            let topic = topic_param(core, p, "TopicArn")?;
            Ok(list_subscriptions(
                core,
                "ListSubscriptionsByTopic",
                Some(&topic),
                page_start(p)?,
            ))
        }
        "GetSubscriptionAttributes" => {
            let sub = sub_param(core, p)?;
            Ok(subscription_attributes(core, &sub))
        }
        "SetSubscriptionAttributes" => {
            let sub = sub_param(core, p)?;
            let name = p.required("AttributeName")?;
            core.set_subscription_attribute(
                &sub,
                name,
                p.get("AttributeValue").unwrap_or_default(),
            )
            .await
            .map_err(bus)?;
            Ok(Doc::new("SetSubscriptionAttributes"))
        }
        "Publish" => {
            if p.get("PhoneNumber").is_some() {
                return Err(SnsError::invalid(
                    "Invalid parameter: PhoneNumber Reason: HQ delivers to topics only",
                ));
            }
            let name = match (p.get("TopicArn"), p.get("TargetArn")) {
                (Some(_), _) => "TopicArn",
                (None, Some(_)) => "TargetArn",
                (None, None) => {
                    return Err(SnsError::invalid(
                        "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter",
                    ))
                }
            };
            let topic = topic_param(core, p, name)?;
            let message = p.get("Message").unwrap_or_default();
            let msg = publish_message(message, p.get("MessageStructure"), p.get("Subject"))?;
            let id = core.publish(&topic, msg).map_err(bus)?;
            let mut d = Doc::new("Publish");
            d.el("MessageId", &id);
            Ok(d)
        }
        "PublishBatch" => publish_batch(core, p),
        other => Err(SnsError::new(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!("The action {other} is not valid for this endpoint."),
        )),
    }
}

async fn subscribe(core: &Arc<Core>, p: &Params) -> Result<Doc, SnsError> {
    let topic = topic_param(core, p, "TopicArn")?;
    let protocol_name = p.required("Protocol")?;
    let protocol = Protocol::parse(protocol_name).ok_or_else(|| {
        SnsError::invalid(format!(
            "Invalid parameter: Protocol Reason: HQ delivers only to http and https endpoints, not {protocol_name}"
        ))
    })?;
    let raw = p.required("Endpoint")?;
    let endpoint = Endpoint::resolve(raw, core.config.endpoint_policy)
        .await
        .map_err(|e| SnsError::invalid(format!("Invalid parameter: Endpoint Reason: {e}")))?;
    if endpoint.protocol() != protocol {
        return Err(SnsError::invalid(
            "Invalid parameter: Endpoint Reason: the endpoint must match the specified protocol",
        ));
    }
    let sub = core
        .subscribe(&topic, &endpoint, None, &p.attributes())
        .await
        .map_err(bus)?;
    let return_arn = p
        .get("ReturnSubscriptionArn")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let shown = if return_arn || sub.status() == SubscriptionStatus::Confirmed {
        sub.arn.clone()
    } else {
        "pending confirmation".to_string()
    };
    let mut d = Doc::new("Subscribe");
    d.el("SubscriptionArn", &shown);
    Ok(d)
}

fn publish_message(
    message: &str,
    structure: Option<&str>,
    subject: Option<&str>,
) -> Result<PublishMessage, SnsError> {
    if message.is_empty() {
        return Err(SnsError::invalid("Empty message"));
    }
    let subject = match subject {
        None => None,
        Some(s) if !s.is_empty() && s.len() <= 100 && s.bytes().all(|b| (0x20..0x7f).contains(&b)) => Some(s.to_string()),
        Some(_) => {
            return Err(SnsError::invalid(
                "Invalid parameter: Subject Reason: must be 1 to 100 printable ASCII characters without line breaks",
            ))
        }
    };
    let mut msg = PublishMessage {
        default: message.to_string(),
        http: None,
        https: None,
        subject,
    };
    match structure {
        None | Some("") => {}
        Some("json") => {
            let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(message)
                .map_err(|_| {
                    SnsError::invalid(
                        "Invalid parameter: Message Structure - JSON message body failed to parse",
                    )
                })?;
            let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
            msg.default = text("default").ok_or_else(|| {
                SnsError::invalid(
                    "Invalid parameter: Message Structure - No default entry in JSON message body",
                )
            })?;
            msg.http = text("http");
            msg.https = text("https");
        }
        Some(other) => {
            return Err(SnsError::invalid(format!(
                "Invalid parameter: MessageStructure Reason: {other} is not json"
            )))
        }
    }
    for m in [Some(&msg.default), msg.http.as_ref(), msg.https.as_ref()]
        .into_iter()
        .flatten()
    {
        validate_message(m).map_err(bus)?;
    }
    Ok(msg)
}

fn publish_batch(core: &Arc<Core>, p: &Params) -> Result<Doc, SnsError> {
    let topic = topic_param(core, p, "TopicArn")?;
    let entries = p.members("PublishBatchRequestEntries.member");
    let bad = |code: &'static str, msg: &str| SnsError::new(StatusCode::BAD_REQUEST, code, msg);
    if entries.is_empty() {
        return Err(bad(
            "EmptyBatchRequest",
            "The batch request doesn't contain any entries.",
        ));
    }
    if entries.len() > 10 {
        return Err(bad(
            "TooManyEntriesInBatchRequest",
            "The batch request contains more entries than permissible.",
        ));
    }
    let mut ids = HashSet::new();
    let mut total = 0usize;
    for e in entries.values() {
        let id = e.get("Id").map(String::as_str).unwrap_or_default();
        if id.is_empty()
            || id.len() > 80
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("InvalidBatchEntryId", "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long."));
        }
        if !ids.insert(id) {
            return Err(bad(
                "BatchEntryIdsNotDistinct",
                "Two or more batch entries in the request have the same Id.",
            ));
        }
        total += e.get("Message").map_or(0, |m| m.len());
    }
    if total > MAX_MESSAGE_BYTES {
        return Err(bad(
            "BatchRequestTooLong",
            "The length of all the messages put together is more than the limit.",
        ));
    }
    let mut d = Doc::new("PublishBatch");
    let mut failed = Vec::new();
    d.open("Successful");
    for e in entries.values() {
        let id = e.get("Id").map(String::as_str).unwrap_or_default();
        let outcome = publish_message(
            e.get("Message").map(String::as_str).unwrap_or_default(),
            e.get("MessageStructure").map(String::as_str),
            e.get("Subject").map(String::as_str),
        )
        .and_then(|m| core.publish(&topic, m).map_err(bus));
        match outcome {
            Ok(message_id) => {
                d.open("member")
                    .el("Id", id)
                    .el("MessageId", &message_id)
                    .close("member");
            }
            Err(err) => failed.push((id.to_string(), err)),
        }
    }
    d.close("Successful").open("Failed");
    for (id, err) in failed {
        d.open("member")
            .el("Id", &id)
            .el("Code", err.code)
            .el("Message", &err.message)
            .el(
                "SenderFault",
                if err.status.is_client_error() {
                    "true"
                } else {
                    "false"
                },
            )
            .close("member");
    }
    d.close("Failed");
    Ok(d)
}

fn topic_attributes(core: &Core, topic: &Topic) -> Doc {
    let record = topic.record.lock().clone();
    let subs = core.all_subs();
    let mine: Vec<_> = subs
        .iter()
        .filter(|s| std::ptr::eq(s.topic.as_ref(), topic))
        .collect();
    let confirmed = mine
        .iter()
        .filter(|s| s.status() == SubscriptionStatus::Confirmed)
        .count();
    let settings = topic.settings.read().clone();
    let effective = DeliveryPolicy::effective(settings.policy.as_ref(), None);
    let account = core.config.account_id.clone();
    let default_policy = serde_json::json!({
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [{
            "Sid": "__default_statement_ID",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["SNS:Publish", "SNS:Subscribe", "SNS:Receive", "SNS:GetTopicAttributes", "SNS:SetTopicAttributes"],
            "Resource": topic.arn,
            "Condition": {"StringEquals": {"AWS:SourceOwner": account}}
        }]
    })
    .to_string();
    let effective_json = serde_json::json!({
        "http": {
            "defaultHealthyRetryPolicy": effective.retry,
            "disableSubscriptionOverrides": settings.policy.as_ref().is_some_and(|p| p.1),
            "defaultThrottlePolicy": effective.max_receives_per_second.map(|m| serde_json::json!({"maxReceivesPerSecond": m})),
        }
    })
    .to_string();
    let mut attrs: BTreeMap<&str, String> = BTreeMap::new();
    attrs.insert("TopicArn", topic.arn.clone());
    attrs.insert("Owner", account.clone());
    attrs.insert("DisplayName", String::new());
    attrs.insert("Policy", default_policy);
    attrs.insert(
        "SignatureVersion",
        settings.signature_version.as_str().to_string(),
    );
    for (k, v) in &record.attributes {
        attrs.insert(k.as_str(), v.clone());
    }
    attrs.insert("SubscriptionsConfirmed", confirmed.to_string());
    attrs.insert("SubscriptionsPending", (mine.len() - confirmed).to_string());
    attrs.insert("SubscriptionsDeleted", "0".into());
    attrs.insert("EffectiveDeliveryPolicy", effective_json);
    let mut d = Doc::new("GetTopicAttributes");
    d.attributes(attrs.iter().map(|(k, v)| (*k, v.as_str())));
    d
}

fn subscription_attributes(core: &Core, sub: &Sub) -> Doc {
    let record = sub.record.lock().clone();
    let mut attrs: BTreeMap<&str, String> = BTreeMap::new();
    attrs.insert("SubscriptionArn", sub.arn.clone());
    attrs.insert("TopicArn", sub.topic.arn.clone());
    attrs.insert("Owner", core.config.account_id.clone());
    attrs.insert("Endpoint", record.endpoint.clone());
    attrs.insert("Protocol", record.protocol.as_str().to_string());
    let pending = record.status == SubscriptionStatus::PendingConfirmation;
    attrs.insert("PendingConfirmation", pending.to_string());
    attrs.insert("ConfirmationWasAuthenticated", "false".into());
    attrs.insert("RawMessageDelivery", "false".into());
    for (k, v) in &record.attributes {
        attrs.insert(k.as_str(), v.clone());
    }
    attrs.insert("EffectiveDeliveryPolicy", sub.effective_policy().to_json());
    let mut d = Doc::new("GetSubscriptionAttributes");
    d.attributes(attrs.iter().map(|(k, v)| (*k, v.as_str())));
    d
}

fn list_subscriptions(
    core: &Core,
    action: &'static str,
    topic: Option<&Arc<Topic>>,
    start: usize,
) -> Doc {
    let subs: Vec<Arc<Sub>> = core
        .all_subs()
        .into_iter()
        .filter(|s| topic.is_none_or(|t| Arc::ptr_eq(&s.topic, t)))
        .collect();
    let mut d = Doc::new(action);
    d.open("Subscriptions");
    for s in subs.iter().skip(start).take(PAGE) {
        let r = s.record.lock().clone();
        let arn = if r.status == SubscriptionStatus::Confirmed {
            s.arn.as_str()
        } else {
            "PendingConfirmation"
        };
        d.open("member")
            .el("TopicArn", &s.topic.arn)
            .el("Protocol", r.protocol.as_str())
            .el("SubscriptionArn", arn)
            .el("Owner", &core.config.account_id)
            .el("Endpoint", &r.endpoint)
            .close("member");
    }
    d.close("Subscriptions");
    if subs.len() > start + PAGE {
        d.el("NextToken", &(start + PAGE).to_string());
    }
    d
}
