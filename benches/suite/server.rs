//! The server under test, in-process on port 0, and the throw-away databases
//! it runs on.

use anyhow::{Context, bail};
use sqlx::{Connection, Executor, PgConnection};
use tonic::transport::Channel;

use callscope::config::ServeConfig;

/// Database connections of the server and of the direct baselines alike.
pub const POOL: u32 = 8;

/// The largest message the suite's gRPC clients take or send: a 1,000-call
/// page, an export message, an ingest batch.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

pub struct Running {
    addr: std::net::SocketAddr,
    /// The HTTP port: webhooks and the JSON API.
    pub http_addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Builds the application on `url` (applying the migrations) and serves it.
    pub async fn start(url: &str) -> anyhow::Result<Self> {
        Self::start_with(url, |_| {}).await
    }

    /// Like [`Running::start`], the configuration adjusted by `adjust` first
    /// (`--auth keys`, for one).
    pub async fn start_with(
        url: &str,
        adjust: impl FnOnce(&mut ServeConfig),
    ) -> anyhow::Result<Self> {
        let mut config = ServeConfig::new(url, "127.0.0.1:0".parse()?);
        config.db_max_connections = POOL;
        // The suite measures latency at up to 32 clients, not shedding
        // (the overload benchmark does that): admit them all.
        config.max_in_flight = Some(1024);
        adjust(&mut config);
        let app = callscope::Application::build(config).await?;
        let addr = app.grpc_addr();
        let http_addr = app.http_addr();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Ok(Self {
            addr,
            http_addr,
            stop,
            task,
        })
    }

    /// Creates the schema of `url` by starting the server once.
    pub async fn migrate(url: &str) -> anyhow::Result<()> {
        Self::start(url).await?.shutdown().await
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(format!("http://{}", self.addr))?
            .connect()
            .await?)
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

/// A fresh PostgreSQL database on the server of `server_url`, dropped by
/// [`PgDatabase::drop_now`].
pub struct PgDatabase {
    admin: PgConnection,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(server_url: &str) -> anyhow::Result<Self> {
        let name = format!("callscope_bench_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(server_url)
            .await
            .context("connecting to the PostgreSQL server")?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await?;
        let url = match server_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => bail!("the PostgreSQL URL has no database name"),
        };
        eprintln!("[postgres] database {name}");
        Ok(Self { admin, name, url })
    }

    pub async fn drop_now(mut self) -> anyhow::Result<()> {
        self.admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .await?;
        Ok(())
    }
}
