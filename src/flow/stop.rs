//! Stop with grace: [`StopHandle`] asks, [`StopSignal`] lets a handler see it, and the
//! drivers time the grace period on the flow's runtime.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use event_listener::{Event, EventListener};

use crate::runtime::{SharedRuntime, Sleep};

/// What a stop asked for: when, and how long running handlers may go on.
#[derive(Debug, Default)]
struct Asked {
    grace: Duration,
    /// When the stop was asked, on the flow's clock; set as soon as a clock is known.
    at: Option<Instant>,
    clock: Option<SharedRuntime>,
}

/// The state behind a flow's [`StopHandle`] and [`StopSignal`]s.
#[derive(Default)]
pub(crate) struct StopState {
    requested: AtomicBool,
    /// Stop only once the source has nothing ready (draining).
    drain: AtomicBool,
    asked: Mutex<Asked>,
    /// Drivers, workers and handlers waiting for a stop. A stop concerns every one of
    /// them, so it wakes them all, once.
    event: Event,
}

impl fmt::Debug for StopState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopState")
            .field("requested", &self.requested())
            .field("drain", &self.draining())
            .finish_non_exhaustive()
    }
}

impl StopState {
    /// A new state whose grace period runs on `clock`, if any.
    pub(crate) fn new(clock: Option<SharedRuntime>) -> Arc<Self> {
        let state = StopState::default();
        state.asked().clock = clock;
        Arc::new(state)
    }

    fn asked(&self) -> MutexGuard<'_, Asked> {
        self.asked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Times the grace period on `clock` unless a clock is already known.
    pub(crate) fn set_clock(&self, clock: Option<&SharedRuntime>) {
        let mut asked = self.asked();
        if let (None, Some(clock)) = (&asked.clock, clock) {
            asked.clock = Some(Arc::clone(clock));
        }
    }

    /// Whether a stop was asked for.
    pub(crate) fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Whether the stop lets the flow first take what its source has ready.
    pub(crate) fn draining(&self) -> bool {
        self.drain.load(Ordering::Acquire)
    }

    /// Whether intake must stop now: a stop was asked and it does not drain.
    pub(crate) fn halts_intake(&self) -> bool {
        self.requested() && !self.draining()
    }

    fn ask(&self, grace: Duration, drain: bool) {
        {
            let mut asked = self.asked();
            if self.requested() {
                // A second stop may shorten the grace, never lengthen it.
                asked.grace = asked.grace.min(grace);
            } else {
                asked.grace = grace;
                asked.at = asked.clock.as_ref().map(|clock| clock.now());
            }
        }
        if drain && !self.requested() {
            self.drain.store(true, Ordering::Release);
        } else if !drain {
            self.drain.store(false, Ordering::Release);
        }
        self.requested.store(true, Ordering::Release);
        self.event.notify(usize::MAX);
    }

    /// Listens for a stop: `Ready` when the caller must look at the stop again (the
    /// listener was just registered, so nothing is missed, or it fired), `Pending`
    /// when it waits.
    pub(crate) fn poll_listen(
        &self,
        listener: &mut Option<EventListener>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        match listener.as_mut() {
            None => *listener = Some(self.event.listen()),
            Some(l) => {
                std::task::ready!(Pin::new(l).poll(cx));
                *listener = None;
            }
        }
        Poll::Ready(())
    }

    /// The timer of the grace period, once a stop was asked: `None` while the grace
    /// cannot run out (a grace over zero and no clock to time it on).
    fn grace_timer(&self) -> Option<Sleep> {
        let mut asked = self.asked();
        let grace = asked.grace;
        let clock = asked.clock.clone()?;
        let at = *asked.at.get_or_insert_with(|| clock.now());
        // A grace too long for the clock never runs out.
        Some(clock.sleep_until(at.checked_add(grace)?))
    }

    fn grace_is_zero(&self) -> bool {
        self.asked().grace.is_zero()
    }

    /// Polls the end of the grace period: `Ready` once a stop was asked and its grace
    /// has run out. `grace` and `listener` are the caller's, kept between polls.
    pub(crate) fn poll_grace_over(&self, grace: &mut Grace, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.requested() {
                if self.grace_is_zero() {
                    return Poll::Ready(());
                }
                if grace.timer.is_none() {
                    grace.timer = self.grace_timer();
                }
                return match grace.timer.as_mut() {
                    Some(timer) => timer.as_mut().poll(cx),
                    None => Poll::Pending,
                };
            }
            if self.poll_listen(&mut grace.listener, cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

/// A caller's place in waiting for the end of a grace period; see
/// [`StopState::poll_grace_over`].
#[derive(Default)]
pub(crate) struct Grace {
    listener: Option<EventListener>,
    timer: Option<Sleep>,
}

impl fmt::Debug for Grace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grace")
            .field("timing", &self.timer.is_some())
            .finish_non_exhaustive()
    }
}

/// Stops a flow gracefully; from each flow's `stop_handle()`. Cheap to clone.
///
/// A stop is the same for every flow: intake stops; handlers running get the grace
/// period to finish; then they are cancelled, and what can go back goes back (a queue
/// message to its group, its delivery uncounted; a bus event or reactive item is
/// counted as `cancelled`). The flow then ends with a [`FlowReport`](super::FlowReport)
/// that says [`Stopped`](super::FlowEnd::Stopped).
///
/// The grace period is timed on the flow's runtime: the one it was spawned on, or the
/// one it was given (the queue's, the bus's clock). A flow driven in place with no
/// runtime at all has no timer: a zero grace cancels at once, and any other lets the
/// running handlers finish however long they take.
#[derive(Debug, Clone)]
pub struct StopHandle {
    pub(crate) state: Arc<StopState>,
}

impl StopHandle {
    /// Stops the flow: no new items; running handlers get `grace` to finish, then are
    /// cancelled. Asking again can shorten the grace, not lengthen it.
    pub fn stop(&self, grace: Duration) {
        self.state.ask(grace, false);
    }

    /// Stops the flow at once: running handlers are cancelled without a grace period.
    pub fn stop_now(&self) {
        self.stop(Duration::ZERO);
    }

    /// As [`stop`](Self::stop), but the flow first takes what its source has ready
    /// now (a queue group's ready messages, the events or items already waiting in
    /// its subscription) and stops once the source has nothing ready. Queue messages
    /// that are delayed or waiting for a retry's backoff are not waited for.
    pub fn stop_when_idle(&self, grace: Duration) {
        self.state.ask(grace, true);
    }

    /// Whether a stop was asked for.
    pub fn is_stopping(&self) -> bool {
        self.state.requested()
    }

    /// The handlers' view of this stop.
    pub fn signal(&self) -> StopSignal {
        StopSignal {
            state: Arc::clone(&self.state),
        }
    }
}

/// A handler's view of its flow's stop: it can ask whether a stop was asked for, wait
/// for one, or ask for one itself. Cheap to clone; handed to handlers taken by the
/// flows' `*_with_context` forms (inside [`MessageContext`](crate::queue::MessageContext)
/// for queue consumers).
///
/// A long handler that watches it can finish early and cleanly instead of being
/// cancelled at the end of the grace period.
///
/// ```
/// use riverbed::bus::{EventBus, Filter};
///
/// # futures::executor::block_on(async {
/// let bus: EventBus<u32, &str> = EventBus::new();
/// let flow = bus.on_with_context(Filter::all(), |event, stop| async move {
///     if event.payload == 0 {
///         stop.stop_flow(); // the handler ends its own flow
///     }
/// });
/// bus.emit("tick", 0).await.unwrap();
/// let report = flow.await;
/// assert!(report.is_stopped());
/// assert_eq!(report.stats.handled, 1);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct StopSignal {
    state: Arc<StopState>,
}

impl StopSignal {
    pub(crate) fn new(state: &Arc<StopState>) -> Self {
        StopSignal {
            state: Arc::clone(state),
        }
    }

    /// Whether a stop of the flow was asked for.
    pub fn is_stopping(&self) -> bool {
        self.state.requested()
    }

    /// Resolves once a stop of the flow is asked for (at once if it was).
    pub fn stopped(&self) -> Stopped {
        Stopped {
            state: Arc::clone(&self.state),
            listener: None,
        }
    }

    /// Asks the flow to stop taking items; the invocations running, this one
    /// included, all finish (no limit on the grace period, unless a
    /// [`StopHandle::stop`] sets a shorter one).
    pub fn stop_flow(&self) {
        self.state.ask(Duration::MAX, false);
    }

    /// A handle to stop the flow with a grace period of your choice.
    pub fn handle(&self) -> StopHandle {
        StopHandle {
            state: Arc::clone(&self.state),
        }
    }
}

/// The future of [`StopSignal::stopped`].
#[must_use = "futures do nothing unless polled"]
pub struct Stopped {
    state: Arc<StopState>,
    listener: Option<EventListener>,
}

impl Future for Stopped {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            if this.state.requested() {
                return Poll::Ready(());
            }
            std::task::ready!(this.state.poll_listen(&mut this.listener, cx));
        }
    }
}

impl fmt::Debug for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stopped")
            .field("stopping", &self.state.requested())
            .finish_non_exhaustive()
    }
}
