//! [`Debounce`]: an item once the stream has been quiet for a while.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream, ready};
use pin_project_lite::pin_project;

use super::upstream::{upstream_access, upstream_hint};
use crate::runtime::poll_due;
use crate::runtime::{Deadline, SharedRuntime};

pin_project! {
    /// Emits an item once no newer one has arrived for a while; from
    /// [`ReactiveExt::debounce`](super::ReactiveExt::debounce), where the exact
    /// semantics are.
    #[must_use = "streams do nothing unless polled"]
    pub struct Debounce<S: Stream> {
        #[pin]
        upstream: S,
        quiet: Duration,
        // The newest item, waiting for the quiet period to pass.
        held: Option<S::Item>,
        // When `held` goes out; set exactly while an item is held.
        due: Deadline,
        upstream_done: bool,
        done: bool,
    }
}

impl<S: Stream> Debounce<S> {
    pub(crate) fn new(upstream: S, quiet: Duration, rt: SharedRuntime) -> Self {
        Debounce {
            upstream,
            quiet,
            held: None,
            due: Deadline::new(rt),
            upstream_done: false,
            done: false,
        }
    }

    upstream_access!(
        upstream: S,
        /// The upstream stream; the held item, if any, is dropped.
    );
}

impl<S: Stream> Stream for Debounce<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        let mut now = None;
        loop {
            if *this.done {
                return Poll::Ready(None);
            }
            if *this.upstream_done {
                // The held item goes out at once; the next poll ends the stream.
                this.due.clear();
                let held = this.held.take();
                *this.done = held.is_none();
                return Poll::Ready(held);
            }
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    let arrived = this.due.now_cached(&mut now);
                    // The held item's quiet period ended at or before this arrival.
                    let quiet_before = this.due.is_due(arrived);
                    let previous = this.held.replace(item);
                    this.due.set_after(arrived, *this.quiet);
                    if quiet_before && previous.is_some() {
                        return Poll::Ready(previous);
                    }
                }
                Poll::Ready(None) => *this.upstream_done = true,
                Poll::Pending => {
                    if this.held.is_none() {
                        return Poll::Pending;
                    }
                    ready!(poll_due(this.due, cx, &mut now));
                    this.due.clear();
                    return Poll::Ready(this.held.take());
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let held = usize::from(self.held.is_some());
        let (lower, upper) = upstream_hint(&self.upstream, self.upstream_done);
        // The last item always comes out; any other may be replaced.
        let lower = (lower + held).min(1);
        (lower, upper.and_then(|upper| upper.checked_add(held)))
    }
}

impl<S: Stream> FusedStream for Debounce<S> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S: Stream> fmt::Debug for Debounce<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Debounce")
            .field("quiet", &self.quiet)
            .field("holding", &self.held.is_some())
            .field("due", &self.due)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
