//! `interstella-hq aws …` (built with `--features aws`): AWS tooling kept out
//! of the default build so a newcomer's first `cargo run --release` compiles no
//! AWS SDK.

use clap::{Args, Subcommand};

use crate::bootstrap::{bootstrap, BootstrapOptions};
use crate::config::TableNames;
use crate::Clients;

#[derive(Debug, Subcommand)]
pub enum AwsCommand {
    /// Create or update (idempotently) the DynamoDB tables, SNS topics and API
    /// Gateway usage plan on the endpoint the AWS environment points at
    /// (AWS_ENDPOINT_URL, AWS_REGION, credentials), then print the
    /// environment variables the Lambdas need, one NAME=value per line.
    Bootstrap(BootstrapArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BootstrapArgs {
    /// Usage-plan rate: requests per second per API key.
    #[arg(long, env = "HQ_THROTTLE_RATE", default_value_t = 100.0)]
    pub throttle_rate: f64,

    /// Usage-plan burst.
    #[arg(long, env = "HQ_THROTTLE_BURST", default_value_t = 200)]
    pub throttle_burst: i32,

    /// Usage-plan quota: requests per key per day (default: none).
    #[arg(long, env = "HQ_QUOTA_PER_DAY")]
    pub quota_per_day: Option<i32>,

    /// Name the usage plan (and its REST API) is found and created by.
    #[arg(long, env = "HQ_USAGE_PLAN_NAME", default_value = "interstella-hq")]
    pub usage_plan_name: String,

    /// Stage of the REST API the usage plan covers.
    #[arg(long, env = "HQ_STAGE", default_value = "prod")]
    pub stage: String,
}

/// Runs an `aws` subcommand: values on stdout, progress on stderr.
pub async fn run(command: AwsCommand) -> anyhow::Result<()> {
    match command {
        AwsCommand::Bootstrap(args) => {
            let sdk = crate::load_sdk_config().await;
            let clients = Clients::new(&sdk);
            let opts = BootstrapOptions {
                tables: TableNames::from_env(),
                usage_plan_name: args.usage_plan_name.clone(),
                rest_api_name: args.usage_plan_name,
                stage: args.stage,
                rate: args.throttle_rate,
                burst: args.throttle_burst,
                quota_per_day: args.quota_per_day,
            };
            eprintln!(
                "bootstrapping HQ's AWS resources (region {}, endpoint {})",
                sdk.region().map_or("unset", |r| r.as_ref()),
                std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".into()),
            );
            let config = bootstrap(&clients, &opts).await?;
            for line in config.env_lines() {
                println!("{line}");
            }
            eprintln!(
                "done: pass the lines above to the Lambdas (e.g. cargo lambda watch --env-file)"
            );
            Ok(())
        }
    }
}
