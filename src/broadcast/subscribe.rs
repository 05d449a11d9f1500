//! The subscriber side of the ring: attaching a subscriber (live, after a replay of
//! the history, or from the history's start), claiming what was published for it,
//! and leaving.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;

use super::chunk::{Chunk, Counts, Ledger, SEAL_EARLY, SubCounts};
use super::ring::{Core, Inner, Matcher, SubState, lock, matches};
use super::{Overflow, Receiver, SubscribeError};

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

impl<T: Clone + Send + Sync, L: Ledger<T>> Core<T, L> {
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
            // All of them: see `Core::space`.
            self.space.notify(usize::MAX);
        }
        claim
    }

    /// Adds the counts of a subscriber that was never registered to the core's.
    pub(super) fn absorb(&self, counters: &SubCounts) {
        counters.fold_into(&mut lock(&self.inner).counts);
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
        // All of them: see `Core::space`.
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
