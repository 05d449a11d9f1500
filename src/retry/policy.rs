//! [`RetryPolicy`]: exponential backoff with jitter, a maximum number of attempts and a
//! maximum delay. The one retry policy riverbed has: pipeline stages and queue
//! redelivery both use it.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the delay before each retry is randomised, so that many clients that failed
/// together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Jitter {
    /// The exact exponential delay: deterministic, for tests and for single clients.
    None,
    /// Uniform in `[0, delay]` ("full jitter"): the best spread.
    #[default]
    Full,
    /// Uniform in `[delay / 2, delay]` ("equal jitter"): never much shorter than asked.
    Equal,
}

/// When to retry a failed operation: up to `max_attempts` attempts in all, waiting
/// `initial_delay × multiplier^(n-1)` (capped at `max_delay`, then jittered) before
/// retry `n`.
///
/// ```
/// use std::time::Duration;
/// use riverbed::resilience::{Jitter, RetryPolicy};
///
/// let policy = RetryPolicy::exponential(Duration::from_millis(100))
///     .max_attempts(4)
///     .max_delay(Duration::from_millis(300))
///     .jitter(Jitter::None);
/// let delays: Vec<_> = policy.backoff().collect();
/// assert_eq!(delays, [100, 200, 300].map(Duration::from_millis));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; at least 1 (1 means "never retry").
    pub max_attempts: u32,
    /// The delay before the first retry, before jitter.
    #[serde(rename = "initial_delay_ns", with = "crate::serde_time::duration_ns")]
    pub initial_delay: Duration,
    /// The factor between consecutive delays (1.0 gives a constant delay).
    pub multiplier: f64,
    /// No delay is longer than this, before jitter.
    #[serde(rename = "max_delay_ns", with = "crate::serde_time::duration_ns")]
    pub max_delay: Duration,
    /// How delays are randomised.
    pub jitter: Jitter,
}

impl Default for RetryPolicy {
    /// 3 attempts, 100 ms doubling up to 10 s, full jitter.
    fn default() -> Self {
        RetryPolicy::exponential(Duration::from_millis(100))
    }
}

impl RetryPolicy {
    /// Exponential backoff starting at `initial_delay`: 3 attempts, doubling, at most
    /// 10 s between attempts, full jitter. Adjust with the builder methods.
    pub fn exponential(initial_delay: Duration) -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay,
            multiplier: 2.0,
            max_delay: Duration::from_secs(10),
            jitter: Jitter::Full,
        }
    }

    /// The same delay between every attempt, no jitter.
    pub fn constant(delay: Duration) -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: delay,
            multiplier: 1.0,
            max_delay: delay,
            jitter: Jitter::None,
        }
    }

    /// Never retry: one attempt.
    pub fn never() -> Self {
        RetryPolicy::constant(Duration::ZERO).max_attempts(1)
    }

    /// Attempts in all, the first included (raised to 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The factor between consecutive delays (values below 1.0, NaN included, are
    /// taken as 1.0).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier >= 1.0 { multiplier } else { 1.0 };
        self
    }

    /// The longest delay, before jitter.
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// How delays are randomised.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay before retry number `retry` (1 for the first retry), before jitter.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(1024) as i32;
        let multiplier = if self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let factor = multiplier.powi(exponent);
        let secs = self.initial_delay.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max_delay.as_secs_f64() {
            self.max_delay
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// Whether another attempt is allowed after `attempts` attempts.
    pub fn allows(&self, attempts: u32) -> bool {
        attempts < self.max_attempts.max(1)
    }

    /// The delay before retry number `retry` (1 for the first retry), jittered from
    /// `seed`: for callers that keep no [`Backoff`] between attempts, such as a queue
    /// that knows only a message's attempt count. The same `retry` and `seed` give the
    /// same delay.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riverbed::resilience::{Jitter, RetryPolicy};
    ///
    /// let policy = RetryPolicy::exponential(Duration::from_millis(100)).jitter(Jitter::None);
    /// assert_eq!(policy.delay_for(3, 42), Duration::from_millis(400));
    /// let jittered = RetryPolicy::exponential(Duration::from_millis(100));
    /// assert_eq!(jittered.delay_for(2, 7), jittered.delay_for(2, 7));
    /// assert!(jittered.delay_for(2, 7) <= Duration::from_millis(200));
    /// ```
    pub fn delay_for(&self, retry: u32, seed: u64) -> Duration {
        let mut rng = SplitMix64(seed ^ u64::from(retry).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        self.jittered(self.base_delay(retry), &mut rng)
    }

    fn jittered(&self, base: Duration, rng: &mut SplitMix64) -> Duration {
        match self.jitter {
            Jitter::None => base,
            Jitter::Full => base.mul_f64(rng.unit()),
            Jitter::Equal => base / 2 + (base / 2).mul_f64(rng.unit()),
        }
    }

    /// The delays before each retry, in order, jittered with a random seed.
    pub fn backoff(&self) -> Backoff {
        self.backoff_seeded(crate::id::unique_u64())
    }

    /// The delays before each retry, jittered from `seed`: the same seed gives the same
    /// delays, for reproducible tests.
    pub fn backoff_seeded(&self, seed: u64) -> Backoff {
        Backoff {
            policy: self.clone(),
            retry: 0,
            rng: SplitMix64(seed),
        }
    }
}

/// The delays of a [`RetryPolicy`], one per retry; ends when no attempt is left.
#[derive(Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    /// Retries handed out so far.
    retry: u32,
    rng: SplitMix64,
}

impl Backoff {
    /// Attempts made so far, counting the first (so 1 before any retry).
    pub fn attempts(&self) -> u32 {
        self.retry + 1
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if !self.policy.allows(self.retry + 1) {
            return None;
        }
        self.retry += 1;
        let base = self.policy.base_delay(self.retry);
        Some(self.policy.jittered(base, &mut self.rng))
    }
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backoff")
            .field("policy", &self.policy)
            .field("attempts", &self.attempts())
            .finish()
    }
}

/// A small, fast, seedable generator (SplitMix64); jitter needs spread, not secrecy.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1]`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / ((1u64 << 53) - 1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn exponential_delays_are_capped_and_end_after_max_attempts() {
        let policy = RetryPolicy::exponential(ms(10))
            .max_attempts(6)
            .max_delay(ms(50))
            .jitter(Jitter::None);
        assert_eq!(
            policy.backoff().collect::<Vec<_>>(),
            [10, 20, 40, 50, 50].map(ms)
        );
        let mut backoff = policy.backoff();
        assert_eq!(backoff.attempts(), 1);
        backoff.next();
        assert_eq!(backoff.attempts(), 2);
    }

    #[test]
    fn one_attempt_never_retries() {
        assert_eq!(RetryPolicy::never().backoff().count(), 0);
        assert_eq!(RetryPolicy::default().max_attempts(0).backoff().count(), 0);
        assert!(!RetryPolicy::never().allows(1));
    }

    #[test]
    fn constant_and_sub_one_multipliers_do_not_shrink() {
        let constant = RetryPolicy::constant(ms(7)).max_attempts(4);
        assert_eq!(constant.backoff().collect::<Vec<_>>(), [7, 7, 7].map(ms));
        let odd = RetryPolicy::exponential(ms(8))
            .multiplier(0.5)
            .jitter(Jitter::None);
        assert_eq!(odd.backoff().collect::<Vec<_>>(), [8, 8].map(ms));
        let mut nan = odd.clone();
        nan.multiplier = f64::NAN;
        assert_eq!(nan.base_delay(5), ms(8));
    }

    #[test]
    fn huge_exponents_saturate_at_max_delay() {
        let policy = RetryPolicy::exponential(Duration::from_secs(1))
            .multiplier(10.0)
            .max_attempts(u32::MAX)
            .max_delay(Duration::from_secs(60))
            .jitter(Jitter::None);
        assert_eq!(policy.base_delay(u32::MAX), Duration::from_secs(60));
        assert_eq!(policy.backoff().nth(500), Some(Duration::from_secs(60)));
    }

    #[test]
    fn jitter_stays_in_bounds_and_is_reproducible() {
        let full = RetryPolicy::exponential(ms(100)).max_attempts(200);
        let a: Vec<_> = full.backoff_seeded(7).collect();
        let b: Vec<_> = full.backoff_seeded(7).collect();
        assert_eq!(a, b);
        for (i, d) in a.iter().enumerate() {
            assert!(*d <= full.base_delay(i as u32 + 1));
        }
        assert!(
            a.iter().any(|d| *d < full.base_delay(1) / 2),
            "full jitter spreads low"
        );

        let equal = full.clone().jitter(Jitter::Equal);
        for (i, d) in equal.backoff_seeded(9).enumerate() {
            let base = equal.base_delay(i as u32 + 1);
            assert!(
                d >= base / 2 && d <= base,
                "{d:?} not in [{:?}, {base:?}]",
                base / 2
            );
        }
    }

    #[test]
    fn policy_round_trips_through_serde() {
        let policy = RetryPolicy::exponential(ms(5)).max_attempts(9);
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(serde_json::from_str::<RetryPolicy>(&json).unwrap(), policy);
    }
}
