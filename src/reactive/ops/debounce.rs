//! [`Debounce`]: an item once the stream has been quiet for a while.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::{Stream, ready};
use pin_project_lite::pin_project;

use super::upstream::{Upstream, upstream_operator};
use crate::runtime::poll_due;
use crate::runtime::{Deadline, SharedRuntime};

pin_project! {
    /// Emits an item once no newer one has arrived for a while; from
    /// [`ReactiveExt::debounce`](super::ReactiveExt::debounce), where the exact
    /// semantics are.
    #[must_use = "streams do nothing unless polled"]
    pub struct Debounce<S: Stream> {
        #[pin]
        upstream: Upstream<S>,
        quiet: Duration,
        // The newest item, waiting for the quiet period to pass.
        held: Option<S::Item>,
        // When `held` goes out; set exactly while an item is held.
        due: Deadline,
    }
}

impl<S: Stream> Debounce<S> {
    pub(crate) fn new(upstream: S, quiet: Duration, rt: SharedRuntime) -> Self {
        Debounce {
            upstream: Upstream::new(upstream),
            quiet,
            held: None,
            due: Deadline::new(rt),
        }
    }
}

impl<S: Stream> Debounce<S> {
    fn step(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        let mut now = None;
        loop {
            if this.upstream.has_ended() {
                // The held item goes out at once; the next poll ends the stream.
                this.due.clear();
                return match this.held.take() {
                    Some(held) => Poll::Ready(Some(held)),
                    None => this.upstream.as_mut().finish(),
                };
            }
            match this.upstream.as_mut().poll_item(cx) {
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
                Poll::Ready(None) => {}
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

    /// What may still come out, given what the upstream may still yield.
    fn hint(&self, (lower, upper): (usize, Option<usize>)) -> (usize, Option<usize>) {
        let held = usize::from(self.held.is_some());
        // The last item always comes out; any other may be replaced.
        let lower = (lower + held).min(1);
        (lower, upper.and_then(|upper| upper.checked_add(held)))
    }

    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("quiet", &self.quiet)
            .field("holding", &self.held.is_some())
            .field("due", &self.due);
    }
}

upstream_operator!(
    Debounce,
    S::Item,
    /// The upstream stream; the held item, if any, is dropped.
);
