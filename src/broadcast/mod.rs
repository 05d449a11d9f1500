//! The fan-out core shared by [`EventBus`](crate::bus::EventBus) and the reactive
//! stream: one shared ring of published items, a cursor per subscriber, overflow
//! policies, bounded history with gap-free replay, and targeted wakeups.
//!
//! # How it works
//!
//! * **One write per publish.** A published item is appended once to a shared ring;
//!   subscribers read it from there through their own cursor and clone it out. The
//!   publisher's work does not grow with the number of active subscribers; the
//!   subscribers' work runs in parallel on their own tasks.
//! * **All-or-nothing, in order.** One lock guards the ring and the subscriber
//!   registry. Under it the publisher assigns the sequence number, checks that every
//!   [`Overflow::Block`] subscriber has room, and appends. Every subscriber therefore
//!   sees items in sequence order.
//! * **Gap-free replay.** Subscribing from a sequence number copies the history from
//!   there and places the cursor at the end of the ring in the same critical section,
//!   so replay runs straight into live delivery with nothing missed or repeated.
//! * **Targeted wakeups.** Only *parked* subscribers (those that read everything and
//!   wait) are looked at by the publisher: the ones whose filter accepts the new item
//!   are woken; for the others the publisher moves their cursor past it, so they are
//!   neither woken nor held back by items they would not read.
//! * **Batched reads.** A subscriber takes everything waiting for it (up to a batch)
//!   under one lock acquisition and serves it from its own buffer.
//! * **Backpressure and loss.** The ring keeps at least the history bound and the
//!   largest subscriber capacity. A `Block` subscriber may be at most its capacity
//!   behind; the publisher waits otherwise (on one `event_listener::Event`, notified when
//!   a `Block` subscriber reads, leaves, or the core closes). `DropOldest` and
//!   `DropNewest` subscribers never hold the publisher back: when one falls behind, what
//!   its policy keeps is kept for it and what it drops is counted exactly (matching items
//!   only), and it learns the count through a [`Lagged`] item at the point of the gap.
//!
//! Capacity is counted in items published after the subscriber's cursor; for a
//! filtered `Block` subscriber that is busy (not parked), items its filter rejects count
//! too until it reads past them.

mod receiver;

use std::collections::VecDeque;
use std::collections::vec_deque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
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
/// It appears in the stream exactly where the gap is, and the count is exact (only
/// events the subscriber's filter accepts are counted).
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

/// A filter; `None` where one is expected means "everything".
pub(crate) type Matcher<T> = Box<dyn Fn(&T) -> bool + Send + Sync>;

/// Per-publish bookkeeping that runs under the core's lock (per-kind counts, say).
pub(crate) trait Ledger<T>: Send + 'static {
    fn record(&mut self, item: &T);
}

impl<T> Ledger<T> for () {
    fn record(&mut self, _item: &T) {}
}

/// Counters kept under the core's lock: no atomics on the publish path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub published: u64,
    pub delivered: u64,
    pub dropped_oldest: u64,
    pub dropped_newest: u64,
    pub filter_panics: u64,
}

/// How many items a `Block` subscriber takes under one lock acquisition.
const BATCH: usize = 256;

pub(crate) struct Core<T, L = ()> {
    inner: Mutex<Inner<T, L>>,
    closed: AtomicBool,
    /// Publishers waiting for a `Block` subscriber to make room wait here.
    space: Event,
}

struct Inner<T, L> {
    /// Items with sequence numbers `head..head + ring.len()`.
    ring: VecDeque<T>,
    head: u64,
    history_cap: usize,
    /// Items older than this are not part of the history (age limit).
    expired: Option<Matcher<T>>,
    /// The ring keeps at least this many items: the history bound and every live
    /// subscriber's capacity.
    keep: usize,
    subs: Vec<Option<SubState<T>>>,
    free: Vec<usize>,
    live: usize,
    /// Subscribers that read everything and wait for a matching item.
    parked: Vec<usize>,
    /// Live `Block` subscribers.
    blockers: usize,
    /// A lower bound of `min(cursor + capacity)` over `Block` subscribers: sequence
    /// numbers below it can be published without looking at them.
    gate: u64,
    /// A lower bound of the cursors of lossy subscribers, to skip eviction bookkeeping.
    lossy_floor: u64,
    closed: bool,
    counts: Counts,
    ledger: L,
}

/// One subscriber's state, kept under the core's lock.
struct SubState<T> {
    cursor: u64,
    matcher: Option<Matcher<T>>,
    overflow: Overflow,
    capacity: usize,
    waker: Option<Waker>,
    parked: bool,
    /// Items its lossy policy keeps that the ring no longer holds.
    kept: VecDeque<T>,
    /// Items dropped before what it will read next (DropOldest).
    missed_before: u64,
    /// Items dropped after `kept` (DropNewest).
    missed_after: u64,
}

/// Why a publish could not complete now.
pub(crate) enum TryPublishError<T> {
    Closed(T),
    /// A `Block` subscriber has no room.
    Full(T),
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
    // The only user code that runs under this lock is filters, whose panics are
    // caught, so a poisoned lock still guards consistent data.
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

impl<T: Clone> SubState<T> {
    /// Applies the lossy policy to one matching item the ring is about to forget.
    fn keep_or_drop(&mut self, item: &T, counts: &mut Counts) {
        match self.overflow {
            Overflow::DropOldest => {
                self.kept.push_back(item.clone());
                if self.kept.len() > self.capacity {
                    self.kept.pop_front();
                    self.missed_before += 1;
                    counts.dropped_oldest += 1;
                }
            }
            Overflow::DropNewest => {
                if self.kept.len() < self.capacity {
                    self.kept.push_back(item.clone());
                } else {
                    self.missed_after += 1;
                    counts.dropped_newest += 1;
                }
            }
            Overflow::Block => {}
        }
    }
}

impl<T: Clone, L> Inner<T, L> {
    fn tail(&self) -> u64 {
        self.head + self.ring.len() as u64
    }

    /// Index in `ring` of the first history item.
    fn history_start(&self) -> usize {
        let mut start = self.ring.len() - self.ring.len().min(self.history_cap);
        if let Some(expired) = &self.expired {
            while start < self.ring.len() && expired(&self.ring[start]) {
                start += 1;
            }
        }
        start
    }

    fn recompute_keep(&mut self) {
        let widest = self.subs.iter().flatten().map(|s| s.capacity).max();
        self.keep = self.history_cap.max(widest.unwrap_or(0));
    }

    /// Forgets the oldest items beyond `keep`, settling what lagging lossy subscribers
    /// keep or miss of them first. Runs in chunks so the bookkeeping is amortised.
    fn evict(&mut self) {
        let slack = (self.keep / 4).max(16);
        if self.ring.len() <= self.keep + slack {
            return;
        }
        let count = self.ring.len() - self.keep;
        let new_head = self.head + count as u64;
        if self.lossy_floor < new_head {
            let mut floor = u64::MAX;
            let Inner {
                ring,
                head,
                subs,
                counts,
                ..
            } = self;
            for sub in subs.iter_mut().flatten() {
                if sub.overflow == Overflow::Block {
                    continue;
                }
                if sub.cursor < new_head {
                    let unfiltered = sub.matcher.is_none();
                    let start = (sub.cursor - *head) as usize;
                    if unfiltered && sub.overflow == Overflow::DropOldest {
                        // At least `keep >= capacity` newer items remain, all of which
                        // it accepts: everything older is dropped.
                        let dropped = (count - start) as u64 + sub.kept.len() as u64;
                        sub.kept.clear();
                        sub.missed_before += dropped;
                        counts.dropped_oldest += dropped;
                    } else {
                        for item in ring.range(start..count) {
                            if matches(sub.matcher.as_ref(), item, &mut counts.filter_panics) {
                                sub.keep_or_drop(item, counts);
                            }
                        }
                    }
                    sub.cursor = new_head;
                }
                floor = floor.min(sub.cursor);
            }
            self.lossy_floor = floor;
        }
        self.ring.drain(..count);
        self.head = new_head;
    }

    fn recompute_gate(&mut self) {
        self.gate = self
            .subs
            .iter()
            .flatten()
            .filter(|s| s.overflow == Overflow::Block)
            .map(|s| s.cursor.saturating_add(s.capacity as u64))
            .min()
            .unwrap_or(u64::MAX);
    }
}

impl<T: Clone, L: Ledger<T>> Core<T, L> {
    pub(crate) fn new(history_cap: usize, expired: Option<Matcher<T>>, ledger: L) -> Self {
        Core {
            inner: Mutex::new(Inner {
                ring: VecDeque::new(),
                head: 0,
                history_cap,
                expired,
                keep: history_cap,
                subs: Vec::new(),
                free: Vec::new(),
                live: 0,
                parked: Vec::new(),
                blockers: 0,
                gate: u64::MAX,
                lossy_floor: u64::MAX,
                closed: false,
                counts: Counts::default(),
                ledger,
            }),
            closed: AtomicBool::new(false),
            space: Event::new(),
        }
    }

    /// Publishes `item` if every `Block` subscriber has room.
    ///
    /// `stamp` receives the item and its sequence number before filters see it; it may
    /// be called again on a later attempt.
    pub(crate) fn try_publish(
        &self,
        mut item: T,
        stamp: &mut impl FnMut(&mut T, u64),
    ) -> Result<u64, TryPublishError<T>> {
        let mut wake: Vec<Waker> = Vec::new();
        let seq = {
            let mut guard = lock(&self.inner);
            let inner = &mut *guard;
            if inner.closed {
                return Err(TryPublishError::Closed(item));
            }
            let seq = inner.tail();
            if inner.blockers > 0 && seq >= inner.gate {
                inner.recompute_gate();
                if seq >= inner.gate {
                    return Err(TryPublishError::Full(item));
                }
            }
            stamp(&mut item, seq);
            inner.counts.published += 1;
            inner.ledger.record(&item);
            inner.ring.push_back(item);

            if !inner.parked.is_empty() {
                let Inner {
                    ring,
                    subs,
                    parked,
                    counts,
                    ..
                } = inner;
                let item = ring.back().expect("just pushed");
                parked.retain(|&id| {
                    let Some(sub) = subs[id].as_mut() else {
                        return false;
                    };
                    if matches(sub.matcher.as_ref(), item, &mut counts.filter_panics) {
                        sub.parked = false;
                        if let Some(waker) = sub.waker.take() {
                            wake.push(waker);
                        }
                        false
                    } else {
                        // It would skip this item anyway; move it past without waking.
                        sub.cursor = seq + 1;
                        true
                    }
                });
            }
            inner.evict();
            seq
        };
        for waker in wake {
            waker.wake();
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
                Err(TryPublishError::Full(it)) => item = it,
            }
            // Try, listen, try again: room made between the failed attempt and
            // `listen` must not be missed.
            let listener = self.space.listen();
            match self.try_publish(item, &mut stamp) {
                Ok(seq) => return Ok(seq),
                Err(TryPublishError::Closed(it)) => return Err(it),
                Err(TryPublishError::Full(it)) => item = it,
            }
            listener.await;
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
        let start = inner.history_start();
        let oldest = inner.head + start as u64;
        let next = inner.tail();
        if from < oldest {
            return Err(ReplayError::Evicted {
                requested: from,
                oldest,
            });
        }
        if from > next {
            return Err(ReplayError::Ahead {
                requested: from,
                next,
            });
        }
        let mut replay = VecDeque::new();
        let first = (from - inner.head) as usize;
        for item in inner.ring.range(first..) {
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
        let capacity = spec.capacity.max(1);
        let cursor = inner.tail();
        let state = SubState {
            cursor,
            matcher: spec.matcher,
            overflow: spec.overflow,
            capacity,
            waker: None,
            parked: false,
            kept: VecDeque::new(),
            missed_before: 0,
            missed_after: 0,
        };
        let id = if inner.closed {
            // Never registered: it serves its replay and ends.
            None
        } else {
            let id = match inner.free.pop() {
                Some(id) => {
                    inner.subs[id] = Some(state);
                    id
                }
                None => {
                    inner.subs.push(Some(state));
                    inner.subs.len() - 1
                }
            };
            inner.live += 1;
            inner.keep = inner.keep.max(capacity);
            if spec.overflow == Overflow::Block {
                inner.blockers += 1;
                inner.gate = inner.gate.min(cursor.saturating_add(capacity as u64));
            } else {
                inner.lossy_floor = inner.lossy_floor.min(cursor);
            }
            Some(id)
        };
        Receiver::new(Arc::clone(self), id, spec.overflow, capacity, replay)
    }

    fn unsubscribe(&self, id: usize) {
        let removed = {
            let mut guard = lock(&self.inner);
            let inner = &mut *guard;
            let Some(state) = inner.subs.get_mut(id).and_then(Option::take) else {
                return;
            };
            inner.free.push(id);
            inner.live -= 1;
            if state.parked {
                inner.parked.retain(|&p| p != id);
            }
            if state.overflow == Overflow::Block {
                inner.blockers -= 1;
                // The gate may open: make the next publish look again.
                inner.gate = 0;
            }
            if state.capacity >= inner.keep {
                inner.recompute_keep();
            }
            state
        };
        // Its kept items are freed outside the lock.
        drop(removed);
        self.space.notify(usize::MAX);
    }

    /// Runs `f` with the ledger, the counts, the history and the subscriber count,
    /// under the lock.
    pub(crate) fn inspect<R>(
        &self,
        f: impl FnOnce(&L, &Counts, vec_deque::Iter<'_, T>, usize) -> R,
    ) -> R {
        let inner = lock(&self.inner);
        let start = inner.history_start();
        f(
            &inner.ledger,
            &inner.counts,
            inner.ring.range(start..),
            inner.live,
        )
    }
}

impl<T, L> Core<T, L> {
    /// Closes the core: publishing fails from now on; subscribers receive what is
    /// already published, then end.
    pub(crate) fn close(&self) {
        let wake: Vec<Waker> = {
            let mut inner = lock(&self.inner);
            if inner.closed {
                return;
            }
            inner.closed = true;
            self.closed.store(true, Ordering::Release);
            let parked = std::mem::take(&mut inner.parked);
            parked
                .into_iter()
                .filter_map(|id| {
                    let sub = inner.subs.get_mut(id)?.as_mut()?;
                    sub.parked = false;
                    sub.waker.take()
                })
                .collect()
        };
        for waker in wake {
            waker.wake();
        }
        self.space.notify(usize::MAX);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn subscriber_count(&self) -> usize {
        lock(&self.inner).live
    }

    pub(crate) fn next_seq(&self) -> u64 {
        let inner = lock(&self.inner);
        inner.head + inner.ring.len() as u64
    }
}

impl<T, L> fmt::Debug for Core<T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
