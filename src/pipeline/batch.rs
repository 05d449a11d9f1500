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
use crate::chunk::Chunker;
use crate::runtime::SharedRuntime;

pin_project! {
    /// Groups the items of a pipeline into `Vec`s; from
    /// [`FlowStreamExt::batch`](super::FlowStreamExt::batch) and
    /// [`batch_timeout`](super::FlowStreamExt::batch_timeout).
    ///
    /// A batch is emitted when it holds `size` items, when `max_wait` has passed since
    /// its first item arrived (on the runtime's clock; exact under the virtual clock;
    /// an item that arrives at that instant or later goes to the next batch), or when
    /// the upstream ends. It carries the context of its first item. An error from
    /// upstream comes out after the batch in progress, then the stream ends. The
    /// grouping is that of the reactive
    /// [`chunks_timeout`](crate::reactive::ReactiveExt::chunks_timeout).
    #[must_use = "streams do nothing unless polled"]
    pub struct Batch<S, T> {
        #[pin]
        upstream: S,
        chunker: Chunker<T>,
        ctx: Option<FlowContext>,
        error: Option<StageError>,
        upstream_done: bool,
        done: bool,
    }
}

impl<S, T> Batch<S, T> {
    pub(crate) fn new(upstream: S, size: usize, timer: Option<(Duration, SharedRuntime)>) -> Self {
        Batch {
            upstream,
            chunker: Chunker::new(size, timer),
            ctx: None,
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
        let mut now = None;
        let flush = |batch: Vec<T>, ctx: Option<FlowContext>| {
            Poll::Ready(Some(Ok((batch, ctx.unwrap_or_default()))))
        };
        loop {
            if *this.done {
                return Poll::Ready(None);
            }
            if let Some(full) = this.chunker.take_full() {
                return flush(full, this.ctx.take());
            }
            if *this.upstream_done || this.error.is_some() {
                if let Some(rest) = this.chunker.take_rest() {
                    return flush(rest, this.ctx.take());
                }
                *this.done = true;
                return Poll::Ready(this.error.take().map(Err));
            }
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok((item, ctx)))) => {
                    let starts_batch = this.chunker.is_empty();
                    let expired = this.chunker.push(item, &mut now);
                    if starts_batch || expired.is_some() {
                        // This item's context goes with the batch it starts.
                        let previous = this.ctx.replace(ctx);
                        if let Some(batch) = expired {
                            return flush(batch, previous);
                        }
                    }
                }
                Poll::Ready(Some(Err(error))) => *this.error = Some(error),
                Poll::Ready(None) => *this.upstream_done = true,
                Poll::Pending => {
                    return match this.chunker.poll_expired(cx, &mut now) {
                        Poll::Ready(batch) => flush(batch, this.ctx.take()),
                        Poll::Pending => Poll::Pending,
                    };
                }
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
            .field("size", &self.chunker.max_len())
            .field("max_wait", &self.chunker.max_wait())
            .field("buffered", &self.chunker.len())
            .finish_non_exhaustive()
    }
}
