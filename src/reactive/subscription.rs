//! [`Subscription`]: one subscriber of a [`ReactiveStream`](super::ReactiveStream), as a
//! `Stream`.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};

use super::subject_state::{Inner, Terminal};
use crate::broadcast::{Lagged, Overflow, Receiver};

/// What a subscriber receives in place of an item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError<E> {
    /// The subscriber's `DropOldest` / `DropNewest` policy dropped this many items
    /// here; the stream goes on.
    #[error("{0}")]
    Lagged(Lagged),
    /// The stream ended with this error ([`ReactiveStream::error`](super::ReactiveStream::error));
    /// nothing follows it.
    #[error("the reactive stream failed: {0}")]
    Failed(E),
}

/// One subscriber of a [`ReactiveStream`](super::ReactiveStream): a [`Stream`] of
/// `Ok(item)` in emit order, `Err(StreamError::Lagged)` where its lossy policy dropped
/// items, and at the end, if the stream failed, one `Err(StreamError::Failed(e))`.
/// After the terminal signal it yields nothing more.
///
/// Dropping it unsubscribes it and frees its buffer.
pub struct Subscription<T: Clone + Send + Sync + 'static, E> {
    receiver: Receiver<T, ()>,
    pub(crate) stream: Arc<Inner<T, E>>,
    /// The terminal signal has been handed out (or the end reached).
    ended: bool,
}

impl<T: Clone + Send + Sync + 'static, E: Clone> Subscription<T, E> {
    pub(crate) fn new(receiver: Receiver<T, ()>, stream: Arc<Inner<T, E>>) -> Self {
        Subscription {
            receiver,
            stream,
            ended: false,
        }
    }

    /// Unsubscribes now: the same as dropping the subscription, spelled out. What was
    /// waiting for it is released and emitters stop waiting for it.
    pub fn unsubscribe(self) {
        drop(self);
    }

    /// This subscriber's overflow policy.
    pub fn overflow(&self) -> Overflow {
        self.receiver.overflow()
    }

    /// How many items may wait for this subscriber.
    pub fn capacity(&self) -> usize {
        self.receiver.capacity()
    }

    /// Items waiting for this subscriber now.
    pub fn len(&self) -> usize {
        self.receiver.len()
    }

    /// Whether no item is waiting for this subscriber now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone + Send + Sync + 'static, E: Clone> Stream for Subscription<T, E> {
    type Item = Result<T, StreamError<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match std::task::ready!(self.receiver.poll_recv(cx)) {
            Some(Ok(item)) => Poll::Ready(Some(Ok(item))),
            Some(Err(lagged)) => Poll::Ready(Some(Err(StreamError::Lagged(lagged)))),
            None => {
                self.ended = true;
                // The terminal signal was set before the core closed.
                match self.stream.terminal() {
                    Some(Terminal::Failed(error)) => {
                        Poll::Ready(Some(Err(StreamError::Failed(error.clone()))))
                    }
                    Some(Terminal::Completed) | None => Poll::Ready(None),
                }
            }
        }
    }
}

// Nothing in a subscription is pinned in place.
impl<T: Clone + Send + Sync + 'static, E> Unpin for Subscription<T, E> {}

impl<T: Clone + Send + Sync + 'static, E: Clone> FusedStream for Subscription<T, E> {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}

impl<T: Clone + Send + Sync + 'static, E> fmt::Debug for Subscription<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("receiver", &self.receiver)
            .field("ended", &self.ended)
            .finish()
    }
}
