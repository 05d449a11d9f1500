//! [`Accumulate`]: every state of a running fold.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream, ready};
use pin_project_lite::pin_project;

pin_project! {
    /// Stream for [`ReactiveExt::accumulate`](super::ReactiveExt::accumulate): the
    /// state after each item of a running fold.
    #[must_use = "streams do nothing unless polled"]
    pub struct Accumulate<S, A, F> {
        #[pin]
        stream: S,
        // Taken while `f` runs; `None` after a panic in `f`, which ends the stream.
        state: Option<A>,
        f: F,
    }
}

impl<S, A, F> Accumulate<S, A, F> {
    pub(crate) fn new(stream: S, initial: A, f: F) -> Self {
        Accumulate {
            stream,
            state: Some(initial),
            f,
        }
    }
}

impl<S, A, F> Stream for Accumulate<S, A, F>
where
    S: Stream,
    F: FnMut(A, S::Item) -> A,
    A: Clone,
{
    type Item = A;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<A>> {
        let mut this = self.project();
        if this.state.is_none() {
            return Poll::Ready(None);
        }
        let Some(item) = ready!(this.stream.as_mut().poll_next(cx)) else {
            return Poll::Ready(None);
        };
        let Some(state) = this.state.take() else {
            return Poll::Ready(None);
        };
        let next = (this.f)(state, item);
        *this.state = Some(next.clone());
        Poll::Ready(Some(next))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.state.is_none() {
            return (0, Some(0));
        }
        self.stream.size_hint()
    }
}

impl<S, A, F> FusedStream for Accumulate<S, A, F>
where
    S: FusedStream,
    F: FnMut(A, S::Item) -> A,
    A: Clone,
{
    fn is_terminated(&self) -> bool {
        self.state.is_none() || self.stream.is_terminated()
    }
}

impl<S, A: fmt::Debug, F> fmt::Debug for Accumulate<S, A, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accumulate")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
