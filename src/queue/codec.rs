//! [`Codec`]: how a queue turns messages into bytes for its backend, and back.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::payload::{INLINE_PAYLOAD, Payload};

/// Turns messages into bytes and back. One codec layer serves every backend: they all
/// store bytes.
///
/// [`Postcard`] (compact binary, the default) and `Json` (readable, for debugging;
/// feature `json`) are provided; implement the trait for any other format.
pub trait Codec: Send + Sync + fmt::Debug + 'static {
    /// Encodes `message`.
    fn encode<M: Serialize>(&self, message: &M) -> Result<Vec<u8>, CodecError>;

    /// Encodes `message` into the [`Payload`] a backend stores. The default wraps
    /// [`encode`](Self::encode); a codec can write small messages straight into the
    /// payload's inline bytes, with no allocation.
    fn encode_payload<M: Serialize>(&self, message: &M) -> Result<Payload, CodecError> {
        self.encode(message).map(Payload::from)
    }

    /// Decodes a message; a payload that does not decode is an error (the queue sends
    /// it to dead letters), never a panic.
    fn decode<M: DeserializeOwned>(&self, bytes: &[u8]) -> Result<M, CodecError>;
}

/// A message could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{codec} codec: {message}")]
pub struct CodecError {
    /// The codec's name.
    pub codec: &'static str,
    /// What went wrong, as the format library said it.
    pub message: String,
}

/// Compact binary encoding with [`postcard`]: varint integers, no field names. The
/// default. Messages must be decoded with the same type they were encoded with (add
/// fields only at the end, as `Option`s with `#[serde(default)]`, to evolve one).
///
/// ```
/// use riverbed::queue::{Codec, Postcard};
///
/// let bytes = Postcard.encode(&(7u32, "seven")).unwrap();
/// assert_eq!(bytes.len(), 7);
/// let back: (u32, String) = Postcard.decode(&bytes).unwrap();
/// assert_eq!(back, (7, "seven".to_string()));
/// assert!(Postcard.decode::<(u32, String)>(&[0xff]).is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Postcard;

impl Codec for Postcard {
    fn encode<M: Serialize>(&self, message: &M) -> Result<Vec<u8>, CodecError> {
        postcard::to_stdvec(message).map_err(|e| CodecError {
            codec: "postcard",
            message: e.to_string(),
        })
    }

    fn encode_payload<M: Serialize>(&self, message: &M) -> Result<Payload, CodecError> {
        let mut inline = [0u8; INLINE_PAYLOAD];
        match postcard::to_slice(message, &mut inline).map(|bytes| bytes.len()) {
            Ok(len) => Ok(Payload::inline(inline, len)),
            Err(postcard::Error::SerializeBufferFull) => self.encode(message).map(Payload::from),
            Err(e) => Err(CodecError {
                codec: "postcard",
                message: e.to_string(),
            }),
        }
    }

    fn decode<M: DeserializeOwned>(&self, bytes: &[u8]) -> Result<M, CodecError> {
        postcard::from_bytes(bytes).map_err(|e| CodecError {
            codec: "postcard",
            message: e.to_string(),
        })
    }
}

/// JSON with `serde_json` (feature `json`): larger and slower than [`Postcard`], but a person can read
/// what the backend holds, and fields may be added or reordered freely.
///
/// ```
/// use riverbed::queue::{Codec, Json};
///
/// let bytes = Json.encode(&("signup", 42)).unwrap();
/// assert_eq!(bytes, br#"["signup",42]"#);
/// ```
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json;

#[cfg(feature = "json")]
impl Codec for Json {
    fn encode<M: Serialize>(&self, message: &M) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(message).map_err(|e| CodecError {
            codec: "json",
            message: e.to_string(),
        })
    }

    fn decode<M: DeserializeOwned>(&self, bytes: &[u8]) -> Result<M, CodecError> {
        serde_json::from_slice(bytes).map_err(|e| CodecError {
            codec: "json",
            message: e.to_string(),
        })
    }
}
