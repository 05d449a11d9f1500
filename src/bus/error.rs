//! The bus's error types. Each gives back what could not be published.

use std::fmt;

use super::Event;

/// Publishing failed because the bus is closed; the event is handed back.
pub struct PublishError<P, K> {
    event: Event<P, K>,
}

impl<P, K> PublishError<P, K> {
    pub(crate) fn new(event: Event<P, K>) -> Self {
        PublishError { event }
    }

    /// The event that was not published.
    pub fn into_inner(self) -> Event<P, K> {
        self.event
    }

    /// The event that was not published, by reference.
    pub fn event(&self) -> &Event<P, K> {
        &self.event
    }
}

impl<P, K: fmt::Debug> fmt::Debug for PublishError<P, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishError")
            .field("kind", &self.event.kind)
            .finish_non_exhaustive()
    }
}

impl<P, K> fmt::Display for PublishError<P, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the event bus is closed")
    }
}

impl<P, K: fmt::Debug> std::error::Error for PublishError<P, K> {}

/// Why [`EventBus::try_publish`](super::EventBus::try_publish) did not publish; the
/// event is handed back either way.
pub enum TryPublishError<P, K> {
    /// A matching subscriber with the `Block` policy has no room.
    Full(PublishError<P, K>),
    /// The bus is closed.
    Closed(PublishError<P, K>),
}

impl<P, K> TryPublishError<P, K> {
    /// Whether a subscriber was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TryPublishError::Full(_))
    }

    /// Whether the bus was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, TryPublishError::Closed(_))
    }

    /// The event that was not published.
    pub fn into_inner(self) -> Event<P, K> {
        match self {
            TryPublishError::Full(e) | TryPublishError::Closed(e) => e.into_inner(),
        }
    }
}

impl<P, K: fmt::Debug> fmt::Debug for TryPublishError<P, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPublishError::Full(e) => f.debug_tuple("Full").field(e).finish(),
            TryPublishError::Closed(e) => f.debug_tuple("Closed").field(e).finish(),
        }
    }
}

impl<P, K> fmt::Display for TryPublishError<P, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPublishError::Full(_) => f.write_str("a subscriber with the Block policy is full"),
            TryPublishError::Closed(_) => f.write_str("the event bus is closed"),
        }
    }
}

impl<P, K: fmt::Debug> std::error::Error for TryPublishError<P, K> {}

/// Why a subscription could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscribeError {
    /// The history no longer holds `requested`; `oldest` is the oldest it holds (or the
    /// next sequence number, when the history is empty).
    Evicted {
        /// The sequence number asked for.
        requested: u64,
        /// The oldest sequence number that can be replayed.
        oldest: u64,
    },
    /// `requested` has not been published yet; `next` is the next sequence number.
    Ahead {
        /// The sequence number asked for.
        requested: u64,
        /// The sequence number the next event will get.
        next: u64,
    },
    /// A capacity of zero was asked for; a subscriber needs room for one event at least.
    ZeroCapacity,
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubscribeError::Evicted { requested, oldest } => write!(
                f,
                "cannot replay from seq {requested}: the history starts at seq {oldest}"
            ),
            SubscribeError::Ahead { requested, next } => write!(
                f,
                "cannot replay from seq {requested}: the next event to be published is seq {next}"
            ),
            SubscribeError::ZeroCapacity => {
                f.write_str("a subscriber's capacity must be at least 1")
            }
        }
    }
}

impl std::error::Error for SubscribeError {}
