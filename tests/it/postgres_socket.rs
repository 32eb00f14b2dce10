//! The sockets of callscope's PostgreSQL connections, and the round trips
//! on them: a statement whose messages leave in more than one write (over
//! TLS, any message larger than one 16 KiB record) must not wait for the
//! server's delayed ACK. sqlx 0.9.0 stopped setting `TCP_NODELAY`; callscope
//! carries the fix in `vendor/sqlx-core` (vendor/README.md), and the first
//! trial fails if a sqlx upgrade or a removed patch brings Nagle's algorithm
//! back. A read's `BEGIN` goes out with its first statement
//! (`vendor/sqlx-postgres`): the second trial puts a slow link between the
//! server and PostgreSQL and fails if a page costs a round trip more.
//!
//! Needs `CALLSCOPE_TEST_POSTGRES_URL` and, for the first, a server with
//! `ssl = on` (Debian's default; the split into records is what TLS adds).
//! Both run alone: they time.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use callscope::proto;
use libtest_mimic::Trial;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{
    Backend, Sharing, block_on, call, postgres_admin_url, postgres_url, spawn_app_on_with, tag,
    trial,
};

/// Statements timed; the verdict is on their median.
const STATEMENTS: usize = 21;

/// The bound text: four TLS records.
const BIND_BYTES: usize = 64 * 1024;

/// Linux's shortest delayed ACK is 40 ms: with Nagle on, every such
/// statement takes at least that. Without it one takes about a millisecond
/// here, so half of them under 20 ms holds on a loaded machine too.
const MEDIAN_LIMIT: Duration = Duration::from_millis(20);

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "postgres_socket::statements_with_large_binds_over_tls_wait_for_no_delayed_ack"
                .to_owned(),
            &[postgres_url, postgres_tls],
            Sharing::Alone,
            || {
                block_on(
                    None,
                    statements_with_large_binds_over_tls_wait_for_no_delayed_ack(),
                )
            },
        ),
        trial(
            "postgres_socket::a_page_of_calls_costs_three_round_trips_to_postgres".to_owned(),
            &[postgres_url],
            Sharing::Alone,
            || block_on(None, a_page_of_calls_costs_three_round_trips_to_postgres()),
        ),
        trial(
            "postgres_socket::a_failed_pipelined_begin_leaves_the_connection_usable".to_owned(),
            &[postgres_url],
            Sharing::Parallel,
            || {
                block_on(
                    None,
                    a_failed_pipelined_begin_leaves_the_connection_usable(),
                )
            },
        ),
    ]
}

/// A read's `BEGIN` rides, unanswered, ahead of its first statement
/// (vendor/README.md). Whatever fails there (the `BEGIN`'s own statements,
/// or the statement behind them), a first statement given up half way, or
/// a statement of another kind right after the `BEGIN`: the caller gets the
/// error, the statement does not run outside the transaction, and the one
/// connection of the pool is clean for the next transaction, no setting of
/// the last one seen by it. Every statement is prepared on the connection
/// first, so that the `BEGIN` rides with it rather than with a prepare.
async fn a_failed_pipelined_begin_leaves_the_connection_usable() {
    use sqlx::postgres::PgPoolOptions;
    use sqlx::{Executor, Row};
    const TENANT: &str = "SELECT current_setting('callscope.tenant', true) AS t, $1::int8 AS n";
    const SET_BAD_TIMEOUT: &str = "BEGIN READ ONLY; SET LOCAL statement_timeout = 'not a duration'";
    let url = postgres_admin_url().expect("CALLSCOPE_TEST_POSTGRES_URL");
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("connect");
    const SLOW: &str = "SELECT $1::int8 FROM pg_sleep(0.2)";
    for (sql, value) in [
        (TENANT, 1_i64),
        ("SELECT $1::int8", 1),
        ("SELECT 1 / $1::int8", 1),
        (SLOW, 1),
    ] {
        sqlx::query(sql)
            .bind(value)
            .fetch_all(&pool)
            .await
            .expect("prepare the statements");
    }
    pool.execute("CREATE TEMPORARY TABLE IF NOT EXISTS pipelined_write (x int8)")
        .await
        .expect("a temporary table of this connection");
    sqlx::query("CREATE TEMPORARY TABLE IF NOT EXISTS pipelined_write (x int8)")
        .execute(&pool)
        .await
        .expect("prepare the write");
    let tenant_of = |pool: sqlx::PgPool| async move {
        let mut tx = read_as(&pool, "next").await;
        let row = sqlx::query(TENANT)
            .bind(7_i64)
            .fetch_one(&mut *tx)
            .await
            .expect("the next transaction's statement");
        (row.get::<Option<String>, _>("t"), row.get::<i64, _>("n"))
    };
    let next = (Some("next".to_owned()), 7);
    // 1. A statement of the BEGIN fails: the statement behind it is refused
    //    with that error, never run; then dropped, or committed.
    for commit in [false, true] {
        let mut tx = pool
            .begin_with(SET_BAD_TIMEOUT)
            .await
            .expect("a pipelined BEGIN is only queued");
        let failed = sqlx::query("SELECT $1::int8")
            .bind(1_i64)
            .fetch_one(&mut *tx)
            .await
            .expect_err("the BEGIN's SET LOCAL fails");
        assert!(
            failed.to_string().contains("statement_timeout"),
            "the caller gets the BEGIN's error: {failed}"
        );
        if commit {
            // PostgreSQL ends a failed transaction's COMMIT as a rollback;
            // whichever sqlx answers, the connection must serve the next.
            let _ = tx.commit().await;
        } else {
            drop(tx);
        }
        assert_eq!(tenant_of(pool.clone()).await, next, "commit: {commit}");
    }
    // 2. The statement behind a good BEGIN fails.
    let mut tx = read_as(&pool, "failed").await;
    let failed = sqlx::query("SELECT 1 / $1::int8")
        .bind(0_i64)
        .fetch_one(&mut *tx)
        .await
        .expect_err("division by zero");
    assert!(failed.to_string().contains("division by zero"), "{failed}");
    drop(tx);
    assert_eq!(tenant_of(pool.clone()).await, next);
    // 3. A BEGIN that no statement followed, then rolled back or committed.
    let tx = read_as(&pool, "unused").await;
    drop(tx);
    let tx = read_as(&pool, "unused").await;
    tx.commit().await.expect("commit an empty transaction");
    assert_eq!(tenant_of(pool.clone()).await, next);
    // 4. The first statement given up before its answer (its future dropped
    //    after sending, while PostgreSQL runs it).
    let mut tx = read_as(&pool, "abandoned").await;
    let given_up = tokio::time::timeout(
        Duration::from_millis(20),
        sqlx::query(SLOW).bind(1_i64).fetch_one(&mut *tx),
    )
    .await;
    assert!(
        given_up.is_err(),
        "a 200 ms statement answered within 20 ms"
    );
    drop(tx);
    assert_eq!(tenant_of(pool.clone()).await, next);
    // 5. Statements of other kinds first after the BEGIN: an unprepared one,
    //    a simple query, a savepoint's. Each sees the transaction's tenant.
    let mut tx = read_as(&pool, "unprepared").await;
    let seen: Option<String> =
        sqlx::query_scalar("SELECT current_setting('callscope.tenant', true)")
            .persistent(false)
            .fetch_one(&mut *tx)
            .await
            .expect("an unprepared statement");
    assert_eq!(seen.as_deref(), Some("unprepared"));
    drop(tx);
    let mut tx = read_as(&pool, "simple").await;
    let row = (&mut *tx)
        .fetch_one("SELECT current_setting('callscope.tenant', true) AS t")
        .await
        .expect("a simple query");
    assert_eq!(row.get::<Option<String>, _>("t").as_deref(), Some("simple"));
    drop(tx);
    let mut tx = read_as(&pool, "saved").await;
    let mut savepoint = sqlx::Acquire::begin(&mut *tx).await.expect("a savepoint");
    let row = sqlx::query(TENANT)
        .bind(3_i64)
        .fetch_one(&mut *savepoint)
        .await
        .expect("a statement in the savepoint");
    assert_eq!(row.get::<Option<String>, _>("t").as_deref(), Some("saved"));
    drop(savepoint);
    drop(tx);
    assert_eq!(tenant_of(pool.clone()).await, next);
    // 6. A read-only transaction refuses a write, and the setting of a
    //    finished one does not outlive it.
    let mut tx = read_as(&pool, "ro").await;
    let failed = sqlx::query("CREATE TEMPORARY TABLE IF NOT EXISTS pipelined_write (x int8)")
        .execute(&mut *tx)
        .await
        .expect_err("a write in a read-only transaction");
    assert!(failed.to_string().contains("read-only"), "{failed}");
    drop(tx);
    let outside: Option<String> =
        sqlx::query_scalar("SELECT current_setting('callscope.tenant', true)")
            .fetch_one(&pool)
            .await
            .expect("a statement outside any transaction");
    assert!(
        outside.as_deref().unwrap_or("").is_empty(),
        "a transaction's tenant outlived it: {outside:?}"
    );
    pool.close().await;
}

/// The admin URL's options, with TLS required; `None` without the URL
/// (which [`postgres_url`] reports).
/// A read transaction begun as the store begins one, declaring `tenant`:
/// queued, to go out with its first statement.
async fn read_as(pool: &sqlx::PgPool, tenant: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let begin = format!("BEGIN READ ONLY; SET LOCAL callscope.tenant = '{tenant}'");
    pool.begin_with(sqlx::AssertSqlSafe(begin))
        .await
        .expect("begin")
}

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

/// The one-way delay the slow link adds to what the server sends PostgreSQL.
const LINK_DELAY: Duration = Duration::from_millis(50);

/// A page of calls with tags is three statements (the page, its tags, its
/// tag groups), so three round trips; the read transaction's `BEGIN` (with
/// the tenant's `SET LOCAL`) rides on the first. Through a link that delays
/// each of the server's writes by [`LINK_DELAY`], the fastest ListCalls then
/// takes three delays longer than without it, and four with the `BEGIN`
/// waited on alone. The link also reads what the server sends (without TLS
/// here): the `BEGIN`'s statements in the same write as the page's bind,
/// under its one Sync, and each ROLLBACK without a Sync of its own.
async fn a_page_of_calls_costs_three_round_trips_to_postgres() {
    let link = Arc::new(SlowLink::default());
    let server_link = link.clone();
    let mut app = spawn_app_on_with(Backend::Postgres, move |config| {
        config.database_url = through_slow_link(&config.database_url, server_link);
        // Few connections: each holds the statements prepared after the
        // warm-up, and none is idle long enough to be pinged when taken.
        config.db_max_connections = 2;
    })
    .await;
    let mut calls = Vec::new();
    for i in 0..20 {
        let mut c = call(
            &format!("rt-{i}"),
            "13800000000",
            &format!("2026-03-01T10:{i:02}:00Z"),
        );
        c.tags = vec![tag("t1", &["g1"]), tag("t2", &[])];
        calls.push(c);
    }
    app.upsert(calls).await;
    // Newest first: rt-19 down to rt-5.
    let newest: Vec<String> = (5..20).rev().map(|i| format!("rt-{i}")).collect();
    // Every call, and the calls of one number: the second reads with the
    // page's settings, so its BEGIN carries a `SET LOCAL` more, whose
    // answer arrives ahead of the page's and must not join it.
    let filters = [
        proto::CallFilter::default(),
        proto::CallFilter {
            phone: "13800000000".to_owned(),
            ..Default::default()
        },
    ];
    let list = |filter: &proto::CallFilter| {
        let mut client = app.calls.clone();
        let request = proto::ListCallsRequest {
            filter: Some(filter.clone()),
            page_size: 15,
            ..Default::default()
        };
        let newest = newest.clone();
        async move {
            let started = Instant::now();
            let page = client
                .list_calls(request)
                .await
                .expect("list calls")
                .into_inner();
            let took = started.elapsed();
            let ids: Vec<String> = page.calls.iter().map(|c| c.external_id.clone()).collect();
            assert_eq!(ids, newest);
            assert!(page.calls.iter().all(|c| c.tags.len() == 2));
            took
        }
    };
    // The fastest of eight pages, each after the connection came back to
    // its pool (its release ping is a round trip after the answer). The
    // server's background work (event polls, the health watch) shares the
    // pools and can only add round trips to a page; none can take one away.
    let fastest = || {
        let list = &list;
        let filters = &filters;
        async move {
            let mut took = Vec::new();
            for k in 0..8 {
                took.push(list(&filters[k % 2]).await);
                tokio::time::sleep(LINK_DELAY * 2).await;
            }
            took.into_iter().min().unwrap_or_default()
        }
    };
    // The pages' statements get prepared (a round trip each, once) before
    // anything is timed.
    fastest().await;
    let direct = fastest().await;
    link.delay_ms
        .store(LINK_DELAY.as_millis() as u64, Ordering::Relaxed);
    let slowed = fastest().await;
    let round_trips = slowed.saturating_sub(direct).as_secs_f64() / LINK_DELAY.as_secs_f64();
    assert!(
        round_trips > 2.5,
        "ListCalls took {slowed:?} through the slow link and {direct:?} without (fastest of eight): \
         {round_trips:.2} delays of {LINK_DELAY:?}, under three, so the link did not delay \
         the page's three statements"
    );
    assert!(
        round_trips < 3.5,
        "ListCalls took {slowed:?} through the slow link and {direct:?} without (fastest of eight): \
         {round_trips:.2} delays of {LINK_DELAY:?}, three being the page, its tags and its tag \
         groups; a round trip more means the read's BEGIN was waited on by itself (see \
         vendor/README.md)"
    );
    // Each page's BEGIN went out in the same write as its first statement's
    // bind, as parsed statements (`P`) under that statement's one Sync
    // (`S`): PostgreSQL answers the lot with one write. The phone page's
    // BEGIN sets the tenant and the page's setting with a `SET LOCAL` each:
    // a `SELECT set_config(…)` there cost PostgreSQL 0.15-0.35 ms more a
    // page (BENCHMARKS.md, thirteenth session).
    let writes = link.slowed_writes.lock().unwrap_or_else(|e| e.into_inner());
    let shown: Vec<String> = writes.iter().map(|w| describe_write(w)).collect();
    let tenant = "SET LOCAL callscope.tenant = 'default'";
    let every_call_begin = ["BEGIN READ ONLY", tenant];
    let phone_begin = [
        "BEGIN READ ONLY",
        tenant,
        "SET LOCAL max_parallel_workers_per_gather = '0'",
    ];
    for begin in [&every_call_begin[..], &phone_begin[..]] {
        assert!(
            writes.iter().any(|w| carries_begin_with_bind(w, begin)),
            "no write to PostgreSQL carried the BEGIN {begin:?} as parsed statements with a \
             statement's bind under one Sync; the writes: {shown:#?}"
        );
    }
    let statements = link.statements.lock().unwrap_or_else(|e| e.into_inner());
    let simple_begins: Vec<&String> = statements
        .iter()
        .filter(|(kind, text)| *kind == b'Q' && text.starts_with("BEGIN READ ONLY"))
        .map(|(_, text)| text)
        .collect();
    assert!(
        simple_begins.is_empty(),
        "a read's BEGIN went out as a simple query, answered apart from its statement: \
         {simple_begins:?}"
    );
    let selects: Vec<&String> = statements
        .iter()
        .map(|(_, text)| text)
        .filter(|text| text.starts_with("SELECT set_config"))
        .collect();
    assert!(
        selects.is_empty(),
        "a transaction set its tenant with a SELECT of set_config: {selects:?}"
    );
    // A page's transaction ends with the ROLLBACK queued when it is dropped;
    // that ROLLBACK's answer is the pool's release ping, with no Sync more.
    let rollbacks: Vec<&Vec<(u8, String)>> = writes
        .iter()
        .filter(|w| {
            w.iter()
                .any(|(kind, text)| *kind == b'Q' && text == "ROLLBACK")
        })
        .collect();
    assert!(
        !rollbacks.is_empty(),
        "no page ended with a ROLLBACK: {shown:#?}"
    );
    assert!(
        rollbacks
            .iter()
            .all(|w| !w.iter().any(|(kind, _)| *kind == b'S')),
        "a ROLLBACK went out with a Sync, which PostgreSQL answers apart: {shown:#?}"
    );
}

/// Whether `write` holds `begin`'s statements parsed (`P`) in order, then a
/// bind (`B`), and one Sync (`S`), last.
fn carries_begin_with_bind(write: &[(u8, String)], begin: &[&str]) -> bool {
    let parsed: Vec<&str> = write
        .iter()
        .filter(|(kind, _)| *kind == b'P')
        .map(|(_, text)| text.as_str())
        .collect();
    let syncs = write.iter().filter(|(kind, _)| *kind == b'S').count();
    parsed.starts_with(begin)
        && write.iter().any(|(kind, _)| *kind == b'B')
        && syncs == 1
        && write.last().map(|(kind, _)| *kind) == Some(b'S')
}

/// A write's messages as their kinds, with the text of queries and parses.
fn describe_write(write: &[(u8, String)]) -> String {
    write
        .iter()
        .map(|(kind, text)| {
            if text.is_empty() {
                (*kind as char).to_string()
            } else {
                format!("{}({text})", *kind as char)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The proxy of [`through_slow_link`]: the delay it adds, and what went
/// through it while it delayed.
#[derive(Default)]
struct SlowLink {
    /// Milliseconds each piece the client sends is held.
    delay_ms: AtomicU64,
    /// The protocol messages in each piece the client sent while
    /// `delay_ms` was above zero: their kinds (type bytes), with the text
    /// of each simple query (`Q`) and parse (`P`).
    slowed_writes: std::sync::Mutex<Vec<Vec<(u8, String)>>>,
    /// The kind and text of every simple query and parse the client sent.
    statements: std::sync::Mutex<Vec<(u8, String)>>,
}

/// The frontend messages that start in `piece`: each its type byte, and its
/// body where `piece` holds it whole. Past the start-up, a write is whole
/// messages.
fn frontend_messages(piece: &[u8]) -> impl Iterator<Item = (u8, Option<&[u8]>)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let header = piece.get(at..at + 5)?;
        let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if length < 4 {
            return None;
        }
        let body = piece.get(at + 5..at + 1 + length);
        at += 1 + length;
        Some((header[0], body))
    })
}

/// The frontend messages that start in `piece`: each its kind, with the
/// SQL text of a simple query (`Q`: the body) or a parse (`P`: the second
/// string of the body, after the statement's name); empty for the others.
fn messages(piece: &[u8]) -> Vec<(u8, String)> {
    frontend_messages(piece)
        .map(|(kind, body)| {
            let strings = |body: &[u8]| -> Vec<String> {
                body.split(|b| *b == 0)
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            };
            let text = match (kind, body) {
                (b'Q', Some(body)) => strings(body).into_iter().next(),
                (b'P', Some(body)) => strings(body).into_iter().nth(1),
                _ => None,
            };
            (kind, text.unwrap_or_default())
        })
        .collect()
}

/// `url` (a PostgreSQL URL, without TLS, so that `link` can read it) pointed
/// at a proxy on loopback that forwards to its server, holding each piece
/// the client sends for `link.delay_ms` (what PostgreSQL sends comes back at
/// once).
fn through_slow_link(url: &str, link: Arc<SlowLink>) -> String {
    let mut url = url::Url::parse(url).expect("a PostgreSQL URL");
    let upstream = format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port().unwrap_or(5432)
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the link");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("the link's address").port();
    let listener = TcpListener::from_std(listener).expect("the link's listener");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, link) = (upstream.clone(), link.clone());
            tokio::spawn(async move {
                if let Ok(server) = TcpStream::connect(&upstream).await {
                    forward(client, server, link).await;
                }
            });
        }
    });
    url.set_host(Some("127.0.0.1")).expect("a host");
    url.set_port(Some(port)).expect("a port");
    url.query_pairs_mut().append_pair("sslmode", "disable");
    url.to_string()
}

/// Carries one connection both ways until either side closes it: each
/// piece from `client` leaves `link.delay_ms` after it arrived, in order.
async fn forward(client: TcpStream, server: TcpStream, link: Arc<SlowLink>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (pieces, mut due) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = client_read.read(&mut buf).await {
            let delay = link.delay_ms.load(Ordering::Relaxed);
            let piece = messages(&buf[..n]);
            link.statements
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(piece.iter().filter(|(_, text)| !text.is_empty()).cloned());
            if delay > 0 {
                link.slowed_writes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(piece);
            }
            let at = Instant::now() + Duration::from_millis(delay);
            if pieces.send((at, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    let write = async move {
        while let Some((at, piece)) = due.recv().await {
            tokio::time::sleep_until(at.into()).await;
            if server_write.write_all(&piece).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let back = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(read, write, back);
}
