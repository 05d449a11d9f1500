//! [`Payload`]: an encoded message as a backend holds it.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest payload kept inline, without an allocation of its own.
pub const INLINE_PAYLOAD: usize = 22;

/// An encoded message: its bytes, shared by every consumer group that has to see it.
///
/// A payload of up to [`INLINE_PAYLOAD`] bytes (a number, a small struct in the
/// compact codec) lives inside the value, so sending and dropping it allocates
/// nothing; a larger one is shared behind an `Arc`, so copies for several groups
/// cost a reference count, not the bytes. Either way it reads as a `&[u8]`.
///
/// ```
/// use riverbed::queue::backend::Payload;
///
/// let small = Payload::from(&b"42"[..]);
/// let large = Payload::from(vec![7u8; 100]);
/// assert_eq!(&*small, b"42");
/// assert_eq!(large.len(), 100);
/// assert_eq!(large.clone(), large);
/// ```
#[derive(Clone)]
pub struct Payload(Repr);

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        bytes: [u8; INLINE_PAYLOAD],
    },
    Shared(Arc<[u8]>),
}

impl Payload {
    /// A payload of the first `len` of `bytes` (all of them if `len` is larger).
    pub(crate) fn inline(bytes: [u8; INLINE_PAYLOAD], len: usize) -> Self {
        let len = u8::try_from(len.min(INLINE_PAYLOAD)).unwrap_or(0);
        Payload(Repr::Inline { len, bytes })
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared(bytes) => bytes,
        }
    }
}

impl Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl From<&[u8]> for Payload {
    fn from(slice: &[u8]) -> Self {
        match u8::try_from(slice.len()) {
            Ok(len) if slice.len() <= INLINE_PAYLOAD => {
                let mut bytes = [0; INLINE_PAYLOAD];
                bytes[..slice.len()].copy_from_slice(slice);
                Payload(Repr::Inline { len, bytes })
            }
            _ => Payload(Repr::Shared(Arc::from(slice))),
        }
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        if bytes.len() <= INLINE_PAYLOAD {
            Payload::from(bytes.as_slice())
        } else {
            Payload(Repr::Shared(Arc::from(bytes)))
        }
    }
}

impl From<Arc<[u8]>> for Payload {
    fn from(bytes: Arc<[u8]>) -> Self {
        Payload(Repr::Shared(bytes))
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Payload {}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Payload").field(&self.as_bytes()).finish()
    }
}

/// Serialized as a sequence of bytes, as a `Vec<u8>` or `Arc<[u8]>` is.
impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_bytes().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(deserializer).map(Payload::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_payloads_are_inline_and_large_ones_shared() {
        for len in [
            0,
            1,
            INLINE_PAYLOAD - 1,
            INLINE_PAYLOAD,
            INLINE_PAYLOAD + 1,
            1000,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let from_vec = Payload::from(bytes.clone());
            let from_slice = Payload::from(bytes.as_slice());
            assert_eq!(&*from_vec, bytes.as_slice());
            assert_eq!(from_vec, from_slice);
            let inline = matches!(from_vec.0, Repr::Inline { .. });
            assert_eq!(inline, len <= INLINE_PAYLOAD, "len {len}");
        }
    }

    #[test]
    fn serializes_as_the_byte_sequence_it_replaces() {
        let bytes: Vec<u8> = vec![1, 2, 3, 200];
        let shared: Arc<[u8]> = Arc::from(bytes.clone());
        let payload = Payload::from(bytes);
        let encoded = postcard::to_stdvec(&payload).unwrap();
        assert_eq!(encoded, postcard::to_stdvec(&shared).unwrap());
        let back: Payload = postcard::from_bytes(&encoded).unwrap();
        assert_eq!(back, payload);
    }
}
