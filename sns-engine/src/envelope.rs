//! The JSON bodies SNS POSTs to HTTP(S) subscribers, built once per message.
//!
//! A notification's signed fields do not include the subscription, so one
//! signature serves every subscriber of a topic: the body is built once up to
//! `"UnsubscribeURL"`, and each delivery appends only its own URL.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderValue;
use bytes::Bytes;
use time::OffsetDateTime;

use crate::signing::{self, SignatureVersion, Signer};

/// SNS's `Timestamp`: ISO-8601 UTC with milliseconds, e.g. `2024-05-01T12:00:00.123Z`.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A JSON string literal (quoted and escaped).
pub fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// What a delivery carries.
pub enum Body {
    /// Everything up to the UnsubscribeURL's value, plus the raw message for
    /// subscriptions with `RawMessageDelivery`.
    Notification { prefix: String, message: Arc<str> },
    /// A complete body (confirmations are per subscription anyway).
    Complete(Bytes),
}

/// One message on its way to one or many subscribers.
pub struct Outgoing {
    /// `x-amz-sns-message-type`.
    pub kind: HeaderValue,
    pub message_id: HeaderValue,
    pub topic_arn: HeaderValue,
    pub body: Body,
    /// When it was published: delivery latency is measured from here.
    pub published_at: Instant,
    pub is_notification: bool,
}

impl Outgoing {
    /// The body for one subscriber. `unsubscribe_json` is the subscription's
    /// UnsubscribeURL already JSON-escaped without quotes.
    pub fn body_for(&self, unsubscribe_json: &str, raw: bool) -> Bytes {
        match &self.body {
            Body::Complete(b) => b.clone(),
            Body::Notification { message, .. } if raw => Bytes::copy_from_slice(message.as_bytes()),
            Body::Notification { prefix, .. } => {
                let mut s = String::with_capacity(prefix.len() + unsubscribe_json.len() + 4);
                s.push_str(prefix);
                s.push_str(unsubscribe_json);
                s.push_str("\"\n}");
                Bytes::from(s)
            }
        }
    }
}

fn header(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Builds and signs a Notification.
#[allow(clippy::too_many_arguments)]
pub fn notification(
    signer: &Signer,
    version: SignatureVersion,
    cert_url: &str,
    topic_arn: &str,
    message_id: &str,
    message: Arc<str>,
    subject: Option<&str>,
    now: OffsetDateTime,
) -> Outgoing {
    let ts = timestamp(now);
    let canonical = signing::notification_canonical(&message, message_id, subject, &ts, topic_arn);
    let signature = signer.sign(version, canonical.as_bytes());
    let mut p = String::with_capacity(message.len() + signature.len() + 400);
    let _ = write!(
        p,
        "{{\n  \"Type\" : \"Notification\",\n  \"MessageId\" : {},\n  \"TopicArn\" : {},\n",
        json_str(message_id),
        json_str(topic_arn)
    );
    if let Some(subject) = subject {
        let _ = writeln!(p, "  \"Subject\" : {},", json_str(subject));
    }
    let _ = write!(
        p,
        "  \"Message\" : {},\n  \"Timestamp\" : \"{ts}\",\n  \"SignatureVersion\" : \"{}\",\n  \"Signature\" : \"{signature}\",\n  \"SigningCertURL\" : {},\n  \"UnsubscribeURL\" : \"",
        json_str(&message),
        version.as_str(),
        json_str(cert_url)
    );
    Outgoing {
        kind: HeaderValue::from_static("Notification"),
        message_id: header(message_id),
        topic_arn: header(topic_arn),
        body: Body::Notification { prefix: p, message },
        published_at: Instant::now(),
        is_notification: true,
    }
}

/// Builds and signs a SubscriptionConfirmation.
pub fn confirmation(
    signer: &Signer,
    version: SignatureVersion,
    cert_url: &str,
    topic_arn: &str,
    token: &str,
    subscribe_url: &str,
    now: OffsetDateTime,
) -> Outgoing {
    let message_id = uuid::Uuid::new_v4().to_string();
    let ts = timestamp(now);
    let message = format!(
        "You have chosen to subscribe to the topic {topic_arn}.\nTo confirm the subscription, visit the SubscribeURL included in this message."
    );
    let kind = "SubscriptionConfirmation";
    let canonical = signing::confirmation_canonical(
        kind,
        &message,
        &message_id,
        subscribe_url,
        &ts,
        token,
        topic_arn,
    );
    let signature = signer.sign(version, canonical.as_bytes());
    let body = format!(
        "{{\n  \"Type\" : \"{kind}\",\n  \"MessageId\" : {},\n  \"Token\" : {},\n  \"TopicArn\" : {},\n  \"Message\" : {},\n  \"SubscribeURL\" : {},\n  \"Timestamp\" : \"{ts}\",\n  \"SignatureVersion\" : \"{}\",\n  \"Signature\" : \"{signature}\",\n  \"SigningCertURL\" : {}\n}}",
        json_str(&message_id),
        json_str(token),
        json_str(topic_arn),
        json_str(&message),
        json_str(subscribe_url),
        version.as_str(),
        json_str(cert_url),
    );
    Outgoing {
        kind: HeaderValue::from_static("SubscriptionConfirmation"),
        message_id: header(&message_id),
        topic_arn: header(topic_arn),
        body: Body::Complete(Bytes::from(body)),
        published_at: Instant::now(),
        is_notification: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_milliseconds() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        assert_eq!(timestamp(t), "2023-11-14T22:13:20.123Z");
    }
}
