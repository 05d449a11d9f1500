//! [`ChunksTimeout`]: items grouped into `Vec`s by count and by time, by the
//! crate's one chunker (shared with the pipeline's batches).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use pin_project_lite::pin_project;

use super::upstream::{Upstream, upstream_operator};
use crate::chunk::Chunker;
use crate::runtime::SharedRuntime;

pin_project! {
    /// Groups items into `Vec`s by count and by time; from
    /// [`ReactiveExt::chunks_timeout`](super::ReactiveExt::chunks_timeout), where the
    /// exact semantics are.
    #[must_use = "streams do nothing unless polled"]
    pub struct ChunksTimeout<S: Stream> {
        #[pin]
        upstream: Upstream<S>,
        chunker: Chunker<S::Item>,
    }
}

impl<S: Stream> ChunksTimeout<S> {
    pub(crate) fn new(upstream: S, max_len: usize, max_wait: Duration, rt: SharedRuntime) -> Self {
        ChunksTimeout {
            upstream: Upstream::new(upstream),
            chunker: Chunker::new(max_len, Some((max_wait, rt))),
        }
    }
}

impl<S: Stream> ChunksTimeout<S> {
    fn step(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<S::Item>>> {
        let mut this = self.project();
        let mut now = None;
        loop {
            if let Some(full) = this.chunker.take_full() {
                return Poll::Ready(Some(full));
            }
            if this.upstream.has_ended() {
                return match this.chunker.take_rest() {
                    Some(rest) => Poll::Ready(Some(rest)),
                    None => this.upstream.as_mut().finish(),
                };
            }
            match this.upstream.as_mut().poll_item(cx) {
                Poll::Ready(Some(item)) => {
                    if let Some(expired) = this.chunker.push(item, &mut now) {
                        return Poll::Ready(Some(expired));
                    }
                }
                Poll::Ready(None) => {}
                Poll::Pending => return this.chunker.poll_expired(cx, &mut now).map(Some),
            }
        }
    }

    /// What may still come out, given what the upstream may still yield.
    fn hint(&self, (lower, upper): (usize, Option<usize>)) -> (usize, Option<usize>) {
        let buffered = self.chunker.len();
        // At least one chunk when any item is to come; at most one per item.
        let lower = usize::from(lower > 0 || buffered > 0);
        (lower, upper.and_then(|upper| upper.checked_add(buffered)))
    }

    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("chunker", &self.chunker);
    }
}

upstream_operator!(
    ChunksTimeout,
    Vec<S::Item>,
    /// The upstream stream; the chunk in progress, if any, is dropped.
);
