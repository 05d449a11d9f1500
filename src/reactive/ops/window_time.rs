//! [`WindowTime`]: consecutive windows of fixed length, each a stream of the items
//! that arrive during it.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_core::{FusedStream, Stream};

use super::interval::tick_after;
use crate::runtime::{Deadline, SharedRuntime};

/// What the outer stream and its windows share: upstream itself, pulled by the open
/// window only.
struct Shared<S> {
    upstream: Pin<Box<S>>,
    /// The number of the open window; older windows have ended.
    open: u64,
    upstream_done: bool,
    /// The outer stream's waker, woken when a window sees upstream end.
    outer: Option<Waker>,
}

/// Locks `shared`, ignoring poisoning: a panic in upstream's `poll_next` leaves
/// nothing half-done here.
fn lock<S>(shared: &Mutex<Shared<S>>) -> MutexGuard<'_, Shared<S>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Splits a stream into consecutive windows of fixed length; from
/// [`ReactiveExt::window_time`](super::ReactiveExt::window_time), where the exact
/// semantics are.
#[must_use = "streams do nothing unless polled"]
pub struct WindowTime<S> {
    shared: Arc<Mutex<Shared<S>>>,
    span: Duration,
    rt: SharedRuntime,
    /// The first poll: the start of the first window.
    start: Option<Instant>,
    /// The end of the open window.
    boundary: Deadline,
    done: bool,
}

impl<S> WindowTime<S> {
    pub(crate) fn new(upstream: S, span: Duration, rt: SharedRuntime) -> Self {
        WindowTime {
            shared: Arc::new(Mutex::new(Shared {
                upstream: Box::pin(upstream),
                open: 0,
                upstream_done: false,
                outer: None,
            })),
            span: span.max(Duration::from_nanos(1)),
            boundary: Deadline::new(rt.clone()),
            rt,
            start: None,
            done: false,
        }
    }

    /// The length of each window.
    pub fn span(&self) -> Duration {
        self.span
    }
}

impl<S: Stream> Stream for WindowTime<S> {
    type Item = Window<S>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Window<S>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let mut now = None;
        let start = match this.start {
            Some(start) => start,
            None => {
                let start = this.boundary.now_cached(&mut now);
                this.start = Some(start);
                // The first window opens at the first poll, without waiting.
                return Poll::Ready(Some(this.open_window(start, start)));
            }
        };
        {
            let mut shared = lock(&this.shared);
            if shared.upstream_done {
                this.done = true;
                return Poll::Ready(None);
            }
            let current = this.boundary.now_cached(&mut now);
            if !this.boundary.is_due(current) {
                // Wait for the open window to close, unless upstream ends first.
                if !shared
                    .outer
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    shared.outer = Some(cx.waker().clone());
                }
                drop(shared);
                if this.boundary.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if lock(&this.shared).upstream_done {
                    this.done = true;
                    return Poll::Ready(None);
                }
            }
        }
        // The next window is the one that holds the present; windows wholly in the past
        // (when this poll comes late) are skipped.
        let current = this.boundary.now_cached(&mut now);
        let closed = this
            .boundary
            .get()
            .map_or(current, |closed| closed.max(current));
        Poll::Ready(Some(this.open_window(start, closed)))
    }
}

impl<S> WindowTime<S> {
    /// Opens the window of the schedule that holds `at` (at its start, for a boundary)
    /// and makes it the one upstream's items go to.
    fn open_window(&mut self, start: Instant, at: Instant) -> Window<S> {
        let mut end = Deadline::new(self.rt.clone());
        let close = tick_after(start, self.span, at);
        match close {
            Some(close) => {
                end.set(close);
                self.boundary.set(close);
            }
            None => {
                end.set_never();
                self.boundary.set_never();
            }
        }
        let mut shared = lock(&self.shared);
        // Its place in the schedule: window `k` closes at `start + k × span`.
        let number = close.map_or(shared.open.saturating_add(1), |close| {
            let k = close.saturating_duration_since(start).as_nanos() / self.span.as_nanos();
            u64::try_from(k).unwrap_or(u64::MAX)
        });
        shared.open = number;
        Window {
            shared: self.shared.clone(),
            id: number,
            end,
            done: false,
        }
    }
}

impl<S: Stream> FusedStream for WindowTime<S> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S> fmt::Debug for WindowTime<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never blocks: a window may be pulling from upstream on another thread.
        let windows = self.shared.try_lock().ok().map(|shared| shared.open);
        f.debug_struct("WindowTime")
            .field("span", &self.span)
            .field("windows", &windows)
            .field("boundary", &self.boundary)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// One window of a [`WindowTime`]: a stream of the items that arrive while it is
/// open. It ends when its time is up, or when upstream ends.
#[must_use = "streams do nothing unless polled"]
pub struct Window<S> {
    shared: Arc<Mutex<Shared<S>>>,
    /// This window's number, from 1.
    id: u64,
    end: Deadline,
    done: bool,
}

impl<S> Window<S> {
    /// This window's place in the schedule: 1 for the first window, `k` for the one
    /// that closes `k` spans after the start. Skipped windows leave gaps.
    pub fn number(&self) -> u64 {
        self.id
    }
}

impl<S: Stream> Stream for Window<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let mut shared = lock(&this.shared);
        // An item that arrives exactly when the window closes belongs to the next one.
        if shared.open != this.id || shared.upstream_done || this.end.is_due(this.end.now()) {
            this.done = true;
            return Poll::Ready(None);
        }
        match shared.upstream.as_mut().poll_next(cx) {
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Ready(None) => {
                shared.upstream_done = true;
                if let Some(outer) = shared.outer.take() {
                    outer.wake();
                }
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                drop(shared);
                if this.end.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.done = true;
                Poll::Ready(None)
            }
        }
    }
}

impl<S: Stream> FusedStream for Window<S> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S> fmt::Debug for Window<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window")
            .field("number", &self.id)
            .field("end", &self.end)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
