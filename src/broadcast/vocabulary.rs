//! What a subscriber chooses and what it may be told: [`Overflow`], [`Lagged`],
//! [`SubscribeOptions`] and [`SubscribeError`].

use serde::{Deserialize, Serialize};

/// What happens when a subscriber's buffer is full and another event arrives for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Overflow {
    /// The publisher waits until the subscriber has room: backpressure, nothing is lost.
    #[default]
    Block,
    /// The oldest waiting event is dropped to make room; the subscriber receives a
    /// [`Lagged`] error with the number it missed before the events that follow the gap.
    DropOldest,
    /// The new event is dropped for this subscriber; it receives a [`Lagged`] error with
    /// the number it missed after the events it already had waiting.
    DropNewest,
}

/// A subscriber fell behind and missed events because its overflow policy dropped them.
///
/// It appears in the stream exactly where the gap is, and the count is exact (only
/// events the subscriber's filter accepts are counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[error("subscriber lagged: {missed} events were dropped")]
pub struct Lagged {
    /// How many events this subscriber missed at this point of its stream.
    pub missed: u64,
}

/// How a subscriber of an [`EventBus`](crate::bus::EventBus) or a
/// [`ReactiveStream`](crate::reactive::ReactiveStream) is set up: its capacity and its
/// [`Overflow`] policy.
///
/// ```
/// use riverbed::broadcast::{Overflow, SubscribeOptions};
///
/// let options = SubscribeOptions::new().capacity(64).overflow(Overflow::DropOldest);
/// assert_eq!(options.get_capacity(), Some(64));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SubscribeOptions {
    capacity: Option<usize>,
    overflow: Overflow,
}

impl SubscribeOptions {
    /// Defaults: the bus's or stream's capacity, and [`Overflow::Block`].
    pub fn new() -> Self {
        Self::default()
    }

    /// How many items may wait for this subscriber before its overflow policy applies.
    /// Subscribing with a capacity of 0 fails with [`SubscribeError::ZeroCapacity`].
    pub fn capacity(mut self, items: usize) -> Self {
        self.capacity = Some(items);
        self
    }

    /// What happens when this subscriber is full.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// The capacity asked for, if any (`None`: the bus's or stream's own).
    pub fn get_capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// The overflow policy asked for.
    pub fn get_overflow(&self) -> Overflow {
        self.overflow
    }

    /// The capacity to use: the one asked for, else `default`; a typed error for 0.
    pub(crate) fn resolve_capacity(&self, default: usize) -> Result<usize, SubscribeError> {
        match self.capacity {
            Some(0) => Err(SubscribeError::ZeroCapacity),
            Some(n) => Ok(n),
            None => Ok(default),
        }
    }
}

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// A replay was asked from a sequence number the history no longer holds; `oldest`
    /// is the oldest it holds (or the next sequence number, when the history is empty).
    #[error("cannot replay from seq {requested}: the history starts at seq {oldest}")]
    Evicted {
        /// The sequence number asked for.
        requested: u64,
        /// The oldest sequence number that can be replayed.
        oldest: u64,
    },
    /// A replay was asked from a sequence number not published yet; `next` is the next
    /// sequence number.
    #[error("cannot replay from seq {requested}: the next item to be published is seq {next}")]
    Ahead {
        /// The sequence number asked for.
        requested: u64,
        /// The sequence number the next item will get.
        next: u64,
    },
    /// A capacity of zero was asked for; a subscriber needs room for one item at least.
    #[error("a subscriber's capacity must be at least 1")]
    ZeroCapacity,
}
