//! [`RateLimiter`]: at most `rate` calls per `period`, with bursts of up to `burst`.
//!
//! The algorithm is GCRA (one instant of state, exact on any clock); the type's docs
//! say how it works and why it was chosen.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::processor::{Outcome, Processor};
use crate::runtime::SharedRuntime;
use crate::stats::Counter;
use crate::{BoxError, FlowContext};

/// The error of a [`RateLimiter`] in [`RateLimitMode::Fail`] that refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited; retry in {retry_in:?}")]
pub struct RateLimited {
    /// How long until a call would be allowed.
    pub retry_in: Duration,
}

/// What a [`RateLimiter`] does with a call over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum RateLimitMode {
    /// Sleep on the runtime until the call is allowed.
    #[default]
    Wait,
    /// Fail at once with [`RateLimited`].
    Fail,
}

/// The limit of a [`RateLimiter`]: `rate` calls per `period`, bursts of `burst`.
///
/// ```
/// use std::time::Duration;
/// use riverbed::resilience::{RateLimitConfig, RateLimitMode};
///
/// let config = RateLimitConfig::per_second(100).burst(10).mode(RateLimitMode::Fail);
/// assert_eq!(config.interval(), Duration::from_millis(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitConfig {
    /// Calls allowed per `period` in the long run (at least 1).
    pub rate: u32,
    /// The period `rate` is counted over.
    #[serde(rename = "period_ns", with = "crate::serde_time::duration_ns")]
    pub period: Duration,
    /// Calls allowed at once after a quiet time (at least 1).
    pub burst: u32,
    /// What happens to a call over the limit.
    pub mode: RateLimitMode,
}

impl RateLimitConfig {
    /// `rate` calls per `period`, a burst of 1, waiting mode.
    pub fn new(rate: u32, period: Duration) -> Self {
        RateLimitConfig {
            rate: rate.max(1),
            period,
            burst: 1,
            mode: RateLimitMode::Wait,
        }
    }

    /// `rate` calls per second, a burst of 1, waiting mode.
    pub fn per_second(rate: u32) -> Self {
        RateLimitConfig::new(rate, Duration::from_secs(1))
    }

    /// Calls allowed at once after a quiet time (raised to 1).
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst.max(1);
        self
    }

    /// What happens to a call over the limit.
    pub fn mode(mut self, mode: RateLimitMode) -> Self {
        self.mode = mode;
        self
    }

    /// The steady spacing between calls: `period / rate`.
    pub fn interval(&self) -> Duration {
        self.period / self.rate.max(1)
    }
}

#[derive(Debug)]
struct Shared {
    config: RateLimitConfig,
    rt: SharedRuntime,
    /// The theoretical arrival time.
    tat: Mutex<Instant>,
    limited: Counter,
}

impl Shared {
    /// Takes a slot: `Ok(Some(instant))` it is allowed from, `Ok(None)` when allowed at
    /// once, or `Err(wait)` until allowed. `reserve` takes a future slot too; otherwise nothing
    /// is used up on refusal.
    fn take(&self, reserve: bool) -> Result<Option<Instant>, Duration> {
        let now = self.rt.now();
        let interval = self.config.interval();
        let tolerance = interval.saturating_mul(self.config.burst.max(1));
        let mut tat = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        // A period too long to represent: nothing is ever allowed after the burst.
        let Some(new_tat) = (*tat).max(now).checked_add(interval) else {
            return Err(Duration::MAX);
        };
        // Allowed from `new_tat - tolerance` on.
        let wait = (new_tat - now).saturating_sub(tolerance);
        if wait.is_zero() {
            *tat = new_tat;
            Ok(None)
        } else if reserve {
            *tat = new_tat;
            Ok(Some(now + wait))
        } else {
            Err(wait)
        }
    }
}

/// Lets calls through the inner processor at a limited rate; from
/// [`ProcessorExt::rate_limit`](super::ProcessorExt::rate_limit).
///
/// # Algorithm: GCRA
///
/// The limiter is a generic cell rate algorithm (GCRA), the "virtual scheduling" form
/// of a token bucket: it keeps one instant, the *theoretical arrival time* (TAT) of
/// the next call if calls came exactly `period / rate` apart. A call at `now` is
/// allowed when `max(TAT, now) + period / rate - now <= burst × period / rate`, and then
/// moves the TAT forward by `period / rate`.
///
/// It was chosen over a bucket that counts tokens because its whole state is one
/// `Instant` updated under a lock: no refill timer, no fractional tokens, no rounding
/// drift. Every decision is a comparison of instants read from the runtime clock, so
/// under the [`VirtualRuntime`](crate::runtime::VirtualRuntime) a burst of `burst`
/// calls goes through at once and the following calls are exactly `period / rate`
/// apart.
///
/// # Modes
///
/// In [`RateLimitMode::Wait`] (the default) a call over the limit reserves the next
/// free instant and sleeps on the runtime until then; callers are served in the order
/// they reserved. A reservation is not given back if the call is cancelled while it
/// waits. In [`RateLimitMode::Fail`] such a call fails at once with [`RateLimited`],
/// which says how long until a call would be allowed, and uses up nothing.
///
/// The limit is shared
/// by all calls through one `RateLimiter` value; the slot is taken when the call's
/// future is first polled, and the inner processor is only called once it is allowed.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use riverbed::FlowContext;
/// use riverbed::pipeline::{map, Processor};
/// use riverbed::resilience::{ProcessorExt, RateLimitConfig};
/// use riverbed::runtime::{Runtime, SharedRuntime, VirtualRuntime};
///
/// let clock = VirtualRuntime::new();
/// let rt: SharedRuntime = Arc::new(clock.clone());
/// let limited = map(|n: u32| async move { n })
///     .rate_limit(RateLimitConfig::per_second(10).burst(2), &rt);
///
/// clock.block_on(async {
///     let start = rt.now();
///     let mut at = Vec::new();
///     for n in 0..5 {
///         limited.process(n, &FlowContext::new()).await.unwrap();
///         at.push((rt.now() - start).as_millis());
///     }
///     // A burst of two, then one every 100 ms.
///     assert_eq!(at, [0, 0, 100, 200, 300]);
/// });
/// ```
pub struct RateLimiter<P> {
    inner: Arc<P>,
    shared: Arc<Shared>,
}

impl<P> RateLimiter<P> {
    /// Wraps `inner`, limited by `config` on `rt`'s clock. The full burst is
    /// available at once.
    pub fn new(inner: P, mut config: RateLimitConfig, rt: SharedRuntime) -> Self {
        config.rate = config.rate.max(1);
        config.burst = config.burst.max(1);
        let now = rt.now();
        RateLimiter {
            inner: Arc::new(inner),
            shared: Arc::new(Shared {
                config,
                rt,
                tat: Mutex::new(now),
                limited: Counter::new(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RateLimitConfig {
        &self.shared.config
    }

    /// Calls that were over the limit: delayed in waiting mode, refused in failing
    /// mode.
    pub fn limited(&self) -> u64 {
        self.shared.limited.get()
    }

    /// The wrapped processor.
    pub fn get_ref(&self) -> &P {
        &self.inner
    }
}

impl<P> fmt::Debug for RateLimiter<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("config", &self.shared.config)
            .field("limited", &self.limited())
            .finish_non_exhaustive()
    }
}

impl<In, P> Processor<In> for RateLimiter<P>
where
    In: Send + 'static,
    P: Processor<In>,
{
    type Out = P::Out;
    type Future = BoxFuture<'static, Outcome<P::Out>>;

    fn process(&self, item: In, ctx: &FlowContext) -> Self::Future {
        let shared = self.shared.clone();
        let inner = self.inner.clone();
        let ctx = ctx.clone();
        Box::pin(async move {
            let reserve = shared.config.mode == RateLimitMode::Wait;
            match shared.take(reserve) {
                Ok(None) => {}
                Ok(Some(allowed)) => {
                    shared.limited.inc();
                    shared.rt.sleep_until(allowed).await;
                }
                Err(retry_in) => {
                    shared.limited.inc();
                    return Err(Box::new(RateLimited { retry_in }) as BoxError);
                }
            }
            inner.process(item, &ctx).await
        })
    }
}
