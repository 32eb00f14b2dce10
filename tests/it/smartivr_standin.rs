//! A stand-in smartivr query API (axum) for the sync tests: the documented
//! shapes of `query_done_task_phones` (15 rows a page, `last_page`),
//! `record_info` and `v1/task/number`, behind a bearer token, counting every
//! request and misbehaving on demand (a 500, a 429 with `Retry-After`, a
//! vanished record, a malformed page, a huge page, endless pages, a slow or
//! held page).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The one token the stand-in accepts (the README uses it too).
pub const TOKEN: &str = "Bearer smartivr-token";
pub const PAGE_SIZE: usize = 15;

/// One call the vendor holds.
#[derive(Debug, Clone)]
pub struct VendorCall {
    pub task_id: String,
    pub record_id: String,
    pub callid: String,
    pub callee: String,
    /// Local `yyyy-MM-dd HH:mm:ss` (Asia/Shanghai).
    pub calldate: String,
    pub updated_at: String,
    pub score: i64,
    pub tag: String,
    pub turns: Vec<(String, String)>,
}

#[derive(Default)]
pub struct VendorState {
    pub calls: Vec<VendorCall>,
    pub tasks: HashSet<String>,
    /// Requests served, by kind.
    pub list_hits: BTreeMap<(String, i64), u32>,
    pub info_hits: HashMap<String, u32>,
    pub number_hits: u32,
    /// Empty-window requests (a source's creation checking its tasks).
    pub probes: u32,
    pub unauthorized: u32,
    /// List pages that answer 500 once.
    pub fail_list_once: HashSet<(String, i64)>,
    /// Records whose record_info answers 429 with `Retry-After: 1` once.
    pub throttle_info_once: HashSet<String>,
    /// Records whose record_info is gone (404).
    pub vanished: HashSet<String>,
    /// List pages that answer something that is not the documented JSON.
    pub malformed_list: HashSet<(String, i64)>,
    /// Every list page is padded past this many bytes.
    pub huge_pages: Option<usize>,
    /// `last_page` is always one more than the page asked for.
    pub endless: bool,
    /// List pages from this one on wait this long before answering.
    pub slow_from_page: Option<(i64, Duration)>,
}

#[derive(Clone)]
pub struct Vendor {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<VendorState>>,
    stop: Arc<tokio::sync::Notify>,
}

impl Vendor {
    pub async fn start() -> Vendor {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> Vendor {
        let state: Arc<Mutex<VendorState>> = Arc::default();
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind stand-in");
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/api/v1/task/query_done_task_phones", post(list))
            .route("/api/v1/task/record_info/{task}/{record}", get(record_info))
            .route("/api/v1/task/number", get(numbers))
            .with_state(state.clone());
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.notified().await })
                .await
                .ok();
        });
        Vendor { addr, state, stop }
    }

    /// The base URL a sync source is given.
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    pub fn lock(&self) -> MutexGuard<'_, VendorState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops answering (connections are refused afterwards).
    pub fn stop(&self) {
        self.stop.notify_waiters();
    }

    /// Adds `n` calls to `task`, one a minute from `first` (Shanghai time),
    /// each with two turns; answers their callids.
    pub fn add_calls(&self, task: &str, n: usize, first: jiff::civil::DateTime) -> Vec<String> {
        let mut state = self.lock();
        state.tasks.insert(task.to_owned());
        let start = state.calls.len();
        (0..n)
            .map(|i| {
                let k = start + i;
                let at = first
                    .checked_add(jiff::SignedDuration::from_secs(60 * i as i64))
                    .unwrap();
                let call = VendorCall {
                    task_id: task.to_owned(),
                    record_id: format!("rec-{k:05}"),
                    callid: format!("call-{k:05}"),
                    callee: format!("1865168{:04}", k % 10_000),
                    calldate: local(at),
                    updated_at: local(at.checked_add(jiff::SignedDuration::from_secs(30)).unwrap()),
                    score: (k % 100) as i64,
                    tag: format!("tag-{}", k % 3),
                    turns: vec![
                        (String::new(), format!("您好,这里是第{k}通电话")),
                        (format!("客户回答{k}"), "好的,再见".to_owned()),
                    ],
                };
                state.calls.push(call.clone());
                call.callid
            })
            .collect()
    }

    /// Re-scores a call: a new score and a later `updated_at`.
    pub fn rescore(&self, callid: &str, score: i64, updated_at: &str) {
        let mut state = self.lock();
        let call = state
            .calls
            .iter_mut()
            .find(|c| c.callid == callid)
            .expect("known call");
        call.score = score;
        call.updated_at = updated_at.to_owned();
    }

    /// A call's row as the list page shows it (what a customer forwarding
    /// smartivr's records would push).
    pub fn row_json(&self, callid: &str) -> Value {
        let state = self.lock();
        row(state
            .calls
            .iter()
            .find(|c| c.callid == callid)
            .expect("known call"))
    }

    /// List pages served for `task`, by page.
    pub fn list_hits(&self, task: &str) -> BTreeMap<i64, u32> {
        self.lock()
            .list_hits
            .iter()
            .filter(|((t, _), _)| t == task)
            .map(|((_, page), n)| (*page, *n))
            .collect()
    }

    pub fn info_total(&self) -> u32 {
        self.lock().info_hits.values().sum()
    }
}

/// `yyyy-MM-dd HH:mm:ss`.
pub fn local(at: jiff::civil::DateTime) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// Now on a Shanghai wall clock, whole seconds.
pub fn shanghai_now() -> jiff::civil::DateTime {
    let zoned = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap());
    let dt = zoned.datetime();
    dt.with().subsec_nanosecond(0).build().unwrap()
}

fn authorized(state: &mut VendorState, headers: &HeaderMap) -> bool {
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == TOKEN);
    if !ok {
        state.unauthorized += 1;
    }
    ok
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"code": 401, "status": "error", "message": "token invalid"})),
    )
        .into_response()
}

fn row(c: &VendorCall) -> Value {
    json!({
        "tags": [{
            "id": c.tag, "name": format!("name of {}", c.tag), "description": "", "color": "#2d8cf0",
            "tag_groups": [{"id": "g1", "name": "有意向", "tag_scene_id": "s1"}]
        }],
        "tag_groups": [{"id": "g1", "name": "有意向", "tag_scene_id": "s1"}],
        "operator_name": "联通",
        "id": c.record_id,
        "task_id": c.task_id,
        "group_id": 299,
        "callid": c.callid,
        "score": c.score,
        "callee": c.callee,
        "caller_number": "300708",
        "duration": 60080,
        "error_code": 0,
        "gender": 1,
        "level_id": "lvl-a",
        "calldate": c.calldate,
        "bill": 31319,
        "hangupcause": "NORMAL_CLEARING",
        "hangupdate": c.calldate,
        "answerdate": c.calldate,
        "hangup_disposition": 1,
        "created_at": c.calldate,
        "updated_at": c.updated_at,
        "rounds": c.turns.len(),
        "level_name": "A级",
        "level": {"id": "lvl-a", "name": "A级", "alias": "有意向", "color": "#f00"},
    })
}

#[derive(serde::Deserialize)]
struct ListBody {
    task_id: String,
    page: i64,
    start_at: Option<String>,
    end_at: Option<String>,
}

async fn list(
    State(state): State<Arc<Mutex<VendorState>>>,
    headers: HeaderMap,
    Json(body): Json<ListBody>,
) -> Response {
    let delay = {
        let mut s = state.lock().unwrap();
        if !authorized(&mut s, &headers) {
            return unauthorized();
        }
        if !s.tasks.contains(&body.task_id) {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"code": 404, "status": "error", "message": "任务不存在"})),
            )
                .into_response();
        }
        // callscope asks about each task over an empty window when a source
        // is created: counted apart from the pull's pages.
        if body.start_at.is_some() && body.start_at == body.end_at {
            s.probes += 1;
        } else {
            *s.list_hits
                .entry((body.task_id.clone(), body.page))
                .or_default() += 1;
        }
        s.slow_from_page
            .filter(|(from, _)| body.page >= *from)
            .map(|(_, d)| d)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut s = state.lock().unwrap();
    let key = (body.task_id.clone(), body.page);
    if s.fail_list_once.remove(&key) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "upstream database timeout",
        )
            .into_response();
    }
    if s.malformed_list.contains(&key) {
        return (StatusCode::OK, "<html><body>502 Bad Gateway</body></html>").into_response();
    }
    let start = body.start_at.unwrap_or_default();
    let end = body.end_at.unwrap_or_else(|| "9999".into());
    let mut calls: Vec<&VendorCall> = s
        .calls
        .iter()
        .filter(|c| c.task_id == body.task_id && c.calldate >= start && c.calldate <= end)
        .collect();
    calls.sort_by(|a, b| (&a.calldate, &a.record_id).cmp(&(&b.calldate, &b.record_id)));
    let total = calls.len();
    let last_page = if s.endless {
        body.page + 1
    } else {
        total.div_ceil(PAGE_SIZE).max(1) as i64
    };
    let from = ((body.page.max(1) - 1) as usize) * PAGE_SIZE;
    let data: Vec<Value> = calls
        .iter()
        .skip(from)
        .take(PAGE_SIZE)
        .map(|c| row(c))
        .collect();
    let mut answer = json!({"data": data, "total": total, "last_page": last_page});
    if let Some(bytes) = s.huge_pages {
        answer["padding"] = Value::String("x".repeat(bytes));
    }
    Json(answer).into_response()
}

async fn record_info(
    State(state): State<Arc<Mutex<VendorState>>>,
    headers: HeaderMap,
    Path((task, record)): Path<(String, String)>,
) -> Response {
    let mut s = state.lock().unwrap();
    if !authorized(&mut s, &headers) {
        return unauthorized();
    }
    *s.info_hits.entry(record.clone()).or_default() += 1;
    if s.throttle_info_once.remove(&record) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "slow down",
        )
            .into_response();
    }
    if s.vanished.contains(&record) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"code": 404, "message": "记录不存在"})),
        )
            .into_response();
    }
    let Some(c) = s
        .calls
        .iter()
        .find(|c| c.record_id == record && c.task_id == task)
    else {
        return (StatusCode::NOT_FOUND, Json(json!({"code": 404}))).into_response();
    };
    let turns: Vec<Value> = c
        .turns
        .iter()
        .enumerate()
        .map(|(i, (question, answer))| {
            json!({
                "id": format!("{}-t{i}", c.record_id),
                "record_id": c.record_id,
                "task_id": c.task_id,
                "notify": if question.is_empty() { "enter" } else { "asrmessage_notify" },
                "callid": c.callid,
                "callee": c.callee,
                "question": question,
                "answer_content": answer,
                "score": 0,
                "sequence": i + 1,
                "created_at": c.calldate,
                "contents": [],
                "tags": [],
            })
        })
        .collect();
    let mut record = row(c);
    // record_info's `info.record` has no tags of the call (the list has).
    if let Value::Object(m) = &mut record {
        m.remove("tags");
        m.remove("tag_groups");
    }
    Json(json!({
        "records": turns,
        "is_intervene_bridge": false,
        "info": {
            "record": record,
            "task": {"uuid": c.task_id, "name": format!("任务 {}", c.task_id)}
        },
        "mobile_info": {"mobile_type": "联通", "province": "江苏", "city": "南京"},
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
struct NumberQuery {
    task_id: String,
    page: i64,
}

async fn numbers(
    State(state): State<Arc<Mutex<VendorState>>>,
    headers: HeaderMap,
    Query(q): Query<NumberQuery>,
) -> Response {
    let mut s = state.lock().unwrap();
    if !authorized(&mut s, &headers) {
        return unauthorized();
    }
    s.number_hits += 1;
    // One entry per callee of the task, with its calls as history.
    let mut by_number: BTreeMap<String, Vec<&VendorCall>> = BTreeMap::new();
    for c in s.calls.iter().filter(|c| c.task_id == q.task_id) {
        by_number.entry(c.callee.clone()).or_default().push(c);
    }
    let total = by_number.len();
    let entries: Vec<Value> = by_number
        .iter()
        .skip(((q.page.max(1) - 1) as usize) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|(number, calls)| {
            json!({
                "number": number,
                "status": 1,
                "status_str": "呼叫成功",
                "call_history": calls.iter().map(|c| json!({
                    "call_id": c.callid, "task_id": c.task_id, "number": c.callee,
                    "call_time": c.calldate, "duration": 60080, "bill": 31319,
                    "status": 1, "updated_at": c.calldate,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({
        "code": 200, "status": "ok", "message": "获取号码列表成功",
        "data": {"data": entries, "total": total, "last_page": total.div_ceil(PAGE_SIZE).max(1)}
    }))
    .into_response()
}
