//! Resilience: retry with backoff, timeout, circuit breaker, rate limit, bulkhead and
//! fallback,
//! as wrappers around any [`Processor`](crate::pipeline::Processor).
//!
//! Each wrapper is a processor with the same input and output as the one it wraps, so
//! they stack in any order, tower-style; [`ProcessorExt`] builds each in one call, on
//! named processors and on plain async closures alike. The last layer added is the
//! outermost (see [`ProcessorExt`] for what the order changes). The layers:
//!
//! - [`Retry`] ([`retry`](ProcessorExt::retry)): calls again on error, waiting as a
//!   [`RetryPolicy`] says; then fails with [`RetriesExhausted`], whose source is the
//!   last error. [`Retry::when`] limits it to the errors worth retrying.
//! - [`Timeout`] ([`timeout`](ProcessorExt::timeout)): fails a call that takes longer
//!   than its limit with [`TimedOut`], cancelling it.
//! - [`CircuitBreaker`] ([`circuit_breaker`](ProcessorExt::circuit_breaker)): opens on
//!   consecutive failures or on a failure rate over a window, then fails fast with
//!   [`CircuitOpen`]; after a pause lets a few probes through, half-open, and closes
//!   again when they succeed. State changes are counted and reported to a listener.
//! - [`RateLimiter`] ([`rate_limit`](ProcessorExt::rate_limit)): at most `rate` calls
//!   per period with bursts (GCRA); a call over the limit waits for its turn, or fails
//!   with [`RateLimited`].
//! - [`Bulkhead`] ([`bulkhead`](ProcessorExt::bulkhead)): at most `n` calls at once and
//!   a bounded, first-come-first-served wait queue; beyond that a call fails with
//!   [`BulkheadFull`].
//! - [`Fallback`] ([`fallback`](ProcessorExt::fallback)): answers with a second
//!   processor when the first fails; outside a circuit breaker, it answers while the
//!   breaker is open.
//!
//! [`RetryPolicy`] is the one retry policy of the crate: the [`Retry`] layer and a
//! pipeline stage's [`ErrorPolicy::retry`](crate::pipeline::ErrorPolicy::retry) both
//! back off with it, and queue redelivery will too.
//!
//! Each refusal or failure of a layer is one of the small typed errors above; it
//! travels boxed in the outcome's [`BoxError`](crate::BoxError), so the next layer and
//! the stage's error policy see it like any other error, and `downcast_ref` tells it
//! apart.
//!
//! Every layer that needs time takes a [`SharedRuntime`](crate::runtime::SharedRuntime)
//! and reads only its clock, so behaviour under the
//! [`VirtualRuntime`](crate::runtime::VirtualRuntime) is exact; the bulkhead needs no
//! runtime at all.

mod bulkhead;
mod circuit_breaker;
mod ext;
mod fallback;
mod rate_limit;
mod retry;
mod timeout;

pub use self::bulkhead::{Bulkhead, BulkheadFull};
pub use self::circuit_breaker::{
    BreakerConfig, BreakerEvent, BreakerState, CircuitBreaker, CircuitOpen,
};
pub use self::ext::ProcessorExt;
pub use self::fallback::Fallback;
pub use self::rate_limit::{RateLimitConfig, RateLimitMode, RateLimited, RateLimiter};
pub use self::retry::{RetriesExhausted, Retry};
pub use self::timeout::{TimedOut, Timeout};
pub use crate::retry::{Backoff, Jitter, RetryPolicy};
