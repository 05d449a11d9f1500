//! [`StageError`]: the error that stops a pipeline.

use std::fmt;
use std::sync::Arc;

use crate::{BoxError, FlowContext};

/// An item's error that stopped a stage (its policy was, or fell through to, `Fail`).
///
/// It comes out of the stage's stream, and of every stage after it, in place of an
/// item; the streams end after it.
#[derive(Debug)]
pub struct StageError {
    /// The stage's name.
    pub stage: Arc<str>,
    /// The processor's error (a [`ProcessorPanicked`](super::ProcessorPanicked) for a
    /// panic), or the dead-letter sink's.
    pub error: BoxError,
    /// The failed item's context.
    pub ctx: FlowContext,
    /// Attempts made, the first included.
    pub attempts: u32,
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stage {:?} failed after {} attempt{}: {}",
            self.stage,
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            self.error
        )
    }
}

impl std::error::Error for StageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.error.as_ref())
    }
}
