//! Names of every AWS resource HQ uses, and the environment variables that carry
//! them. This is the single source of truth: the Lambdas read these variables,
//! `interstella-hq aws bootstrap` prints them, and the deployment template must
//! pass exactly these names (its tests compare against [`ENV_VARS`]).

use std::collections::BTreeMap;

use hq_core::domain::TopicName;

/// One DynamoDB table: which field of [`TableNames`], its env var, its default.
#[derive(Debug, Clone, Copy)]
pub struct TableVar {
    pub env: &'static str,
    pub default: &'static str,
}

/// Environment variable of each table name, with the name used when it is unset.
pub const USERS_TABLE: TableVar = TableVar {
    env: "HQ_USERS_TABLE",
    default: "hq-users",
};
pub const KEYS_TABLE: TableVar = TableVar {
    env: "HQ_KEYS_TABLE",
    default: "hq-keys",
};
pub const SESSIONS_TABLE: TableVar = TableVar {
    env: "HQ_SESSIONS_TABLE",
    default: "hq-sessions",
};
pub const FULFILLMENTS_TABLE: TableVar = TableVar {
    env: "HQ_FULFILLMENTS_TABLE",
    default: "hq-fulfillments",
};
pub const TOTALS_TABLE: TableVar = TableVar {
    env: "HQ_TOTALS_TABLE",
    default: "hq-totals",
};
pub const MINUTES_TABLE: TableVar = TableVar {
    env: "HQ_MINUTES_TABLE",
    default: "hq-minutes",
};
pub const RATES_TABLE: TableVar = TableVar {
    env: "HQ_RATES_TABLE",
    default: "hq-rates",
};
pub const SUBSCRIPTIONS_TABLE: TableVar = TableVar {
    env: "HQ_SUBSCRIPTIONS_TABLE",
    default: "hq-subscriptions",
};

/// Topic ARN of each orders topic.
pub const ORDERS_TOPIC_ARN: &str = "HQ_ORDERS_TOPIC_ARN";
pub const IRIDIUM_TOPIC_ARN: &str = "HQ_IRIDIUM_TOPIC_ARN";
pub const MAGNESITE_TOPIC_ARN: &str = "HQ_MAGNESITE_TOPIC_ARN";
/// The API Gateway usage plan every issued key is attached to.
pub const USAGE_PLAN_ID: &str = "HQ_USAGE_PLAN_ID";

/// Every variable the Lambdas read from this crate's configuration, in the order
/// `aws bootstrap` prints them.
pub const ENV_VARS: [&str; 12] = [
    USERS_TABLE.env,
    KEYS_TABLE.env,
    SESSIONS_TABLE.env,
    FULFILLMENTS_TABLE.env,
    TOTALS_TABLE.env,
    MINUTES_TABLE.env,
    RATES_TABLE.env,
    SUBSCRIPTIONS_TABLE.env,
    ORDERS_TOPIC_ARN,
    IRIDIUM_TOPIC_ARN,
    MAGNESITE_TOPIC_ARN,
    USAGE_PLAN_ID,
];

/// The DynamoDB table names. See `DATA_MODEL.md` for what each holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub users: String,
    pub keys: String,
    pub sessions: String,
    pub fulfillments: String,
    pub totals: String,
    pub minutes: String,
    pub rates: String,
    pub subscriptions: String,
}

impl Default for TableNames {
    fn default() -> Self {
        Self::with(|v| v.default.to_owned())
    }
}

impl TableNames {
    fn with(f: impl Fn(TableVar) -> String) -> Self {
        Self {
            users: f(USERS_TABLE),
            keys: f(KEYS_TABLE),
            sessions: f(SESSIONS_TABLE),
            fulfillments: f(FULFILLMENTS_TABLE),
            totals: f(TOTALS_TABLE),
            minutes: f(MINUTES_TABLE),
            rates: f(RATES_TABLE),
            subscriptions: f(SUBSCRIPTIONS_TABLE),
        }
    }

    /// Every name with a common prefix (`<prefix>-users`, …): tests use one
    /// prefix per test so they share one server without seeing each other.
    pub fn prefixed(prefix: &str) -> Self {
        Self::with(|v| format!("{prefix}-{}", v.default.trim_start_matches("hq-")))
    }

    /// Names from the environment, defaults where unset.
    pub fn from_env() -> Self {
        Self::with(|v| env_or(v.env, v.default))
    }

    /// (env var, table name) pairs, in [`ENV_VARS`] order.
    pub fn vars(&self) -> [(&'static str, &str); 8] {
        [
            (USERS_TABLE.env, &self.users),
            (KEYS_TABLE.env, &self.keys),
            (SESSIONS_TABLE.env, &self.sessions),
            (FULFILLMENTS_TABLE.env, &self.fulfillments),
            (TOTALS_TABLE.env, &self.totals),
            (MINUTES_TABLE.env, &self.minutes),
            (RATES_TABLE.env, &self.rates),
            (SUBSCRIPTIONS_TABLE.env, &self.subscriptions),
        ]
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Everything the AWS adapters need besides credentials and endpoints (which
/// come from the standard AWS chain: `AWS_REGION`, `AWS_ENDPOINT_URL`,
/// `AWS_ENDPOINT_URL_DYNAMODB`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct AwsConfig {
    pub tables: TableNames,
    /// ARN of each orders topic.
    pub topics: BTreeMap<TopicName, String>,
    /// The usage plan new keys join; `None` where no gateway fronts the API.
    pub usage_plan_id: Option<String>,
}

impl AwsConfig {
    /// Reads every variable of [`ENV_VARS`]. Topic ARNs are required: they hold
    /// the region and account the portal shows, and guessing them would hide a
    /// misconfigured deployment until the first publish.
    pub fn from_env() -> Result<Self, String> {
        let mut topics = BTreeMap::new();
        for (topic, var) in [
            (TopicName::Orders, ORDERS_TOPIC_ARN),
            (TopicName::Iridium, IRIDIUM_TOPIC_ARN),
            (TopicName::Magnesite, MAGNESITE_TOPIC_ARN),
        ] {
            let arn = std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("{var} is not set (run `interstella-hq aws bootstrap`)"))?;
            check_topic_arn(topic, &arn).map_err(|e| format!("{var}: {e}"))?;
            topics.insert(topic, arn);
        }
        let usage_plan_id = std::env::var(USAGE_PLAN_ID)
            .ok()
            .filter(|v| !v.trim().is_empty());
        Ok(Self {
            tables: TableNames::from_env(),
            topics,
            usage_plan_id,
        })
    }

    pub fn topic_arn(&self, topic: TopicName) -> &str {
        self.topics.get(&topic).map_or("", String::as_str)
    }

    /// Region and account, as the orders topic's ARN states them.
    pub fn region_and_account(&self) -> (String, String) {
        let parts: Vec<&str> = self.topic_arn(TopicName::Orders).split(':').collect();
        match parts.as_slice() {
            [_, _, _, region, account, _] => ((*region).to_owned(), (*account).to_owned()),
            _ => ("us-west-2".into(), "000000000000".into()),
        }
    }

    /// `NAME=value` lines for every variable, as the Lambdas expect them.
    pub fn env_lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .tables
            .vars()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push(format!(
            "{ORDERS_TOPIC_ARN}={}",
            self.topic_arn(TopicName::Orders)
        ));
        out.push(format!(
            "{IRIDIUM_TOPIC_ARN}={}",
            self.topic_arn(TopicName::Iridium)
        ));
        out.push(format!(
            "{MAGNESITE_TOPIC_ARN}={}",
            self.topic_arn(TopicName::Magnesite)
        ));
        out.push(format!(
            "{USAGE_PLAN_ID}={}",
            self.usage_plan_id.as_deref().unwrap_or("")
        ));
        out
    }
}

/// A topic ARN must be `arn:aws:sns:<region>:<account>:<the topic's name>`.
pub fn check_topic_arn(topic: TopicName, arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "sns", region, account, name]
            if !region.is_empty() && !account.is_empty() && *name == topic.as_str() =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{arn:?} is not the ARN of an SNS topic named {}",
            topic.as_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines_cover_every_variable_once() {
        let cfg = AwsConfig {
            tables: TableNames::prefixed("t1"),
            topics: TopicName::ALL
                .iter()
                .map(|t| (*t, t.arn("eu-west-1", "123456789012")))
                .collect(),
            usage_plan_id: Some("plan1".into()),
        };
        let lines = cfg.env_lines();
        let names: Vec<&str> = lines.iter().map(|l| l.split('=').next().unwrap()).collect();
        assert_eq!(names, ENV_VARS);
        assert!(lines.contains(&"HQ_USERS_TABLE=t1-users".to_owned()));
        assert_eq!(
            cfg.region_and_account(),
            ("eu-west-1".into(), "123456789012".into())
        );
        assert!(check_topic_arn(TopicName::Iridium, "arn:aws:sns:r:1:iridium").is_ok());
        assert!(check_topic_arn(TopicName::Iridium, "arn:aws:sns:r:1:magnesite").is_err());
        assert!(check_topic_arn(TopicName::Orders, "orderTopic").is_err());
    }
}
