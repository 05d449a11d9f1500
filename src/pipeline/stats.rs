//! Per-stage statistics: [`StageStats`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stats::{Counter, Histogram, HistogramSnapshot};

/// A snapshot of one stage's statistics; serialisable.
///
/// Every item that entered the stage is in exactly one of `emitted`, `filtered`,
/// `skipped`, `dead_lettered`, `failed`, `cancelled` or `in_flight`:
/// `received = emitted + filtered + skipped + dead_lettered + failed + cancelled +
/// in_flight`.
///
/// Latency is sampled: one item in [`latency_sampling`](super::Stage::latency_sampling)
/// (default 32) is timed, so that reading the clock twice per item does not dominate
/// cheap stages; every counter is exact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageStats {
    /// The stage's name.
    pub name: String,
    /// Items that entered the stage.
    pub received: u64,
    /// Items the processor produced an output for.
    pub emitted: u64,
    /// Items the processor filtered out (`Ok(None)`).
    pub filtered: u64,
    /// Items dropped by the `Skip` policy after an error.
    pub skipped: u64,
    /// Items sent to a dead-letter sink after an error.
    pub dead_lettered: u64,
    /// Items whose error stopped the stage (`Fail`).
    pub failed: u64,
    /// Items dropped while in flight: the stage stopped on another item's error, or
    /// was dropped.
    pub cancelled: u64,
    /// Attempts made again by the `Retry` policy (not items).
    pub retried: u64,
    /// Processor panics (each also counted as an error of its item).
    pub panics: u64,
    /// Items being processed now.
    pub in_flight: u64,
    /// Time from an item entering the processor to its outcome, retries included, for
    /// the sampled items.
    pub latency: HistogramSnapshot,
}

/// One item in this many has its latency measured, unless the stage says otherwise.
pub const DEFAULT_LATENCY_SAMPLING: u64 = 32;

/// A stage's counters. Every update happens while the stage is polled or dropped,
/// under its one `&mut` borrow, so they use the single-writer (`*_exclusive`)
/// updates: plain loads and stores, no locked instructions; readers take snapshots
/// from anywhere.
#[derive(Debug)]
pub(crate) struct StageMetrics {
    pub name: Arc<str>,
    /// Off: nothing is recorded (see `Stage::without_stats`).
    pub enabled: bool,
    /// One item in this many is timed.
    pub latency_every: u64,
    pub received: Counter,
    pub emitted: Counter,
    pub filtered: Counter,
    pub skipped: Counter,
    pub dead_lettered: Counter,
    pub failed: Counter,
    pub cancelled: Counter,
    pub retried: Counter,
    pub panics: Counter,
    pub latency: Histogram,
    /// Where an item's error is reported as it ends the item (set by a pipeline flow,
    /// for its recent failures); read on the error path only.
    pub failures: std::sync::OnceLock<FailureHook>,
}

/// Told of each item an error ended: the stage, the item's context, the error,
/// whether it was a panic.
pub(crate) struct FailureHook(pub Box<FailureFn>);

/// The stage's name, the item's context, the error's message, whether it panicked.
pub(crate) type FailureFn = dyn Fn(&str, &crate::FlowContext, &str, bool) + Send + Sync;

impl fmt::Debug for FailureHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FailureHook")
    }
}

impl StageMetrics {
    pub(crate) fn new(name: Arc<str>) -> Self {
        StageMetrics {
            name,
            enabled: true,
            latency_every: DEFAULT_LATENCY_SAMPLING,
            received: Counter::new(),
            emitted: Counter::new(),
            filtered: Counter::new(),
            skipped: Counter::new(),
            dead_lettered: Counter::new(),
            failed: Counter::new(),
            cancelled: Counter::new(),
            retried: Counter::new(),
            panics: Counter::new(),
            latency: Histogram::new(),
            failures: std::sync::OnceLock::new(),
        }
    }

    /// Reports an item that `error` ended (skipped, dead-lettered or failed) to the
    /// failure hook, if one is set.
    pub(crate) fn ended_by(&self, ctx: &crate::FlowContext, error: &crate::BoxError) {
        if let Some(hook) = self.failures.get() {
            // A panic reads as every flow's does: `panicked: <its message>`.
            let (message, panicked) = match error.downcast_ref::<super::ProcessorPanicked>() {
                Some(panic) => match &panic.message {
                    Some(message) => (format!("panicked: {message}"), true),
                    None => ("panicked".to_owned(), true),
                },
                None => (error.to_string(), false),
            };
            (hook.0)(&self.name, ctx, &message, panicked);
        }
    }

    /// Counts one event on `counter`, if statistics are on.
    #[inline]
    pub(crate) fn hit(&self, counter: fn(&StageMetrics) -> &Counter) {
        if self.enabled {
            counter(self).inc_exclusive();
        }
    }

    pub(crate) fn record_latency(&self, elapsed: Duration) {
        self.latency.record_exclusive(elapsed);
    }

    pub(crate) fn snapshot(&self) -> StageStats {
        // Outcomes first, then `received`, which only grows and is counted before an
        // item's outcome: in flight is what was received and has not settled.
        let mut stats = StageStats {
            name: self.name.to_string(),
            received: 0,
            emitted: self.emitted.get(),
            filtered: self.filtered.get(),
            skipped: self.skipped.get(),
            dead_lettered: self.dead_lettered.get(),
            failed: self.failed.get(),
            cancelled: self.cancelled.get(),
            retried: self.retried.get(),
            panics: self.panics.get(),
            in_flight: 0,
            latency: self.latency.snapshot(),
        };
        stats.received = self.received.get();
        let settled = stats.emitted
            + stats.filtered
            + stats.skipped
            + stats.dead_lettered
            + stats.failed
            + stats.cancelled;
        stats.in_flight = stats.received.saturating_sub(settled);
        stats
    }
}

/// A handle to a stage's statistics that stays valid after the stage is dropped.
#[derive(Debug, Clone)]
pub struct StageStatsHandle {
    pub(crate) metrics: Arc<StageMetrics>,
}

impl StageStatsHandle {
    /// A snapshot of the stage's statistics now.
    pub fn snapshot(&self) -> StageStats {
        self.metrics.snapshot()
    }
}
