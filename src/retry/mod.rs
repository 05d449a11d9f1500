//! Retrying, below the pipeline and the resilience layers that both retry:
//! [`RetryPolicy`] says when and how long to wait, [`Retrying`] carries it out.
//! Public through [`crate::resilience`].

mod policy;
mod run;

pub use self::policy::{Backoff, Jitter, RetryPolicy};
pub(crate) use self::run::{Next as RetryNext, Retryable, Retrying};
