//! Wiring: the store, the gRPC services with health and reflection, tower
//! limits, and graceful shutdown on an already-bound listener.
//!
//! Shutdown: health turns NOT_SERVING first, both listeners stop accepting,
//! open gRPC streams end with UNAVAILABLE (`api::ops`), and what is still
//! running after `--shutdown-grace-ms` is cut.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::util::{BoxCloneSyncService, option_layer};

use crate::api::auth::AuthLayer;
use crate::api::ops::{Admission, DatabaseGate, MethodTable, OpsLayer};
use crate::api::rate_limit::RateLimitLayer;
use crate::api::{
    AdminApi, AnalyticsApi, ApiContext, CallApi, CatalogApi, IngestApi, SubscriptionApi, SyncApi,
};
use crate::config::ServeConfig;
use crate::domain::limits::{
    MAX_INGEST_REQUEST_BYTES, MAX_QUERY_REQUEST_BYTES, MAX_RESPONSE_BYTES,
};
use crate::proto::{
    FILE_DESCRIPTOR_SET, admin_service_server::AdminServiceServer,
    analytics_service_server::AnalyticsServiceServer, call_service_server::CallServiceServer,
    catalog_service_server::CatalogServiceServer, ingest_service_server::IngestServiceServer,
    subscription_service_server::SubscriptionServiceServer, sync_service_server::SyncServiceServer,
};
use crate::service::CallScope;
use crate::store::Store;

/// The services health reports on, besides the overall `""`.
const SERVICE_NAMES: &[&str] = &[
    "callscope.v1.CallService",
    "callscope.v1.IngestService",
    "callscope.v1.AnalyticsService",
    "callscope.v1.AdminService",
    "callscope.v1.CatalogService",
    "callscope.v1.SyncService",
    "callscope.v1.SubscriptionService",
];

/// A built server: the store is connected and migrated, the port is bound.
pub struct Application {
    config: ServeConfig,
    listener: TcpListener,
    http_listener: TcpListener,
    service: CallScope,
    tls: Option<crate::tls::Tls>,
}

impl Application {
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        crate::auth::check_exposure(
            config.auth,
            &[
                ("--grpc-addr", config.grpc_addr),
                ("--http-addr", config.http_addr),
            ],
        )?;
        // Off the runtime's workers and not awaited: start-up does not wait
        // for it, and a request that needs it first waits on the same
        // initialisation.
        tokio::task::spawn_blocking(crate::domain::phone::warm_up);
        let tls = crate::tls::Tls::load(&config.tls)?;
        let store = Store::connect(&config.store_options())
            .await
            .with_context(|| format!("opening {}", crate::store::redact(&config.database_url)))?;
        let listener = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("binding gRPC address {}", config.grpc_addr))?;
        let http_listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("binding HTTP address {}", config.http_addr))?;
        // Webhooks never go to callscope's own listeners.
        let own = [&listener, &http_listener]
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let service = CallScope::new(store, config.sources.settings())
            .with_max_response_bytes(config.max_response_bytes)
            .with_exact_total_limit(config.exact_total_limit)
            .with_quarantine_limits(config.quarantine_limits())
            .with_sync(config.sync.settings())
            .with_url_policy(config.outgoing.url_policy(own));
        Ok(Self {
            config,
            listener,
            http_listener,
            service,
            tls,
        })
    }

    /// The address the HTTP webhooks listen on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_listener
            .local_addr()
            .unwrap_or(self.config.http_addr)
    }

    /// The address the gRPC server listens on (the real port when 0 was asked).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.grpc_addr)
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // One shutdown signal for both listeners (and the server streams).
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let context = ApiContext {
            service: self
                .service
                .clone()
                .with_shutdown(stop_rx.clone())
                .with_watch_settings(self.config.watch_settings()),
            region: self.config.sources.default_region,
        };

        let metrics = self.service.metrics().clone();
        let (reporter, health_service) = tonic_health::server::health_reporter();
        set_health(&reporter, ServingStatus::Serving).await;

        // Health says NOT_SERVING before anything stops, so balancers move
        // traffic away.
        let stop_reporter = reporter.clone();
        tokio::spawn(async move {
            shutdown.await;
            set_health(&stop_reporter, ServingStatus::NotServing).await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        // Resolves `grace` after the signal: what still runs then is cut.
        let grace = Duration::from_millis(self.config.shutdown_grace_ms);
        let grace_over = move |rx: tokio::sync::watch::Receiver<bool>| async move {
            stopped(rx).await;
            tokio::time::sleep(grace).await;
        };
        let http_addr = self.http_addr();
        let addr = self.grpc_addr();
        let auth = self.config.auth.authenticator(self.service.store());

        let health_interval = Duration::from_millis(self.config.health_interval_ms);
        let database = Arc::new(DatabaseGate::new(health_interval));
        let admission = Admission::new(
            self.config.max_in_flight(),
            Duration::from_millis(self.config.max_in_flight_wait_ms),
            Duration::from_millis(self.config.overload_retry_after_ms),
        );
        collect_gauges(
            &metrics,
            self.service.store().clone(),
            admission.clone(),
            database.clone(),
        );
        let watchdog = tokio::spawn(watch_database(
            self.service.store().clone(),
            reporter,
            health_interval,
            database.clone(),
            stop_rx.clone(),
        ));
        let ops = OpsLayer::new(
            metrics.clone(),
            MethodTable::from_descriptor_sets(&[
                FILE_DESCRIPTOR_SET,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            ]),
            admission,
            database,
            Duration::from_millis(self.config.request_timeout_ms),
            stop_rx.clone(),
        );

        let policy = self.config.retention_policy();
        let retention = policy.is_active().then(|| {
            tokio::spawn(crate::retention::run(
                self.service.store().clone(),
                policy,
                stop_rx.clone(),
            ))
        });

        // Sources with an interval are pulled by themselves; the lease keeps
        // replicas from pulling one source twice.
        let scheduler = tokio::spawn(crate::sync::scheduler::run(
            self.service.clone(),
            stop_rx.clone(),
        ));

        let event_retention = tokio::spawn(crate::retention::run_events(
            self.service.store().clone(),
            self.config.event_retention_hours,
            Duration::from_millis(self.config.retention_interval_ms),
            stop_rx.clone(),
        ));

        // Notations leave the phone cache at their age, so that a number
        // erased through another replica leaves this one's memory too.
        let notation_sweeper = tokio::spawn(every(NOTATION_SWEEP_PERIOD, || {
            crate::domain::phone::forget_notations_older_than(
                crate::domain::phone::NOTATIONS_MAX_AGE,
            );
        }));

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let routes = Routes::new(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                IngestServiceServer::new(IngestApi(context.clone()))
                    .max_decoding_message_size(MAX_INGEST_REQUEST_BYTES),
            )
            .add_service(
                CallServiceServer::new(CallApi(context.clone()))
                    .max_decoding_message_size(MAX_QUERY_REQUEST_BYTES)
                    .max_encoding_message_size(MAX_RESPONSE_BYTES),
            )
            .add_service(
                AnalyticsServiceServer::new(AnalyticsApi(context.clone()))
                    .max_decoding_message_size(MAX_QUERY_REQUEST_BYTES),
            )
            .add_service(
                CatalogServiceServer::new(CatalogApi(context.clone()))
                    .max_decoding_message_size(MAX_QUERY_REQUEST_BYTES)
                    .max_encoding_message_size(MAX_RESPONSE_BYTES),
            )
            .add_service(
                AdminServiceServer::new(AdminApi(context.clone()))
                    .max_decoding_message_size(MAX_QUERY_REQUEST_BYTES),
            )
            .add_service(
                SubscriptionServiceServer::new(SubscriptionApi(context.clone()))
                    .max_decoding_message_size(MAX_QUERY_REQUEST_BYTES),
            )
            .add_service(
                SyncServiceServer::new(SyncApi(context.clone()))
                    .max_decoding_message_size(MAX_QUERY_REQUEST_BYTES),
            );
        // The layers every RPC goes through, over gRPC and over JSON alike
        // (the JSON API calls this same stack in-process): request ids, the
        // span and log line, metrics, the deadline, the in-flight bound and
        // failing fast, around keys and roles, so a refused key is counted
        // and an outage does not wait on the key look-up. The auth layer lets
        // health and reflection through without a key; the per-key rate limit
        // follows it.
        let rpc_layers = tower::ServiceBuilder::new()
            .layer(ops)
            .layer(AuthLayer::new(auth.clone()))
            // Inside authentication: it counts per key.
            .layer(RateLimitLayer::new(
                self.config.rate_limit(),
                metrics.clone(),
            ))
            // A body that ends inside a message is the client's mistake.
            .layer(crate::api::framing::WholeMessagesLayer);
        let request_timeout = Duration::from_millis(self.config.request_timeout_ms);
        let gateway = crate::http::connect::Gateway::new(
            BoxCloneSyncService::new(
                tower::ServiceBuilder::new()
                    .map_response(|r: http::Response<_>| r.map(tonic::body::Body::new))
                    .service(rpc_layers.service(routes.clone())),
            ),
            request_timeout,
        );
        let cors = crate::http::connect::cors_layer(&self.config.cors_origins)?;

        let hooks = crate::http::router(
            self.service.clone(),
            self.config.http_body_limit,
            auth.clone(),
        )
        .merge(crate::http::connect::router(gateway).layer(option_layer(cors.clone())));
        let hooks = crate::http::ops::with_operations(hooks, metrics.clone());
        // A slow or idle webhook client cannot hold shutdown past the grace.
        let http = match &self.tls {
            None => tokio::spawn(cut_at(
                grace_over(stop_rx.clone()),
                // Nagle off, as on the gRPC port and the TLS listener: an
                // answer written in more than one piece must not wait 40 ms
                // for the client's delayed ACK.
                axum::serve(
                    self.http_listener.tap_io(|stream| {
                        let _ = stream.set_nodelay(true);
                    }),
                    hooks,
                )
                .with_graceful_shutdown(stopped(stop_rx.clone()))
                .into_future(),
            )),
            Some(tls) => tokio::spawn(cut_at(
                grace_over(stop_rx.clone()),
                axum::serve(tls.http_listener(self.http_listener), hooks)
                    .with_graceful_shutdown(stopped(stop_rx.clone()))
                    .into_future(),
            )),
        };

        tracing::info!(%addr, %http_addr, tls = self.tls.is_some(), config = ?self.config, "callscope listening");
        let server = match &self.tls {
            Some(tls) => Server::builder()
                .tls_config(tls.grpc())
                .context("gRPC TLS configuration")?,
            None => Server::builder(),
        };
        // Part of this task, not spawned: when it ends (even aborted), so
        // does every delivery in flight.
        let outgoing = crate::delivery::run_outgoing(
            self.service.store().clone(),
            &self.config.outgoing,
            self.service.url_policy().clone(),
            metrics.clone(),
            stop_rx.clone(),
        );
        let keepalive = Duration::from_millis(self.config.http2_keepalive_ms);
        let grpc = server
            // gRPC-Web (browsers) comes over HTTP/1.1 as well as HTTP/2.
            .accept_http1(true)
            .timeout(request_timeout)
            .concurrency_limit_per_connection(self.config.max_concurrent_requests)
            // A client opening more streams than it may run is told so by
            // HTTP/2 itself instead of queueing them.
            .max_concurrent_streams(u32::try_from(self.config.max_concurrent_requests).ok())
            // Dead peers (a NAT that forgot the connection) are noticed and
            // their streams freed.
            .http2_keepalive_interval(Some(keepalive))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .tcp_keepalive(Some(keepalive))
            .layer(option_layer(cors))
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(rpc_layers)
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                // Without TCP_NODELAY a small answer waits for the client's
                // delayed ACK: about 40 ms added to every unary RPC.
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                stopped(stop_rx.clone()),
            );
        let (result, ()) = tokio::join!(cut_at(grace_over(stop_rx), grpc), outgoing);
        watchdog.abort();
        // A run in flight stops here; its last committed page is its checkpoint.
        scheduler.abort();
        event_retention.abort();
        notation_sweeper.abort();
        if let Some(retention) = retention {
            // It stops on the same signal; a purge batch in flight rolls back.
            retention.abort();
        }
        match http.await {
            Ok(Some(Ok(()))) => {}
            Ok(None) => tracing::warn!("HTTP requests still open at the grace deadline were cut"),
            Ok(Some(Err(e))) => tracing::error!(error = %e, "http listener failed"),
            Err(e) => tracing::error!(error = %e, "http listener task failed"),
        }
        let result = match result {
            Some(result) => result,
            None => {
                tracing::warn!("RPCs still open at the grace deadline were cut");
                Ok(())
            }
        };
        tracing::info!("callscope stopped");
        result.context("gRPC server failed")
    }
}

/// How often the phone cache is rid of notations past their age.
const NOTATION_SWEEP_PERIOD: Duration = Duration::from_secs(60);

/// Runs `work` now and then every `period`, until dropped.
async fn every(period: Duration, work: impl Fn()) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        work();
    }
}

/// Runs `work` until it ends (`Some`) or `deadline` comes first (`None`; the
/// work is dropped, cutting its connections).
async fn cut_at<T>(deadline: impl Future<Output = ()>, work: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        out = work => Some(out),
        () = deadline => None,
    }
}

/// Gauges read at each scrape: pools, in-flight RPCs, the database's health.
fn collect_gauges(
    metrics: &crate::metrics::Metrics,
    store: Store,
    admission: Admission,
    database: Arc<DatabaseGate>,
) {
    metrics.add_collector(move || {
        for pool in store.pools() {
            metrics::gauge!("callscope_db_pool_connections", "pool" => pool.name)
                .set(f64::from(pool.size));
            metrics::gauge!("callscope_db_pool_idle_connections", "pool" => pool.name)
                .set(pool.idle as f64);
            metrics::gauge!("callscope_db_pool_max_connections", "pool" => pool.name)
                .set(f64::from(pool.max));
        }
        metrics::gauge!("callscope_grpc_in_flight").set(admission.in_flight() as f64);
        metrics::gauge!("callscope_grpc_waiting").set(admission.waiting() as f64);
        metrics::gauge!("callscope_grpc_max_in_flight").set(admission.max() as f64);
        metrics::gauge!("callscope_database_up").set(if database.is_down() { 0.0 } else { 1.0 });
    });
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        reporter.set_service_status(*name, status).await;
    }
}

/// Turns health to NOT_SERVING while the database cannot be reached, and back,
/// and tells `gate`, so RPCs fail fast meanwhile. A ping that takes longer
/// than `interval` counts as a failure. Once shutdown begins health stays
/// NOT_SERVING.
async fn watch_database(
    store: Store,
    reporter: HealthReporter,
    interval: Duration,
    gate: Arc<DatabaseGate>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut serving = true;
    let mut failures = 0u32;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let ok = tokio::time::timeout(interval, store.ping())
            .await
            .is_ok_and(|r| r.is_ok());
        // RPCs fail fast only after two failed pings in a row: one slow
        // ping on a busy machine must not refuse traffic to a working
        // database. A probe RPC may see the recovery first (`api::ops`).
        failures = if ok { 0 } else { failures + 1 };
        gate.set_down(failures >= 2);
        if *stop.borrow() {
            return;
        }
        if ok != serving {
            serving = ok;
            tracing::warn!(serving, "database health changed");
            let status = if ok {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            set_health(&reporter, status).await;
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received, finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn every_runs_its_work_at_once_then_each_period() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let task = tokio::spawn(super::every(Duration::from_secs(60), move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        task.abort();
    }
}
