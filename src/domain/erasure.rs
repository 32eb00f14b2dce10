//! Erasure and retention rules: which notations of a phone number count as
//! that number in a raw vendor payload, how a number is masked in logs, and
//! the quarantine's caps.

use phonenumber::Mode;

use super::Source;

/// What erasing a number removed (or would remove).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErasureCounts {
    pub calls: i64,
    pub task_numbers: i64,
    pub rejected_records: i64,
}

/// How much the quarantine keeps per tenant and source; the oldest records
/// are dropped first when a new one is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineLimits {
    pub max_rows: u64,
    pub max_bytes: u64,
}

impl Default for QuarantineLimits {
    fn default() -> Self {
        Self {
            max_rows: 10_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// What a trim of the quarantine dropped, for one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuarantineTrim {
    pub source: Option<Source>,
    pub rows: u64,
    pub bytes: u64,
}

/// The notations of one (normalised) phone number that vendors write in raw
/// payloads, as runs of ASCII digits.
///
/// For a number in E.164, `+8613800138000` (country code 86, national
/// significant number `13800138000`), exactly these match:
/// - the E.164 digits, `8613800138000`, which also covers `+8613800138000`;
/// - the international dialing form `008613800138000`;
/// - the national significant number `13800138000`;
/// - the national dialing form when it adds a trunk prefix (`01065529988`
///   for the Beijing landline `+861065529988`).
///
/// Each must stand as a whole run of digits: not preceded or followed by
/// another digit, so `+8613800138001` or an id `213800138000` does not
/// match. Separators inside the number (`138-0013-8000`, `138 0013 8000`)
/// are not matched: vendors write numbers as plain digits. A number kept as
/// bare digits (a short code such as `300708`) matches as those digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNotations {
    /// The number as stored (E.164 or bare digits).
    pub phone: String,
    /// Digit runs, each a notation of the number.
    pub notations: Vec<String>,
}

impl PhoneNotations {
    /// The notations of `phone`, a number as [`super::normalize_phone`] answers it.
    pub fn new(phone: &str) -> Self {
        let digits = super::phone_digits(phone);
        let mut notations = vec![digits.clone()];
        if phone.starts_with('+')
            && let Ok(number) = phonenumber::parse(None, phone)
        {
            let code = number.code().value().to_string();
            if let Some(national) = digits.strip_prefix(&code).filter(|n| !n.is_empty()) {
                notations.push(format!("00{digits}"));
                notations.push(national.to_owned());
                let dialed = super::phone_digits(&number.format().mode(Mode::National).to_string());
                if dialed != national && dialed.ends_with(national) {
                    notations.push(dialed);
                }
            }
        }
        notations.sort();
        notations.dedup();
        Self {
            phone: phone.to_owned(),
            notations,
        }
    }

    /// The shortest notation: every other one contains it, so a payload that
    /// holds the number holds this (a cheap pre-filter for the database).
    pub fn shortest(&self) -> &str {
        self.notations
            .iter()
            .min_by_key(|n| n.len())
            .map_or("", String::as_str)
    }

    /// Whether `payload` holds the number in one of its notations, as a whole
    /// run of digits.
    pub fn found_in(&self, payload: &[u8]) -> bool {
        self.notations
            .iter()
            .any(|n| contains_digit_run(payload, n.as_bytes()))
    }
}

/// Whether `needle` occurs in `haystack` with no ASCII digit right before or after it.
fn contains_digit_run(haystack: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() || needle.len() > haystack.len() {
        return false;
    }
    (0..=haystack.len() - needle.len()).any(|start| {
        let end = start + needle.len();
        haystack[start..end] == *needle
            && (start == 0 || !haystack[start - 1].is_ascii_digit())
            && haystack.get(end).is_none_or(|b| !b.is_ascii_digit())
    })
}

/// A phone number fit for a log line: `+8613800010001` → `+86138****0001`.
/// Shorter numbers keep only their last two digits.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    let n = chars.len();
    if n >= 11 {
        let head: String = chars[..6].iter().collect();
        let tail: String = chars[n - 4..].iter().collect();
        format!("{head}****{tail}")
    } else if n >= 5 {
        let tail: String = chars[n - 2..].iter().collect();
        format!("****{tail}")
    } else {
        "****".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notations_of_a_chinese_mobile() {
        let n = PhoneNotations::new("+8613800138000");
        assert_eq!(
            n.notations,
            ["008613800138000", "13800138000", "8613800138000"]
        );
        assert_eq!(n.shortest(), "13800138000");
    }

    #[test]
    fn landline_adds_the_trunk_prefix() {
        let n = PhoneNotations::new("+861065529988");
        assert!(n.notations.contains(&"01065529988".to_owned()), "{n:?}");
        assert!(n.notations.contains(&"1065529988".to_owned()), "{n:?}");
    }

    #[test]
    fn matches_whole_digit_runs_only() {
        let n = PhoneNotations::new("+8613800138000");
        assert!(n.found_in(br#"{"callee":"+8613800138000"}"#));
        assert!(n.found_in(br#"{"callee":"8613800138000"}"#));
        assert!(n.found_in(br#"{"phone":13800138000}"#));
        assert!(n.found_in(b"008613800138000"));
        assert!(!n.found_in(br#"{"callee":"+8613800138001"}"#));
        assert!(!n.found_in(br#"{"id":"213800138000"}"#));
        assert!(!n.found_in(br#"{"callee":"138-0013-8000"}"#));
    }

    #[test]
    fn short_codes_are_their_digits() {
        let n = PhoneNotations::new("300708");
        assert_eq!(n.notations, ["300708"]);
        assert!(n.found_in(b"tel 300708."));
    }

    #[test]
    fn masking() {
        assert_eq!(mask_phone("+8613800010001"), "+86138****0001");
        assert_eq!(mask_phone("300708"), "****08");
        assert_eq!(mask_phone("123"), "****");
    }
}
