//! [`interval`]: a tick count at a fixed period.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::{FusedStream, Stream, ready};

use crate::runtime::poll_due;
use crate::runtime::{Deadline, SharedRuntime};

/// The smallest period: a zero period is taken as one nanosecond.
const MIN_PERIOD: Duration = Duration::from_nanos(1);

/// The first tick of the schedule `start + k × period` (`k ≥ 1`) strictly after
/// `after`; `None` past the end of representable time.
pub(crate) fn tick_after(start: Instant, period: Duration, after: Instant) -> Option<Instant> {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let period = period.max(MIN_PERIOD).as_nanos();
    let k = after.saturating_duration_since(start).as_nanos() / period + 1;
    let offset = period.checked_mul(k)?;
    let offset = Duration::new(
        u64::try_from(offset / NANOS_PER_SEC).ok()?,
        // Below one billion: fits.
        (offset % NANOS_PER_SEC) as u32,
    );
    start.checked_add(offset)
}

/// A stream of tick counts, one every `period` on `rt`'s clock, starting `period`
/// after its first poll; it never ends.
///
/// Tick `n` (counting from 0) is due at `start + (n + 1) × period`, where `start` is
/// the first poll: the schedule is fixed, so ticks do not drift when the consumer is
/// late. Each item is the number of the latest tick due when it is yielded.
///
/// **Missed ticks are skipped, visibly.** A consumer that polls late, after several
/// ticks came due, gets one item, the number of the latest of them, and the next tick
/// stays on the schedule: the numbers jump by the count of ticks missed, so nothing is
/// lost silently and no burst of stale ticks follows a stall. (tokio's
/// `MissedTickBehavior::Skip`, with the count visible.)
///
/// A zero period is taken as one nanosecond. Timers: one per tick, created when the
/// stream waits for it.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use futures::StreamExt;
/// use riverbed::reactive::interval;
/// use riverbed::runtime::{Runtime, RuntimeExt, SharedRuntime, VirtualRuntime};
///
/// let clock = VirtualRuntime::new();
/// let rt: SharedRuntime = Arc::new(clock.clone());
/// let ms = Duration::from_millis;
/// clock.block_on(async {
///     let start = rt.now();
///     let mut ticks = interval(ms(100), &rt);
///     assert_eq!(ticks.next().await, Some(0));
///     assert_eq!(ticks.next().await, Some(1));
///     assert_eq!(rt.now() - start, ms(200));
///
///     // A consumer busy for 350 ms misses ticks 2, 3 and 4 and gets 4 at once.
///     rt.sleep(ms(350)).await;
///     assert_eq!(ticks.next().await, Some(4));
///     assert_eq!(rt.now() - start, ms(550));
///     // Tick 5 stays on the schedule, at 600 ms.
///     assert_eq!(ticks.next().await, Some(5));
///     assert_eq!(rt.now() - start, ms(600));
/// });
/// ```
pub fn interval(period: Duration, rt: &SharedRuntime) -> Interval {
    Interval {
        period: period.max(MIN_PERIOD),
        start: None,
        next: Deadline::new(rt.clone()),
    }
}

/// The stream of [`interval`].
#[must_use = "streams do nothing unless polled"]
pub struct Interval {
    period: Duration,
    /// The first poll.
    start: Option<Instant>,
    /// The next tick.
    next: Deadline,
}

impl Interval {
    /// The period between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }
}

impl Stream for Interval {
    type Item = u64;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u64>> {
        let this = &mut *self;
        let mut now = None;
        let start = match this.start {
            Some(start) => start,
            None => {
                let start = this.next.now_cached(&mut now);
                this.start = Some(start);
                schedule(&mut this.next, start, this.period, start);
                start
            }
        };
        let current = ready!(poll_due(&mut this.next, cx, &mut now));
        // Number the latest tick due; the next one stays on the schedule.
        let due = this.next.get().map_or(current, |due| due.max(current));
        let ticks_due = due.saturating_duration_since(start).as_nanos() / this.period.as_nanos();
        schedule(&mut this.next, start, this.period, due);
        Poll::Ready(Some(
            u64::try_from(ticks_due.saturating_sub(1)).unwrap_or(u64::MAX),
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

/// Sets `next` to the first tick of the schedule strictly after `after` (never, past
/// the end of representable time); shared with [`Sample`](super::Sample).
pub(crate) fn schedule(next: &mut Deadline, start: Instant, period: Duration, after: Instant) {
    match tick_after(start, period, after) {
        Some(at) => next.set(at),
        None => next.set_never(),
    }
}

impl FusedStream for Interval {
    fn is_terminated(&self) -> bool {
        false
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("period", &self.period)
            .field("started", &self.start.is_some())
            .field("next", &self.next)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_follow_the_schedule() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(tick_after(start, ms(10), start), Some(start + ms(10)));
        assert_eq!(
            tick_after(start, ms(10), start + ms(10)),
            Some(start + ms(20))
        );
        assert_eq!(
            tick_after(start, ms(10), start + ms(35)),
            Some(start + ms(40))
        );
        // Before the start counts as the start.
        assert_eq!(
            tick_after(start + ms(5), ms(10), start),
            Some(start + ms(15))
        );
        assert_eq!(tick_after(start, Duration::MAX, start + ms(1)), None);
        assert_eq!(
            tick_after(start, Duration::ZERO, start),
            Some(start + Duration::from_nanos(1))
        );
    }
}
