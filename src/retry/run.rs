//! [`Retrying`]: one operation's retries, as its [`RetryPolicy`] says.

use std::sync::Arc;

use super::{Backoff, RetryPolicy};
use crate::BoxError;
use crate::runtime::{RuntimeExt, SharedRuntime};

/// Which errors are worth another attempt.
pub(crate) type Retryable = Arc<dyn Fn(&BoxError) -> bool + Send + Sync>;

/// Carries out a [`RetryPolicy`] for one operation: after each failed attempt, says
/// whether to try again, having waited the policy's delay first. The one executor of
/// the policy: a pipeline stage's `ErrorPolicy::retry` and the `Retry` layer both run
/// their attempts through it.
///
/// The delay is slept on the runtime; with none (a stage given no runtime), there is
/// no timer and the attempts follow each other at once.
pub(crate) struct Retrying {
    backoff: Backoff,
    runtime: Option<SharedRuntime>,
    retryable: Option<Retryable>,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Try again: the delay has been waited.
    Again,
    /// The error is not one to retry: give it back as it is.
    NotRetryable,
    /// No attempt is left: `attempts` were made.
    Exhausted { attempts: u32 },
}

impl Retrying {
    pub(crate) fn new(
        policy: &RetryPolicy,
        runtime: Option<SharedRuntime>,
        retryable: Option<Retryable>,
    ) -> Self {
        Retrying {
            backoff: policy.backoff(),
            runtime,
            retryable,
        }
    }

    /// After an attempt failed with `error`: waits and says `Again`, or says why not.
    pub(crate) async fn after(&mut self, error: &BoxError) -> Next {
        if self.retryable.as_ref().is_some_and(|retry| !retry(error)) {
            return Next::NotRetryable;
        }
        // `attempts()` counts the attempt just made; `next()` moves past it.
        let attempts = self.backoff.attempts();
        match self.backoff.next() {
            Some(delay) => {
                if let Some(rt) = self.runtime.as_ref().filter(|_| !delay.is_zero()) {
                    rt.sleep(delay).await;
                }
                Next::Again
            }
            None => Next::Exhausted { attempts },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::resilience::Jitter;
    use crate::runtime::VirtualRuntime;

    #[test]
    fn waits_the_policy_delays_then_says_how_many_attempts_were_made() {
        let clock = VirtualRuntime::new();
        let rt: SharedRuntime = Arc::new(clock.clone());
        let policy = RetryPolicy::exponential(Duration::from_millis(100))
            .max_attempts(3)
            .jitter(Jitter::None);
        let error: BoxError = "down".into();
        clock.block_on(async {
            let start = rt.now();
            let mut retrying = Retrying::new(&policy, Some(rt.clone()), None);
            assert_eq!(retrying.after(&error).await, Next::Again);
            assert_eq!(rt.now() - start, Duration::from_millis(100));
            assert_eq!(retrying.after(&error).await, Next::Again);
            assert_eq!(rt.now() - start, Duration::from_millis(300));
            assert_eq!(
                retrying.after(&error).await,
                Next::Exhausted { attempts: 3 }
            );
        });
    }

    #[test]
    fn without_a_runtime_attempts_follow_at_once_and_a_predicate_can_refuse() {
        let policy = RetryPolicy::constant(Duration::from_secs(60)).max_attempts(2);
        let error: BoxError = "down".into();
        futures_executor_run(async {
            let mut retrying = Retrying::new(&policy, None, None);
            assert_eq!(retrying.after(&error).await, Next::Again);
            assert_eq!(
                retrying.after(&error).await,
                Next::Exhausted { attempts: 2 }
            );
            let only_timeouts: Retryable = Arc::new(|e| e.to_string() == "timeout");
            let mut picky = Retrying::new(&policy, None, Some(only_timeouts));
            assert_eq!(picky.after(&error).await, Next::NotRetryable);
        });
    }

    fn futures_executor_run(future: impl std::future::Future<Output = ()>) {
        VirtualRuntime::new().block_on(future);
    }
}
