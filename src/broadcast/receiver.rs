//! The receiving half of one subscriber.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::{BATCH, Core, Inner, Lagged, Ledger, Overflow, lock, matches};

pub(crate) struct Receiver<T: Clone, L: Ledger<T>> {
    core: Arc<Core<T, L>>,
    /// The subscriber's slot in the core; `None` if it subscribed after close.
    id: Option<usize>,
    overflow: Overflow,
    capacity: usize,
    /// The batch taken from the core, served before the core is looked at again.
    local: VecDeque<T>,
    /// Events missed before `local` (DropOldest).
    lag_before: u64,
    /// Events missed after `local` (DropNewest).
    lag_after: u64,
    done: bool,
}

impl<T: Clone, L: Ledger<T>> Receiver<T, L> {
    pub(super) fn new(
        core: Arc<Core<T, L>>,
        id: Option<usize>,
        overflow: Overflow,
        capacity: usize,
        replay: VecDeque<T>,
    ) -> Self {
        Receiver {
            core,
            done: id.is_none(),
            id,
            overflow,
            capacity,
            local: replay,
            lag_before: 0,
            lag_after: 0,
        }
    }

    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Lagged>>> {
        loop {
            if self.lag_before > 0 {
                let missed = std::mem::take(&mut self.lag_before);
                return Poll::Ready(Some(Err(Lagged { missed })));
            }
            if let Some(item) = self.local.pop_front() {
                return Poll::Ready(Some(Ok(item)));
            }
            if self.lag_after > 0 {
                let missed = std::mem::take(&mut self.lag_after);
                return Poll::Ready(Some(Err(Lagged { missed })));
            }
            let Some(id) = self.id.filter(|_| !self.done) else {
                self.done = true;
                return Poll::Ready(None);
            };
            match self.fill(id, cx) {
                Fill::Filled => continue,
                Fill::Ended => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                Fill::Parked => return Poll::Pending,
            }
        }
    }

    /// Takes what is waiting in the core into `local`, or parks.
    fn fill(&mut self, id: usize, cx: &mut Context<'_>) -> Fill {
        let mut guard = lock(&self.core.inner);
        let inner = &mut *guard;
        let tail = inner.tail();
        let Inner {
            ring,
            head,
            subs,
            parked,
            counts,
            closed,
            ..
        } = inner;
        let Some(sub) = subs.get_mut(id).and_then(Option::as_mut) else {
            return Fill::Ended;
        };
        let start = (sub.cursor - *head) as usize;
        let before = self.local.len();
        let mut advanced = false;
        match self.overflow {
            Overflow::Block => {
                let end = (start + BATCH).min(ring.len());
                for item in ring.range(start..end) {
                    if matches(sub.matcher.as_ref(), item, &mut counts.filter_panics) {
                        self.local.push_back(item.clone());
                    }
                }
                advanced = end > start;
                sub.cursor = *head + end as u64;
            }
            Overflow::DropOldest => {
                // What it keeps: the newest `capacity` of kept ++ matching ring items.
                let matching = ring
                    .range(start..)
                    .filter(|item| matches(sub.matcher.as_ref(), item, &mut counts.filter_panics))
                    .count();
                let total = sub.kept.len() + matching;
                let mut drop = total.saturating_sub(self.capacity);
                let from_kept = drop.min(sub.kept.len());
                sub.kept.drain(..from_kept);
                drop -= from_kept;
                let dropped = (from_kept + drop) as u64;
                self.lag_before = sub.missed_before + dropped;
                sub.missed_before = 0;
                counts.dropped_oldest += dropped;
                self.local.extend(sub.kept.drain(..));
                let mut skip = drop;
                for item in ring.range(start..) {
                    if matches(sub.matcher.as_ref(), item, &mut counts.filter_panics) {
                        if skip > 0 {
                            skip -= 1;
                        } else {
                            self.local.push_back(item.clone());
                        }
                    }
                }
                sub.cursor = tail;
            }
            Overflow::DropNewest => {
                // What it keeps: the oldest `capacity` of kept ++ matching ring items.
                self.local.extend(sub.kept.drain(..));
                let mut dropped = 0u64;
                for item in ring.range(start..) {
                    if matches(sub.matcher.as_ref(), item, &mut counts.filter_panics) {
                        if self.local.len() < self.capacity {
                            self.local.push_back(item.clone());
                        } else {
                            dropped += 1;
                        }
                    }
                }
                self.lag_after = sub.missed_after + dropped;
                sub.missed_after = 0;
                counts.dropped_newest += dropped;
                sub.cursor = tail;
            }
        }
        let taken = self.local.len() - before;
        counts.delivered += taken as u64;
        if taken > 0 || self.lag_before > 0 || self.lag_after > 0 {
            drop(guard);
            if advanced {
                self.core.space.notify(usize::MAX);
            }
            return Fill::Filled;
        }
        if sub.cursor < tail {
            // A batch of items its filter rejected: go round again.
            drop(guard);
            if advanced {
                self.core.space.notify(usize::MAX);
            }
            return Fill::Filled;
        }
        if *closed {
            return Fill::Ended;
        }
        match &sub.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => sub.waker = Some(cx.waker().clone()),
        }
        if !sub.parked {
            sub.parked = true;
            parked.push(id);
        }
        drop(guard);
        if advanced {
            self.core.space.notify(usize::MAX);
        }
        Fill::Parked
    }

    /// Whether the stream has ended (closed and drained).
    pub(crate) fn is_terminated(&self) -> bool {
        self.done && self.local.is_empty() && self.lag_before == 0 && self.lag_after == 0
    }

    /// Events waiting for this subscriber: taken already, plus items in the core past
    /// its cursor (some of which its filter may reject).
    pub(crate) fn len(&self) -> usize {
        let waiting = self.id.map_or(0, |id| {
            let inner = lock(&self.core.inner);
            let tail = inner.tail();
            inner
                .subs
                .get(id)
                .and_then(Option::as_ref)
                .map_or(0, |s| (tail - s.cursor) as usize + s.kept.len())
        });
        self.local.len() + waiting
    }

    pub(crate) fn overflow(&self) -> Overflow {
        self.overflow
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn core(&self) -> &Arc<Core<T, L>> {
        &self.core
    }
}

enum Fill {
    Filled,
    Parked,
    Ended,
}

impl<T: Clone, L: Ledger<T>> Drop for Receiver<T, L> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.core.unsubscribe(id);
        }
    }
}

impl<T: Clone, L: Ledger<T>> fmt::Debug for Receiver<T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("overflow", &self.overflow)
            .field("capacity", &self.capacity)
            .field("buffered", &self.local.len())
            .field("done", &self.done)
            .finish()
    }
}
