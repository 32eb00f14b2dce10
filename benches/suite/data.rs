//! The synthetic data of the ingest and listing benchmarks: calls in the
//! smartivr shape made from their index (so nothing holds the data set in
//! memory: 10M calls need what 10k do), as gRPC messages and as the plain
//! rows the baselines write.

use std::fmt::Write as _;

use callscope::proto::Timestamp;
use sha2::{Digest, Sha256};

use callscope::proto;

pub const TENANT: &str = "default";
pub const DAY_MS: i64 = 86_400_000;
/// 2026-08-01T00:00:00Z: calls spread over the 90 days after it.
pub const START_MS: i64 = 1_785_542_400_000;
const SPAN_MS: i64 = 90 * DAY_MS;
pub const TASKS: u64 = 40;
const TAGS: usize = 50;
pub const TAG_GROUPS: usize = 8;

/// SplitMix64: a good, cheap hash of the row index.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A small deterministic random stream per row.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const PROVINCES: &[(&str, &[&str])] = &[
    ("广东", &["广州", "深圳", "佛山"]),
    ("江苏", &["南京", "苏州", "无锡"]),
    ("浙江", &["杭州", "宁波"]),
    ("山东", &["济南", "青岛"]),
    ("四川", &["成都"]),
    ("北京", &["北京"]),
    ("上海", &["上海"]),
];
const CARRIERS: &[&str] = &["移动", "联通", "电信"];
const ROBOT_LINES: &[&str] = &[
    "您好,我是优学教育的客服小王,耽误您一分钟",
    "请问您最近有考虑给孩子报名课程吗",
    "我们现在有暑期优惠活动,价格非常实惠",
    "好的,那我稍后让课程顾问联系您",
    "感谢您的接听,祝您生活愉快,再见",
];
const CUSTOMER_LINES: &[&str] = &[
    "多少钱",
    "价格是多少啊",
    "我没兴趣,不需要",
    "你们在哪个城市",
    "可以加个微信吗",
    "再见",
    "我现在在开车,晚点再说",
    "优惠能持续到什么时候",
];

/// One synthetic call: what both the gRPC request and the baseline rows are
/// made of.
pub struct Synth {
    index: u64,
    task: u64,
    callee: String,
    caller: String,
    call_time: i64,
    answer_time: Option<i64>,
    hangup_time: i64,
    ring_ms: i64,
    talk_ms: i64,
    outcome: proto::CallOutcome,
    hangup_by: proto::Party,
    score: i32,
    intent: Option<&'static str>,
    rounds: i32,
    tags: Vec<usize>,
    province: &'static str,
    city: &'static str,
    carrier: &'static str,
    /// (kind, customer text, robot text)
    turns: Vec<(proto::TurnKind, &'static str, &'static str)>,
}

pub fn phone(index: u64) -> String {
    format!("+86138{:08}", mix(index ^ 0x5EED) % 100_000_000)
}

pub fn synth(index: u64, total: u64) -> Synth {
    let mut r = Rng(index.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xCA11);
    let call_time = START_MS
        + (index as i128 * SPAN_MS as i128 / total.max(1) as i128) as i64
        + r.below(60_000) as i64;
    let ring_ms = 2_000 + r.below(25_000) as i64;
    let roll = r.below(100);
    let outcome = match roll {
        0..55 => proto::CallOutcome::Answered,
        55..80 => proto::CallOutcome::NoAnswer,
        80..88 => proto::CallOutcome::Busy,
        88..94 => proto::CallOutcome::Rejected,
        94..97 => proto::CallOutcome::PoweredOff,
        _ => proto::CallOutcome::InvalidNumber,
    };
    let answered = outcome == proto::CallOutcome::Answered;
    let talk_ms = if answered {
        3_000 + r.below(177_000) as i64
    } else {
        0
    };
    let score = if answered {
        // Most calls score low; a tail reaches 500.
        let a = r.below(501) as i32;
        let b = r.below(501) as i32;
        a.min(b)
    } else {
        0
    };
    let intent = answered.then(|| match r.below(100) {
        0..15 => "A",
        15..35 => "B",
        35..65 => "C",
        _ => "D",
    });
    let tag_count = if answered { r.below(5) as usize } else { 0 };
    let mut tags = Vec::with_capacity(tag_count);
    while tags.len() < tag_count {
        let t = r.below(TAGS as u64) as usize;
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let mut turns = Vec::new();
    if answered && r.below(100) < 30 {
        let n = 2 + r.below(5) as usize;
        for k in 0..n {
            if k % 2 == 0 {
                turns.push((proto::TurnKind::RobotPrompt, "", r.pick(ROBOT_LINES)));
            } else {
                turns.push((
                    proto::TurnKind::CustomerUtterance,
                    r.pick(CUSTOMER_LINES),
                    r.pick(ROBOT_LINES),
                ));
            }
        }
    }
    let (province, cities) = PROVINCES[r.below(PROVINCES.len() as u64) as usize];
    let city = r.pick(cities);
    Synth {
        index,
        task: mix(index ^ 0x7A5C) % TASKS,
        callee: phone(index),
        caller: format!("+86173619843{:02}", r.below(20)),
        call_time,
        answer_time: answered.then_some(call_time + ring_ms),
        hangup_time: call_time + ring_ms + talk_ms,
        ring_ms,
        talk_ms,
        outcome,
        hangup_by: if r.below(2) == 0 {
            proto::Party::Customer
        } else {
            proto::Party::Robot
        },
        score,
        intent,
        rounds: if answered { 1 + r.below(12) as i32 } else { 0 },
        tags,
        province,
        city,
        carrier: r.pick(CARRIERS),
        turns,
    }
}

pub fn ts(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn tag_proto(t: usize) -> proto::Tag {
    let g = t % TAG_GROUPS;
    proto::Tag {
        id: format!("t{t:02}"),
        name: format!("标签{t:02}"),
        groups: vec![proto::TagGroup {
            id: format!("g{g}"),
            name: format!("分组{g}"),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn external_id(index: u64) -> String {
    format!("bench-{index:010}")
}

impl Synth {
    pub fn to_proto(&self) -> proto::Call {
        proto::Call {
            source: proto::Source::Smartivr as i32,
            external_id: external_id(self.index),
            task_id: format!("task-{:02}", self.task),
            callee: self.callee.clone(),
            caller: self.caller.clone(),
            call_time: Some(ts(self.call_time)),
            answer_time: self.answer_time.map(ts),
            hangup_time: Some(ts(self.hangup_time)),
            ring_ms: self.ring_ms,
            talk_ms: self.talk_ms,
            total_ms: self.ring_ms + self.talk_ms,
            outcome: self.outcome as i32,
            hangup_by: self.hangup_by as i32,
            score: Some(self.score),
            intent_level: self.intent.map(|id| proto::IntentLevel {
                id: id.to_owned(),
                name: format!("{id}级"),
                ..Default::default()
            }),
            rounds: self.rounds,
            tags: self.tags.iter().map(|&t| tag_proto(t)).collect(),
            location: Some(proto::Location {
                province: self.province.to_owned(),
                city: self.city.to_owned(),
                carrier: self.carrier.to_owned(),
                ..Default::default()
            }),
            turns: self
                .turns
                .iter()
                .enumerate()
                .map(|(k, (kind, customer, robot))| proto::DialogueTurn {
                    sequence: k as i32 + 1,
                    kind: *kind as i32,
                    customer_text: (*customer).to_owned(),
                    robot_text: (*robot).to_owned(),
                    ..Default::default()
                })
                .collect(),
            update_time: Some(ts(self.hangup_time + 5_000)),
            ..Default::default()
        }
    }
}

// ---------------------------------------------------------------------------
// Baseline rows: what the upsert path writes, as plain values

#[derive(Clone)]
pub enum Val {
    Null,
    Int(i64),
    Text(String),
}

const BASE_CALL_COLUMNS: &[&str] = &[
    "tenant_id",
    "call_id",
    "source",
    "external_id",
    "task_id",
    "callee",
    "callee_raw",
    "caller",
    "caller_raw",
    "call_time",
    "answer_time",
    "hangup_time",
    "ring_ms",
    "talk_ms",
    "total_ms",
    "outcome",
    "hangup_by",
    "score",
    "intent_level_id",
    "rounds",
    "province",
    "city",
    "carrier",
    "attributes",
    "update_time",
    "sync_time",
    "content_hash",
];
const BASE_TAG_COLUMNS: &[&str] = &["tenant_id", "call_id", "tag_id", "position"];
const BASE_GROUP_COLUMNS: &[&str] = &["tenant_id", "call_id", "group_id"];
const BASE_TURN_COLUMNS: &[&str] = &[
    "tenant_id",
    "call_id",
    "sequence",
    "kind",
    "customer_text",
    "robot_text",
];
/// (baseline table, the table it copies, its columns)
pub const BASE_TABLES: &[(&str, &str, &[&str])] = &[
    ("bench_calls", "calls", BASE_CALL_COLUMNS),
    ("bench_call_tags", "call_tags", BASE_TAG_COLUMNS),
    (
        "bench_call_tag_groups",
        "call_tag_groups",
        BASE_GROUP_COLUMNS,
    ),
    ("bench_dialogue_turns", "dialogue_turns", BASE_TURN_COLUMNS),
];

/// The rows of every baseline table for calls `range`, in `BASE_TABLES` order.
pub fn baseline_rows(range: std::ops::Range<u64>, total: u64) -> [Vec<Vec<Val>>; 4] {
    let mut out: [Vec<Vec<Val>>; 4] = Default::default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for index in range {
        let s = synth(index, total);
        let call_id = uuid::Uuid::now_v7().to_string();
        let t = || Val::Text(TENANT.to_owned());
        let id = || Val::Text(call_id.clone());
        let hash = hex(&Sha256::digest(external_id(index).as_bytes()));
        out[0].push(vec![
            t(),
            id(),
            Val::Int(proto::Source::Smartivr as i64),
            Val::Text(external_id(index)),
            Val::Text(format!("task-{:02}", s.task)),
            Val::Text(s.callee.clone()),
            Val::Text(s.callee.clone()),
            Val::Text(s.caller.clone()),
            Val::Text(s.caller.clone()),
            Val::Int(s.call_time),
            s.answer_time.map_or(Val::Null, Val::Int),
            Val::Int(s.hangup_time),
            Val::Int(s.ring_ms),
            Val::Int(s.talk_ms),
            Val::Int(s.ring_ms + s.talk_ms),
            Val::Int(s.outcome as i64),
            Val::Int(s.hangup_by as i64),
            Val::Int(i64::from(s.score)),
            s.intent.map_or(Val::Null, |i| Val::Text(i.to_owned())),
            Val::Int(i64::from(s.rounds)),
            Val::Text(s.province.to_owned()),
            Val::Text(s.city.to_owned()),
            Val::Text(s.carrier.to_owned()),
            Val::Text("{}".to_owned()),
            Val::Int(s.hangup_time + 5_000),
            Val::Int(now),
            Val::Text(hash),
        ]);
        let mut groups: Vec<usize> = Vec::new();
        for (position, &tag) in s.tags.iter().enumerate() {
            out[1].push(vec![
                t(),
                id(),
                Val::Text(format!("t{tag:02}")),
                Val::Int(position as i64),
            ]);
            if !groups.contains(&(tag % TAG_GROUPS)) {
                groups.push(tag % TAG_GROUPS);
            }
        }
        for g in groups {
            out[2].push(vec![t(), id(), Val::Text(format!("g{g}"))]);
        }
        for (k, (kind, customer, robot)) in s.turns.iter().enumerate() {
            out[3].push(vec![
                t(),
                id(),
                Val::Int(k as i64 + 1),
                Val::Int(*kind as i64),
                Val::Text((*customer).to_owned()),
                Val::Text((*robot).to_owned()),
            ]);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// COPY text format of some rows.
/// Rows in PostgreSQL's binary COPY format (`COPY … WITH (FORMAT binary)`):
/// the signature, no flags, then each row as its field count and each field
/// as its byte length (-1 for NULL) and value: integers as 8-byte big-endian
/// `BIGINT` (every integer column of the tables is one), text as UTF-8.
pub fn copy_binary(rows: &[Vec<Val>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(19 + rows.len() * 512);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0_i32.to_be_bytes());
    out.extend_from_slice(&0_i32.to_be_bytes());
    for row in rows {
        out.extend_from_slice(&(row.len() as i16).to_be_bytes());
        for value in row {
            match value {
                Val::Null => out.extend_from_slice(&(-1_i32).to_be_bytes()),
                Val::Int(n) => {
                    out.extend_from_slice(&8_i32.to_be_bytes());
                    out.extend_from_slice(&n.to_be_bytes());
                }
                Val::Text(text) => {
                    out.extend_from_slice(&(text.len() as i32).to_be_bytes());
                    out.extend_from_slice(text.as_bytes());
                }
            }
        }
    }
    out.extend_from_slice(&(-1_i16).to_be_bytes());
    out
}
