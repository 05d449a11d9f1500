//! [`Run`]: the messages one claim took from a group's cursor, leased together on
//! their first delivery, at one bit each.

use std::time::SystemTime;

use super::journal::RunRecord;

/// Messages `first..first + len` taken from a group's cursor by one claim; those whose
/// bit is set are still leased, on their first delivery, until `until`. Their
/// messages stay in the shared log meanwhile (the run holds the group's watermark).
#[derive(Debug)]
pub(super) struct Run {
    pub(super) first: u64,
    pub(super) len: u64,
    pub(super) until: SystemTime,
    /// One bit per id from `first`.
    pub(super) leased: Vec<u64>,
    /// Bits set.
    pub(super) open: usize,
    /// Bits below this one are all clear: acknowledged in order, the run stops
    /// holding the log there.
    pub(super) start: u64,
}

impl Run {
    pub(super) fn new(first: u64, until: SystemTime) -> Self {
        Run {
            first,
            len: 0,
            until,
            leased: Vec::new(),
            open: 0,
            start: 0,
        }
    }

    /// The lowest id it may still lease: it holds the shared log from there.
    pub(super) fn front(&self) -> u64 {
        self.first + self.start
    }

    /// Adds the next id, leased or not.
    pub(super) fn push(&mut self, leased: bool) {
        let bit = self.len;
        self.len += 1;
        if bit.is_multiple_of(64) {
            self.leased.push(0);
        }
        if leased {
            if let Some(word) = self.leased.last_mut() {
                *word |= 1 << (bit % 64);
            }
            self.open += 1;
        }
    }

    /// Whether `id` is still leased from this run.
    pub(super) fn holds(&self, id: u64) -> bool {
        let Some(bit) = id.checked_sub(self.first).filter(|&b| b < self.len) else {
            return false;
        };
        let word = usize::try_from(bit / 64).unwrap_or(usize::MAX);
        self.leased
            .get(word)
            .is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }

    /// Ends the lease of `id` here; whether it was leased from this run.
    pub(super) fn take(&mut self, id: u64) -> bool {
        if !self.holds(id) {
            return false;
        }
        let bit = id - self.first;
        let word = usize::try_from(bit / 64).unwrap_or(usize::MAX);
        if let Some(w) = self.leased.get_mut(word) {
            *w &= !(1 << (bit % 64));
        }
        self.open -= 1;
        if self.open == 0 {
            self.start = self.len;
        } else if bit == self.start {
            while self.start < self.len && !self.holds(self.first + self.start) {
                self.start += 1;
            }
        }
        true
    }

    /// What a store keeps of it.
    pub(super) fn record(&self) -> RunRecord {
        RunRecord {
            len: self.len,
            until: self.until,
            leased: self.leased.clone(),
        }
    }

    /// The run a store kept, or `None` if the record cannot be one (a bit set past
    /// its length, or bits for more ids than it holds): a damaged store.
    pub(super) fn from_record(first: u64, record: RunRecord) -> Option<Self> {
        let RunRecord { len, until, leased } = record;
        let words = usize::try_from(len.div_ceil(64)).ok()?;
        if leased.len() != words || first.checked_add(len).is_none() {
            return None;
        }
        if let (Some(last), tail @ 1..) = (leased.last(), len % 64)
            && last >> tail != 0
        {
            return None;
        }
        let mut run = Run {
            first,
            len,
            until,
            leased,
            open: 0,
            start: len,
        };
        run.open = run.leased.iter().map(|w| w.count_ones() as usize).sum();
        run.start = (0..len).find(|&bit| run.holds(first + bit)).unwrap_or(len);
        Some(run)
    }

    /// The ids still leased from this run.
    pub(super) fn open_ids(&self) -> impl Iterator<Item = u64> + '_ {
        (self.front()..self.first + self.len).filter(|&id| self.holds(id))
    }
}
