//! The receiving half of one subscriber.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::chunk::{Chunk, Ledger, SubCounts};
use super::ring::{Core, Matcher, matches};
use super::sync::Ordering;
use super::{Lagged, Overflow};

pub(crate) struct Receiver<T: Clone + Send + Sync, L: Ledger<T>> {
    core: Arc<Core<T, L>>,
    /// The subscriber's slot in the core; `None` if it subscribed after close.
    id: Option<usize>,
    overflow: Overflow,
    capacity: usize,
    matcher: Option<Arc<Matcher<T>>>,
    counters: Arc<SubCounts>,
    delivered: u64,
    /// The claimed window: items `next..end`, in `chunks` below `recent_start` and in
    /// `recent` (copied out of the open chunk, in order) from there on.
    chunks: VecDeque<Arc<Chunk<T>>>,
    recent: VecDeque<T>,
    recent_start: u64,
    next: u64,
    end: u64,
    /// Matching items of the window to skip (DropOldest dropped them).
    skip: u64,
    /// Matching items of the window still to deliver (DropNewest); `None`: all.
    allowance: Option<u64>,
    /// Items the policy kept from before the window, served first.
    kept: VecDeque<T>,
    /// Events missed before `kept` (DropOldest).
    lag_before: u64,
    /// Events missed after the window (DropNewest).
    lag_after: u64,
    done: bool,
}

impl<T: Clone + Send + Sync, L: Ledger<T>> Receiver<T, L> {
    pub(super) fn new(
        core: Arc<Core<T, L>>,
        id: Option<usize>,
        overflow: Overflow,
        capacity: usize,
        matcher: Option<Arc<Matcher<T>>>,
        counters: Arc<SubCounts>,
        replay: VecDeque<T>,
    ) -> Self {
        Receiver {
            core,
            done: id.is_none(),
            id,
            overflow,
            capacity,
            matcher,
            counters,
            delivered: 0,
            chunks: VecDeque::new(),
            recent: VecDeque::new(),
            recent_start: 0,
            next: 0,
            end: 0,
            skip: 0,
            allowance: None,
            // Replayed history is served first, outside any policy.
            kept: replay,
            lag_before: 0,
            lag_after: 0,
        }
    }

    fn deliver(&mut self, item: T) -> Poll<Option<Result<T, Lagged>>> {
        self.delivered += 1;
        // Only this receiver writes its counter: a plain store is enough.
        self.counters
            .delivered
            .store(self.delivered, Ordering::Relaxed);
        Poll::Ready(Some(Ok(item)))
    }

    /// The next matching item of the claimed window, if any.
    fn next_in_window(&mut self) -> Option<T> {
        if self.skip > 0 && self.matcher.is_none() {
            // Every item matches: jump over the dropped ones.
            let to = (self.next + self.skip).min(self.end);
            for _ in self.next.max(self.recent_start)..to {
                self.recent.pop_front();
            }
            self.next = to;
            self.skip = 0;
        }
        let mut panics = 0;
        let mut found = None;
        while self.next < self.end {
            let seq = self.next;
            self.next += 1;
            if seq >= self.recent_start {
                // Copied for this receiver alone: move it out, no clone.
                let Some(item) = self.recent.pop_front() else {
                    continue;
                };
                if !matches(self.matcher.as_deref(), &item, &mut panics) {
                    continue;
                }
                match admit(&mut self.skip, &mut self.allowance) {
                    Admit::Skip => continue,
                    Admit::Stop => break,
                    Admit::Take => {
                        found = Some(item);
                        break;
                    }
                }
            }
            while self.chunks.front().is_some_and(|c| c.end() <= seq) {
                self.chunks.pop_front();
            }
            let Some(item) = self.chunks.front().and_then(|c| c.get(seq)) else {
                continue;
            };
            if !matches(self.matcher.as_deref(), item, &mut panics) {
                continue;
            }
            match admit(&mut self.skip, &mut self.allowance) {
                Admit::Skip => continue,
                Admit::Stop => break,
                Admit::Take => {
                    found = Some(item.clone());
                    break;
                }
            }
        }
        SubCounts::add(&self.counters.filter_panics, panics);
        if found.is_none() {
            // The window is done (or the allowance used up): release it.
            self.next = self.end;
            self.chunks.clear();
            self.recent.clear();
            self.allowance = None;
        }
        found
    }

    /// Matching items in `from..to` of the claimed window.
    fn count_matching(&self, from: u64, to: u64) -> u64 {
        if self.matcher.is_none() {
            return to - from;
        }
        let mut panics = 0;
        let mut count = 0;
        let mut chunks = self.chunks.iter().peekable();
        for seq in from..to.min(self.recent_start) {
            while chunks.peek().is_some_and(|c| c.end() <= seq) {
                chunks.next();
            }
            if let Some(item) = chunks.peek().and_then(|c| c.get(seq))
                && matches(self.matcher.as_deref(), item, &mut panics)
            {
                count += 1;
            }
        }
        for item in &self.recent {
            if matches(self.matcher.as_deref(), item, &mut panics) {
                count += 1;
            }
        }
        SubCounts::add(&self.counters.filter_panics, panics);
        count
    }

    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Lagged>>> {
        loop {
            if self.lag_before > 0 {
                let missed = std::mem::take(&mut self.lag_before);
                return Poll::Ready(Some(Err(Lagged { missed })));
            }
            if let Some(item) = self.kept.pop_front() {
                return self.deliver(item);
            }
            if let Some(item) = self.next_in_window() {
                return self.deliver(item);
            }
            if self.lag_after > 0 {
                let missed = std::mem::take(&mut self.lag_after);
                return Poll::Ready(Some(Err(Lagged { missed })));
            }
            let Some(id) = self.id.filter(|_| !self.done) else {
                self.done = true;
                return Poll::Ready(None);
            };
            let claim = self
                .core
                .claim(id, &mut self.chunks, &mut self.recent, cx.waker());
            if claim.ended {
                self.done = true;
                continue;
            }
            let nothing = claim.from == claim.to
                && claim.kept.is_empty()
                && claim.missed_before == 0
                && claim.missed_after == 0;
            if nothing {
                return Poll::Pending;
            }
            self.next = claim.from;
            self.end = claim.to;
            self.recent_start = claim.recent_start;
            self.kept = claim.kept;
            let window = claim.to - claim.from;
            let kept = self.kept.len() as u64;
            let capacity = self.capacity as u64;
            match self.overflow {
                Overflow::Block => {}
                Overflow::DropOldest => {
                    let mut dropped = 0;
                    if kept + window > capacity {
                        let total = kept + self.count_matching(claim.from, claim.to);
                        dropped = total.saturating_sub(capacity);
                        let from_kept = dropped.min(kept);
                        self.kept.drain(..from_kept as usize);
                        self.skip = dropped - from_kept;
                        SubCounts::add(&self.counters.dropped_oldest, dropped);
                    }
                    self.lag_before = claim.missed_before + dropped;
                }
                Overflow::DropNewest => {
                    let allowance = capacity.saturating_sub(kept);
                    let mut dropped = 0;
                    if window > allowance {
                        let matching = self.count_matching(claim.from, claim.to);
                        dropped = matching.saturating_sub(allowance);
                        self.allowance = Some(allowance);
                        SubCounts::add(&self.counters.dropped_newest, dropped);
                    }
                    self.lag_after = claim.missed_after + dropped;
                }
            }
        }
    }

    /// Whether the stream has ended (closed and drained).
    pub(crate) fn is_terminated(&self) -> bool {
        self.done
            && self.kept.is_empty()
            && self.next >= self.end
            && self.lag_before == 0
            && self.lag_after == 0
    }

    /// Events waiting for this subscriber (items its filter rejects included, until it
    /// reads past them).
    pub(crate) fn len(&self) -> usize {
        let waiting = self.id.map_or(0, |id| self.core.waiting(id));
        self.kept.len() + (self.end.saturating_sub(self.next)) as usize + waiting
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

/// Whether a matching item of the window is delivered, skipped (DropOldest dropped it)
/// or ends the window (the DropNewest allowance is used up).
fn admit(skip: &mut u64, allowance: &mut Option<u64>) -> Admit {
    if *skip > 0 {
        *skip -= 1;
        return Admit::Skip;
    }
    match allowance {
        Some(0) => Admit::Stop,
        Some(left) => {
            *left -= 1;
            Admit::Take
        }
        None => Admit::Take,
    }
}

/// What becomes of a matching item of the window.
enum Admit {
    Take,
    Skip,
    Stop,
}

impl<T: Clone + Send + Sync, L: Ledger<T>> Drop for Receiver<T, L> {
    fn drop(&mut self) {
        match self.id {
            Some(id) => self.core.unsubscribe(id),
            // Never registered (it subscribed after close): what it delivered from
            // its replay still counts.
            None => self.core.absorb(&self.counters),
        }
    }
}

impl<T: Clone + Send + Sync, L: Ledger<T>> fmt::Debug for Receiver<T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("overflow", &self.overflow)
            .field("capacity", &self.capacity)
            .field("window", &(self.next..self.end))
            .field("done", &self.done)
            .finish()
    }
}
