//! [`SwitchMap`]: a new inner stream for each item, the previous one dropped.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::COMBINE_BUDGET;

pin_project! {
    /// Stream for [`ReactiveExt::switch_map`](super::ReactiveExt::switch_map): the items
    /// of the inner stream made from the latest outer item.
    #[must_use = "streams do nothing unless polled"]
    pub struct SwitchMap<S, U, F> {
        #[pin]
        stream: S,
        #[pin]
        inner: Option<U>,
        f: F,
        stream_done: bool,
    }
}

impl<S, U, F> SwitchMap<S, U, F> {
    pub(crate) fn new(stream: S, f: F) -> Self {
        SwitchMap {
            stream,
            inner: None,
            f,
            stream_done: false,
        }
    }
}

impl<S, U, F> Stream for SwitchMap<S, U, F>
where
    S: Stream,
    F: FnMut(S::Item) -> U,
    U: Stream,
{
    type Item = U::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        // The outer stream first, to the last item it has ready, so a switch is never
        // late: each item replaces (and drops) the inner stream at once. An outer stream
        // that is always ready is cut off after a budget, and the inner polled anyway.
        let mut budget = COMBINE_BUDGET;
        let mut outer_ready = false;
        while !*this.stream_done {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.inner.set(Some((this.f)(item)));
                    budget -= 1;
                    if budget == 0 {
                        outer_ready = true;
                        break;
                    }
                }
                Poll::Ready(None) => *this.stream_done = true,
                Poll::Pending => break,
            }
        }
        if let Some(inner) = this.inner.as_mut().as_pin_mut() {
            match inner.poll_next(cx) {
                Poll::Ready(Some(item)) => return Poll::Ready(Some(item)),
                Poll::Ready(None) => this.inner.set(None),
                Poll::Pending => {}
            }
        }
        if *this.stream_done && this.inner.is_none() {
            return Poll::Ready(None);
        }
        if outer_ready {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match (&self.inner, self.stream_done) {
            (None, true) => (0, Some(0)),
            // Only a finished outer stream bounds what is still to come.
            (Some(inner), true) => inner.size_hint(),
            (_, false) => (0, None),
        }
    }
}

impl<S, U, F> FusedStream for SwitchMap<S, U, F>
where
    S: Stream,
    F: FnMut(S::Item) -> U,
    U: Stream,
{
    fn is_terminated(&self) -> bool {
        self.stream_done && self.inner.is_none()
    }
}

impl<S, U, F> fmt::Debug for SwitchMap<S, U, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwitchMap")
            .field("has_inner", &self.inner.is_some())
            .field("outer_done", &self.stream_done)
            .finish_non_exhaustive()
    }
}
