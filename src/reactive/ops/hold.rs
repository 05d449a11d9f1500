//! [`Held`]: the newest item, held until a time a rule sets — the one engine of
//! [`Audit`], [`Debounce`] and [`Sample`], which differ only in when the held item
//! goes out.

// The rules' trait is sealed: its methods take the crate's `Deadline`, which users can
// neither name nor reach, so exposing it through the sealed trait hides nothing.
#![allow(private_interfaces)]

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::{Stream, ready};
use pin_project_lite::pin_project;

use super::interval::schedule;
use super::upstream::{Upstream, upstream_operator};
use crate::runtime::poll_due;
use crate::runtime::{Deadline, SharedRuntime};

pin_project! {
    /// Holds the newest item and emits it when the time its rule `R` sets comes: the
    /// stream type of [`Audit`], [`Debounce`] and [`Sample`], where the semantics
    /// are.
    #[must_use = "streams do nothing unless polled"]
    pub struct Held<S: Stream, R> {
        #[pin]
        upstream: Upstream<S>,
        rule: R,
        // The newest item not emitted yet.
        held: Option<S::Item>,
        // When the held item goes out, as the rule set it.
        due: Deadline,
    }
}

/// When a [`Held`] stream's item goes out. The rules are opaque: each is named only
/// as the second parameter of the stream type it makes.
pub trait HoldRule: Send + Sync + Unpin + fmt::Debug + sealed::Sealed {}

mod sealed {
    use super::*;

    /// What a held item does when upstream ends.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum AtEnd {
        /// Goes out at once.
        Now,
        /// Goes out when it is due.
        WhenDue,
        /// Is dropped.
        Drop,
    }

    pub trait Sealed {
        /// What a held item does when upstream ends.
        const AT_END: AtEnd;

        /// Called at the start of every poll, before anything else (`now` caches the
        /// clock for the poll).
        fn begin(&mut self, _due: &mut Deadline, _now: &mut Option<Instant>) {}

        /// An item arrived at `arrived`, `holding` an older one: sets `due` for the
        /// item now held, and says whether the older item goes out now (rather than
        /// being replaced).
        fn arrive(&mut self, due: &mut Deadline, arrived: Instant, holding: bool) -> bool;

        /// The held item went out because `due` came (seen at `current`): sets or
        /// clears `due` for what comes next (by default, clears it: nothing is held).
        fn fire(&mut self, due: &mut Deadline, _current: Instant) {
            due.clear();
        }

        /// What may still come out, given what upstream may still yield and how many
        /// items are held.
        fn hint(&self, upstream: (usize, Option<usize>), held: usize) -> (usize, Option<usize>);
    }
}

use self::sealed::AtEnd;

impl<S: Stream, R: HoldRule> Held<S, R> {
    fn with_rule(upstream: S, rule: R, rt: SharedRuntime) -> Self {
        Held {
            upstream: Upstream::new(upstream),
            rule,
            held: None,
            due: Deadline::new(rt),
        }
    }

    fn step(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        let mut now = None;
        this.rule.begin(this.due, &mut now);
        loop {
            if let Poll::Ready(Some(item)) = this.upstream.as_mut().poll_item(cx) {
                let arrived = this.due.now_cached(&mut now);
                let holding = this.held.is_some();
                let goes_out = this.rule.arrive(this.due, arrived, holding);
                let older = this.held.replace(item);
                if goes_out && older.is_some() {
                    return Poll::Ready(older);
                }
                continue;
            }
            // Upstream is pending or done: the held item, if any, waits for its time.
            if this.held.is_some() && this.upstream.has_ended() {
                match R::AT_END {
                    AtEnd::Now => {
                        this.due.clear();
                        return Poll::Ready(this.held.take());
                    }
                    AtEnd::Drop => *this.held = None,
                    AtEnd::WhenDue => {}
                }
            }
            if this.held.is_none() {
                if this.upstream.has_ended() {
                    this.due.clear();
                    return this.upstream.as_mut().finish();
                }
                return Poll::Pending;
            }
            let current = ready!(poll_due(this.due, cx, &mut now));
            this.rule.fire(this.due, current);
            return Poll::Ready(this.held.take());
        }
    }

    /// What may still come out, given what the upstream may still yield.
    fn hint(&self, upstream: (usize, Option<usize>)) -> (usize, Option<usize>) {
        self.rule.hint(upstream, usize::from(self.held.is_some()))
    }

    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("rule", &self.rule)
            .field("holding", &self.held.is_some())
            .field("due", &self.due);
    }
}

upstream_operator!(
    Held<R: HoldRule>,
    S::Item,
    /// The upstream stream; the held item, if any, is dropped.
);

/// Emits the newest item of each window when the window closes; from
/// [`ReactiveExt::audit`](super::ReactiveExt::audit), where the exact semantics are.
pub type Audit<S> = Held<S, AuditRule>;

/// The rule of [`Audit`]: a window opens with the first item that arrives while none
/// is open, and its newest item goes out when it closes.
#[derive(Debug, Clone, Copy)]
pub struct AuditRule {
    window: Duration,
}

impl<S: Stream> Audit<S> {
    pub(crate) fn new(upstream: S, window: Duration, rt: SharedRuntime) -> Self {
        Held::with_rule(upstream, AuditRule { window }, rt)
    }
}

impl HoldRule for AuditRule {}

impl sealed::Sealed for AuditRule {
    const AT_END: AtEnd = AtEnd::WhenDue;

    // The window is open exactly while an item is held: `due` is its end.
    fn arrive(&mut self, end: &mut Deadline, arrived: Instant, holding: bool) -> bool {
        if end.is_due(arrived) {
            // The window closed before this item: its item goes out, and this one
            // opens the next window.
            end.set_after(arrived, self.window);
            return true;
        }
        if !holding {
            end.set_after(arrived, self.window);
        }
        false
    }

    fn hint(&self, (_lower, upper): (usize, Option<usize>), held: usize) -> (usize, Option<usize>) {
        (0, upper.and_then(|upper| upper.checked_add(held)))
    }
}

/// Emits an item once no newer one has arrived for a while; from
/// [`ReactiveExt::debounce`](super::ReactiveExt::debounce), where the exact semantics
/// are.
pub type Debounce<S> = Held<S, DebounceRule>;

/// The rule of [`Debounce`]: the held item goes out once the stream has been quiet
/// for a while.
#[derive(Debug, Clone, Copy)]
pub struct DebounceRule {
    quiet: Duration,
}

impl<S: Stream> Debounce<S> {
    pub(crate) fn new(upstream: S, quiet: Duration, rt: SharedRuntime) -> Self {
        Held::with_rule(upstream, DebounceRule { quiet }, rt)
    }
}

impl HoldRule for DebounceRule {}

impl sealed::Sealed for DebounceRule {
    const AT_END: AtEnd = AtEnd::Now;

    fn arrive(&mut self, due: &mut Deadline, arrived: Instant, _holding: bool) -> bool {
        // The held item's quiet period ended at or before this arrival: it goes out.
        let quiet_before = due.is_due(arrived);
        due.set_after(arrived, self.quiet);
        quiet_before
    }

    fn hint(&self, (lower, upper): (usize, Option<usize>), held: usize) -> (usize, Option<usize>) {
        // The last item always comes out; any other may be replaced.
        let lower = (lower + held).min(1);
        (lower, upper.and_then(|upper| upper.checked_add(held)))
    }
}

/// Emits the newest item at each tick of a fixed period, when one arrived since the
/// tick before; from [`ReactiveExt::sample`](super::ReactiveExt::sample), where the
/// exact semantics are.
pub type Sample<S> = Held<S, SampleRule>;

/// The rule of [`Sample`]: ticks at a fixed period from the first poll; a tick takes
/// the newest item since the one before.
#[derive(Debug, Clone, Copy)]
pub struct SampleRule {
    period: Duration,
    // The first poll.
    start: Option<Instant>,
}

impl<S: Stream> Sample<S> {
    pub(crate) fn new(upstream: S, period: Duration, rt: SharedRuntime) -> Self {
        let period = period.max(Duration::from_nanos(1));
        Held::with_rule(
            upstream,
            SampleRule {
                period,
                start: None,
            },
            rt,
        )
    }
}

impl SampleRule {
    /// The first poll; `begin` set it before anything else of the poll ran.
    fn start(&self, or: Instant) -> Instant {
        self.start.unwrap_or(or)
    }
}

impl HoldRule for SampleRule {}

impl sealed::Sealed for SampleRule {
    // As RxJS's: an item not sampled yet is dropped.
    const AT_END: AtEnd = AtEnd::Drop;

    fn begin(&mut self, tick: &mut Deadline, now: &mut Option<Instant>) {
        if self.start.is_none() {
            let start = tick.now_cached(now);
            self.start = Some(start);
            schedule(tick, start, self.period, start);
        }
    }

    fn arrive(&mut self, tick: &mut Deadline, arrived: Instant, _holding: bool) -> bool {
        if !tick.is_due(arrived) {
            return false;
        }
        // A tick passed before this item: it takes what was held.
        schedule(tick, self.start(arrived), self.period, arrived);
        true
    }

    fn fire(&mut self, tick: &mut Deadline, current: Instant) {
        // Ticks with nothing held emit nothing; the next is the first after this one.
        let ticked = tick.get().map_or(current, |tick| tick.max(current));
        schedule(tick, self.start(ticked), self.period, ticked);
    }

    fn hint(
        &self,
        (_lower, upper): (usize, Option<usize>),
        _held: usize,
    ) -> (usize, Option<usize>) {
        (0, upper)
    }
}
