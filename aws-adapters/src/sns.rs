//! [`OrderBus`] on SNS: the orders topics are real SNS topics; SNS confirms,
//! signs, retries and delivers. HQ keeps beside it, in the subscriptions table,
//! what SNS does not know: which attendee made a subscription, and when.
//!
//! Status comes from SNS itself (`GetSubscriptionAttributes`:
//! `PendingConfirmation`), so a subscription confirmed by the attendee's endpoint
//! shows as confirmed without HQ seeing the confirmation. Per-subscription
//! delivery counters are not something SNS exposes (CloudWatch has them per
//! topic), so they read 0 in this mode.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sns::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::PublishBatchRequestEntry;
use hq_core::clock::{now_millis, rfc3339};
use hq_core::domain::{
    Endpoint, Protocol, SubscriptionStatus, SubscriptionView, TopicName, Username,
};
use hq_core::ports::{BusError, OrderBus, SubscriptionFilter};

use crate::dynamo::{aws_err, get_n, get_s, n, opt_s, s, scan_all, Item};

pub struct SnsOrderBus {
    sns: aws_sdk_sns::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    topics: BTreeMap<TopicName, String>,
}

fn sns_err<E>(op: &str, e: SdkError<E>) -> BusError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e.code() {
        Some("NotFound") | Some("NotFoundException") => {
            BusError::NotFound(e.message().unwrap_or("SNS resource").to_owned())
        }
        Some("InvalidParameter")
        | Some("InvalidParameterException")
        | Some("InvalidParameterValue")
        | Some("TooManyEntriesInBatchRequest")
        | Some("BatchEntryIdsNotDistinct")
        | Some("EmptyBatchRequest") => BusError::Invalid(format!(
            "SNS {op}: {}",
            e.message().unwrap_or("invalid request")
        )),
        _ => BusError::Backend(format!("SNS {op}: {}", DisplayErrorContext(&e))),
    }
}

/// The id the portal uses for a subscription: the last part of its ARN.
fn id_of(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// What HQ knows about a subscription besides SNS.
#[derive(Debug, Clone)]
struct Known {
    arn: String,
    topic_arn: String,
    endpoint: String,
    protocol: Protocol,
    owner: Option<Username>,
    created_at: i64,
}

impl Known {
    fn from_item(item: &Item) -> Result<Self, BusError> {
        let protocol = Protocol::parse(get_s(item, "protocol")?).ok_or_else(|| {
            BusError::Backend("stored subscription has an unknown protocol".into())
        })?;
        Ok(Self {
            arn: get_s(item, "arn")?.to_owned(),
            topic_arn: get_s(item, "topicArn")?.to_owned(),
            endpoint: get_s(item, "endpoint")?.to_owned(),
            protocol,
            owner: opt_s(item, "owner").and_then(|o| Username::parse(&o).ok()),
            created_at: get_n(item, "createdAt")?,
        })
    }

    fn view(self, status: SubscriptionStatus) -> SubscriptionView {
        SubscriptionView {
            id: id_of(&self.arn).to_owned(),
            topic: id_of(&self.topic_arn).to_owned(),
            subscription_arn: self.arn,
            topic_arn: self.topic_arn,
            endpoint: self.endpoint,
            protocol: self.protocol,
            status,
            owner: self.owner,
            created_at: rfc3339(self.created_at),
            delivered: 0,
            failed_attempts: 0,
            retries_pending: 0,
            queued: 0,
            dropped: 0,
            abandoned: 0,
            last_error: None,
            last_delivered_at: None,
            latency_p50_ms: None,
            latency_p99_ms: None,
        }
    }
}

impl SnsOrderBus {
    pub fn new(
        sns: aws_sdk_sns::Client,
        dynamodb: aws_sdk_dynamodb::Client,
        table: String,
        topics: BTreeMap<TopicName, String>,
    ) -> Self {
        Self {
            sns,
            dynamodb,
            table,
            topics,
        }
    }

    /// SNS's view of one subscription: `None` if SNS does not know it.
    async fn sns_attributes(&self, arn: &str) -> Result<Option<HashMap<String, String>>, BusError> {
        match self
            .sns
            .get_subscription_attributes()
            .subscription_arn(arn)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.attributes().cloned().unwrap_or_default())),
            Err(e) if matches!(e.code(), Some("NotFound") | Some("InvalidParameter")) => Ok(None),
            Err(e) => Err(sns_err("GetSubscriptionAttributes", e)),
        }
    }

    fn status_of(attrs: &HashMap<String, String>) -> SubscriptionStatus {
        match attrs.get("PendingConfirmation").map(String::as_str) {
            Some(v) if v.eq_ignore_ascii_case("true") => SubscriptionStatus::PendingConfirmation,
            _ => SubscriptionStatus::Confirmed,
        }
    }

    /// HQ's record of a subscription, by id.
    async fn known(&self, id: &str) -> Result<Option<Known>, BusError> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_err("GetItem", &self.table, e))?;
        out.item().map(Known::from_item).transpose()
    }

    /// The view of a known subscription, or `None` if SNS no longer has it.
    async fn view_of(&self, known: Known) -> Result<Option<SubscriptionView>, BusError> {
        Ok(self
            .sns_attributes(&known.arn)
            .await?
            .map(|a| known.view(Self::status_of(&a))))
    }

    /// Subscriptions SNS lists for a topic (confirmed ones carry their ARN;
    /// pending ones show as `PendingConfirmation` and are found through HQ's table).
    async fn sns_listing(&self, topic_arn: &str) -> Result<Vec<Known>, BusError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..10_000 {
            let page = self
                .sns
                .list_subscriptions_by_topic()
                .topic_arn(topic_arn)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sns_err("ListSubscriptionsByTopic", e))?;
            for sub in page.subscriptions() {
                let (Some(arn), Some(protocol)) = (
                    sub.subscription_arn(),
                    sub.protocol().and_then(Protocol::parse),
                ) else {
                    continue;
                };
                if !arn.starts_with("arn:") {
                    continue;
                }
                out.push(Known {
                    arn: arn.to_owned(),
                    topic_arn: topic_arn.to_owned(),
                    endpoint: sub.endpoint().unwrap_or_default().to_owned(),
                    protocol,
                    owner: None,
                    created_at: 0,
                });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl OrderBus for SnsOrderBus {
    fn topic_arn(&self, topic: TopicName) -> String {
        self.topics.get(&topic).cloned().unwrap_or_default()
    }

    async fn subscribe(
        &self,
        topic: TopicName,
        endpoint: &Endpoint,
        owner: Option<&Username>,
    ) -> Result<SubscriptionView, BusError> {
        let topic_arn = self.topic_arn(topic);
        let out = self
            .sns
            .subscribe()
            .topic_arn(&topic_arn)
            .protocol(endpoint.protocol().as_str())
            .endpoint(endpoint.as_str())
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(|e| sns_err("Subscribe", e))?;
        let arn = out
            .subscription_arn()
            .filter(|a| a.starts_with("arn:"))
            .ok_or_else(|| BusError::Backend("SNS Subscribe answered no subscription ARN".into()))?
            .to_owned();
        let mut item = Item::from([
            ("id".into(), s(id_of(&arn))),
            ("arn".into(), s(&arn)),
            ("topicArn".into(), s(&topic_arn)),
            ("endpoint".into(), s(endpoint.as_str())),
            ("protocol".into(), s(endpoint.protocol().as_str())),
            ("createdAt".into(), n(now_millis())),
        ]);
        if let Some(o) = owner {
            item.insert("owner".into(), AttributeValue::S(o.as_str().to_owned()));
        }
        // SNS answers the existing subscription for the same endpoint and topic;
        // its first record (owner, creation time) stays.
        let put = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await;
        if let Err(e) = put {
            if !e
                .as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception())
            {
                return Err(aws_err("PutItem", &self.table, e).into());
            }
        }
        let known = self.known(id_of(&arn)).await?.ok_or_else(|| {
            BusError::Backend(format!("subscription {arn} vanished after subscribing"))
        })?;
        self.view_of(known)
            .await?
            .ok_or_else(|| BusError::NotFound(format!("subscription {arn}")))
    }

    async fn unsubscribe(&self, subscription_arn: &str) -> Result<(), BusError> {
        let known = self.known(id_of(subscription_arn)).await?;
        let in_sns = self.sns_attributes(subscription_arn).await?.is_some();
        if known.is_none() && !in_sns {
            return Err(BusError::NotFound(format!(
                "subscription {subscription_arn}"
            )));
        }
        if in_sns {
            match self
                .sns
                .unsubscribe()
                .subscription_arn(subscription_arn)
                .send()
                .await
            {
                Ok(_) => {}
                // SNS may refuse to remove a subscription still pending
                // confirmation; it receives nothing and SNS drops it after 3 days.
                Err(e) if e.code() == Some("InvalidParameter") => {
                    tracing::info!(
                        subscription = subscription_arn,
                        "SNS kept a pending subscription; forgetting it"
                    );
                }
                Err(e) => return Err(sns_err("Unsubscribe", e)),
            }
        }
        self.dynamodb
            .delete_item()
            .table_name(&self.table)
            .key("id", s(id_of(subscription_arn)))
            .send()
            .await
            .map_err(|e| aws_err("DeleteItem", &self.table, e))?;
        Ok(())
    }

    async fn subscription(&self, arn_or_id: &str) -> Result<Option<SubscriptionView>, BusError> {
        if let Some(known) = self.known(id_of(arn_or_id)).await? {
            return self.view_of(known).await;
        }
        // Made outside HQ (e.g. with the AWS CLI): SNS alone knows it.
        if !arn_or_id.starts_with("arn:") {
            return Ok(None);
        }
        let Some(attrs) = self.sns_attributes(arn_or_id).await? else {
            return Ok(None);
        };
        let protocol = attrs.get("Protocol").and_then(|p| Protocol::parse(p));
        let Some(protocol) = protocol else {
            return Ok(None);
        };
        let known = Known {
            arn: arn_or_id.to_owned(),
            topic_arn: attrs.get("TopicArn").cloned().unwrap_or_default(),
            endpoint: attrs.get("Endpoint").cloned().unwrap_or_default(),
            protocol,
            owner: None,
            created_at: 0,
        };
        Ok(Some(known.view(Self::status_of(&attrs))))
    }

    async fn list_subscriptions(
        &self,
        filter: SubscriptionFilter<'_>,
    ) -> Result<Vec<SubscriptionView>, BusError> {
        let mut known: Vec<Known> = scan_all(&self.dynamodb, &self.table)
            .await?
            .iter()
            .map(Known::from_item)
            .collect::<Result<_, _>>()?;
        let topic_arns: Vec<String> = match filter {
            SubscriptionFilter::Topic(t) => vec![self.topic_arn(t)],
            SubscriptionFilter::All => self.topics.values().cloned().collect(),
            SubscriptionFilter::Owner(_) => Vec::new(),
        };
        match filter {
            SubscriptionFilter::Owner(o) => known.retain(|k| k.owner.as_ref() == Some(o)),
            SubscriptionFilter::Topic(_) => known.retain(|k| topic_arns.contains(&k.topic_arn)),
            SubscriptionFilter::All => {}
        }
        // Subscriptions made outside HQ, on HQ's topics.
        for topic_arn in &topic_arns {
            for sub in self.sns_listing(topic_arn).await? {
                if !known.iter().any(|k| k.arn == sub.arn) {
                    known.push(sub);
                }
            }
        }
        let mut out = Vec::with_capacity(known.len());
        for k in known {
            if let Some(v) = self.view_of(k).await? {
                out.push(v);
            }
        }
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.subscription_arn.cmp(&b.subscription_arn))
        });
        Ok(out)
    }

    async fn publish(&self, topic: TopicName, message: &str) -> Result<String, BusError> {
        let out = self
            .sns
            .publish()
            .topic_arn(self.topic_arn(topic))
            .message(message)
            .send()
            .await
            .map_err(|e| sns_err("Publish", e))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }

    async fn publish_batch(
        &self,
        topic: TopicName,
        messages: &[String],
    ) -> Result<Vec<String>, BusError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        if messages.len() > 10 {
            return Err(BusError::Invalid(format!(
                "a batch holds at most 10 messages, not {}",
                messages.len()
            )));
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                PublishBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message(m)
                    .build()
                    .map_err(|e| BusError::Backend(format!("building PublishBatch: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .sns
            .publish_batch()
            .topic_arn(self.topic_arn(topic))
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sns_err("PublishBatch", e))?;
        if let Some(failed) = out.failed().first() {
            return Err(BusError::Backend(format!(
                "SNS PublishBatch: entry {} failed: {} {}",
                failed.id(),
                failed.code(),
                failed.message().unwrap_or_default()
            )));
        }
        let mut ids = vec![String::new(); messages.len()];
        for ok in out.successful() {
            if let Some(slot) = ok
                .id()
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| ids.get_mut(i))
            {
                *slot = ok.message_id().unwrap_or_default().to_owned();
            }
        }
        Ok(ids)
    }
}
