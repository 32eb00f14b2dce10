//! Settings: command-line flags with environment fallbacks and defaults that
//! run with nothing set.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::domain::Region;
use crate::store::StoreOptions;

#[derive(Debug, Parser)]
#[command(
    name = "callscope",
    version,
    about = "Call analytics for AI outbound-call robots and IVR campaigns"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server.
    Serve(ServeConfig),
}

#[derive(Clone, Args)]
pub struct ServeConfig {
    /// Where calls are stored: `sqlite://PATH` (created when missing).
    #[arg(
        long,
        env = "CALLSCOPE_DATABASE_URL",
        default_value = "sqlite://callscope.db"
    )]
    pub database_url: String,

    /// Address the gRPC server listens on (port 0 picks a free port).
    #[arg(long, env = "CALLSCOPE_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// ISO 3166 region for phone numbers written without a country code.
    #[arg(long, env = "CALLSCOPE_DEFAULT_REGION", default_value = "CN")]
    pub default_region: Region,

    /// Most database connections for reads.
    #[arg(long, env = "CALLSCOPE_DB_MAX_CONNECTIONS", default_value_t = 8)]
    pub db_max_connections: u32,

    /// How long a request waits for a database connection, in milliseconds.
    #[arg(long, env = "CALLSCOPE_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 5_000)]
    pub db_acquire_timeout_ms: u64,

    /// The longest any RPC may run, in milliseconds.
    #[arg(long, env = "CALLSCOPE_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,

    /// Most requests served at once on one connection.
    #[arg(long, env = "CALLSCOPE_MAX_CONCURRENT_REQUESTS", default_value_t = 256)]
    pub max_concurrent_requests: usize,
}

impl ServeConfig {
    /// Defaults for a given database and address, as used by tests.
    pub fn new(database_url: impl Into<String>, grpc_addr: SocketAddr) -> Self {
        Self {
            database_url: database_url.into(),
            grpc_addr,
            default_region: Region::default(),
            db_max_connections: 8,
            db_acquire_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            max_concurrent_requests: 256,
        }
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections,
            acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
            busy_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
        }
    }
}

// The database URL may hold a password: Debug shows it redacted.
impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("database_url", &crate::store::redact(&self.database_url))
            .field("grpc_addr", &self.grpc_addr)
            .field("default_region", &self.default_region.to_string())
            .field("db_max_connections", &self.db_max_connections)
            .field("db_acquire_timeout_ms", &self.db_acquire_timeout_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .finish()
    }
}
