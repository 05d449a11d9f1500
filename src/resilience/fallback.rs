//! [`Fallback`]: answers with another processor when the first fails.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::processor::{Outcome, Processor};
use crate::retry::Retryable;
use crate::stats::Counter;
use crate::{BoxError, FlowContext};

/// Answers with a second processor when the first fails; from
/// [`ProcessorExt::fallback`](super::ProcessorExt::fallback) — the seed's "fallback
/// mechanisms".
///
/// The item goes to the primary processor; if it returns an error (any error, or those
/// [`when`](Self::when) accepts), the same item (a clone taken before the call) goes
/// to the fallback, whose outcome is the answer, its error included. `Ok(None)` from
/// the primary is an answer, not a failure.
///
/// Put it outside a [`CircuitBreaker`](super::CircuitBreaker) and it answers while the
/// breaker is open, without calling the primary at all: the breaker fails fast with
/// [`CircuitOpen`](super::CircuitOpen), and the fallback takes over until the probes
/// close the breaker again. [`used`](Self::used) counts the calls it answered.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use riverbed::FlowContext;
/// use riverbed::pipeline::Processor;
/// use riverbed::resilience::{BreakerConfig, ProcessorExt};
/// use riverbed::runtime::{SharedRuntime, VirtualRuntime};
///
/// let clock = VirtualRuntime::new();
/// let rt: SharedRuntime = Arc::new(clock.clone());
/// let live_price = |_sku: String, _ctx: FlowContext| async { Err::<Option<u32>, _>("pricing is down") };
/// let cached_price = |_sku: String, _ctx: FlowContext| async { Ok::<_, &str>(Some(990)) };
/// let price = live_price
///     .circuit_breaker(BreakerConfig::default().consecutive_failures(2), &rt)
///     .fallback(cached_price);
///
/// clock.block_on(async {
///     let ctx = FlowContext::new();
///     for _ in 0..5 {
///         assert_eq!(price.process("ab-1".to_string(), &ctx).await.unwrap(), Some(990));
///     }
///     assert_eq!(price.used(), 5);
///     // Two failures opened the breaker: the other three never reached the primary.
///     assert_eq!(price.get_ref().rejected(), 3);
/// });
/// ```
pub struct Fallback<P, F> {
    primary: Arc<P>,
    fallback: Arc<F>,
    when: Option<Retryable>,
    used: Arc<Counter>,
}

impl<P, F> Fallback<P, F> {
    /// Answers with `fallback` when `primary` fails.
    pub fn new(primary: P, fallback: F) -> Self {
        Fallback {
            primary: Arc::new(primary),
            fallback: Arc::new(fallback),
            when: None,
            used: Arc::new(Counter::new()),
        }
    }

    /// Falls back only on the errors `accept` says yes to; any other error of the
    /// primary is returned as it is. By default every error falls back.
    pub fn when<W>(mut self, accept: W) -> Self
    where
        W: Fn(&BoxError) -> bool + Send + Sync + 'static,
    {
        self.when = Some(Arc::new(accept));
        self
    }

    /// Calls answered by the fallback so far.
    pub fn used(&self) -> u64 {
        self.used.get()
    }

    /// The primary processor.
    pub fn get_ref(&self) -> &P {
        &self.primary
    }

    /// The fallback processor.
    pub fn fallback_ref(&self) -> &F {
        &self.fallback
    }
}

impl<In, P, F> Processor<In> for Fallback<P, F>
where
    In: Clone + Send + 'static,
    P: Processor<In>,
    F: Processor<In, Out = P::Out>,
{
    type Out = P::Out;
    type Future = BoxFuture<'static, Outcome<P::Out>>;

    fn process(&self, item: In, ctx: &FlowContext) -> Self::Future {
        let (fallback, when, used) = (
            Arc::clone(&self.fallback),
            self.when.clone(),
            Arc::clone(&self.used),
        );
        let spare = item.clone();
        let first = self.primary.process(item, ctx);
        let ctx = ctx.clone();
        Box::pin(async move {
            match first.await {
                Ok(out) => Ok(out),
                Err(error) if when.as_ref().is_some_and(|accept| !accept(&error)) => Err(error),
                Err(_) => {
                    used.inc();
                    fallback.process(spare, &ctx).await
                }
            }
        })
    }
}

impl<P, F> fmt::Debug for Fallback<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("used", &self.used())
            .field("has_predicate", &self.when.is_some())
            .finish_non_exhaustive()
    }
}
