//! What a stage does with an item whose processor failed: [`ErrorPolicy`].

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::lock::Mutex;
use futures_util::{Sink, SinkExt};

use crate::retry::RetryPolicy;
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
/// Policies chain: a [`retry`](Self::retry) that runs out of attempts falls through to
/// the policy it was given. The default is [`Fail`](Self::Fail): nothing is dropped
/// unless a policy says so.
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
/// );
/// # let _ = policy;
/// ```
#[derive(Default)]
pub enum ErrorPolicy<In> {
    /// Drop the item and count it as skipped.
    Skip,
    /// Run the processor again, after the policy's delays (on the stage's runtime), up
    /// to its attempts; then apply `then`.
    Retry {
        /// Delays and attempts.
        policy: RetryPolicy,
        /// What to do once the attempts are used up.
        then: Box<ErrorPolicy<In>>,
        /// Copies the item for each attempt (set by [`ErrorPolicy::retry`]).
        copy: fn(&In) -> In,
    },
    /// Send the item, the error, the context, the stage's name and the attempt count
    /// to a sink, and go on.
    DeadLetter {
        /// Where the dead letters go.
        sink: DeadLetterSink<In>,
        /// Copies the item before the processor consumes it (set by
        /// [`ErrorPolicy::dead_letter`]).
        copy: fn(&In) -> In,
    },
    /// Stop the stage: the error comes out of its stream, which then ends.
    #[default]
    Fail,
}

impl<In: Clone> ErrorPolicy<In> {
    /// Retry per `policy`, then apply `then`.
    pub fn retry(policy: RetryPolicy, then: ErrorPolicy<In>) -> Self {
        ErrorPolicy::Retry {
            policy,
            then: Box::new(then),
            copy: In::clone,
        }
    }

    /// Send failed items to `sink`.
    pub fn dead_letter(sink: DeadLetterSink<In>) -> Self {
        ErrorPolicy::DeadLetter {
            sink,
            copy: In::clone,
        }
    }
}

impl<In> ErrorPolicy<In> {
    /// Whether the stage must keep a copy of each item while it is processed.
    pub(crate) fn copier(&self) -> Option<fn(&In) -> In> {
        match self {
            ErrorPolicy::Skip | ErrorPolicy::Fail => None,
            ErrorPolicy::Retry { copy, .. } | ErrorPolicy::DeadLetter { copy, .. } => Some(*copy),
        }
    }
}

impl<In> fmt::Debug for ErrorPolicy<In> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorPolicy::Skip => f.write_str("Skip"),
            ErrorPolicy::Retry { policy, then, .. } => f
                .debug_struct("Retry")
                .field("policy", policy)
                .field("then", then)
                .finish(),
            ErrorPolicy::DeadLetter { .. } => f.write_str("DeadLetter"),
            ErrorPolicy::Fail => f.write_str("Fail"),
        }
    }
}
