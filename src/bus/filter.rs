//! Which events a subscriber or handler receives.

use std::fmt;
use std::sync::Arc;

use super::Envelope;

type Predicate<P, K> = Arc<dyn Fn(&Envelope<P, K>) -> bool + Send + Sync>;

/// Selects events by kind, by a set of kinds, by a predicate, or all of them.
///
/// Filters run on the publisher's side: an event a subscriber's filter rejects never
/// reaches it and never wakes it. A predicate that panics is treated as a rejection
/// and counted in the bus statistics (`filter_panics`).
///
/// ```
/// use riverbed::bus::Filter;
///
/// let orders: Filter<u32, &str> = Filter::kinds(["order_placed", "order_paid"]);
/// let big: Filter<u32, &str> = Filter::predicate(|e| e.payload > 100);
/// # let _ = (orders, big);
/// ```
pub enum Filter<P, K> {
    /// Every event.
    All,
    /// Events of one kind.
    Kind(K),
    /// Events whose kind is one of these.
    Kinds(Vec<K>),
    /// Events for which the predicate returns `true`.
    Predicate(Predicate<P, K>),
}

impl<P, K> Filter<P, K> {
    /// Every event.
    pub fn all() -> Self {
        Filter::All
    }

    /// Events of `kind`.
    pub fn kind(kind: K) -> Self {
        Filter::Kind(kind)
    }

    /// Events whose kind is any of `kinds`.
    pub fn kinds(kinds: impl IntoIterator<Item = K>) -> Self {
        Filter::Kinds(kinds.into_iter().collect())
    }

    /// Events for which `predicate` returns `true`.
    pub fn predicate(predicate: impl Fn(&Envelope<P, K>) -> bool + Send + Sync + 'static) -> Self {
        Filter::Predicate(Arc::new(predicate))
    }
}

impl<P: Send + 'static, K: PartialEq + Send + Sync + 'static> Filter<P, K> {
    /// Whether `envelope` passes the filter.
    pub fn matches(&self, envelope: &Envelope<P, K>) -> bool {
        match self {
            Filter::All => true,
            Filter::Kind(kind) => envelope.kind == *kind,
            Filter::Kinds(kinds) => kinds.contains(&envelope.kind),
            Filter::Predicate(p) => p(envelope),
        }
    }

    /// The matcher the broadcast core runs; `None` for "everything".
    pub(crate) fn into_matcher(self) -> Option<crate::broadcast::Matcher<Envelope<P, K>>> {
        match self {
            Filter::All => None,
            Filter::Kind(kind) => Some(Box::new(move |e: &Envelope<P, K>| e.kind == kind)),
            Filter::Kinds(kinds) => {
                Some(Box::new(move |e: &Envelope<P, K>| kinds.contains(&e.kind)))
            }
            Filter::Predicate(p) => Some(Box::new(move |e: &Envelope<P, K>| p(e))),
        }
    }
}

impl<P, K: Clone> Clone for Filter<P, K> {
    fn clone(&self) -> Self {
        match self {
            Filter::All => Filter::All,
            Filter::Kind(k) => Filter::Kind(k.clone()),
            Filter::Kinds(ks) => Filter::Kinds(ks.clone()),
            Filter::Predicate(p) => Filter::Predicate(Arc::clone(p)),
        }
    }
}

impl<P, K: fmt::Debug> fmt::Debug for Filter<P, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::All => f.write_str("All"),
            Filter::Kind(k) => f.debug_tuple("Kind").field(k).finish(),
            Filter::Kinds(ks) => f.debug_tuple("Kinds").field(ks).finish(),
            Filter::Predicate(_) => f.write_str("Predicate(..)"),
        }
    }
}
