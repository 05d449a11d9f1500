//! [`IdMap`]: a map from message ids to a group's pending entries, made for ids that
//! arrive in increasing order and mostly leave in the same order.
//!
//! A group's pending entries are almost all the messages it took last from its
//! cursor: their ids are consecutive and new ones are always the highest. So they
//! live in a ring indexed by `id - low`: inserting at the top, finding and removing
//! are index operations, with no tree to rebalance and no allocation per entry. Ids
//! below the ring (a dead letter requeued long after) go to a side tree, and so do
//! entries left behind at the bottom of the ring when the ring grows much longer than
//! what it holds (a message delayed for an hour must not keep every slot after it).

use std::collections::{BTreeMap, VecDeque};

/// Once the ring has this many slots more than twice its entries, its oldest entries
/// move to the side tree.
const SLACK: usize = 1024;

/// Pending entries by id; see the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct IdMap<T> {
    /// Slots for ids `low..low + ring.len()`; the first and last are `Some`.
    ring: VecDeque<Option<T>>,
    low: u64,
    /// Entries in the ring.
    in_ring: usize,
    /// Entries with ids outside the ring.
    side: BTreeMap<u64, T>,
}

impl<T> Default for IdMap<T> {
    fn default() -> Self {
        IdMap {
            ring: VecDeque::new(),
            low: 0,
            in_ring: 0,
            side: BTreeMap::new(),
        }
    }
}

impl<T> IdMap<T> {
    /// The ring slot of `id`, if it falls in the ring.
    fn slot(&self, id: u64) -> Option<usize> {
        let index = usize::try_from(id.checked_sub(self.low)?).ok()?;
        (index < self.ring.len()).then_some(index)
    }

    pub(crate) fn len(&self) -> usize {
        self.in_ring + self.side.len()
    }

    pub(crate) fn get(&self, id: u64) -> Option<&T> {
        match self.slot(id) {
            Some(index) => self.ring[index].as_ref(),
            None => self.side.get(&id),
        }
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        match self.slot(id) {
            Some(index) => self.ring[index].as_mut(),
            None => self.side.get_mut(&id),
        }
    }

    /// Inserts or replaces the entry of `id`.
    pub(crate) fn insert(&mut self, id: u64, value: T) {
        if let Some(index) = self.slot(id) {
            if self.ring[index].replace(value).is_none() {
                self.in_ring += 1;
            }
            return;
        }
        if self.ring.is_empty() {
            // The ring may only start above every id in the side tree, or it
            // would hide them.
            if self.side.range(id..).next().is_some() {
                self.side.insert(id, value);
                return;
            }
            self.low = id;
        } else if id < self.low {
            self.side.insert(id, value);
            return;
        }
        // Above the ring: the common case, the next id from the cursor.
        let gap = id - self.low - self.ring.len() as u64;
        if gap > (SLACK as u64) + 2 * self.in_ring as u64 {
            // Far above what the ring holds: start the ring over at `id`.
            self.spill_all();
            self.low = id;
        } else {
            for _ in 0..gap {
                self.ring.push_back(None);
            }
        }
        // An id above the ring is never in the side tree: the side holds only ids
        // that were below the ring when they went there, and the ring only grows up.
        self.ring.push_back(Some(value));
        self.in_ring += 1;
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<T> {
        let Some(index) = self.slot(id) else {
            return self.side.remove(&id);
        };
        let value = self.ring[index].take()?;
        self.emptied(index);
        Some(value)
    }

    /// Removes the entry of `id` where it lies, without moving it out; whether there
    /// was one.
    pub(crate) fn delete(&mut self, id: u64) -> bool {
        let Some(index) = self.slot(id) else {
            return self.side.remove(&id).is_some();
        };
        match &mut self.ring[index] {
            slot @ Some(_) => *slot = None,
            None => return false,
        }
        self.emptied(index);
        true
    }

    /// Slot `index` was just emptied.
    fn emptied(&mut self, index: usize) {
        self.in_ring -= 1;
        if index + 1 == self.ring.len() {
            while let Some(None) = self.ring.back() {
                self.ring.pop_back();
            }
        }
        if index == 0 || self.ring.len() > SLACK + 2 * self.in_ring {
            self.trim();
        }
    }

    /// Drops empty slots at the bottom, and moves old entries to the side tree while
    /// the ring is much longer than what it holds.
    fn trim(&mut self) {
        loop {
            match self.ring.front() {
                Some(None) => {
                    self.ring.pop_front();
                    self.low += 1;
                }
                Some(Some(_)) if self.ring.len() > SLACK + 2 * self.in_ring => {
                    if let Some(Some(value)) = self.ring.pop_front() {
                        self.side.insert(self.low, value);
                        self.in_ring -= 1;
                    }
                    self.low += 1;
                }
                _ => break,
            }
        }
        if self.ring.is_empty() {
            self.low = 0;
        }
    }

    /// Moves every ring entry to the side tree.
    fn spill_all(&mut self) {
        let low = self.low;
        for (offset, slot) in self.ring.drain(..).enumerate() {
            if let Some(value) = slot {
                self.side.insert(low + offset as u64, value);
            }
        }
        self.in_ring = 0;
    }

    /// Every entry, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.ring.iter().flatten().chain(self.side.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random operations against a `BTreeMap`, checking every answer.
    #[test]
    fn behaves_as_a_map() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..50 {
            let mut map = IdMap::default();
            let mut model = BTreeMap::new();
            let mut top = 0u64;
            for step in 0..5_000u64 {
                let op = next() % 10;
                if round % 3 == 2 {
                    // A small id space, so the ring empties and restarts often
                    // while the side tree holds ids around it.
                    let id = next() % 24;
                    match op {
                        0..=4 => {
                            map.insert(id, step);
                            model.insert(id, step);
                        }
                        _ => assert_eq!(map.remove(id), model.remove(&id)),
                    }
                    for id in 0..24 {
                        assert_eq!(map.get(id), model.get(&id), "id {id}");
                    }
                    assert_eq!(map.len(), model.len());
                    continue;
                }
                match op {
                    // Mostly the next ids, as a cursor hands them out.
                    0..=3 => {
                        top += 1 + next() % 3;
                        map.insert(top, step);
                        model.insert(top, step);
                    }
                    // Sometimes far ahead, or an old id again.
                    4 if round % 2 == 0 => {
                        top += 5_000;
                        map.insert(top, step);
                        model.insert(top, step);
                    }
                    4 => {
                        let id = next() % (top + 1);
                        map.insert(id, step);
                        model.insert(id, step);
                    }
                    // Removals, oldest first more often than not.
                    5..=7 => {
                        let id = match model.keys().next() {
                            Some(&low) if next() % 2 == 0 => low,
                            _ => next() % (top + 1),
                        };
                        if next() % 2 == 0 {
                            assert_eq!(map.remove(id), model.remove(&id));
                        } else {
                            assert_eq!(map.delete(id), model.remove(&id).is_some());
                        }
                    }
                    _ => {
                        let id = next() % (top + 2);
                        assert_eq!(map.get(id), model.get(&id));
                        if let Some(value) = map.get_mut(id) {
                            *value += 1;
                            *model.get_mut(&id).unwrap() += 1;
                        }
                    }
                }
                assert_eq!(map.len(), model.len());
                assert!(map.ring.len() <= 2 * SLACK + 4 * map.in_ring + 2);
            }
            let mut all: Vec<_> = map.values().copied().collect();
            let mut expected: Vec<_> = model.values().copied().collect();
            all.sort();
            expected.sort();
            assert_eq!(all, expected);
        }
    }

    /// The ring empties while the side tree holds an id above the next one
    /// inserted: the ring must not start below it and hide it.
    #[test]
    fn a_restarted_ring_does_not_hide_the_side_tree() {
        let mut map = IdMap::default();
        map.insert(9, 9);
        map.insert(8, 8);
        assert_eq!(map.remove(9), Some(9));
        map.insert(7, 7);
        map.insert(10, 10);
        assert_eq!(map.get(8), Some(&8));
        assert_eq!(map.remove(8), Some(8));
        assert_eq!(map.get(7), Some(&7));
        assert_eq!(map.get(10), Some(&10));
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn an_old_entry_does_not_pin_the_ring() {
        // Id 0 waits (delayed) while later ones come and go in order, 128 at a time.
        let mut map = IdMap::default();
        map.insert(0, 0);
        for id in 1..100_000 {
            map.insert(id, id);
            if id > 128 {
                assert_eq!(map.remove(id - 128), Some(id - 128));
            }
        }
        assert_eq!(map.len(), 129);
        assert!(
            map.ring.len() <= SLACK + 2 * 129,
            "ring of {}",
            map.ring.len()
        );
        assert_eq!(map.get(0), Some(&0));
        assert_eq!(map.remove(0), Some(0));
    }
}
