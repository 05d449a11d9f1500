//! [`CircuitBreaker`]: stops calling a processor that keeps failing, and tries it again
//! after a pause.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::processor::{Outcome, Processor};
use crate::runtime::SharedRuntime;
use crate::stats::Counter;
use crate::{BoxError, FlowContext};

/// The state of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast.
    Open,
    /// A limited number of probe calls go through.
    HalfOpen,
}

/// A state change of a [`CircuitBreaker`], given to its
/// [`on_state_change`](CircuitBreaker::on_state_change) callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerEvent {
    /// The state left.
    pub from: BreakerState,
    /// The state entered.
    pub to: BreakerState,
    /// When, on the runtime's clock.
    pub at: Instant,
}

/// The error of a [`CircuitBreaker`] that refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit open; retry in {retry_in:?}")]
pub struct CircuitOpen {
    /// How long until the breaker lets a probe through: the rest of the open period,
    /// or zero when it is half-open and all its probe slots are taken.
    pub retry_in: Duration,
}

/// When a [`CircuitBreaker`] opens and how it recovers. Serialisable, with builder
/// methods.
///
/// ```
/// use std::time::Duration;
/// use riverbed::resilience::BreakerConfig;
///
/// let config = BreakerConfig::default()
///     .consecutive_failures(3)
///     .failure_rate(0.5, 10, 4)
///     .open_for(Duration::from_secs(5))
///     .half_open_probes(2);
/// assert_eq!(config.window, 10);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerConfig {
    /// Failures in a row that open the breaker; 0 turns this rule off.
    pub consecutive_failures: u32,
    /// The share of failures (0.0 to 1.0) over the window that opens the breaker; a
    /// value above 1.0 (or NaN) turns this rule off.
    pub failure_rate: f64,
    /// How many of the latest calls the failure rate is computed over.
    pub window: u32,
    /// Calls the window must hold before the failure rate counts.
    pub min_calls: u32,
    /// How long the breaker stays open before letting probes through.
    #[serde(rename = "open_for_ns", with = "crate::serde_time::duration_ns")]
    pub open_for: Duration,
    /// Probes let through while half-open; that many successes close the breaker.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    /// 5 failures in a row, or 50% failures over the last 20 calls (once 10 are known);
    /// open for 30 s; 1 probe.
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 5,
            failure_rate: 0.5,
            window: 20,
            min_calls: 10,
            open_for: Duration::from_secs(30),
            half_open_probes: 1,
        }
    }
}

impl BreakerConfig {
    /// Failures in a row that open the breaker (0: never on this rule).
    pub fn consecutive_failures(mut self, failures: u32) -> Self {
        self.consecutive_failures = failures;
        self
    }

    /// Opens when the failure share over the last `window` calls reaches `rate`, once
    /// `min_calls` of them are known (`min_calls` is capped at `window`, and raised
    /// to 1).
    pub fn failure_rate(mut self, rate: f64, window: u32, min_calls: u32) -> Self {
        self.failure_rate = rate;
        self.window = window;
        self.min_calls = min_calls;
        self
    }

    /// Turns the failure-rate rule off.
    pub fn no_failure_rate(mut self) -> Self {
        self.failure_rate = f64::INFINITY;
        self
    }

    /// How long the breaker stays open.
    pub fn open_for(mut self, open_for: Duration) -> Self {
        self.open_for = open_for;
        self
    }

    /// Probes let through while half-open (raised to 1).
    pub fn half_open_probes(mut self, probes: u32) -> Self {
        self.half_open_probes = probes.max(1);
        self
    }

    fn window_len(&self) -> usize {
        self.window as usize
    }

    fn rate_applies(&self, failures: usize, calls: usize) -> bool {
        let min = (self.min_calls.max(1) as usize).min(self.window_len());
        calls > 0
            && calls >= min
            && self.failure_rate <= 1.0
            && failures as f64 >= self.failure_rate * calls as f64
    }
}

type Listener = Arc<dyn Fn(BreakerEvent) + Send + Sync>;

/// The mutable part, behind one lock.
#[derive(Debug)]
struct Machine {
    state: BreakerState,
    /// Changes on every transition; results of calls admitted earlier are ignored.
    generation: u64,
    consecutive: u32,
    /// The latest results in closed state, `true` for a failure.
    window: VecDeque<bool>,
    failures_in_window: usize,
    open_until: Instant,
    probes_admitted: u32,
    probe_successes: u32,
}

struct Shared {
    config: BreakerConfig,
    rt: SharedRuntime,
    machine: Mutex<Machine>,
    opened: Counter,
    half_opened: Counter,
    closed: Counter,
    rejected: Counter,
    /// State changes `report_to` could not publish.
    unreported: Counter,
    listener: Mutex<Option<Listener>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Moves to `to` (the caller holds the lock) and returns the event to report.
    fn transition(&self, m: &mut Machine, to: BreakerState, now: Instant) -> BreakerEvent {
        let from = m.state;
        m.state = to;
        m.generation = m.generation.wrapping_add(1);
        m.consecutive = 0;
        m.window.clear();
        m.failures_in_window = 0;
        m.probes_admitted = 0;
        m.probe_successes = 0;
        match to {
            BreakerState::Open => {
                m.open_until = now.checked_add(self.config.open_for).unwrap_or(now);
                self.opened.inc();
            }
            BreakerState::HalfOpen => self.half_opened.inc(),
            BreakerState::Closed => self.closed.inc(),
        }
        BreakerEvent { from, to, at: now }
    }

    fn report(&self, event: Option<BreakerEvent>) {
        if let Some(event) = event {
            let listener = lock(&self.listener).clone();
            if let Some(listener) = listener {
                listener(event);
            }
        }
    }

    /// Admits a call or says how long until one would be.
    fn admit(&self) -> Result<Ticket, CircuitOpen> {
        let now = self.rt.now();
        let mut event = None;
        let result = {
            let mut m = lock(&self.machine);
            if m.state == BreakerState::Open && now >= m.open_until {
                event = Some(self.transition(&mut m, BreakerState::HalfOpen, now));
            }
            match m.state {
                BreakerState::Closed => Ok(Ticket {
                    generation: m.generation,
                    probe: false,
                }),
                BreakerState::Open => Err(CircuitOpen {
                    retry_in: m.open_until.saturating_duration_since(now),
                }),
                BreakerState::HalfOpen => {
                    if m.probes_admitted < self.config.half_open_probes.max(1) {
                        m.probes_admitted += 1;
                        Ok(Ticket {
                            generation: m.generation,
                            probe: true,
                        })
                    } else {
                        Err(CircuitOpen {
                            retry_in: Duration::ZERO,
                        })
                    }
                }
            }
        };
        if result.is_err() {
            self.rejected.inc();
        }
        self.report(event);
        result
    }

    /// Records the result of a call admitted with `ticket`.
    fn record(&self, ticket: &Ticket, failed: bool) {
        let now = self.rt.now();
        let mut m = lock(&self.machine);
        if m.generation != ticket.generation {
            return;
        }
        let event = match m.state {
            BreakerState::Closed => {
                m.consecutive = if failed { m.consecutive + 1 } else { 0 };
                let window = self.config.window_len();
                if window > 0 {
                    m.window.push_back(failed);
                    m.failures_in_window += usize::from(failed);
                    while m.window.len() > window {
                        if m.window.pop_front() == Some(true) {
                            m.failures_in_window -= 1;
                        }
                    }
                }
                let by_count = self.config.consecutive_failures > 0
                    && m.consecutive >= self.config.consecutive_failures;
                let by_rate = window > 0
                    && self
                        .config
                        .rate_applies(m.failures_in_window, m.window.len());
                (by_count || by_rate).then(|| self.transition(&mut m, BreakerState::Open, now))
            }
            BreakerState::HalfOpen if failed => {
                Some(self.transition(&mut m, BreakerState::Open, now))
            }
            BreakerState::HalfOpen => {
                m.probe_successes += 1;
                (m.probe_successes >= self.config.half_open_probes.max(1))
                    .then(|| self.transition(&mut m, BreakerState::Closed, now))
            }
            BreakerState::Open => None,
        };
        drop(m);
        self.report(event);
    }

    /// A probe ended without a result: its slot goes back.
    fn release_probe(&self, ticket: &Ticket) {
        let mut m = lock(&self.machine);
        if m.generation == ticket.generation && m.state == BreakerState::HalfOpen {
            m.probes_admitted = m.probes_admitted.saturating_sub(1);
        }
    }
}

/// Permission for one call, tied to the breaker state that gave it.
struct Ticket {
    generation: u64,
    probe: bool,
}

/// Records the call's result, or frees a probe slot if the call is dropped first.
struct CallGuard {
    shared: Arc<Shared>,
    ticket: Ticket,
    done: bool,
}

impl CallGuard {
    fn finish(mut self, failed: bool) {
        self.done = true;
        self.shared.record(&self.ticket, failed);
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if !self.done && self.ticket.probe {
            self.shared.release_probe(&self.ticket);
        }
    }
}

/// Fails fast while the inner processor is known to be failing; from
/// [`ProcessorExt::circuit_breaker`](super::ProcessorExt::circuit_breaker).
///
/// # States
///
/// * **Closed**: calls go through; results are watched. The breaker opens after
///   [`consecutive_failures`](BreakerConfig::consecutive_failures) failures in a row,
///   or when at least [`min_calls`](BreakerConfig::min_calls) of the last
///   [`window`](BreakerConfig::window) calls are known and the share of failures among
///   them reaches [`failure_rate`](BreakerConfig::failure_rate).
/// * **Open**: calls fail at once with [`CircuitOpen`], without reaching the inner
///   processor, for [`open_for`](BreakerConfig::open_for).
/// * **Half-open**: the first call after `open_for` moves the breaker here. At most
///   [`half_open_probes`](BreakerConfig::half_open_probes) calls go through as probes;
///   others fail fast. When that many probes have succeeded the breaker closes; the
///   first probe that fails opens it again for another `open_for`.
///
/// A failure is an `Err` outcome; `Ok(Some(_))` and `Ok(None)` are successes. Results
/// of calls admitted before a state change are ignored (they describe the old state),
/// and a probe whose future is dropped before it completes gives its slot back.
/// Time comes from the runtime's clock only, so behaviour under the
/// [`VirtualRuntime`](crate::runtime::VirtualRuntime) is exact.
///
/// The breaker is shared by all
/// calls through one `CircuitBreaker` value (wrap it in an `Arc` to share it between
/// stages).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use riverbed::FlowContext;
/// use riverbed::pipeline::Processor;
/// use riverbed::resilience::{BreakerConfig, BreakerState, CircuitOpen, ProcessorExt};
/// use riverbed::runtime::{RuntimeExt, SharedRuntime, VirtualRuntime};
///
/// let clock = VirtualRuntime::new();
/// let rt: SharedRuntime = Arc::new(clock.clone());
/// // Fails on odd numbers.
/// let service = |n: u32, _ctx: FlowContext| async move {
///     if n % 2 == 1 { Err("odd") } else { Ok(Some(n)) }
/// };
/// let config = BreakerConfig::default()
///     .consecutive_failures(2)
///     .no_failure_rate()
///     .open_for(Duration::from_secs(10));
/// let changes = Arc::new(Mutex::new(Vec::new()));
/// let breaker = service.circuit_breaker(config, &rt).on_state_change({
///     let changes = changes.clone();
///     move |event| changes.lock().unwrap().push(event.to)
/// });
///
/// clock.block_on(async {
///     let ctx = FlowContext::new();
///     assert!(breaker.process(1, &ctx).await.is_err());
///     assert!(breaker.process(3, &ctx).await.is_err());
///     assert_eq!(breaker.state(), BreakerState::Open);
///
///     // Fails fast, without calling the service, even for a good item.
///     rt.sleep(Duration::from_secs(4)).await;
///     let err = breaker.process(2, &ctx).await.unwrap_err();
///     assert_eq!(err.downcast_ref(), Some(&CircuitOpen { retry_in: Duration::from_secs(6) }));
///
///     // After `open_for`, one probe goes through; it succeeds, so the breaker closes.
///     rt.sleep(Duration::from_secs(6)).await;
///     assert_eq!(breaker.process(2, &ctx).await.unwrap(), Some(2));
///     assert_eq!(breaker.state(), BreakerState::Closed);
///     assert_eq!(breaker.rejected(), 1);
/// });
/// let changes = changes.lock().unwrap().clone();
/// assert_eq!(changes, [BreakerState::Open, BreakerState::HalfOpen, BreakerState::Closed]);
/// ```
pub struct CircuitBreaker<P> {
    inner: P,
    shared: Arc<Shared>,
}

impl<P> CircuitBreaker<P> {
    /// Wraps `inner` in a closed breaker configured by `config`, timed by `rt`.
    pub fn new(inner: P, config: BreakerConfig, rt: SharedRuntime) -> Self {
        let now = rt.now();
        CircuitBreaker {
            inner,
            shared: Arc::new(Shared {
                config,
                rt,
                machine: Mutex::new(Machine {
                    state: BreakerState::Closed,
                    generation: 0,
                    consecutive: 0,
                    window: VecDeque::new(),
                    failures_in_window: 0,
                    open_until: now,
                    probes_admitted: 0,
                    probe_successes: 0,
                }),
                opened: Counter::new(),
                half_opened: Counter::new(),
                closed: Counter::new(),
                rejected: Counter::new(),
                unreported: Counter::new(),
                listener: Mutex::new(None),
            }),
        }
    }

    /// Calls `listener` with every state change, after the change (outside the
    /// breaker's lock), on the task whose call caused it. Replaces an earlier listener.
    ///
    /// This is the place to attach an event bus: publish the event from the listener
    /// (without blocking; e.g. `try_publish` or a bounded channel's `try_send`).
    pub fn on_state_change<F>(self, listener: F) -> Self
    where
        F: Fn(BreakerEvent) + Send + Sync + 'static,
    {
        *lock(&self.shared.listener) = Some(Arc::new(listener));
        self
    }

    /// Publishes every state change on `bus` as an event whose kind is the state
    /// entered and whose source is `name`, so that dashboards and the orchestrator
    /// see it. Replaces an earlier listener.
    ///
    /// Publishing never holds a call back: it uses `try_publish`. A change the bus
    /// could not take (a `Block` subscriber full, or the bus closed) is counted in
    /// [`unreported`](Self::unreported); subscribe with `Overflow::DropOldest` to
    /// never miss the latest state.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use riverbed::bus::{EventBus, Filter};
    /// use riverbed::resilience::{BreakerConfig, BreakerEvent, BreakerState, ProcessorExt};
    /// use riverbed::runtime::{SharedRuntime, VirtualRuntime};
    /// use riverbed::FlowContext;
    /// use riverbed::pipeline::Processor;
    ///
    /// let vrt = VirtualRuntime::new();
    /// let rt: SharedRuntime = std::sync::Arc::new(vrt.clone());
    /// let bus: EventBus<BreakerEvent, BreakerState> = EventBus::new();
    /// let mut opened = bus.subscribe(Filter::kind(BreakerState::Open));
    /// let breaker = (|n: u32, _ctx: FlowContext| async move { Err::<Option<u32>, _>("down") })
    ///     .circuit_breaker(BreakerConfig::default().consecutive_failures(2), &rt)
    ///     .report_to(bus.clone(), "payments");
    /// vrt.block_on(async {
    ///     let ctx = FlowContext::new();
    ///     for n in 0..2 {
    ///         let _ = breaker.process(n, &ctx).await;
    ///     }
    ///     let event = opened.next().await.unwrap().unwrap();
    ///     assert_eq!(event.payload.to, BreakerState::Open);
    ///     assert_eq!(event.source.as_deref(), Some("payments"));
    /// });
    /// ```
    pub fn report_to(
        self,
        bus: crate::bus::EventBus<BreakerEvent, BreakerState>,
        name: impl Into<crate::bus::Source>,
    ) -> Self {
        let name = name.into();
        let shared = Arc::downgrade(&self.shared);
        self.on_state_change(move |event| {
            let published =
                bus.try_publish(crate::bus::Event::new(event.to, event).source(name.clone()));
            if published.is_err()
                && let Some(shared) = shared.upgrade()
            {
                shared.unreported.inc();
            }
        })
    }

    /// State changes that [`report_to`](Self::report_to) could not publish.
    pub fn unreported(&self) -> u64 {
        self.shared.unreported.get()
    }

    /// The current state. An open breaker whose `open_for` has passed reports
    /// `Open` until the next call moves it to half-open.
    pub fn state(&self) -> BreakerState {
        lock(&self.shared.machine).state
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.shared.config
    }

    /// Times the breaker opened (from closed or half-open).
    pub fn opened(&self) -> u64 {
        self.shared.opened.get()
    }

    /// Times the breaker went half-open.
    pub fn half_opened(&self) -> u64 {
        self.shared.half_opened.get()
    }

    /// Times the breaker closed again after probing.
    pub fn closed(&self) -> u64 {
        self.shared.closed.get()
    }

    /// Calls refused with [`CircuitOpen`].
    pub fn rejected(&self) -> u64 {
        self.shared.rejected.get()
    }

    /// The wrapped processor.
    pub fn get_ref(&self) -> &P {
        &self.inner
    }
}

impl<P> fmt::Debug for CircuitBreaker<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("state", &self.state())
            .field("config", &self.shared.config)
            .field("opened", &self.opened())
            .field("rejected", &self.rejected())
            .finish_non_exhaustive()
    }
}

impl<In, P: Processor<In>> Processor<In> for CircuitBreaker<P> {
    type Out = P::Out;
    type Future = BoxFuture<'static, Outcome<P::Out>>;

    fn process(&self, item: In, ctx: &FlowContext) -> Self::Future {
        let ticket = match self.shared.admit() {
            Ok(ticket) => ticket,
            Err(open) => return Box::pin(std::future::ready(Err(Box::new(open) as BoxError))),
        };
        let guard = CallGuard {
            shared: self.shared.clone(),
            ticket,
            done: false,
        };
        let call = self.inner.process(item, ctx);
        Box::pin(async move {
            let outcome = call.await;
            guard.finish(outcome.is_err());
            outcome
        })
    }
}
