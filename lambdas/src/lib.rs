//! What HQ's Lambda binaries share: settings from the environment, the AWS
//! adapters built once per cold start, and the routers each Lambda serves —
//! the very routers of the all-in-one mode, over other adapters.
//!
//! Cold start: building the SDK clients reads the environment and makes no
//! network call; tables, topics and the usage plan are not checked at start
//! (a missing one is a clear 5xx on the request that needs it). Argon2's dummy
//! hash (for constant-time sign-in) is the only CPU work before the first
//! request, and only in the portal.

pub mod publisher;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_adapters::{AwsAdapters, AwsConfig, Clients};
use axum::Router;
use clap::Parser;
use hq_core::domain::EndpointPolicy;
use hq_core::ports::OrderBus;
use hq_core::services::{SessionConfig, SubscriptionService, UsagePlan};
use hq_core::{Hq, HqConfig};
use hq_web::Metrics;

/// Settings of the Lambdas besides the resource names of
/// [`aws_adapters::config`]; each is an environment variable (the flag names
/// exist only for `--help`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "hq-lambda",
    about = "Interstella HQ Lambda settings (environment variables)"
)]
pub struct LambdaSettings {
    /// The facilitator's bearer token for /admin/api/ (portal Lambda).
    #[arg(long, env = "HQ_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// How long the fulfillment Lambda trusts a cached key lookup. Other Lambda
    /// instances rotate keys, so it cannot trust it forever; API Gateway has
    /// already checked the key anyway.
    #[arg(long, env = "HQ_KEY_CACHE_TTL_SECS", default_value_t = 5)]
    pub key_cache_ttl_secs: u64,

    /// Base URL of the portal as attendees reach it (cookies are `Secure` on https).
    #[arg(long, env = "HQ_PUBLIC_URL", default_value = "")]
    pub public_url: String,

    /// Where attendees send fulfillments (the API Gateway stage URL + /receiving/).
    #[arg(long, env = "HQ_FULFILLMENT_URL", default_value = "")]
    pub fulfillment_url: String,

    /// Refuse subscriber endpoints on loopback and private addresses.
    #[arg(long, env = "HQ_DENY_PRIVATE_ENDPOINTS")]
    pub deny_private_endpoints: bool,

    /// Usage plan rate, as shown to the facilitator (API Gateway enforces it).
    #[arg(long, env = "HQ_THROTTLE_RATE", default_value_t = 100.0)]
    pub throttle_rate: f64,

    #[arg(long, env = "HQ_THROTTLE_BURST", default_value_t = 200)]
    pub throttle_burst: u32,

    #[arg(long, env = "HQ_QUOTA_PER_DAY")]
    pub quota_per_day: Option<u64>,

    #[arg(long, env = "HQ_SESSION_HOURS", default_value_t = 12)]
    pub session_hours: u64,

    /// The bucket whose files the portal serves under `/assets/` (the stack's
    /// assets bucket); unset or empty: none.
    #[arg(long, env = "HQ_ASSETS_BUCKET", default_value = "")]
    pub assets_bucket: String,

    /// Length of the interval each order-publisher invocation covers, in
    /// seconds (the schedule's period: 60 for `rate(1 minute)`).
    #[arg(long, env = "HQ_PUBLISH_INTERVAL_SECS", default_value_t = 60)]
    pub publish_interval_secs: u64,
}

impl LambdaSettings {
    /// Reads the environment; unknown or malformed values are an error, not a default.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::try_parse_from(["hq-lambda"]).map_err(|e| anyhow::anyhow!("Lambda settings: {e}"))
    }
}

/// Logs as JSON lines on stdout (CloudWatch keeps them); `RUST_LOG` picks the
/// level (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .without_time()
        .with_ansi(false)
        .try_init();
}

/// The AWS side, built from the environment once per cold start.
pub struct Wiring {
    pub settings: LambdaSettings,
    pub adapters: AwsAdapters,
    pub hq: Arc<Hq>,
    pub metrics: Arc<Metrics>,
    /// The workshop files of `HQ_ASSETS_BUCKET`, if set.
    pub assets: Option<Arc<dyn hq_core::ports::AssetStore>>,
}

impl Wiring {
    /// `enforce_usage_plan` is false behind API Gateway (it already did).
    pub async fn from_env(enforce_usage_plan: bool) -> anyhow::Result<Self> {
        let settings = LambdaSettings::from_env()?;
        let config = AwsConfig::from_env().map_err(|e| anyhow::anyhow!(e))?;
        let sdk = aws_adapters::load_sdk_config().await;
        Ok(Self::new(
            settings,
            &Clients::new(&sdk),
            config,
            enforce_usage_plan,
        ))
    }

    pub fn new(
        settings: LambdaSettings,
        clients: &Clients,
        config: AwsConfig,
        enforce_usage_plan: bool,
    ) -> Self {
        let (region, account_id) = config.region_and_account();
        let adapters = AwsAdapters::new(clients, config);
        let hq_config = HqConfig {
            region,
            account_id,
            usage_plan: UsagePlan {
                rate: settings.throttle_rate,
                burst: settings.throttle_burst,
                quota_per_day: settings.quota_per_day,
            },
            enforce_usage_plan,
            key_cache_ttl: Some(Duration::from_secs(settings.key_cache_ttl_secs)),
            sessions: SessionConfig {
                ttl: Duration::from_secs(settings.session_hours.saturating_mul(3600)),
                ..SessionConfig::default()
            },
        };
        let hq = Arc::new(Hq::new(adapters.ports(), hq_config));
        let assets = Some(settings.assets_bucket.trim())
            .filter(|b| !b.is_empty())
            .map(|b| {
                let store = aws_adapters::S3Assets::new(clients.s3.clone(), b.to_owned());
                Arc::new(store) as Arc<dyn hq_core::ports::AssetStore>
            });
        Self {
            settings,
            adapters,
            hq,
            metrics: Arc::new(Metrics::new()),
            assets,
        }
    }

    fn observed(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.metrics.clone(),
            hq_web::observe,
        ))
    }

    /// `/receiving/` (the fulfillment Lambda behind API Gateway).
    pub fn fulfillment_router(&self) -> Router {
        self.observed(fulfillment_api::router(fulfillment_api::FulfillmentState {
            service: self.hq.fulfillment.clone(),
            metrics: self.metrics.clone(),
        }))
    }

    /// The portal pages, `/api/`, `/admin/api/` and `/healthz`.
    pub fn portal_router(&self) -> anyhow::Result<Router> {
        let admin_token = self
            .settings
            .admin_token
            .clone()
            .filter(|t| !t.trim().is_empty())
            .context(
                "HQ_ADMIN_TOKEN is not set: the portal Lambda needs the facilitator's token",
            )?;
        let policy = EndpointPolicy {
            allow_private: !self.settings.deny_private_endpoints,
        };
        let bus: Arc<dyn OrderBus> = self.adapters.bus.clone();
        let public_url = self.settings.public_url.trim_end_matches('/').to_owned();
        let portal = key_portal::PortalState {
            hq: self.hq.clone(),
            subscriptions: Arc::new(SubscriptionService::new(bus, policy)),
            // The publisher is its own scheduled Lambda: no surges from here.
            order_stream: None,
            info: Arc::new(key_portal::PortalInfo {
                fulfillment_url: if self.settings.fulfillment_url.is_empty() {
                    format!("{public_url}/receiving/")
                } else {
                    self.settings.fulfillment_url.clone()
                },
                public_url: public_url.clone(),
                sns_endpoint: None,
            }),
            admin_token: admin_token.into(),
            secure_cookies: public_url.starts_with("https://"),
            assets: self.assets.clone().map(key_portal::Assets::Store),
        };
        Ok(self.observed(
            Router::new()
                .merge(hq_web::ops_router(self.metrics.clone()))
                .merge(key_portal::router(portal))
                .layer(axum::middleware::map_response(text_stays_text)),
        ))
    }
}

/// Marks a UTF-8 body of a type `lambda_http` does not take for text (a
/// `Dockerfile` is `application/octet-stream`, a `.sh` `application/x-sh`)
/// to pass as text. Otherwise `lambda_http` base64-encodes it, and API
/// Gateway, which has no binary media types here, hands attendees the base64.
async fn text_stays_text(res: axum::response::Response) -> axum::response::Response {
    use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
    let already_text = match res.headers().get(CONTENT_TYPE) {
        None => true,
        Some(t) => t.to_str().is_ok_and(|t| {
            [
                "text/",
                "application/json",
                "application/javascript",
                "application/xml",
            ]
            .iter()
            .any(|p| t.starts_with(p))
        }),
    };
    if already_text || res.headers().contains_key(CONTENT_ENCODING) {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    // Portal answers are whole in memory already (assets up to 5 MiB).
    let bytes = match hq_web::read_body(body, 2 * aws_adapters::MAX_ASSET_BYTES as usize).await {
        Ok(bytes) => bytes,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    if std::str::from_utf8(&bytes).is_ok() {
        parts.headers.insert(
            "x-lambda-http-content-encoding",
            axum::http::HeaderValue::from_static("text"),
        );
    }
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}
