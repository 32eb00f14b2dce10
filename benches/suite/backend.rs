//! Ingest, listings and deep pages on one backend, in one run: baselines
//! first, then the server ingests the same calls and answers the listings.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Executor;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use callscope::store::Dialect;

use crate::Args;
use crate::cpu::{CpuSnapshot, CpuTimes};
use crate::ingest::{self, Slice, Tables};
use crate::listing::{self, Answer, Direct, FILTERS};
use crate::report::{PG_INGEST_GOAL, SQLITE_INGEST_GOAL, p50_p99};
use crate::server::{POOL, PgDatabase, Running};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// p50 and p99, milliseconds.
pub type Latency = (f64, f64);

/// One filter's listing latencies.
pub struct Listing {
    /// ListCalls at `clients` concurrent clients, each answer taken
    /// undecoded, as the direct SQL takes its rows ([`listing::Answer`]).
    pub grpc: Latency,
    /// The same, each answer decoded by prost (a diagnostic).
    pub grpc_decoded: Latency,
    /// The listing statement alone, direct, as many clients.
    pub sql: Latency,
    /// The listing statement and the two tag statements, direct: the same
    /// rows ListCalls answers, tags included (the baseline).
    pub sql_tags: Latency,
    /// CPU milliseconds a ListCalls request took at `clients` clients: in
    /// this process (server and client) and in PostgreSQL's processes.
    pub grpc_cpu: CpuTimes,
    /// The same with each answer decoded.
    pub grpc_decoded_cpu: CpuTimes,
    /// The same for the baseline (`sql_tags`).
    pub sql_tags_cpu: CpuTimes,
    /// ListCalls from one client, each answer decoded.
    pub grpc_one_client: Latency,
}

/// The plain bulk loads of the same rows, rows/s.
pub struct Baselines {
    /// Into the real tables: the measure's baseline.
    pub real: f64,
    /// Into copies with the keys and indexes but no triggers (diagnostic;
    /// PostgreSQL).
    pub untriggered: Option<f64>,
    /// Into copies without keys or indexes (diagnostic; not run after a
    /// preload).
    pub bare: Option<f64>,
}

pub struct Figures {
    pub backend: Backend,
    /// Calls in the database when the listings ran.
    pub calls: u64,
    /// Of them, bulk-loaded before any measure (`--preload`).
    pub preloaded: u64,
    /// UpsertCalls rows/s.
    pub ingest: f64,
    pub baselines: Baselines,
    pub listings: Vec<Listing>,
    pub page1: Latency,
    pub deep: Latency,
    pub deep_page: u64,
}

pub async fn sqlite(args: &Args) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    sqlite_in(dir.path(), args).await
}

async fn sqlite_in(dir: &Path, args: &Args) -> anyhow::Result<Figures> {
    // The baseline writes into the real tables of a file of its own.
    let baseline_url = format!("sqlite://{}", dir.join("baseline.db").display());
    Running::migrate(&baseline_url).await?;
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    Running::migrate(&url).await?;
    let bare = ingest::sqlite_insert(&url, args, Tables::Bare).await?;
    let pool = SqlitePoolOptions::new()
        .max_connections(POOL)
        .connect_with(url.parse::<SqliteConnectOptions>()?.read_only(true))
        .await?;
    measure(
        Backend::Sqlite,
        &url,
        Direct::Sqlite(pool),
        Baseline::SqliteInsert(&baseline_url),
        args,
        Rounds::each_loads_all(Slice::all(args)),
    )
    .await
    .map(|figures| figures.with_diagnostics(None, Some(bare)))
}

pub async fn postgres(args: &Args, server_url: &str) -> anyhow::Result<Figures> {
    if let Some(url) = &args.pg_database {
        return postgres_listings(url, args).await;
    }
    let database = PgDatabase::create(server_url).await?;
    let result = if args.preload > 0 {
        postgres_preloaded(&database.url, args).await
    } else {
        postgres_on(server_url, &database.url, args).await
    };
    if args.keep_database {
        eprintln!("[postgres] database kept: {}", database.url);
    } else {
        database.drop_now().await?;
    }
    result
}

/// The listings alone, on a database an earlier `--keep-database` run left
/// with `--preload` + `--calls` calls (`--pg-database`): no load, no ingest.
async fn postgres_listings(url: &str, args: &Args) -> anyhow::Result<Figures> {
    let total = args.preload + args.calls;
    let server = Running::start(url).await?;
    let direct = Direct::Pg(direct_pool(url).await?);
    let measured = listings(Backend::Postgres, &server, &direct, args, total).await;
    server.shutdown().await?;
    let (listings, page1, deep, deep_page) = measured?;
    Ok(Figures {
        backend: Backend::Postgres,
        calls: total,
        preloaded: args.preload,
        ingest: f64::NAN,
        baselines: Baselines {
            real: f64::NAN,
            untriggered: None,
            bare: None,
        },
        listings,
        page1,
        deep,
        deep_page,
    })
}

/// At scale: `--preload` calls bulk-loaded first, then the ingest measured
/// in the same tables, the COPY baseline and UpsertCalls taking turns over
/// the next `--calls` (each round's first half copied, its second half
/// upserted), so both pay for indexes of the same size. The diagnostic
/// copies are not made (they would be as big).
async fn postgres_preloaded(url: &str, args: &Args) -> anyhow::Result<Figures> {
    let total = args.preload + args.calls;
    Running::migrate(url).await?;
    let preload = Slice {
        first: 0,
        end: args.preload,
        total,
    };
    ingest::pg_bulk_load(url, preload, args.streams).await?;
    let pool = direct_pool(url).await?;
    let ingested = Slice {
        first: args.preload,
        end: total,
        total,
    };
    let mut figures = measure(
        Backend::Postgres,
        url,
        Direct::Pg(pool),
        Baseline::PgCopy(url),
        args,
        Rounds::take_turns(ingested),
    )
    .await?;
    figures.preloaded = args.preload;
    Ok(figures)
}

async fn postgres_on(server_url: &str, url: &str, args: &Args) -> anyhow::Result<Figures> {
    // The diagnostic baselines' tables copy the definitions of the migrated
    // ones; the measure's baseline writes into the real tables of a
    // database of its own.
    Running::migrate(url).await?;
    let bare = ingest::pg_copy(url, args, Tables::Bare).await?;
    let untriggered = ingest::pg_copy(url, args, Tables::Indexed).await?;
    let baseline_database = PgDatabase::create(server_url).await?;
    let measured = async {
        Running::migrate(&baseline_database.url).await?;
        let pool = direct_pool(url).await?;
        measure(
            Backend::Postgres,
            url,
            Direct::Pg(pool),
            Baseline::PgCopy(&baseline_database.url),
            args,
            Rounds::each_loads_all(Slice::all(args)),
        )
        .await
    }
    .await;
    baseline_database.drop_now().await?;
    Ok(measured?.with_diagnostics(Some(untriggered), Some(bare)))
}

/// The plain load an ingest is measured against, into the real tables of
/// the database at its URL.
enum Baseline<'a> {
    /// Multi-row INSERTs, one transaction per batch ([`ingest::sqlite_insert`]).
    SqliteInsert(&'a str),
    /// Binary COPY, as many streams ([`ingest::pg_copy`]).
    PgCopy(&'a str),
}

impl Baseline<'_> {
    /// Loads `slice`; rows/s.
    async fn load(&self, args: &Args, slice: Slice) -> anyhow::Result<f64> {
        match self {
            Baseline::SqliteInsert(url) => {
                ingest::sqlite_insert_slice(url, args, Tables::Real, slice).await
            }
            Baseline::PgCopy(url) => ingest::pg_copy_slice(url, args, Tables::Real, slice).await,
        }
    }
}

/// Rounds of ingest in which the baseline and UpsertCalls take turns, so
/// that the load of this shared machine drifting over the minutes of a run
/// hits both sides alike: per round, the baseline's slice, then the
/// service's.
struct Rounds(Vec<(Slice, Slice)>);

/// Rounds an ingest is split into.
const INGEST_ROUNDS: u64 = 4;

impl Rounds {
    /// Each side loads every call of `slice`, into a database of its own:
    /// `slice` in [`INGEST_ROUNDS`] consecutive parts, both sides loading
    /// the same part in a round.
    fn each_loads_all(slice: Slice) -> Self {
        Rounds(
            Self::parts(slice)
                .into_iter()
                .map(|part| (part, part))
                .collect(),
        )
    }

    /// Both sides write into the same tables: each part's first half is
    /// the baseline's, its second half the service's.
    fn take_turns(slice: Slice) -> Self {
        Rounds(
            Self::parts(slice)
                .into_iter()
                .map(|part| {
                    let half = part.first + part.len() / 2;
                    (
                        Slice { end: half, ..part },
                        Slice {
                            first: half,
                            ..part
                        },
                    )
                })
                .collect(),
        )
    }

    fn parts(slice: Slice) -> Vec<Slice> {
        let step = slice.len().div_ceil(INGEST_ROUNDS).max(1);
        (slice.first..slice.end)
            .step_by(step as usize)
            .map(|first| Slice {
                first,
                end: (first + step).min(slice.end),
                ..slice
            })
            .collect()
    }
}

/// The pool of the direct SQL: the settings the store gives a listing's
/// transaction (`Dialect::PAGE_SETTINGS`), for the session, so both sides
/// run the same plans; the store's session options (`jit` off, the
/// statement timeout); and, like the store's pool, no ping when a
/// connection is taken (sqlx's default pings on every acquire: a round trip
/// the store does not make, which the baseline paid until 2026-12-01).
async fn direct_pool(url: &str) -> anyhow::Result<sqlx::PgPool> {
    let connect = sqlx::postgres::PgConnectOptions::from_str(url)?
        .options(callscope::store::PG_SESSION_OPTIONS);
    Ok(PgPoolOptions::new()
        .max_connections(POOL)
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                for (name, value) in <sqlx::Postgres as Dialect>::PAGE_SETTINGS {
                    conn.execute(sqlx::AssertSqlSafe(format!("SET {name} = {value}")))
                        .await?;
                }
                Ok(())
            })
        })
        .connect_with(connect)
        .await?)
}

async fn measure(
    backend: Backend,
    url: &str,
    direct: Direct,
    baseline: Baseline<'_>,
    args: &Args,
    rounds: Rounds,
) -> anyhow::Result<Figures> {
    let server = Running::start(url).await?;
    // The calls in the database once every round has run.
    let total = rounds.0.first().map_or(0, |(part, _)| part.total);
    let (mut service_rows, mut service_secs) = (0.0, 0.0);
    let (mut baseline_rows, mut baseline_secs) = (0.0, 0.0);
    let (mut service_cpu, mut baseline_cpu) = (CpuTimes::default(), CpuTimes::default());
    // Rounds each side ran (a tiny `--calls` leaves some slices empty).
    let (mut service_rounds, mut baseline_rounds) = (0_usize, 0_usize);
    for (round, (copied, ingested)) in rounds.0.into_iter().enumerate() {
        // Who goes first alternates (ABBA), so that a checkpoint or an
        // autovacuum that follows one side's writes falls on both.
        let baseline_first = round % 2 == 0;
        eprintln!(
            "[{backend}] round {round}: baseline {} calls, UpsertCalls {} calls, {} first",
            copied.len(),
            ingested.len(),
            if baseline_first {
                "baseline"
            } else {
                "UpsertCalls"
            }
        );
        for baseline_turn in [baseline_first, !baseline_first] {
            let before = CpuSnapshot::now();
            // An empty slice (a tiny `--calls`) has no rate to add.
            if baseline_turn && copied.len() > 0 {
                let rate = baseline.load(args, copied).await?;
                baseline_rows += copied.len() as f64;
                baseline_secs += copied.len() as f64 / rate;
                baseline_cpu = baseline_cpu
                    .add(before.per_request(&CpuSnapshot::now(), copied.len() as usize));
                baseline_rounds += 1;
            } else if !baseline_turn && ingested.len() > 0 {
                let rate = ingest::grpc_slice(&server, args, ingested).await?;
                service_rows += ingested.len() as f64;
                service_secs += ingested.len() as f64 / rate;
                service_cpu = service_cpu
                    .add(before.per_request(&CpuSnapshot::now(), ingested.len() as usize));
                service_rounds += 1;
            }
        }
    }
    let (service_rounds, baseline_rounds) =
        (service_rounds.max(1) as f64, baseline_rounds.max(1) as f64);
    // CPU a call, in this process (rows made, gRPC client and server, or
    // the COPY client) and in PostgreSQL: where UpsertCalls' extra time goes.
    eprintln!(
        "[{backend}] CPU ms a call: UpsertCalls {:.3} here + {:.3} postgres, baseline {:.3} here + {:.3} postgres",
        service_cpu.this_process / service_rounds,
        (service_cpu.postgres / service_rounds).max(0.0),
        baseline_cpu.this_process / baseline_rounds,
        (baseline_cpu.postgres / baseline_rounds).max(0.0),
    );
    let ingest = service_rows / service_secs;
    let baselines = Baselines {
        real: baseline_rows / baseline_secs,
        untriggered: None,
        bare: None,
    };
    eprintln!(
        "[{backend}] ingest: {ingest:.0} rows/s, baseline {:.0} rows/s",
        baselines.real
    );
    if let Direct::Pg(pool) = &direct {
        // What autovacuum does after a bulk load, done now so the planner
        // does not guess.
        pool.execute("ANALYZE").await?;
    }
    // The listings run over every call in the database.
    let measured = listings(backend, &server, &direct, args, total).await;
    server.shutdown().await?;
    let (listings, page1, deep, deep_page) = measured?;
    Ok(Figures {
        backend,
        calls: total,
        preloaded: 0,
        ingest,
        baselines,
        listings,
        page1,
        deep,
        deep_page,
    })
}

/// Rounds of each filter's concurrent listings (`--requests` per client
/// and round). Eight rounds of 32 clients × 20 requests give each side
/// 5,120 latencies, so a p99 is the 52nd slowest (the 26th with four): a
/// short stall of this shared machine, which delays the 32 requests in
/// flight at once, is less likely to make a side's p99 by itself. A long
/// one still can.
const LISTING_ROUNDS: usize = 8;

/// Every filter's listings and the deep page, over `total` calls:
/// (listings, page 1, deep page, its number).
async fn listings(
    backend: Backend,
    server: &Running,
    direct: &Direct,
    args: &Args,
    total: u64,
) -> anyhow::Result<(Vec<Listing>, Latency, Latency, u64)> {
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(server.channel().await?);
    }
    listing::check_same_rows(&channels[0], direct, total).await?;
    if let Direct::Pg(pool) = direct {
        // The load before (a preload, or the ingest benchmark) leaves the
        // checkpointer writing its pages out, spread over minutes; that
        // writing is done now, before any side is timed. It takes a
        // superuser (or pg_checkpoint): without, the listings run anyway.
        if let Err(e) = pool.execute("CHECKPOINT").await {
            eprintln!("[{backend}] no CHECKPOINT before the listings: {e}");
        }
    }
    let mut listings = Vec::new();
    for (which, name) in FILTERS.iter().enumerate() {
        let (clients, requests, calls) = (args.clients, args.requests, total);
        // One untimed round warms caches and connections for every side.
        for answer in [Answer::Undecoded, Answer::Decoded] {
            listing::grpc(&channels, clients, 1, calls, which, answer).await?;
        }
        listing::direct(direct, clients, 1, calls, which, true).await?;
        // The four sides take turns, so that the load of this shared
        // machine drifting during the run hits them alike; ListCalls goes
        // first in even rounds and last in odd ones (ABBA).
        const GRPC: usize = 0;
        const GRPC_DECODED: usize = 1;
        const SQL: usize = 2;
        const SQL_TAGS: usize = 3;
        let mut sides: [(Vec<Duration>, CpuTimes); 4] = Default::default();
        let rounds_requests = clients * requests * LISTING_ROUNDS;
        for round in 0..LISTING_ROUNDS {
            let order = if round % 2 == 0 {
                [GRPC, GRPC_DECODED, SQL, SQL_TAGS]
            } else {
                [SQL_TAGS, SQL, GRPC_DECODED, GRPC]
            };
            for side in order {
                let before = CpuSnapshot::now();
                let latencies = match side {
                    GRPC => {
                        let answer = Answer::Undecoded;
                        listing::grpc(&channels, clients, requests, calls, which, answer).await?
                    }
                    GRPC_DECODED => {
                        let answer = Answer::Decoded;
                        listing::grpc(&channels, clients, requests, calls, which, answer).await?
                    }
                    _ => {
                        let tags = side == SQL_TAGS;
                        listing::direct(direct, clients, requests, calls, which, tags).await?
                    }
                };
                let cpu = before.per_request(&CpuSnapshot::now(), rounds_requests);
                let (all, all_cpu) = &mut sides[side];
                all.extend(latencies);
                *all_cpu = all_cpu.add(cpu);
            }
        }
        let [
            (grpc, grpc_cpu),
            (grpc_decoded, grpc_decoded_cpu),
            (sql, _),
            (sql_tags, sql_tags_cpu),
        ] = sides;
        let (grpc, grpc_decoded) = (p50_p99(&grpc), p50_p99(&grpc_decoded));
        let (sql, sql_tags) = (p50_p99(&sql), p50_p99(&sql_tags));
        let one = listing::grpc(
            &channels,
            1,
            args.single_requests,
            calls,
            which,
            Answer::Decoded,
        )
        .await?;
        let grpc_one_client = p50_p99(&one);
        eprintln!(
            "[{backend}] {name}: {:.2}/{:.2} ms (decoded {:.2}/{:.2} ms), direct {:.2}/{:.2} ms, \
             with tag statements {:.2}/{:.2} ms; one client {:.2}/{:.2} ms",
            grpc.0,
            grpc.1,
            grpc_decoded.0,
            grpc_decoded.1,
            sql.0,
            sql.1,
            sql_tags.0,
            sql_tags.1,
            grpc_one_client.0,
            grpc_one_client.1
        );
        eprintln!(
            "[{backend}] {name}: CPU ms a request: ListCalls {:.2} here (server and client) + \
             {:.2} postgres (decoded {:.2} + {:.2}); direct SQL with tag statements {:.2} here + \
             {:.2} postgres",
            grpc_cpu.this_process,
            grpc_cpu.postgres,
            grpc_decoded_cpu.this_process,
            grpc_decoded_cpu.postgres,
            sql_tags_cpu.this_process,
            sql_tags_cpu.postgres
        );
        listings.push(Listing {
            grpc,
            grpc_decoded,
            sql,
            sql_tags,
            grpc_one_client,
            grpc_cpu,
            grpc_decoded_cpu,
            sql_tags_cpu,
        });
    }

    // What any RPC costs before a handler does anything, beside which the
    // listings' CPU a request can be read.
    listing::health(&channels, args.clients, 1).await?;
    let before = CpuSnapshot::now();
    let floor = listing::health(&channels, args.clients, args.requests * LISTING_ROUNDS).await?;
    let floor_cpu = before.per_request(&CpuSnapshot::now(), floor.len());
    let floor = p50_p99(&floor);
    eprintln!(
        "[{backend}] the gRPC floor, Health/Check from {} clients: {:.2}/{:.2} ms, CPU ms a \
         request {:.3} here (server and client) + {:.3} postgres",
        args.clients, floor.0, floor.1, floor_cpu.this_process, floor_cpu.postgres
    );

    let deep_row = args.deep_row.min(total.saturating_sub(16)).max(1);
    let token = listing::token_after(&channels[0], deep_row).await?;
    let deep_page = deep_row / 15 + 1;
    listing::time_page(&channels[0], "", 10).await?;
    listing::time_page(&channels[0], &token, 10).await?;
    let page1 = p50_p99(&listing::time_page(&channels[0], "", 200).await?);
    let deep = p50_p99(&listing::time_page(&channels[0], &token, 200).await?);
    eprintln!("[{backend}] page 1 {page1:?} ms, page {deep_page} {deep:?} ms");
    Ok((listings, page1, deep, deep_page))
}

impl Figures {
    /// These figures with the diagnostic baselines measured beside them.
    fn with_diagnostics(mut self, untriggered: Option<f64>, bare: Option<f64>) -> Self {
        self.baselines.untriggered = untriggered;
        self.baselines.bare = bare;
        self
    }

    /// The detailed table of this backend (markdown).
    pub fn print(&self, args: &Args) {
        let baseline = match self.backend {
            Backend::Sqlite => {
                "multi-row INSERT (one per batch and table), one transaction per batch, 1 stream \
                 (SQLite has no COPY)"
            }
            Backend::Postgres => {
                "binary COPY FROM STDIN (as many streams, one transaction per batch)"
            }
        };
        let met = |ok: bool| if ok { "met" } else { "MISSED" };
        println!("## {} ({} calls)", self.backend, self.calls);
        println!();
        if self.preloaded > 0 {
            println!(
                "{} calls bulk-loaded first (`--preload`); the ingest ran on top of them, the \
                 baseline the first half of the rest and UpsertCalls the second half.",
                self.preloaded
            );
            println!();
        }
        println!("| measure | callscope | baseline | ratio | target |");
        println!("|---|---|---|---|---|");
        if self.ingest.is_nan() {
            println!(
                "| ingest | not measured: the listings of a database an earlier run loaded | | | |"
            );
        } else {
            let ratio = self.ingest / self.baselines.real;
            let goal = match self.backend {
                Backend::Sqlite => SQLITE_INGEST_GOAL,
                Backend::Postgres => PG_INGEST_GOAL,
            };
            println!(
                "| ingest rows/s (UpsertCalls, {}/batch, {} streams) vs {baseline} into the real \
                 tables (keys, indexes, triggers) | {:.0} | {:.0} | {ratio:.2} of baseline | {} {} |",
                args.batch,
                args.streams,
                self.ingest,
                self.baselines.real,
                goal.text(),
                met(goal.met(self.ingest, Some(ratio)))
            );
        }
        if let Some(untriggered) = self.baselines.untriggered {
            println!(
                "| (diagnostic) same baseline into copies with the keys and indexes, no triggers \
                 | | {untriggered:.0} | ingest {:.2} of it | |",
                self.ingest / untriggered
            );
        }
        if let Some(bare) = self.baselines.bare {
            println!(
                "| (diagnostic) same baseline into copies without keys or indexes | | {bare:.0} | \
                 ingest {:.2} of it | |",
                self.ingest / bare
            );
        }
        for (name, l) in FILTERS.iter().zip(&self.listings) {
            let ratio = l.grpc.1 / l.sql_tags.1;
            println!(
                "| ListCalls {name}: p50 / p99 ms ({} clients) vs the listing SQL + the store's 2 \
                 tag statements direct | {:.2} / {:.2} | {:.2} / {:.2} | p99 {ratio:.2}x | p99 <= \
                 1.5x {} |",
                args.clients,
                l.grpc.0,
                l.grpc.1,
                l.sql_tags.0,
                l.sql_tags.1,
                met(ratio <= 1.5)
            );
            println!(
                "| (diagnostic) same, each answer decoded by the client (prost) | {:.2} / {:.2} \
                 | | p99 {:.2}x | |",
                l.grpc_decoded.0,
                l.grpc_decoded.1,
                l.grpc_decoded.1 / l.sql_tags.1
            );
            println!(
                "| (diagnostic) same, vs the listing SQL alone direct | | {:.2} / {:.2} | p99 \
                 {:.2}x | |",
                l.sql.0,
                l.sql.1,
                l.grpc.1 / l.sql.1
            );
            if self.backend == Backend::Postgres {
                println!(
                    "| (diagnostic) CPU ms a request, this process (server and client) + \
                     PostgreSQL; decoded | {:.2} + {:.2}; {:.2} + {:.2} | {:.2} + {:.2} | | |",
                    l.grpc_cpu.this_process,
                    l.grpc_cpu.postgres,
                    l.grpc_decoded_cpu.this_process,
                    l.grpc_decoded_cpu.postgres,
                    l.sql_tags_cpu.this_process,
                    l.sql_tags_cpu.postgres
                );
            }
            println!(
                "| ListCalls {name}: p50 / p99 ms (1 client) | {:.2} / {:.2} | | | p99 < 10 ms {} |",
                l.grpc_one_client.0,
                l.grpc_one_client.1,
                met(l.grpc_one_client.1 < 10.0)
            );
        }
        let ratio = self.deep.0 / self.page1.0;
        println!(
            "| page {} vs page 1: p50 / p99 ms (1 client) | {:.2} / {:.2} | {:.2} / {:.2} | p50 \
             {ratio:.2}x | <= 1.5x {} |",
            self.deep_page,
            self.deep.0,
            self.deep.1,
            self.page1.0,
            self.page1.1,
            met(ratio <= 1.5)
        );
        println!();
    }
}
