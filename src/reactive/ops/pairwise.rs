//! [`Pairwise`]: each item with the one before it.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream, ready};
use pin_project_lite::pin_project;

pin_project! {
    /// Stream for [`ReactiveExt::pairwise`](super::ReactiveExt::pairwise): each item
    /// after the first, as `(previous, current)`.
    #[must_use = "streams do nothing unless polled"]
    pub struct Pairwise<S: Stream> {
        #[pin]
        stream: S,
        previous: Option<S::Item>,
    }
}

impl<S: Stream> Pairwise<S> {
    pub(crate) fn new(stream: S) -> Self {
        Pairwise {
            stream,
            previous: None,
        }
    }
}

impl<S> Stream for Pairwise<S>
where
    S: Stream,
    S::Item: Clone,
{
    type Item = (S::Item, S::Item);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            let Some(item) = ready!(this.stream.as_mut().poll_next(cx)) else {
                // Nothing is held back past the end: the previous item is dropped.
                *this.previous = None;
                return Poll::Ready(None);
            };
            if let Some(previous) = this.previous.replace(item.clone()) {
                return Poll::Ready(Some((previous, item)));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lower, upper) = self.stream.size_hint();
        if self.previous.is_some() {
            (lower, upper)
        } else {
            // The first item to come makes no pair.
            (lower.saturating_sub(1), upper.map(|n| n.saturating_sub(1)))
        }
    }
}

impl<S> FusedStream for Pairwise<S>
where
    S: FusedStream,
    S::Item: Clone,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}

impl<S: Stream> fmt::Debug for Pairwise<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pairwise")
            .field("has_previous", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}
