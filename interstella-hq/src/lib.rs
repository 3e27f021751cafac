//! The all-in-one mode: HQ's routers over the embedded adapters, in one process.
//!
//! [`Application::build`] wires everything and binds the listener, so tests can
//! start a real server on a random port exactly as `main` does.

pub mod config;
mod order_stream;
pub mod telemetry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use embedded_store::EmbeddedStore;
use hq_core::domain::EndpointPolicy;
use hq_core::ports::OrderBus;
use hq_core::services::{SessionConfig, SubscriptionService, UsagePlan};
use hq_core::{Hq, HqConfig, Ports};
use hq_web::Metrics;
use order_publisher::{OrderPublisher, PublisherConfig};
use sns_engine::{EngineConfig, SnsEngine};
use tokio::net::TcpListener;

use crate::config::ServeArgs;

pub struct Application {
    listener: TcpListener,
    router: Router,
    store: EmbeddedStore,
    pub engine: Arc<SnsEngine>,
    pub publisher: Arc<OrderPublisher>,
    pub hq: Arc<Hq>,
    pub public_url: String,
    pub data_dir: PathBuf,
    admin_token: AdminToken,
}

/// Where the admin token came from, which decides whether the banner shows it.
enum AdminToken {
    Configured(Arc<str>),
    /// Made at this start: shown once.
    Generated(Arc<str>, PathBuf),
    Stored(Arc<str>, PathBuf),
}

impl AdminToken {
    fn value(&self) -> &Arc<str> {
        match self {
            Self::Configured(t) | Self::Generated(t, _) | Self::Stored(t, _) => t,
        }
    }

    /// The configured token, or the one kept in the data dir, or a new one.
    fn resolve(configured: Option<String>, data_dir: &std::path::Path) -> anyhow::Result<Self> {
        if let Some(t) = configured.filter(|t| !t.is_empty()) {
            return Ok(Self::Configured(t.into()));
        }
        let path = data_dir.join("admin-token");
        if let Ok(t) = std::fs::read_to_string(&path) {
            if !t.trim().is_empty() {
                return Ok(Self::Stored(t.trim().into(), path));
            }
        }
        use base64::Engine;
        let token =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
        write_private(&path, &token).with_context(|| format!("writing {}", path.display()))?;
        Ok(Self::Generated(token.into(), path))
    }
}

fn write_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()
}

impl Application {
    pub async fn build(args: ServeArgs) -> anyhow::Result<Self> {
        let store = EmbeddedStore::open(&args.data_dir)
            .with_context(|| format!("opening the data dir {}", args.data_dir.display()))?;
        let admin_token = AdminToken::resolve(args.admin_token.clone(), &args.data_dir)?;
        let listener = TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("binding {}", args.bind))?;
        let bound = listener.local_addr()?;
        let public_url = args
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"))
            .trim_end_matches('/')
            .to_owned();

        let config = HqConfig {
            region: args.region.clone(),
            account_id: args.account_id.clone(),
            usage_plan: UsagePlan {
                rate: args.throttle_rate,
                burst: args.throttle_burst,
                quota_per_day: args.quota_per_day,
            },
            enforce_usage_plan: true,
            key_cache_ttl: None,
            sessions: SessionConfig {
                ttl: std::time::Duration::from_secs(args.session_hours * 3600),
                ..SessionConfig::default()
            },
        };
        let shared = Arc::new(store.clone());
        let ports = Ports {
            accounts: shared.clone(),
            ledger: shared.clone(),
            rates: shared,
            gateway: Arc::new(hq_core::ports::NoGateway),
            // Lab faults live in memory: a restart comes back healthy.
            lab: None,
        };
        let hq = Arc::new(Hq::new(ports, config));
        let metrics = Arc::new(Metrics::new());

        let policy = EndpointPolicy {
            allow_private: !args.deny_private_endpoints,
        };
        let mut engine_config = EngineConfig::new(public_url.clone(), args.data_dir.clone());
        engine_config.region = args.region.clone();
        engine_config.account_id = args.account_id.clone();
        engine_config.endpoint_policy = policy;
        let engine = SnsEngine::start(engine_config, Arc::new(store.clone()))
            .await
            .context("starting the SNS engine")?;
        let bus: Arc<dyn OrderBus> = engine.clone();
        let publisher =
            OrderPublisher::start(hq.rates.clone(), bus.clone(), PublisherConfig::default())
                .await
                .context("starting the order publisher")?;
        order_stream::register_metrics(&metrics, engine.clone(), publisher.clone());

        let portal = key_portal::PortalState {
            hq: hq.clone(),
            subscriptions: Arc::new(SubscriptionService::new(bus, policy)),
            order_stream: Some(Arc::new(order_stream::Publisher(publisher.clone()))),
            info: Arc::new(key_portal::PortalInfo {
                public_url: public_url.clone(),
                fulfillment_url: format!("{public_url}/receiving/"),
                sns_endpoint: Some(engine.sns_url().to_owned()),
            }),
            admin_token: admin_token.value().clone(),
            secure_cookies: public_url.starts_with("https://"),
            assets: args.assets_dir.clone().map(key_portal::Assets::Dir),
        };
        let router = Router::new()
            .merge(fulfillment_api::router(fulfillment_api::FulfillmentState {
                service: hq.fulfillment.clone(),
                metrics: metrics.clone(),
            }))
            .merge(hq_web::ops_router(metrics.clone()))
            .merge(engine.router())
            .merge(key_portal::router(portal))
            .layer(axum::middleware::from_fn_with_state(
                metrics,
                hq_web::observe,
            ));

        Ok(Self {
            listener,
            router,
            store,
            engine,
            publisher,
            hq,
            public_url,
            data_dir: args.data_dir,
            admin_token,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn admin_token(&self) -> &str {
        self.admin_token.value()
    }

    /// What attendees and the facilitator need, printed once at start.
    pub fn print_banner(&self) {
        let url = &self.public_url;
        let token_line = match &self.admin_token {
            AdminToken::Configured(_) => {
                "  Admin token:          as configured (--admin-token / HQ_ADMIN_TOKEN)".to_owned()
            }
            AdminToken::Generated(t, p) => format!(
                "  Admin token:          {t}\n                        (shown once; kept in {})",
                p.display()
            ),
            AdminToken::Stored(_, p) => format!("  Admin token:          kept in {}", p.display()),
        };
        let topics: Vec<String> = hq_core::domain::TopicName::ALL
            .iter()
            .map(|t| format!("  Topic ARN:            {}", self.hq.rates.arn(*t)))
            .collect();
        println!(
            "\n  Interstella HQ is running.\n\n  \
             Share with attendees:\n  \
             Key portal:           {url}/\n  \
             Fulfillment endpoint: {url}/receiving/\n  \
             Leaderboard:          {url}/leaderboard\n\
             {}\n  \
             AWS_ENDPOINT_URL_SNS: {}\n\n  \
             For the facilitator:\n  \
             Console:              {url}/admin\n\
             {token_line}\n  \
             Data dir:             {}\n  \
             Listening on:         {}\n",
            topics.join("\n"),
            self.engine.sns_url(),
            self.data_dir.display(),
            self.local_addr(),
        );
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests and
    /// makes sure everything acknowledged is on disk before returning.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            store,
            hq,
            engine,
            publisher,
            ..
        } = self;
        axum::serve(listener, router.into_make_service())
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        tracing::info!("HTTP server stopped; stopping the order stream, closing the store");
        publisher.shutdown().await;
        engine.shutdown().await;
        drop((hq, engine, publisher));
        store.close().await;
        Ok(())
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}
