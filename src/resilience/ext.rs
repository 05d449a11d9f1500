//! [`ProcessorExt`]: one-line constructors for the resilience wrappers.

use std::time::Duration;

use super::{
    BreakerConfig, Bulkhead, CircuitBreaker, Fallback, RateLimitConfig, RateLimiter, Retry,
    RetryPolicy, Timeout,
};
use crate::processor::Processor;
use crate::runtime::SharedRuntime;

/// Wraps any [`Processor`] in a resilience layer; each method returns a processor
/// with the same input and output, so the layers stack in any order.
///
/// The order matters as it does in tower: the last method called is the outermost
/// layer. `p.timeout(d, &rt).retry(policy, &rt)` gives every attempt its own time limit
/// and retries timeouts; `p.retry(policy, &rt).timeout(d, &rt)` limits all attempts
/// together.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use riverbed::FlowContext;
/// use riverbed::pipeline::{try_map, Processor};
/// use riverbed::resilience::{BreakerConfig, Jitter, ProcessorExt, RetryPolicy};
/// use riverbed::runtime::{SharedRuntime, VirtualRuntime};
///
/// let clock = VirtualRuntime::new();
/// let rt: SharedRuntime = Arc::new(clock.clone());
/// let lookup = try_map(|sku: String| async move { sku.parse::<u32>() })
///     .timeout(Duration::from_millis(200), &rt)
///     .circuit_breaker(BreakerConfig::default(), &rt)
///     .retry(RetryPolicy::exponential(Duration::from_millis(50)).jitter(Jitter::None), &rt)
///     .bulkhead(8, 64);
///
/// clock.block_on(async {
///     let ctx = FlowContext::new();
///     assert_eq!(lookup.process("42".to_string(), &ctx).await.unwrap(), Some(42));
///     assert!(lookup.process("x".to_string(), &ctx).await.is_err());
/// });
/// ```
pub trait ProcessorExt<In>: Processor<In> + Sized {
    /// Retries failed calls per `policy`, sleeping on `rt`; see [`Retry`].
    fn retry(self, policy: RetryPolicy, rt: &SharedRuntime) -> Retry<Self>
    where
        In: Clone + Send + 'static,
    {
        Retry::new(self, policy, SharedRuntime::clone(rt))
    }

    /// Fails calls that take longer than `after` on `rt`'s clock; see [`Timeout`].
    fn timeout(self, after: Duration, rt: &SharedRuntime) -> Timeout<Self> {
        Timeout::new(self, after, SharedRuntime::clone(rt))
    }

    /// Fails fast while the processor keeps failing; see [`CircuitBreaker`].
    fn circuit_breaker(self, config: BreakerConfig, rt: &SharedRuntime) -> CircuitBreaker<Self> {
        CircuitBreaker::new(self, config, SharedRuntime::clone(rt))
    }

    /// Limits the rate of calls on `rt`'s clock; see [`RateLimiter`].
    fn rate_limit(self, config: RateLimitConfig, rt: &SharedRuntime) -> RateLimiter<Self>
    where
        In: Send + 'static,
    {
        RateLimiter::new(self, config, SharedRuntime::clone(rt))
    }

    /// Limits the calls in flight, with a bounded wait queue; see [`Bulkhead`].
    fn bulkhead(self, max_concurrent: usize, max_queue: usize) -> Bulkhead<Self>
    where
        In: Send + 'static,
    {
        Bulkhead::new(self, max_concurrent, max_queue)
    }

    /// Answers with `fallback` when this processor fails; see [`Fallback`].
    fn fallback<F>(self, fallback: F) -> Fallback<Self, F>
    where
        In: Clone + Send + 'static,
        F: Processor<In, Out = Self::Out>,
    {
        Fallback::new(self, fallback)
    }
}

impl<In, P: Processor<In>> ProcessorExt<In> for P {}
