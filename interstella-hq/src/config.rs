//! Flags and environment variables (contract section 7): every flag
//! `--kebab-case` has an `HQ_SCREAMING_CASE` fallback.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "interstella-hq",
    version,
    about = "Interstella HQ: run a whole Interstella 8888 workshop event"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run HQ all-in-one (the default when no command is given).
    Serve(ServeArgs),
    /// AWS-mode tooling (built with `--features aws`): `aws bootstrap`.
    #[cfg(feature = "aws")]
    #[command(subcommand)]
    Aws(aws_adapters::cli::AwsCommand),
}

impl Default for Command {
    fn default() -> Self {
        Command::Serve(ServeArgs::parse_from(["serve"]))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Parser)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "HQ_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Where HQ keeps its database, admin token and signing keys.
    #[arg(long, env = "HQ_DATA_DIR", default_value = "./hq-data")]
    pub data_dir: PathBuf,

    /// Base URL attendees reach HQ at (put in SubscribeURL and shown to attendees).
    /// Default: http://<bind>.
    #[arg(long, env = "HQ_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// AWS region in topic ARNs.
    #[arg(long, env = "HQ_REGION", default_value = "us-west-2")]
    pub region: String,

    /// AWS account id in topic ARNs.
    #[arg(long, env = "HQ_ACCOUNT_ID", default_value = "000000000000")]
    pub account_id: String,

    /// Facilitator token for /admin/api/. Default: generated at first start,
    /// kept in the data dir, printed once.
    #[arg(long, env = "HQ_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Usage-plan rate: requests per second per API key.
    #[arg(long, env = "HQ_THROTTLE_RATE", default_value_t = 100.0)]
    pub throttle_rate: f64,

    /// Usage-plan burst: requests a key may send at once.
    #[arg(long, env = "HQ_THROTTLE_BURST", default_value_t = 200)]
    pub throttle_burst: u32,

    /// Usage-plan quota: requests per key per UTC day (default: none).
    #[arg(long, env = "HQ_QUOTA_PER_DAY")]
    pub quota_per_day: Option<u64>,

    /// Refuse subscription endpoints on loopback and private networks (allowed by
    /// default: in the all-in-one mode attendees usually sit on HQ's LAN).
    #[arg(long, env = "HQ_DENY_PRIVATE_ENDPOINTS")]
    pub deny_private_endpoints: bool,

    /// Folder of workshop files (code, Dockerfiles, load-test files) served
    /// read-only under /assets/.
    #[arg(long, env = "HQ_ASSETS_DIR")]
    pub assets_dir: Option<PathBuf>,

    /// How long a portal sign-in lasts, in hours.
    #[arg(long, env = "HQ_SESSION_HOURS", default_value_t = 12)]
    pub session_hours: u64,

    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, env = "HQ_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}
