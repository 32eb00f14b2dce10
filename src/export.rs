//! `callscope export`: a client of CallService.ExportCalls that writes every
//! call of a filter as CSV (one flat row per call, header of the unified
//! field names) or NDJSON (a call per line in the proto3 JSON mapping), resuming from its last token by itself when the
//! connection drops, with a progress bar when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::config::{ExportConfig, ExportFormat};
use crate::proto::{self, call_service_client::CallServiceClient};

/// Reconnections in a row after which the export gives up.
const MAX_RETRIES: u32 = 8;

/// The columns of the CSV, in order: the unified field names, nested parts
/// flattened (`intent_level_id`, `province`, `cost`, …).
pub const CSV_COLUMNS: &[&str] = &[
    "call_id",
    "source",
    "external_id",
    "task_id",
    "parent_task_id",
    "script_id",
    "callee",
    "callee_raw",
    "caller",
    "caller_raw",
    "submit_time",
    "call_time",
    "ring_time",
    "answer_time",
    "hangup_time",
    "ring_ms",
    "talk_ms",
    "total_ms",
    "billed_ms",
    "outcome",
    "vendor_status",
    "hangup_cause",
    "sip_code",
    "hangup_by",
    "score",
    "intent_level_id",
    "intent_level_name",
    "rounds",
    "tag_ids",
    "tag_group_ids",
    "recording_url",
    "gender",
    "province",
    "city",
    "area_code",
    "carrier",
    "region",
    "post_code",
    "rate",
    "base_cost",
    "cost",
    "currency",
    "settle_rate",
    "settle_cost",
    "quote_exchange",
    "bill_period",
    "base_cost_currency",
    "settle_currency",
    "dtmf",
    "recall_count",
    "recall_of",
    "customer_name",
    "line_id",
    "attributes",
    "update_time",
    "sync_time",
];

/// Runs an export; answers how many calls were written.
pub async fn run_export(config: &ExportConfig) -> anyhow::Result<u64> {
    let channel = connect(config).await?;
    let mut client = CallServiceClient::new(channel)
        .max_decoding_message_size(crate::domain::limits::MAX_RESPONSE_BYTES);
    let filter = filter(config)?;
    let out: Box<dyn Write> = match &config.output {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut writer = Writer::new(config.format, std::io::BufWriter::new(out))?;
    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {pos} calls exported ({per_sec}, {elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        ProgressBar::hidden()
    };

    let mut token = String::new();
    let mut written = 0u64;
    let mut retries = 0u32;
    loop {
        match export_from(
            &mut client,
            config,
            &filter,
            &mut token,
            &mut writer,
            &progress,
        )
        .await
        {
            Ok(n) => {
                written += n;
                break;
            }
            Err(Interrupted { written: n, status }) => {
                written += n;
                if n > 0 {
                    retries = 0;
                }
                retries += 1;
                if !resumable(&status) || retries > MAX_RETRIES {
                    progress.abandon();
                    bail!(
                        "export failed after {written} calls: {} ({})",
                        status.message(),
                        status.code()
                    );
                }
                // Backoff: 0.2 s, 0.4 s, … up to 5 s, then from the last token.
                let wait =
                    Duration::from_millis(200u64 << retries.min(5)).min(Duration::from_secs(5));
                let note = format!(
                    "connection lost after {written} calls ({}); resuming in {} ms",
                    status.code(),
                    wait.as_millis()
                );
                if progress.is_hidden() {
                    eprintln!("{note}");
                } else {
                    progress.println(note);
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
    writer.finish()?;
    progress.finish_and_clear();
    Ok(written)
}

/// Why a stream stopped early, and how many calls it had written.
struct Interrupted {
    written: u64,
    status: tonic::Status,
}

/// Dropped connections and a server going away are worth another try from
/// the last token; a refused request is not.
fn resumable(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Internal | Code::Aborted | Code::Cancelled
    ) || status.message().contains("transport")
}

async fn export_from(
    client: &mut CallServiceClient<Channel>,
    config: &ExportConfig,
    filter: &proto::CallFilter,
    token: &mut String,
    writer: &mut Writer,
    progress: &ProgressBar,
) -> Result<u64, Interrupted> {
    let mut written = 0u64;
    let interrupted = |written, status| Interrupted { written, status };
    let mut request = tonic::Request::new(proto::ExportCallsRequest {
        filter: Some(filter.clone()),
        resume_token: token.clone(),
        include_turns: false,
    });
    if let Some(key) = &config.api_key {
        let value = format!("Bearer {key}")
            .parse()
            .map_err(|_| interrupted(0, tonic::Status::invalid_argument("bad --api-key")))?;
        request.metadata_mut().insert("authorization", value);
    }
    let mut stream = client
        .export_calls(request)
        .await
        .map_err(|s| interrupted(0, s))?
        .into_inner();
    loop {
        match stream.message().await {
            Ok(Some(message)) => {
                for call in &message.calls {
                    writer.write(call).map_err(|e| {
                        interrupted(written, tonic::Status::data_loss(e.to_string()))
                    })?;
                }
                // The calls are out before the token moves past them.
                written += message.calls.len() as u64;
                progress.inc(message.calls.len() as u64);
                *token = message.resume_token;
            }
            Ok(None) => return Ok(written),
            Err(status) => return Err(interrupted(written, status)),
        }
    }
}

async fn connect(config: &ExportConfig) -> anyhow::Result<Channel> {
    let server = &config.server;
    let mut endpoint = Endpoint::from_shared(server.clone())
        .with_context(|| format!("--server {server}"))?
        .connect_timeout(Duration::from_secs(10));
    if server.starts_with("https://") {
        let Some(ca) = &config.ca_cert else {
            bail!("an https:// server needs --ca-cert, the PEM CA that signed its certificate");
        };
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))?;
    }
    Ok(endpoint.connect_lazy())
}

fn filter(config: &ExportConfig) -> anyhow::Result<proto::CallFilter> {
    let time = |text: &Option<String>, flag: &str| -> anyhow::Result<_> {
        text.as_deref()
            .map(|t| {
                let ts: jiff::Timestamp = t
                    .parse()
                    .with_context(|| format!("{flag} {t}: not an RFC 3339 time"))?;
                Ok(crate::api::convert::to_timestamp(ts.as_millisecond()))
            })
            .transpose()
    };
    Ok(proto::CallFilter {
        task_ids: config.task_ids.clone(),
        start_time: time(&config.start, "--start")?,
        end_time: time(&config.end, "--end")?,
        ..Default::default()
    })
}

/// CSV or NDJSON out. One per export: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Writer {
    Csv(Box<csv::Writer<Box<dyn Write>>>),
    Ndjson(Box<dyn Write>),
}

impl Writer {
    fn new(format: ExportFormat, out: impl Write + 'static) -> anyhow::Result<Self> {
        let out: Box<dyn Write> = Box::new(out);
        Ok(match format {
            ExportFormat::Csv => {
                let mut csv = csv::Writer::from_writer(out);
                csv.write_record(CSV_COLUMNS)?;
                Writer::Csv(Box::new(csv))
            }
            ExportFormat::Ndjson => Writer::Ndjson(out),
        })
    }

    fn write(&mut self, call: &proto::Call) -> anyhow::Result<()> {
        match self {
            Writer::Csv(csv) => {
                let record = flatten(call);
                let row: Vec<String> = CSV_COLUMNS
                    .iter()
                    .map(|column| match record.get(*column) {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Array(items)) => items
                            .iter()
                            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join(";"),
                        Some(other) => other.to_string(),
                    })
                    .collect();
                csv.write_record(&row)?;
            }
            Writer::Ndjson(out) => {
                // The proto3 JSON mapping, as webhooks and the JSON API send it.
                serde_json::to_writer(&mut *out, call)?;
                out.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Writer::Csv(mut csv) => csv.flush()?,
            Writer::Ndjson(mut out) => out.flush()?,
        }
        Ok(())
    }
}

/// One call as flat fields named as in [`CSV_COLUMNS`]: times in RFC 3339,
/// enums by their proto names, tags and hit groups as lists of ids,
/// attributes as an object (JSON text in CSV).
pub fn flatten(c: &proto::Call) -> Map<String, Value> {
    // Written as a macro over the field: the Timestamp type is whichever
    // crate the protos were generated with.
    macro_rules! time {
        ($t:expr) => {
            $t.as_ref()
                .and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
                .map_or(Value::Null, |t| Value::String(t.to_string()))
        };
    }
    let location = c.location.clone().unwrap_or_default();
    let billing = c.billing.clone().unwrap_or_default();
    let level = c.intent_level.clone().unwrap_or_default();
    let name = |n: Option<&str>| n.map_or(Value::Null, |s| Value::String(s.to_owned()));
    let mut record = Map::new();
    let mut put = |key: &str, value: Value| {
        record.insert(key.to_owned(), value);
    };
    put("call_id", json!(c.call_id));
    put(
        "source",
        json!(name(
            proto::Source::try_from(c.source)
                .ok()
                .map(|s| s.as_str_name())
        )),
    );
    put("external_id", json!(c.external_id));
    put("task_id", json!(c.task_id));
    put("parent_task_id", json!(c.parent_task_id));
    put("script_id", json!(c.script_id));
    put("callee", json!(c.callee));
    put("callee_raw", json!(c.callee_raw));
    put("caller", json!(c.caller));
    put("caller_raw", json!(c.caller_raw));
    put("submit_time", json!(time!(c.submit_time)));
    put("call_time", json!(time!(c.call_time)));
    put("ring_time", json!(time!(c.ring_time)));
    put("answer_time", json!(time!(c.answer_time)));
    put("hangup_time", json!(time!(c.hangup_time)));
    put("ring_ms", json!(c.ring_ms));
    put("talk_ms", json!(c.talk_ms));
    put("total_ms", json!(c.total_ms));
    put("billed_ms", json!(c.billed_ms));
    put(
        "outcome",
        json!(name(
            proto::CallOutcome::try_from(c.outcome)
                .ok()
                .map(|s| s.as_str_name())
        )),
    );
    put("vendor_status", json!(c.vendor_status));
    put("hangup_cause", json!(c.hangup_cause));
    put("sip_code", json!(c.sip_code));
    put(
        "hangup_by",
        json!(name(
            proto::Party::try_from(c.hangup_by)
                .ok()
                .map(|s| s.as_str_name())
        )),
    );
    put("score", json!(c.score));
    put("intent_level_id", json!(level.id));
    put("intent_level_name", json!(level.name));
    put("rounds", json!(c.rounds));
    put(
        "tag_ids",
        json!(c.tags.iter().map(|t| t.id.clone()).collect::<Vec<_>>()),
    );
    put(
        "tag_group_ids",
        json!(
            c.tag_groups
                .iter()
                .map(|g| g.id.clone())
                .collect::<Vec<_>>()
        ),
    );
    put("recording_url", json!(c.recording_url));
    put(
        "gender",
        json!(name(
            proto::Gender::try_from(c.gender)
                .ok()
                .map(|s| s.as_str_name())
        )),
    );
    put("province", json!(location.province));
    put("city", json!(location.city));
    put("area_code", json!(location.area_code));
    put("carrier", json!(location.carrier));
    put("region", json!(location.region));
    put("post_code", json!(location.post_code));
    put("rate", json!(billing.rate));
    put("base_cost", json!(billing.base_cost));
    put("cost", json!(billing.cost));
    put("currency", json!(billing.currency));
    put("settle_rate", json!(billing.settle_rate));
    put("settle_cost", json!(billing.settle_cost));
    put("quote_exchange", json!(billing.quote_exchange));
    put("bill_period", json!(billing.bill_period));
    put("base_cost_currency", json!(billing.base_cost_currency));
    put("settle_currency", json!(billing.settle_currency));
    put("dtmf", json!(c.dtmf));
    put("recall_count", json!(c.recall_count));
    put("recall_of", json!(c.recall_of));
    put("customer_name", json!(c.customer_name));
    put("line_id", json!(c.line_id));
    put("attributes", json!(c.attributes));
    put("update_time", json!(time!(c.update_time)));
    put("sync_time", json!(time!(c.sync_time)));
    record
}
