//! Unique identifiers for flows and events, without a `uuid` dependency.
//!
//! [`new_id`] returns a fresh 128-bit identifier formatted like a UUID
//! (`8-4-4-4-12` lowercase hex digits), for example
//! `"3f2b8c1e-9a4d-4e07-b5c1-0d9e7f6a2b13"`. The bits follow the layout of a random
//! (version 4, RFC 9562 variant) UUID, so systems that validate UUIDs accept them.
//!
//! # Uniqueness
//!
//! * **Within a process**, identifiers never repeat (until 2^62 have been issued): the
//!   low 62 bits are a bijective mix of an atomic counter.
//! * **Across processes**, the other 60 free bits are a per-process random seed drawn
//!   once from the standard library's hash randomness ([`RandomState`], seeded by the
//!   OS), so two processes collide only if their seeds do (about one chance in 2^60).
//!
//! Identifiers are unpredictable enough to tell flows apart, not to serve as secrets:
//! do not use them as tokens.
//!
//! # Example
//!
//! ```
//! use riverbed::id::{format_uuid, new_id};
//!
//! let a = new_id();
//! let b = new_id();
//! assert_ne!(a, b);
//! assert_eq!(a.len(), 36);
//! assert_eq!(&a[14..15], "4"); // version nibble
//!
//! assert_eq!(
//!     format_uuid(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
//!     "01234567-89ab-cdef-0011-223344556677"
//! );
//! ```

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Low 62 bits.
const LOW_MASK: u64 = (1 << 62) - 1;

/// The per-process seed: the high half (with version bits applied) and a counter offset.
fn seed() -> (u64, u64) {
    static SEED: OnceLock<(u64, u64)> = OnceLock::new();
    *SEED.get_or_init(|| {
        let random = |salt: u64| {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u64(salt);
            hasher.write_u32(std::process::id());
            if let Ok(since_epoch) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
                hasher.write_u128(since_epoch.as_nanos());
            }
            hasher.finish()
        };
        // Version 4 in bits 12..16 of the high half.
        let high = (random(1) & !0xf000) | 0x4000;
        (high, random(2))
    })
}

/// A bijection on 62-bit values (xor-shifts and odd multipliers modulo 2^62), so
/// distinct counters give distinct, well-scrambled outputs.
fn mix62(mut x: u64) -> u64 {
    x &= LOW_MASK;
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9) & LOW_MASK;
    x ^= x >> 29;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb) & LOW_MASK;
    x ^ (x >> 32)
}

/// The next process-unique 128-bit identifier, laid out as a version-4 UUID.
pub(crate) fn next_id_u128() -> u128 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (high, offset) = seed();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Variant `10` in the top two bits of the low half.
    let low = (0b10 << 62) | mix62(n.wrapping_add(offset));
    (u128::from(high) << 64) | u128::from(low)
}

/// A fresh unique identifier formatted like a UUID; see the [module docs](self).
///
/// ```
/// let id = riverbed::id::new_id();
/// assert_eq!(id.len(), 36);
/// assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
/// ```
pub fn new_id() -> String {
    format_uuid(next_id_u128())
}

/// Formats a 128-bit value as a UUID-shaped string: 32 lowercase hex digits, most
/// significant first, grouped `8-4-4-4-12`.
///
/// ```
/// assert_eq!(
///     riverbed::id::format_uuid(1),
///     "00000000-0000-0000-0000-000000000001"
/// );
/// ```
pub fn format_uuid(id: u128) -> String {
    let mut text = String::with_capacity(36);
    // Writing into a String cannot fail.
    let _ = write_uuid(&mut text, id);
    text
}

/// Writes `id` UUID-shaped (`8-4-4-4-12` lowercase hex digits); shared by
/// [`format_uuid`] and the `Display` of ids such as `EventId`.
pub(crate) fn write_uuid(out: &mut impl std::fmt::Write, id: u128) -> std::fmt::Result {
    write!(
        out,
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        id >> 96,
        (id >> 80) & 0xffff,
        (id >> 64) & 0xffff,
        (id >> 48) & 0xffff,
        id & 0xffff_ffff_ffff,
    )
}

/// 64 bits unique within the process and unlikely to repeat across processes: the
/// seed for anything that needs to tell instances apart (an event bus's id prefix, a
/// backoff's jitter).
pub(crate) fn unique_u64() -> u64 {
    // The low half of an id: a scrambled counter with a per-process random offset.
    next_id_u128() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_across_threads() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..10_000).map(|_| next_id_u128()).collect::<Vec<_>>()))
            .collect();
        let mut seen = HashSet::new();
        for handle in handles {
            for id in handle.join().unwrap() {
                assert!(seen.insert(id), "duplicate id {}", format_uuid(id));
            }
        }
        assert_eq!(seen.len(), 40_000);
    }

    #[test]
    fn ids_have_uuid_v4_layout() {
        for _ in 0..100 {
            let id = next_id_u128();
            assert_eq!((id >> 76) & 0xf, 4, "version");
            assert_eq!((id >> 62) & 0b11, 0b10, "variant");
            let text = format_uuid(id);
            let groups: Vec<_> = text.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12]);
            assert_eq!(
                u128::from_str_radix(&text.replace('-', ""), 16).unwrap(),
                id
            );
        }
    }

    #[test]
    fn mix62_is_injective_on_a_sample() {
        let outputs: HashSet<_> = (0..100_000u64).map(mix62).collect();
        assert_eq!(outputs.len(), 100_000);
        assert!(outputs.iter().all(|&x| x <= LOW_MASK));
    }

    #[test]
    fn format_extremes() {
        assert_eq!(format_uuid(0), "00000000-0000-0000-0000-000000000000");
        assert_eq!(
            format_uuid(u128::MAX),
            "ffffffff-ffff-ffff-ffff-ffffffffffff"
        );
    }
}
