//! Phone-number normalisation: every number is stored and compared in one form,
//! E.164 where the number is a real one, so that `+86 186-5168-3344`,
//! `8618651683344` and `18651683344` are the same number.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use phonenumber::{Mode, country};
use quick_cache::{Equivalent, sync::Cache};

/// Why a phone number cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("has no digits")]
    NoDigits,
    #[error("is longer than 32 digits")]
    TooLong,
}

/// A default region for numbers written without a country code (`CN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region(country::Id);

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_ref())
    }
}

impl FromStr for Region {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        country::Id::from_str(&s.trim().to_ascii_uppercase())
            .map(Region)
            .map_err(|_| format!("unknown region `{s}`: use an ISO 3166 code such as CN or US"))
    }
}

impl Default for Region {
    fn default() -> Self {
        Region(country::Id::CN)
    }
}

/// Builds the phone-number metadata now rather than in the first request
/// that carries a number: the `phonenumber` crate prepares its 4,831 regular
/// expressions on first use (560 M instructions under callgrind), and a CN
/// number compiles the patterns of its region.
pub fn warm_up() {
    let _ = normalize_phone("18651683344", Region::default());
}

/// The digits of a text, in order (`+86 186-5168` → `861865168`).
pub fn phone_digits(raw: &str) -> String {
    raw.chars().filter(char::is_ascii_digit).collect()
}

/// Notations normalised so far, and their answers (errors included).
///
/// Parsing and validating one number with `phonenumber` costs about 165,000
/// instructions (its patterns are regular expressions), more than the rest
/// of a call's ingest in this process; and the same notations come back:
/// every call of a campaign line carries the same caller, a number is dialled
/// again and again, a dialing list is uploaded again. Normalisation is a pure
/// function of the notation and the region, so an answer never goes stale.
/// Bounded (65,536 notations of at most 64 bytes, with quick_cache's ghost
/// entries and table: about 16 MB at most), cleared by [`forget_notations`],
/// and rid of what was parsed more than [`NOTATIONS_MAX_AGE`] ago by
/// [`forget_notations_older_than`].
static NORMALISED: LazyLock<Cache<Notation, Kept>> = LazyLock::new(|| Cache::new(NOTATIONS_KEPT));

/// How long a notation stays in [`NORMALISED`] at most (the server sweeps
/// it every minute): an erased number leaves the memory of the replica that
/// erased it at once, and of every other replica within about eleven
/// minutes, without a signal between them. A notation in use is parsed
/// again this often, a few milliseconds of CPU per ten minutes per thousand
/// notations.
pub const NOTATIONS_MAX_AGE: Duration = Duration::from_secs(600);

/// An answer of [`NORMALISED`] and when it was parsed.
#[derive(Clone)]
struct Kept {
    answer: Result<String, PhoneError>,
    parsed_at: Instant,
}

/// How many notations [`NORMALISED`] keeps.
const NOTATIONS_KEPT: usize = 65_536;

/// The longest notation [`NORMALISED`] keeps, in bytes: a client may send
/// any text, and a long one (a number needs no more than 32 digits and some
/// punctuation) is parsed every time rather than held.
const LONGEST_KEPT: usize = 64;

/// A key of [`NORMALISED`]: a notation read in a region (`None`: always
/// international).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Notation {
    region: Option<Region>,
    raw: String,
}

/// [`Notation`] borrowed, to look one up without allocating; it hashes
/// field by field as `Notation` does (`&str` as `String`).
#[derive(Hash)]
struct NotationRef<'a> {
    region: Option<Region>,
    raw: &'a str,
}

impl Equivalent<Notation> for NotationRef<'_> {
    fn equivalent(&self, key: &Notation) -> bool {
        self.region == key.region && self.raw == key.raw
    }
}

/// The answer [`NORMALISED`] keeps for `raw` read in `region` (`None`:
/// internationally), or the parsed one, kept. Two requests may parse the
/// same new notation at once; both get the same answer.
fn normalised(region: Option<Region>, raw: &str) -> Result<String, PhoneError> {
    let parse = || match region {
        Some(region) => parse_phone(raw, region),
        None => parse_international_phone(raw),
    };
    if raw.len() > LONGEST_KEPT {
        return parse();
    }
    if let Some(kept) = NORMALISED.get(&NotationRef { region, raw }) {
        return kept.answer;
    }
    let answer = parse();
    NORMALISED.insert(
        Notation {
            region,
            raw: raw.to_owned(),
        },
        Kept {
            answer: answer.clone(),
            parsed_at: Instant::now(),
        },
    );
    answer
}

/// Drops every notation normalised so far in this process, so that a number
/// erased from the store does not stay in its cache. An ingest in flight
/// may put it back, and other replicas keep theirs: both leave with
/// [`forget_notations_older_than`].
pub fn forget_notations() {
    NORMALISED.clear();
}

/// Drops the notations parsed `max_age` ago or earlier.
pub fn forget_notations_older_than(max_age: Duration) {
    NORMALISED.retain(|_, kept| kept.parsed_at.elapsed() < max_age);
}

/// Whether `raw` read in `region` is kept.
#[cfg(test)]
pub(crate) fn notation_is_kept(raw: &str, region: Region) -> bool {
    let region = Some(region);
    NORMALISED.get(&NotationRef { region, raw }).is_some()
}

/// Normalises a phone number as written by a person or a vendor.
///
/// - With a leading `+` (or `00`), the number is international.
/// - Without, it is read in `region` first; if that is not a valid number, the
///   digits are tried as an international number without its `+` (how LAAFFIC
///   writes `63123456788`).
/// - A number valid in neither reading (a short code, an extension such as
///   `300708`) is kept as its bare digits, so it still compares equal to itself.
pub fn normalize_phone(raw: &str, region: Region) -> Result<String, PhoneError> {
    normalised(Some(region), raw)
}

fn parse_phone(raw: &str, region: Region) -> Result<String, PhoneError> {
    let digits = phone_digits(raw);
    if digits.is_empty() {
        return Err(PhoneError::NoDigits);
    }
    if digits.len() > 32 {
        return Err(PhoneError::TooLong);
    }
    let trimmed = raw.trim_start();
    let international = if trimmed.starts_with('+') {
        Some(digits.as_str())
    } else if trimmed.starts_with("00") && digits.len() > 6 {
        Some(&digits[2..])
    } else {
        None
    };
    if let Some(intl) = international {
        return Ok(e164_if_valid(None, &format!("+{intl}")).unwrap_or_else(|| format!("+{intl}")));
    }
    if let Some(national) = e164_if_valid(Some(region.0), &digits) {
        return Ok(national);
    }
    if let Some(intl) = e164_if_valid(None, &format!("+{digits}")) {
        return Ok(intl);
    }
    Ok(digits)
}

/// Normalises a number that the sender always writes internationally, with or
/// without the `+` (LAAFFIC's `callee`).
pub fn normalize_international_phone(raw: &str) -> Result<String, PhoneError> {
    normalised(None, raw)
}

fn parse_international_phone(raw: &str) -> Result<String, PhoneError> {
    let digits = phone_digits(raw);
    if digits.is_empty() {
        return Err(PhoneError::NoDigits);
    }
    if digits.len() > 32 {
        return Err(PhoneError::TooLong);
    }
    Ok(e164_if_valid(None, &format!("+{digits}")).unwrap_or_else(|| format!("+{digits}")))
}

fn e164_if_valid(region: Option<country::Id>, text: &str) -> Option<String> {
    let number = phonenumber::parse(region, text).ok()?;
    phonenumber::is_valid(&number).then(|| number.format().mode(Mode::E164).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_answer_is_the_parsed_one() {
        let notations = [
            "+86 186-5168-3344",
            "18651683344",
            "4915123456789",
            "300708",
            "no digits",
            "",
            "123456789012345678901234567890123",
        ];
        for raw in notations {
            for region in [Region::default(), "US".parse().unwrap()] {
                let parsed = parse_phone(raw, region);
                // Once to keep it, once from the cache.
                assert_eq!(normalize_phone(raw, region), parsed, "{raw} in {region}");
                assert_eq!(normalize_phone(raw, region), parsed, "{raw} in {region}");
            }
            let parsed = parse_international_phone(raw);
            assert_eq!(normalize_international_phone(raw), parsed, "{raw}");
            assert_eq!(normalize_international_phone(raw), parsed, "{raw}");
        }
        // The same notation read in another region, or internationally, is
        // another key.
        assert_eq!(cn("16502530000"), "+8616502530000");
        assert_eq!(
            normalize_phone("16502530000", "US".parse().unwrap()).unwrap(),
            "+16502530000"
        );
    }

    /// Held by the tests that empty the process's cache and then look in
    /// it, so that one does not empty it between another's steps.
    static EMPTIES_THE_CACHE: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn forgotten_notations_are_parsed_again() {
        let _alone = EMPTIES_THE_CACHE.lock();
        let raw = "+86 186 5168 0042 (forget me)";
        assert_eq!(cn(raw), "+8618651680042");
        let key = NotationRef {
            region: Some(Region::default()),
            raw,
        };
        let kept = NORMALISED.get(&key).map(|kept| kept.answer);
        assert_eq!(kept, Some(Ok("+8618651680042".to_owned())));
        forget_notations();
        assert!(NORMALISED.get(&key).is_none());
    }

    #[test]
    fn notations_older_than_the_age_given_are_forgotten() {
        let _alone = EMPTIES_THE_CACHE.lock();
        let raw = "+86 186 5168 0043 (age me)";
        assert_eq!(cn(raw), "+8618651680043");
        forget_notations_older_than(NOTATIONS_MAX_AGE);
        assert!(notation_is_kept(raw, Region::default()));
        forget_notations_older_than(Duration::ZERO);
        assert!(!notation_is_kept(raw, Region::default()));
        assert_eq!(cn(raw), "+8618651680043");
    }

    #[test]
    fn long_notations_are_parsed_and_not_kept() {
        let raw = format!("+86 186 5168 3344{}", " ".repeat(LONGEST_KEPT));
        assert_eq!(cn(&raw), "+8618651683344");
        assert!(!notation_is_kept(&raw, Region::default()));
    }

    fn cn(raw: &str) -> String {
        normalize_phone(raw, Region::default()).unwrap()
    }

    #[test]
    fn chinese_notations_are_one_number() {
        assert_eq!(cn("+86 186-5168-3344"), "+8618651683344");
        assert_eq!(cn("8618651683344"), "+8618651683344");
        assert_eq!(cn("18651683344"), "+8618651683344");
        assert_eq!(cn("0086 186 5168 3344"), "+8618651683344");
    }

    #[test]
    fn foreign_number_without_plus_is_read_internationally() {
        assert_eq!(cn("+1 (650) 253-0000"), "+16502530000");
        // Not a Chinese number, so the digits are read as country code + number.
        assert_eq!(cn("4915123456789"), "+4915123456789");
        // Region wins when the digits are a valid number there too.
        assert_eq!(cn("16502530000"), "+8616502530000");
        assert_eq!(
            normalize_international_phone("63123456788").unwrap(),
            "+63123456788"
        );
    }

    #[test]
    fn short_codes_keep_their_digits() {
        assert_eq!(cn("300708"), "300708");
    }

    #[test]
    fn text_without_digits_is_an_error() {
        assert_eq!(
            normalize_phone("call me", Region::default()),
            Err(PhoneError::NoDigits)
        );
        assert_eq!(
            normalize_phone("", Region::default()),
            Err(PhoneError::NoDigits)
        );
    }

    #[test]
    fn region_parses_iso_codes() {
        assert!("us".parse::<Region>().is_ok());
        assert!("XX".parse::<Region>().is_err());
    }
}
