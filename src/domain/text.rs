//! Text the databases cannot store. PostgreSQL rejects the NUL character
//! (U+0000) in `TEXT`, so input carrying one is refused up front, naming the
//! field, instead of failing inside a transaction.

use serde::Serialize;
use serde_json::Value;

/// What a violation for a NUL character says.
pub const NUL_DESCRIPTION: &str = "contains a NUL character (U+0000), which cannot be stored";

/// The path (`turns[1].customer_text`, `attributes["key"]`) of the first text
/// in `value` that holds a NUL character, if any.
pub fn find_nul<T: Serialize>(value: &T) -> Option<String> {
    nul_fields(value).into_iter().next()
}

/// The paths of every text in `value` that holds a NUL character.
pub fn nul_fields<T: Serialize>(value: &T) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(value) = serde_json::to_value(value) {
        collect(&value, "", &mut found);
    }
    found
}

fn collect(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::String(text) if text.contains('\0') => found.push(path.to_owned()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect(item, &format!("{path}[{i}]"), found);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                // Free-form maps (attributes) are addressed by key.
                let child = if path.ends_with("attributes") {
                    format!("{path}[{key:?}]")
                } else if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if key.contains('\0') {
                    found.push(child);
                } else {
                    collect(item, &child, found);
                }
            }
        }
        _ => {}
    }
}

/// The text with NUL characters replaced, for messages we store ourselves.
pub fn without_nul(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Serialize)]
    struct Turn {
        customer_text: String,
    }

    #[derive(Serialize)]
    struct Record {
        external_id: String,
        turns: Vec<Turn>,
        attributes: BTreeMap<String, String>,
    }

    #[test]
    fn names_the_field_that_holds_a_nul() {
        let mut record = Record {
            external_id: "ok".into(),
            turns: vec![
                Turn {
                    customer_text: "fine".into(),
                },
                Turn {
                    customer_text: "bad\0".into(),
                },
            ],
            attributes: BTreeMap::new(),
        };
        assert_eq!(find_nul(&record).as_deref(), Some("turns[1].customer_text"));
        record.turns.clear();
        assert_eq!(find_nul(&record), None);
        record.attributes.insert("k".into(), "v\0".into());
        assert_eq!(find_nul(&record).as_deref(), Some("attributes[\"k\"]"));
        record.turns.push(Turn {
            customer_text: "\0".into(),
        });
        assert_eq!(
            nul_fields(&record),
            ["attributes[\"k\"]", "turns[0].customer_text"]
        );
        assert_eq!(without_nul("a\0b"), "a\u{FFFD}b");
    }
}
