//! [`StageError`]: the error that stops a pipeline.

use std::fmt;
use std::sync::Arc;

use crate::{BoxError, FlowContext};

/// An item's error that stopped a stage (its policy was, or fell through to, `Fail`).
///
/// It comes out of the stage's stream, and of every stage after it, in place of an
/// item; the streams end after it.
///
/// The parts sit behind one box, so a pipeline's items (`Result<(T, FlowContext),
/// StageError>`) stay as small as the value and its context: the error path pays one
/// allocation, the item path nothing.
pub struct StageError {
    inner: Box<Inner>,
}

#[derive(Debug)]
struct Inner {
    stage: Arc<str>,
    error: BoxError,
    ctx: FlowContext,
    attempts: u32,
}

impl StageError {
    /// The error of stage `stage` for the item with context `ctx`, after `attempts`
    /// attempts (the first included).
    pub fn new(stage: Arc<str>, error: BoxError, ctx: FlowContext, attempts: u32) -> Self {
        StageError {
            inner: Box::new(Inner {
                stage,
                error,
                ctx,
                attempts,
            }),
        }
    }

    /// The stage's name.
    pub fn stage(&self) -> &str {
        &self.inner.stage
    }

    /// The processor's error (a [`ProcessorPanicked`](super::ProcessorPanicked) for a
    /// panic), or the dead-letter sink's; `downcast_ref` it to the concrete type.
    pub fn error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.inner.error
    }

    /// The failed item's context.
    pub fn ctx(&self) -> &FlowContext {
        &self.inner.ctx
    }

    /// Attempts made, the first included.
    pub fn attempts(&self) -> u32 {
        self.inner.attempts
    }

    /// The processor's (or the dead-letter sink's) error, owned.
    pub fn into_error(self) -> BoxError {
        self.inner.error
    }

    /// All the parts: stage name, error, context and attempts.
    pub fn into_parts(self) -> (Arc<str>, BoxError, FlowContext, u32) {
        let Inner {
            stage,
            error,
            ctx,
            attempts,
        } = *self.inner;
        (stage, error, ctx, attempts)
    }
}

impl fmt::Debug for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageError")
            .field("stage", &self.inner.stage)
            .field("error", &self.inner.error)
            .field("ctx", &self.inner.ctx)
            .field("attempts", &self.inner.attempts)
            .finish()
    }
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attempts = self.inner.attempts;
        write!(
            f,
            "stage {:?} failed after {} attempt{}: {}",
            self.inner.stage,
            attempts,
            if attempts == 1 { "" } else { "s" },
            self.inner.error
        )
    }
}

impl std::error::Error for StageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.inner.error)
    }
}
