//! `interstella-hq`: the all-in-one server. Thin: parse flags, set up logs, run.

use clap::Parser;
use interstella_hq::config::{Cli, Command};

/// mimalloc: the request path allocates many small, short-lived buffers, which it
/// serves faster than the system allocator (see the ingest benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
// Without the `aws` feature the match has one arm; it stays a match so both
// builds read the same.
#[allow(clippy::infallible_destructuring_match)]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command.unwrap_or_default() {
        Command::Serve(args) => args,
        #[cfg(feature = "aws")]
        Command::Aws(command) => return aws_adapters::cli::run(command).await,
    };
    interstella_hq::telemetry::init(args.log_format);
    let app = interstella_hq::Application::build(args).await?;
    app.print_banner();
    app.run_until(interstella_hq::shutdown_signal()).await
}
