//! The bus's error types. Each gives back what could not be published.

use std::fmt;

use super::Event;

/// Publishing failed because the bus is closed; the event is handed back.
#[derive(thiserror::Error)]
#[error("the event bus is closed")]
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

/// Why [`EventBus::try_publish`](super::EventBus::try_publish) did not publish; the
/// event is handed back either way.
#[derive(thiserror::Error)]
pub enum TryPublishError<P, K> {
    /// A matching subscriber with the `Block` policy has no room.
    #[error("a subscriber with the Block policy is full")]
    Full(PublishError<P, K>),
    /// The bus is closed.
    #[error("the event bus is closed")]
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
