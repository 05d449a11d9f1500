//! [`Handler`]: run an async function for every matching event, with a concurrency
//! limit and failure isolation.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::{Envelope, HandlerFailure, HandlerStats, Kind, Subscription};
use crate::runtime::{JoinHandle, RuntimeExt, SharedRuntime, panic_text};
use crate::stats::{Counter, Histogram};

pub use crate::BoxError;

/// What a handler's future may return: `()`, or `Result<(), E>` for any error type
/// that converts into a boxed error (`anyhow::Error` does not; use `.map_err` or a
/// `Box<dyn Error>`).
pub trait HandlerOutcome: Send + 'static {
    /// The outcome as a result; the error's `Display` is recorded on failure.
    fn into_result(self) -> Result<(), BoxError>;
}

impl HandlerOutcome for () {
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError> + Send + 'static> HandlerOutcome for Result<(), E> {
    fn into_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

const RECENT_FAILURES: usize = 16;

/// The broadcast core that carries handler failures as events.
pub(crate) type FailureCore = crate::broadcast::Core<HandlerFailure>;

pub(crate) struct HandlerMetrics {
    failures: Arc<FailureCore>,
    name: Mutex<String>,
    handled: Counter,
    failed: Counter,
    panicked: Counter,
    in_flight: AtomicU64,
    latency: Histogram,
    recent: Mutex<VecDeque<HandlerFailure>>,
}

impl HandlerMetrics {
    pub(crate) fn new(name: String, failures: Arc<FailureCore>) -> Self {
        HandlerMetrics {
            failures,
            name: Mutex::new(name),
            handled: Counter::new(),
            failed: Counter::new(),
            panicked: Counter::new(),
            in_flight: AtomicU64::new(0),
            latency: Histogram::new(),
            recent: Mutex::new(VecDeque::new()),
        }
    }

    fn name(&self) -> String {
        self.name
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn fail<K: fmt::Debug>(&self, seq: u64, kind: &K, message: String, panicked: bool) {
        if panicked {
            self.panicked.inc();
        } else {
            self.failed.inc();
        }
        let failure = HandlerFailure {
            handler: self.name(),
            seq,
            kind: format!("{kind:?}"),
            message,
            panicked,
        };
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if recent.len() == RECENT_FAILURES {
            recent.pop_front();
        }
        recent.push_back(failure.clone());
        drop(recent);
        // Failure subscribers drop their oldest rather than hold a handler back, so
        // this never waits; with no subscriber it keeps nothing.
        let _ = self.failures.try_publish(failure, &mut |_, _| {});
    }

    pub(crate) fn snapshot(&self) -> HandlerStats {
        HandlerStats {
            name: self.name(),
            handled: self.handled.get(),
            failed: self.failed.get(),
            panicked: self.panicked.get(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            latency: self.latency.snapshot(),
            recent_failures: self
                .recent
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .cloned()
                .collect(),
        }
    }
}

/// A handler flow from [`EventBus::on`](super::EventBus::on): runs the handler for every
/// matching event until the bus closes and every event sent to it has been handled.
///
/// Nothing runs until the flow is driven: `.await` it (it implements [`IntoFuture`]) or
/// call [`run`](Self::run) to drive it inside the current task, or
/// [`spawn`](Self::spawn) it on a runtime, where each invocation becomes a task of its
/// own and so runs in parallel on a multi-threaded executor.
///
/// Up to [`concurrency`](Self::concurrency) invocations run at once (default 1: events
/// are handled one after the other, in order). The handler's subscription uses the
/// `Block` policy, so a slow handler slows publishers rather than losing events.
///
/// An invocation that returns `Err` or panics is isolated: it is counted and recorded
/// in [`BusStats::handlers`](super::BusStats::handlers) (with the error or panic
/// message), and the flow goes on with the next event.
///
/// ```
/// use riverbed::bus::{EventBus, Filter};
///
/// # futures::executor::block_on(async {
/// let bus: EventBus<u32, &str> = EventBus::new();
/// let flow = bus
///     .on(Filter::kind("tick"), |event| async move {
///         if event.payload == 2 {
///             return Err("two is not allowed");
///         }
///         Ok(())
///     })
///     .name("tick-checker")
///     .concurrency(4);
///
/// for n in 1..=3 {
///     bus.emit("tick", n).await.unwrap();
/// }
/// bus.close();
/// flow.await; // handles all three, then ends because the bus is closed
///
/// let stats = bus.stats();
/// assert_eq!(stats.handlers[0].handled, 2);
/// assert_eq!(stats.handler_failures, 1);
/// assert_eq!(stats.handlers[0].recent_failures[0].message, "two is not allowed");
/// # });
/// ```
#[must_use = "a handler flow does nothing until it is awaited or spawned"]
pub struct Handler<P: Clone + Send + Sync + 'static, K: Kind, F> {
    subscription: Subscription<P, K>,
    handler: Arc<F>,
    metrics: Arc<HandlerMetrics>,
    clock: Option<SharedRuntime>,
    concurrency: usize,
}

type Invocation = BoxFuture<'static, Result<Result<(), BoxError>, String>>;

impl<P, K, F, Fut> Handler<P, K, F>
where
    P: Clone + Send + Sync + 'static,
    K: Kind,
    F: Fn(Envelope<P, K>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutcome,
{
    pub(crate) fn new(
        subscription: Subscription<P, K>,
        handler: F,
        metrics: Arc<HandlerMetrics>,
        clock: Option<SharedRuntime>,
    ) -> Self {
        Handler {
            subscription,
            handler: Arc::new(handler),
            metrics,
            clock,
            concurrency: 1,
        }
    }

    /// Names the handler in statistics and failure records.
    pub fn name(self, name: impl Into<String>) -> Self {
        *self
            .metrics
            .name
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = name.into();
        self
    }

    /// How many invocations may run at once (at least 1; default 1).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    /// Drives the flow inside the current task; invocations run concurrently (up to
    /// the limit) but not in parallel.
    pub async fn run(self) {
        self.drive(None).await
    }

    /// Spawns the flow on `runtime`; each invocation is spawned as its own task, so
    /// they can run in parallel. Await the handle to know when the flow has ended.
    pub fn spawn(self, runtime: &SharedRuntime) -> JoinHandle<()> {
        let rt = Arc::clone(runtime);
        runtime.spawn(self.drive(Some(rt)))
    }

    fn now(&self) -> Instant {
        self.clock.as_ref().map_or_else(Instant::now, |c| c.now())
    }

    fn invoke(&self, event: Envelope<P, K>, runtime: Option<&SharedRuntime>) -> Invocation {
        let handler = Arc::clone(&self.handler);
        // The handler's synchronous part may panic too; catch it like the rest.
        let call = move || catch_unwind(AssertUnwindSafe(|| handler(event)));
        let body = async move {
            match call() {
                Ok(fut) => match AssertUnwindSafe(fut).catch_unwind().await {
                    Ok(outcome) => Ok(outcome.into_result()),
                    Err(panic) => Err(panic_text(None, panic.as_ref())),
                },
                Err(panic) => Err(panic_text(None, panic.as_ref())),
            }
        };
        match runtime {
            None => body.boxed(),
            Some(rt) => {
                let handle = rt.spawn(body);
                async move {
                    match handle.await {
                        Ok(result) => result,
                        Err(join) => Err(join.to_string()),
                    }
                }
                .boxed()
            }
        }
    }

    async fn drive(mut self, runtime: Option<SharedRuntime>) {
        let mut running: FuturesUnordered<_> = FuturesUnordered::new();
        let mut ended = false;
        std::future::poll_fn(|cx| {
            loop {
                while let Poll::Ready(Some((seq, kind, started, result))) =
                    running.poll_next_unpin(cx)
                {
                    self.finish(seq, &kind, started, result);
                }
                if !ended && running.len() < self.concurrency {
                    match self.subscription.poll_next_unpin(cx) {
                        Poll::Ready(Some(Ok(event))) => {
                            let started = self.now();
                            self.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
                            // Seq and kind are kept to describe a failure.
                            let (seq, kind) = (event.seq, event.kind.clone());
                            let invocation = self.invoke(event, runtime.as_ref());
                            running.push(invocation.map(move |r| (seq, kind, started, r)));
                            continue;
                        }
                        // The handler's subscription uses Block: no lag can occur.
                        Poll::Ready(Some(Err(_lagged))) => continue,
                        Poll::Ready(None) => ended = true,
                        Poll::Pending => {}
                    }
                }
                if ended && running.is_empty() {
                    return Poll::Ready(());
                }
                return Poll::Pending;
            }
        })
        .await
    }

    fn finish(
        &self,
        seq: u64,
        kind: &K,
        started: Instant,
        result: Result<Result<(), BoxError>, String>,
    ) {
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.metrics
            .latency
            .record(self.now().saturating_duration_since(started));
        match result {
            Ok(Ok(())) => self.metrics.handled.inc(),
            Ok(Err(error)) => self.metrics.fail(seq, kind, error.to_string(), false),
            Err(panic) => self.metrics.fail(seq, kind, panic, true),
        }
    }
}

impl<P, K, F, Fut> IntoFuture for Handler<P, K, F>
where
    P: Clone + Send + Sync + 'static,
    K: Kind,
    F: Fn(Envelope<P, K>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutcome,
{
    type Output = ();
    type IntoFuture = BoxFuture<'static, ()>;

    fn into_future(self) -> Self::IntoFuture {
        self.run().boxed()
    }
}

impl<P: Clone + Send + Sync + 'static, K: Kind, F> fmt::Debug for Handler<P, K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("name", &self.metrics.name())
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}
