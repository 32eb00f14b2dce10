//! Outgoing webhooks in plain terms: a subscription, the record of one
//! event's delivery, the retry schedule, the signature, and which URLs may be
//! called at all (the address rules; resolving names is the worker's part).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub use super::event::EventKind;
use super::{
    CallFilter, CallOutcome, Party, ScoreRange, Source, TagMatch, TimeField, TimeWindow,
    TranscriptQuery, UnixMs,
};

/// Longest subscription URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Most subscriptions a tenant may have.
pub const MAX_SUBSCRIPTIONS_PER_TENANT: usize = 100;

/// Whether a subscription's deliveries currently succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    Active = 1,
    /// An event was given up after its retries ran out.
    Failing = 2,
}

impl SubscriptionState {
    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            1 => Some(Self::Active),
            2 => Some(Self::Failing),
            _ => None,
        }
    }
}

/// A registered webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub url: String,
    pub filter: CallFilter,
    /// Empty: every kind.
    pub kinds: Vec<EventKind>,
    /// The HMAC key; only CreateSubscription's answer shows it.
    pub secret: String,
    pub create_time: UnixMs,
    pub state: SubscriptionState,
    pub last_error: String,
    /// The position of the last event acknowledged, given up or skipped as
    /// not matching: delivery continues after it.
    pub position: i64,
}

impl Subscription {
    /// Whether an event of `kind` is wanted (the filter is checked apart).
    pub fn wants(&self, kind: EventKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }
}

/// Where one event's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending = 1,
    Delivered = 2,
    /// Retries ran out.
    Failed = 3,
}

impl DeliveryState {
    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            1 => Some(Self::Pending),
            2 => Some(Self::Delivered),
            3 => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event's delivery to one subscription, over all its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub position: i64,
    pub event_id: String,
    pub kind: EventKind,
    pub call_id: String,
    pub state: DeliveryState,
    pub attempts: i32,
    /// 0: no HTTP answer.
    pub last_status: i32,
    pub last_error: String,
    pub first_attempt_time: UnixMs,
    pub last_attempt_time: UnixMs,
    pub next_retry_time: Option<UnixMs>,
}

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt; doubled after each further one.
    pub base: Duration,
    /// The longest delay between two attempts.
    pub max: Duration,
    /// How long an event is retried, from its first attempt, before it is
    /// given up.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempts + 1`, after `attempts` failures,
    /// with "full jitter" in its upper half: `jitter` in `[0, 1)` picks a
    /// delay between half and all of the exponential one, so receivers coming
    /// back up are not hit by every sender at once.
    pub fn delay(&self, attempts: i32, jitter: f64) -> Duration {
        let exponent = attempts.saturating_sub(1).clamp(0, 30) as u32;
        let full = self.base.saturating_mul(1u32 << exponent).min(self.max);
        full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// Whether an event first attempted at `first` is given up at `now`.
    pub fn gives_up(&self, first: UnixMs, now: UnixMs) -> bool {
        let give_up_ms = i64::try_from(self.give_up_after.as_millis()).unwrap_or(i64::MAX);
        now.saturating_sub(first) >= give_up_ms
    }
}

/// `Callscope-Signature`'s value for `body` sent at `unix_seconds`:
/// `t=UNIX,v1=HEX(HMAC-SHA256(secret, "UNIX." + body))`, Stripe's scheme.
pub fn signature(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// A new signing secret: 32 random bytes, hex, with Stripe's `whsec_` prefix.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", hex::encode(bytes))
}

/// Checks a subscription URL's form: absolute http(s) with a host, no user
/// information, at most [`MAX_URL_BYTES`]. Answers the host and port.
pub fn check_url_form(url: &str) -> Result<(String, u16), String> {
    if url.is_empty() {
        return Err("is required".to_owned());
    }
    if url.len() > MAX_URL_BYTES {
        return Err(format!("is longer than {MAX_URL_BYTES} bytes"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("is not a URL: {e}"))?;
    let port = match parsed.scheme() {
        "http" | "https" => parsed
            .port_or_known_default()
            .ok_or_else(|| "has no port".to_owned())?,
        other => return Err(format!("must be http:// or https://, not {other}://")),
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry a user name or password".to_owned());
    }
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "has no host".to_owned())?;
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    ))
}

/// Why an address may not receive webhooks, or `None` when it may: loopback,
/// private (RFC 1918, unique-local), link-local (the cloud metadata address
/// 169.254.169.254 included), carrier-grade NAT, unspecified, broadcast,
/// multicast and reserved addresses, also inside IPv4-mapped IPv6.
pub fn refused_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_v4(v4);
            }
            refused_v6(v6)
        }
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("is a loopback address")
    } else if ip.is_private() {
        Some("is a private address")
    } else if ip.is_link_local() {
        Some("is a link-local address (cloud metadata)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("is a shared (carrier-grade NAT) address")
    } else if ip.is_unspecified() || a == 0 {
        Some("is an unspecified address")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("is a broadcast, multicast or reserved address")
    } else {
        None
    }
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("is a loopback address")
    } else if ip.is_unspecified() {
        Some("is an unspecified address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("is a private (unique-local) address")
    } else if first & 0xffc0 == 0xfe80 {
        Some("is a link-local address")
    } else if ip.is_multicast() {
        Some("is a multicast address")
    } else if ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64: the IPv4 address it stands for decides.
        let [.., c, d] = ip.segments();
        let v4 = Ipv4Addr::new((c >> 8) as u8, c as u8, (d >> 8) as u8, d as u8);
        refused_v4(v4)
    } else {
        None
    }
}

/// A [`CallFilter`] as stored with its subscription (JSON): enums by wire
/// number, so new values never break old rows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredFilter {
    task_ids: Vec<String>,
    phone: Option<String>,
    phone_contains: Option<String>,
    score_ranges: Vec<(Option<i32>, Option<i32>)>,
    tag_ids: Vec<String>,
    tag_match_all: bool,
    tag_group_ids: Vec<String>,
    intent_level_ids: Vec<String>,
    time_field: i32,
    start: Option<UnixMs>,
    end: Option<UnixMs>,
    min_talk_ms: Option<i64>,
    max_talk_ms: Option<i64>,
    min_rounds: Option<i32>,
    max_rounds: Option<i32>,
    outcomes: Vec<i32>,
    sources: Vec<i32>,
    carriers: Vec<String>,
    provinces: Vec<String>,
    hangup_by: Option<i32>,
    transcript: Option<(String, Option<i32>)>,
    external_ids: Vec<String>,
    exclude_tag_ids: Vec<String>,
    exclude_intent_level_ids: Vec<String>,
    exclude_outcomes: Vec<i32>,
    attributes: BTreeMap<String, String>,
    quality_flags: Vec<String>,
}

impl From<&CallFilter> for StoredFilter {
    fn from(f: &CallFilter) -> Self {
        Self {
            task_ids: f.task_ids.clone(),
            phone: f.phone.clone(),
            phone_contains: f.phone_contains.clone(),
            score_ranges: f.score_ranges.iter().map(|r| (r.min, r.max)).collect(),
            tag_ids: f.tag_ids.clone(),
            tag_match_all: f.tag_match == TagMatch::All,
            tag_group_ids: f.tag_group_ids.clone(),
            intent_level_ids: f.intent_level_ids.clone(),
            time_field: match f.window.field {
                TimeField::CallTime => 0,
                TimeField::AnswerTime => 1,
                TimeField::HangupTime => 2,
                TimeField::SyncTime => 3,
            },
            start: f.window.start,
            end: f.window.end,
            min_talk_ms: f.min_talk_ms,
            max_talk_ms: f.max_talk_ms,
            min_rounds: f.min_rounds,
            max_rounds: f.max_rounds,
            outcomes: f.outcomes.iter().map(|o| o.code()).collect(),
            sources: f.sources.iter().map(|s| s.code()).collect(),
            carriers: f.carriers.clone(),
            provinces: f.provinces.clone(),
            hangup_by: f.hangup_by.map(|p| p.code()),
            transcript: f
                .transcript
                .as_ref()
                .map(|t| (t.text.clone(), t.party.map(|p| p.code()))),
            external_ids: f.external_ids.clone(),
            exclude_tag_ids: f.exclude_tag_ids.clone(),
            exclude_intent_level_ids: f.exclude_intent_level_ids.clone(),
            exclude_outcomes: f.exclude_outcomes.iter().map(|o| o.code()).collect(),
            attributes: f.attributes.clone(),
            quality_flags: f.quality_flags.clone(),
        }
    }
}

impl StoredFilter {
    /// The filter back; `Err` names a value this version does not know.
    pub fn into_filter(self) -> Result<CallFilter, String> {
        let code = |what: &str, c: i32| format!("unknown {what} {c}");
        Ok(CallFilter {
            task_ids: self.task_ids,
            phone: self.phone,
            phone_contains: self.phone_contains,
            score_ranges: self
                .score_ranges
                .into_iter()
                .map(|(min, max)| ScoreRange { min, max })
                .collect(),
            tag_ids: self.tag_ids,
            tag_match: if self.tag_match_all {
                TagMatch::All
            } else {
                TagMatch::Any
            },
            tag_group_ids: self.tag_group_ids,
            intent_level_ids: self.intent_level_ids,
            window: TimeWindow {
                field: match self.time_field {
                    0 => TimeField::CallTime,
                    1 => TimeField::AnswerTime,
                    2 => TimeField::HangupTime,
                    3 => TimeField::SyncTime,
                    c => return Err(code("time field", c)),
                },
                start: self.start,
                end: self.end,
            },
            min_talk_ms: self.min_talk_ms,
            max_talk_ms: self.max_talk_ms,
            min_rounds: self.min_rounds,
            max_rounds: self.max_rounds,
            outcomes: self
                .outcomes
                .into_iter()
                .map(|c| CallOutcome::from_code(c).ok_or_else(|| code("outcome", c)))
                .collect::<Result<_, _>>()?,
            sources: self
                .sources
                .into_iter()
                .map(|c| Source::from_code(c).ok_or_else(|| code("source", c)))
                .collect::<Result<_, _>>()?,
            carriers: self.carriers,
            provinces: self.provinces,
            hangup_by: self
                .hangup_by
                .map(|c| Party::from_code(c).ok_or_else(|| code("party", c)))
                .transpose()?,
            transcript: match self.transcript {
                None => None,
                Some((text, party)) => Some(TranscriptQuery {
                    text,
                    party: party
                        .map(|c| Party::from_code(c).ok_or_else(|| code("party", c)))
                        .transpose()?,
                }),
            },
            external_ids: self.external_ids,
            exclude_tag_ids: self.exclude_tag_ids,
            exclude_intent_level_ids: self.exclude_intent_level_ids,
            exclude_outcomes: self
                .exclude_outcomes
                .into_iter()
                .map(|c| CallOutcome::from_code(c).ok_or_else(|| code("outcome", c)))
                .collect::<Result<_, _>>()?,
            attributes: self.attributes,
            quality_flags: self.quality_flags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_stripes_scheme() {
        // Computed independently: python3 -c 'import hmac,hashlib;
        // print(hmac.new(b"whsec_test", b"1700000000.{\"a\":1}", hashlib.sha256).hexdigest())'
        let sig = signature("whsec_test", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(sig, format!("t=1700000000,v1={}", EXPECTED_HEX));
    }

    const EXPECTED_HEX: &str = "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789";

    #[test]
    fn delays_double_within_jitter_and_cap() {
        let p = RetryPolicy {
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3600),
        };
        assert_eq!(p.delay(1, 0.999_999).as_secs(), 9);
        assert_eq!(p.delay(1, 0.0), Duration::from_secs(5));
        assert_eq!(p.delay(2, 0.0), Duration::from_secs(10));
        assert_eq!(p.delay(3, 0.0), Duration::from_secs(20));
        assert_eq!(p.delay(10, 0.0), Duration::from_secs(30));
        assert_eq!(p.delay(1000, 1.0), Duration::from_secs(60));
        assert!(!p.gives_up(0, 3_599_999));
        assert!(p.gives_up(0, 3_600_000));
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert_eq!(
            check_url_form("https://example.com/hook").unwrap(),
            ("example.com".to_owned(), 443)
        );
        assert_eq!(
            check_url_form("http://[::1]:8080/").unwrap(),
            ("::1".to_owned(), 8080)
        );
        for bad in [
            "",
            "ftp://example.com/",
            "file:///etc/passwd",
            "example.com",
            "https://u:p@example.com/",
        ] {
            assert!(check_url_form(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_addresses_are_refused() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(refused_address(ip).is_some(), "{refused}");
        }
        for allowed in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            let ip: IpAddr = allowed.parse().unwrap();
            assert_eq!(refused_address(ip), None, "{allowed}");
        }
    }

    #[test]
    fn filters_survive_storage() {
        let filter = CallFilter {
            task_ids: vec!["t1".into()],
            phone: Some("+8618651683344".into()),
            score_ranges: vec![ScoreRange {
                min: Some(1),
                max: None,
            }],
            tag_match: TagMatch::All,
            tag_ids: vec!["a".into(), "b".into()],
            window: TimeWindow {
                field: TimeField::HangupTime,
                start: Some(5),
                end: Some(9),
            },
            outcomes: vec![CallOutcome::Answered],
            sources: vec![Source::Laaffic],
            hangup_by: Some(Party::Customer),
            transcript: Some(TranscriptQuery {
                text: "好".into(),
                party: Some(Party::Robot),
            }),
            min_rounds: Some(2),
            ..CallFilter::default()
        };
        let json = serde_json::to_string(&StoredFilter::from(&filter)).unwrap();
        let back: StoredFilter = serde_json::from_str(&json).unwrap();
        assert_eq!(back.into_filter().unwrap(), filter);
    }
}
