//! [`CombineLatest`]: the latest item of each of two streams, each time either has a new
//! one.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::COMBINE_BUDGET;

pin_project! {
    /// Stream for [`ReactiveExt::combine_latest`](super::ReactiveExt::combine_latest):
    /// a tuple of the latest item of each input, each time either input has a new one.
    #[must_use = "streams do nothing unless polled"]
    pub struct CombineLatest<A: Stream, B: Stream> {
        #[pin]
        a: A,
        #[pin]
        b: B,
        a_latest: Option<A::Item>,
        b_latest: Option<B::Item>,
        a_done: bool,
        b_done: bool,
        // Which input is polled first: the one that did not give the last item.
        b_first: bool,
        done: bool,
    }
}

impl<A: Stream, B: Stream> CombineLatest<A, B> {
    pub(crate) fn new(a: A, b: B) -> Self {
        CombineLatest {
            a,
            b,
            a_latest: None,
            b_latest: None,
            a_done: false,
            b_done: false,
            b_first: false,
            done: false,
        }
    }
}

impl<A, B> Stream for CombineLatest<A, B>
where
    A: Stream,
    B: Stream,
    A::Item: Clone,
    B::Item: Clone,
{
    type Item = (A::Item, B::Item);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        // Each round polls the live inputs, the one that did not give the last item
        // first, until one gives an item. Items that cannot be emitted yet (the other
        // input has none) count against a budget, so an input that is always ready
        // cannot keep this poll from returning.
        for _ in 0..COMBINE_BUDGET {
            let mut progressed = false;
            for turn in 0..2 {
                let poll_a = (turn == 0) != *this.b_first;
                if poll_a && !*this.a_done {
                    match this.a.as_mut().poll_next(cx) {
                        Poll::Ready(Some(item)) => {
                            *this.a_latest = Some(item);
                            *this.b_first = true;
                            progressed = true;
                        }
                        Poll::Ready(None) => {
                            *this.a_done = true;
                            if this.a_latest.is_none() || *this.b_done {
                                *this.done = true;
                                return Poll::Ready(None);
                            }
                        }
                        Poll::Pending => {}
                    }
                } else if !poll_a && !*this.b_done {
                    match this.b.as_mut().poll_next(cx) {
                        Poll::Ready(Some(item)) => {
                            *this.b_latest = Some(item);
                            *this.b_first = false;
                            progressed = true;
                        }
                        Poll::Ready(None) => {
                            *this.b_done = true;
                            if this.b_latest.is_none() || *this.a_done {
                                *this.done = true;
                                return Poll::Ready(None);
                            }
                        }
                        Poll::Pending => {}
                    }
                }
                if progressed {
                    if let (Some(a), Some(b)) = (this.a_latest.as_ref(), this.b_latest.as_ref()) {
                        return Poll::Ready(Some((a.clone(), b.clone())));
                    }
                    break;
                }
            }
            if !progressed {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        // At most one tuple per item still to come from either side.
        let upper = |done: bool, hint: (usize, Option<usize>)| if done { Some(0) } else { hint.1 };
        let a = upper(self.a_done, self.a.size_hint());
        let b = upper(self.b_done, self.b.size_hint());
        match (a, b) {
            (Some(a), Some(b)) => (0, a.checked_add(b)),
            _ => (0, None),
        }
    }
}

impl<A, B> FusedStream for CombineLatest<A, B>
where
    A: Stream,
    B: Stream,
    A::Item: Clone,
    B::Item: Clone,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<A: Stream, B: Stream> fmt::Debug for CombineLatest<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CombineLatest")
            .field("a_has_value", &self.a_latest.is_some())
            .field("b_has_value", &self.b_latest.is_some())
            .field("a_done", &self.a_done)
            .field("b_done", &self.b_done)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
