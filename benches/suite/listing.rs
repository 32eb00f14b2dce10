//! Listings: ListCalls over gRPC for five filters beside the same listing
//! written out in SQL here (the statement the store runs, and the two
//! statements that fetch a page's tags), run directly through sqlx at the
//! same concurrency; and page 1 against a deep page of one listing.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use bytes::{Buf, Bytes};
use prost::Message;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{Encode, Postgres, QueryBuilder, Row, Sqlite, Type};
use tonic::Status;
use tonic::client::Grpc;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic_prost::ProstEncoder;

use crate::data::{DAY_MS, START_MS, TAG_GROUPS, TASKS, TENANT, mix, phone, ts};
use crate::server::MAX_MESSAGE_BYTES;
use callscope::proto::{self, call_service_client::CallServiceClient};
use callscope::store::{Dialect, SELECT_CALLS, TagStatement};

pub const FILTERS: &[&str] = &[
    "task + 7-day window",
    "phone",
    "score ranges + tags",
    "tag group + intent level",
    "transcript text",
];

/// Calls per page, as the CRM asks for them.
const PAGE: usize = 15;
/// `TURN_KIND_PROGRESS`: interim recognition turns, left out of text search.
const TURN_KIND_PROGRESS: i64 = 3;

/// The `which`-th filter, varied by request number `k` where it makes sense.
pub fn filter(which: usize, k: u64, total: u64) -> proto::CallFilter {
    match which {
        0 => {
            let day = (k % 80) as i64;
            proto::CallFilter {
                task_ids: vec![format!("task-{:02}", k % TASKS)],
                start_time: Some(ts(START_MS + day * DAY_MS)),
                end_time: Some(ts(START_MS + (day + 7) * DAY_MS)),
                ..Default::default()
            }
        }
        1 => proto::CallFilter {
            phone: phone(mix(k) % total),
            ..Default::default()
        },
        2 => proto::CallFilter {
            score_ranges: vec![
                proto::ScoreRange {
                    min: Some(100),
                    max: Some(200),
                },
                proto::ScoreRange {
                    min: Some(400),
                    max: None,
                },
            ],
            tag_ids: vec![format!("t{:02}", k % 50), format!("t{:02}", (k + 17) % 50)],
            ..Default::default()
        },
        3 => proto::CallFilter {
            tag_group_ids: vec![format!("g{}", k % TAG_GROUPS as u64)],
            intent_level_ids: vec!["A".to_owned()],
            ..Default::default()
        },
        _ => proto::CallFilter {
            transcript_contains: "微信".to_owned(),
            ..Default::default()
        },
    }
}

/// Completes [`SELECT_CALLS`] for `filter(which, k, total)` and the first
/// page (15 calls and one more, to know whether a next page exists), as the
/// store writes it.
fn push_listing<DB>(qb: &mut QueryBuilder<DB>, which: usize, k: u64, total: u64)
where
    DB: Dialect,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    qb.push(" WHERE c.tenant_id = ")
        .push_bind(TENANT.to_owned());
    match which {
        0 => {
            let day = (k % 80) as i64;
            qb.push(" AND c.task_id IN (")
                .push_bind(format!("task-{:02}", k % TASKS))
                .push(") AND c.call_time >= ")
                .push_bind(START_MS + day * DAY_MS)
                .push(" AND c.call_time < ")
                .push_bind(START_MS + (day + 7) * DAY_MS);
        }
        1 => {
            let phone = phone(mix(k) % total);
            qb.push(" AND c.call_id IN (SELECT p.call_id FROM calls p WHERE p.tenant_id = ")
                .push_bind(TENANT.to_owned())
                .push(" AND p.callee = ")
                .push_bind(phone.clone())
                .push(format_args!(
                    " UNION ALL SELECT p.call_id FROM {} WHERE p.tenant_id = ",
                    DB::CALLS_BY_CALLER
                ))
                .push_bind(TENANT.to_owned())
                .push(" AND p.caller = ")
                .push_bind(phone)
                .push(")");
        }
        2 => {
            let mut tags = vec![format!("t{:02}", k % 50), format!("t{:02}", (k + 17) % 50)];
            tags.sort();
            tags.dedup();
            // The store's score ranges (`filter_sql.rs`), on the expression
            // its `calls_by_score` index is on.
            qb.push(" AND ((COALESCE(c.score, -2147483649) >= ")
                .push_bind(100_i64)
                .push(" AND COALESCE(c.score, -2147483649) < ")
                .push_bind(200_i64)
                .push(") OR (COALESCE(c.score, -2147483649) >= ")
                .push_bind(400_i64)
                .push(
                    ")) AND EXISTS (SELECT 1 FROM call_tags t \
                       WHERE t.tenant_id = c.tenant_id AND t.call_id = c.call_id AND t.tag_id IN (",
                );
            let mut list = qb.separated(", ");
            for tag in tags {
                list.push_bind(tag);
            }
            qb.push("))");
        }
        3 => {
            qb.push(
                " AND EXISTS (SELECT 1 FROM call_tag_groups g \
                 WHERE g.tenant_id = c.tenant_id AND g.call_id = c.call_id AND g.group_id IN (",
            )
            .push_bind(format!("g{}", k % TAG_GROUPS as u64))
            .push(")) AND c.intent_level_id IN (")
            .push_bind("A".to_owned())
            .push(")");
        }
        _ => {
            let pattern = "%微信%".to_owned();
            qb.push(
                " AND EXISTS (SELECT 1 FROM dialogue_turns d \
                 WHERE d.tenant_id = c.tenant_id AND d.call_id = c.call_id AND d.kind <> ",
            )
            .push_bind(TURN_KIND_PROGRESS)
            .push(" AND (d.customer_text LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR d.robot_text LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\'))");
        }
    }
    // As the store writes it: the limit in the text where the filter's plan
    // fits any values (task and window), bound otherwise.
    qb.push(" ORDER BY c.call_time DESC, c.call_id DESC LIMIT ");
    if which == 0 {
        qb.push(PAGE as i64 + 1);
    } else {
        qb.push_bind(PAGE as i64 + 1);
    }
}

/// A pool for the direct baseline, sized like the server's.
#[derive(Clone)]
pub enum Direct {
    Pg(PgPool),
    Sqlite(SqlitePool),
}

impl Direct {
    /// The listing SQL of the first page of `filter(which, k, total)`, rows
    /// fetched and only their call ids decoded; with `tags`, also the two statements that
    /// fetch the tags and tag groups of the page, as the store does, on the
    /// same connection (as the store holds one for its three: taking the
    /// pool's connection for each statement cost the baseline two more
    /// hand-backs, each a round trip). Answers the page's call ids.
    pub async fn list(
        &self,
        which: usize,
        k: u64,
        total: u64,
        tags: bool,
    ) -> anyhow::Result<Vec<String>> {
        match self {
            Direct::Pg(pool) => {
                let mut conn = pool.acquire().await?;
                let mut qb = QueryBuilder::<Postgres>::new(SELECT_CALLS);
                push_listing(&mut qb, which, k, total);
                let rows = qb.build().fetch_all(&mut *conn).await?;
                let ids = rows
                    .iter()
                    .take(PAGE)
                    .map(|r| r.try_get::<String, _>("call_id"))
                    .collect::<Result<Vec<_>, _>>()?;
                if tags && !ids.is_empty() {
                    for statement in TagStatement::BOTH {
                        let mut qb = statement.query::<Postgres>(TENANT, &ids, false);
                        qb.build().fetch_all(&mut *conn).await?;
                    }
                }
                Ok(ids)
            }
            Direct::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                let mut qb = QueryBuilder::<Sqlite>::new(SELECT_CALLS);
                push_listing(&mut qb, which, k, total);
                let rows = qb.build().fetch_all(&mut *conn).await?;
                let ids = rows
                    .iter()
                    .take(PAGE)
                    .map(|r| r.try_get::<String, _>("call_id"))
                    .collect::<Result<Vec<_>, _>>()?;
                if tags && !ids.is_empty() {
                    for statement in TagStatement::BOTH {
                        let mut qb = statement.query::<Sqlite>(TENANT, &ids, false);
                        qb.build().fetch_all(&mut *conn).await?;
                    }
                }
                Ok(ids)
            }
        }
    }
}

/// The generated CallService client on `channel`, taking the suite's largest
/// messages.
pub fn client(channel: &Channel) -> CallServiceClient<Channel> {
    CallServiceClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES)
}

/// How the timed ListCalls clients take their answer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// As the message's bytes, whole but not decoded: as the direct SQL
    /// fetches its rows and decodes only their call ids. The
    /// listing measures compare the service with its SQL on this footing,
    /// since a client's decoding is its own work, on its own machine in
    /// production, and here it shares the server's two cores.
    Undecoded,
    /// Decoded into `ListCallsResponse` by prost, as a generated client
    /// does: what a Rust client sees (`pg_list_p99_ms`), and a diagnostic
    /// beside the measure.
    Decoded,
}

/// ListCalls through the same channel and codec settings as the generated
/// client, with the answer left as the bytes of its message.
#[derive(Clone)]
struct UndecodedClient(Grpc<Channel>);

impl UndecodedClient {
    fn new(channel: &Channel) -> Self {
        Self(Grpc::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES))
    }

    async fn list_calls(&mut self, request: proto::ListCallsRequest) -> anyhow::Result<Bytes> {
        self.0.ready().await?;
        let path = PathAndQuery::from_static("/callscope.v1.CallService/ListCalls");
        let answer = self
            .0
            .unary(tonic::Request::new(request), path, UndecodedCodec)
            .await?;
        Ok(answer.into_inner())
    }
}

/// prost's encoder for the request; the answer's bytes as they arrived.
#[derive(Clone, Copy)]
struct UndecodedCodec;

impl Codec for UndecodedCodec {
    type Encode = proto::ListCallsRequest;
    type Decode = Bytes;
    type Encoder = ProstEncoder<proto::ListCallsRequest>;
    type Decoder = UndecodedDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        UndecodedDecoder
    }
}

struct UndecodedDecoder;

impl Decoder for UndecodedDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Checks that the SQL written here selects what the server answers, for a
/// few requests of every filter.
pub async fn check_same_rows(channel: &Channel, direct: &Direct, total: u64) -> anyhow::Result<()> {
    let mut client = client(channel);
    for (which, name) in FILTERS.iter().enumerate() {
        for k in 0..3 {
            let page = client
                .list_calls(proto::ListCallsRequest {
                    filter: Some(filter(which, k, total)),
                    page_size: PAGE as i32,
                    ..Default::default()
                })
                .await?
                .into_inner();
            // The undecoded client gets the very same message.
            let undecoded = UndecodedClient::new(channel)
                .list_calls(proto::ListCallsRequest {
                    filter: Some(filter(which, k, total)),
                    page_size: PAGE as i32,
                    ..Default::default()
                })
                .await?;
            ensure!(
                proto::ListCallsResponse::decode(undecoded)? == page,
                "filter `{name}` #{k}: the undecoded client's answer is not the decoded one's"
            );
            let grpc: Vec<String> = page.calls.into_iter().map(|c| c.call_id).collect();
            let sql = direct.list(which, k, total, false).await?;
            ensure!(
                grpc == sql,
                "filter `{name}` #{k}: the server's page ({} calls) is not the bench SQL's ({} calls)",
                grpc.len(),
                sql.len()
            );
        }
    }
    Ok(())
}

/// Runs `client(c)` for each of `clients` clients, all at once, each in a
/// task of its own that times its own requests; every request's latency.
pub async fn each_client<F, Fut>(clients: usize, client: F) -> anyhow::Result<Vec<Duration>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<Duration>>> + Send + 'static,
{
    let tasks: Vec<_> = (0..clients).map(|c| tokio::spawn(client(c))).collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

/// ListCalls of filter `which` from `clients` concurrent clients, `requests`
/// each, answers taken as `answer` says; every request's latency.
pub async fn grpc(
    channels: &[Channel],
    clients: usize,
    requests: usize,
    total: u64,
    which: usize,
    answer: Answer,
) -> anyhow::Result<Vec<Duration>> {
    each_client(clients, |c| {
        let channel = &channels[c % channels.len()];
        let (mut decoded, mut undecoded) = (client(channel), UndecodedClient::new(channel));
        async move {
            let mut latencies = Vec::with_capacity(requests);
            for r in 0..requests {
                let k = (c * requests + r) as u64;
                let request = proto::ListCallsRequest {
                    filter: Some(filter(which, k, total)),
                    ..Default::default()
                };
                let started = Instant::now();
                match answer {
                    Answer::Decoded => drop(decoded.list_calls(request).await?),
                    Answer::Undecoded => drop(undecoded.list_calls(request).await?),
                }
                latencies.push(started.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }
    })
    .await
}

/// The floor under every RPC: `grpc.health.v1.Health/Check` (no store, an
/// answer of a few bytes) from `clients` concurrent clients on `channels`,
/// `requests` each, through the same server and layers as ListCalls; every
/// request's latency.
pub async fn health(
    channels: &[Channel],
    clients: usize,
    requests: usize,
) -> anyhow::Result<Vec<Duration>> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    each_client(clients, |c| {
        let mut client = HealthClient::new(channels[c % channels.len()].clone());
        async move {
            let mut latencies = Vec::with_capacity(requests);
            for _ in 0..requests {
                let started = Instant::now();
                client.check(HealthCheckRequest::default()).await?;
                latencies.push(started.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }
    })
    .await
}

/// The same requests as [`grpc`], as SQL run directly.
pub async fn direct(
    direct: &Direct,
    clients: usize,
    requests: usize,
    total: u64,
    which: usize,
    tags: bool,
) -> anyhow::Result<Vec<Duration>> {
    each_client(clients, |c| {
        let direct = direct.clone();
        async move {
            let mut latencies = Vec::with_capacity(requests);
            for r in 0..requests {
                let k = (c * requests + r) as u64;
                let started = Instant::now();
                direct.list(which, k, total, tags).await?;
                latencies.push(started.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }
    })
    .await
}

/// The page token after the first `row` calls of the default listing, got
/// the way a client gets it: by paging there (1000 calls a page; the token
/// does not depend on the page size).
pub async fn token_after(channel: &Channel, row: u64) -> anyhow::Result<String> {
    let mut client = client(channel);
    let (mut token, mut left) = (String::new(), row);
    while left > 0 {
        let size = left.min(1000);
        let page = client
            .list_calls(proto::ListCallsRequest {
                page_token: token,
                page_size: size as i32,
                ..Default::default()
            })
            .await?
            .into_inner();
        if page.calls.len() as u64 != size || page.next_page_token.is_empty() {
            bail!("the listing ended before row {row}");
        }
        token = page.next_page_token;
        left -= size;
    }
    Ok(token)
}

/// Times `n` sequential ListCalls of a page of 15 of the whole listing from
/// `token`.
pub async fn time_page(channel: &Channel, token: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut client = client(channel);
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let page = client
            .list_calls(proto::ListCallsRequest {
                page_token: token.to_owned(),
                page_size: PAGE as i32,
                ..Default::default()
            })
            .await?
            .into_inner();
        latencies.push(started.elapsed());
        if page.calls.len() != PAGE {
            bail!("a page of {} calls, expected {PAGE}", page.calls.len());
        }
    }
    Ok(latencies)
}
