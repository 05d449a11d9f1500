//! Per-kind publish counts, kept under the bus's registry lock.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::{Item, Kind, KindCount};
use crate::broadcast::Ledger;

/// A small, fast, non-cryptographic hasher (the multiply-rotate scheme rustc uses).
/// Kinds are chosen by the program, not by untrusted input, so HashDoS resistance is
/// not needed on this map.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub(crate) struct KindLedger<K> {
    counts: HashMap<K, u64, BuildHasherDefault<FxHasher>>,
}

impl<K> Default for KindLedger<K> {
    fn default() -> Self {
        KindLedger {
            counts: HashMap::default(),
        }
    }
}

impl<P: Clone + Send + Sync + 'static, K: Kind> Ledger<Item<P, K>> for KindLedger<K> {
    fn record(&mut self, item: &Item<P, K>) {
        match self.counts.get_mut(&item.kind) {
            Some(count) => *count += 1,
            None => {
                self.counts.insert(item.kind.clone(), 1);
            }
        }
    }
}

impl<K: Kind> KindLedger<K> {
    pub(crate) fn snapshot(&self) -> Vec<KindCount<K>> {
        let mut out: Vec<KindCount<K>> = self
            .counts
            .iter()
            .map(|(kind, &count)| KindCount {
                kind: kind.clone(),
                count,
            })
            .collect();
        // Most frequent first; ties in a stable order (by the kind's `Debug` text, formatted
        // once per kind).
        out.sort_by_cached_key(|k| (std::cmp::Reverse(k.count), format!("{:?}", k.kind)));
        out
    }
}
