//! [`Timeout`]: a time limit on each call of a processor.

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::processor::{Outcome, Processor};
use crate::runtime::{RuntimeExt, SharedRuntime};
use crate::stats::Counter;
use crate::{BoxError, FlowContext};

/// The error of a [`Timeout`]: the call did not complete within `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {after:?}")]
pub struct TimedOut {
    /// The time limit that passed.
    pub after: Duration,
}

/// Fails a call of the inner processor with [`TimedOut`] when it takes longer than a
/// limit; from [`ProcessorExt::timeout`](super::ProcessorExt::timeout).
///
/// The clock starts when the call's future is first polled and runs on the given
/// runtime. On expiry the inner future is dropped (cancelled). A timeout is an error
/// like any other: a [`Retry`](super::Retry) around a `Timeout` retries it, a stage's
/// error policy sees it.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use riverbed::FlowContext;
/// use riverbed::pipeline::Processor;
/// use riverbed::resilience::{ProcessorExt, TimedOut};
/// use riverbed::runtime::{Runtime, RuntimeExt, SharedRuntime, VirtualRuntime};
///
/// let clock = VirtualRuntime::new();
/// let rt: SharedRuntime = Arc::new(clock.clone());
/// let slow = {
///     let rt = rt.clone();
///     move |ms: u64, _ctx: FlowContext| {
///         let nap = rt.sleep(Duration::from_millis(ms));
///         async move {
///             nap.await;
///             Ok::<_, std::convert::Infallible>(Some(ms))
///         }
///     }
/// };
/// let limited = slow.timeout(Duration::from_millis(50), &rt);
///
/// clock.block_on(async {
///     let ctx = FlowContext::new();
///     assert_eq!(limited.process(10, &ctx).await.unwrap(), Some(10));
///
///     let start = rt.now();
///     let err = limited.process(500, &ctx).await.unwrap_err();
///     assert_eq!(err.downcast_ref(), Some(&TimedOut { after: Duration::from_millis(50) }));
///     assert_eq!(rt.now() - start, Duration::from_millis(50));
///     assert_eq!(limited.timeouts(), 1);
/// });
/// ```
pub struct Timeout<P> {
    inner: P,
    after: Duration,
    rt: SharedRuntime,
    timeouts: std::sync::Arc<Counter>,
}

impl<P> Timeout<P> {
    /// Wraps `inner`: each call gets at most `after` on `rt`'s clock.
    pub fn new(inner: P, after: Duration, rt: SharedRuntime) -> Self {
        Timeout {
            inner,
            after,
            rt,
            timeouts: Default::default(),
        }
    }

    /// The time limit of each call.
    pub fn limit(&self) -> Duration {
        self.after
    }

    /// Calls that timed out so far.
    pub fn timeouts(&self) -> u64 {
        self.timeouts.get()
    }

    /// The wrapped processor.
    pub fn get_ref(&self) -> &P {
        &self.inner
    }
}

impl<P> fmt::Debug for Timeout<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("after", &self.after)
            .field("timeouts", &self.timeouts())
            .finish_non_exhaustive()
    }
}

impl<In, P: Processor<In>> Processor<In> for Timeout<P> {
    type Out = P::Out;
    type Future = BoxFuture<'static, Outcome<P::Out>>;

    fn process(&self, item: In, ctx: &FlowContext) -> Self::Future {
        let call = self.inner.process(item, ctx);
        let rt = self.rt.clone();
        let after = self.after;
        let timeouts = self.timeouts.clone();
        Box::pin(async move {
            match rt.timeout(after, call).await {
                Ok(outcome) => outcome,
                Err(_elapsed) => {
                    timeouts.inc();
                    Err(Box::new(TimedOut { after }) as BoxError)
                }
            }
        })
    }
}
