//! CPU time spent by this process and by the PostgreSQL server's processes
//! on this machine, read from `/proc`: where a request's cost goes when the
//! service and the direct SQL are compared on the same two cores.

use std::collections::HashMap;
use std::fs;

/// Clock ticks a second of `/proc/*/stat` (`getconf CLK_TCK`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds used so far by this process and by the `postgres` processes
/// (every PostgreSQL server on the machine: the suite's, and any other).
pub struct CpuSnapshot {
    this_process: f64,
    /// Each `postgres` process's own time plus that of its children it has
    /// reaped: a backend that exits (a baseline's connection closed) moves
    /// its time into the postmaster's, so the sum over every process counts
    /// it either way.
    postgres: HashMap<u32, f64>,
}

impl CpuSnapshot {
    /// Now; zeros where `/proc` cannot be read (the figures then say 0).
    pub fn now() -> Self {
        // This process without its reaped children (the overload
        // benchmark's server runs in one).
        let this_process = fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| busy_seconds(&stat).map(|(_, own, _)| own))
            .unwrap_or(0.0);
        let mut postgres = HashMap::new();
        if let Ok(entries) = fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                if let Some(("postgres", own, children)) =
                    fs::read_to_string(entry.path().join("stat"))
                        .ok()
                        .as_deref()
                        .and_then(busy_seconds)
                {
                    postgres.insert(pid, own + children);
                }
            }
        }
        CpuSnapshot {
            this_process,
            postgres,
        }
    }

    /// CPU milliseconds a request from `self` to a later `after`. PostgreSQL
    /// is the sum over its processes: one started since `self` counts with
    /// all of its time, one gone by `after` with the time its parent reaped.
    pub fn per_request(&self, after: &CpuSnapshot, requests: usize) -> CpuTimes {
        let thousands = requests.max(1) as f64 / 1000.0;
        let postgres = after.postgres.values().sum::<f64>() - self.postgres.values().sum::<f64>();
        CpuTimes {
            this_process: (after.this_process - self.this_process) / thousands,
            postgres: postgres / thousands,
        }
    }
}

/// CPU milliseconds a request, in this process and in PostgreSQL.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTimes {
    pub this_process: f64,
    pub postgres: f64,
}

impl CpuTimes {
    /// Sums the shares of rounds (each divided by every round's requests).
    pub fn add(self, other: CpuTimes) -> CpuTimes {
        CpuTimes {
            this_process: self.this_process + other.this_process,
            postgres: self.postgres + other.postgres,
        }
    }
}

/// The command name, the user + system CPU seconds of one
/// `/proc/<pid>/stat`, and those of the children it has reaped.
fn busy_seconds(stat: &str) -> Option<(&str, f64, f64)> {
    // `pid (comm) state …`: the name may hold spaces, so split at the last `)`.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = &stat[open + 1..close];
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After the name: state is field 3, utime 14 and stime 15, then the
    // reaped children's cutime 16 and cstime 17.
    let mut ticks = [0.0; 4];
    for (n, field) in (11..=14).enumerate() {
        ticks[n] = fields.get(field)?.parse::<f64>().ok()?;
    }
    Some((
        comm,
        (ticks[0] + ticks[1]) / TICKS_PER_SECOND,
        (ticks[2] + ticks[3]) / TICKS_PER_SECOND,
    ))
}
