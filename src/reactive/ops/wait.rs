//! `poll_due`: the wait for a deadline that every time operator does.

use std::task::{Context, Poll};
use std::time::Instant;

use crate::runtime::Deadline;

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
