//! [`BusStats`]: a serde snapshot of what a bus has done.

use serde::{Deserialize, Serialize};

use crate::broadcast::Counts;

/// How many events of one kind were published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCount<K> {
    /// The kind.
    pub kind: K,
    /// Events of that kind published.
    pub count: u64,
}

/// A failure of one handler invocation, as published on
/// [`EventBus::handler_failures`](super::EventBus::handler_failures).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerFailure {
    /// The handler's name.
    pub handler: String,
    /// The sequence number of the event it failed on.
    pub seq: u64,
    /// The event's kind, formatted with `Debug`.
    pub kind: String,
    /// The error's message, or the panic's.
    pub message: String,
    /// Whether the handler panicked (rather than returned an error).
    pub panicked: bool,
}

/// A snapshot of an [`EventBus`](super::EventBus)'s statistics; serialisable.
///
/// Publish-side counters are read together under the bus's lock; each subscriber's
/// own counters (delivered, dropped, filter panics) are read at the same moment but
/// may be mid-update on another thread, and handler statistics are read just before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusStats<K> {
    /// Events published.
    pub published: u64,
    /// Events subscribers have received: one per subscriber and event it read
    /// (replayed events included; events its policy dropped are counted in
    /// `dropped_oldest`/`dropped_newest` instead). Subscribers that left keep their
    /// share of the total.
    pub delivered: u64,
    /// Events dropped by `DropOldest` subscribers.
    pub dropped_oldest: u64,
    /// Events dropped by `DropNewest` subscribers.
    pub dropped_newest: u64,
    /// Filter predicates that panicked (each counts as a rejection).
    pub filter_panics: u64,
    /// Events published, per kind, most frequent first.
    pub per_kind: Vec<KindCount<K>>,
    /// Live subscriptions, handlers included.
    pub subscribers: usize,
    /// Events in the history now.
    pub history_len: usize,
    /// The history bound.
    pub history_capacity: usize,
    /// Handler invocations that returned an error, over all handlers.
    pub handler_failures: u64,
    /// Handler invocations that panicked, over all handlers.
    pub handler_panics: u64,
    /// Each handler's statistics.
    pub handlers: Vec<crate::flow::FlowStats>,
}

impl<K> BusStats<K> {
    pub(crate) fn new(
        counts: &Counts,
        per_kind: Vec<KindCount<K>>,
        subscribers: usize,
        history_len: usize,
        history_capacity: usize,
        handlers: Vec<crate::flow::FlowStats>,
    ) -> Self {
        BusStats {
            published: counts.published,
            delivered: counts.delivered,
            dropped_oldest: counts.dropped_oldest,
            dropped_newest: counts.dropped_newest,
            filter_panics: counts.filter_panics,
            per_kind,
            subscribers,
            history_len,
            history_capacity,
            handler_failures: handlers.iter().map(|h| h.failed).sum(),
            handler_panics: handlers.iter().map(|h| h.panicked).sum(),
            handlers,
        }
    }

    /// Events dropped by any policy.
    pub fn dropped(&self) -> u64 {
        self.dropped_oldest + self.dropped_newest
    }
}
