//! The fan-out core shared by [`EventBus`](crate::bus::EventBus) and the reactive
//! stream: a subscriber registry, one bounded queue per subscriber, overflow policies,
//! bounded history with gap-free replay, and targeted wakeups.
//!
//! # How it works
//!
//! * **Publishing is serialised** by one registry lock, which is the only lock a
//!   publisher takes besides the queues of the subscribers it delivers to. Under it the
//!   publisher assigns the sequence number, checks that every matching
//!   [`Overflow::Block`] subscriber has room (a lock-free read of a mirror of the queue
//!   length), and only then commits: pushes to every matching subscriber and to the
//!   history. A publish is therefore all-or-nothing and every subscriber sees events in
//!   sequence order.
//! * **Subscribing** takes the same lock, so "copy the history from `seq`" and "register
//!   for live events" happen with no publish in between: replay followed by live
//!   delivery has no gap and no duplicate.
//! * **Filters run on the publisher**: a subscriber whose filter rejects an event is
//!   never touched — no push, no wakeup.
//! * **Each subscriber queue** is a `VecDeque` behind its own small mutex. The receiving
//!   side takes the whole queue at once (it swaps it with its own, empty, buffer), so it
//!   locks once per batch, not once per event, and the two buffers trade places without
//!   allocating.
//! * **Wakeups are targeted**: a subscriber's waker is taken (and so woken) once per
//!   park; a publisher blocked on a full subscriber waits on that subscriber's own
//!   `event_listener::Event`, which is notified when it takes a batch, leaves or the
//!   core closes.
//!
//! Capacity bounds what waits *in the core* for a subscriber. A batch the subscriber has
//! already taken is its own: it is never dropped, and it does not count against the
//! capacity.

mod receiver;

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use event_listener::Event;
use serde::{Deserialize, Serialize};

pub(crate) use receiver::Receiver;

/// What happens when a subscriber's buffer is full and another event arrives for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Overflow {
    /// The publisher waits until the subscriber has room: backpressure, nothing is lost.
    #[default]
    Block,
    /// The oldest waiting event is dropped to make room; the subscriber receives a
    /// [`Lagged`] error with the number it missed before the events that follow the gap.
    DropOldest,
    /// The new event is dropped for this subscriber; it receives a [`Lagged`] error with
    /// the number it missed after the events it already had waiting.
    DropNewest,
}

/// A subscriber fell behind and missed events because its overflow policy dropped them.
///
/// It appears in the stream exactly where the gap is, and the count is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lagged {
    /// How many events this subscriber missed at this point of its stream.
    pub missed: u64,
}

impl fmt::Display for Lagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subscriber lagged: {} events were dropped", self.missed)
    }
}

impl std::error::Error for Lagged {}

/// A filter run on the publisher's side; `None` in [`Slot`] means "everything".
pub(crate) type Matcher<T> = Box<dyn Fn(&T) -> bool + Send + Sync>;

/// Per-publish bookkeeping that runs under the registry lock (per-kind counts, say).
pub(crate) trait Ledger<T>: Send + 'static {
    fn record(&mut self, item: &T);
}

impl<T> Ledger<T> for () {
    fn record(&mut self, _item: &T) {}
}

/// Counters kept under the registry lock: no atomics on the publish path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub published: u64,
    pub delivered: u64,
    pub dropped_oldest: u64,
    pub dropped_newest: u64,
    pub filter_panics: u64,
}

pub(crate) struct Core<T, L = ()> {
    inner: Mutex<Inner<T, L>>,
    closed: AtomicBool,
}

struct Inner<T, L> {
    subs: Vec<Arc<Slot<T>>>,
    history: VecDeque<T>,
    history_cap: usize,
    /// Drops history entries from the front while it returns true (age limit).
    expired: Option<Matcher<T>>,
    next_seq: u64,
    closed: bool,
    counts: Counts,
    ledger: L,
    /// Indices of the subscribers the event being published goes to; kept to reuse
    /// its allocation.
    scratch: Vec<usize>,
}

/// The shared half of one subscriber.
pub(crate) struct Slot<T> {
    matcher: Option<Matcher<T>>,
    overflow: Overflow,
    capacity: usize,
    /// Mirror of `state.queue.len()`, written under `state`'s lock, read by publishers
    /// without it.
    queued: AtomicUsize,
    state: Mutex<SlotState<T>>,
    /// Notified when room appears (the subscriber took a batch or left) or the core
    /// closes; blocked publishers wait on it.
    space: Event,
}

struct SlotState<T> {
    queue: VecDeque<T>,
    waker: Option<Waker>,
    missed: u64,
    /// Set when the core closes or the subscriber leaves.
    closed: bool,
}

enum PushOutcome {
    Pushed,
    DroppedOldest,
    DroppedNewest,
}

/// Why a publish could not complete now.
pub(crate) enum TryPublishError<T> {
    Closed(T),
    /// A `Block` subscriber has no room; wait on its `space`.
    Full(T, Arc<Slot<T>>),
}

/// Why a subscription could not start at the requested sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayError {
    Evicted { requested: u64, oldest: u64 },
    Ahead { requested: u64, next: u64 },
}

pub(crate) struct SubscribeSpec<T> {
    pub matcher: Option<Matcher<T>>,
    pub overflow: Overflow,
    pub capacity: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No user code runs under these locks except filters, whose panics are caught, so
    // a poisoned lock still guards consistent data.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs a filter; a panicking filter rejects the item and is counted.
fn matches<T>(matcher: Option<&Matcher<T>>, item: &T, filter_panics: &mut u64) -> bool {
    match matcher {
        None => true,
        Some(m) => catch_unwind(AssertUnwindSafe(|| m(item))).unwrap_or_else(|_| {
            *filter_panics += 1;
            false
        }),
    }
}

impl<T> Slot<T> {
    fn has_room(&self) -> bool {
        self.queued.load(Ordering::Acquire) < self.capacity
    }

    fn push(&self, item: T) -> PushOutcome {
        let mut st = lock(&self.state);
        let outcome = if st.queue.len() < self.capacity {
            st.queue.push_back(item);
            PushOutcome::Pushed
        } else {
            match self.overflow {
                Overflow::DropOldest => {
                    st.queue.pop_front();
                    st.queue.push_back(item);
                    st.missed += 1;
                    PushOutcome::DroppedOldest
                }
                Overflow::DropNewest => {
                    st.missed += 1;
                    PushOutcome::DroppedNewest
                }
                // Publishers check room under the registry lock before committing and
                // only the receiver removes items, so a Block queue cannot be full
                // here; keep the item rather than lose it if that ever changed.
                Overflow::Block => {
                    st.queue.push_back(item);
                    PushOutcome::Pushed
                }
            }
        };
        self.queued.store(st.queue.len(), Ordering::Release);
        let waker = match outcome {
            // The subscriber already has a full queue to take; no need to wake it again.
            PushOutcome::DroppedNewest => None,
            _ => st.waker.take(),
        };
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        outcome
    }

    fn close(&self) {
        let waker = {
            let mut st = lock(&self.state);
            st.closed = true;
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        self.space.notify(usize::MAX);
    }
}

impl<T: Clone, L: Ledger<T>> Core<T, L> {
    pub(crate) fn new(history_cap: usize, expired: Option<Matcher<T>>, ledger: L) -> Self {
        Core {
            inner: Mutex::new(Inner {
                subs: Vec::new(),
                history: VecDeque::new(),
                history_cap,
                expired,
                next_seq: 0,
                closed: false,
                counts: Counts::default(),
                ledger,
                scratch: Vec::new(),
            }),
            closed: AtomicBool::new(false),
        }
    }

    /// Publishes `item` if every matching `Block` subscriber has room.
    ///
    /// `stamp` receives the item and its sequence number just before the filters run;
    /// it may be called again on a later attempt with another number.
    pub(crate) fn try_publish(
        &self,
        mut item: T,
        stamp: &mut impl FnMut(&mut T, u64),
    ) -> Result<u64, TryPublishError<T>> {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        if inner.closed {
            return Err(TryPublishError::Closed(item));
        }
        let seq = inner.next_seq;
        stamp(&mut item, seq);

        inner.scratch.clear();
        for (i, slot) in inner.subs.iter().enumerate() {
            if !matches(
                slot.matcher.as_ref(),
                &item,
                &mut inner.counts.filter_panics,
            ) {
                continue;
            }
            if slot.overflow == Overflow::Block && !slot.has_room() {
                return Err(TryPublishError::Full(item, Arc::clone(slot)));
            }
            inner.scratch.push(i);
        }

        inner.next_seq += 1;
        inner.counts.published += 1;
        inner.ledger.record(&item);
        for &i in &inner.scratch {
            match inner.subs[i].push(item.clone()) {
                PushOutcome::Pushed => inner.counts.delivered += 1,
                PushOutcome::DroppedOldest => {
                    inner.counts.delivered += 1;
                    inner.counts.dropped_oldest += 1;
                }
                PushOutcome::DroppedNewest => inner.counts.dropped_newest += 1,
            }
        }
        if inner.history_cap > 0 {
            if inner.history.len() == inner.history_cap {
                inner.history.pop_front();
            }
            inner.history.push_back(item);
            if let Some(expired) = &inner.expired {
                while inner.history.front().is_some_and(expired) {
                    inner.history.pop_front();
                }
            }
        }
        Ok(seq)
    }

    /// Publishes `item`, waiting for room in `Block` subscribers.
    pub(crate) async fn publish(
        &self,
        mut item: T,
        mut stamp: impl FnMut(&mut T, u64),
    ) -> Result<u64, T> {
        loop {
            match self.try_publish(item, &mut stamp) {
                Ok(seq) => return Ok(seq),
                Err(TryPublishError::Closed(it)) => return Err(it),
                Err(TryPublishError::Full(it, slot)) => {
                    item = it;
                    let listener = slot.space.listen();
                    // Try, listen, try again: a batch taken between the failed attempt
                    // and `listen` must not be missed.
                    if slot.has_room() || lock(&slot.state).closed || self.is_closed() {
                        continue;
                    }
                    listener.await;
                }
            }
        }
    }

    /// Subscribes to what is published from now on.
    pub(crate) fn subscribe(self: &Arc<Self>, spec: SubscribeSpec<T>) -> Receiver<T, L> {
        let mut inner = lock(&self.inner);
        self.attach(&mut inner, spec, VecDeque::new())
    }

    /// Replays the history from `from`, then continues live; both under one lock, so
    /// nothing published meanwhile is missed or seen twice.
    pub(crate) fn subscribe_from(
        self: &Arc<Self>,
        spec: SubscribeSpec<T>,
        from: u64,
    ) -> Result<Receiver<T, L>, ReplayError> {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let oldest = inner.next_seq - inner.history.len() as u64;
        if from < oldest {
            return Err(ReplayError::Evicted {
                requested: from,
                oldest,
            });
        }
        if from > inner.next_seq {
            return Err(ReplayError::Ahead {
                requested: from,
                next: inner.next_seq,
            });
        }
        let mut replay = VecDeque::new();
        // History holds consecutive sequence numbers ending at `next_seq - 1`.
        let skip = usize::try_from(from - oldest).unwrap_or(usize::MAX);
        for item in inner.history.iter().skip(skip) {
            if matches(spec.matcher.as_ref(), item, &mut inner.counts.filter_panics) {
                replay.push_back(item.clone());
            }
        }
        inner.counts.delivered += replay.len() as u64;
        Ok(self.attach(inner, spec, replay))
    }

    fn attach(
        self: &Arc<Self>,
        inner: &mut Inner<T, L>,
        spec: SubscribeSpec<T>,
        replay: VecDeque<T>,
    ) -> Receiver<T, L> {
        let slot = Arc::new(Slot {
            matcher: spec.matcher,
            overflow: spec.overflow,
            capacity: spec.capacity.max(1),
            queued: AtomicUsize::new(0),
            state: Mutex::new(SlotState {
                queue: VecDeque::new(),
                waker: None,
                missed: 0,
                closed: inner.closed,
            }),
            space: Event::new(),
        });
        if !inner.closed {
            inner.subs.push(Arc::clone(&slot));
        }
        Receiver::new(Arc::clone(self), slot, replay)
    }

    fn unsubscribe(&self, slot: &Arc<Slot<T>>) {
        let mut inner = lock(&self.inner);
        if let Some(pos) = inner.subs.iter().position(|s| Arc::ptr_eq(s, slot)) {
            inner.subs.swap_remove(pos);
        }
        drop(inner);
        // Frees the waiting events and releases any publisher blocked on this slot.
        let queue = {
            let mut st = lock(&slot.state);
            st.closed = true;
            slot.queued.store(0, Ordering::Release);
            std::mem::take(&mut st.queue)
        };
        drop(queue);
        slot.space.notify(usize::MAX);
    }

    /// Runs `f` with the ledger, the counts and the history under the registry lock.
    pub(crate) fn inspect<R>(&self, f: impl FnOnce(&L, &Counts, &VecDeque<T>, usize) -> R) -> R {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        if let Some(expired) = &inner.expired {
            while inner.history.front().is_some_and(expired) {
                inner.history.pop_front();
            }
        }
        f(
            &inner.ledger,
            &inner.counts,
            &inner.history,
            inner.subs.len(),
        )
    }
}

impl<T, L> Core<T, L> {
    /// Closes the core: publishing fails from now on; subscribers receive what is
    /// already queued for them, then end.
    pub(crate) fn close(&self) {
        let subs = {
            let mut inner = lock(&self.inner);
            if inner.closed {
                return;
            }
            inner.closed = true;
            self.closed.store(true, Ordering::Release);
            inner.subs.clone()
        };
        for slot in subs {
            slot.close();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn subscriber_count(&self) -> usize {
        lock(&self.inner).subs.len()
    }

    pub(crate) fn next_seq(&self) -> u64 {
        lock(&self.inner).next_seq
    }
}

impl<T, L> fmt::Debug for Core<T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
