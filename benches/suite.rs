//! The benchmark suite of BENCHMARKS.md: every measure beside a baseline
//! taken in the same run (the same work done the plain way through sqlx).
//!
//! `cargo bench --bench suite -- --calls 200000 --json /tmp/bench.json`
//!
//! On SQLite always, on PostgreSQL when `CALLSCOPE_TEST_POSTGRES_URL` (or
//! `--postgres-url`) names a server where databases can be created. The
//! suite talks to the server over gRPC only, and to the database directly
//! for the baselines.
//!
//! A bench target's root looks for its modules beside it, hence the `#[path]`s
//! into `benches/suite/`.

#[path = "suite/backend.rs"]
mod backend;
#[path = "suite/cpu.rs"]
mod cpu;
#[path = "suite/data.rs"]
mod data;
#[path = "suite/events.rs"]
mod events;
#[path = "suite/ingest.rs"]
mod ingest;
#[path = "suite/json.rs"]
mod json;
#[path = "suite/listing.rs"]
mod listing;
#[path = "suite/overload.rs"]
mod overload;
#[path = "suite/report.rs"]
mod report;
#[path = "suite/security.rs"]
mod security;
#[path = "suite/server.rs"]
mod server;
#[path = "suite/stats.rs"]
mod stats;
#[path = "suite/sync.rs"]
mod sync;
// The stand-in smartivr of the integration tests (the sync benchmark pulls
// from it); not every helper of it is used here.
#[allow(dead_code)]
#[path = "../tests/it/smartivr_standin.rs"]
mod smartivr_standin;

use std::path::PathBuf;

/// The server's allocator (see `src/main.rs`), for the server run in this
/// process; the direct SQL side runs on it too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::bail;
use clap::Parser;

use backend::{Backend, Figures};
use report::{
    DEEP_PAGE_GOAL, LIST_GOAL, LIST_MS_GOAL, Measure, PG_INGEST_GOAL, SQLITE_INGEST_GOAL,
    STATS_GOAL, STATS_MS_GOAL, TASK_NUMBERS_STATUS_MS_GOAL, TASK_PROGRESS_MS_GOAL, p50_p99, worst,
};

#[derive(Debug, Clone, Parser)]
#[command(
    about = "callscope benchmark suite",
    after_help = "Run it with `cargo bench --bench suite -- --calls N --json FILE`."
)]
pub struct Args {
    /// Synthetic calls: ingested on each backend, and in the one task of the
    /// analytics benchmark.
    #[arg(long, default_value_t = 200_000)]
    calls: u64,
    /// Write the measures to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Backends to measure, comma-separated (sqlite, postgres); by default
    /// SQLite, and PostgreSQL when a server is given.
    #[arg(long, value_delimiter = ',')]
    backends: Option<Vec<String>>,
    /// PostgreSQL server on which a fresh `callscope_bench_<random>`
    /// database is created (and dropped afterwards).
    #[arg(long, env = "CALLSCOPE_TEST_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// PostgreSQL: bulk-load this many calls first (COPY, the secondary
    /// indexes built after), then measure ingest and listings on top of
    /// them: how the 10M-call run is made.
    #[arg(long, default_value_t = 0)]
    preload: u64,
    /// PostgreSQL: keep the benchmark's database instead of dropping it
    /// (for `EXPLAIN` afterwards); its URL is printed.
    #[arg(long)]
    keep_database: bool,
    /// PostgreSQL: measure only the listings, on this database a
    /// `--keep-database` run left, giving the `--preload` and `--calls` it
    /// was loaded with.
    #[arg(long, requires = "preload")]
    pg_database: Option<String>,
    /// Calls per UpsertCalls request (and per baseline chunk).
    #[arg(long, default_value_t = 500)]
    batch: u64,
    /// Concurrent ingest streams (gRPC and baseline alike).
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// Concurrent ListCalls clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// HTTP/2 connections the ListCalls clients share (client `c` sends on
    /// connection `c % connections`).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Timed ListCalls requests per client, filter and round (the service
    /// and the direct SQL take eight turns each).
    #[arg(long, default_value_t = 20)]
    requests: usize,
    /// Timed ListCalls requests per filter from a single client.
    #[arg(long, default_value_t = 100)]
    single_requests: usize,
    /// The row after which the deep page starts (row 150,000 = page 10,001
    /// at page size 15; capped by the calls).
    #[arg(long, default_value_t = 150_000)]
    deep_row: u64,
    /// Timed runs of each analytics request (and of its SQL). 100, so that
    /// a p99 is not simply the slowest of a handful.
    #[arg(long, default_value_t = 100)]
    runs: usize,
    /// SQLite file of the analytics benchmark (replaced if present); a
    /// temporary one by default.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Keep the calls already in `--db` instead of generating new ones.
    #[arg(long, requires = "db")]
    reuse: bool,
    /// Run only these benchmarks: storage (ingest, listings, deep pages on
    /// each backend), stats (analytics, SQLite) or json (JSON over HTTP
    /// against gRPC, SQLite).
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Passed by `cargo bench`; without it (`cargo test --benches`) nothing
    /// is run.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Only {
    Storage,
    Stats,
    /// Pulling from a stand-in smartivr (SyncService), SQLite.
    Sync,
    /// ExportCalls against COPY, and the watch's commit-to-event delay.
    Events,
    /// JSON over HTTP against gRPC (ListCalls, and the encoding of a page).
    Json,
    /// 500 ListCalls clients against the release binary's admission bound.
    Overload,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .init();
    let args = Args::parse();
    if !args.bench {
        println!("the suite runs under `cargo bench --bench suite -- …` (or with --bench)");
        return Ok(());
    }
    if args.batch == 0 || args.batch > 1000 {
        bail!("--batch must be 1..=1000");
    }
    let backends = backends(&args)?;
    if args.preload > 0 && backends != [Backend::Postgres] {
        bail!("--preload is for PostgreSQL alone: add --backends postgres");
    }
    if args.only == Some(Only::Sync) {
        let measures = sync::run(usize::try_from(args.calls)?).await?;
        println!("peak RSS of the process (VmHWM): {}", report::peak_rss());
        report::print_summary(&measures);
        if let Some(path) = &args.json {
            report::write_json(path, &measures)?;
        }
        return Ok(());
    }

    println!("# callscope benchmark suite");
    println!();
    println!("machine: {}", report::machine());
    println!("load average at start: {}", report::load_average());
    println!();

    let mut figures = Vec::new();
    let storage_backends = if matches!(
        args.only,
        Some(Only::Stats | Only::Events | Only::Json | Only::Overload)
    ) {
        &[][..]
    } else {
        &backends[..]
    };
    for backend in storage_backends {
        let f = match backend {
            Backend::Sqlite => backend::sqlite(&args).await?,
            Backend::Postgres => {
                let url = args.postgres_url.as_deref().unwrap_or_default();
                backend::postgres(&args, url).await?
            }
        };
        f.print(&args);
        figures.push(f);
    }
    let timed = if backends.contains(&Backend::Sqlite) && args.only.is_none_or(|o| o == Only::Stats)
    {
        let dataset = stats::Dataset {
            calls: usize::try_from(args.calls)?,
            db: args.db.clone(),
            reuse: args.reuse,
        };
        Some(stats::run(&dataset, args.runs).await?)
    } else {
        None
    };

    let secure = if matches!(
        args.only,
        Some(Only::Stats | Only::Events | Only::Json | Only::Overload)
    ) || args.pg_database.is_some()
    {
        // A reused database is for its listings alone.
        Vec::new()
    } else {
        let pg = backends
            .contains(&Backend::Postgres)
            .then_some(args.postgres_url.as_deref())
            .flatten();
        security::run(&args, backends.contains(&Backend::Sqlite), pg).await
    };
    let json = if backends.contains(&Backend::Sqlite) && args.only.is_none_or(|o| o == Only::Json) {
        json::run(&args).await
    } else {
        vec![
            report::Measure::missing(
                "json_list_p99_vs_grpc",
                "ms",
                "not measured: SQLite not in this run",
            ),
            report::Measure::missing(
                "json_encode_page_vs_list",
                "ms",
                "not measured: SQLite not in this run",
            ),
        ]
    };
    let outgoing = if matches!(args.only, None | Some(Only::Events)) {
        let pg = backends
            .contains(&Backend::Postgres)
            .then_some(args.postgres_url.as_deref())
            .flatten();
        events::run(&args, backends.contains(&Backend::Sqlite), pg).await
    } else {
        vec![
            Measure::missing("export_vs_copy_to", "rows/s", "not measured: --only"),
            Measure::missing("watch_event_p99_ms", "ms", "not measured: --only"),
        ]
    };
    let mut measures = measures(&figures, timed.as_ref(), &args);
    let lookups = match &timed {
        Some(a) => a
            .lookups
            .iter()
            .map(|t| {
                let (name, goal) = if t.request.starts_with("GetTask") {
                    ("get_task_progress_ms", TASK_PROGRESS_MS_GOAL)
                } else if t.request.starts_with("ListTaskNumbers") {
                    ("task_numbers_status_ms", TASK_NUMBERS_STATUS_MS_GOAL)
                } else {
                    ("external_id_lookup_ms", LIST_MS_GOAL)
                };
                Measure::absolute(name, p50_p99(&t.grpc).1, "ms", goal).with_note(format!(
                    "p99, SQLite, {} calls in one task; plain SQL p50 {:.1} ms",
                    args.calls,
                    p50_p99(&t.sql).0
                ))
            })
            .collect(),
        None => vec![
            Measure::missing("get_task_progress_ms", "ms", "not measured: stats not run"),
            Measure::missing(
                "task_numbers_status_ms",
                "ms",
                "not measured: stats not run",
            ),
            Measure::missing("external_id_lookup_ms", "ms", "not measured: stats not run"),
        ],
    };
    measures.extend(lookups);
    measures.extend(secure);
    measures.extend(outgoing);
    measures.extend(json);
    if matches!(args.only, None | Some(Only::Overload)) {
        measures.extend(overload::run().await);
    }
    println!("load average at the end: {}", report::load_average());
    println!("peak RSS of the process (VmHWM): {}", report::peak_rss());
    println!();
    report::print_summary(&measures);
    if let Some(path) = &args.json {
        report::write_json(path, &measures)?;
        println!("measures written to {}", path.display());
    }
    Ok(())
}

fn backends(args: &Args) -> anyhow::Result<Vec<Backend>> {
    let Some(names) = &args.backends else {
        let mut all = vec![Backend::Sqlite];
        if args.postgres_url.is_some() {
            all.push(Backend::Postgres);
        } else {
            eprintln!("PostgreSQL skipped: CALLSCOPE_TEST_POSTGRES_URL is not set");
        }
        return Ok(all);
    };
    names
        .iter()
        .map(|name| match name.as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" if args.postgres_url.is_some() => Ok(Backend::Postgres),
            "postgres" => bail!("postgres needs CALLSCOPE_TEST_POSTGRES_URL or --postgres-url"),
            other => bail!("unknown backend `{other}`: use sqlite or postgres"),
        })
        .collect()
}

/// The measures of the API contract, in its order. Where one name covers
/// several cases (filters, backends, requests), the worst case stands for it
/// and its note says which.
fn measures(
    figures: &[Figures],
    analytics: Option<&stats::Analytics>,
    args: &Args,
) -> Vec<Measure> {
    let of = |b: Backend| figures.iter().find(|f| f.backend == b);
    // Why a measure is missing: the benchmark was left out, or its backend.
    let not_run = |name, unit, what: &str| {
        let why = match args.only {
            Some(Only::Events) => "--only events".to_owned(),
            Some(Only::Stats) if what != "stats" => "--only stats".to_owned(),
            Some(Only::Storage) if what == "stats" => "--only storage".to_owned(),
            Some(Only::Json) => "--only json".to_owned(),
            Some(Only::Overload) => "--only overload".to_owned(),
            _ if what == "stats" => "it runs on SQLite, which is not in --backends".to_owned(),
            _ => format!("{what} not in this run"),
        };
        Measure::missing(name, unit, &format!("not measured: {why}"))
    };
    let mut out = Vec::new();
    for (backend, name, goal) in [
        (
            Backend::Sqlite,
            "sqlite_ingest_vs_insert",
            SQLITE_INGEST_GOAL,
        ),
        (Backend::Postgres, "pg_ingest_vs_copy", PG_INGEST_GOAL),
    ] {
        out.push(match of(backend) {
            Some(f) if f.ingest.is_nan() => Measure::missing(
                name,
                "rows/s",
                "not measured: --pg-database reuses a loaded database",
            ),
            Some(f) => Measure::ratio(name, f.ingest, f.baselines.real, "rows/s", goal)
                .with_note("baseline into the real tables: keys, indexes and triggers"),
            None => not_run(name, "rows/s", &backend.to_string()),
        });
    }
    for (backend, name) in [
        (Backend::Sqlite, "sqlite_list_p99_vs_sql"),
        (Backend::Postgres, "pg_list_p99_vs_sql"),
    ] {
        let cases = of(backend).map(|f| {
            listing::FILTERS
                .iter()
                .zip(&f.listings)
                .map(|(filter, l)| {
                    Measure::ratio(name, l.grpc.1, l.sql_tags.1, "ms", LIST_GOAL).with_note(
                        format!(
                            "p99 at {} clients, worst filter: {filter}; answers taken \
                             undecoded, as the SQL's rows are (decoded by the client: \
                             {:.2} ms, {:.2}x)",
                            args.clients,
                            l.grpc_decoded.1,
                            l.grpc_decoded.1 / l.sql_tags.1
                        ),
                    )
                })
                .collect::<Vec<_>>()
        });
        out.push(
            cases
                .and_then(worst)
                .unwrap_or_else(|| not_run(name, "ms", &backend.to_string())),
        );
    }
    let name = "pg_list_p99_ms";
    let cases = of(Backend::Postgres).map(|f| {
        listing::FILTERS
            .iter()
            .zip(&f.listings)
            .map(|(filter, l)| {
                Measure::absolute(name, l.grpc_one_client.1, "ms", LIST_MS_GOAL)
                    .with_note(format!("p99 at 1 client, worst filter: {filter}"))
            })
            .collect::<Vec<_>>()
    });
    out.push(
        cases
            .and_then(worst)
            .unwrap_or_else(|| not_run(name, "ms", "PostgreSQL")),
    );
    let name = "deep_page_vs_first";
    let cases: Vec<Measure> = figures
        .iter()
        .map(|f| {
            Measure::ratio(name, f.deep.0, f.page1.0, "ms", DEEP_PAGE_GOAL).with_note(format!(
                "p50 of page {} against page 1, worst backend: {}",
                f.deep_page, f.backend
            ))
        })
        .collect();
    out.push(worst(cases).unwrap_or_else(|| not_run(name, "ms", "no backend")));
    match analytics {
        Some(analytics) => {
            let (timed, floor) = (&analytics.stats, p50_p99(&analytics.floor).0);
            let ratios = timed
                .iter()
                .map(|t| {
                    let (grpc, sql) = (p50_p99(&t.grpc).0, p50_p99(&t.sql).0);
                    Measure::ratio("stats_vs_sql", grpc, sql, "ms", STATS_GOAL).with_note(format!(
                        "p50, SQLite, worst request: {}; the gRPC floor (Health/Check, \
                         one client) p50 {floor:.2} ms",
                        t.request
                    ))
                })
                .collect();
            out.extend(worst(ratios));
            let p99s = timed
                .iter()
                .map(|t| {
                    Measure::absolute("stats_ms", p50_p99(&t.grpc).1, "ms", STATS_MS_GOAL)
                        .with_note(format!("p99, SQLite, worst request: {}", t.request))
                })
                .collect();
            out.extend(worst(p99s));
        }
        None => {
            out.push(not_run("stats_vs_sql", "ms", "stats"));
            out.push(not_run("stats_ms", "ms", "stats"));
        }
    }
    out
}
