//! [`Subscription`]: a subscriber's stream of events.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};

use super::{Envelope, HandlerFailure, Item, Lagged};
use crate::broadcast::{Overflow, Receiver};
use crate::bus::ledger::KindLedger;

/// A subscriber's events, as a [`Stream`].
///
/// Items are `Ok(event)` in publish order, or `Err(`[`Lagged`]`)` where the subscriber's
/// `DropOldest`/`DropNewest` policy dropped events (never with `Block`). The stream ends
/// after the bus is closed and everything sent to this subscriber has been received.
/// Dropping it unsubscribes and frees its buffer.
///
/// A subscription claims everything waiting for it at once when it polls and serves it
/// from its own window; the capacity bounds the events waiting in the bus, so up to
/// twice the capacity may be unread at once, and a claimed window is never dropped.
pub struct Subscription<P: Clone + Send + Sync + 'static, K: super::Kind> {
    receiver: Receiver<Item<P, K>, KindLedger<K>>,
}

impl<P: Clone + Send + Sync + 'static, K: super::Kind> Subscription<P, K> {
    pub(crate) fn new(receiver: Receiver<Item<P, K>, KindLedger<K>>) -> Self {
        Subscription { receiver }
    }

    /// The next event, or `None` when the stream has ended; the same as
    /// `StreamExt::next`.
    pub async fn recv(&mut self) -> Option<Result<Envelope<P, K>, Lagged>> {
        std::future::poll_fn(|cx| self.receiver.poll_recv(cx)).await
    }

    /// Events waiting for this subscriber (a lower bound while publishers run).
    pub fn len(&self) -> usize {
        self.receiver.len()
    }

    /// Whether no event is waiting for this subscriber right now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This subscriber's overflow policy.
    pub fn overflow(&self) -> Overflow {
        self.receiver.overflow()
    }

    /// This subscriber's capacity.
    pub fn capacity(&self) -> usize {
        self.receiver.capacity()
    }

    /// Whether the bus has been closed (the stream ends once drained).
    pub fn is_closed(&self) -> bool {
        self.receiver.core().is_closed()
    }
}

impl<P: Clone + Send + Sync + 'static, K: super::Kind> Stream for Subscription<P, K> {
    type Item = Result<Envelope<P, K>, Lagged>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().receiver.poll_recv(cx)
    }
}

// The subscription never pins its events; it only moves them out of its buffers.
impl<P: Clone + Send + Sync + 'static, K: super::Kind> Unpin for Subscription<P, K> {}

impl<P: Clone + Send + Sync + 'static, K: super::Kind> FusedStream for Subscription<P, K> {
    fn is_terminated(&self) -> bool {
        self.receiver.is_terminated()
    }
}

impl<P: Clone + Send + Sync + 'static, K: super::Kind> fmt::Debug for Subscription<P, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("receiver", &self.receiver)
            .finish()
    }
}

/// Handler failures as a stream, from
/// [`EventBus::handler_failures`](super::EventBus::handler_failures).
pub struct Failures {
    receiver: Receiver<HandlerFailure, ()>,
}

impl Failures {
    pub(crate) fn new(receiver: Receiver<HandlerFailure, ()>) -> Self {
        Failures { receiver }
    }
}

impl Stream for Failures {
    type Item = Result<HandlerFailure, Lagged>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().receiver.poll_recv(cx)
    }
}

impl FusedStream for Failures {
    fn is_terminated(&self) -> bool {
        self.receiver.is_terminated()
    }
}

impl fmt::Debug for Failures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failures").finish_non_exhaustive()
    }
}
