//! [`FlowReport`]: how a flow ended, and what it did.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::FlowStats;

/// How a flow ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowEnd<E> {
    /// Its source ended (the bus closed, the stream completed, the pipeline's input
    /// ended) and everything taken from it was handled.
    Finished,
    /// It was stopped through its [`StopHandle`](super::StopHandle).
    Stopped,
    /// It failed: the source failed (a reactive stream's error, a queue backend's
    /// failure, a pipeline stage's `Fail` policy).
    Failed(E),
}

/// What a flow's future resolves to: how it ended, and its statistics at the end.
///
/// `E` is the flow's own error type ([`Infallible`](std::convert::Infallible) for a bus handler flow, which
/// cannot fail); the object-safe [`Flow`](super::Flow) reports a [`FlowError`].
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a report says whether the flow failed"]
pub struct FlowReport<E = FlowError> {
    /// How it ended.
    pub end: FlowEnd<E>,
    /// What it did, read once it ended (`in_flight` is then 0).
    pub stats: FlowStats,
}

impl<E> FlowReport<E> {
    /// Whether the flow's source ended.
    pub fn is_finished(&self) -> bool {
        matches!(self.end, FlowEnd::Finished)
    }

    /// Whether the flow was stopped.
    pub fn is_stopped(&self) -> bool {
        matches!(self.end, FlowEnd::Stopped)
    }

    /// The error the flow failed with, if it failed.
    pub fn error(&self) -> Option<&E> {
        match &self.end {
            FlowEnd::Failed(error) => Some(error),
            _ => None,
        }
    }

    /// `Ok` with the statistics if the flow finished or was stopped, its error if it
    /// failed.
    pub fn into_result(self) -> Result<FlowStats, E> {
        match self.end {
            FlowEnd::Finished | FlowEnd::Stopped => Ok(self.stats),
            FlowEnd::Failed(error) => Err(error),
        }
    }

    /// The same report with the error mapped.
    pub fn map_err<F>(self, f: impl FnOnce(E) -> F) -> FlowReport<F> {
        FlowReport {
            end: match self.end {
                FlowEnd::Finished => FlowEnd::Finished,
                FlowEnd::Stopped => FlowEnd::Stopped,
                FlowEnd::Failed(error) => FlowEnd::Failed(f(error)),
            },
            stats: self.stats,
        }
    }
}

/// The error of a flow behind the object-safe [`Flow`](super::Flow): its message,
/// and the error itself where it is a standard error (reach it with
/// [`source`](Error::source) and downcast it). Cheap to clone; serialises as its
/// message.
#[derive(Clone)]
pub struct FlowError {
    message: String,
    cause: Option<Arc<dyn Error + Send + Sync + 'static>>,
}

impl FlowError {
    /// An error from a standard error, kept as the source.
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        FlowError {
            message: error.to_string(),
            cause: Some(Arc::new(error)),
        }
    }

    /// An error from a message alone (for error types that are not standard errors).
    pub fn msg(message: impl fmt::Display) -> Self {
        FlowError {
            message: message.to_string(),
            cause: None,
        }
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The original error, if it is an `E`.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.cause.as_deref()?.downcast_ref()
    }
}

impl fmt::Debug for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowError")
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for FlowError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

impl PartialEq for FlowError {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Serialize for FlowError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.message)
    }
}

impl<'de> Deserialize<'de> for FlowError {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(FlowError::msg)
    }
}
