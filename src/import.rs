//! `callscope import`: vendor export files into the database through the same
//! pipeline as ImportRecords, in batches, with progress and a closing summary.

use std::path::Path;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::value::RawValue;

use crate::config::ImportConfig;
use crate::domain::DEFAULT_TENANT;
use crate::domain::limits::MAX_RECORDS_PER_REQUEST;
use crate::service::CallScope;
use crate::service::ingest::{Channel, RecordOutcome};
use crate::store::{Store, StoreOptions};

/// What an import did, record by record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// Records whose calls were erased (not stored again).
    pub erased: u64,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "inserted {}, updated {}, unchanged {}, rejected {}",
            self.inserted, self.updated, self.unchanged, self.rejected
        )?;
        if self.erased > 0 {
            write!(f, ", erased {}", self.erased)?;
        }
        Ok(())
    }
}

/// Imports every file; a re-run of the same files changes nothing.
pub async fn run_import(config: &ImportConfig) -> anyhow::Result<ImportSummary> {
    let store = Store::connect(&StoreOptions {
        url: config.database_url.clone(),
        read_url: None,
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(30),
        busy_timeout: std::time::Duration::from_secs(30),
    })
    .await
    .with_context(|| format!("opening {}", crate::store::redact(&config.database_url)))?;
    let service = CallScope::new(store, config.sources.settings());
    let batch_size = config.batch_size.clamp(1, MAX_RECORDS_PER_REQUEST);

    let mut summary = ImportSummary::default();
    for path in &config.files {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let records = split_records(&text);
        let progress = ProgressBar::new(records.len() as u64).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} records ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        progress.set_message(file_name(path));
        for chunk in records.chunks(batch_size) {
            let results = service
                .import_records(
                    DEFAULT_TENANT,
                    config.source,
                    Channel::Import,
                    chunk,
                    config.task_id.as_deref(),
                )
                .await
                .with_context(|| format!("storing records of {}", path.display()))?;
            for result in results {
                match result.outcome {
                    RecordOutcome::Inserted => summary.inserted += 1,
                    RecordOutcome::Updated => summary.updated += 1,
                    RecordOutcome::Unchanged => summary.unchanged += 1,
                    RecordOutcome::Rejected => summary.rejected += 1,
                    RecordOutcome::Erased => summary.erased += 1,
                }
            }
            progress.inc(chunk.len() as u64);
        }
        progress.finish_and_clear();
    }
    Ok(summary)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The records of an export file, each exactly as written: the elements of a
/// JSON array, one JSON document, or the non-empty lines of NDJSON (a line
/// that is not JSON stays a record, so the pipeline quarantines it).
pub fn split_records(text: &[u8]) -> Vec<&[u8]> {
    if let Ok(array) = serde_json::from_slice::<Vec<&RawValue>>(text) {
        return array.into_iter().map(|r| r.get().as_bytes()).collect();
    }
    if serde_json::from_slice::<&RawValue>(text).is_ok() {
        return vec![text];
    }
    text.split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::split_records;

    #[test]
    fn arrays_documents_and_ndjson() {
        assert_eq!(
            split_records(br#"[{"a":1}, {"b":[2]}]"#),
            vec![&br#"{"a":1}"#[..], br#"{"b":[2]}"#]
        );
        assert_eq!(split_records(b"{\"a\":\n1}"), vec![&b"{\"a\":\n1}"[..]]);
        assert_eq!(
            split_records(b"{\"a\":1}\n\n{broken\r\n{\"c\":3}\n"),
            vec![&b"{\"a\":1}"[..], b"{broken", b"{\"c\":3}"]
        );
    }
}
