//! The `callscope` command line.

use clap::Parser;
use tracing_subscriber::EnvFilter;

use callscope::config::{Cli, Command};
use callscope::server::{Application, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout is for what a command answers (the import summary).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(config) => {
            Application::build(config)
                .await?
                .run_until(shutdown_signal())
                .await
        }
        Command::Import(config) => {
            let summary = callscope::import::run_import(&config).await?;
            println!("{summary}");
            Ok(())
        }
        Command::Keys(config) => callscope::auth::run_keys(&config, &mut std::io::stdout()).await,
        Command::Export(config) => {
            let written = callscope::export::run_export(&config).await?;
            tracing::info!(calls = written, "export done");
            Ok(())
        }
    }
}
