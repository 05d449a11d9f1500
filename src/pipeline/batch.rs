//! [`Batch`]: groups items by count, and by time when given a runtime.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::StageError;
use super::stage::Flowing;
use crate::FlowContext;
use crate::runtime::{SharedRuntime, Sleep};

pin_project! {
    /// Groups the items of a pipeline into `Vec`s; from
    /// [`FlowStreamExt::batch`](super::FlowStreamExt::batch) and
    /// [`batch_timeout`](super::FlowStreamExt::batch_timeout).
    ///
    /// A batch is emitted when it holds `size` items, when `max_wait` has passed since
    /// its first item arrived (on the runtime's clock; exact under the virtual clock;
    /// items that come after that go to the next batch), or when the upstream ends. It carries the context of its first item. An error
    /// from upstream comes out after the batch in progress, then the stream ends.
    #[must_use = "streams do nothing unless polled"]
    pub struct Batch<S, T> {
        #[pin]
        upstream: S,
        size: usize,
        timer: Option<(Duration, SharedRuntime)>,
        items: Vec<T>,
        ctx: Option<FlowContext>,
        deadline: Option<Sleep>,
        error: Option<StageError>,
        upstream_done: bool,
        done: bool,
    }
}

impl<S, T> Batch<S, T> {
    pub(crate) fn new(upstream: S, size: usize, timer: Option<(Duration, SharedRuntime)>) -> Self {
        let size = size.max(1);
        Batch {
            upstream,
            size,
            timer,
            items: Vec::with_capacity(size),
            ctx: None,
            deadline: None,
            error: None,
            upstream_done: false,
            done: false,
        }
    }
}

impl<S, T> Stream for Batch<S, T>
where
    S: Stream<Item = Flowing<T>>,
{
    type Item = Flowing<Vec<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(None);
            }
            let flush = |items: &mut Vec<T>, ctx: &mut Option<FlowContext>, size: usize| {
                let batch = std::mem::replace(items, Vec::with_capacity(size));
                let ctx = ctx.take().unwrap_or_default();
                Poll::Ready(Some(Ok((batch, ctx))))
            };
            if *this.upstream_done || this.error.is_some() {
                *this.deadline = None;
                if !this.items.is_empty() {
                    return flush(this.items, this.ctx, *this.size);
                }
                *this.done = true;
                return Poll::Ready(this.error.take().map(Err));
            }
            // A batch whose time is up goes out before anything newer joins it.
            if let Some(deadline) = this.deadline.as_mut() {
                if deadline.as_mut().poll(cx).is_ready() {
                    *this.deadline = None;
                    return flush(this.items, this.ctx, *this.size);
                }
            }
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok((item, ctx)))) => {
                    if this.items.is_empty() {
                        *this.ctx = Some(ctx);
                        if let Some((max_wait, runtime)) = this.timer {
                            *this.deadline = Some(
                                runtime.sleep_until(
                                    runtime
                                        .now()
                                        .checked_add(*max_wait)
                                        .unwrap_or_else(|| runtime.now()),
                                ),
                            );
                        }
                    }
                    this.items.push(item);
                    if this.items.len() >= *this.size {
                        *this.deadline = None;
                        return flush(this.items, this.ctx, *this.size);
                    }
                }
                Poll::Ready(Some(Err(error))) => *this.error = Some(error),
                Poll::Ready(None) => *this.upstream_done = true,
                // The deadline, if any, was polled above and will wake us.
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S, T> FusedStream for Batch<S, T>
where
    S: Stream<Item = Flowing<T>>,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S, T> fmt::Debug for Batch<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("size", &self.size)
            .field("max_wait", &self.timer.as_ref().map(|(d, _)| d))
            .field("buffered", &self.items.len())
            .finish_non_exhaustive()
    }
}
