//! [`Hq`]: every service, built once from a set of adapters. Each mode (all-in-one,
//! Lambda) builds one of these from its own ports and hands it to the routers, so
//! modes differ only in the adapters they wire.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_millis;
use crate::domain::Leaderboard;
use crate::error::CoreError;
use crate::ports::{AccountStore, KeyGateway, LabStore, Ledger, RateStore};
use crate::services::{
    AccountService, FulfillmentService, KeyCache, LabControls, RateService, SessionConfig,
    UsagePlan,
};

/// The adapters a mode provides.
pub struct Ports {
    pub accounts: Arc<dyn AccountStore>,
    pub ledger: Arc<dyn Ledger>,
    pub rates: Arc<dyn RateStore>,
    pub gateway: Arc<dyn KeyGateway>,
    /// Where the lab faults are shared between processes; `None` (all-in-one):
    /// in this process's memory only.
    pub lab: Option<Arc<dyn LabStore>>,
}

#[derive(Debug, Clone)]
pub struct HqConfig {
    pub region: String,
    pub account_id: String,
    pub usage_plan: UsagePlan,
    /// False where API Gateway already enforces the usage plan.
    pub enforce_usage_plan: bool,
    /// `None` when this process makes every key change (all-in-one).
    pub key_cache_ttl: Option<Duration>,
    pub sessions: SessionConfig,
}

impl Default for HqConfig {
    fn default() -> Self {
        Self {
            region: "us-west-2".into(),
            account_id: "000000000000".into(),
            usage_plan: UsagePlan::default(),
            enforce_usage_plan: true,
            key_cache_ttl: None,
            sessions: SessionConfig::default(),
        }
    }
}

pub struct Hq {
    pub config: HqConfig,
    pub accounts: Arc<AccountService>,
    pub fulfillment: Arc<FulfillmentService>,
    pub rates: Arc<RateService>,
    pub ledger: Arc<dyn Ledger>,
    pub keys: Arc<KeyCache>,
    pub lab: Arc<LabControls>,
}

impl Hq {
    pub fn new(ports: Ports, config: HqConfig) -> Self {
        let keys = Arc::new(KeyCache::new(config.usage_plan, config.key_cache_ttl));
        let lab = Arc::new(match ports.lab {
            Some(store) => LabControls::shared(store, LabControls::REFRESH),
            None => LabControls::default(),
        });
        let accounts = Arc::new(AccountService::new(
            ports.accounts.clone(),
            ports.gateway,
            keys.clone(),
            config.sessions,
        ));
        let fulfillment = Arc::new(FulfillmentService::new(
            ports.accounts,
            ports.ledger.clone(),
            keys.clone(),
            lab.clone(),
            config.enforce_usage_plan,
        ));
        let rates = Arc::new(RateService::new(
            ports.rates,
            config.region.clone(),
            config.account_id.clone(),
        ));
        Self {
            config,
            accounts,
            fulfillment,
            rates,
            ledger: ports.ledger,
            keys,
            lab,
        }
    }

    /// The leaderboard, from the per-attendee totals (cost independent of how many
    /// fulfillments exist). Attendees with no fulfillment yet are listed too.
    pub async fn leaderboard(&self) -> Result<Leaderboard, CoreError> {
        let mut totals = self.ledger.totals().await?;
        for user in self.accounts.store().list_users().await? {
            if !totals.iter().any(|t| t.username == user.username) {
                totals.push(crate::domain::UserTotals::new(user.username));
            }
        }
        Ok(Leaderboard::build(totals, now_millis()))
    }
}
