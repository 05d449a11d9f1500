//! What a stage does with an item whose processor failed: [`ErrorPolicy`].

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::lock::Mutex;
use futures_util::{Sink, SinkExt};

use crate::retry::{RetryPolicy, Retryable};
use crate::{BoxError, FlowContext};

/// A failed item on its way to a dead-letter sink: the item, the error, its context,
/// the stage and how many attempts were made.
#[derive(Debug)]
pub struct DeadLetter<In> {
    /// The item as it entered the stage.
    pub item: In,
    /// The last error.
    pub error: BoxError,
    /// The item's context.
    pub ctx: FlowContext,
    /// The stage's name.
    pub stage: Arc<str>,
    /// Attempts made, the first included.
    pub attempts: u32,
}

type DynSink<In> = Pin<Box<dyn Sink<DeadLetter<In>, Error = BoxError> + Send>>;

/// Where dead letters go: any `Sink`, shared by the stage's concurrent items.
pub struct DeadLetterSink<In> {
    sink: Arc<Mutex<DynSink<In>>>,
}

impl<In> Clone for DeadLetterSink<In> {
    fn clone(&self) -> Self {
        DeadLetterSink {
            sink: Arc::clone(&self.sink),
        }
    }
}

impl<In> fmt::Debug for DeadLetterSink<In> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetterSink").finish_non_exhaustive()
    }
}

impl<In: Send + 'static> DeadLetterSink<In> {
    /// Wraps `sink`; its errors become the stage's (the item then fails the stage).
    pub fn new<S, E>(sink: S) -> Self
    where
        S: Sink<DeadLetter<In>, Error = E> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let sink: DynSink<In> = Box::pin(sink.sink_map_err(Into::into));
        DeadLetterSink {
            sink: Arc::new(Mutex::new(sink)),
        }
    }

    pub(crate) async fn send(&self, letter: DeadLetter<In>) -> Result<(), BoxError> {
        self.sink.lock().await.send(letter).await
    }
}

/// What a stage does when its processor returns an error (or panics) for an item.
///
/// Built by its constructors: [`skip`](Self::skip), [`retry`](Self::retry) (with
/// [`when`](Self::when) to choose which errors are retried),
/// [`dead_letter`](Self::dead_letter) and [`fail`](Self::fail). Policies chain: a retry
/// that runs out of attempts, or meets an error it must not retry, falls through to the
/// policy it was given. The default is [`fail`](Self::fail): nothing is dropped unless
/// a policy says so.
///
/// ```
/// use std::time::Duration;
/// use futures::channel::mpsc;
/// use riverbed::pipeline::{DeadLetter, DeadLetterSink, ErrorPolicy};
/// use riverbed::resilience::RetryPolicy;
///
/// let (dead, _dead_rx) = mpsc::channel::<DeadLetter<String>>(16);
/// let policy: ErrorPolicy<String> = ErrorPolicy::retry(
///     RetryPolicy::exponential(Duration::from_millis(10)),
///     ErrorPolicy::dead_letter(DeadLetterSink::new(dead)),
/// )
/// // A malformed record will not parse on the next attempt either.
/// .when(|error| !error.is::<std::num::ParseIntError>());
/// # let _ = policy;
/// ```
pub struct ErrorPolicy<In> {
    pub(crate) kind: PolicyKind<In>,
}

/// The policies, as the stage runs them.
pub(crate) enum PolicyKind<In> {
    Skip,
    Retry {
        policy: RetryPolicy,
        retryable: Option<Retryable>,
        then: Box<ErrorPolicy<In>>,
        /// Copies the item for each attempt.
        copy: fn(&In) -> In,
    },
    DeadLetter {
        sink: DeadLetterSink<In>,
        /// Copies the item before the processor consumes it.
        copy: fn(&In) -> In,
    },
    Fail,
}

impl<In> ErrorPolicy<In> {
    /// Drop the item and count it as skipped.
    pub fn skip() -> Self {
        ErrorPolicy {
            kind: PolicyKind::Skip,
        }
    }

    /// Stop the stage: the error comes out of its stream, which then ends. The default.
    pub fn fail() -> Self {
        ErrorPolicy {
            kind: PolicyKind::Fail,
        }
    }

    /// For a [`retry`](Self::retry) policy: retry only the errors for which
    /// `retryable` returns `true`; any other error goes straight to the next policy,
    /// as the [`Retry`](crate::resilience::Retry) layer's `when` does. On the other
    /// policies it changes nothing.
    pub fn when<F>(mut self, retryable: F) -> Self
    where
        F: Fn(&BoxError) -> bool + Send + Sync + 'static,
    {
        if let PolicyKind::Retry {
            retryable: slot, ..
        } = &mut self.kind
        {
            *slot = Some(Arc::new(retryable));
        }
        self
    }

    /// Whether this policy drops the item (and counts it as skipped).
    pub fn is_skip(&self) -> bool {
        matches!(self.kind, PolicyKind::Skip)
    }

    /// Whether this policy fails the stage.
    pub fn is_fail(&self) -> bool {
        matches!(self.kind, PolicyKind::Fail)
    }

    /// Whether the stage must keep a copy of each item while it is processed.
    pub(crate) fn copier(&self) -> Option<fn(&In) -> In> {
        match &self.kind {
            PolicyKind::Skip | PolicyKind::Fail => None,
            PolicyKind::Retry { copy, .. } | PolicyKind::DeadLetter { copy, .. } => Some(*copy),
        }
    }
}

impl<In: Clone> ErrorPolicy<In> {
    /// Run the processor again on a copy of the item, after `policy`'s delays (on the
    /// stage's runtime; back to back without one), up to its attempts; then apply
    /// `then`, with the item.
    pub fn retry(policy: RetryPolicy, then: ErrorPolicy<In>) -> Self {
        ErrorPolicy {
            kind: PolicyKind::Retry {
                policy,
                retryable: None,
                then: Box::new(then),
                copy: In::clone,
            },
        }
    }

    /// Send the item (as it entered the stage), the error, its context, the stage's
    /// name and the attempt count to `sink` as a [`DeadLetter`], count it as
    /// dead-lettered, and go on. A failing sink fails the stage.
    pub fn dead_letter(sink: DeadLetterSink<In>) -> Self {
        ErrorPolicy {
            kind: PolicyKind::DeadLetter {
                sink,
                copy: In::clone,
            },
        }
    }
}

impl<In> Default for ErrorPolicy<In> {
    fn default() -> Self {
        Self::fail()
    }
}

impl<In> fmt::Debug for ErrorPolicy<In> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            PolicyKind::Skip => f.write_str("Skip"),
            PolicyKind::Retry {
                policy,
                retryable,
                then,
                ..
            } => f
                .debug_struct("Retry")
                .field("policy", policy)
                .field("when", &retryable.as_ref().map(|_| "predicate"))
                .field("then", then)
                .finish(),
            PolicyKind::DeadLetter { .. } => f.write_str("DeadLetter"),
            PolicyKind::Fail => f.write_str("Fail"),
        }
    }
}
