//! [`Throttle`]: at most one item per window, the first or the last of it.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::{Stream, ready};
use pin_project_lite::pin_project;

use super::upstream::{Upstream, upstream_operator};
use crate::runtime::poll_due;
use crate::runtime::{Deadline, SharedRuntime};

/// Which items of a throttle window go out; for
/// [`ReactiveExt::throttle_with`](super::ReactiveExt::throttle_with).
///
/// The default is [`LEADING`](Self::LEADING), as RxJS's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThrottleConfig {
    /// The item that opens a window goes out at once.
    pub leading: bool,
    /// When a window closes, the newest item that arrived during it (after the one
    /// that opened it) goes out, and a new window opens at that instant.
    pub trailing: bool,
}

impl ThrottleConfig {
    /// The first item of each window, at once.
    pub const LEADING: ThrottleConfig = ThrottleConfig {
        leading: true,
        trailing: false,
    };

    /// The last item of each window, when it closes.
    pub const TRAILING: ThrottleConfig = ThrottleConfig {
        leading: false,
        trailing: true,
    };

    /// The first item of each window at once, and the last one when it closes.
    pub const LEADING_AND_TRAILING: ThrottleConfig = ThrottleConfig {
        leading: true,
        trailing: true,
    };
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self::LEADING
    }
}

pin_project! {
    /// Lets at most one item through per window; from
    /// [`ReactiveExt::throttle`](super::ReactiveExt::throttle) and
    /// [`throttle_with`](super::ReactiveExt::throttle_with), where the exact semantics
    /// are.
    #[must_use = "streams do nothing unless polled"]
    pub struct Throttle<S: Stream> {
        #[pin]
        upstream: Upstream<S>,
        window: Duration,
        config: ThrottleConfig,
        // The newest item of the open window, for a trailing emission.
        held: Option<S::Item>,
        // An item that arrived after a window closed, put back while the trailing item
        // of that window went out.
        lookahead: Option<(S::Item, Instant)>,
        // The end of the open window; set exactly while a window is open.
        end: Deadline,
    }
}

impl<S: Stream> Throttle<S> {
    pub(crate) fn new(
        upstream: S,
        window: Duration,
        config: ThrottleConfig,
        rt: SharedRuntime,
    ) -> Self {
        Throttle {
            upstream: Upstream::new(upstream),
            window,
            config,
            held: None,
            lookahead: None,
            end: Deadline::new(rt),
        }
    }
}

impl<S: Stream> Throttle<S> {
    fn step(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        let mut now = None;
        loop {
            // The next arrival: one put back by the previous poll, or one from upstream.
            let (item, arrived) = if let Some(next) = this.lookahead.take() {
                next
            } else if this.upstream.has_ended() {
                // A trailing item waits for its window to close; then the stream ends.
                if this.held.is_none() {
                    return this.upstream.as_mut().finish();
                }
                ready!(poll_due(this.end, cx, &mut now));
                this.end.clear();
                return Poll::Ready(this.held.take());
            } else {
                match this.upstream.as_mut().poll_item(cx) {
                    Poll::Ready(Some(item)) => (item, this.end.now_cached(&mut now)),
                    Poll::Ready(None) => continue,
                    Poll::Pending => {
                        // Only a trailing item needs the window's end to wake us; an
                        // idle window closes when the next item finds it over.
                        if this.held.is_none() {
                            return Poll::Pending;
                        }
                        ready!(poll_due(this.end, cx, &mut now));
                        // The trailing item goes out and a new window opens with it.
                        if let Some(closed) = this.end.get() {
                            this.end.set_after(closed, *this.window);
                        }
                        return Poll::Ready(this.held.take());
                    }
                }
            };
            // A window that closed at or before this arrival closes first.
            if this.end.is_due(arrived) {
                let closed = this.end.get();
                match (this.held.take(), closed) {
                    (Some(trailing), Some(closed)) => {
                        this.end.set_after(closed, *this.window);
                        *this.lookahead = Some((item, arrived));
                        return Poll::Ready(Some(trailing));
                    }
                    _ => this.end.clear(),
                }
            }
            if this.end.is_set() {
                // Inside a window: only the newest item is kept, for a trailing emission.
                if this.config.trailing {
                    *this.held = Some(item);
                }
                continue;
            }
            // The item opens a window.
            this.end.set_after(arrived, *this.window);
            if this.config.leading {
                return Poll::Ready(Some(item));
            }
            if this.config.trailing {
                *this.held = Some(item);
            }
        }
    }

    /// What may still come out, given what the upstream may still yield.
    fn hint(&self, (_lower, upper): (usize, Option<usize>)) -> (usize, Option<usize>) {
        let kept = usize::from(self.held.is_some()) + usize::from(self.lookahead.is_some());
        (0, upper.and_then(|upper| upper.checked_add(kept)))
    }

    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("window", &self.window)
            .field("config", &self.config)
            .field("holding", &self.held.is_some())
            .field("end", &self.end);
    }
}

upstream_operator!(
    Throttle,
    S::Item,
    /// The upstream stream; items held for a trailing emission are dropped.
);
