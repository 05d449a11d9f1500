//! The receiving half of one subscriber.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use super::{Core, Lagged, Ledger, Overflow, Slot, lock};

pub(crate) struct Receiver<T: Clone, L: Ledger<T>> {
    core: Arc<Core<T, L>>,
    slot: Arc<Slot<T>>,
    /// The batch taken from the slot, served before the slot is looked at again.
    local: VecDeque<T>,
    /// Events missed before `local` (DropOldest).
    lag_before: u64,
    /// Events missed after `local` (DropNewest).
    lag_after: u64,
    done: bool,
}

impl<T: Clone, L: Ledger<T>> Receiver<T, L> {
    pub(super) fn new(core: Arc<Core<T, L>>, slot: Arc<Slot<T>>, replay: VecDeque<T>) -> Self {
        Receiver {
            core,
            slot,
            local: replay,
            lag_before: 0,
            lag_after: 0,
            done: false,
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
            if self.done {
                return Poll::Ready(None);
            }

            let mut st = lock(&self.slot.state);
            if !st.queue.is_empty() || st.missed > 0 {
                // Take the whole batch; the two buffers trade places, so neither side
                // allocates in the steady state.
                std::mem::swap(&mut st.queue, &mut self.local);
                self.slot.queued.store(0, Ordering::Release);
                let missed = std::mem::take(&mut st.missed);
                drop(st);
                match self.slot.overflow {
                    Overflow::DropOldest => self.lag_before = missed,
                    Overflow::DropNewest => self.lag_after = missed,
                    Overflow::Block => {
                        self.slot.space.notify(usize::MAX);
                    }
                }
                continue;
            }
            if st.closed {
                self.done = true;
                return Poll::Ready(None);
            }
            match &st.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => st.waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
    }

    /// Whether the stream has ended (closed and drained).
    pub(crate) fn is_terminated(&self) -> bool {
        self.done && self.local.is_empty() && self.lag_before == 0 && self.lag_after == 0
    }

    /// Events waiting for this subscriber: taken already, and still in the core.
    pub(crate) fn len(&self) -> usize {
        self.local.len() + self.slot.queued.load(Ordering::Acquire)
    }

    pub(crate) fn overflow(&self) -> Overflow {
        self.slot.overflow
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slot.capacity
    }

    pub(crate) fn core(&self) -> &Arc<Core<T, L>> {
        &self.core
    }
}

impl<T: Clone, L: Ledger<T>> Drop for Receiver<T, L> {
    fn drop(&mut self) {
        self.core.unsubscribe(&self.slot);
    }
}

impl<T: Clone, L: Ledger<T>> fmt::Debug for Receiver<T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("overflow", &self.slot.overflow)
            .field("capacity", &self.slot.capacity)
            .field("buffered", &self.local.len())
            .field("done", &self.done)
            .finish()
    }
}
