//! The cost of security on ListCalls p99, each beside the path without it in
//! the same run, on the same database and data:
//!
//! - `auth_list_p99_vs_none` (SQLite): a server with `--auth keys`, every
//!   request carrying a `read` key as `authorization: Bearer …`, against a
//!   server with `--auth none` on the same file;
//! - `pg_rls_list_p99_vs_bypass` (PostgreSQL): a server connected as an
//!   ordinary role that owns the database (row-level security enforced)
//!   against a server connected as the superuser (which bypasses it).
//!
//! Both servers run at once and the timed rounds alternate between them, so
//! both see the same state of the machine. Filters, clients and requests are
//! those of the listing benchmark.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::{Connection, Executor, PgConnection};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::Channel;

use callscope::auth::AuthMode;
use callscope::domain::key::Role;
use callscope::proto;
use callscope::service::keys;
use callscope::store::{Store, StoreOptions};

use crate::Args;
use crate::data::TENANT;
use crate::ingest;
use crate::listing::{self, FILTERS, each_client, filter};
use crate::report::{Goal, Measure, p50_p99, worst};
use crate::server::Running;

/// Security may cost at most 10 % of ListCalls p99.
pub const SECURITY_GOAL: Goal = Goal::RatioAtMost(1.1);

/// The ordinary role the RLS benchmark's server connects as (the tests'
/// `callscope_app`).
const APP_ROLE: &str = "callscope_app";

/// Timed rounds per filter and side; the sides take turns round by round.
const ROUNDS: usize = 4;

/// p50/p99 of one filter on both sides: (with security, without).
type Pair = ((f64, f64), (f64, f64));

/// The two measures; each is `missing` (with the reason) when it cannot be
/// taken in this run.
pub async fn run(args: &Args, sqlite: bool, postgres_url: Option<&str>) -> Vec<Measure> {
    let mut out = Vec::new();
    let name = "auth_list_p99_vs_none";
    out.push(if sqlite {
        match auth_sqlite(args).await {
            Ok(pairs) => {
                print_pairs(
                    "API keys on SQLite: --auth keys vs --auth none",
                    "keys",
                    "none",
                    &pairs,
                    args,
                );
                to_measure(
                    name,
                    &pairs,
                    args,
                    "--auth keys (read key) ÷ --auth none, SQLite",
                )
            }
            Err(e) => Measure::missing(name, "ms", &format!("failed: {e:#}")),
        }
    } else {
        Measure::missing(name, "ms", "not measured: SQLite not in --backends")
    });
    let name = "pg_rls_list_p99_vs_bypass";
    out.push(match postgres_url {
        Some(url) => match rls_postgres(args, url).await {
            Ok(pairs) => {
                print_pairs(
                    "Row-level security on PostgreSQL: owner role vs superuser",
                    "RLS",
                    "bypass",
                    &pairs,
                    args,
                );
                to_measure(
                    name,
                    &pairs,
                    args,
                    "owner role (RLS enforced) ÷ superuser (RLS bypassed), PostgreSQL",
                )
            }
            Err(e) => Measure::missing(name, "ms", &format!("failed: {e:#}")),
        },
        None => Measure::missing(
            name,
            "ms",
            "not measured: CALLSCOPE_TEST_POSTGRES_URL is not set (or postgres not in --backends)",
        ),
    });
    out
}

fn to_measure(name: &'static str, pairs: &[Pair], args: &Args, what: &str) -> Measure {
    let cases = FILTERS
        .iter()
        .zip(pairs)
        .map(|(f, (with, without))| {
            Measure::ratio(name, with.1, without.1, "ms", SECURITY_GOAL).with_note(format!(
                "{what}; p99 at {} clients, same run, interleaved; worst filter: {f}",
                args.clients
            ))
        })
        .collect();
    worst(cases).expect("five filters")
}

fn print_pairs(title: &str, with: &str, without: &str, pairs: &[Pair], args: &Args) {
    println!(
        "## {title} ({} calls, {} clients)",
        args.calls, args.clients
    );
    println!();
    println!("| filter | {with} p50 / p99 ms | {without} p50 / p99 ms | p99 ratio |");
    println!("|---|---|---|---|");
    for (f, (a, b)) in FILTERS.iter().zip(pairs) {
        println!(
            "| {f} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2}x |",
            a.0,
            a.1,
            b.0,
            b.1,
            a.1 / b.1
        );
    }
    println!();
}

/// One file, one `read` key of the data's tenant, a server with keys and one
/// without on it.
async fn auth_sqlite(args: &Args) -> anyhow::Result<Vec<Pair>> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("auth.db").display());
    let plain = Running::start(&url).await?;
    eprintln!(
        "[auth] ingesting {} calls through UpsertCalls (SQLite)",
        args.calls
    );
    ingest::grpc(&plain, args).await?;
    let key = {
        let store = Store::connect(&StoreOptions {
            url: url.clone(),
            read_url: None,
            max_connections: 1,
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(30),
        })
        .await?;
        keys::create_key(&store, TENANT, Role::Read, "bench")
            .await?
            .1
    };
    let keyed = Running::start_with(&url, |c| c.auth = AuthMode::Keys).await?;
    let bearer: AsciiMetadataValue = MetadataValue::try_from(format!("Bearer {key}"))?;
    let result = compare(args, (&keyed, Some(bearer)), (&plain, None)).await;
    keyed.shutdown().await?;
    plain.shutdown().await?;
    result
}

/// A database owned by the ordinary role: it migrates and ingests as that
/// role, then a second server connects to it as the superuser.
async fn rls_postgres(args: &Args, admin_url: &str) -> anyhow::Result<Vec<Pair>> {
    let database = format!("callscope_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(admin_url)
        .await
        .context("connecting to the PostgreSQL server")?;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )))
        .await?;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {database} OWNER {APP_ROLE}"
        )))
        .await?;
    eprintln!("[rls] database {database} owned by {APP_ROLE}");
    let (scheme, rest) = admin_url.split_once("://").context("a URL")?;
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let Some((host, _)) = host.split_once('/') else {
        bail!("the PostgreSQL URL has no database name");
    };
    let (base, _) = admin_url.rsplit_once('/').context("a URL")?;
    let app_url = format!("{scheme}://{APP_ROLE}@{host}/{database}");
    let super_url = format!("{base}/{database}");
    let result = rls_on(args, &app_url, &super_url).await;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
        )))
        .await?;
    result
}

async fn rls_on(args: &Args, app_url: &str, super_url: &str) -> anyhow::Result<Vec<Pair>> {
    let owner = Running::start(app_url).await?;
    eprintln!(
        "[rls] ingesting {} calls through UpsertCalls as {APP_ROLE}",
        args.calls
    );
    let rate = ingest::grpc(&owner, args).await?;
    eprintln!("[rls] ingest as {APP_ROLE}: {rate:.0} rows/s");
    let mut conn = PgConnection::connect(super_url).await?;
    conn.execute("ANALYZE").await?;
    let checks: (bool, bool, bool) = sqlx::query_as(
        "SELECT r.rolsuper, c.relrowsecurity, c.relforcerowsecurity \
         FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.relname = 'calls'",
    )
    .fetch_one(&mut conn)
    .await?;
    if checks != (false, true, true) {
        bail!("calls is not owned by an ordinary role with forced RLS: {checks:?}");
    }
    conn.close().await?;
    let bypass = Running::start(super_url).await?;
    let result = compare(args, (&owner, None), (&bypass, None)).await;
    bypass.shutdown().await?;
    owner.shutdown().await?;
    result
}

type Side<'a> = (&'a Running, Option<AsciiMetadataValue>);

/// Every filter on both sides, rounds alternating (the side that goes first
/// alternating too); answers (with, without) latencies per filter.
async fn compare(args: &Args, with: Side<'_>, without: Side<'_>) -> anyhow::Result<Vec<Pair>> {
    let mut sides = Vec::new();
    for (server, bearer) in [with, without] {
        let mut channels = Vec::new();
        for _ in 0..args.connections.max(1) {
            channels.push(server.channel().await?);
        }
        sides.push((channels, bearer));
    }
    let per_round = args.requests.div_ceil(ROUNDS).max(1);
    let mut pairs = Vec::new();
    for (which, name) in FILTERS.iter().enumerate() {
        let mut times = [Vec::new(), Vec::new()];
        for (channels, bearer) in &sides {
            list(channels, bearer, args, 1, 0, which).await?; // warm-up
        }
        for round in 0..ROUNDS {
            for i in [round % 2, 1 - round % 2] {
                let (channels, bearer) = &sides[i];
                let t = list(channels, bearer, args, per_round, round * per_round, which).await?;
                times[i].extend(t);
            }
        }
        let pair = (p50_p99(&times[0]), p50_p99(&times[1]));
        eprintln!(
            "[security] {}: {:.2}/{:.2} ms with, {:.2}/{:.2} ms without",
            name, pair.0.0, pair.0.1, pair.1.0, pair.1.1
        );
        pairs.push(pair);
    }
    Ok(pairs)
}

/// ListCalls of filter `which` from `args.clients` concurrent clients,
/// `requests` each (request numbers from `first`), with `bearer` in the
/// metadata if given; every request's latency.
async fn list(
    channels: &[Channel],
    bearer: &Option<AsciiMetadataValue>,
    args: &Args,
    requests: usize,
    first: usize,
    which: usize,
) -> anyhow::Result<Vec<Duration>> {
    each_client(args.clients, |c| {
        let channel = channels[c % channels.len()].clone();
        let bearer = bearer.clone();
        let total = args.calls;
        async move {
            let mut client = listing::client(&channel);
            let mut latencies = Vec::with_capacity(requests);
            for r in first..first + requests {
                let k = (c * 1000 + r) as u64;
                let mut request = tonic::Request::new(proto::ListCallsRequest {
                    filter: Some(filter(which, k, total)),
                    ..Default::default()
                });
                if let Some(b) = &bearer {
                    request.metadata_mut().insert("authorization", b.clone());
                }
                let started = Instant::now();
                client.list_calls(request).await?;
                latencies.push(started.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }
    })
    .await
}
