//! Sync sources: what to pull from a vendor's query API, how far each task
//! got (its checkpoint), and the state an operator reads.

use std::collections::BTreeMap;
use std::fmt;

use super::limits::{MAX_ID_BYTES, MAX_TEXT_BYTES, MAX_URL_BYTES};
use super::{Source, UnixMs, Violations};

/// How far back each run re-scans by default: re-scoring and re-tagging
/// reach calls up to a day old.
pub const DEFAULT_OVERLAP_MS: i64 = 24 * 3600 * 1000;
/// Most tasks one source may pull.
pub const MAX_SYNC_TASKS: usize = 100;
/// Most headers one source may send.
pub const MAX_SYNC_HEADERS: usize = 20;
/// Shortest scheduled interval: one second.
pub const MIN_SYNC_INTERVAL_MS: i64 = 1000;
/// Longest name of a source.
pub const MAX_SYNC_NAME_BYTES: usize = 64;

/// A source as an operator configures it.
#[derive(Clone, PartialEq, Eq)]
pub struct SyncSourceSpec {
    pub name: String,
    pub source: Source,
    /// Always ends with `/`, so vendor paths join below it.
    pub base_url: String,
    pub task_ids: Vec<String>,
    /// Sent with every vendor request; secret (the vendor's token).
    pub headers: BTreeMap<String, String>,
    /// 0: only on demand.
    pub interval_ms: i64,
    pub overlap_ms: i64,
    pub start_time: Option<UnixMs>,
}

// The headers hold the vendor's token: Debug shows their names only.
impl fmt::Debug for SyncSourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncSourceSpec")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("base_url", &self.base_url)
            .field("task_ids", &self.task_ids)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("interval_ms", &self.interval_ms)
            .field("overlap_ms", &self.overlap_ms)
            .field("start_time", &self.start_time)
            .finish()
    }
}

/// What the runs of a source did, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    pub last_run_time: Option<UnixMs>,
    pub last_success_time: Option<UnixMs>,
    pub last_error: String,
    pub calls_synced: i64,
    /// The newest vendor `updated_at` seen.
    pub newest_update_time: Option<UnixMs>,
    pub pages: i64,
    pub errors: i64,
    pub retries: i64,
    pub vendor_requests: i64,
}

/// A stored source with its state and its tasks' checkpoints.
#[derive(Debug, Clone)]
pub struct StoredSyncSource {
    pub spec: SyncSourceSpec,
    pub create_time: UnixMs,
    pub state: SyncState,
    pub checkpoints: Vec<SyncCheckpoint>,
}

/// Where one task of a source stands. A window is pulled page by page; each
/// page's records are committed with the checkpoint that moves past them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncCheckpoint {
    pub task_id: String,
    /// The window being pulled (or last pulled), inclusive, whole seconds.
    pub window_start: UnixMs,
    pub window_end: UnixMs,
    /// The next page to pull; 0 once the window is complete.
    pub next_page: i64,
    /// No page of the window was lost to an error so far.
    pub clean: bool,
    /// The end of the last window pulled completely and cleanly: the next
    /// window starts an overlap before it.
    pub synced_to: Option<UnixMs>,
    /// The vendor's `total` for the window, and the calls held for it.
    pub vendor_total: i64,
    pub held: i64,
}

/// What one run did: the counts RunSync answers and the state adds up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncRunReport {
    pub name: String,
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub rejected: i64,
    pub pages: i64,
    pub errors: i64,
    pub vendor_requests: i64,
    pub retries: i64,
    pub details_fetched: i64,
    pub vendor_total: i64,
    pub held: i64,
    pub start_time: UnixMs,
    pub end_time: UnixMs,
    /// The error that stopped the run early.
    pub error: String,
    /// The first few errors that did not stop it.
    pub error_messages: Vec<String>,
    pub newest_update_time: Option<UnixMs>,
}

impl SyncRunReport {
    /// Most error messages a report keeps.
    pub const MAX_MESSAGES: usize = 20;

    /// Counts an error that did not stop the run.
    pub fn note_error(&mut self, message: String) {
        self.errors += 1;
        if self.error_messages.len() < Self::MAX_MESSAGES {
            self.error_messages.push(message);
        }
    }
}

/// Checks a source to create, naming each bad field under `prefix`
/// (`sync_source.base_url`). Normalises the base URL to end with `/`.
pub fn validate_spec(spec: &mut SyncSourceSpec, prefix: &str) -> Violations {
    let mut v = Violations::new();
    let field = |name: &str| format!("{prefix}.{name}");
    if let Err(why) = check_name(&spec.name) {
        v.add(field("name"), why);
    }
    if spec.source != Source::Smartivr {
        v.add(
            field("source"),
            "must be SOURCE_SMARTIVR: the other vendors push their records (webhooks, ImportRecords)",
        );
    }
    match check_base_url(&spec.base_url) {
        Ok(url) => spec.base_url = url,
        Err(why) => v.add(field("base_url"), why),
    }
    if spec.task_ids.is_empty() {
        v.add(field("task_ids"), "needs at least one task id");
    } else if spec.task_ids.len() > MAX_SYNC_TASKS {
        v.add(
            field("task_ids"),
            format!("at most {MAX_SYNC_TASKS} tasks per source"),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, task) in spec.task_ids.iter().enumerate() {
        if let Err(why) = check_path_segment(task) {
            v.add(format!("{prefix}.task_ids[{i}]"), why);
        } else if !seen.insert(task.as_str()) {
            v.add(format!("{prefix}.task_ids[{i}]"), "is repeated");
        }
    }
    if spec.headers.len() > MAX_SYNC_HEADERS {
        v.add(
            field("headers"),
            format!("at most {MAX_SYNC_HEADERS} headers"),
        );
    }
    for (name, value) in &spec.headers {
        // The value is a secret: a violation names the header, never echoes it.
        let ok_name = !name.is_empty()
            && name.len() <= MAX_ID_BYTES
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !ok_name {
            v.add(
                format!("{prefix}.headers"),
                "a header name must be 1-256 characters of an HTTP token (letters, digits, `-`…)",
            );
        }
        let ok_value = value.len() <= MAX_TEXT_BYTES
            && value
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
        if !ok_value && ok_name {
            v.add(
                format!("{prefix}.headers[{name}]"),
                "must be printable ASCII, at most 4096 bytes",
            );
        }
    }
    if spec.interval_ms < 0 {
        v.add(field("interval"), "must not be negative");
    } else if spec.interval_ms > 0 && spec.interval_ms < MIN_SYNC_INTERVAL_MS {
        v.add(
            field("interval"),
            "must be at least one second, or 0 (on demand only)",
        );
    }
    if spec.overlap_ms < 0 {
        v.add(field("overlap"), "must not be negative");
    } else if spec.overlap_ms > 366 * 24 * 3600 * 1000 {
        v.add(field("overlap"), "must be at most a year");
    }
    v
}

/// A source's name: like a tenant's, 1-64 of `A-Z a-z 0-9 . _ -`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is required".into());
    }
    if name.len() > MAX_SYNC_NAME_BYTES
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("must be 1-64 of A-Z a-z 0-9 . _ -".into());
    }
    Ok(())
}

/// A value that goes into a URL path (`record_info/{task_id}/{record_id}`):
/// nothing that could leave its segment.
pub fn check_path_segment(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    if value.len() > MAX_ID_BYTES
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        || value == "."
        || value == ".."
    {
        return Err("must be 1-256 of A-Z a-z 0-9 . _ - (a vendor id)".into());
    }
    Ok(())
}

/// An absolute http(s) URL with a host and no query, fragment or
/// credentials, ending in `/`.
pub fn check_base_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is required".into());
    }
    if text.len() > MAX_URL_BYTES {
        return Err(format!("is longer than {MAX_URL_BYTES} bytes"));
    }
    let url = url::Url::parse(text).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold credentials: put the vendor's token in headers".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or a fragment".into());
    }
    let mut text = url.to_string();
    if !text.ends_with('/') {
        text.push('/');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            check_base_url("http://127.0.0.1:9/api").unwrap(),
            "http://127.0.0.1:9/api/"
        );
        assert_eq!(
            check_base_url("https://ivr.example.com/").unwrap(),
            "https://ivr.example.com/"
        );
        for bad in [
            "",
            "ivr.example.com",
            "ftp://x/",
            "http://u:p@x/",
            "http://x/?a=1",
            "not a url",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_segments() {
        assert!(check_path_segment("1bcecc13-e873-4910-913c-d9246a891280").is_ok());
        for bad in ["", "..", "a/b", "a?b", "a b", "%2e"] {
            assert!(check_path_segment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_header_values() {
        let spec = SyncSourceSpec {
            name: "ivr".into(),
            source: Source::Smartivr,
            base_url: "http://x/".into(),
            task_ids: vec!["t".into()],
            headers: [("Authorization".to_owned(), "Bearer s3cret".to_owned())].into(),
            interval_ms: 0,
            overlap_ms: DEFAULT_OVERLAP_MS,
            start_time: None,
        };
        let text = format!("{spec:?}");
        assert!(
            text.contains("Authorization") && !text.contains("s3cret"),
            "{text}"
        );
    }
}
