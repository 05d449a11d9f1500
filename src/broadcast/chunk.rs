//! The ring's pieces that hold no lock: [`Chunk`]s of published items, the
//! [`Ledger`] a publish updates, and the [`Counts`] and per-subscriber
//! [`SubCounts`] statistics are read from.

use super::sync::{AtomicU64, Ordering};

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
pub(super) const SEAL_EARLY: u64 = 8;

/// Items `start..start + items.len()`, immutable once shared.
pub(crate) struct Chunk<T> {
    pub(super) start: u64,
    pub(super) items: Vec<T>,
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

    pub(super) fn fold_into(&self, counts: &mut Counts) {
        counts.delivered += self.delivered.load(Ordering::Relaxed);
        counts.dropped_oldest += self.dropped_oldest.load(Ordering::Relaxed);
        counts.dropped_newest += self.dropped_newest.load(Ordering::Relaxed);
        counts.filter_panics += self.filter_panics.load(Ordering::Relaxed);
    }
}
