//! [`Deadline`]: a lazily armed timer for a deadline that moves, shared by every
//! time-based stream of the crate.

use std::fmt;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{SharedRuntime, Sleep};

/// A deadline on a runtime's clock, and the timer that wakes its owner when it passes.
///
/// Moving the deadline costs nothing: it is an `Instant` in a field. A timer is created
/// only when the owner is about to wait ([`poll`](Self::poll)), for the deadline of the
/// moment; when that timer fires and the deadline has moved later meanwhile, a new one
/// is armed for the new deadline. So a debounce that sees a million items in a burst
/// sets its deadline a million times and creates at most one timer.
///
/// Owners decide what is due by comparing instants ([`is_due`](Self::is_due)); the
/// timer is only their wakeup. A fired timer is dropped, never polled again (some
/// runtimes' timers do not support it).
pub(crate) struct Deadline {
    rt: SharedRuntime,
    at: At,
    /// The timer armed, and the deadline it was armed for.
    armed: Option<(Instant, Sleep)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// No deadline.
    Unset,
    /// A deadline past the end of representable time: never due.
    Never,
    When(Instant),
}

impl Deadline {
    /// No deadline yet, on `rt`'s clock.
    pub(crate) fn new(rt: SharedRuntime) -> Self {
        Deadline {
            rt,
            at: At::Unset,
            armed: None,
        }
    }

    /// The current instant on the runtime's clock.
    pub(crate) fn now(&self) -> Instant {
        self.rt.now()
    }

    /// The runtime's current instant, read at most once per `cache` (one poll).
    pub(crate) fn now_cached(&self, cache: &mut Option<Instant>) -> Instant {
        *cache.get_or_insert_with(|| self.rt.now())
    }

    /// Whether a deadline is set (a deadline that is never due counts).
    pub(crate) fn is_set(&self) -> bool {
        self.at != At::Unset
    }

    /// The deadline, when it is set and representable.
    pub(crate) fn get(&self) -> Option<Instant> {
        match self.at {
            At::When(at) => Some(at),
            At::Unset | At::Never => None,
        }
    }

    /// Sets the deadline to `d` after `from` (never, past the end of representable
    /// time).
    pub(crate) fn set_after(&mut self, from: Instant, d: Duration) {
        self.at = match from.checked_add(d) {
            Some(at) => At::When(at),
            None => At::Never,
        };
    }

    /// Sets the deadline to `at`.
    pub(crate) fn set(&mut self, at: Instant) {
        self.at = At::When(at);
    }

    /// Sets a deadline that never comes.
    pub(crate) fn set_never(&mut self) {
        self.at = At::Never;
        self.armed = None;
    }

    /// Removes the deadline, and cancels the timer if one is armed.
    pub(crate) fn clear(&mut self) {
        self.at = At::Unset;
        self.armed = None;
    }

    /// Whether the deadline is set and at or before `now`.
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        matches!(self.at, At::When(at) if at <= now)
    }

    /// Ready once the runtime's timer reports the deadline reached; otherwise arms a
    /// timer for it (if none is armed for it or earlier) and registers `cx`'s waker.
    ///
    /// Pending without a wakeup when no deadline is set, or it is never due.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let At::When(at) = self.at else {
            self.armed = None;
            return Poll::Pending;
        };
        loop {
            match self.armed.as_mut() {
                // Armed for the deadline, or for an earlier one it has moved from.
                Some((armed_for, sleep)) if *armed_for <= at => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let fired_for = *armed_for;
                    self.armed = None;
                    if fired_for == at {
                        return Poll::Ready(());
                    }
                    // The deadline moved later while the timer ran: re-arm.
                }
                // Not armed, or armed for later than the deadline now is.
                _ => self.armed = Some((at, self.rt.sleep_until(at))),
            }
        }
    }
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = match self.at {
            At::Unset => None,
            At::Never => Some("never".to_string()),
            At::When(at) => Some(format!(
                "{:?} from now",
                at.saturating_duration_since(self.now())
            )),
        };
        f.debug_struct("Deadline")
            .field("at", &at)
            .field("armed", &self.armed.is_some())
            .finish()
    }
}

/// Ready, with the present, once `deadline` is due; otherwise registers `cx` to be
/// woken when it is (pending without a wakeup when no deadline is set, or it is never
/// due). `now` caches the clock for one poll.
///
/// Due means the clock has reached the deadline, or the deadline's timer fired for
/// it.
pub(crate) fn poll_due(
    deadline: &mut Deadline,
    cx: &mut Context<'_>,
    now: &mut Option<Instant>,
) -> Poll<Instant> {
    let current = deadline.now_cached(now);
    if !deadline.is_due(current) && deadline.poll(cx).is_pending() {
        return Poll::Pending;
    }
    Poll::Ready(current)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::runtime::VirtualRuntime;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Polls `deadline` once with a no-op waker.
    fn poll_once(deadline: &mut Deadline) -> Poll<()> {
        let waker = futures_util::task::noop_waker();
        deadline.poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn moving_the_deadline_arms_no_timer_until_polled() {
        let clock = VirtualRuntime::new();
        let mut deadline = Deadline::new(Arc::new(clock.clone()));
        assert!(!deadline.is_set());
        let start = deadline.now();
        for i in 0..1000 {
            deadline.set_after(start, ms(10 + i));
        }
        assert_eq!(clock.pending_timers(), 0);
        assert!(poll_once(&mut deadline).is_pending());
        assert_eq!(clock.pending_timers(), 1);
        assert!(deadline.is_due(start + ms(1009)));
        assert!(!deadline.is_due(start + ms(1008)));
    }

    #[test]
    fn a_timer_that_fires_before_a_moved_deadline_is_re_armed() {
        let clock = VirtualRuntime::new();
        let mut deadline = Deadline::new(Arc::new(clock.clone()));
        let start = deadline.now();
        deadline.set_after(start, ms(10));
        assert!(poll_once(&mut deadline).is_pending());
        deadline.set_after(start, ms(25));
        clock.advance(ms(10));
        // The timer for 10 ms fired; the deadline is 25 ms: a new timer.
        assert!(poll_once(&mut deadline).is_pending());
        assert_eq!(clock.pending_timers(), 1);
        clock.advance(ms(15));
        assert!(poll_once(&mut deadline).is_ready());
        assert_eq!(clock.pending_timers(), 0);
    }

    #[test]
    fn a_deadline_moved_earlier_gets_an_earlier_timer() {
        let clock = VirtualRuntime::new();
        let mut deadline = Deadline::new(Arc::new(clock.clone()));
        let start = deadline.now();
        deadline.set_after(start, ms(50));
        assert!(poll_once(&mut deadline).is_pending());
        deadline.set(start + ms(5));
        assert!(poll_once(&mut deadline).is_pending());
        // The later timer was cancelled.
        assert_eq!(clock.pending_timers(), 1);
        clock.advance(ms(5));
        assert!(poll_once(&mut deadline).is_ready());
    }

    #[test]
    fn cleared_and_unreachable_deadlines_never_fire() {
        let clock = VirtualRuntime::new();
        let mut deadline = Deadline::new(Arc::new(clock.clone()));
        let start = deadline.now();
        deadline.set_after(start, ms(5));
        assert!(poll_once(&mut deadline).is_pending());
        deadline.clear();
        assert_eq!(clock.pending_timers(), 0);
        assert!(poll_once(&mut deadline).is_pending());

        deadline.set_after(start, Duration::MAX);
        assert!(deadline.is_set());
        assert_eq!(deadline.get(), None);
        assert!(poll_once(&mut deadline).is_pending());
        assert_eq!(clock.pending_timers(), 0);
        assert!(!deadline.is_due(start + ms(1_000_000)));
        assert!(format!("{deadline:?}").contains("never"));
    }
}
