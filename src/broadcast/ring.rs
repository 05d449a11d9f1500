//! [`Core`]: the fan-out core shared by the event bus and the reactive stream — the
//! ring of published items, the publisher's side, and the subscriber registry
//! (the design is in the [module docs](super)).

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::Waker;

use super::Overflow;
use super::chunk::{CHUNK, Chunk, Counts, Ledger, SubCounts};
use super::sync::{AtomicBool, Event, EventListener, Mutex, MutexGuard, Ordering};

/// A filter; `None` where one is expected means "everything".
pub(crate) type Matcher<T> = Box<dyn Fn(&T) -> bool + Send + Sync>;

pub(crate) struct Core<T, L = ()> {
    pub(super) inner: Mutex<Inner<T, L>>,
    closed: AtomicBool,
    /// Publishers waiting for a `Block` subscriber to make room wait here.
    ///
    /// Every notify wakes all of them (`notify(usize::MAX)`), on purpose: whether a
    /// waiting publisher can now go on depends on the room of every `Block`
    /// subscriber, and for a filtered one on whether it matches the item in that
    /// publisher's hands, which only the publisher's own attempt can tell. Waking
    /// fewer could leave a publisher that could proceed asleep behind ones that
    /// cannot; waking all costs each one that cannot a `try_publish` under the lock,
    /// on the slow path only (a `Block` subscriber was full).
    pub(super) space: Event,
}

pub(super) struct Inner<T, L> {
    /// Sealed chunks holding items `head..open_start`, then the open chunk holding
    /// `open_start..tail`. Both empty while there are no subscribers.
    pub(super) chunks: VecDeque<Arc<Chunk<T>>>,
    pub(super) open: Vec<T>,
    pub(super) open_start: u64,
    pub(super) head: u64,
    pub(super) tail: u64,
    /// The last `history_cap` items, oldest first.
    pub(super) history: VecDeque<T>,
    pub(super) history_cap: usize,
    /// History items for which this returns true are forgotten (age limit).
    pub(super) expired: Option<Matcher<T>>,
    /// The ring keeps at least this many items: every live subscriber's capacity.
    pub(super) keep: usize,
    pub(super) subs: Vec<Option<SubState<T>>>,
    pub(super) free: Vec<usize>,
    pub(super) live: usize,
    /// Subscribers that claimed everything and wait for a matching item.
    pub(super) parked: Vec<usize>,
    /// Live unfiltered `Block` subscribers.
    pub(super) blockers: usize,
    /// Live filtered `Block` subscribers: the publisher runs their filters.
    pub(super) filtered_blockers: Vec<usize>,
    /// Reused by the publisher for the filtered `Block` subscribers an item matches.
    pub(super) scratch: Vec<usize>,
    /// A lower bound of `min(cursor + capacity)` over unfiltered `Block` subscribers:
    /// sequence numbers below it can be published without looking at them.
    pub(super) gate: u64,
    /// A lower bound of the cursors of the subscribers the gate does not protect
    /// (lossy and filtered `Block` ones), to skip eviction bookkeeping.
    pub(super) lossy_floor: u64,
    pub(super) closed: bool,
    /// Counts of subscribers that have left, and the core's own.
    pub(super) counts: Counts,
    pub(super) ledger: L,
}

/// One subscriber's state, kept under the core's lock.
pub(super) struct SubState<T> {
    /// Everything before it has been claimed (or settled by eviction).
    pub(super) cursor: u64,
    /// Matching items after `cursor` (kept for filtered `Block` subscribers only).
    pub(super) pending: usize,
    pub(super) matcher: Option<Arc<Matcher<T>>>,
    pub(super) overflow: Overflow,
    pub(super) capacity: usize,
    pub(super) waker: Option<Waker>,
    pub(super) parked: bool,
    /// Items its lossy policy keeps that the ring no longer holds.
    pub(super) kept: VecDeque<T>,
    /// Items dropped before what it will read next (DropOldest).
    pub(super) missed_before: u64,
    /// Items dropped after `kept` (DropNewest).
    pub(super) missed_after: u64,
    pub(super) counters: Arc<SubCounts>,
}

/// Why a publish could not complete now.
pub(crate) enum TryPublishError<T> {
    Closed(T),
    /// A `Block` subscriber has no room.
    Full(T),
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The only user code that runs under this lock is filters, whose panics are
    // caught, so a poisoned lock still guards consistent data.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs a filter; a panicking filter rejects the item and is counted.
pub(crate) fn matches<T>(matcher: Option<&Matcher<T>>, item: &T, filter_panics: &mut u64) -> bool {
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
    fn keep_or_drop(&mut self, item: &T) {
        match self.overflow {
            Overflow::DropOldest => {
                self.kept.push_back(item.clone());
                if self.kept.len() > self.capacity {
                    self.kept.pop_front();
                    self.missed_before += 1;
                    SubCounts::add(&self.counters.dropped_oldest, 1);
                }
            }
            Overflow::DropNewest => {
                if self.kept.len() < self.capacity {
                    self.kept.push_back(item.clone());
                } else {
                    self.missed_after += 1;
                    SubCounts::add(&self.counters.dropped_newest, 1);
                }
            }
            // A filtered `Block` subscriber has at most `capacity` matching items
            // pending (the publisher checks), so this never grows past it.
            Overflow::Block => self.kept.push_back(item.clone()),
        }
    }
}

impl<T, L> Inner<T, L> {
    /// Forgets history items past the age limit.
    pub(super) fn expire_history(&mut self) {
        if let Some(expired) = &self.expired {
            while self.history.front().is_some_and(expired) {
                self.history.pop_front();
            }
        }
    }

    pub(super) fn recompute_keep(&mut self) {
        self.keep = self
            .subs
            .iter()
            .flatten()
            .map(|s| s.capacity)
            .max()
            .unwrap_or(0);
    }

    pub(super) fn recompute_gate(&mut self) {
        self.gate = self
            .subs
            .iter()
            .flatten()
            .filter(|s| s.overflow == Overflow::Block && s.matcher.is_none())
            .map(|s| s.cursor.saturating_add(s.capacity as u64))
            .min()
            .unwrap_or(u64::MAX);
    }

    pub(super) fn push(&mut self, item: T) {
        self.open.push(item);
        self.tail += 1;
        if self.open.len() == CHUNK {
            self.seal();
        }
    }

    /// Shares the open chunk, immutable from now on, and opens a new one.
    pub(super) fn seal(&mut self) {
        let items = std::mem::replace(&mut self.open, Vec::with_capacity(CHUNK));
        self.chunks.push_back(Arc::new(Chunk {
            start: self.open_start,
            items,
        }));
        self.open_start = self.tail;
    }

    /// Empties the ring (nobody can read it); it restarts at the tail.
    pub(super) fn clear_ring(&mut self) -> (VecDeque<Arc<Chunk<T>>>, Vec<T>) {
        self.head = self.tail;
        self.open_start = self.tail;
        (
            std::mem::take(&mut self.chunks),
            std::mem::take(&mut self.open),
        )
    }
}

impl<T: Clone, L> Inner<T, L> {
    /// Forgets the oldest sealed chunk if it lies wholly beyond `keep`, settling first
    /// what lagging lossy subscribers keep or miss of it. At most one chunk per call,
    /// so the bookkeeping is amortised over the publishes that filled it; the chunk is
    /// returned so that the caller frees it after releasing the lock.
    pub(super) fn evict(&mut self) -> Option<Arc<Chunk<T>>> {
        {
            let first = self.chunks.front()?;
            let end = first.end();
            if self.tail < end || self.tail - end < self.keep as u64 {
                return None;
            }
            if self.lossy_floor < end {
                let mut floor = u64::MAX;
                let first = Arc::clone(first);
                let mut panics = 0;
                for sub in self.subs.iter_mut().flatten() {
                    if sub.overflow == Overflow::Block && sub.matcher.is_none() {
                        // The gate keeps it within `keep` of the tail.
                        continue;
                    }
                    if sub.cursor < end {
                        if sub.matcher.is_none() && sub.overflow == Overflow::DropOldest {
                            // At least `keep >= capacity` newer items remain, all of
                            // which it accepts: everything older is dropped.
                            let dropped = (end - sub.cursor) + sub.kept.len() as u64;
                            sub.kept.clear();
                            sub.missed_before += dropped;
                            SubCounts::add(&sub.counters.dropped_oldest, dropped);
                        } else {
                            for seq in sub.cursor..end {
                                if let Some(item) = first.get(seq)
                                    && matches(sub.matcher.as_deref(), item, &mut panics)
                                {
                                    sub.keep_or_drop(item);
                                }
                            }
                        }
                        sub.cursor = end;
                    }
                    floor = floor.min(sub.cursor);
                }
                self.counts.filter_panics += panics;
                self.lossy_floor = floor;
            }
            self.head = end;
        }
        self.chunks.pop_front()
    }
}

impl<T: Clone + Send + Sync, L: Ledger<T>> Core<T, L> {
    pub(crate) fn new(history_cap: usize, expired: Option<Matcher<T>>, ledger: L) -> Self {
        Core {
            inner: Mutex::new(Inner {
                chunks: VecDeque::new(),
                open: Vec::new(),
                open_start: 0,
                head: 0,
                tail: 0,
                history: VecDeque::new(),
                history_cap,
                expired,
                keep: 0,
                subs: Vec::new(),
                free: Vec::new(),
                live: 0,
                parked: Vec::new(),
                blockers: 0,
                filtered_blockers: Vec::new(),
                scratch: Vec::new(),
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
        let mut evicted = None;
        let seq = {
            let mut guard = lock(&self.inner);
            let inner = &mut *guard;
            if inner.closed {
                return Err(TryPublishError::Closed(item));
            }
            let seq = inner.tail;
            if inner.blockers > 0 && seq >= inner.gate {
                inner.recompute_gate();
                if seq >= inner.gate {
                    return Err(TryPublishError::Full(item));
                }
            }
            stamp(&mut item, seq);
            if !inner.filtered_blockers.is_empty() {
                let Inner {
                    subs,
                    filtered_blockers,
                    scratch,
                    ..
                } = inner;
                scratch.clear();
                // A panic here is not counted: the subscriber runs its filter again
                // when it reads, and that run counts it.
                let mut uncounted = 0;
                for &id in filtered_blockers.iter() {
                    let Some(sub) = subs[id].as_ref() else {
                        continue;
                    };
                    if sub.parked || !matches(sub.matcher.as_deref(), &item, &mut uncounted) {
                        continue;
                    }
                    if sub.pending >= sub.capacity {
                        return Err(TryPublishError::Full(item));
                    }
                    scratch.push(id);
                }
                for &id in scratch.iter() {
                    if let Some(sub) = subs[id].as_mut() {
                        sub.pending += 1;
                    }
                }
            }
            inner.counts.published += 1;
            inner.ledger.record(&item);

            if !inner.parked.is_empty() {
                let Inner {
                    subs,
                    parked,
                    counts,
                    ..
                } = inner;
                parked.retain(|&id| {
                    let Some(sub) = subs[id].as_mut() else {
                        return false;
                    };
                    if matches(sub.matcher.as_deref(), &item, &mut counts.filter_panics) {
                        sub.parked = false;
                        if sub.overflow == Overflow::Block && sub.matcher.is_some() {
                            sub.pending = 1;
                        }
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
            if inner.history_cap > 0 {
                if inner.history.len() == inner.history_cap {
                    inner.history.pop_front();
                }
                if inner.live > 0 {
                    inner.history.push_back(item.clone());
                } else {
                    inner.history.push_back(item);
                    inner.tail += 1;
                    inner.head = inner.tail;
                    inner.open_start = inner.tail;
                    inner.expire_history();
                    return Ok(seq);
                }
                inner.expire_history();
            }
            if inner.live > 0 {
                inner.push(item);
                evicted = inner.evict();
            } else {
                // Nobody could read it: the ring stays empty.
                inner.tail += 1;
                inner.head = inner.tail;
                inner.open_start = inner.tail;
            }
            seq
        };
        // Freed outside the lock.
        drop(evicted);
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
        lock(&self.inner).tail
    }

    /// A listener notified when a `Block` subscriber claims or leaves, or the core
    /// closes: for a publisher that polls its own wait for room, after `try_publish`
    /// failed with `Full` (listen, then try again, then wait).
    pub(crate) fn listen_space(&self) -> EventListener {
        self.space.listen()
    }
}

impl<T, L> fmt::Debug for Core<T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
