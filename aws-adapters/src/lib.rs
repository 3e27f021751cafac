//! HQ's ports over AWS, for the deployed mode and the Lambdas.
//!
//! * [`DynamoStore`] implements [`AccountStore`](hq_core::ports::AccountStore),
//!   [`Ledger`](hq_core::ports::Ledger) and [`RateStore`](hq_core::ports::RateStore)
//!   on DynamoDB, with the same guarantees as the embedded store (conditional
//!   writes for races, one transaction per fulfillment and its totals). The
//!   tables are described in `DATA_MODEL.md`.
//! * [`ApiGatewayKeys`] implements [`KeyGateway`](hq_core::ports::KeyGateway) on API
//!   Gateway's API keys and usage plan.
//! * [`SnsOrderBus`] implements [`OrderBus`](hq_core::ports::OrderBus) on SNS.
//! * [`S3Assets`] implements [`AssetStore`](hq_core::ports::AssetStore) on an S3
//!   bucket, for the portal's `/assets/`.
//! * [`bootstrap`] creates or updates all of those resources, idempotently.
//!
//! Resource names come from [`AwsConfig`] (environment variables); endpoints,
//! region and credentials from the standard AWS chain, so `AWS_ENDPOINT_URL`
//! points everything at an emulator.

mod assets;
pub mod bootstrap;
pub mod cli;
pub mod config;
mod dynamo;
mod gateway;
pub mod retry;
mod sns;

use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use hq_core::Ports;

pub use assets::{S3Assets, MAX_ASSET_BYTES};
pub use config::{AwsConfig, TableNames, ENV_VARS};
pub use dynamo::DynamoStore;
pub use gateway::ApiGatewayKeys;
pub use sns::SnsOrderBus;

/// Attempts per AWS call (first try included) unless `AWS_MAX_ATTEMPTS` says
/// otherwise: more than the SDK's default 3, because a throttled DynamoDB write
/// is worth waiting for rather than answering a 500.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// Loads the standard AWS configuration (credentials, region, endpoint
/// overrides such as `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_DYNAMODB`).
pub async fn load_sdk_config() -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if std::env::var_os("AWS_MAX_ATTEMPTS").is_none()
        && std::env::var_os("AWS_RETRY_MODE").is_none()
    {
        loader =
            loader.retry_config(RetryConfig::standard().with_max_attempts(DEFAULT_MAX_ATTEMPTS));
    }
    loader.load().await
}

/// The three service clients, built once per process and shared (each holds a
/// connection pool).
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub apigateway: aws_sdk_apigateway::Client,
    pub sns: aws_sdk_sns::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            apigateway: aws_sdk_apigateway::Client::new(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
            // An emulator at a custom endpoint (moto) serves buckets by path,
            // not as `<bucket>.<host>` names.
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(sdk)
                    .force_path_style(sdk.endpoint_url().is_some())
                    .build(),
            ),
        }
    }
}

/// Every AWS adapter, wired from one configuration.
#[derive(Clone)]
pub struct AwsAdapters {
    pub config: AwsConfig,
    pub store: Arc<DynamoStore>,
    pub gateway: Arc<ApiGatewayKeys>,
    pub bus: Arc<SnsOrderBus>,
}

impl AwsAdapters {
    /// Builds the adapters; makes no network call (cold starts stay short).
    pub fn new(clients: &Clients, config: AwsConfig) -> Self {
        let store = Arc::new(DynamoStore::new(
            clients.dynamodb.clone(),
            config.tables.clone(),
        ));
        let gateway = Arc::new(ApiGatewayKeys::new(
            clients.apigateway.clone(),
            config.usage_plan_id.clone(),
        ));
        let bus = Arc::new(SnsOrderBus::new(
            clients.sns.clone(),
            clients.dynamodb.clone(),
            config.tables.subscriptions.clone(),
            config.topics.clone(),
        ));
        Self {
            config,
            store,
            gateway,
            bus,
        }
    }

    /// The ports `hq_core::Hq` is built from.
    pub fn ports(&self) -> Ports {
        Ports {
            accounts: self.store.clone(),
            ledger: self.store.clone(),
            rates: self.store.clone(),
            gateway: self.gateway.clone(),
            lab: Some(self.store.clone()),
        }
    }
}

/// An SDK configuration for an AWS-compatible server at `endpoint` (an
/// emulator), with static test credentials: for tests and local tooling that
/// must not depend on the process environment.
pub async fn sdk_config_for_endpoint(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "hq-static",
        ))
        .retry_config(RetryConfig::standard().with_max_attempts(DEFAULT_MAX_ATTEMPTS))
        .load()
        .await
}
