//! [`Sample`]: the newest item, at each tick of a fixed period.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::{Stream, ready};
use pin_project_lite::pin_project;

use super::interval::schedule;
use super::upstream::{Upstream, upstream_operator};
use crate::runtime::poll_due;
use crate::runtime::{Deadline, SharedRuntime};

pin_project! {
    /// Emits the newest item at each tick of a fixed period, when one arrived since
    /// the tick before; from [`ReactiveExt::sample`](super::ReactiveExt::sample), where
    /// the exact semantics are.
    #[must_use = "streams do nothing unless polled"]
    pub struct Sample<S: Stream> {
        #[pin]
        upstream: Upstream<S>,
        period: Duration,
        // The newest item since the last tick.
        held: Option<S::Item>,
        // The first poll.
        start: Option<Instant>,
        // The next tick.
        tick: Deadline,
    }
}

impl<S: Stream> Sample<S> {
    pub(crate) fn new(upstream: S, period: Duration, rt: SharedRuntime) -> Self {
        Sample {
            upstream: Upstream::new(upstream),
            period: period.max(Duration::from_nanos(1)),
            held: None,
            start: None,
            tick: Deadline::new(rt),
        }
    }
}

impl<S: Stream> Stream for Sample<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        if this.upstream.is_finished() {
            return Poll::Ready(None);
        }
        let mut now = None;
        let start = match *this.start {
            Some(start) => start,
            None => {
                let start = this.tick.now_cached(&mut now);
                *this.start = Some(start);
                schedule(this.tick, start, *this.period, start);
                start
            }
        };
        loop {
            match this.upstream.as_mut().poll_item(cx) {
                Poll::Ready(Some(item)) => {
                    let arrived = this.tick.now_cached(&mut now);
                    if this.tick.is_due(arrived) {
                        // A tick passed before this item: it takes what was held.
                        schedule(this.tick, start, *this.period, arrived);
                        if let Some(sampled) = this.held.replace(item) {
                            return Poll::Ready(Some(sampled));
                        }
                    } else {
                        *this.held = Some(item);
                    }
                }
                Poll::Ready(None) => {
                    // As RxJS's: an item not sampled yet is dropped.
                    *this.held = None;
                    this.tick.clear();
                    return this.upstream.as_mut().finish();
                }
                Poll::Pending => {
                    // Ticks with nothing held emit nothing; only a held item needs one.
                    if this.held.is_none() {
                        return Poll::Pending;
                    }
                    let current = ready!(poll_due(this.tick, cx, &mut now));
                    let ticked = this.tick.get().map_or(current, |tick| tick.max(current));
                    schedule(this.tick, start, *this.period, ticked);
                    return Poll::Ready(this.held.take());
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.upstream.size_hint_with(|(_, upper)| (0, upper))
    }
}

impl<S: Stream> fmt::Debug for Sample<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sample")
            .field("period", &self.period)
            .field("holding", &self.held.is_some())
            .field("tick", &self.tick)
            .field("done", &self.upstream.is_finished())
            .finish_non_exhaustive()
    }
}

upstream_operator!(
    Sample,
    /// The upstream stream; the held item, if any, is dropped.
);
