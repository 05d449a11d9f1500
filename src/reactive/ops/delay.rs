//! [`Delay`]: every item shifted later by a fixed time.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use pin_project_lite::pin_project;

use super::upstream::{Upstream, upstream_operator};
use crate::runtime::{Deadline, SharedRuntime};

pin_project! {
    /// Emits every item a fixed time after it arrived, in order; from
    /// [`ReactiveExt::delay`](super::ReactiveExt::delay), where the exact semantics
    /// are.
    #[must_use = "streams do nothing unless polled"]
    pub struct Delay<S: Stream> {
        #[pin]
        upstream: Upstream<S>,
        by: Duration,
        // The items on their way, each with when it goes out (`None`: never, past the
        // end of representable time). Arrival order is due order.
        queue: VecDeque<(Option<Instant>, S::Item)>,
        // When the head of the queue goes out.
        head: Deadline,
    }
}

impl<S: Stream> Delay<S> {
    pub(crate) fn new(upstream: S, by: Duration, rt: SharedRuntime) -> Self {
        Delay {
            upstream: Upstream::new(upstream),
            by,
            queue: VecDeque::new(),
            head: Deadline::new(rt),
        }
    }

    /// The number of items received and not yet emitted.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }
}

impl<S: Stream> Delay<S> {
    fn step(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        let mut now = None;
        loop {
            // The head goes out once its time has come.
            if let Some(&(due, _)) = this.queue.front() {
                let current = this.head.now_cached(&mut now);
                if due.is_some_and(|due| due <= current) {
                    return Poll::Ready(this.queue.pop_front().map(|(_, item)| item));
                }
            }
            if let Poll::Ready(Some(item)) = this.upstream.as_mut().poll_item(cx) {
                let arrived = this.head.now_cached(&mut now);
                this.queue.push_back((arrived.checked_add(*this.by), item));
                continue;
            }
            // Upstream is pending or done: wait for the head.
            match this.queue.front() {
                None => {
                    this.head.clear();
                    if this.upstream.has_ended() {
                        return this.upstream.as_mut().finish();
                    }
                    return Poll::Pending;
                }
                Some(&(Some(due), _)) => {
                    this.head.set(due);
                    if this.head.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    return Poll::Ready(this.queue.pop_front().map(|(_, item)| item));
                }
                // Never due: it, and everything after it, waits forever.
                Some(&(None, _)) => return Poll::Pending,
            }
        }
    }

    /// What may still come out, given what the upstream may still yield.
    fn hint(&self, (lower, upper): (usize, Option<usize>)) -> (usize, Option<usize>) {
        let queued = self.queue.len();
        // Items due past the end of representable time never come out.
        let stuck = self.queue.back().is_some_and(|(due, _)| due.is_none());
        let lower = if stuck {
            0
        } else {
            lower.saturating_add(queued)
        };
        (lower, upper.and_then(|upper| upper.checked_add(queued)))
    }

    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("by", &self.by)
            .field("in_flight", &self.queue.len())
            .field("head", &self.head);
    }
}

upstream_operator!(
    Delay,
    S::Item,
    /// The upstream stream; the items in flight are dropped.
);
