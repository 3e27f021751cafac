//! The key-portal Lambda: the portal pages, the attendees' JSON API and the
//! facilitator's admin API, over DynamoDB, API Gateway keys and SNS.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    hq_lambdas::init_tracing();
    let wiring = hq_lambdas::Wiring::from_env(false).await?;
    lambda_http::run(wiring.portal_router()?).await
}
