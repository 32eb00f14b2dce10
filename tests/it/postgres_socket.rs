//! The sockets of callscope's PostgreSQL connections: a statement whose
//! messages leave in more than one write (over TLS, any message larger than
//! one 16 KiB record) must not wait for the server's delayed ACK. sqlx 0.9.0
//! stopped setting `TCP_NODELAY`; callscope carries the fix in
//! `vendor/sqlx-core` (vendor/README.md), and this trial fails if a sqlx
//! upgrade or a removed patch brings Nagle's algorithm back.
//!
//! Needs `CALLSCOPE_TEST_POSTGRES_URL` and a server with `ssl = on` (Debian's
//! default; the split into records is what TLS adds). Runs alone: it times.

use std::str::FromStr;
use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::helpers::{Sharing, block_on, postgres_admin_url, postgres_url, trial};

/// Statements timed; the verdict is on their median.
const STATEMENTS: usize = 21;

/// The bound text: four TLS records.
const BIND_BYTES: usize = 64 * 1024;

/// Linux's shortest delayed ACK is 40 ms: with Nagle on, every such
/// statement takes at least that. Without it one takes about a millisecond
/// here, so half of them under 20 ms holds on a loaded machine too.
const MEDIAN_LIMIT: Duration = Duration::from_millis(20);

pub fn trials() -> Vec<Trial> {
    vec![trial(
        "postgres_socket::statements_with_large_binds_over_tls_wait_for_no_delayed_ack".to_owned(),
        &[postgres_url, postgres_tls],
        Sharing::Alone,
        || {
            block_on(
                None,
                statements_with_large_binds_over_tls_wait_for_no_delayed_ack(),
            )
        },
    )]
}

/// The admin URL's options, with TLS required; `None` without the URL
/// (which [`postgres_url`] reports).
fn tls_options() -> Option<PgConnectOptions> {
    let url = postgres_admin_url().ok()?;
    let options = PgConnectOptions::from_str(&url)
        .expect("CALLSCOPE_TEST_POSTGRES_URL is a PostgreSQL URL")
        .ssl_mode(PgSslMode::Require);
    Some(options)
}

/// Prerequisite: the test server takes TLS. Only a server that answers
/// without TLS and refuses it counts as missing the prerequisite; one that
/// does not answer at all is left to fail the trial, as it fails every
/// other PostgreSQL trial.
fn postgres_tls() -> Result<(), String> {
    let Some(tls) = tls_options() else {
        return Ok(());
    };
    let plain = tls.clone().ssl_mode(PgSslMode::Disable);
    let connect = |options: PgConnectOptions| async move {
        tokio::time::timeout(Duration::from_secs(5), options.connect())
            .await
            .map_err(|_| "no answer in 5 s".to_owned())?
            .map(drop)
            .map_err(|e| e.to_string())
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        if connect(plain).await.is_err() {
            return Ok(());
        }
        connect(tls).await.map_err(|e| {
            format!(
                "the PostgreSQL of CALLSCOPE_TEST_POSTGRES_URL takes no TLS connection \
                 (ssl = on in its postgresql.conf; Debian's default): {e}"
            )
        })
    })
}

async fn statements_with_large_binds_over_tls_wait_for_no_delayed_ack() {
    let options = tls_options().expect("CALLSCOPE_TEST_POSTGRES_URL");
    let mut conn = options.connect().await.expect("connect with TLS");
    let text = "x".repeat(BIND_BYTES);
    let mut took = Vec::with_capacity(STATEMENTS);
    for _ in 0..STATEMENTS {
        let started = Instant::now();
        let length: i32 = sqlx::query_scalar("SELECT length($1)")
            .bind(&text)
            .fetch_one(&mut conn)
            .await
            .expect("SELECT length($1)");
        took.push(started.elapsed());
        assert_eq!(length as usize, BIND_BYTES);
    }
    took.sort();
    let median = took[STATEMENTS / 2];
    assert!(
        median < MEDIAN_LIMIT,
        "a statement with a {BIND_BYTES}-byte bind took {median:?} (median of {STATEMENTS}; \
         fastest {:?}): its last write waited for a delayed ACK, so the PostgreSQL socket \
         has Nagle's algorithm on (see vendor/README.md)",
        took[0]
    );
}
