//! [`Retry`]: runs a processor again when it fails, waiting between attempts as a
//! [`RetryPolicy`] says.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::processor::{Outcome, Processor};
use crate::retry::{RetryNext, RetryPolicy, Retryable, Retrying};
use crate::runtime::SharedRuntime;
use crate::stats::Counter;
use crate::{BoxError, FlowContext};

/// The error of a [`Retry`] whose attempts all failed: how many were made, and the
/// last attempt's error as [`source`](Self::source).
#[derive(Debug, thiserror::Error)]
#[error("failed after {attempts} attempts: {source}")]
pub struct RetriesExhausted {
    /// Attempts made, the first included.
    pub attempts: u32,
    /// The error of the last attempt.
    pub source: BoxError,
}

/// Runs the inner processor again on `Err`, as a [`RetryPolicy`] says, sleeping on the
/// runtime between attempts; from [`ProcessorExt::retry`](super::ProcessorExt::retry).
///
/// `Ok(Some(_))` and `Ok(None)` are final: only errors are retried. Each attempt gets a
/// clone of the item and the same context. When no attempt is left, the last error
/// comes back wrapped in [`RetriesExhausted`].
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use riverbed::FlowContext;
/// use riverbed::pipeline::Processor;
/// use riverbed::resilience::{Jitter, ProcessorExt, RetriesExhausted, RetryPolicy};
/// use riverbed::runtime::{Runtime, SharedRuntime, VirtualRuntime};
///
/// let clock = VirtualRuntime::new();
/// let rt: SharedRuntime = Arc::new(clock.clone());
/// let calls = Arc::new(AtomicU32::new(0));
/// let flaky = {
///     let calls = calls.clone();
///     move |n: u32, _ctx: FlowContext| {
///         let call = calls.fetch_add(1, Ordering::SeqCst);
///         async move {
///             if call < 2 { Err("not yet") } else { Ok(Some(n + 1)) }
///         }
///     }
/// };
/// let policy = RetryPolicy::exponential(Duration::from_millis(100))
///     .max_attempts(3)
///     .jitter(Jitter::None);
/// let retrying = flaky.retry(policy, &rt);
///
/// clock.block_on(async {
///     let start = rt.now();
///     let out = retrying.process(41, &FlowContext::new()).await.unwrap();
///     assert_eq!(out, Some(42));
///     // Slept 100 ms, then 200 ms, on the virtual clock.
///     assert_eq!(rt.now() - start, Duration::from_millis(300));
///     assert_eq!(retrying.retries(), 2);
///
///     // A processor that never succeeds: three attempts, then the last error, wrapped.
///     let always_failing = (|_: u32, _: FlowContext| async { Err::<Option<u32>, _>("down") })
///         .retry(RetryPolicy::constant(Duration::from_millis(10)), &rt);
///     let err = always_failing.process(1, &FlowContext::new()).await.unwrap_err();
///     let exhausted = err.downcast_ref::<RetriesExhausted>().unwrap();
///     assert_eq!(exhausted.attempts, 3);
///     assert_eq!(exhausted.source.to_string(), "down");
/// });
/// ```
pub struct Retry<P> {
    inner: Arc<P>,
    policy: RetryPolicy,
    rt: SharedRuntime,
    retries: Arc<Counter>,
    retryable: Option<Retryable>,
}

impl<P> Retry<P> {
    /// Wraps `inner`: failed calls are retried per `policy`, sleeping on `rt`.
    pub fn new(inner: P, policy: RetryPolicy, rt: SharedRuntime) -> Self {
        Retry {
            inner: Arc::new(inner),
            policy,
            rt,
            retries: Arc::new(Counter::new()),
            retryable: None,
        }
    }

    /// Retries only the errors `retryable` accepts; any other error is returned at
    /// once, as it is (not wrapped). By default every error is retried.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use riverbed::FlowContext;
    /// use riverbed::pipeline::Processor;
    /// use riverbed::resilience::{BreakerConfig, CircuitOpen, ProcessorExt, RetryPolicy};
    /// use riverbed::runtime::{SharedRuntime, VirtualRuntime};
    ///
    /// let clock = VirtualRuntime::new();
    /// let rt: SharedRuntime = Arc::new(clock.clone());
    /// let down = |_: u32, _: FlowContext| async { Err::<Option<u32>, _>("down") };
    /// let guarded = down
    ///     .circuit_breaker(BreakerConfig::default().consecutive_failures(1), &rt)
    ///     .retry(RetryPolicy::constant(Duration::from_millis(10)), &rt)
    ///     // Waiting 10 ms will not close an open breaker: give up at once.
    ///     .when(|error| !error.is::<CircuitOpen>());
    ///
    /// clock.block_on(async {
    ///     let err = guarded.process(1, &FlowContext::new()).await.unwrap_err();
    ///     assert!(err.is::<CircuitOpen>());
    ///     assert_eq!(guarded.retries(), 1);
    /// });
    /// ```
    pub fn when<F>(mut self, retryable: F) -> Self
    where
        F: Fn(&BoxError) -> bool + Send + Sync + 'static,
    {
        self.retryable = Some(Arc::new(retryable));
        self
    }

    /// The policy in use.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Retries made so far, over all calls (first attempts are not counted).
    pub fn retries(&self) -> u64 {
        self.retries.get()
    }

    /// The wrapped processor.
    pub fn get_ref(&self) -> &P {
        &self.inner
    }
}

impl<P> fmt::Debug for Retry<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("policy", &self.policy)
            .field("retries", &self.retries())
            .field("has_predicate", &self.retryable.is_some())
            .finish_non_exhaustive()
    }
}

impl<In, P> Processor<In> for Retry<P>
where
    In: Clone + Send + 'static,
    P: Processor<In>,
{
    type Out = P::Out;
    type Future = BoxFuture<'static, Outcome<P::Out>>;

    fn process(&self, item: In, ctx: &FlowContext) -> Self::Future {
        let inner = self.inner.clone();
        let retries = self.retries.clone();
        let mut retrying =
            Retrying::new(&self.policy, Some(self.rt.clone()), self.retryable.clone());
        let ctx = ctx.clone();
        Box::pin(async move {
            loop {
                let error = match inner.process(item.clone(), &ctx).await {
                    Ok(out) => return Ok(out),
                    Err(error) => error,
                };
                match retrying.after(&error).await {
                    RetryNext::Again => retries.inc(),
                    RetryNext::NotRetryable => return Err(error),
                    RetryNext::Exhausted { attempts } => {
                        return Err(Box::new(RetriesExhausted {
                            attempts,
                            source: error,
                        }) as BoxError);
                    }
                }
            }
        })
    }
}
