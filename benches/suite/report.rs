//! The suite's output: measures with their goals (from BENCHMARKS.md), the
//! summary table, the JSON file of the API contract, and what the machine was
//! doing (cores, load, peak RSS).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// What a measure must reach to be met.
#[derive(Clone, Copy, Debug)]
pub enum Goal {
    /// callscope ÷ baseline at least this (throughput).
    RatioAtLeast(f64),
    /// callscope ÷ baseline at most this (latency).
    RatioAtMost(f64),
    /// The value itself below this (milliseconds).
    ValueBelow(f64),
}

impl Goal {
    pub fn text(self) -> String {
        match self {
            Goal::RatioAtLeast(x) => format!("ratio >= {x}"),
            Goal::RatioAtMost(x) => format!("ratio <= {x}"),
            Goal::ValueBelow(x) => format!("value < {x}"),
        }
    }

    pub fn met(self, value: f64, ratio: Option<f64>) -> bool {
        match (self, ratio) {
            (Goal::RatioAtLeast(x), Some(r)) => r >= x,
            (Goal::RatioAtMost(x), Some(r)) => r <= x,
            (Goal::ValueBelow(x), _) => value < x,
            (_, None) => false,
        }
    }
}

/// The targets of BENCHMARKS.md (issue 14's table).
pub const PG_INGEST_GOAL: Goal = Goal::RatioAtLeast(0.7);
pub const SQLITE_INGEST_GOAL: Goal = Goal::RatioAtLeast(0.8);
pub const LIST_GOAL: Goal = Goal::RatioAtMost(1.5);
pub const LIST_MS_GOAL: Goal = Goal::ValueBelow(10.0);
pub const DEEP_PAGE_GOAL: Goal = Goal::RatioAtMost(1.5);
pub const STATS_GOAL: Goal = Goal::RatioAtMost(1.3);
/// A 1M-call task's stats with a 30-day window, from rollups.
pub const STATS_MS_GOAL: Goal = Goal::ValueBelow(50.0);
/// GetTask with its progress on a task of 1M calls and 300k numbers.
pub const TASK_PROGRESS_MS_GOAL: Goal = Goal::ValueBelow(50.0);
/// ListTaskNumbers with a status filter on 300k numbers (issue 14).
pub const TASK_NUMBERS_STATUS_MS_GOAL: Goal = Goal::ValueBelow(20.0);

/// One line of the JSON file.
#[derive(Clone, Debug)]
pub struct Measure {
    pub name: &'static str,
    /// `None` when the measure was not taken; `note` says why.
    pub value: Option<f64>,
    pub unit: &'static str,
    pub baseline: Option<f64>,
    pub goal: Option<Goal>,
    pub note: Option<String>,
}

impl Measure {
    /// A measure compared with a baseline of the same unit.
    pub fn ratio(
        name: &'static str,
        value: f64,
        baseline: f64,
        unit: &'static str,
        goal: Goal,
    ) -> Self {
        Self {
            name,
            value: Some(value),
            unit,
            baseline: Some(baseline),
            goal: Some(goal),
            note: None,
        }
    }

    /// A measure held against an absolute goal.
    pub fn absolute(name: &'static str, value: f64, unit: &'static str, goal: Goal) -> Self {
        Self {
            name,
            value: Some(value),
            unit,
            baseline: None,
            goal: Some(goal),
            note: None,
        }
    }

    /// A measure of the contract that this run did not take.
    pub fn missing(name: &'static str, unit: &'static str, why: &str) -> Self {
        Self {
            name,
            value: None,
            unit,
            baseline: None,
            goal: None,
            note: Some(why.to_owned()),
        }
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    fn ratio_value(&self) -> Option<f64> {
        Some(self.value? / self.baseline?)
    }

    fn met(&self) -> Option<bool> {
        Some(self.goal?.met(self.value?, self.ratio_value()))
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "ratio": self.ratio_value(),
            "goal": self.goal.map(Goal::text),
            "met": self.met(),
        });
        if let Some(note) = &self.note {
            v["note"] = json!(note);
        }
        v
    }
}

/// Of several measures of one name (filters, backends, requests), the one
/// furthest from its goal: a goal holds only if it holds for every case.
pub fn worst(measures: Vec<Measure>) -> Option<Measure> {
    let badness = |m: &Measure| match m.goal {
        Some(Goal::RatioAtLeast(_)) => -m.ratio_value().unwrap_or(f64::INFINITY),
        Some(Goal::RatioAtMost(_)) => m.ratio_value().unwrap_or(f64::NEG_INFINITY),
        _ => m.value.unwrap_or(f64::NEG_INFINITY),
    };
    measures
        .into_iter()
        .max_by(|a, b| badness(a).total_cmp(&badness(b)))
}

pub fn print_summary(measures: &[Measure]) {
    println!("## Measures");
    println!();
    println!("| name | value | baseline | ratio | goal | met | note |");
    println!("|---|---|---|---|---|---|---|");
    let num = |v: Option<f64>, unit: &str| v.map_or_else(String::new, |v| format!("{v:.2} {unit}"));
    for m in measures {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            m.name,
            num(m.value, m.unit),
            num(m.baseline, m.unit),
            m.ratio_value()
                .map_or_else(String::new, |r| format!("{r:.2}x")),
            m.goal.map(Goal::text).unwrap_or_default(),
            match m.met() {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "",
            },
            m.note.as_deref().unwrap_or(""),
        );
    }
    println!();
}

pub fn write_json(path: &Path, measures: &[Measure]) -> anyhow::Result<()> {
    let doc = json!({ "measures": measures.iter().map(Measure::to_json).collect::<Vec<_>>() });
    std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")?;
    Ok(())
}

/// Nearest-rank percentile of some latencies, in milliseconds.
pub fn percentile(times: &[Duration], p: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort();
    let rank = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// p50 and p99 in milliseconds.
pub fn p50_p99(times: &[Duration]) -> (f64, f64) {
    (percentile(times, 50.0), percentile(times, 99.0))
}

pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    format!(
        "{cores} cores (nproc) {cpu}, {:.1} GiB memory",
        mem_kb as f64 / 1024.0 / 1024.0
    )
}

/// The 1, 5 and 15 minute load averages: the machine may be shared.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Peak resident set of this process (server, clients and generators).
pub fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .map(|l| l.trim_start_matches("VmHWM:").trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}
