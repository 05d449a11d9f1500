//! [`Audit`]: the newest item of each window, when the window closes.

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
    /// Emits the newest item of each window when the window closes; from
    /// [`ReactiveExt::audit`](super::ReactiveExt::audit), where the exact semantics
    /// are.
    #[must_use = "streams do nothing unless polled"]
    pub struct Audit<S: Stream> {
        #[pin]
        upstream: Upstream<S>,
        window: Duration,
        // The newest item of the open window.
        held: Option<S::Item>,
        // The end of the open window; a window is open exactly while an item is held.
        end: Deadline,
    }
}

impl<S: Stream> Audit<S> {
    pub(crate) fn new(upstream: S, window: Duration, rt: SharedRuntime) -> Self {
        Audit {
            upstream: Upstream::new(upstream),
            window,
            held: None,
            end: Deadline::new(rt),
        }
    }
}

impl<S: Stream> Audit<S> {
    fn step(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        let mut now = None;
        loop {
            if let Poll::Ready(Some(item)) = this.upstream.as_mut().poll_item(cx) {
                let arrived = this.end.now_cached(&mut now);
                if this.end.is_due(arrived) {
                    // The window closed before this item: its item goes out, and this
                    // one opens the next window.
                    this.end.set_after(arrived, *this.window);
                    return Poll::Ready(this.held.replace(item));
                }
                if this.held.is_none() {
                    this.end.set_after(arrived, *this.window);
                }
                *this.held = Some(item);
                continue;
            }
            // Upstream is pending or done: wait for the open window to close, if any.
            if this.held.is_none() {
                if this.upstream.has_ended() {
                    return this.upstream.as_mut().finish();
                }
                return Poll::Pending;
            }
            ready!(poll_due(this.end, cx, &mut now));
            this.end.clear();
            return Poll::Ready(this.held.take());
        }
    }

    /// What may still come out, given what the upstream may still yield.
    fn hint(&self, (_lower, upper): (usize, Option<usize>)) -> (usize, Option<usize>) {
        let held = usize::from(self.held.is_some());
        (0, upper.and_then(|upper| upper.checked_add(held)))
    }

    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("window", &self.window)
            .field("holding", &self.held.is_some())
            .field("end", &self.end);
    }
}

upstream_operator!(
    Audit,
    S::Item,
    /// The upstream stream; the held item, if any, is dropped.
);
