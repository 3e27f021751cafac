//! `interstella-hq`: the all-in-one server. Thin: parse flags, set up logs, run.

use clap::Parser;
use interstella_hq::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Command::Serve(args) = cli.command.unwrap_or_default();
    interstella_hq::telemetry::init(args.log_format);
    let app = interstella_hq::Application::build(args).await?;
    app.print_banner();
    app.run_until(interstella_hq::shutdown_signal()).await
}
