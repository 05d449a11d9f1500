//! [`system_time`]: the system's wall clock, read for a fraction of the price of
//! `SystemTime::now()`.
//!
//! Reading the system clock costs 25–35 ns on a virtual machine (a vDSO call that
//! reads the time-stamp counter under a sequence lock and converts it), and the
//! queue reads it once per message sent. Here each thread anchors the time-stamp
//! counter (read through [`quanta`], which falls back to the operating system's
//! monotonic clock where the counter is not reliable) to `SystemTime::now()` and
//! derives the wall clock from the counter, re-anchoring every [`RESYNC`]. A reading
//! is within a few hundred nanoseconds of the system clock on the machines measured,
//! and follows a step of the system clock within [`RESYNC`]. Like `SystemTime` itself
//! it is not monotonic, and two threads may disagree by that much.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// How long a thread's anchor serves before the system clock is read again.
pub(crate) const RESYNC: Duration = Duration::from_millis(100);

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

thread_local! {
    /// This thread's counter reading and the system time it was taken with.
    static ANCHOR: Cell<Option<(u64, SystemTime)>> = const { Cell::new(None) };
}

/// The current wall-clock time; see the [module docs](self).
pub(crate) fn system_time() -> SystemTime {
    let clock = CLOCK.get_or_init(quanta::Clock::new);
    let raw = clock.raw();
    let anchored = ANCHOR.with(|anchor| {
        let (at, wall) = anchor.get()?;
        let since = Duration::from_nanos(clock.delta_as_nanos(at, raw));
        (raw >= at && since < RESYNC).then(|| wall + since)
    });
    anchored.unwrap_or_else(|| {
        let wall = SystemTime::now();
        let at = clock.raw();
        ANCHOR.with(|anchor| anchor.set(Some((at, wall))));
        wall
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readings stay close to the system clock, bracketed by two of its readings.
    #[test]
    fn stays_within_microseconds_of_the_system_clock() {
        let started = std::time::Instant::now();
        let mut worst = Duration::ZERO;
        while started.elapsed() < RESYNC * 3 {
            let before = SystemTime::now();
            let ours = system_time();
            let after = SystemTime::now();
            let off = before
                .duration_since(ours)
                .or_else(|_| ours.duration_since(after))
                .unwrap_or(Duration::ZERO);
            worst = worst.max(off);
        }
        // Generous for a loaded machine; typical is a few hundred nanoseconds.
        assert!(worst < Duration::from_millis(2), "off by {worst:?}");
    }
}
