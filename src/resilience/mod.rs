//! Resilience: retry with backoff, and (to come) timeout, circuit breaker, rate limit
//! and bulkhead as wrappers around any [`Processor`](crate::pipeline::Processor).
//!
//! [`RetryPolicy`] is the one retry policy of the crate: pipeline stages retry with it
//! and queue redelivery will back off with it.

mod retry;

pub use self::retry::{Backoff, Jitter, RetryPolicy};
