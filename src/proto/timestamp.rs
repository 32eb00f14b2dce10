//! `google.protobuf.Timestamp` with its proto3 JSON form: RFC 3339 in UTC
//! with a `Z` and 0, 3, 6 or 9 fractional digits, as the JSON mapping
//! prescribes (pbjson's own type writes `+00:00`, which strict clients such as
//! protobuf-es refuse). Parsing accepts any RFC 3339 offset.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time: seconds and nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, ::prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// The RFC 3339 text of the proto3 JSON mapping, or `None` outside
    /// 0001-01-01 to 9999-12-31 or with nanos outside 0..1e9.
    pub fn to_rfc3339(&self) -> Option<String> {
        if !(0..1_000_000_000).contains(&self.nanos) {
            return None;
        }
        let t = jiff::Timestamp::new(self.seconds, self.nanos).ok()?;
        let whole = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
        let fraction = match self.nanos {
            0 => String::new(),
            n if n % 1_000_000 == 0 => format!(".{:03}", n / 1_000_000),
            n if n % 1_000 == 0 => format!(".{:06}", n / 1_000),
            n => format!(".{n:09}"),
        };
        Some(format!("{whole}{fraction}Z"))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.to_rfc3339().ok_or_else(|| {
            serde::ser::Error::custom(format!(
                "timestamp {}s {}ns is outside RFC 3339",
                self.seconds, self.nanos
            ))
        })?;
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let t: jiff::Timestamp = text
            .parse()
            .map_err(|e| D::Error::custom(format!("not an RFC 3339 timestamp: {e}")))?;
        Ok(Timestamp {
            seconds: t.as_second(),
            nanos: t.subsec_nanosecond(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Timestamp;

    fn json(seconds: i64, nanos: i32) -> String {
        serde_json::to_string(&Timestamp { seconds, nanos }).unwrap()
    }

    #[test]
    fn writes_utc_with_z_and_three_six_or_nine_digits() {
        assert_eq!(json(1_795_132_810, 0), r#""2026-11-20T00:00:10Z""#);
        assert_eq!(
            json(1_795_132_810, 500_000_000),
            r#""2026-11-20T00:00:10.500Z""#
        );
        assert_eq!(
            json(1_795_132_810, 120_000),
            r#""2026-11-20T00:00:10.000120Z""#
        );
        assert_eq!(
            json(1_795_132_810, 7),
            r#""2026-11-20T00:00:10.000000007Z""#
        );
        assert_eq!(json(-62_135_596_800, 0), r#""0001-01-01T00:00:00Z""#);
        assert!(
            serde_json::to_string(&Timestamp {
                seconds: 0,
                nanos: -1
            })
            .is_err()
        );
    }

    #[test]
    fn reads_any_offset() {
        for text in [
            "2026-11-20T00:00:10Z",
            "2026-11-20T08:00:10+08:00",
            "2026-11-20T00:00:10.000Z",
        ] {
            let t: Timestamp = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            assert_eq!((t.seconds, t.nanos), (1_795_132_810, 0), "{text}");
        }
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }
}
