//! The server's Prometheus metrics: one registry per [`Application`](crate::Application),
//! rendered by `GET /metrics` on the HTTP port.
//!
//! The registry is not the `metrics` crate's global recorder: a process
//! (the test binary) may run many servers, and each must count only its
//! own requests. Code records through [`Metrics::with`], which makes this
//! registry the local recorder for a synchronous closure, so the ordinary
//! `metrics::counter!` macros work inside it.
//!
//! Names: the grpc-ecosystem ones (`grpc_server_*`, as go-grpc-prometheus
//! writes them, so existing dashboards work) and callscope's own
//! (`callscope_*`). Labels only take bounded values (method names from the
//! descriptor set, status codes, sources, outcomes), never client text.

use std::sync::{Arc, Mutex};

use crate::domain::sync::SyncRunReport;
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Histogram buckets in seconds: go-grpc-prometheus's defaults, so the
/// dashboards' `histogram_quantile` sees the same boundaries.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

type Collector = Box<dyn Fn() + Send + Sync>;

/// One server's metrics. Cheap to clone; every clone records into the same
/// registry.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Gauges read at scrape time (pool sizes, in-flight RPCs).
    collectors: Mutex<Vec<Collector>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            // The buckets are a fixed non-empty list: this cannot fail.
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Self(Arc::new(Inner {
            recorder,
            handle,
            collectors: Mutex::new(Vec::new()),
        }));
        metrics.with(describe);
        metrics
    }

    /// Runs `f` with this registry as the `metrics` crate's recorder, so the
    /// `counter!`/`gauge!`/`histogram!` macros inside it record here.
    pub fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.0.recorder, f)
    }

    /// Adds a function run before each scrape, to set gauges from live
    /// figures. It runs inside [`Metrics::with`].
    pub fn add_collector(&self, collect: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut collectors) = self.0.collectors.lock() {
            collectors.push(Box::new(collect));
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        if let Ok(collectors) = self.0.collectors.lock() {
            self.with(|| collectors.iter().for_each(|collect| collect()));
        }
        self.0.handle.render()
    }

    /// An RPC arrived (`grpc_server_started_total`).
    pub fn rpc_started(&self, rpc: &RpcName) {
        self.with(|| {
            counter!(
                "grpc_server_started_total",
                "grpc_type" => rpc.kind,
                "grpc_service" => rpc.service.clone(),
                "grpc_method" => rpc.method.clone()
            )
            .increment(1);
        });
    }

    /// An RPC finished with `code` after `seconds`
    /// (`grpc_server_handled_total`, `grpc_server_handling_seconds`).
    pub fn rpc_handled(&self, rpc: &RpcName, code: tonic::Code, seconds: f64) {
        self.with(|| {
            counter!(
                "grpc_server_handled_total",
                "grpc_type" => rpc.kind,
                "grpc_service" => rpc.service.clone(),
                "grpc_method" => rpc.method.clone(),
                "grpc_code" => code_name(code)
            )
            .increment(1);
            histogram!(
                "grpc_server_handling_seconds",
                "grpc_type" => rpc.kind,
                "grpc_service" => rpc.service.clone(),
                "grpc_method" => rpc.method.clone()
            )
            .record(seconds);
        });
    }

    /// An RPC refused before it ran: `overload` (past `--max-in-flight`),
    /// `rate_limit` (its key past `--rate-limit-per-key`) or `database_down`
    /// (failed fast during an outage).
    pub fn rpc_shed(&self, reason: &'static str) {
        self.with(|| counter!("callscope_grpc_shed_total", "reason" => reason).increment(1));
    }

    /// An HTTP request on the webhook port was answered.
    pub fn http_handled(&self, route: String, method: String, status: u16, seconds: f64) {
        self.with(|| {
            counter!(
                "callscope_http_requests_total",
                "route" => route.clone(),
                "method" => method.clone(),
                "status" => status.to_string()
            )
            .increment(1);
            histogram!(
                "callscope_http_request_duration_seconds",
                "route" => route,
                "method" => method
            )
            .record(seconds);
        });
    }

    /// `count` records of `source` were stored (or not) with `outcome`
    /// (`inserted`, `updated`, `unchanged`, `erased`, `rejected`).
    pub fn ingest_records(&self, source: &'static str, outcome: &'static str, count: u64) {
        if count == 0 {
            return;
        }
        self.with(|| {
            counter!(
                "callscope_ingest_records_total",
                "source" => source,
                "outcome" => outcome
            )
            .increment(count);
        });
    }

    /// One finished pull of a sync source: its pages, vendor requests,
    /// retries, errors and records by outcome, and its lag (seconds from the
    /// newest vendor `updated_at` seen to now), labelled by tenant and source.
    pub fn sync_run(&self, tenant: &str, report: &SyncRunReport, lag_seconds: Option<f64>) {
        let labels = [
            ("tenant", tenant.to_owned()),
            ("sync_source", report.name.clone()),
        ];
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        self.with(|| {
            counter!("callscope_sync_runs_total", &labels).increment(1);
            counter!("callscope_sync_pages_total", &labels).increment(count(report.pages));
            counter!("callscope_sync_vendor_requests_total", &labels)
                .increment(count(report.vendor_requests));
            counter!("callscope_sync_retries_total", &labels).increment(count(report.retries));
            counter!("callscope_sync_errors_total", &labels).increment(count(report.errors));
            for (outcome, n) in [
                ("inserted", report.inserted),
                ("updated", report.updated),
                ("unchanged", report.unchanged),
                ("rejected", report.rejected),
            ] {
                let mut labels = labels.to_vec();
                labels.push(("outcome", outcome.to_owned()));
                counter!("callscope_sync_records_total", &labels).increment(count(n));
            }
            if let Some(lag) = lag_seconds {
                gauge!("callscope_sync_lag_seconds", &labels).set(lag);
            }
        });
    }

    /// One webhook POST (an attempt at one event) finished after `seconds`
    /// with `outcome`: `delivered` (a 2xx), `retried` (failed, tried again
    /// later) or `failed` (failed, and its retries ran out: given up).
    /// Labelled by tenant only: URLs may carry tokens, and subscription ids
    /// would grow the label set with every subscription made.
    pub fn webhook_attempt(&self, tenant: &str, outcome: &'static str, seconds: f64) {
        self.with(|| {
            counter!(
                "callscope_webhook_deliveries_total",
                "tenant" => tenant.to_owned(),
                "outcome" => outcome
            )
            .increment(1);
            histogram!(
                "callscope_webhook_delivery_seconds",
                "tenant" => tenant.to_owned()
            )
            .record(seconds);
        });
    }

    /// How many events of the tenant's log the furthest-behind subscription
    /// has still to pass (deliver, give up or skip as not matching).
    pub fn webhook_lag(&self, tenant: &str, events: i64) {
        self.with(|| {
            gauge!("callscope_webhook_lag_events", "tenant" => tenant.to_owned())
                .set(events.max(0) as f64);
        });
    }

    /// `count` events of `tenant` sent to JetStream ended with `outcome`:
    /// `published` (stored), `duplicate` (acknowledged, but JetStream already
    /// held that `Nats-Msg-Id`: a re-send after a crash) or `failed` (no
    /// acknowledgement; the batch is sent again after reconnecting).
    pub fn nats_published(&self, tenant: &str, outcome: &'static str, count: u64) {
        if count == 0 {
            return;
        }
        self.with(|| {
            counter!(
                "callscope_nats_published_total",
                "tenant" => tenant.to_owned(),
                "outcome" => outcome
            )
            .increment(count);
        });
    }

    /// How many events of the tenant's log the NATS sink has still to
    /// publish, as this replica last saw it.
    pub fn nats_lag(&self, tenant: &str, events: i64) {
        self.with(|| {
            gauge!("callscope_nats_lag_events", "tenant" => tenant.to_owned())
                .set(events.max(0) as f64);
        });
    }

    /// Whether the NATS sink is connected to JetStream (1) or reconnecting (0).
    pub fn nats_connected(&self, connected: bool) {
        self.with(|| gauge!("callscope_nats_connected").set(if connected { 1.0 } else { 0.0 }));
    }

    /// A write (`operation`) lost a race with a concurrent one and runs
    /// again.
    pub fn write_retried(&self, operation: &'static str) {
        self.with(|| {
            counter!("callscope_write_retries_total", "operation" => operation).increment(1);
        });
    }

    /// `count` records of `source` were kept in quarantine.
    pub fn quarantined(&self, source: &'static str, count: u64) {
        if count == 0 {
            return;
        }
        self.with(|| {
            counter!("callscope_quarantined_records_total", "source" => source).increment(count);
        });
    }
}

fn describe() {
    describe_counter!(
        "callscope_write_retries_total",
        "Writes run again because their transaction lost a race with a concurrent one \
         (a deadlock or serialization conflict PostgreSQL broke by rolling it back), by operation."
    );
    describe_counter!(
        "callscope_sync_runs_total",
        "Finished pulls, by tenant and sync source."
    );
    describe_counter!(
        "callscope_sync_pages_total",
        "Vendor list pages pulled, by tenant and sync source."
    );
    describe_counter!(
        "callscope_sync_vendor_requests_total",
        "Requests made to the vendor, retries included."
    );
    describe_counter!(
        "callscope_sync_retries_total",
        "Vendor requests retried after a 5xx, a 429 or a timeout."
    );
    describe_counter!(
        "callscope_sync_errors_total",
        "Errors of pulls: vanished records, refused tasks, a run stopped early."
    );
    describe_counter!(
        "callscope_sync_records_total",
        "Pulled records stored, by outcome (inserted, updated, unchanged, rejected)."
    );
    describe_gauge!(
        "callscope_sync_lag_seconds",
        Unit::Seconds,
        "Seconds from the newest vendor updated_at a source's last run saw to the run's end."
    );
    describe_counter!(
        "callscope_webhook_deliveries_total",
        "Webhook POSTs, by tenant and outcome (delivered, retried, failed: given up)."
    );
    describe_histogram!(
        "callscope_webhook_delivery_seconds",
        Unit::Seconds,
        "Time of one webhook attempt, address checks and POST, by tenant."
    );
    describe_gauge!(
        "callscope_webhook_lag_events",
        "Events of a tenant's log its furthest-behind subscription has still to pass."
    );
    describe_counter!(
        "callscope_nats_published_total",
        "Events sent to NATS JetStream, by tenant and outcome (published, duplicate, failed)."
    );
    describe_gauge!(
        "callscope_nats_lag_events",
        "Events of a tenant's log the NATS sink has still to publish."
    );
    describe_gauge!(
        "callscope_nats_connected",
        "1 while the NATS sink is connected to JetStream, else 0."
    );
    describe_counter!(
        "grpc_server_started_total",
        "RPCs started on the server, by method."
    );
    describe_counter!(
        "grpc_server_handled_total",
        "RPCs completed on the server, by method and status code."
    );
    describe_histogram!(
        "grpc_server_handling_seconds",
        Unit::Seconds,
        "Time from an RPC's arrival to its status, by method."
    );
    describe_counter!(
        "callscope_grpc_shed_total",
        "RPCs refused before running: overload or rate_limit (RESOURCE_EXHAUSTED), database_down (UNAVAILABLE)."
    );
    describe_gauge!(
        "callscope_grpc_in_flight",
        "RPCs being served now, counted against --max-in-flight."
    );
    describe_gauge!("callscope_grpc_max_in_flight", "The --max-in-flight bound.");
    describe_gauge!(
        "callscope_grpc_waiting",
        "RPCs waiting (at most --max-in-flight-wait-ms) for a place under --max-in-flight."
    );
    describe_counter!(
        "callscope_http_requests_total",
        "HTTP requests on the webhook port, by route and status."
    );
    describe_histogram!(
        "callscope_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency on the webhook port, by route."
    );
    describe_counter!(
        "callscope_ingest_records_total",
        "Vendor and API records ingested, by source and outcome."
    );
    describe_counter!(
        "callscope_quarantined_records_total",
        "Records kept in quarantine, by source."
    );
    describe_gauge!(
        "callscope_db_pool_connections",
        "Open database connections, by pool (on PostgreSQL reader and writer are one pool)."
    );
    describe_gauge!(
        "callscope_db_pool_idle_connections",
        "Idle database connections, by pool."
    );
    describe_gauge!(
        "callscope_db_pool_max_connections",
        "The most connections a pool opens."
    );
    describe_gauge!(
        "callscope_database_up",
        "1 while the health check reaches the database, else 0."
    );
}

/// A gRPC method as metric labels: service and method from the request path
/// when the method is one the server offers, else `unknown` (so a client
/// cannot grow the label set with made-up paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcName {
    pub service: String,
    pub method: String,
    /// go-grpc-prometheus's `grpc_type`: `unary`, `client_stream`,
    /// `server_stream` or `bidi_stream`.
    pub kind: &'static str,
}

impl RpcName {
    pub fn unknown() -> Self {
        Self {
            service: "unknown".into(),
            method: "unknown".into(),
            kind: "unary",
        }
    }

    pub fn is_streaming(&self) -> bool {
        self.kind != "unary"
    }
}

/// A status code as grpc-ecosystem dashboards spell it (Go's `codes.Code`
/// names: `OK`, `InvalidArgument`, `Unavailable`, …).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_registries_count_apart() {
        let a = Metrics::new();
        let b = Metrics::new();
        let rpc = RpcName {
            service: "callscope.v1.CallService".into(),
            method: "ListCalls".into(),
            kind: "unary",
        };
        a.rpc_handled(&rpc, tonic::Code::InvalidArgument, 0.002);
        let text = a.render();
        assert!(
            text.contains(
                "grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"callscope.v1.CallService\",grpc_method=\"ListCalls\",grpc_code=\"InvalidArgument\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("grpc_server_handling_seconds_bucket"),
            "{text}"
        );
        assert!(!b.render().contains("grpc_server_handled_total{"));
    }

    /// The names [`describe`] declares.
    fn described() -> std::collections::BTreeSet<String> {
        use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString};
        #[derive(Default)]
        struct Names(Mutex<std::collections::BTreeSet<String>>);
        impl Names {
            fn add(&self, key: KeyName) {
                if let Ok(mut names) = self.0.lock() {
                    names.insert(key.as_str().to_owned());
                }
            }
        }
        impl Recorder for Names {
            fn describe_counter(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
                self.add(key);
            }
            fn describe_gauge(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
                self.add(key);
            }
            fn describe_histogram(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
                self.add(key);
            }
            fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
                Counter::noop()
            }
            fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
                Gauge::noop()
            }
            fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
                Histogram::noop()
            }
        }
        let names = Names::default();
        metrics::with_local_recorder(&names, describe);
        names.0.into_inner().unwrap_or_default()
    }

    /// The Grafana dashboard under deploy/ charts every metric the server
    /// declares, and no metric it does not.
    #[test]
    fn the_dashboard_charts_every_metric() {
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../deploy/grafana-dashboard.json"))
                .expect("the dashboard is JSON");
        let mut charted = std::collections::BTreeSet::new();
        for panel in dashboard["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default();
                for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.starts_with("callscope_") || word.starts_with("grpc_server_") {
                        let name = ["_bucket", "_count", "_sum"]
                            .iter()
                            .find_map(|suffix| word.strip_suffix(suffix))
                            .unwrap_or(word);
                        charted.insert(name.to_owned());
                    }
                }
            }
        }
        let described = described();
        assert!(described.len() > 20, "{described:?}");
        let missing: Vec<_> = described.difference(&charted).collect();
        assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
        let unknown: Vec<_> = charted.difference(&described).collect();
        assert!(unknown.is_empty(), "charted but not declared: {unknown:?}");
    }
}
