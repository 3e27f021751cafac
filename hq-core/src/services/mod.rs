//! The behaviours every mode shares, written once over the ports.

mod accounts;
mod fulfillment;
mod key_cache;
mod lab;
mod login_limiter;
mod rates;
mod usage_plan;

pub use accounts::{AccountService, AdminUserView, KeyView, LoginOutcome, SessionConfig};
pub use fulfillment::{FulfillmentService, IngestError, IngestRequest};
pub use key_cache::{KeyCache, KeyEntry};
pub use lab::{LabControls, ReceivingFaults, ReceivingFaultsPatch, Verdict};
pub use login_limiter::LoginLimiter;
pub use rates::{RateService, TopicView};
pub use usage_plan::{Admission, UsagePlan};

mod subscriptions;
pub use subscriptions::SubscriptionService;
