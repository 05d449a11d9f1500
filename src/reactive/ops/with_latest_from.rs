//! [`WithLatestFrom`]: each item of a stream paired with the latest item of another.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::COMBINE_BUDGET;

pin_project! {
    /// Stream for [`ReactiveExt::with_latest_from`](super::ReactiveExt::with_latest_from):
    /// each item of the source paired with the latest item of the other stream.
    #[must_use = "streams do nothing unless polled"]
    pub struct WithLatestFrom<S, O: Stream> {
        #[pin]
        stream: S,
        #[pin]
        other: O,
        latest: Option<O::Item>,
        other_done: bool,
        done: bool,
    }
}

impl<S, O: Stream> WithLatestFrom<S, O> {
    pub(crate) fn new(stream: S, other: O) -> Self {
        WithLatestFrom {
            stream,
            other,
            latest: None,
            other_done: false,
            done: false,
        }
    }
}

impl<S, O> Stream for WithLatestFrom<S, O>
where
    S: Stream,
    O: Stream,
    O::Item: Clone,
{
    type Item = (S::Item, O::Item);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        // Items taken without emitting anything (the other stream's, and the source's
        // before the other has a value) count against a budget, so that neither input
        // can keep this poll from returning.
        let mut budget = COMBINE_BUDGET;
        loop {
            // The other stream first, to the last item it has ready: a value of the other
            // stream that is ready with an item of the source is the latest for it.
            while !*this.other_done {
                match this.other.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => {
                        *this.latest = Some(item);
                        budget -= 1;
                        if budget == 0 {
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                    }
                    Poll::Ready(None) => {
                        *this.other_done = true;
                        if this.latest.is_none() {
                            // No item of the source can ever be paired.
                            *this.done = true;
                            return Poll::Ready(None);
                        }
                    }
                    Poll::Pending => break,
                }
            }
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => match this.latest.as_ref() {
                    Some(latest) => return Poll::Ready(Some((item, latest.clone()))),
                    None => {
                        budget -= 1;
                        if budget == 0 {
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                    }
                },
                Poll::Ready(None) => {
                    *this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let (lower, upper) = self.stream.size_hint();
        // Once the other stream has a value, every item of the source is emitted.
        let lower = if self.latest.is_some() { lower } else { 0 };
        (lower, upper)
    }
}

impl<S, O> FusedStream for WithLatestFrom<S, O>
where
    S: Stream,
    O: Stream,
    O::Item: Clone,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S, O: Stream> fmt::Debug for WithLatestFrom<S, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithLatestFrom")
            .field("has_latest", &self.latest.is_some())
            .field("other_done", &self.other_done)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
