//! [`FlowStats`]: what a flow has done, the same for every kind of flow.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::runtime::SharedRuntime;
use crate::stats::{Counter, Histogram, HistogramSnapshot};

/// How many failures a flow keeps for [`FlowStats::recent_failures`].
pub const RECENT_FAILURES: usize = 16;

/// One failed handler invocation, kept in [`FlowStats::recent_failures`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowFailure {
    /// The flow's name.
    pub flow: String,
    /// The item it failed on, as the flow describes it: `seq 3, kind "tick"` for a
    /// bus event, `item 3` for a reactive item (counted from 0), `message 3, attempt
    /// 1` for a queue message.
    pub item: String,
    /// The error's message, or the panic's.
    pub message: String,
    /// Whether the handler panicked (rather than returned an error).
    pub panicked: bool,
}

/// What one flow has done; serialisable. The same shape for bus handler flows,
/// reactive subscriber flows, queue consumers and pipeline flows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowStats {
    /// The flow's name.
    pub name: String,
    /// Invocations that completed successfully (for a pipeline flow: items out of
    /// its last stage).
    pub handled: u64,
    /// Invocations that returned an error.
    pub failed: u64,
    /// Invocations that panicked.
    pub panicked: u64,
    /// Invocations cancelled by a stop whose grace period ran out.
    pub cancelled: u64,
    /// Invocations running now.
    pub in_flight: u64,
    /// How long invocations took (a queue consumer samples one in 32).
    pub latency: HistogramSnapshot,
    /// The last few failures, oldest first (at most [`RECENT_FAILURES`]).
    pub recent_failures: Vec<FlowFailure>,
}

/// A flow's live counters, shared by its driver and its stats handle.
pub(crate) struct FlowMetrics {
    name: Mutex<String>,
    clock: Option<SharedRuntime>,
    pub(crate) handled: Counter,
    pub(crate) failed: Counter,
    pub(crate) panicked: Counter,
    pub(crate) cancelled: Counter,
    in_flight: AtomicU64,
    /// Workers' own in-flight counts (a queue consumer's), summed in snapshots.
    slots: Mutex<Vec<Arc<Slot>>>,
    latency: Histogram,
    recent: Mutex<VecDeque<FlowFailure>>,
    /// Counts a flow keeps elsewhere (a pipeline's stages), added to each snapshot.
    view: Option<View>,
}

impl std::fmt::Debug for FlowMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowMetrics")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// Adds counts kept elsewhere to a snapshot.
pub(crate) type View = Box<dyn Fn(&mut FlowStats) + Send + Sync>;

/// One worker's in-flight count, on a cache line of its own: the worker stores to it
/// without contention, snapshots read it.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Slot(AtomicU64);

impl Slot {
    /// Sets the worker's in-flight count.
    #[inline]
    pub(crate) fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}

impl FlowMetrics {
    /// Counters for the flow `name`; latencies on `clock` (default: the system's).
    pub(crate) fn new(name: impl Into<String>, clock: Option<SharedRuntime>) -> Arc<Self> {
        Arc::new(Self::value(name.into(), clock, None))
    }

    fn value(name: String, clock: Option<SharedRuntime>, view: Option<View>) -> Self {
        FlowMetrics {
            name: Mutex::new(name),
            clock,
            handled: Counter::new(),
            failed: Counter::new(),
            panicked: Counter::new(),
            cancelled: Counter::new(),
            in_flight: AtomicU64::new(0),
            slots: Mutex::new(Vec::new()),
            latency: Histogram::new(),
            recent: Mutex::new(VecDeque::new()),
            view,
        }
    }

    /// Counters for a flow whose snapshots also take counts from `view`.
    pub(crate) fn with_view(name: impl Into<String>, view: View) -> Arc<Self> {
        Arc::new(Self::value(name.into(), None, Some(view)))
    }

    fn lock_name(&self) -> MutexGuard<'_, String> {
        self.name.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn name(&self) -> String {
        self.lock_name().clone()
    }

    pub(crate) fn rename(&self, name: String) {
        *self.lock_name() = name;
    }

    /// The clock's time, for latencies.
    pub(crate) fn now(&self) -> Instant {
        self.clock.as_ref().map_or_else(Instant::now, |c| c.now())
    }

    /// An invocation starts: counted in flight; returns its start time.
    pub(crate) fn start(&self) -> Instant {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.now()
    }

    /// `n` invocations ended, whatever their end.
    pub(crate) fn end(&self, n: u64) {
        self.in_flight.fetch_sub(n, Ordering::Relaxed);
    }

    /// A worker's own in-flight slot.
    pub(crate) fn slot(&self) -> Arc<Slot> {
        let slot = Arc::new(Slot::default());
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&slot));
        slot
    }

    pub(crate) fn record_latency(&self, took: Duration) {
        self.latency.record(took);
    }

    /// An invocation that started at `started` ended: latency recorded, in flight
    /// down by one.
    pub(crate) fn finish(&self, started: Instant) {
        self.end(1);
        self.latency
            .record(self.now().saturating_duration_since(started));
    }

    /// Counts a failure and keeps it among the recent ones; returns it.
    pub(crate) fn fail(&self, item: String, message: &str, panicked: bool) -> FlowFailure {
        if panicked {
            self.panicked.inc();
        } else {
            self.failed.inc();
        }
        self.remember(item, message, panicked)
    }

    /// Keeps a failure among the recent ones without counting it (a pipeline flow's
    /// counts come from its stages).
    pub(crate) fn remember(&self, item: String, message: &str, panicked: bool) -> FlowFailure {
        let failure = FlowFailure {
            flow: self.name(),
            item,
            message: message.to_owned(),
            panicked,
        };
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT_FAILURES {
            recent.pop_front();
        }
        recent.push_back(failure.clone());
        failure
    }

    pub(crate) fn snapshot(&self) -> FlowStats {
        let mut stats = FlowStats {
            name: self.name(),
            handled: self.handled.get(),
            failed: self.failed.get(),
            panicked: self.panicked.get(),
            cancelled: self.cancelled.get(),
            in_flight: self.in_flight.load(Ordering::Relaxed)
                + self
                    .slots
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .map(|slot| slot.0.load(Ordering::Relaxed))
                    .sum::<u64>(),
            latency: self.latency.snapshot(),
            recent_failures: self
                .recent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect(),
        };
        if let Some(view) = &self.view {
            view(&mut stats);
        }
        stats
    }
}

/// Reads a flow's [`FlowStats`] while it runs; from each flow's `stats()`. Cheap to
/// clone; it stays valid after the flow ends.
#[derive(Debug, Clone)]
pub struct FlowStatsHandle {
    pub(crate) metrics: Arc<FlowMetrics>,
}

impl FlowStatsHandle {
    /// A snapshot of the flow's statistics now.
    pub fn snapshot(&self) -> FlowStats {
        self.metrics.snapshot()
    }

    /// The flow's name.
    pub fn name(&self) -> String {
        self.metrics.name()
    }
}
