//! Settings: command-line flags with environment fallbacks and defaults that
//! run with nothing set.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use jiff::tz::TimeZone;

use crate::auth::AuthMode;
use crate::domain::limits::{DEFAULT_MAX_RESPONSE_BYTES, MAX_EXACT_TOTAL, MAX_RESPONSE_BYTES};
use crate::domain::{Region, Source};
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

// Parsed once at start: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server and the vendor webhooks.
    Serve(ServeConfig),
    /// Import vendor export files (JSON arrays or NDJSON) into the database.
    Import(ImportConfig),
    /// Create, list and revoke API keys (for `serve --auth keys`).
    Keys(KeysConfig),
    /// Exit 0 when a running server's `/healthz` answers 200 (a container
    /// health check without curl).
    Probe(ProbeConfig),
    /// Export the calls of a filter from a running server as CSV or NDJSON
    /// (CallService.ExportCalls), resuming by itself after a dropped connection.
    Export(ExportConfig),
}

#[derive(Debug, Clone, Args)]
pub struct ProbeConfig {
    /// The health URL of the HTTP port.
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    pub url: String,
    /// How long to wait for the answer, in milliseconds.
    #[arg(long, default_value_t = 3_000)]
    pub timeout_ms: u64,
}

/// `callscope export`.
#[derive(Debug, Clone, Args)]
pub struct ExportConfig {
    /// The server's gRPC address, e.g. `http://127.0.0.1:50051`.
    #[arg(long)]
    pub server: String,
    /// An API key with the read role (servers with `--auth keys`).
    #[arg(long, env = "CALLSCOPE_API_KEY")]
    pub api_key: Option<String>,
    /// `csv` (a header row, one flat row per call) or `ndjson` (a call per line,
    /// in the proto3 JSON mapping).
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Only calls of these tasks (repeatable).
    #[arg(long = "task-id")]
    pub task_ids: Vec<String>,
    /// Only calls at or after this time (RFC 3339).
    #[arg(long)]
    pub start: Option<String>,
    /// Only calls before this time (RFC 3339).
    #[arg(long)]
    pub end: Option<String>,
    /// Write here instead of stdout.
    #[arg(long)]
    pub output: Option<std::path::PathBuf>,
    /// PEM CA certificate(s) to verify an `https://` server with.
    #[arg(long)]
    pub ca_cert: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

#[derive(Debug, Clone, Args)]
pub struct KeysConfig {
    #[command(subcommand)]
    pub command: KeysCommand,

    /// Where keys are stored, as for `serve`.
    #[arg(
        long,
        global = true,
        env = "CALLSCOPE_DATABASE_URL",
        default_value = "sqlite://callscope.db"
    )]
    pub database_url: String,
}

#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is printed once, alone on the last line.
    Create {
        /// The tenant the key acts for: 1-64 of A-Z a-z 0-9 . _ -
        #[arg(long, value_parser = parse_tenant)]
        tenant: String,
        /// read (calls, analytics, catalogs), ingest (IngestService, webhooks)
        /// or admin (everything).
        #[arg(long, value_parser = crate::domain::key::Role::parse)]
        role: crate::domain::key::Role,
        /// A note saying what the key is for.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List keys, one a line: id, tenant, role, name, created, last used,
    /// revoked.
    List {
        /// Only this tenant's keys.
        #[arg(long, value_parser = parse_tenant)]
        tenant: Option<String>,
    },
    /// Revoke a key by its id; servers refuse it within seconds.
    Revoke {
        /// The key's id (the first column of `keys list`).
        key_id: String,
    },
}

fn parse_tenant(text: &str) -> Result<String, String> {
    crate::domain::key::validate_tenant(text)?;
    Ok(text.to_owned())
}

#[derive(Debug, Clone, Args)]
pub struct ImportConfig {
    /// Which vendor wrote the files: smartivr, laaffic or alibaba-lvms.
    #[arg(long, value_parser = parse_source)]
    pub source: Source,

    /// The files: a JSON array of records, one JSON document, or NDJSON.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,

    /// Where calls are stored, as for `serve`.
    #[arg(
        long,
        env = "CALLSCOPE_DATABASE_URL",
        default_value = "sqlite://callscope.db"
    )]
    pub database_url: String,

    /// The task of smartivr number-list entries that name none themselves.
    #[arg(long)]
    pub task_id: Option<String>,

    /// Records stored per transaction.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,

    #[command(flatten)]
    pub sources: SourceFlags,
}

/// How vendor records are read.
#[derive(Debug, Clone, Default, Args)]
pub struct SourceFlags {
    /// ISO 3166 region for phone numbers written without a country code.
    #[arg(long, env = "CALLSCOPE_DEFAULT_REGION", default_value = "CN")]
    pub default_region: Region,

    /// Time zone of a source's local times, e.g. `smartivr=Asia/Shanghai`;
    /// repeatable. smartivr and alibaba-lvms default to Asia/Shanghai.
    #[arg(long = "source-timezone", env = "CALLSCOPE_SOURCE_TIMEZONES", value_delimiter = ',', value_parser = parse_source_timezone)]
    pub source_timezones: Vec<(Source, TimeZone)>,
}

impl SourceFlags {
    pub fn settings(&self) -> crate::service::ingest::SourceSettings {
        crate::service::ingest::SourceSettings::new(self.default_region, &self.source_timezones)
    }
}

fn parse_source(text: &str) -> Result<Source, String> {
    Source::from_slug(text)
        .filter(|s| *s != Source::Api)
        .ok_or_else(|| format!("unknown source `{text}`: use smartivr, laaffic or alibaba-lvms"))
}

fn parse_source_timezone(text: &str) -> Result<(Source, TimeZone), String> {
    let (source, zone) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected SOURCE=ZONE, e.g. smartivr=Asia/Shanghai"))?;
    let zone = TimeZone::get(zone.trim()).map_err(|e| format!("time zone `{zone}`: {e}"))?;
    Ok((parse_source(source)?, zone))
}

#[derive(Clone, Args)]
pub struct ServeConfig {
    /// Where calls are stored: `sqlite://PATH` (created when missing) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (the database must
    /// exist: `createdb DATABASE`; tables are created at start).
    #[arg(
        long,
        env = "CALLSCOPE_DATABASE_URL",
        default_value = "sqlite://callscope.db"
    )]
    pub database_url: String,

    /// A PostgreSQL streaming replica of `--database-url` (`postgres://…`)
    /// that takes the reads which may lag behind the last commit: ListCalls,
    /// ExportCalls, WatchCalls, stats, catalogs, dialing lists, the
    /// quarantine. GetCall, keys, subscriptions, sync sources and every
    /// read that decides a write stay on the primary. Off: every read on the
    /// primary.
    #[arg(long, env = "CALLSCOPE_DATABASE_READ_URL")]
    pub database_read_url: Option<String>,

    /// Address the gRPC server listens on (port 0 picks a free port).
    #[arg(long, env = "CALLSCOPE_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// Address the HTTP listener (vendor webhooks) listens on.
    #[arg(long, env = "CALLSCOPE_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// Largest webhook body accepted, in bytes; a larger one is answered 413
    /// and its beginning quarantined.
    #[arg(long, env = "CALLSCOPE_HTTP_BODY_LIMIT", default_value_t = 2 * 1024 * 1024)]
    pub http_body_limit: usize,

    #[command(flatten)]
    pub sources: SourceFlags,

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

    /// How often the database is pinged for health, in milliseconds; health
    /// turns NOT_SERVING when a ping fails or takes longer than this.
    #[arg(long, env = "CALLSCOPE_HEALTH_INTERVAL_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub health_interval_ms: u64,

    /// Delete calls whose call_time is older than this many days (checked at
    /// start, then every retention interval). Off when not set.
    #[arg(long, env = "CALLSCOPE_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub retention_days: Option<u32>,

    /// Delete quarantined records received more than this many days ago;
    /// 0 keeps them until the caps drop them.
    #[arg(
        long,
        env = "CALLSCOPE_QUARANTINE_RETENTION_DAYS",
        default_value_t = 30
    )]
    pub quarantine_retention_days: u32,

    /// How often the retention purge runs, in milliseconds.
    #[arg(long, env = "CALLSCOPE_RETENTION_INTERVAL_MS", default_value_t = 3_600_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_interval_ms: u64,

    /// Most quarantined records kept per tenant and source; the oldest are
    /// dropped first.
    #[arg(long, env = "CALLSCOPE_QUARANTINE_MAX_ROWS", default_value_t = 10_000)]
    pub quarantine_max_rows: u64,

    /// Most payload bytes the quarantine keeps per tenant and source; the
    /// oldest records are dropped first.
    #[arg(long, env = "CALLSCOPE_QUARANTINE_MAX_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub quarantine_max_bytes: u64,
    /// How requests are authenticated: `none` (every request acts for the
    /// tenant `default`; only loopback addresses may be served) or `keys`
    /// (API keys from `callscope keys create`).
    #[arg(long, env = "CALLSCOPE_AUTH", value_enum, default_value_t = AuthMode::None)]
    pub auth: AuthMode,
    /// Largest ListCalls page, in bytes (estimated): a page that would pass
    /// it is cut short and continues with its `next_page_token`. The default
    /// fits clients with gRPC's default 4 MiB receive limit.
    #[arg(long, env = "CALLSCOPE_MAX_RESPONSE_BYTES", default_value_t = DEFAULT_MAX_RESPONSE_BYTES, value_parser = parse_response_bytes)]
    pub max_response_bytes: usize,
    /// Matching calls that ListCalls' `include_total` counts exactly; past
    /// it, `total_size` is this bound and `total_size_capped` is set, so a
    /// count never costs more than a bounded scan.
    #[arg(long, env = "CALLSCOPE_EXACT_TOTAL_LIMIT", default_value_t = MAX_EXACT_TOTAL, value_parser = clap::value_parser!(i64).range(1..=10_000_000))]
    pub exact_total_limit: i64,

    #[command(flatten)]
    pub tls: crate::tls::TlsFlags,

    /// An origin browsers may call from (gRPC-Web on the gRPC port, JSON on
    /// the HTTP port), `https://crm.example.com`, or `*` for any;
    /// repeatable. CORS is off when none is given.
    #[arg(
        long = "cors-origin",
        env = "CALLSCOPE_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Keep the event log (WatchCalls, webhooks, the NATS sink) this many
    /// hours; older events are removed in batches every retention interval.
    /// A watch resume token older than that is OUT_OF_RANGE.
    #[arg(long, env = "CALLSCOPE_EVENT_RETENTION_HOURS", default_value_t = 72, value_parser = clap::value_parser!(u32).range(1..))]
    pub event_retention_hours: u32,

    /// How often a watch reads the event log when no write of this process
    /// woke it, in milliseconds: the most a write made through another
    /// server on the same database waits before a watcher here sees it.
    #[arg(long, env = "CALLSCOPE_WATCH_POLL_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..))]
    pub watch_poll_ms: u64,

    /// A watcher whose stream takes no event for this long, in milliseconds,
    /// is cut off with RESOURCE_EXHAUSTED (it resumes with its last token).
    #[arg(long, env = "CALLSCOPE_WATCH_STALL_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub watch_stall_timeout_ms: u64,
    /// How log lines are written: `text` or `json` (one object a line).
    #[arg(long, env = "CALLSCOPE_LOG_FORMAT", value_enum, default_value_t = crate::logging::LogFormat::Text)]
    pub log_format: crate::logging::LogFormat,

    /// Most RPCs served at once across all connections; beyond it a request
    /// waits at most --max-in-flight-wait-ms, then is answered
    /// RESOURCE_EXHAUSTED with a RetryInfo. Default: twice
    /// --db-max-connections (at least 4), which keeps the pool busy without
    /// a queue in front of it.
    #[arg(long, env = "CALLSCOPE_MAX_IN_FLIGHT", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: Option<u32>,

    /// How long a request beyond --max-in-flight waits for its turn, in
    /// milliseconds (never more than half its own deadline). Only as many
    /// wait as --max-in-flight; one beyond those is refused at once.
    #[arg(long, env = "CALLSCOPE_MAX_IN_FLIGHT_WAIT_MS", default_value_t = 50)]
    pub max_in_flight_wait_ms: u64,

    /// The RetryInfo delay of a request refused past --max-in-flight, in
    /// milliseconds.
    #[arg(
        long,
        env = "CALLSCOPE_OVERLOAD_RETRY_AFTER_MS",
        default_value_t = 1_000
    )]
    pub overload_retry_after_ms: u64,

    /// Requests per second each API key may make on average (fractions
    /// allowed: 0.5 is one every 2 s), over gRPC, gRPC-Web and JSON alike;
    /// beyond it a request is answered RESOURCE_EXHAUSTED (HTTP 429) with a
    /// RetryInfo saying when the key has room again. Unset: no limit.
    /// Applies with `--auth keys` only (`--auth none` has no keys).
    #[arg(long, env = "CALLSCOPE_RATE_LIMIT_PER_KEY", value_parser = positive_rate)]
    pub rate_limit_per_key: Option<f64>,

    /// Requests a key may make at once above --rate-limit-per-key after a
    /// quiet spell. Default: one second's worth of the rate (at least 1).
    #[arg(long, env = "CALLSCOPE_RATE_LIMIT_BURST", requires = "rate_limit_per_key", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: Option<u32>,

    /// On SIGTERM: health turns NOT_SERVING, new connections are refused,
    /// open streams end with UNAVAILABLE, and unary RPCs and webhook requests
    /// in flight have this long (milliseconds) to finish before their
    /// connections are cut.
    #[arg(long, env = "CALLSCOPE_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,

    /// HTTP/2 keepalive: a PING after this long without frames, in
    /// milliseconds; a client that does not answer within 20 s is dropped.
    #[arg(long, env = "CALLSCOPE_HTTP2_KEEPALIVE_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub http2_keepalive_ms: u64,
    #[command(flatten)]
    pub outgoing: Box<OutgoingFlags>,
    #[command(flatten)]
    pub sync: SyncFlags,
}

/// How sources are pulled from vendor query APIs (SyncService).
#[derive(Debug, Clone, Args)]
pub struct SyncFlags {
    /// How long a replica's lease on a source lasts without renewal, in
    /// milliseconds: a crashed replica's source is taken over after this.
    #[arg(long, env = "CALLSCOPE_SYNC_LEASE_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(300..))]
    pub sync_lease_ms: u64,
    /// Vendor requests per second, per source.
    #[arg(long, env = "CALLSCOPE_SYNC_RATE_LIMIT", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub sync_rate_limit: u32,
    /// `record_info` requests in flight at once, per run.
    #[arg(long, env = "CALLSCOPE_SYNC_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub sync_concurrency: u32,
    /// Most list pages one task may take in one window.
    #[arg(long, env = "CALLSCOPE_SYNC_MAX_PAGES", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub sync_max_pages: u32,
    /// Largest vendor answer read, in bytes.
    #[arg(long, env = "CALLSCOPE_SYNC_MAX_PAGE_BYTES", default_value_t = 50 * 1024 * 1024)]
    pub sync_max_page_bytes: usize,
    /// Longest one vendor request may take, in milliseconds.
    #[arg(long, env = "CALLSCOPE_SYNC_REQUEST_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub sync_request_timeout_ms: u64,
    /// Retries one run may make in all (5xx, 429, timeouts).
    #[arg(long, env = "CALLSCOPE_SYNC_RETRY_BUDGET", default_value_t = 50)]
    pub sync_retry_budget: u32,
    /// First retry wait, in milliseconds (doubled each retry, with jitter).
    #[arg(long, env = "CALLSCOPE_SYNC_BACKOFF_MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub sync_backoff_ms: u64,
    /// How often the scheduler looks for due sources, in milliseconds; 0
    /// turns scheduled pulls off on this replica.
    #[arg(long, env = "CALLSCOPE_SYNC_SCHEDULER_MS", default_value_t = 1_000)]
    pub sync_scheduler_ms: u64,
}

impl Default for SyncFlags {
    fn default() -> Self {
        Self {
            sync_lease_ms: 60_000,
            sync_rate_limit: 50,
            sync_concurrency: 8,
            sync_max_pages: 10_000,
            sync_max_page_bytes: 50 * 1024 * 1024,
            sync_request_timeout_ms: 10_000,
            sync_retry_budget: 50,
            sync_backoff_ms: 200,
            sync_scheduler_ms: 1_000,
        }
    }
}

impl SyncFlags {
    pub fn settings(&self) -> crate::sync::SyncSettings {
        crate::sync::SyncSettings {
            lease: Duration::from_millis(self.sync_lease_ms),
            max_pages: self.sync_max_pages,
            max_page_bytes: self.sync_max_page_bytes,
            concurrency: self.sync_concurrency as usize,
            rate_per_second: self.sync_rate_limit,
            request_timeout: Duration::from_millis(self.sync_request_timeout_ms),
            retry_budget: self.sync_retry_budget,
            base_backoff: Duration::from_millis(self.sync_backoff_ms),
            scheduler_tick: Duration::from_millis(self.sync_scheduler_ms),
            ..crate::sync::SyncSettings::default()
        }
    }
}

fn parse_response_bytes(text: &str) -> Result<usize, String> {
    let bytes: usize = text.parse().map_err(|e| format!("`{text}`: {e}"))?;
    if (64 * 1024..=MAX_RESPONSE_BYTES).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(format!("must be between 65536 and {MAX_RESPONSE_BYTES}"))
    }
}

impl ServeConfig {
    /// Defaults for a given database and address, as used by tests.
    pub fn new(database_url: impl Into<String>, grpc_addr: SocketAddr) -> Self {
        Self {
            database_url: database_url.into(),
            database_read_url: None,
            grpc_addr,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_body_limit: 2 * 1024 * 1024,
            sources: SourceFlags::default(),
            db_max_connections: 8,
            db_acquire_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            max_concurrent_requests: 256,
            health_interval_ms: 2_000,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            exact_total_limit: MAX_EXACT_TOTAL,
            tls: crate::tls::TlsFlags::default(),
            outgoing: Box::default(),
            cors_origins: Vec::new(),
            auth: AuthMode::None,
            retention_days: None,
            quarantine_retention_days: 30,
            retention_interval_ms: 3_600_000,
            quarantine_max_rows: 10_000,
            quarantine_max_bytes: 256 * 1024 * 1024,
            sync: SyncFlags::default(),
            log_format: crate::logging::LogFormat::Text,
            max_in_flight: None,
            max_in_flight_wait_ms: 50,
            overload_retry_after_ms: 1_000,
            rate_limit_per_key: None,
            rate_limit_burst: None,
            shutdown_grace_ms: 10_000,
            http2_keepalive_ms: 60_000,
            event_retention_hours: 72,
            watch_poll_ms: 250,
            watch_stall_timeout_ms: 10_000,
        }
    }

    /// The global bound on RPCs served at once (`--max-in-flight`).
    pub fn max_in_flight(&self) -> usize {
        match self.max_in_flight {
            Some(max) => max as usize,
            None => (self.db_max_connections as usize * 2).max(4),
        }
    }

    /// The per-key rate limit, when `--rate-limit-per-key` is set.
    pub fn rate_limit(&self) -> Option<crate::api::rate_limit::RateLimit> {
        let per_second = self.rate_limit_per_key?;
        // The flag's parser refused what `new` would: this is `Some`.
        crate::api::rate_limit::RateLimit::new(per_second, self.rate_limit_burst).ok()
    }

    /// How watches poll the event log and when they cut a watcher off.
    pub fn watch_settings(&self) -> crate::service::events::WatchSettings {
        crate::service::events::WatchSettings {
            poll: Duration::from_millis(self.watch_poll_ms),
            stall: Duration::from_millis(self.watch_stall_timeout_ms),
        }
    }

    /// The quarantine's caps per tenant and source.
    pub fn quarantine_limits(&self) -> crate::domain::erasure::QuarantineLimits {
        crate::domain::erasure::QuarantineLimits {
            max_rows: self.quarantine_max_rows,
            max_bytes: self.quarantine_max_bytes,
        }
    }

    /// What the retention purge removes, and how often it looks.
    pub fn retention_policy(&self) -> crate::retention::RetentionPolicy {
        crate::retention::RetentionPolicy {
            call_days: self.retention_days,
            quarantine_days: (self.quarantine_retention_days > 0)
                .then_some(self.quarantine_retention_days),
            interval: Duration::from_millis(self.retention_interval_ms),
        }
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            url: self.database_url.clone(),
            read_url: self.database_read_url.clone(),
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
            .field(
                "database_read_url",
                &self.database_read_url.as_deref().map(crate::store::redact),
            )
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .field("http_body_limit", &self.http_body_limit)
            .field("default_region", &self.sources.default_region.to_string())
            .field("source_timezones", &self.sources.source_timezones)
            .field("db_max_connections", &self.db_max_connections)
            .field("db_acquire_timeout_ms", &self.db_acquire_timeout_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("health_interval_ms", &self.health_interval_ms)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("exact_total_limit", &self.exact_total_limit)
            .field("tls", &self.tls)
            .field("cors_origins", &self.cors_origins)
            .field("auth", &self.auth)
            .field("retention_days", &self.retention_days)
            .field("quarantine_retention_days", &self.quarantine_retention_days)
            .field("retention_interval_ms", &self.retention_interval_ms)
            .field("event_retention_hours", &self.event_retention_hours)
            .field("quarantine_max_rows", &self.quarantine_max_rows)
            .field("quarantine_max_bytes", &self.quarantine_max_bytes)
            .field("log_format", &self.log_format)
            .field("max_in_flight", &self.max_in_flight())
            .field("max_in_flight_wait_ms", &self.max_in_flight_wait_ms)
            .field("overload_retry_after_ms", &self.overload_retry_after_ms)
            .field("rate_limit", &self.rate_limit())
            .field("shutdown_grace_ms", &self.shutdown_grace_ms)
            .field("http2_keepalive_ms", &self.http2_keepalive_ms)
            .field("sync", &self.sync)
            .field("outgoing", &self.outgoing)
            .finish()
    }
}

/// `serve` flags of outgoing events: webhooks and the NATS sink.
#[derive(Clone, Args)]
pub struct OutgoingFlags {
    /// Let subscriptions target loopback, private and link-local addresses
    /// (development, tests, receivers on the same network).
    #[arg(long, env = "CALLSCOPE_ALLOW_PRIVATE_WEBHOOKS")]
    pub allow_private_webhooks: bool,

    /// Longest a webhook POST may take, connecting included, in
    /// milliseconds; a slower answer counts as a failed attempt.
    #[arg(long, env = "CALLSCOPE_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_timeout_ms: u64,

    /// Delay after a webhook's first failed attempt, in milliseconds;
    /// doubled after each further one (with jitter).
    #[arg(long, env = "CALLSCOPE_WEBHOOK_RETRY_BASE_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_retry_base_ms: u64,

    /// Longest delay between two attempts, in milliseconds.
    #[arg(long, env = "CALLSCOPE_WEBHOOK_RETRY_MAX_MS", default_value_t = 3_600_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_retry_max_ms: u64,

    /// How long an event is retried from its first attempt before it is
    /// given up and the subscription marked failing, in milliseconds.
    #[arg(long, env = "CALLSCOPE_WEBHOOK_RETRY_FOR_MS", default_value_t = 86_400_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_retry_for_ms: u64,

    /// How often the delivery workers look for new events, in milliseconds.
    #[arg(long, env = "CALLSCOPE_EVENTS_POLL_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub events_poll_ms: u64,

    /// Also publish every event to NATS JetStream at this URL
    /// (`nats://127.0.0.1:4222`).
    #[arg(long, env = "CALLSCOPE_EVENTS_NATS_URL")]
    pub events_nats_url: Option<String>,

    /// The JetStream stream events are published to; created when missing.
    #[arg(
        long,
        env = "CALLSCOPE_EVENTS_NATS_STREAM",
        default_value = "CALLSCOPE_EVENTS"
    )]
    pub events_nats_stream: String,

    /// First token of the NATS subjects: `<prefix>.<tenant>.calls.<type>`.
    #[arg(
        long,
        env = "CALLSCOPE_EVENTS_NATS_SUBJECT_PREFIX",
        default_value = "callscope"
    )]
    pub events_nats_subject_prefix: String,
}

impl Default for OutgoingFlags {
    fn default() -> Self {
        Self {
            allow_private_webhooks: false,
            webhook_timeout_ms: 10_000,
            webhook_retry_base_ms: 5_000,
            webhook_retry_max_ms: 3_600_000,
            webhook_retry_for_ms: 86_400_000,
            events_poll_ms: 1_000,
            events_nats_url: None,
            events_nats_stream: "CALLSCOPE_EVENTS".to_owned(),
            events_nats_subject_prefix: "callscope".to_owned(),
        }
    }
}

// The NATS URL may hold a password: Debug shows it redacted.
impl std::fmt::Debug for OutgoingFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingFlags")
            .field("allow_private_webhooks", &self.allow_private_webhooks)
            .field("webhook_timeout_ms", &self.webhook_timeout_ms)
            .field("webhook_retry_base_ms", &self.webhook_retry_base_ms)
            .field("webhook_retry_max_ms", &self.webhook_retry_max_ms)
            .field("webhook_retry_for_ms", &self.webhook_retry_for_ms)
            .field("events_poll_ms", &self.events_poll_ms)
            .field(
                "events_nats_url",
                &self.events_nats_url.as_deref().map(crate::store::redact),
            )
            .field("events_nats_stream", &self.events_nats_stream)
            .field(
                "events_nats_subject_prefix",
                &self.events_nats_subject_prefix,
            )
            .finish()
    }
}

impl OutgoingFlags {
    pub fn retry_policy(&self) -> crate::domain::subscription::RetryPolicy {
        crate::domain::subscription::RetryPolicy {
            base: Duration::from_millis(self.webhook_retry_base_ms),
            max: Duration::from_millis(self.webhook_retry_max_ms),
            give_up_after: Duration::from_millis(self.webhook_retry_for_ms),
        }
    }

    pub fn url_policy(&self, own: Vec<SocketAddr>) -> crate::service::subscriptions::UrlPolicy {
        crate::service::subscriptions::UrlPolicy {
            allow_private: self.allow_private_webhooks,
            own,
        }
    }
}

/// `--rate-limit-per-key`: a positive, finite number of requests per second.
fn positive_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of requests per second"))?;
    crate::api::rate_limit::RateLimit::new(rate, None).map(|limit| limit.per_second)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn serve(args: &[&str]) -> Result<ServeConfig, clap::Error> {
        let argv = ["callscope", "serve"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Serve(config) => Ok(config),
            _ => unreachable!("parsed serve"),
        }
    }

    #[test]
    fn max_response_bytes_defaults_below_a_default_client_limit() {
        let config = serve(&[]).unwrap();
        assert_eq!(config.max_response_bytes, 3584 * 1024);
        assert!(config.max_response_bytes < 4 * 1024 * 1024);
        let config = serve(&["--max-response-bytes", "1048576"]).unwrap();
        assert_eq!(config.max_response_bytes, 1 << 20);
        assert!(serve(&["--max-response-bytes", "100"]).is_err());
        assert!(serve(&["--max-response-bytes", "1000000000"]).is_err());
    }

    #[test]
    fn rate_limit_flags() {
        assert_eq!(serve(&[]).unwrap().rate_limit(), None);
        let limit = serve(&["--rate-limit-per-key", "2.5"])
            .unwrap()
            .rate_limit();
        assert_eq!(limit.map(|l| (l.per_second, l.burst)), Some((2.5, 3)));
        let limit = serve(&["--rate-limit-per-key", "10", "--rate-limit-burst", "50"])
            .unwrap()
            .rate_limit();
        assert_eq!(limit.map(|l| (l.per_second, l.burst)), Some((10.0, 50)));
        for bad in [
            &["--rate-limit-per-key", "0"][..],
            &["--rate-limit-per-key", "-1"],
            &["--rate-limit-per-key", "inf"],
            &["--rate-limit-per-key", "lots"],
            &["--rate-limit-per-key", "5", "--rate-limit-burst", "0"],
            // A burst without a rate limits nothing: refused, not ignored.
            &["--rate-limit-burst", "5"],
        ] {
            assert!(serve(bad).is_err(), "{bad:?}");
        }
    }
}
