//! The three order topics and their rates.

use serde::{Deserialize, Serialize};

/// Every topic starts at two orders a minute, as in the original workshop.
pub const DEFAULT_RATE_PER_MINUTE: f64 = 2.0;

/// One of the three topics. The portal calls the first one `orders`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TopicName {
    #[serde(rename = "orderTopic")]
    Orders,
    #[serde(rename = "iridium")]
    Iridium,
    #[serde(rename = "magnesite")]
    Magnesite,
}

impl TopicName {
    pub const ALL: [TopicName; 3] = [TopicName::Orders, TopicName::Iridium, TopicName::Magnesite];

    /// The SNS topic name (last part of the ARN).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orders => "orderTopic",
            Self::Iridium => "iridium",
            Self::Magnesite => "magnesite",
        }
    }

    /// The exact message body of one well-formed order (contract section 2).
    pub fn order_message(self) -> &'static str {
        match self {
            Self::Orders => r#"{"bundle": 1}"#,
            Self::Iridium => r#"{"iridium": 1}"#,
            Self::Magnesite => r#"{"magnesite": 1}"#,
        }
    }

    pub fn arn(self, region: &str, account: &str) -> String {
        format!("arn:aws:sns:{region}:{account}:{}", self.as_str())
    }

    /// Accepts the portal's short names, the SNS names and full ARNs.
    pub fn parse(s: &str) -> Option<Self> {
        let name = s.rsplit(':').next().unwrap_or(s);
        match name {
            "orders" | "orderTopic" => Some(Self::Orders),
            "iridium" => Some(Self::Iridium),
            "magnesite" => Some(Self::Magnesite),
            _ => None,
        }
    }
}

/// How fast a topic's orders flow.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    pub rate_per_minute: f64,
    pub paused: bool,
    pub malformed_share: f64,
}

impl Default for Rate {
    fn default() -> Self {
        Self {
            rate_per_minute: DEFAULT_RATE_PER_MINUTE,
            paused: false,
            malformed_share: 0.0,
        }
    }
}

/// A change to a rate: only the fields given change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RatePatch {
    pub rate_per_minute: Option<f64>,
    pub paused: Option<bool>,
    pub malformed_share: Option<f64>,
}

impl RatePatch {
    /// Rejects a field the publisher could not honour. Each field's range is
    /// checked on its own, so a valid patch stays valid whatever rate it is
    /// applied to (another process may change the rate meanwhile).
    pub fn validate(&self) -> Result<(), String> {
        Rate::default().patched(*self).validate()
    }
}

impl Rate {
    pub fn patched(self, p: RatePatch) -> Rate {
        Rate {
            rate_per_minute: p.rate_per_minute.unwrap_or(self.rate_per_minute),
            paused: p.paused.unwrap_or(self.paused),
            malformed_share: p.malformed_share.unwrap_or(self.malformed_share),
        }
    }

    /// Rejects what the publisher could not honour.
    pub fn validate(&self) -> Result<(), String> {
        if !self.rate_per_minute.is_finite() || !(0.0..=60_000.0).contains(&self.rate_per_minute) {
            return Err("ratePerMinute must be between 0 and 60000".into());
        }
        if !self.malformed_share.is_finite() || !(0.0..=1.0).contains(&self.malformed_share) {
            return Err("malformedShare must be between 0 and 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arns() {
        assert_eq!(TopicName::parse("orders"), Some(TopicName::Orders));
        assert_eq!(
            TopicName::parse("arn:aws:sns:us-west-2:000000000000:magnesite"),
            Some(TopicName::Magnesite)
        );
        assert_eq!(TopicName::parse("gold"), None);
        assert_eq!(
            TopicName::Orders.arn("us-west-2", "000000000000"),
            "arn:aws:sns:us-west-2:000000000000:orderTopic"
        );
        assert!(Rate {
            rate_per_minute: -1.0,
            ..Rate::default()
        }
        .validate()
        .is_err());
        assert!(Rate {
            malformed_share: 1.5,
            ..Rate::default()
        }
        .validate()
        .is_err());
        assert!(Rate::default().validate().is_ok());
    }
}
