//! Subscriptions, the endpoint policy and SNS's HTTP delivery policy.
//!
//! * [`EndpointUrl`] is a subscriber URL that is well formed (`http`/`https`, a
//!   host, no userinfo). [`Endpoint`] is one that also passed the
//!   [`EndpointPolicy`] against the addresses its host resolves to: holding one
//!   proves HQ may POST to it. The check runs again on every connection (the
//!   engine's resolver), so a name re-pointed at the metadata address later is
//!   refused too.
//! * [`DeliveryPolicy`] is SNS's HTTP/S delivery policy (retries in four phases,
//!   throttle, request content type), parsed from the JSON SNS accepts.
//! * [`SubscriptionRecord`] is what the engine persists; [`SubscriptionView`] is
//!   what the portal, the admin API and the SNS query API show.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::domain::Username;

/// Longest subscriber URL accepted; real endpoints are far shorter and a cap keeps
/// every record, header and log line small.
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// Which addresses HQ may deliver to besides public ones.
///
/// Link-local (169.254.0.0/16, the cloud metadata address, and fe80::/10),
/// multicast, unspecified and broadcast addresses are refused whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPolicy {
    /// Loopback and private ranges (RFC 1918, CGNAT, fc00::/7). True in the
    /// all-in-one mode, where attendees sit on the same LAN as HQ.
    pub allow_private: bool,
}

impl Default for EndpointPolicy {
    fn default() -> Self {
        Self {
            allow_private: true,
        }
    }
}

/// Why an endpoint was refused. The message is shown to the attendee as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint is not a valid URL: {0}")]
    Malformed(&'static str),
    #[error("endpoint must use http or https")]
    Scheme,
    #[error("endpoint must not contain credentials (user:password@)")]
    Userinfo,
    #[error("endpoint host {0} does not resolve")]
    Unresolvable(String),
    #[error("endpoint address {addr} is refused: {reason}")]
    Refused { addr: IpAddr, reason: &'static str },
}

/// `http` or `https`, the only protocols HQ delivers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Https,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("http") {
            Some(Self::Http)
        } else if s.eq_ignore_ascii_case("https") {
            Some(Self::Https)
        } else {
            None
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// A syntactically valid subscriber URL (not yet checked against the policy).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointUrl {
    raw: String,
    protocol: Protocol,
    host: String,
    port: u16,
    ip: Option<IpAddr>,
}

impl EndpointUrl {
    /// Parses `http(s)://host[:port][/path][?query]`. Refuses userinfo, control
    /// characters, whitespace, empty or ill-formed hosts and bad ports.
    pub fn parse(s: &str) -> Result<Self, EndpointError> {
        if s.is_empty() {
            return Err(EndpointError::Malformed("it is empty"));
        }
        if s.len() > MAX_ENDPOINT_LEN {
            return Err(EndpointError::Malformed("it is longer than 2048 bytes"));
        }
        if s.bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || !b.is_ascii())
        {
            return Err(EndpointError::Malformed(
                "it contains spaces, control or non-ASCII characters",
            ));
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or(EndpointError::Malformed("it has no scheme"))?;
        let protocol = Protocol::parse(scheme).ok_or(EndpointError::Scheme)?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.contains('@') {
            return Err(EndpointError::Userinfo);
        }
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            None => protocol.default_port(),
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => {
                    return Err(EndpointError::Malformed(
                        "the port is not a number between 1 and 65535",
                    ))
                }
            },
        };
        let ip = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(IpAddr::V6(v6.parse::<Ipv6Addr>().map_err(|_| {
                EndpointError::Malformed("the IPv6 address is invalid")
            })?))
        } else if let Ok(v4) = host.parse::<Ipv4Addr>() {
            Some(IpAddr::V4(v4))
        } else {
            if !valid_dns_name(host) {
                return Err(EndpointError::Malformed("the host name is invalid"));
            }
            None
        };
        Ok(Self {
            raw: s.to_owned(),
            protocol,
            host: host.to_ascii_lowercase(),
            port,
            ip,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
    /// The host as written (IPv6 literals keep their brackets).
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The address when the host is an IP literal.
    pub fn ip_literal(&self) -> Option<IpAddr> {
        self.ip
    }

    /// Admits the URL if every address its host resolves to passes the policy
    /// (one bad address is enough to refuse: the connection could pick it).
    pub fn admit(
        self,
        resolved: &[IpAddr],
        policy: EndpointPolicy,
    ) -> Result<Endpoint, EndpointError> {
        let addrs: Vec<IpAddr> = match self.ip {
            Some(ip) => vec![ip],
            None => resolved.to_vec(),
        };
        if addrs.is_empty() {
            return Err(EndpointError::Unresolvable(self.host.clone()));
        }
        for addr in addrs {
            check_ip(addr, policy)?;
        }
        Ok(Endpoint(self))
    }
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), EndpointError> {
    if authority.is_empty() {
        return Err(EndpointError::Malformed("it has no host"));
    }
    if authority.starts_with('[') {
        let close = authority
            .find(']')
            .ok_or(EndpointError::Malformed("the IPv6 address is not closed"))?;
        let (host, rest) = authority.split_at(close + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => match rest.strip_prefix(':') {
                Some(p) => Ok((host, Some(p))),
                None => Err(EndpointError::Malformed(
                    "unexpected text after the IPv6 address",
                )),
            },
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => Ok((h, Some(p))),
        Some(_) => Err(EndpointError::Malformed("it has no host")),
        None => Ok((authority, None)),
    }
}

fn valid_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Whether HQ may open a connection to `addr` under `policy`; the error names why not.
pub fn check_ip(addr: IpAddr, policy: EndpointPolicy) -> Result<(), EndpointError> {
    let refuse = |reason| Err(EndpointError::Refused { addr, reason });
    let v4 = match addr {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    if let Some(v4) = v4 {
        let o = v4.octets();
        if v4.is_link_local() {
            return refuse(
                "link-local address (169.254.0.0/16, includes the cloud metadata service)",
            );
        }
        if v4.is_multicast() {
            return refuse("multicast address");
        }
        if v4.is_broadcast() {
            return refuse("broadcast address");
        }
        if v4.is_unspecified() || o[0] == 0 {
            return refuse("unspecified address (0.0.0.0/8)");
        }
        if o[0] >= 240 {
            return refuse("reserved address (240.0.0.0/4)");
        }
        if !policy.allow_private {
            if v4.is_loopback() {
                return refuse("loopback address, and private endpoints are denied");
            }
            if v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
                return refuse("private address, and private endpoints are denied");
            }
        }
        return Ok(());
    }
    let IpAddr::V6(v6) = addr else { return Ok(()) };
    let s = v6.segments();
    if v6.is_unspecified() {
        return refuse("unspecified address (::)");
    }
    if (s[0] & 0xffc0) == 0xfe80 {
        return refuse("link-local address (fe80::/10)");
    }
    if v6.is_multicast() {
        return refuse("multicast address");
    }
    if !policy.allow_private {
        if v6.is_loopback() {
            return refuse("loopback address, and private endpoints are denied");
        }
        if (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfec0 {
            return refuse("private address, and private endpoints are denied");
        }
    }
    Ok(())
}

/// A subscriber URL that passed the endpoint policy when it was admitted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint(EndpointUrl);

impl Endpoint {
    /// Parses, resolves and checks an endpoint (DNS runs off the async workers).
    pub async fn resolve(raw: &str, policy: EndpointPolicy) -> Result<Self, EndpointError> {
        let url = EndpointUrl::parse(raw)?;
        if url.ip.is_some() {
            return url.admit(&[], policy);
        }
        let addrs: Vec<IpAddr> = match tokio::net::lookup_host((url.host.as_str(), url.port)).await
        {
            Ok(it) => it.map(|sa| sa.ip()).collect(),
            Err(_) => return Err(EndpointError::Unresolvable(url.host.clone())),
        };
        url.admit(&addrs, policy)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
    pub fn protocol(&self) -> Protocol {
        self.0.protocol
    }
    pub fn url(&self) -> &EndpointUrl {
        &self.0
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a subscription stands. Only `Confirmed` ones receive notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscriptionStatus {
    PendingConfirmation,
    Confirmed,
}

/// How the delay between retries grows in the backoff phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackoffFunction {
    #[default]
    Linear,
    Arithmetic,
    Geometric,
    Exponential,
}

impl BackoffFunction {
    /// The fraction (0..=1) of the way from the minimum to the maximum delay at
    /// position `t` (0..=1) of the backoff phase. SNS publishes only a chart of
    /// these curves; these are the shapes it shows, without jitter so tests can
    /// assert the spacing: linear, quadratic (arithmetic), cubic (geometric),
    /// and a 2^x curve (exponential), the steepest late.
    fn shape(self, t: f64) -> f64 {
        match self {
            Self::Linear => t,
            Self::Arithmetic => t * t,
            Self::Geometric => t * t * t,
            Self::Exponential => (2f64.powf(10.0 * t) - 1.0) / 1023.0,
        }
    }
}

/// SNS's `healthyRetryPolicy`. Delays are whole seconds as in SNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RetryPolicy {
    pub num_retries: u32,
    pub min_delay_target: u32,
    pub max_delay_target: u32,
    pub num_no_delay_retries: u32,
    pub num_min_delay_retries: u32,
    pub num_max_delay_retries: u32,
    pub backoff_function: BackoffFunction,
}

impl Default for RetryPolicy {
    /// SNS's default for HTTP/S: 3 retries, 20 s apart.
    fn default() -> Self {
        Self {
            num_retries: 3,
            min_delay_target: 20,
            max_delay_target: 20,
            num_no_delay_retries: 0,
            num_min_delay_retries: 0,
            num_max_delay_retries: 0,
            backoff_function: BackoffFunction::Linear,
        }
    }
}

impl RetryPolicy {
    /// The SNS limits: at most 100 retries, delays 1..=3600 s with min <= max,
    /// phases that fit in numRetries, at most 3600 s of retrying in total.
    pub fn validate(&self) -> Result<(), String> {
        if self.num_retries > 100 {
            return Err("numRetries must be between 0 and 100".into());
        }
        if self.min_delay_target < 1 || self.min_delay_target > self.max_delay_target {
            return Err("minDelayTarget must be at least 1 and at most maxDelayTarget".into());
        }
        if self.max_delay_target > 3600 {
            return Err("maxDelayTarget must be at most 3600".into());
        }
        let phases = self.num_no_delay_retries as u64
            + self.num_min_delay_retries as u64
            + self.num_max_delay_retries as u64;
        if phases > self.num_retries as u64 {
            return Err("numNoDelayRetries + numMinDelayRetries + numMaxDelayRetries must not exceed numRetries".into());
        }
        let total: Duration = (1..=self.num_retries)
            .map(|r| self.delay_before_retry(r))
            .sum();
        if total > Duration::from_secs(3600) {
            return Err("the retries must fit in 3600 seconds in total".into());
        }
        Ok(())
    }

    /// The wait before retry number `retry` (1-based): immediate phase, then the
    /// pre-backoff phase at the minimum delay, the backoff phase from min to max,
    /// and the post-backoff phase at the maximum delay.
    pub fn delay_before_retry(&self, retry: u32) -> Duration {
        let min = self.min_delay_target as f64;
        let max = self.max_delay_target as f64;
        let n0 = self.num_no_delay_retries;
        let n1 = self.num_min_delay_retries;
        let backoff = self
            .num_retries
            .saturating_sub(n0)
            .saturating_sub(n1)
            .saturating_sub(self.num_max_delay_retries);
        let secs = if retry <= n0 {
            0.0
        } else if retry <= n0 + n1 {
            min
        } else if retry <= n0 + n1 + backoff {
            let i = retry - n0 - n1; // 1..=backoff
            let t = if backoff <= 1 {
                1.0
            } else {
                (i - 1) as f64 / (backoff - 1) as f64
            };
            min + (max - min) * self.backoff_function.shape(t)
        } else {
            max
        };
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// SNS's `throttlePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottlePolicy {
    pub max_receives_per_second: u32,
}

/// SNS's `requestPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestPolicy {
    pub header_content_type: String,
}

/// Content types SNS accepts in `requestPolicy.headerContentType`.
pub const ALLOWED_CONTENT_TYPES: &[&str] = &[
    "text/plain",
    "application/json",
    "application/xml",
    "text/plain; charset=UTF-8",
    "application/json; charset=UTF-8",
    "application/xml; charset=UTF-8",
];

/// An HTTP/S delivery policy in the subscription-level shape SNS uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_retry_policy: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_policy: Option<ThrottlePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_policy: Option<RequestPolicy>,
}

/// The topic-level shape: `{"http": {"defaultHealthyRetryPolicy": ..., ...}}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TopicPolicyHttp {
    #[serde(default)]
    default_healthy_retry_policy: Option<RetryPolicy>,
    #[serde(default)]
    default_throttle_policy: Option<ThrottlePolicy>,
    #[serde(default)]
    default_request_policy: Option<RequestPolicy>,
    #[serde(default)]
    disable_subscription_overrides: bool,
}

impl DeliveryPolicy {
    /// Parses a subscription's `DeliveryPolicy` attribute.
    pub fn parse_subscription(json: &str) -> Result<Self, String> {
        let p: DeliveryPolicy =
            serde_json::from_str(json).map_err(|e| format!("DeliveryPolicy: invalid JSON: {e}"))?;
        p.validate()?;
        Ok(p)
    }

    /// Parses a topic's `DeliveryPolicy` attribute: SNS's `{"http": {...}}` form,
    /// or (leniently) the subscription form. The flag is `disableSubscriptionOverrides`.
    pub fn parse_topic(json: &str) -> Result<(Self, bool), String> {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("DeliveryPolicy: invalid JSON: {e}"))?;
        if let Some(http) = v.get("http") {
            let t: TopicPolicyHttp = serde_json::from_value(http.clone())
                .map_err(|e| format!("DeliveryPolicy: invalid http policy: {e}"))?;
            let p = DeliveryPolicy {
                healthy_retry_policy: t.default_healthy_retry_policy,
                throttle_policy: t.default_throttle_policy,
                request_policy: t.default_request_policy,
            };
            p.validate()?;
            return Ok((p, t.disable_subscription_overrides));
        }
        Ok((Self::parse_subscription(json)?, false))
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(r) = &self.healthy_retry_policy {
            r.validate().map_err(|e| format!("DeliveryPolicy: {e}"))?;
        }
        if let Some(t) = &self.throttle_policy {
            if t.max_receives_per_second < 1 {
                return Err("DeliveryPolicy: maxReceivesPerSecond must be at least 1".into());
            }
        }
        if let Some(r) = &self.request_policy {
            if !ALLOWED_CONTENT_TYPES
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&r.header_content_type))
            {
                return Err(format!(
                    "DeliveryPolicy: headerContentType {} is not supported",
                    r.header_content_type
                ));
            }
        }
        Ok(())
    }

    /// The policy in force: the subscription's parts over the topic's (unless the
    /// topic disables overrides) over SNS's defaults.
    pub fn effective(
        topic: Option<&(DeliveryPolicy, bool)>,
        subscription: Option<&DeliveryPolicy>,
    ) -> EffectivePolicy {
        let (topic, no_override) = match topic {
            Some((p, flag)) => (Some(p), *flag),
            None => (None, false),
        };
        let sub = if no_override { None } else { subscription };
        EffectivePolicy {
            retry: sub
                .and_then(|s| s.healthy_retry_policy)
                .or_else(|| topic.and_then(|t| t.healthy_retry_policy))
                .unwrap_or_default(),
            max_receives_per_second: sub
                .and_then(|s| s.throttle_policy)
                .or_else(|| topic.and_then(|t| t.throttle_policy))
                .map(|t| t.max_receives_per_second),
            content_type: sub
                .and_then(|s| s.request_policy.clone())
                .or_else(|| topic.and_then(|t| t.request_policy.clone()))
                .map(|r| r.header_content_type),
        }
    }
}

/// The delivery policy a subscription is delivered under.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EffectivePolicy {
    pub retry: RetryPolicy,
    pub max_receives_per_second: Option<u32>,
    /// Overrides `text/plain; charset=UTF-8` when set.
    pub content_type: Option<String>,
}

impl EffectivePolicy {
    /// SNS's `EffectiveDeliveryPolicy` attribute value.
    pub fn to_json(&self) -> String {
        let mut v = serde_json::json!({
            "healthyRetryPolicy": self.retry,
            "sicklyRetryPolicy": null,
            "throttlePolicy": self.max_receives_per_second.map(|m| serde_json::json!({"maxReceivesPerSecond": m})),
            "guaranteed": false,
        });
        if let (Some(ct), Some(obj)) = (&self.content_type, v.as_object_mut()) {
            obj.insert(
                "requestPolicy".into(),
                serde_json::json!({ "headerContentType": ct }),
            );
        }
        v.to_string()
    }
}

/// A subscription as the engine persists it (pending or confirmed, with its token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionRecord {
    pub arn: String,
    pub topic_arn: String,
    pub protocol: Protocol,
    pub endpoint: String,
    /// The portal user who made it; `None` when made through the SNS query API.
    #[serde(default)]
    pub owner: Option<Username>,
    pub status: SubscriptionStatus,
    /// The confirmation token put in the SubscribeURL.
    pub token: String,
    pub created_at: Millis,
    #[serde(default)]
    pub confirmed_at: Option<Millis>,
    /// Settable SNS attributes (`DeliveryPolicy`, `RawMessageDelivery`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl SubscriptionRecord {
    /// The last part of the ARN, the id the portal uses.
    pub fn id(&self) -> &str {
        self.arn.rsplit(':').next().unwrap_or(&self.arn)
    }
}

/// A topic of the engine with its settable attributes (`SignatureVersion`,
/// `DeliveryPolicy`, `DisplayName`, ...), persisted so settings survive restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicRecord {
    pub name: String,
    pub arn: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    pub created_at: Millis,
}

/// A subscription with its delivery health, as the portal and admin API show it
/// (contract section 6: `id`, `subscriptionArn`, `topic`, `topicArn`, `endpoint`,
/// `status`, `delivered`, `failedAttempts`, `lastError`, `lastDeliveredAt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub id: String,
    pub subscription_arn: String,
    /// Topic name (`orderTopic`, `iridium`, `magnesite`, or a created topic).
    pub topic: String,
    pub topic_arn: String,
    pub endpoint: String,
    pub protocol: Protocol,
    pub status: SubscriptionStatus,
    pub owner: Option<Username>,
    /// RFC 3339.
    pub created_at: String,
    /// Notifications answered with 2xx.
    pub delivered: u64,
    /// Attempts that failed (non-2xx, refused, timed out), confirmations included.
    pub failed_attempts: u64,
    /// Deliveries waiting for their next retry.
    pub retries_pending: u64,
    /// Deliveries queued for this subscription, not yet attempted.
    pub queued: u64,
    /// Deliveries dropped because this subscription's queue was full.
    pub dropped: u64,
    /// Deliveries abandoned after the last retry failed.
    pub abandoned: u64,
    pub last_error: Option<String>,
    /// RFC 3339 time of the last 2xx.
    pub last_delivered_at: Option<String>,
    /// Publish-to-delivery latency of successful notifications, in milliseconds.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAN: EndpointPolicy = EndpointPolicy {
        allow_private: true,
    };
    const STRICT: EndpointPolicy = EndpointPolicy {
        allow_private: false,
    };

    fn admit(url: &str, policy: EndpointPolicy) -> Result<Endpoint, EndpointError> {
        EndpointUrl::parse(url)?.admit(&[], policy)
    }

    #[test]
    fn always_refused_addresses() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://224.0.0.1/",
            "http://0.0.0.0:5000/order/",
            "http://255.255.255.255/",
            "http://[::]/",
            "http://[ff02::1]/",
            "http://[::ffff:169.254.169.254]/",
        ] {
            for policy in [LAN, STRICT] {
                let e = admit(url, policy).unwrap_err();
                assert!(matches!(e, EndpointError::Refused { .. }), "{url}: {e}");
            }
        }
        let e = admit("http://169.254.169.254/", LAN)
            .unwrap_err()
            .to_string();
        assert!(e.contains("link-local") && e.contains("metadata"), "{e}");
        assert!(admit("http://224.0.0.1/", LAN)
            .unwrap_err()
            .to_string()
            .contains("multicast"));
        assert!(admit("http://255.255.255.255/", LAN)
            .unwrap_err()
            .to_string()
            .contains("broadcast"));
        assert!(admit("http://0.0.0.0/", LAN)
            .unwrap_err()
            .to_string()
            .contains("unspecified"));
        assert!(admit("http://[fe80::1]/", LAN)
            .unwrap_err()
            .to_string()
            .contains("fe80"));
    }

    #[test]
    fn syntax_refusals_name_the_reason() {
        assert_eq!(
            admit("ftp://example.com/", LAN).unwrap_err(),
            EndpointError::Scheme
        );
        assert_eq!(
            admit("http://user:pw@example.com/", LAN).unwrap_err(),
            EndpointError::Userinfo
        );
        assert_eq!(
            admit("http://user@10.0.0.1/", LAN).unwrap_err(),
            EndpointError::Userinfo
        );
        for bad in [
            "",
            "example.com",
            "http://",
            "http:///x",
            "http://a b/",
            "http://host:0/",
            "http://host:99999/",
            "http://[::1/",
            "http://-x-/",
        ] {
            assert!(
                matches!(admit(bad, LAN), Err(EndpointError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(admit("gopher://x/", LAN)
            .unwrap_err()
            .to_string()
            .contains("http or https"));
        assert!(admit("http://u:p@x/", LAN)
            .unwrap_err()
            .to_string()
            .contains("credentials"));
    }

    #[test]
    fn private_allowed_unless_denied() {
        for url in [
            "http://10.0.0.5:5000/order/",
            "http://192.168.1.20/",
            "http://172.16.0.1/",
            "http://127.0.0.1:8080/",
            "http://[::1]:9000/",
            "http://[fd00::1]/",
        ] {
            assert!(admit(url, LAN).is_ok(), "{url}");
            let e = admit(url, STRICT).unwrap_err().to_string();
            assert!(e.contains("denied"), "{url}: {e}");
        }
        assert!(admit("http://8.8.8.8/", STRICT).is_ok());
        assert!(admit("https://[2001:db8::1]:8443/x", STRICT).is_ok());
    }

    #[test]
    fn url_parts() {
        let u = EndpointUrl::parse("HTTPS://Example.COM:8443/order/?x=1").unwrap();
        assert_eq!(u.protocol(), Protocol::Https);
        assert_eq!(u.host(), "example.com");
        assert_eq!(u.port(), 8443);
        assert_eq!(EndpointUrl::parse("http://h/").unwrap().port(), 80);
        assert_eq!(EndpointUrl::parse("https://h").unwrap().port(), 443);
        // Resolved addresses are all checked: one bad one refuses the endpoint.
        let u = EndpointUrl::parse("http://evil.example/").unwrap();
        let addrs = [
            "93.184.216.34".parse().unwrap(),
            "169.254.169.254".parse().unwrap(),
        ];
        assert!(u.clone().admit(&addrs, LAN).is_err());
        assert!(matches!(
            u.admit(&[], LAN),
            Err(EndpointError::Unresolvable(_))
        ));
    }

    #[tokio::test]
    async fn resolves_names() {
        let e = Endpoint::resolve("http://localhost:5000/order/", LAN)
            .await
            .unwrap();
        assert_eq!(e.as_str(), "http://localhost:5000/order/");
        assert!(Endpoint::resolve("http://localhost:5000/order/", STRICT)
            .await
            .is_err());
        assert!(matches!(
            Endpoint::resolve("http://no-such-host.invalid/", LAN).await,
            Err(EndpointError::Unresolvable(_))
        ));
    }

    #[test]
    fn default_policy_is_three_retries_twenty_seconds_apart() {
        let p = RetryPolicy::default();
        assert!(p.validate().is_ok());
        let delays: Vec<_> = (1..=p.num_retries)
            .map(|r| p.delay_before_retry(r))
            .collect();
        assert_eq!(delays, vec![Duration::from_secs(20); 3]);
    }

    #[test]
    fn four_phases() {
        let p = RetryPolicy {
            num_retries: 8,
            min_delay_target: 2,
            max_delay_target: 10,
            num_no_delay_retries: 2,
            num_min_delay_retries: 1,
            num_max_delay_retries: 2,
            backoff_function: BackoffFunction::Linear,
        };
        assert!(p.validate().is_ok());
        let d: Vec<u64> = (1..=8).map(|r| p.delay_before_retry(r).as_secs()).collect();
        assert_eq!(d, vec![0, 0, 2, 2, 6, 10, 10, 10]);
        for f in [
            BackoffFunction::Arithmetic,
            BackoffFunction::Geometric,
            BackoffFunction::Exponential,
        ] {
            let q = RetryPolicy {
                backoff_function: f,
                num_max_delay_retries: 0,
                num_retries: 10,
                ..p
            };
            let d: Vec<Duration> = (1..=10).map(|r| q.delay_before_retry(r)).collect();
            assert!(d.windows(2).all(|w| w[0] <= w[1]), "{f:?} {d:?}");
            assert_eq!(d[3], Duration::from_secs(2));
            assert_eq!(d[9], Duration::from_secs(10));
            // Every curve but linear starts slower than linear.
            assert!(
                d[5] < Duration::from_secs_f64(2.0 + 8.0 * 2.0 / 6.0),
                "{f:?}"
            );
        }
    }

    #[test]
    fn policy_limits() {
        let bad = [
            r#"{"healthyRetryPolicy":{"numRetries":101,"minDelayTarget":1,"maxDelayTarget":1}}"#,
            r#"{"healthyRetryPolicy":{"numRetries":3,"minDelayTarget":5,"maxDelayTarget":1}}"#,
            r#"{"healthyRetryPolicy":{"numRetries":1,"minDelayTarget":1,"maxDelayTarget":1,"numNoDelayRetries":2}}"#,
            r#"{"healthyRetryPolicy":{"numRetries":100,"minDelayTarget":3600,"maxDelayTarget":3600}}"#,
            r#"{"healthyRetryPolicy":{"numRetries":1,"minDelayTarget":1,"maxDelayTarget":1,"backoffFunction":"cubic"}}"#,
            r#"{"throttlePolicy":{"maxReceivesPerSecond":0}}"#,
            r#"{"requestPolicy":{"headerContentType":"image/png"}}"#,
            "not json",
        ];
        for b in bad {
            assert!(DeliveryPolicy::parse_subscription(b).is_err(), "{b}");
        }
        let p = DeliveryPolicy::parse_subscription(
            r#"{"healthyRetryPolicy":{"numRetries":2,"minDelayTarget":1,"maxDelayTarget":3,"backoffFunction":"exponential"},"throttlePolicy":{"maxReceivesPerSecond":5}}"#,
        )
        .unwrap();
        let eff = DeliveryPolicy::effective(None, Some(&p));
        assert_eq!(eff.retry.num_retries, 2);
        assert_eq!(eff.max_receives_per_second, Some(5));
        assert!(eff.to_json().contains("\"maxReceivesPerSecond\":5"));
    }

    #[test]
    fn topic_policy_and_overrides() {
        let (topic, no_override) = DeliveryPolicy::parse_topic(
            r#"{"http":{"defaultHealthyRetryPolicy":{"numRetries":1,"minDelayTarget":1,"maxDelayTarget":1},"disableSubscriptionOverrides":false}}"#,
        )
        .unwrap();
        assert!(!no_override);
        let sub = DeliveryPolicy::parse_subscription(
            r#"{"healthyRetryPolicy":{"numRetries":5,"minDelayTarget":1,"maxDelayTarget":1}}"#,
        )
        .unwrap();
        assert_eq!(
            DeliveryPolicy::effective(Some(&(topic.clone(), false)), None)
                .retry
                .num_retries,
            1
        );
        assert_eq!(
            DeliveryPolicy::effective(Some(&(topic.clone(), false)), Some(&sub))
                .retry
                .num_retries,
            5
        );
        assert_eq!(
            DeliveryPolicy::effective(Some(&(topic, true)), Some(&sub))
                .retry
                .num_retries,
            1
        );
        assert_eq!(
            DeliveryPolicy::effective(None, None).retry,
            RetryPolicy::default()
        );
    }
}
