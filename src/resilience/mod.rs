//! Resilience: retry with backoff, timeout, circuit breaker, rate limit and bulkhead,
//! as wrappers around any [`Processor`](crate::pipeline::Processor).
//!
//! [`RetryPolicy`] is the one retry policy of the crate: pipeline stages retry with it
//! and queue redelivery will back off with it.
//!
//! Each wrapper is a processor with the same input and output as the one it wraps, so
//! they stack in any order, tower-style; [`ProcessorExt`] builds each in one call.
//! Each refusal or failure of a wrapper is a small typed error that travels boxed in
//! the outcome's [`BoxError`](crate::BoxError); `downcast_ref` it to react:
//!
//! | wrapper | error |
//! |---|---|
//! | [`Retry`] | [`RetriesExhausted`] (the last error is its source) |
//! | [`Timeout`] | [`TimedOut`] |
//! | [`CircuitBreaker`] | [`CircuitOpen`] |
//! | [`RateLimiter`] (GCRA) | [`RateLimited`] (failing mode only) |
//! | [`Bulkhead`] | [`BulkheadFull`] |
//!
//! Every wrapper that needs time takes a [`SharedRuntime`](crate::runtime::SharedRuntime)
//! and reads only its clock, so behaviour under the
//! [`VirtualRuntime`](crate::runtime::VirtualRuntime) is exact.

mod bulkhead;
mod circuit_breaker;
mod ext;
mod rate_limit;
mod retry;
mod retrying;
mod timeout;

pub use self::bulkhead::{Bulkhead, BulkheadFull};
pub use self::circuit_breaker::{
    BreakerConfig, BreakerEvent, BreakerState, CircuitBreaker, CircuitOpen,
};
pub use self::ext::ProcessorExt;
pub use self::rate_limit::{RateLimitConfig, RateLimitMode, RateLimited, RateLimiter};
pub use self::retry::{Backoff, Jitter, RetryPolicy};
pub use self::retrying::{RetriesExhausted, Retry};
pub use self::timeout::{TimedOut, Timeout};
