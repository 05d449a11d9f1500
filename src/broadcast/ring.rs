//! The fan-out core shared by [`EventBus`](crate::bus::EventBus) and the reactive
//! stream: one shared ring of published items, a cursor per subscriber, overflow
//! policies, bounded history with gap-free replay, and targeted wakeups.
//!
//! # How it works
//!
//! * **One write per publish.** A published item is pushed once into the ring's open
//!   chunk; every [`CHUNK`] items (or earlier, when a subscriber finds enough waiting
//!   in it) the chunk is sealed and shared, immutable, through an `Arc`. The
//!   publisher's work does not grow with the number of active subscribers.
//! * **Reads without the lock.** A subscriber claims everything published since its
//!   cursor under the lock — `Arc` clones of the sealed chunks that hold it, and a copy
//!   of the few items (fewer than `SEAL_EARLY`) still in the open chunk — then filters
//!   and clones the items out on its own task, without the lock. No per-item atomics
//!   on either side, and chunks the ring forgets are freed outside the lock.
//! * **All-or-nothing, in order.** One lock guards the ring's ends and the subscriber
//!   registry. Under it the publisher assigns the sequence number, checks that every
//!   [`Overflow::Block`] subscriber has room, and appends. Every subscriber therefore
//!   sees items in sequence order.
//! * **Gap-free replay.** The history is its own exact, bounded deque (a clone per
//!   publish, only when a history is configured). Subscribing from a sequence number
//!   copies the history from there and places the cursor at the end of the ring in the
//!   same critical section, so replay runs straight into live delivery with nothing
//!   missed or repeated.
//! * **Targeted wakeups.** Only *parked* subscribers (those that read everything and
//!   wait) are looked at by the publisher: the ones whose filter accepts the new item
//!   are woken; for the others the publisher moves their cursor past it, so they are
//!   neither woken nor held back by items they would not read.
//! * **Backpressure and loss.** The ring keeps the largest subscriber capacity (and
//!   nothing at all while there are no subscribers). A `Block` subscriber may have at
//!   most its capacity of matching items unclaimed; the publisher waits otherwise (on one `event_listener::Event`, notified
//!   when a `Block` subscriber claims, leaves, or the core closes). `DropOldest` and
//!   `DropNewest` subscribers never hold the publisher back: when one falls behind, what
//!   its policy keeps is kept for it and what it drops is counted exactly (matching items
//!   only), and it learns the count through a [`Lagged`] item at the point of the gap.
//!
//! Capacity is counted in matching items published after the subscriber's cursor. A
//! claimed batch is the subscriber's own (it is never dropped), so up to twice the
//! capacity may be unread at once. For an unfiltered `Block` subscriber the publisher
//! checks room with one comparison (a cached lower bound over all of them); for a
//! filtered one it runs the filter, so that only events the subscriber would receive
//! can hold the publisher back.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use event_listener::{Event, EventListener};

use super::{Overflow, Receiver, SubscribeError};

/// A filter; `None` where one is expected means "everything".
pub(crate) type Matcher<T> = Box<dyn Fn(&T) -> bool + Send + Sync>;

/// Per-publish bookkeeping that runs under the core's lock (per-kind counts, say).
pub(crate) trait Ledger<T>: Send + 'static {
    fn record(&mut self, item: &T);
}

impl<T> Ledger<T> for () {
    fn record(&mut self, _item: &T) {}
}

/// Totals over the core's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub published: u64,
    pub delivered: u64,
    pub dropped_oldest: u64,
    pub dropped_newest: u64,
    pub filter_panics: u64,
}

/// Items per chunk of the ring.
pub(crate) const CHUNK: usize = 64;

/// A subscriber that finds at least this many items in the open chunk seals it early
/// and shares it instead of copying them under the lock.
const SEAL_EARLY: u64 = 8;

/// Items `start..start + items.len()`, immutable once shared.
pub(crate) struct Chunk<T> {
    start: u64,
    items: Vec<T>,
}

impl<T> Chunk<T> {
    /// The item with sequence number `seq`, if this chunk holds it.
    pub(crate) fn get(&self, seq: u64) -> Option<&T> {
        let index = usize::try_from(seq.checked_sub(self.start)?).ok()?;
        self.items.get(index)
    }

    pub(crate) fn end(&self) -> u64 {
        self.start + self.items.len() as u64
    }
}

/// Counters one subscriber updates on its own, read when statistics are taken.
///
/// Aligned to its own cache lines so that subscribers on different cores do not slow
/// each other down (false sharing).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct SubCounts {
    pub(super) delivered: AtomicU64,
    pub(super) dropped_oldest: AtomicU64,
    pub(super) dropped_newest: AtomicU64,
    pub(super) filter_panics: AtomicU64,
}

impl SubCounts {
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn fold_into(&self, counts: &mut Counts) {
        counts.delivered += self.delivered.load(Ordering::Relaxed);
        counts.dropped_oldest += self.dropped_oldest.load(Ordering::Relaxed);
        counts.dropped_newest += self.dropped_newest.load(Ordering::Relaxed);
        counts.filter_panics += self.filter_panics.load(Ordering::Relaxed);
    }
}

pub(crate) struct Core<T, L = ()> {
    inner: Mutex<Inner<T, L>>,
    closed: AtomicBool,
    /// Publishers waiting for a `Block` subscriber to make room wait here.
    space: Event,
}

struct Inner<T, L> {
    /// Sealed chunks holding items `head..open_start`, then the open chunk holding
    /// `open_start..tail`. Both empty while there are no subscribers.
    chunks: VecDeque<Arc<Chunk<T>>>,
    open: Vec<T>,
    open_start: u64,
    head: u64,
    tail: u64,
    /// The last `history_cap` items, oldest first.
    history: VecDeque<T>,
    history_cap: usize,
    /// History items for which this returns true are forgotten (age limit).
    expired: Option<Matcher<T>>,
    /// The ring keeps at least this many items: every live subscriber's capacity.
    keep: usize,
    subs: Vec<Option<SubState<T>>>,
    free: Vec<usize>,
    live: usize,
    /// Subscribers that claimed everything and wait for a matching item.
    parked: Vec<usize>,
    /// Live unfiltered `Block` subscribers.
    blockers: usize,
    /// Live filtered `Block` subscribers: the publisher runs their filters.
    filtered_blockers: Vec<usize>,
    /// Reused by the publisher for the filtered `Block` subscribers an item matches.
    scratch: Vec<usize>,
    /// A lower bound of `min(cursor + capacity)` over unfiltered `Block` subscribers:
    /// sequence numbers below it can be published without looking at them.
    gate: u64,
    /// A lower bound of the cursors of the subscribers the gate does not protect
    /// (lossy and filtered `Block` ones), to skip eviction bookkeeping.
    lossy_floor: u64,
    closed: bool,
    /// Counts of subscribers that have left, and the core's own.
    counts: Counts,
    ledger: L,
}

/// One subscriber's state, kept under the core's lock.
struct SubState<T> {
    /// Everything before it has been claimed (or settled by eviction).
    cursor: u64,
    /// Matching items after `cursor` (kept for filtered `Block` subscribers only).
    pending: usize,
    matcher: Option<Arc<Matcher<T>>>,
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
    counters: Arc<SubCounts>,
}

/// Why a publish could not complete now.
pub(crate) enum TryPublishError<T> {
    Closed(T),
    /// A `Block` subscriber has no room.
    Full(T),
}

pub(crate) struct SubscribeSpec<T> {
    pub matcher: Option<Matcher<T>>,
    pub overflow: Overflow,
    pub capacity: usize,
}

/// What a subscriber claimed: items `from..to` in `chunks`, plus what its lossy policy
/// kept or dropped.
pub(crate) struct Claim<T> {
    pub from: u64,
    pub to: u64,
    /// Items from here on were copied out of the open chunk.
    pub recent_start: u64,
    pub kept: VecDeque<T>,
    pub missed_before: u64,
    pub missed_after: u64,
    pub ended: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
    fn expire_history(&mut self) {
        if let Some(expired) = &self.expired {
            while self.history.front().is_some_and(expired) {
                self.history.pop_front();
            }
        }
    }

    fn recompute_keep(&mut self) {
        self.keep = self
            .subs
            .iter()
            .flatten()
            .map(|s| s.capacity)
            .max()
            .unwrap_or(0);
    }

    fn recompute_gate(&mut self) {
        self.gate = self
            .subs
            .iter()
            .flatten()
            .filter(|s| s.overflow == Overflow::Block && s.matcher.is_none())
            .map(|s| s.cursor.saturating_add(s.capacity as u64))
            .min()
            .unwrap_or(u64::MAX);
    }

    fn push(&mut self, item: T) {
        self.open.push(item);
        self.tail += 1;
        if self.open.len() == CHUNK {
            self.seal();
        }
    }

    /// Shares the open chunk, immutable from now on, and opens a new one.
    fn seal(&mut self) {
        let items = std::mem::replace(&mut self.open, Vec::with_capacity(CHUNK));
        self.chunks.push_back(Arc::new(Chunk {
            start: self.open_start,
            items,
        }));
        self.open_start = self.tail;
    }

    /// Empties the ring (nobody can read it); it restarts at the tail.
    fn clear_ring(&mut self) -> (VecDeque<Arc<Chunk<T>>>, Vec<T>) {
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
    fn evict(&mut self) -> Option<Arc<Chunk<T>>> {
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
                                if let Some(item) = first.get(seq) {
                                    if matches(sub.matcher.as_deref(), item, &mut panics) {
                                        sub.keep_or_drop(item);
                                    }
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

    /// Subscribes to what is published from now on.
    pub(crate) fn subscribe(self: &Arc<Self>, spec: SubscribeSpec<T>) -> Receiver<T, L> {
        let mut inner = lock(&self.inner);
        self.attach(&mut inner, spec, VecDeque::new())
    }

    /// Replays the history from `from`, then continues live: the subscriber's cursor
    /// starts at `from` and the history is kept for it like any unclaimed item, all
    /// under one lock, so nothing published meanwhile is missed or seen twice.
    pub(crate) fn subscribe_from(
        self: &Arc<Self>,
        spec: SubscribeSpec<T>,
        from: u64,
    ) -> Result<Receiver<T, L>, SubscribeError> {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        inner.expire_history();
        let oldest = inner.tail - inner.history.len() as u64;
        let next = inner.tail;
        if from < oldest {
            return Err(SubscribeError::Evicted {
                requested: from,
                oldest,
            });
        }
        if from > next {
            return Err(SubscribeError::Ahead {
                requested: from,
                next,
            });
        }
        // History holds consecutive sequence numbers ending at `tail - 1`.
        let skip = usize::try_from(from - oldest).unwrap_or(usize::MAX);
        Ok(self.replay_then_attach(inner, spec, skip))
    }

    /// Replays the whole history, then continues live (see
    /// [`subscribe_from`](Self::subscribe_from)); after `close`, it serves the history
    /// and ends.
    pub(crate) fn subscribe_history(self: &Arc<Self>, spec: SubscribeSpec<T>) -> Receiver<T, L> {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        inner.expire_history();
        self.replay_then_attach(inner, spec, 0)
    }

    /// Copies the history after its first `skip` items for a new subscriber and
    /// attaches it, under the caller's lock.
    fn replay_then_attach(
        self: &Arc<Self>,
        inner: &mut Inner<T, L>,
        spec: SubscribeSpec<T>,
        skip: usize,
    ) -> Receiver<T, L> {
        let mut replay = VecDeque::new();
        for item in inner.history.iter().skip(skip) {
            if matches(spec.matcher.as_ref(), item, &mut inner.counts.filter_panics) {
                replay.push_back(item.clone());
            }
        }
        self.attach(inner, spec, replay)
    }

    fn attach(
        self: &Arc<Self>,
        inner: &mut Inner<T, L>,
        spec: SubscribeSpec<T>,
        replay: VecDeque<T>,
    ) -> Receiver<T, L> {
        let capacity = spec.capacity.max(1);
        let filtered = spec.matcher.is_some();
        let matcher = spec.matcher.map(Arc::new);
        let counters = Arc::new(SubCounts::default());
        let cursor = inner.tail;
        if inner.live == 0 {
            // The ring was empty while nobody subscribed; it starts at the tail.
            drop(inner.clear_ring());
        }
        let id = if inner.closed {
            // Never registered: it serves its replay and ends.
            None
        } else {
            let state = SubState {
                cursor,
                pending: 0,
                matcher: matcher.clone(),
                overflow: spec.overflow,
                capacity,
                waker: None,
                parked: false,
                kept: VecDeque::new(),
                missed_before: 0,
                missed_after: 0,
                counters: Arc::clone(&counters),
            };
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
            if spec.overflow == Overflow::Block && filtered {
                inner.filtered_blockers.push(id);
                inner.lossy_floor = inner.lossy_floor.min(cursor);
            } else if spec.overflow == Overflow::Block {
                inner.blockers += 1;
                inner.gate = inner.gate.min(cursor.saturating_add(capacity as u64));
            } else {
                inner.lossy_floor = inner.lossy_floor.min(cursor);
            }
            Some(id)
        };
        Receiver::new(
            Arc::clone(self),
            id,
            spec.overflow,
            capacity,
            matcher,
            counters,
            replay,
        )
    }

    /// Claims what is waiting for subscriber `id`, or parks it: sealed chunks go to
    /// `chunks`, the items of the open chunk are copied into `recent` (which then holds
    /// `claim.recent_start..claim.to`).
    pub(crate) fn claim(
        &self,
        id: usize,
        chunks: &mut VecDeque<Arc<Chunk<T>>>,
        recent: &mut VecDeque<T>,
        waker: &Waker,
    ) -> Claim<T> {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let tail = inner.tail;
        let closed = inner.closed;
        let Some(sub) = inner.subs.get_mut(id).and_then(Option::as_mut) else {
            return Claim::ended();
        };
        let from = sub.cursor;
        let mut claim = Claim {
            from,
            to: tail,
            recent_start: tail,
            kept: std::mem::take(&mut sub.kept),
            missed_before: std::mem::take(&mut sub.missed_before),
            missed_after: std::mem::take(&mut sub.missed_after),
            ended: false,
        };
        let nothing = from == tail
            && claim.kept.is_empty()
            && claim.missed_before == 0
            && claim.missed_after == 0;
        if nothing {
            if closed {
                return Claim::ended();
            }
            match &sub.waker {
                Some(w) if w.will_wake(waker) => {}
                _ => sub.waker = Some(waker.clone()),
            }
            if !sub.parked {
                sub.parked = true;
                inner.parked.push(id);
            }
            return claim;
        }
        // Wake blocked publishers only if this subscriber may have been what held
        // them back: an unfiltered one at the gate, or a filtered one that was full.
        let was_holding = match (sub.overflow, sub.matcher.is_some()) {
            (Overflow::Block, false) => from.saturating_add(sub.capacity as u64) <= inner.gate,
            (Overflow::Block, true) => sub.pending >= sub.capacity,
            _ => false,
        };
        sub.cursor = tail;
        sub.pending = 0;
        let open_from = from.max(inner.open_start);
        if tail - open_from >= SEAL_EARLY {
            // Enough waiting in the open chunk: share it rather than copy it here.
            inner.seal();
        }
        if from < inner.open_start {
            let first = inner.chunks.partition_point(|c| c.end() <= from);
            chunks.extend(inner.chunks.range(first..).cloned());
        }
        let open_from = from.max(inner.open_start);
        if open_from < tail {
            let skip = (open_from - inner.open_start) as usize;
            recent.extend(inner.open[skip..].iter().cloned());
            claim.recent_start = open_from;
        }
        drop(guard);
        if was_holding {
            self.space.notify(usize::MAX);
        }
        claim
    }

    pub(super) fn unsubscribe(&self, id: usize) {
        let freed = {
            let mut guard = lock(&self.inner);
            let inner = &mut *guard;
            let Some(state) = inner.subs.get_mut(id).and_then(Option::take) else {
                return;
            };
            inner.free.push(id);
            inner.live -= 1;
            state.counters.fold_into(&mut inner.counts);
            if state.parked {
                inner.parked.retain(|&p| p != id);
            }
            if state.overflow == Overflow::Block && state.matcher.is_some() {
                inner.filtered_blockers.retain(|&b| b != id);
            } else if state.overflow == Overflow::Block {
                inner.blockers -= 1;
                // The gate may open: make the next publish look again.
                inner.gate = 0;
            }
            if state.capacity >= inner.keep {
                inner.recompute_keep();
            }
            // Nobody can read the ring any more: free it.
            let chunks = if inner.live == 0 {
                inner.clear_ring()
            } else {
                (VecDeque::new(), Vec::new())
            };
            (state, chunks)
        };
        // What it kept, and the ring if it was the last, are freed outside the lock.
        drop(freed);
        self.space.notify(usize::MAX);
    }

    /// Runs `f` with the ledger, the counts, the history and the subscriber count,
    /// under the lock.
    pub(crate) fn inspect<R>(
        &self,
        f: impl FnOnce(&L, &Counts, &mut dyn DoubleEndedIterator<Item = &T>, usize) -> R,
    ) -> R {
        let mut inner = lock(&self.inner);
        inner.expire_history();
        let mut counts = inner.counts;
        for sub in inner.subs.iter().flatten() {
            sub.counters.fold_into(&mut counts);
        }
        let mut history = inner.history.iter();
        f(&inner.ledger, &counts, &mut history, inner.live)
    }

    /// Events waiting for subscriber `id` in the core: unclaimed and kept.
    pub(crate) fn waiting(&self, id: usize) -> usize {
        let inner = lock(&self.inner);
        inner
            .subs
            .get(id)
            .and_then(Option::as_ref)
            .map_or(0, |s| (inner.tail - s.cursor) as usize + s.kept.len())
    }
}

impl<T> Claim<T> {
    fn ended() -> Self {
        Claim {
            from: 0,
            to: 0,
            recent_start: 0,
            kept: VecDeque::new(),
            missed_before: 0,
            missed_after: 0,
            ended: true,
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
