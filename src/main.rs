//! The `callscope` command line.

use clap::Parser;

use callscope::config::{Cli, Command};
use callscope::logging::LogFormat;
use callscope::server::{Application, shutdown_signal};

/// mimalloc instead of glibc's malloc: a ListCalls request allocates for
/// every row, column, tag and message, and glibc's malloc and free were
/// 17 % of the server's CPU in a listing benchmark (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    callscope::logging::init(match &cli.command {
        Command::Serve(config) => config.log_format,
        _ => LogFormat::Text,
    });
    match cli.command {
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
        Command::Probe(config) => probe(&config).await,
    }
}

/// `callscope probe`: GET the health URL; an error (non-zero exit) unless 200.
async fn probe(config: &callscope::config::ProbeConfig) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(config.timeout_ms))
        .build()?;
    let status = client.get(&config.url).send().await?.status();
    match status.is_success() {
        true => Ok(()),
        false => anyhow::bail!("{} answered {status}", config.url),
    }
}
