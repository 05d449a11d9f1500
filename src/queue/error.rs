//! The queue's errors.

use std::fmt;

use super::backend::BackendError;
use super::codec::CodecError;

/// Why a [`send`](super::MessageQueue::send) failed; the message is handed back when
/// it can be.
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError<M> {
    /// The message could not be encoded.
    Encode(M, CodecError),
    /// The backend refused or failed; the message may not have been stored.
    Backend(BackendError),
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

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Encode(_, error) => write!(f, "could not encode the message: {error}"),
            SendError::Backend(error) => write!(f, "could not send the message: {error}"),
        }
    }
}

impl<M: fmt::Debug> std::error::Error for SendError<M> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Encode(_, error) => Some(error),
            SendError::Backend(error) => Some(error),
        }
    }
}

/// An operation of the queue other than sending failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueError {
    /// The backend failed.
    Backend(BackendError),
    /// A message could not be encoded.
    Codec(CodecError),
    /// A consumer's worker task ended without finishing its loop (its task panicked
    /// outside a handler, or the runtime dropped it): what the runtime said.
    Worker(String),
    /// An answer (`ack`, `nack`, `retry`, `reject`) came after delivery `attempt` of
    /// message `id` had lost its lease: its lease ran out and the message was
    /// delivered again (or went back when due), or it was answered already. The
    /// answer changed nothing (it never answers for another delivery) and is not
    /// counted as given. A delivery whose lease ran out while nobody took the
    /// message over yet still answers for itself.
    LateAnswer {
        /// The message's id.
        id: u64,
        /// The delivery the answer was for.
        attempt: u32,
    },
}

impl From<BackendError> for QueueError {
    fn from(error: BackendError) -> Self {
        QueueError::Backend(error)
    }
}

impl From<CodecError> for QueueError {
    fn from(error: CodecError) -> Self {
        QueueError::Codec(error)
    }
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::Backend(error) => error.fmt(f),
            QueueError::Codec(error) => error.fmt(f),
            QueueError::Worker(why) => write!(f, "a consumer's worker task failed: {why}"),
            QueueError::LateAnswer { id, attempt } => write!(
                f,
                "message {id}: delivery {attempt} lost its lease before this answer, which changed nothing"
            ),
        }
    }
}

impl std::error::Error for QueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueueError::Backend(error) => Some(error),
            QueueError::Codec(error) => Some(error),
            QueueError::Worker(_) | QueueError::LateAnswer { .. } => None,
        }
    }
}
