//! [`FlowContext`]: the identity, attributes and deadline that travel with one flow.
//!
//! A flow is one unit of work as it moves through riverbed: an event through the bus,
//! an item through a pipeline, a job through the queue. Its context says which flow it
//! is (a unique flow id), on whose behalf (an optional user id), carries free-form
//! string attributes (a tenant, a trace id, a priority hint), and optionally when the
//! work stops being useful (a deadline).
//!
//! # Cheap to clone, copy-on-write
//!
//! The id, user id and attributes sit behind one `Arc`, so cloning a context is a
//! reference-count increment plus copying the deadline. The `with_*` builders change
//! a context through [`Arc::make_mut`]: a context nobody else holds is changed in
//! place, and a shared one is copied first, so clones never see each other's changes.
//!
//! # Serde
//!
//! A context serializes as
//! `{"flow_id": "...", "user_id": "..." | null, "attributes": {"k": "v", ...}}`;
//! attributes are written in key order. **The deadline is not serialized**: it is a
//! [`std::time::Instant`], which only means something inside the process that made
//! it. A deserialized context has no deadline; a receiver that wants one should set
//! its own, for example from a remaining budget it was sent explicitly. When
//! deserializing, `user_id` and `attributes` may be omitted.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use riverbed::FlowContext;
//!
//! let start = Instant::now();
//! let ctx = FlowContext::new()
//!     .with_user_id("alice")
//!     .with_attribute("tenant", "acme")
//!     .with_deadline(start + Duration::from_secs(2));
//!
//! assert_eq!(ctx.flow_id().len(), 36); // UUID-shaped
//! assert_eq!(ctx.user_id(), Some("alice"));
//! assert_eq!(ctx.attribute("tenant"), Some("acme"));
//! assert_eq!(ctx.remaining(start + Duration::from_secs(1)), Some(Duration::from_secs(1)));
//! assert!(ctx.is_expired(start + Duration::from_secs(3)));
//!
//! // Clones share storage until one of them is changed.
//! let child = ctx.clone().with_attribute("step", "parse");
//! assert_eq!(child.flow_id(), ctx.flow_id());
//! assert_eq!(ctx.attribute("step"), None);
//!
//! // The deadline stays in the process.
//! let json = serde_json::to_string(&ctx).unwrap();
//! let back: FlowContext = serde_json::from_str(&json).unwrap();
//! assert_eq!(back.deadline(), None);
//! assert_eq!(back, ctx.clone().without_deadline());
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::id;

/// The identity, attributes and deadline of one flow; see the [module docs](self).
///
/// Equality compares the flow id, user id, attributes and deadline.
///
/// # Example
///
/// ```
/// use riverbed::FlowContext;
///
/// let ctx = FlowContext::new()
///     .with_flow_id("order-1234")
///     .with_attribute("region", "eu")
///     .with_attribute("priority", "high");
/// assert_eq!(ctx.flow_id(), "order-1234");
/// let attributes: Vec<_> = ctx.attributes().collect();
/// assert_eq!(attributes, [("priority", "high"), ("region", "eu")]);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct FlowContext {
    inner: Arc<Inner>,
    deadline: Option<Instant>,
}

#[derive(Clone, PartialEq, Eq)]
struct Inner {
    flow_id: Arc<str>,
    user_id: Option<Arc<str>>,
    attributes: BTreeMap<String, String>,
}

impl FlowContext {
    /// A context with a fresh unique flow id (from [`id::new_id`]), no user id, no
    /// attributes and no deadline.
    pub fn new() -> Self {
        Self::with_id(id::new_id().into())
    }

    fn with_id(flow_id: Arc<str>) -> Self {
        FlowContext {
            inner: Arc::new(Inner {
                flow_id,
                user_id: None,
                attributes: BTreeMap::new(),
            }),
            deadline: None,
        }
    }

    /// Replaces the flow id, for example with one received from upstream.
    pub fn with_flow_id(mut self, flow_id: impl Into<Arc<str>>) -> Self {
        Arc::make_mut(&mut self.inner).flow_id = flow_id.into();
        self
    }

    /// Sets the user the flow runs on behalf of.
    pub fn with_user_id(mut self, user_id: impl Into<Arc<str>>) -> Self {
        Arc::make_mut(&mut self.inner).user_id = Some(user_id.into());
        self
    }

    /// Clears the user id.
    pub fn without_user_id(mut self) -> Self {
        if self.inner.user_id.is_some() {
            Arc::make_mut(&mut self.inner).user_id = None;
        }
        self
    }

    /// Sets attribute `key` to `value`, replacing any earlier value.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.inner)
            .attributes
            .insert(key.into(), value.into());
        self
    }

    /// Removes attribute `key`, if set.
    pub fn without_attribute(mut self, key: &str) -> Self {
        if self.inner.attributes.contains_key(key) {
            Arc::make_mut(&mut self.inner).attributes.remove(key);
        }
        self
    }

    /// Sets the deadline after which the flow's work is no longer useful.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Clears the deadline.
    pub fn without_deadline(mut self) -> Self {
        self.deadline = None;
        self
    }

    /// The flow id.
    pub fn flow_id(&self) -> &str {
        &self.inner.flow_id
    }

    /// The user id, if set.
    pub fn user_id(&self) -> Option<&str> {
        self.inner.user_id.as_deref()
    }

    /// The value of attribute `key`, if set.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.inner.attributes.get(key).map(String::as_str)
    }

    /// All attributes as `(key, value)` pairs, in key order.
    pub fn attributes(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.inner
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The deadline, if set.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left until the deadline as seen at `now`: `None` without a deadline,
    /// [`Duration::ZERO`] once it has passed.
    ///
    /// `now` is passed in so that callers use their runtime's clock
    /// ([`Runtime::now`](crate::runtime::Runtime::now)), which may be virtual.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.deadline
            .map(|deadline| deadline.saturating_duration_since(now))
    }

    /// Whether the deadline has been reached at `now` (`false` without a deadline).
    pub fn is_expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| now >= deadline)
    }
}

impl Default for FlowContext {
    /// Same as [`FlowContext::new`]: a fresh flow id.
    fn default() -> Self {
        FlowContext::new()
    }
}

impl fmt::Debug for FlowContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowContext")
            .field("flow_id", &self.flow_id())
            .field("user_id", &self.user_id())
            .field("attributes", &self.inner.attributes)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// The serialized form, borrowed.
#[derive(Serialize)]
struct ReprRef<'a> {
    flow_id: &'a str,
    user_id: Option<&'a str>,
    attributes: &'a BTreeMap<String, String>,
}

/// The serialized form, owned.
#[derive(Deserialize)]
struct Repr {
    flow_id: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

impl Serialize for FlowContext {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ReprRef {
            flow_id: self.flow_id(),
            user_id: self.user_id(),
            attributes: &self.inner.attributes,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for FlowContext {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = Repr::deserialize(deserializer)?;
        Ok(FlowContext {
            inner: Arc::new(Inner {
                flow_id: repr.flow_id.into(),
                user_id: repr.user_id.map(Into::into),
                attributes: repr.attributes,
            }),
            deadline: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_contexts_have_distinct_ids() {
        let a = FlowContext::new();
        let b = FlowContext::default();
        assert_ne!(a.flow_id(), b.flow_id());
        assert_ne!(a, b);
        assert_eq!(a.user_id(), None);
        assert_eq!(a.attributes().len(), 0);
        assert_eq!(a.deadline(), None);
    }

    #[test]
    fn clone_is_shared_until_modified() {
        let a = FlowContext::new().with_attribute("k", "v");
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
        let c = b.clone().with_attribute("k", "w");
        assert!(!Arc::ptr_eq(&a.inner, &c.inner));
        assert_eq!(a.attribute("k"), Some("v"));
        assert_eq!(c.attribute("k"), Some("w"));
        // Unique owner: changed in place.
        let before = Arc::as_ptr(&c.inner);
        let c = c.with_user_id("bob");
        assert_eq!(Arc::as_ptr(&c.inner), before);
        // Removing what is not there does not copy.
        let d = a.clone().without_attribute("missing").without_user_id();
        assert!(Arc::ptr_eq(&a.inner, &d.inner));
        // A deadline does not touch the shared part.
        let e = a.clone().with_deadline(Instant::now());
        assert!(Arc::ptr_eq(&a.inner, &e.inner));
        assert_ne!(a, e);
    }

    #[test]
    fn builders() {
        let ctx = FlowContext::new()
            .with_flow_id(String::from("flow-1"))
            .with_user_id("u")
            .with_attribute("a", "1")
            .with_attribute("b", "2")
            .with_attribute("a", "3")
            .without_attribute("b");
        assert_eq!(ctx.flow_id(), "flow-1");
        assert_eq!(ctx.user_id(), Some("u"));
        assert_eq!(ctx.attributes().collect::<Vec<_>>(), [("a", "3")]);
        assert_eq!(ctx.clone().without_user_id().user_id(), None);
    }

    #[test]
    fn deadline_arithmetic() {
        let now = Instant::now();
        let ctx = FlowContext::new();
        assert_eq!(ctx.remaining(now), None);
        assert!(!ctx.is_expired(now));

        let ctx = ctx.with_deadline(now + Duration::from_millis(500));
        assert_eq!(ctx.deadline(), Some(now + Duration::from_millis(500)));
        assert_eq!(ctx.remaining(now), Some(Duration::from_millis(500)));
        assert!(!ctx.is_expired(now));
        assert_eq!(
            ctx.remaining(now + Duration::from_millis(500)),
            Some(Duration::ZERO)
        );
        assert!(ctx.is_expired(now + Duration::from_millis(500)));
        assert_eq!(
            ctx.remaining(now + Duration::from_secs(9)),
            Some(Duration::ZERO)
        );
        assert!(
            !ctx.clone()
                .without_deadline()
                .is_expired(now + Duration::from_secs(9))
        );
    }

    #[test]
    fn serde_shape_and_round_trip() {
        let ctx = FlowContext::new()
            .with_flow_id("f")
            .with_user_id("u")
            .with_attribute("z", "last")
            .with_attribute("a", "first")
            .with_deadline(Instant::now());
        let json = serde_json::to_string(&ctx).unwrap();
        assert_eq!(
            json,
            r#"{"flow_id":"f","user_id":"u","attributes":{"a":"first","z":"last"}}"#
        );
        let back: FlowContext = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ctx.clone().without_deadline());

        let minimal: FlowContext = serde_json::from_str(r#"{"flow_id":"only"}"#).unwrap();
        assert_eq!(minimal, FlowContext::new().with_flow_id("only"));
        assert_eq!(
            serde_json::to_string(&minimal).unwrap(),
            r#"{"flow_id":"only","user_id":null,"attributes":{}}"#
        );
        assert!(serde_json::from_str::<FlowContext>(r#"{"user_id":"u"}"#).is_err());
    }

    #[test]
    fn debug_shows_fields() {
        let ctx = FlowContext::new()
            .with_flow_id("f")
            .with_attribute("k", "v");
        let text = format!("{ctx:?}");
        assert_eq!(
            text,
            r#"FlowContext { flow_id: "f", user_id: None, attributes: {"k": "v"}, deadline: None }"#
        );
    }

    #[test]
    fn is_send_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<FlowContext>();
    }
}
