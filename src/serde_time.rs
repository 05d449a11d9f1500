//! How points in time and durations read in riverbed's serde forms.
//!
//! In a human-readable format (JSON, TOML, YAML, …) a point in time ([`SystemTime`])
//! is an **RFC 3339 string in UTC** with as many fractional digits as it needs, e.g.
//! `"2026-12-04T01:25:58.5Z"`; any RFC 3339 offset is accepted when reading
//! (`"2026-12-04T02:25:58.5+01:00"`).
//!
//! In a binary format (postcard, as the durable queue stores) a point in time keeps
//! serde's standard form, which is compact and exact. The RFC 3339 conversions are
//! [jiff](https://docs.rs/jiff)'s, which refuses what is out of range with an error,
//! never a panic.
//!
//! A duration ([`Duration`]) is, in every format, **integer nanoseconds in a field
//! whose name ends in `_ns`** (`"p99_ns": 1250000`, `"initial_delay_ns": 100000000`):
//! the unit is in the name, and the value round-trips exactly.

use std::time::{Duration, SystemTime};

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

fn to_rfc3339(time: SystemTime) -> Result<String, String> {
    jiff::Timestamp::try_from(time)
        .map(|t| t.to_string())
        .map_err(|e| format!("a point in time out of the RFC 3339 range: {e}"))
}

fn from_rfc3339(text: &str) -> Result<SystemTime, String> {
    text.parse::<jiff::Timestamp>()
        .map(SystemTime::from)
        .map_err(|e| format!("not an RFC 3339 point in time ({text:?}): {e}"))
}

/// `#[serde(with = "crate::serde_time::timestamp")]` for a `SystemTime`.
pub(crate) mod timestamp {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&to_rfc3339(*time).map_err(serde::ser::Error::custom)?)
        } else {
            time.serialize(s)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        if d.is_human_readable() {
            let text = std::borrow::Cow::<str>::deserialize(d)?;
            from_rfc3339(&text).map_err(de::Error::custom)
        } else {
            SystemTime::deserialize(d)
        }
    }
}

/// `#[serde(with = "crate::serde_time::timestamp_opt")]` for an `Option<SystemTime>`.
pub(crate) mod timestamp_opt {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(transparent)]
    struct Wrapped(#[serde(with = "super::timestamp")] SystemTime);

    pub(crate) fn serialize<S: Serializer>(
        time: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        time.map(Wrapped).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}

/// `#[serde(with = "crate::serde_time::duration_ns")]` for a `Duration`, in a field
/// whose name ends in `_ns`: integer nanoseconds in every format (saturating at
/// `u64::MAX`, 584 years).
pub(crate) mod duration_ns {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_nanos)
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        #[serde(with = "timestamp")]
        at: SystemTime,
        #[serde(with = "timestamp_opt")]
        due: Option<SystemTime>,
        #[serde(rename = "took_ns", with = "duration_ns")]
        took: Duration,
    }

    fn sample() -> Sample {
        Sample {
            at: UNIX_EPOCH + Duration::new(1_796_347_558, 500_000_000),
            due: None,
            took: Duration::from_micros(12_500),
        }
    }

    #[test]
    fn json_reads_as_rfc3339_and_nanoseconds_and_round_trips() {
        let json = serde_json::to_string(&sample()).unwrap();
        assert_eq!(
            json,
            r#"{"at":"2026-12-04T01:25:58.5Z","due":null,"took_ns":12500000}"#
        );
        assert_eq!(serde_json::from_str::<Sample>(&json).unwrap(), sample());
    }

    #[test]
    fn reading_accepts_any_rfc3339_offset() {
        let json = r#"{"at":"2026-12-04T02:25:58.5+01:00","due":"1970-01-01T00:00:01Z","took_ns":12500000}"#;
        let back: Sample = serde_json::from_str(json).unwrap();
        assert_eq!(back.at, sample().at);
        assert_eq!(back.due, Some(UNIX_EPOCH + Duration::from_secs(1)));
        assert_eq!(back.took, sample().took);
    }

    #[test]
    fn bad_input_is_a_typed_error_never_a_panic() {
        for json in [
            r#"{"at":"yesterday","due":null,"took_ns":1}"#,
            r#"{"at":"2026-12-04T01:25:58","due":null,"took_ns":1}"#,
            r#"{"at":"2026-12-04T01:25:58Z","due":null,"took_ns":-1}"#,
            r#"{"at":"2026-12-04T01:25:58Z","due":null,"took_ns":0.5}"#,
            r#"{"at":"2026-12-04T01:25:58Z","due":"soon","took_ns":1}"#,
            r#"{"at":12,"due":null,"took_ns":1}"#,
        ] {
            assert!(serde_json::from_str::<Sample>(json).is_err(), "{json}");
        }
        // A point in time beyond RFC 3339's four-digit years cannot be written.
        let far = Sample {
            at: UNIX_EPOCH + Duration::from_secs(400_000_000_000),
            ..sample()
        };
        assert!(serde_json::to_string(&far).is_err());
    }

    #[test]
    fn binary_formats_keep_the_standard_form() {
        #[derive(Serialize)]
        struct Plain {
            at: SystemTime,
            due: Option<SystemTime>,
            took: u64,
        }
        let s = sample();
        let ours = postcard::to_allocvec(&s).unwrap();
        let plain = postcard::to_allocvec(&Plain {
            at: s.at,
            due: s.due,
            took: 12_500_000,
        })
        .unwrap();
        assert_eq!(ours, plain, "points in time keep the standard binary form");
        assert_eq!(postcard::from_bytes::<Sample>(&ours).unwrap(), s);
    }
}
