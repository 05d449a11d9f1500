//! [`TimeoutStream`]: a time limit on every wait for an item.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::{Stream, ready};
use pin_project_lite::pin_project;

use super::upstream::{Upstream, upstream_operator};
use crate::runtime::poll_due;
use crate::runtime::{Deadline, Elapsed, SharedRuntime};

pin_project! {
    /// Ends the stream with [`Elapsed`] when upstream takes too long to yield an item;
    /// from [`ReactiveExt::timeout`](super::ReactiveExt::timeout), where the exact
    /// semantics are.
    #[must_use = "streams do nothing unless polled"]
    pub struct TimeoutStream<S> {
        #[pin]
        upstream: Upstream<S>,
        limit: Duration,
        // The end of the current wait. It stays set between waits, so the timer armed
        // for one wait serves the next one (it is re-armed when it fires early).
        due: Deadline,
        // Whether a wait is in progress (`due` is its end).
        waiting: bool,
    }
}

impl<S> TimeoutStream<S> {
    pub(crate) fn new(upstream: S, limit: Duration, rt: SharedRuntime) -> Self {
        TimeoutStream {
            upstream: Upstream::new(upstream),
            limit,
            due: Deadline::new(rt),
            waiting: false,
        }
    }

    /// The time limit of each wait.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

impl<S: Stream> TimeoutStream<S> {
    fn step(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<S::Item, Elapsed>>> {
        let mut this = self.project();
        let mut now = None;
        if !*this.waiting {
            // The wait starts when the next item is asked for.
            let asked = this.due.now_cached(&mut now);
            this.due.set_after(asked, *this.limit);
            *this.waiting = true;
        }
        match this.upstream.as_mut().poll_item(cx) {
            Poll::Ready(Some(item)) => {
                let arrived = this.due.now_cached(&mut now);
                if this.due.is_due(arrived) {
                    // Too late: the limit passed before it came.
                    this.upstream.end();
                    this.due.clear();
                    return Poll::Ready(Some(Err(Elapsed)));
                }
                *this.waiting = false;
                Poll::Ready(Some(Ok(item)))
            }
            Poll::Ready(None) => {
                this.due.clear();
                this.upstream.finish()
            }
            Poll::Pending => {
                ready!(poll_due(this.due, cx, &mut now));
                this.upstream.end();
                this.due.clear();
                Poll::Ready(Some(Err(Elapsed)))
            }
        }
    }

    /// What may still come out, given what the upstream may still yield.
    fn hint(&self, (lower, upper): (usize, Option<usize>)) -> (usize, Option<usize>) {
        // Each item, or fewer and the `Elapsed`.
        (lower.min(1), upper.and_then(|upper| upper.checked_add(1)))
    }

    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("limit", &self.limit)
            .field("waiting", &self.waiting)
            .field("due", &self.due);
    }
}

upstream_operator!(
    TimeoutStream,
    Result<S::Item, Elapsed>,
    /// The upstream stream.
);
