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

impl<S: Stream> Sample<S> {
    fn step(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
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

    /// What may still come out, given what the upstream may still yield.
    fn hint(&self, (_lower, upper): (usize, Option<usize>)) -> (usize, Option<usize>) {
        (0, upper)
    }

    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("period", &self.period)
            .field("holding", &self.held.is_some())
            .field("tick", &self.tick);
    }
}

upstream_operator!(
    Sample,
    S::Item,
    /// The upstream stream; the held item, if any, is dropped.
);
