//! The order-publisher Lambda: on each scheduled event (EventBridge
//! `rate(1 minute)`), publishes the orders the rates say are due in the next
//! `HQ_PUBLISH_INTERVAL_SECS`, spread over that interval, to the SNS topics.

use std::time::Duration;

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hq_lambdas::init_tracing();
    let wiring = hq_lambdas::Wiring::from_env(false).await?;
    let interval = Duration::from_secs(wiring.settings.publish_interval_secs.max(1));
    let wiring = &wiring;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let (from, to) = hq_lambdas::publisher::interval_of(&event.payload, interval);
        let summary = hq_lambdas::publisher::publish_interval(
            &wiring.hq.rates,
            &wiring.hq.lab,
            wiring.adapters.bus.as_ref(),
            from,
            to,
        )
        .await?;
        tracing::info!(?summary, "orders published");
        Ok::<Value, lambda_runtime::Error>(serde_json::json!({ "topics": summary }))
    }))
    .await
}
