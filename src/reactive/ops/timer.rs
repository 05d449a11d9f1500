//! [`timer`]: one item after a delay.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream, ready};

use crate::runtime::poll_due;
use crate::runtime::{Deadline, SharedRuntime};

/// A stream that yields `()` once, `delay` after its first poll on `rt`'s clock, and
/// then ends.
///
/// The delay counts from the first poll, not from the call, so a timer built ahead
/// of time starts when it is first used. The future counterpart is
/// [`RuntimeExt::sleep`](crate::runtime::RuntimeExt::sleep); the stream form chains
/// and merges with other streams. A delay past the end of representable time never
/// comes: the stream stays pending.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use futures::StreamExt;
/// use riverbed::reactive::timer;
/// use riverbed::runtime::{Runtime, SharedRuntime, VirtualRuntime};
///
/// let clock = VirtualRuntime::new();
/// let rt: SharedRuntime = Arc::new(clock.clone());
/// let start = rt.now();
/// let fired: Vec<()> = clock.block_on(timer(Duration::from_secs(5), &rt).collect());
/// assert_eq!(fired, [()]);
/// assert_eq!(rt.now() - start, Duration::from_secs(5));
/// ```
pub fn timer(delay: Duration, rt: &SharedRuntime) -> Timer {
    Timer {
        delay,
        due: Deadline::new(rt.clone()),
        done: false,
    }
}

/// The stream of [`timer`].
#[must_use = "streams do nothing unless polled"]
#[derive(Debug)]
pub struct Timer {
    delay: Duration,
    /// Set at the first poll.
    due: Deadline,
    done: bool,
}

impl Stream for Timer {
    type Item = ();

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let mut now = None;
        if !this.due.is_set() {
            let start = this.due.now_cached(&mut now);
            this.due.set_after(start, this.delay);
        }
        ready!(poll_due(&mut this.due, cx, &mut now));
        this.done = true;
        this.due.clear();
        Poll::Ready(Some(()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::from(!self.done);
        (left, Some(left))
    }
}

impl FusedStream for Timer {
    fn is_terminated(&self) -> bool {
        self.done
    }
}
