//! Events before and after publishing: [`Event`] and [`Envelope`].

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A unique event id, shown as a UUID-shaped string (`8-4-4-4-12` hex digits).
///
/// The bus generates one per event from a random per-bus prefix and the sequence
/// number, unless the publisher supplied its own with [`Event::id`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(pub u128);

impl EventId {
    /// The id as 16 big-endian bytes, the same layout a UUID uses.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::id::write_uuid(f, self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

/// The error of parsing an [`EventId`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event id {input:?}: expected 32 hex digits, optionally hyphenated as 8-4-4-4-12")]
pub struct ParseEventIdError {
    input: String,
}

impl FromStr for EventId {
    type Err = ParseEventIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseEventIdError {
            input: s.to_owned(),
        };
        let hyphenated = s.len() == 36;
        if hyphenated {
            let groups: Vec<&str> = s.split('-').collect();
            let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
            if lens != [8, 4, 4, 4, 12] {
                return Err(err());
            }
        } else if s.len() != 32 {
            return Err(err());
        }
        let mut value: u128 = 0;
        for c in s.chars().filter(|&c| !(hyphenated && c == '-')) {
            let digit = c.to_digit(16).ok_or_else(err)?;
            value = (value << 4) | u128::from(digit);
        }
        Ok(EventId(value))
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Who published an event: a `&'static str` (free to copy) or a shared string
/// (one reference-count increment per copy). Never allocates per event once built.
#[derive(Clone)]
pub struct Source(SourceRepr);

#[derive(Clone)]
enum SourceRepr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Source {
    /// The source as a string slice.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            SourceRepr::Static(s) => s,
            SourceRepr::Shared(s) => s,
        }
    }
}

impl Deref for Source {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for Source {
    fn from(s: &'static str) -> Self {
        Source(SourceRepr::Static(s))
    }
}

impl From<String> for Source {
    fn from(s: String) -> Self {
        Source(SourceRepr::Shared(s.into()))
    }
}

impl From<Arc<str>> for Source {
    fn from(s: Arc<str>) -> Self {
        Source(SourceRepr::Shared(s))
    }
}

impl PartialEq for Source {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Source {}

impl PartialEq<str> for Source {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Source {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::hash::Hash for Source {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Source(SourceRepr::Shared(Arc::from(text.as_ref()))))
    }
}

/// An event about to be published: its kind and payload, and optionally its source,
/// id and timestamp.
///
/// ```
/// use riverbed::bus::Event;
///
/// let event = Event::new("order_placed", 42_u32).source("checkout");
/// assert_eq!(event.kind, "order_placed");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Event<P, K> {
    /// What kind of event this is; filters select on it.
    pub kind: K,
    /// The data the event carries.
    pub payload: P,
    /// Who published it, if it says.
    pub source: Option<Source>,
    /// An id of the publisher's choosing; the bus makes one when this is `None`.
    pub id: Option<EventId>,
    /// A timestamp of the publisher's choosing; the bus reads its clock when `None`.
    pub timestamp: Option<SystemTime>,
}

impl<P, K> Event<P, K> {
    /// An event of `kind` carrying `payload`.
    pub fn new(kind: K, payload: P) -> Self {
        Event {
            kind,
            payload,
            source: None,
            id: None,
            timestamp: None,
        }
    }

    /// Names the publisher.
    pub fn source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Uses `id` instead of a generated one.
    pub fn id(mut self, id: EventId) -> Self {
        self.id = Some(id);
        self
    }

    /// Uses `timestamp` instead of the bus clock's reading at publish time.
    pub fn timestamp(mut self, timestamp: SystemTime) -> Self {
        self.timestamp = Some(timestamp);
        self
    }
}

impl<P, K> From<(K, P)> for Event<P, K> {
    fn from((kind, payload): (K, P)) -> Self {
        Event::new(kind, payload)
    }
}

/// A published event as subscribers see it.
///
/// Each subscriber receives its own copy (the payload is cloned once per matching
/// subscriber, the last one gets the original), so wrap large payloads in an `Arc` to
/// make fan-out cheap. It is the seed's `AsyncEvent {event_id, event_type, timestamp, data, source}` plus a
/// sequence number: `id`, `kind`, `timestamp`, `payload`, `source`, `seq`. It serialises
/// with serde when the payload and kind do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<P, K> {
    /// The event's unique id.
    pub id: EventId,
    /// Position in the bus's publish order: starts at 0, grows by one per event.
    pub seq: u64,
    /// The event's kind.
    pub kind: K,
    /// When it was published (or the timestamp the publisher gave).
    #[serde(with = "crate::serde_time::timestamp")]
    pub timestamp: SystemTime,
    /// Who published it, if it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The data.
    pub payload: P,
}

impl<P, K> Envelope<P, K> {
    /// Turns the envelope back into the event that was published, with its id and
    /// timestamp fixed.
    pub fn into_event(self) -> Event<P, K> {
        Event {
            kind: self.kind,
            payload: self.payload,
            source: self.source,
            id: Some(self.id),
            timestamp: Some(self.timestamp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_round_trips_through_text() {
        let id = EventId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let text = id.to_string();
        assert_eq!(text, "01234567-89ab-cdef-0011-223344556677");
        assert_eq!(text.parse::<EventId>().unwrap(), id);
        assert_eq!(
            "0123456789abcdef0011223344556677"
                .parse::<EventId>()
                .unwrap(),
            id
        );
    }

    #[test]
    fn bad_event_ids_are_typed_errors() {
        for bad in [
            "",
            "xyz",
            "01234567-89ab-cdef-0011-22334455667g",
            "0123456789abcdef00112233445566",
        ] {
            let err = bad.parse::<EventId>().unwrap_err();
            assert!(err.to_string().contains("invalid event id"), "{err}");
        }
        assert!(
            "0123456-789ab-cdef-0011-223344556677"
                .parse::<EventId>()
                .is_err()
        );
    }
}
