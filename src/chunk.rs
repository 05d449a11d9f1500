//! [`Chunker`]: items grouped by count and by time. One grouping for the reactive
//! `chunks_timeout` operator and the pipeline's batches, below both.

use std::fmt;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::ready;

use crate::runtime::{Deadline, SharedRuntime, poll_due};

/// Capacity reserved for a chunk up front, at most: a huge `max_len` must not
/// allocate (or fail to allocate) a huge `Vec` before any item arrived.
const MAX_RESERVE: usize = 1024;

/// Groups items into chunks of at most `max_len`, each also closed `max_wait` after
/// its first item when timed; the grouping of [`ChunksTimeout`] and of the
/// pipeline's `Batch`.
///
/// Time rules are the reactive operators': an item that arrives exactly when its
/// chunk's time is up starts the next chunk.
pub(crate) struct Chunker<T> {
    items: Vec<T>,
    max_len: usize,
    /// The time limit, and when the chunk in progress reaches it (set while it has
    /// items).
    timer: Option<(Duration, Deadline)>,
}

impl<T> Chunker<T> {
    /// Chunks of at most `max_len` items (at least 1), timed when given a limit and a
    /// runtime.
    pub(crate) fn new(max_len: usize, timer: Option<(Duration, SharedRuntime)>) -> Self {
        let max_len = max_len.max(1);
        Chunker {
            items: Vec::with_capacity(max_len.min(MAX_RESERVE)),
            max_len,
            timer: timer.map(|(max_wait, rt)| (max_wait, Deadline::new(rt))),
        }
    }

    /// The largest chunk.
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// The time limit of a chunk, when timed.
    pub(crate) fn max_wait(&self) -> Option<Duration> {
        self.timer.as_ref().map(|(max_wait, _)| *max_wait)
    }

    /// Items in the chunk in progress.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no chunk is in progress.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds an item that arrived now (`now` caches the clock for one poll). Returns
    /// the chunk in progress when its time was up before the item arrived; the item
    /// then starts the next chunk.
    pub(crate) fn push(&mut self, item: T, now: &mut Option<Instant>) -> Option<Vec<T>> {
        let mut expired = None;
        if let Some((max_wait, due)) = self.timer.as_mut() {
            let arrived = due.now_cached(now);
            if due.is_due(arrived) {
                expired = Some(std::mem::replace(
                    &mut self.items,
                    Vec::with_capacity(self.max_len.min(MAX_RESERVE)),
                ));
            }
            if self.items.is_empty() {
                due.set_after(arrived, *max_wait);
            }
        }
        self.items.push(item);
        expired
    }

    /// The chunk in progress, when it is full.
    pub(crate) fn take_full(&mut self) -> Option<Vec<T>> {
        (self.items.len() >= self.max_len).then(|| self.take())
    }

    /// The chunk in progress, when its time is up; otherwise registers `cx` to be
    /// woken when it is (pending without a wakeup when no timed chunk is in progress).
    pub(crate) fn poll_expired(
        &mut self,
        cx: &mut Context<'_>,
        now: &mut Option<Instant>,
    ) -> Poll<Vec<T>> {
        let Some((_, due)) = self.timer.as_mut() else {
            return Poll::Pending;
        };
        if self.items.is_empty() {
            return Poll::Pending;
        }
        ready!(poll_due(due, cx, now));
        Poll::Ready(self.take())
    }

    /// The chunk in progress, if it has any item.
    pub(crate) fn take_rest(&mut self) -> Option<Vec<T>> {
        (!self.items.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Vec<T> {
        if let Some((_, due)) = self.timer.as_mut() {
            due.clear();
        }
        let reserve = self.max_len.min(MAX_RESERVE);
        std::mem::replace(&mut self.items, Vec::with_capacity(reserve))
    }
}

impl<T> fmt::Debug for Chunker<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunker")
            .field("max_len", &self.max_len)
            .field("max_wait", &self.max_wait())
            .field("buffered", &self.items.len())
            .finish()
    }
}
