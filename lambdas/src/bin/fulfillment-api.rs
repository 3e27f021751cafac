//! The fulfillment Lambda: `POST /receiving/` behind API Gateway, which has
//! already checked the key, throttle and quota (so HQ's own usage plan is off);
//! HQ still resolves the key to its owner (cached for `HQ_KEY_CACHE_TTL_SECS`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    hq_lambdas::init_tracing();
    let wiring = hq_lambdas::Wiring::from_env(false).await?;
    lambda_http::run(wiring.fulfillment_router()).await
}
