//! The integration tests: one binary (as zero2prod's `tests/api/main.rs`),
//! each module a group of tests against the real server. Every
//! `async fn(TestApp)` test runs once per backend (`<module>::sqlite::<name>`,
//! `<module>::postgres::<name>`), each on its own server on port 0 with its own
//! new database, in parallel.
//!
//! The harness is libtest-mimic (`harness = false`), so that a test whose
//! prerequisite is missing (`CALLSCOPE_TEST_POSTGRES_URL`, grpcurl, the
//! PostgreSQL binaries of the outage test, pgbouncer) is reported as
//! `ignored` with the reason, never as passed; under `CI=true` it fails
//! instead.

#![recursion_limit = "512"]

mod admin;
mod analytics;
mod auth;
mod bounded_work;
mod calls;
mod conflicts;
mod events;
mod export_limit;
mod fidelity;
mod helpers;
mod isolation;
mod json_api;
mod json_clients;
mod logs;
mod nats_sink;
mod number_states;
mod operations;
mod outage;
mod pg_cluster;
mod pgbouncer;
mod postgres_socket;
mod readme;
mod readside;
mod replica;
mod rollups;
mod row_security;
mod server;
mod smartivr_standin;
mod statistics;
mod subscriptions;
mod sync;
mod tls;
mod vendors;
mod watch_filters;

use std::process::ExitCode;

use libtest_mimic::{Arguments, Trial};

fn main() -> ExitCode {
    let args = Arguments::from_args();
    // The servers' own logs, when a failure needs them:
    // `CALLSCOPE_TEST_LOG=error cargo test --test it -- <name>`.
    if let Ok(filter) = std::env::var("CALLSCOPE_TEST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let trials: Vec<Trial> = [
        admin::trials(),
        analytics::trials(),
        auth::trials(),
        bounded_work::trials(),
        calls::trials(),
        conflicts::trials(),
        events::trials(),
        export_limit::trials(),
        fidelity::trials(),
        isolation::trials(),
        json_api::trials(),
        json_clients::trials(),
        logs::trials(),
        operations::trials(),
        nats_sink::trials(),
        outage::trials(),
        pgbouncer::trials(),
        postgres_socket::trials(),
        readme::trials(),
        replica::trials(),
        number_states::trials(),
        readside::trials(),
        rollups::trials(),
        row_security::trials(),
        server::trials(),
        statistics::trials(),
        sync::trials(),
        subscriptions::trials(),
        tls::trials(),
        vendors::trials(),
        watch_filters::trials(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if !args.list && conclusion.num_ignored > 0 {
        report_skipped(&args);
    }
    conclusion.exit_code()
}

/// After a run that ignored trials for a missing prerequisite: a `SKIPPED`
/// line per prerequisite with the selected trials it kept from running.
fn report_skipped(args: &Arguments) {
    let selected = |name: &str| {
        let matches = |pattern: &str| {
            if args.exact {
                name == pattern
            } else {
                name.contains(pattern)
            }
        };
        args.filter.as_deref().is_none_or(matches) && !args.skip.iter().any(|s| matches(s))
    };
    let skipped: Vec<(String, Vec<String>)> = helpers::skipped()
        .into_iter()
        .filter(|(name, _)| selected(name))
        .collect();
    if skipped.is_empty() {
        return;
    }
    let mut reasons: Vec<&String> = Vec::new();
    for (_, missing) in &skipped {
        for why in missing {
            if !reasons.contains(&why) {
                reasons.push(why);
            }
        }
    }
    eprintln!();
    for why in reasons {
        let names: Vec<&str> = skipped
            .iter()
            .filter(|(_, missing)| missing.contains(why))
            .map(|(name, _)| name.as_str())
            .collect();
        eprintln!("SKIPPED {} test(s): {why}", names.len());
        for name in names {
            eprintln!("    {name}");
        }
    }
    eprintln!(
        "{} test(s) were SKIPPED (reported as ignored); with CI=true they fail instead.",
        skipped.len()
    );
}
