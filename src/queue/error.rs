//! The queue's errors.

use super::backend::BackendError;
use super::codec::CodecError;

/// Why a [`send`](super::MessageQueue::send) failed; the message is handed back when
/// it can be.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError<M> {
    /// The message could not be encoded.
    #[error("could not encode the message: {1}")]
    Encode(M, #[source] CodecError),
    /// The backend refused or failed; the message may not have been stored.
    #[error("could not send the message: {0}")]
    Backend(#[source] BackendError),
}

impl<M> SendError<M> {
    /// The message, if it was handed back.
    pub fn into_inner(self) -> Option<M> {
        match self {
            SendError::Encode(message, _) => Some(message),
            SendError::Backend(_) => None,
        }
    }
}

/// An operation of the queue other than sending failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The backend failed.
    #[error("{0}")]
    Backend(#[from] BackendError),
    /// A message could not be encoded.
    #[error("{0}")]
    Codec(#[from] CodecError),
    /// A consumer's worker task ended without finishing its loop (its task panicked
    /// outside a handler, or the runtime dropped it): what the runtime said.
    #[error("a consumer's worker task failed: {0}")]
    Worker(String),
    /// An answer (`ack`, `nack`, `retry`, `reject`) came after delivery `attempt` of
    /// message `id` had lost its lease: its lease ran out and the message was
    /// delivered again (or went back when due), or it was answered already. The
    /// answer changed nothing (it never answers for another delivery) and is not
    /// counted as given. A delivery whose lease ran out while nobody took the
    /// message over yet still answers for itself.
    #[error(
        "message {id}: delivery {attempt} lost its lease before this answer, which changed nothing"
    )]
    LateAnswer {
        /// The message's id.
        id: u64,
        /// The delivery the answer was for.
        attempt: u32,
    },
}
