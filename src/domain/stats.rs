//! Campaign figures as plain types: the stats of a filter, time buckets
//! aligned to a local calendar, and exact money sums.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Unit, Zoned, ZonedRound};

use super::{CallOutcome, Party, UnixMs};

/// The zone a time series aligns to when the request names none.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";
use super::limits::MAX_BUCKETS;
/// The key of calls without an intent level in `by_intent_level` (level ids
/// are never empty, so it cannot collide), and of empty carrier or province.
pub const NO_INTENT_LEVEL_KEY: &str = "";
pub const UNKNOWN_KEY: &str = "unknown";

/// One entry of a breakdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountEntry {
    pub key: String,
    pub name: String,
    pub count: i64,
}

/// A money total in one currency; `amount` is an exact decimal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneyTotal {
    pub currency: String,
    pub amount: String,
}

/// The figures of the calls a filter matches (definitions in the proto).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStats {
    pub total_calls: i64,
    pub answered_calls: i64,
    pub answer_rate: f64,
    pub talk_ms_total: i64,
    pub talk_ms_avg: i64,
    pub talk_ms_p50: i64,
    pub talk_ms_p90: i64,
    pub ring_ms_avg: i64,
    pub rounds_avg: f64,
    pub score_avg: f64,
    pub by_outcome: Vec<CountEntry>,
    pub by_intent_level: Vec<CountEntry>,
    pub by_tag: Vec<CountEntry>,
    pub by_hangup_party: Vec<CountEntry>,
    pub by_carrier: Vec<CountEntry>,
    pub by_province: Vec<CountEntry>,
    pub cost_totals: Vec<MoneyTotal>,
}

/// `part / whole` as a rate, 0 when `whole` is 0.
pub fn ratio(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// `sum / count` truncated toward zero, 0 when `count` is 0.
pub fn int_avg(sum: i64, count: i64) -> i64 {
    if count == 0 { 0 } else { sum / count }
}

/// The 0-based offset of the nearest-rank `p`-th percentile among `n`
/// sorted values: the ⌈p·n⌉-th smallest. `None` when `n` is 0.
pub fn nearest_rank_offset(percent: u32, n: i64) -> Option<i64> {
    if n <= 0 {
        return None;
    }
    // Integer ceiling, so 50 % of 3 values is the 2nd, exactly.
    let rank = (i64::from(percent) * n + 99) / 100;
    Some(rank.clamp(1, n) - 1)
}

/// The width of a rollup bucket: statistics are kept per UTC hour.
pub const ROLLUP_HOUR_MS: i64 = 3_600_000;
/// The width of a rollup bucket of the second tier: the hours of each whole
/// UTC day are summed again, so a long window reads a row per key and day.
pub const ROLLUP_DAY_MS: i64 = 86_400_000;
/// The width of a talk-time histogram bin of the rollups.
pub const ROLLUP_TALK_BIN_MS: i64 = 10_000;

/// A half-open `[start, end)` range of rollup buckets; `None` is unbounded.
pub type RollupSpan = (Option<UnixMs>, Option<UnixMs>);

/// Which buckets of which tier sum to a window of whole hours: the whole UTC
/// days inside it from the day rollups, and the hours before the first and
/// after the last of them from the hour rollups. A window holding no whole
/// day reads hours only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupSpans {
    pub days: Option<RollupSpan>,
    pub hours: Vec<RollupSpan>,
}

impl RollupSpans {
    /// The spans of the window `[start, end)`, both ends on whole hours.
    pub fn of(start: Option<UnixMs>, end: Option<UnixMs>) -> Self {
        let first_day =
            start.map(|s| s + (ROLLUP_DAY_MS - s.rem_euclid(ROLLUP_DAY_MS)) % ROLLUP_DAY_MS);
        let last_day = end.map(|e| e - e.rem_euclid(ROLLUP_DAY_MS));
        if let (Some(first), Some(last)) = (first_day, last_day)
            && first >= last
        {
            return Self::hours_only(start, end);
        }
        let mut hours = Vec::new();
        if let (Some(s), Some(first)) = (start, first_day)
            && s < first
        {
            hours.push((Some(s), Some(first)));
        }
        if let (Some(last), Some(e)) = (last_day, end)
            && last < e
        {
            hours.push((Some(last), Some(e)));
        }
        Self {
            days: Some((first_day, last_day)),
            hours,
        }
    }

    /// The whole window from the hour rollups.
    pub fn hours_only(start: Option<UnixMs>, end: Option<UnixMs>) -> Self {
        Self {
            days: None,
            hours: vec![(start, end)],
        }
    }
}

/// True when the rollups answer for `filter`: it names at most tasks and a
/// `call_time` window whose ends fall on whole UTC hours. Every other filter
/// is served by scanning the calls.
pub fn rollups_answer(filter: &super::CallFilter) -> bool {
    let window = filter.window;
    let on_hour = |end: Option<UnixMs>| end.is_none_or(|t| t.rem_euclid(ROLLUP_HOUR_MS) == 0);
    window.field == super::TimeField::CallTime
        && on_hour(window.start)
        && on_hour(window.end)
        && *filter
            == super::CallFilter {
                task_ids: filter.task_ids.clone(),
                window,
                ..super::CallFilter::default()
            }
}

/// Where the value at 0-based `offset` of a sorted multiset lies, given its
/// histogram as (bin, count) sorted by bin: the bin, and the offset within
/// it. `None` when the histogram holds `offset` or fewer values.
pub fn locate_in_histogram(bins: &[(i64, i64)], offset: i64) -> Option<(i64, i64)> {
    let mut before = 0;
    for &(bin, count) in bins {
        if offset < before + count {
            return Some((bin, offset - before));
        }
        before += count;
    }
    None
}

/// Sorts a breakdown by count descending, then key ascending.
pub fn sort_breakdown(entries: &mut [CountEntry]) {
    entries.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
}

/// The display name of an enum key: `CALL_OUTCOME_NO_ANSWER` → `no answer`.
pub fn enum_label(key: &str, prefix: &str) -> String {
    key.strip_prefix(prefix)
        .unwrap_or(key)
        .to_ascii_lowercase()
        .replace('_', " ")
}

/// The breakdown entry of an outcome.
pub fn outcome_entry(outcome: CallOutcome, count: i64) -> CountEntry {
    CountEntry {
        key: outcome.key().to_owned(),
        name: enum_label(outcome.key(), "CALL_OUTCOME_"),
        count,
    }
}

/// The breakdown entry of a hang-up party.
pub fn party_entry(party: Party, count: i64) -> CountEntry {
    CountEntry {
        key: party.key().to_owned(),
        name: enum_label(party.key(), "PARTY_"),
        count,
    }
}

/// The key of a free-text dimension (carrier, province): `unknown` when empty.
pub fn text_key(text: &str) -> String {
    if text.is_empty() {
        UNKNOWN_KEY.to_owned()
    } else {
        text.to_owned()
    }
}

/// Bucket width of a time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
}

/// Why a series cannot be bucketed; the service names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BucketError {
    #[error("is not a known IANA time zone")]
    UnknownZone,
    #[error("the window needs more than {MAX_BUCKETS} buckets")]
    TooMany,
    #[error("the window is outside the supported range")]
    OutOfRange,
}

/// Looks up an IANA zone; empty means [`DEFAULT_TIME_ZONE`].
pub fn time_zone(name: &str) -> Result<TimeZone, BucketError> {
    let name = if name.trim().is_empty() {
        DEFAULT_TIME_ZONE
    } else {
        name.trim()
    };
    TimeZone::get(name).map_err(|_| BucketError::UnknownZone)
}

/// The buckets covering `[start, end)`: each bucket's start in UTC ms, plus
/// the end of the last bucket as the final element. The first bucket starts
/// at the local midnight (or hour) at or before `start`; a day is 23 or 25
/// hours long across a daylight-saving change.
pub fn bucket_bounds(
    start: UnixMs,
    end: UnixMs,
    granularity: Granularity,
    tz: &TimeZone,
) -> Result<Vec<UnixMs>, BucketError> {
    // Refuse absurd windows before walking them: a local day is at least
    // 23 hours and an hour is an hour.
    let shortest = match granularity {
        Granularity::Hour => 3_600_000,
        Granularity::Day => 23 * 3_600_000,
    };
    if (end - start) / shortest > MAX_BUCKETS as i64 + 1 {
        return Err(BucketError::TooMany);
    }
    let ts = Timestamp::from_millisecond(start).map_err(|_| BucketError::OutOfRange)?;
    let zoned = ts.to_zoned(tz.clone());
    let mut cursor = match granularity {
        Granularity::Day => zoned.start_of_day(),
        Granularity::Hour => zoned.round(
            ZonedRound::new()
                .smallest(Unit::Hour)
                .mode(jiff::RoundMode::Trunc),
        ),
    }
    .map_err(|_| BucketError::OutOfRange)?;
    let mut bounds = vec![cursor.timestamp().as_millisecond()];
    while cursor.timestamp().as_millisecond() < end {
        if bounds.len() > MAX_BUCKETS {
            return Err(BucketError::TooMany);
        }
        cursor = next_bucket(&cursor, granularity)?;
        bounds.push(cursor.timestamp().as_millisecond());
    }
    Ok(bounds)
}

fn next_bucket(at: &Zoned, granularity: Granularity) -> Result<Zoned, BucketError> {
    match granularity {
        // Hours are added in physical time, so a repeated local hour at the
        // end of daylight saving is two buckets, as the clock shows it twice.
        Granularity::Hour => at.checked_add(1.hour()),
        Granularity::Day => at.tomorrow().and_then(|d| d.start_of_day()),
    }
    .map_err(|_| BucketError::OutOfRange)
}

/// The widest step that divides every bucket boundary's distance from the
/// first one: the database groups calls into slots of this width, and each
/// slot falls entirely in one bucket. One day for a zone without DST, one
/// hour across a DST change, 30 or 15 minutes for such offsets.
pub fn slot_width(bounds: &[UnixMs]) -> i64 {
    let origin = bounds.first().copied().unwrap_or(0);
    let g = bounds.iter().fold(0_i64, |g, b| gcd(g, b - origin));
    if g == 0 { 3_600_000 } else { g }
}

fn gcd(a: i64, b: i64) -> i64 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Partial sums of the calls in a slot or bucket; they add up exactly, so
/// slots of the database merge into buckets without loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketSums {
    pub total_calls: i64,
    pub answered_calls: i64,
    pub talk_ms_total: i64,
    pub score_sum: i64,
    pub score_count: i64,
}

impl BucketSums {
    fn add(&mut self, other: &BucketSums) {
        self.total_calls += other.total_calls;
        self.answered_calls += other.answered_calls;
        self.talk_ms_total += other.talk_ms_total;
        self.score_sum += other.score_sum;
        self.score_count += other.score_count;
    }
}

/// One bucket of a time series.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeBucket {
    pub start: UnixMs,
    pub total_calls: i64,
    pub answered_calls: i64,
    pub answer_rate: f64,
    pub talk_ms_total: i64,
    pub talk_ms_avg: i64,
    pub score_avg: f64,
}

/// Folds slot sums (keyed by slot start) into the buckets of `bounds`; every
/// bucket is present, empty ones as zeros.
pub fn merge_slots(bounds: &[UnixMs], slots: &[(UnixMs, BucketSums)]) -> Vec<TimeBucket> {
    let count = bounds.len().saturating_sub(1);
    let mut sums = vec![BucketSums::default(); count];
    for (start, slot) in slots {
        // The bucket whose start is the last bound at or before the slot.
        let i = bounds.partition_point(|b| b <= start);
        if i >= 1 && i - 1 < count {
            sums[i - 1].add(slot);
        }
    }
    bounds
        .iter()
        .zip(sums)
        .map(|(start, s)| TimeBucket {
            start: *start,
            total_calls: s.total_calls,
            answered_calls: s.answered_calls,
            answer_rate: ratio(s.answered_calls, s.total_calls),
            talk_ms_total: s.talk_ms_total,
            talk_ms_avg: int_avg(s.talk_ms_total, s.answered_calls),
            score_avg: ratio(s.score_sum, s.score_count),
        })
        .collect()
}

/// An exact decimal: `units / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decimal {
    units: i128,
    scale: u32,
}

/// Most fraction digits a [`Decimal`] keeps.
const MAX_SCALE: u32 = 30;

impl Decimal {
    /// Parses a plain decimal such as `-12.0075`; `None` for anything else or
    /// more than 30 fraction digits.
    pub fn parse(text: &str) -> Option<Self> {
        if !super::is_decimal(text) {
            return None;
        }
        let (negative, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let scale = u32::try_from(frac.len()).ok().filter(|s| *s <= MAX_SCALE)?;
        let mut units: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            units = units.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        Some(Self {
            units: if negative { -units } else { units },
            scale,
        })
    }

    /// A value given in `parts` of successive 10^-`step` places: the integer
    /// part then chunks of the fraction, as the database sums them.
    pub fn from_parts(int: i64, fraction_chunks: &[i64], step: u32) -> Option<Self> {
        let mut total = Self {
            units: i128::from(int),
            scale: 0,
        };
        for (i, chunk) in fraction_chunks.iter().enumerate() {
            let scale = step.checked_mul(u32::try_from(i + 1).ok()?)?;
            total = total.checked_add(Self {
                units: i128::from(*chunk),
                scale,
            })?;
        }
        Some(total)
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        let scale = self.scale.max(other.scale);
        let a = self
            .units
            .checked_mul(10_i128.checked_pow(scale - self.scale)?)?;
        let b = other
            .units
            .checked_mul(10_i128.checked_pow(scale - other.scale)?)?;
        Some(Self {
            units: a.checked_add(b)?,
            scale,
        })
    }

    pub fn checked_mul_int(self, factor: i64) -> Option<Self> {
        Some(Self {
            units: self.units.checked_mul(i128::from(factor))?,
            scale: self.scale,
        })
    }

    /// The shortest plain form: trailing fraction zeros dropped (`1.50` →
    /// `1.5`, `2.000` → `2`).
    pub fn to_plain_string(self) -> String {
        let mut units = self.units;
        let mut scale = self.scale;
        while scale > 0 && units % 10 == 0 {
            units /= 10;
            scale -= 1;
        }
        let digits = units.unsigned_abs().to_string();
        let sign = if units < 0 { "-" } else { "" };
        if scale == 0 {
            return format!("{sign}{digits}");
        }
        let scale = scale as usize;
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        format!("{sign}{int}.{frac}")
    }
}

/// Sums decimal strings exactly; `None` when one is not a decimal or the sum
/// overflows 38 digits.
pub fn sum_decimals<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut total = Decimal::default();
    for value in values {
        total = total.checked_add(Decimal::parse(value)?)?;
    }
    Some(total.to_plain_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rollups_answer_tasks_and_whole_hour_call_time_windows_only() {
        use crate::domain::{CallFilter, TimeField, TimeWindow};
        let hour = |h: i64| Some(h * ROLLUP_HOUR_MS);
        let window = |field, start, end| CallFilter {
            task_ids: vec!["t".into()],
            window: TimeWindow { field, start, end },
            ..CallFilter::default()
        };
        assert!(rollups_answer(&CallFilter::default()));
        assert!(rollups_answer(&window(
            TimeField::CallTime,
            hour(-3),
            hour(5)
        )));
        assert!(rollups_answer(&window(TimeField::CallTime, None, hour(5))));
        assert!(!rollups_answer(&window(TimeField::CallTime, Some(1), None)));
        assert!(!rollups_answer(&window(
            TimeField::AnswerTime,
            hour(1),
            hour(2)
        )));
        let narrower = CallFilter {
            min_talk_ms: Some(0),
            ..CallFilter::default()
        };
        assert!(!rollups_answer(&narrower));
    }

    #[test]
    fn whole_utc_days_come_from_the_day_rollups_and_the_edges_from_hours() {
        const H: i64 = ROLLUP_HOUR_MS;
        const D: i64 = ROLLUP_DAY_MS;
        let spans = |start, end| RollupSpans::of(start, end);
        // 30 days of Asia/Shanghai: 8 hours, 29 whole UTC days, 16 hours.
        assert_eq!(
            spans(Some(-8 * H), Some(30 * D - 8 * H)),
            RollupSpans {
                days: Some((Some(0), Some(29 * D))),
                hours: vec![
                    (Some(-8 * H), Some(0)),
                    (Some(29 * D), Some(30 * D - 8 * H))
                ],
            }
        );
        // Whole days only, and unbounded ends.
        assert_eq!(
            spans(Some(D), Some(3 * D)),
            RollupSpans {
                days: Some((Some(D), Some(3 * D))),
                hours: vec![],
            }
        );
        assert_eq!(
            spans(None, None),
            RollupSpans {
                days: Some((None, None)),
                hours: vec![],
            }
        );
        assert_eq!(
            spans(Some(-H), None),
            RollupSpans {
                days: Some((Some(0), None)),
                hours: vec![(Some(-H), Some(0))],
            }
        );
        assert_eq!(
            spans(None, Some(D + 5 * H)),
            RollupSpans {
                days: Some((None, Some(D))),
                hours: vec![(Some(D), Some(D + 5 * H))],
            }
        );
        // No whole day inside: the hours alone, even across a midnight.
        assert_eq!(
            spans(Some(D - 2 * H), Some(D + 22 * H)),
            RollupSpans::hours_only(Some(D - 2 * H), Some(D + 22 * H))
        );
        assert_eq!(
            spans(Some(H), Some(2 * H)),
            RollupSpans::hours_only(Some(H), Some(2 * H))
        );
        // An empty or reversed window reads nothing either way.
        assert_eq!(
            spans(Some(D), Some(D)),
            RollupSpans::hours_only(Some(D), Some(D))
        );
    }

    #[test]
    fn histogram_offsets_land_in_their_bin() {
        let bins = [(0, 2), (3, 1), (7, 4)];
        assert_eq!(locate_in_histogram(&bins, 0), Some((0, 0)));
        assert_eq!(locate_in_histogram(&bins, 1), Some((0, 1)));
        assert_eq!(locate_in_histogram(&bins, 2), Some((3, 0)));
        assert_eq!(locate_in_histogram(&bins, 6), Some((7, 3)));
        assert_eq!(locate_in_histogram(&bins, 7), None);
    }

    use super::*;

    fn ms(text: &str) -> UnixMs {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn nearest_rank() {
        assert_eq!(nearest_rank_offset(50, 0), None);
        assert_eq!(nearest_rank_offset(50, 1), Some(0));
        assert_eq!(nearest_rank_offset(50, 3), Some(1));
        assert_eq!(nearest_rank_offset(50, 4), Some(1));
        assert_eq!(nearest_rank_offset(90, 10), Some(8));
        assert_eq!(nearest_rank_offset(90, 11), Some(9));
    }

    #[test]
    fn decimals_add_exactly() {
        assert_eq!(sum_decimals(["0.1", "0.2"]).as_deref(), Some("0.3"));
        assert_eq!(
            sum_decimals(["0.007875", "1", "-0.5"]).as_deref(),
            Some("0.507875")
        );
        assert_eq!(sum_decimals(["-0.25", "0.05"]).as_deref(), Some("-0.2"));
        assert_eq!(sum_decimals(["1.50", "2.50"]).as_deref(), Some("4"));
        assert_eq!(sum_decimals([]).as_deref(), Some("0"));
        assert_eq!(sum_decimals(["1e3"]), None);
        let parts = Decimal::from_parts(3, &[7_875_000, 0], 9).unwrap();
        assert_eq!(parts.to_plain_string(), "3.007875");
        assert_eq!(
            Decimal::parse("0.5")
                .unwrap()
                .checked_mul_int(3)
                .unwrap()
                .to_plain_string(),
            "1.5"
        );
    }

    #[test]
    fn new_york_spring_forward_day_is_23_hours() {
        let tz = time_zone("America/New_York").unwrap();
        let b = bucket_bounds(
            ms("2026-03-07T12:00:00Z"),
            ms("2026-03-10T05:00:00Z"),
            Granularity::Day,
            &tz,
        )
        .unwrap();
        assert_eq!(
            b,
            vec![
                ms("2026-03-07T05:00:00Z"),
                ms("2026-03-08T05:00:00Z"),
                ms("2026-03-09T04:00:00Z"),
                ms("2026-03-10T04:00:00Z"),
                ms("2026-03-11T04:00:00Z"),
            ]
        );
        assert_eq!(slot_width(&b), 3_600_000);
    }

    #[test]
    fn shanghai_days_and_hours() {
        let tz = time_zone("").unwrap();
        let b = bucket_bounds(
            ms("2026-01-01T16:00:00Z"),
            ms("2026-01-03T16:00:00Z"),
            Granularity::Day,
            &tz,
        )
        .unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(slot_width(&b), 86_400_000);
        let h = bucket_bounds(
            ms("2026-01-01T16:30:00Z"),
            ms("2026-01-01T18:00:00Z"),
            Granularity::Hour,
            &tz,
        )
        .unwrap();
        assert_eq!(
            h,
            vec![
                ms("2026-01-01T16:00:00Z"),
                ms("2026-01-01T17:00:00Z"),
                ms("2026-01-01T18:00:00Z")
            ]
        );
    }

    #[test]
    fn half_hour_zones_align_to_local_hours() {
        let tz = time_zone("Asia/Kolkata").unwrap();
        let h = bucket_bounds(
            ms("2026-01-01T00:00:00Z"),
            ms("2026-01-01T01:00:00Z"),
            Granularity::Hour,
            &tz,
        )
        .unwrap();
        assert_eq!(h[0], ms("2025-12-31T23:30:00Z"));
        assert_eq!(slot_width(&h), 3_600_000);
    }

    #[test]
    fn limits() {
        assert_eq!(
            time_zone("Mars/Olympus").unwrap_err(),
            BucketError::UnknownZone
        );
        let tz = time_zone("UTC").unwrap();
        let year = 366 * 86_400_000;
        assert_eq!(
            bucket_bounds(0, 2 * year, Granularity::Hour, &tz).unwrap_err(),
            BucketError::TooMany
        );
        assert!(bucket_bounds(0, year, Granularity::Day, &tz).is_ok());
        let exactly = bucket_bounds(0, 10_000 * 3_600_000, Granularity::Hour, &tz).unwrap();
        assert_eq!(exactly.len(), 10_001);
        assert!(bucket_bounds(0, 10_000 * 3_600_000 + 1, Granularity::Hour, &tz).is_err());
    }
}
