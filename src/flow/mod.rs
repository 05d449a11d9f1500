//! Flows: the one contract every long-running consumer of riverbed follows.
//!
//! A *flow* takes items from a source and hands each to a handler: a bus handler flow
//! ([`EventBus::on`](crate::bus::EventBus::on)), a reactive subscriber flow
//! ([`ReactiveStream::on`](crate::reactive::ReactiveStream::on)), a queue consumer
//! ([`MessageQueue::consumer`](crate::queue::MessageQueue::consumer)) or a pipeline
//! fed from a stream ([`Pipeline::flow_from`](crate::pipeline::Pipeline::flow_from)). They all
//! work the same way:
//!
//! - **Run.** Nothing happens until the flow is driven: `.await` it (or `run()`) to
//!   drive it inside the current task on any executor, or `spawn(&rt)` it on a
//!   runtime, where its handler invocations run as tasks of their own.
//! - **Handlers.** A handler returns `()` or `Result<(), E>` ([`HandlerOutcome`]). An
//!   error or a panic — in the handler's future or in the call that builds it — is
//!   counted in the flow's [`FlowStats`] and kept among its recent failures; it never
//!   unwinds into the driver, and the flow goes on with the next item. The
//!   `*_with_context` forms hand the handler a second argument that carries a
//!   [`StopSignal`], so a long handler can see a stop coming and finish early.
//! - **Stop with grace.** [`StopHandle::stop`] stops intake; handlers running get the
//!   grace period to finish; then they are cancelled, and what can go back goes back
//!   (a queue message to its group, uncounted; a bus event or reactive item that was
//!   taken but not handled is counted as `cancelled`).
//! - **Report.** The flow's future ends with a [`FlowReport`]: [`FlowEnd::Finished`]
//!   (its source ended and everything taken was handled), [`FlowEnd::Stopped`], or
//!   [`FlowEnd::Failed`] with the error, and the final [`FlowStats`].
//!
//! [`Flow`] is the object-safe face of all of them, so flows of different item types
//! can sit in one registry, and a [`FlowFactory`] makes a fresh flow to restart one.
//!
//! ```
//! use std::time::Duration;
//! use riverbed::flow::{BoxFlow, Flow, FlowEnd};
//! use riverbed::bus::{EventBus, Filter};
//! use riverbed::reactive::ReactiveStream;
//!
//! # futures::executor::block_on(async {
//! let bus: EventBus<u32, &str> = EventBus::new();
//! let numbers: ReactiveStream<u32> = ReactiveStream::new("numbers");
//! let flows: Vec<BoxFlow> = vec![
//!     Box::new(bus.on(Filter::all(), |_event| async {}).name("audit")),
//!     Box::new(numbers.on(|_n| async {}).name("printer")),
//! ];
//! let stops: Vec<_> = flows.iter().map(|flow| flow.stop_handle()).collect();
//! let running = futures::future::join_all(flows.into_iter().map(|flow| flow.start(None)));
//! bus.emit("tick", 1).await.unwrap();
//! numbers.emit(2).await.unwrap();
//! for stop in &stops {
//!     stop.stop_when_idle(Duration::ZERO);
//! }
//! for report in running.await {
//!     assert_eq!(report.end, FlowEnd::Stopped);
//!     assert_eq!(report.stats.handled, 1);
//! }
//! # });
//! ```

mod driver;
mod guard;
mod outcome;
mod report;
mod stats;
mod stop;

pub(crate) use self::driver::{DriveSpec, Next, Source, debug_driven, drive, driven_flow};
pub use self::guard::{HandlerFn, ItemOnly, WithContext};
pub(crate) use self::guard::{Verdict, call};
pub use self::outcome::HandlerOutcome;
pub use self::report::{FlowEnd, FlowError, FlowReport};
pub(crate) use self::stats::FlowMetrics;
pub use self::stats::{FlowFailure, FlowStats, FlowStatsHandle, RECENT_FAILURES};
pub(crate) use self::stop::{Grace, StopState};
pub use self::stop::{StopHandle, StopSignal, Stopped};

use futures_util::future::BoxFuture;

use crate::runtime::SharedRuntime;

/// The methods every flow type has alike, for a type with `metrics:
/// Arc<FlowMetrics>` and `stop: Arc<StopState>` fields and a `drive(self,
/// Option<SharedRuntime>)` that resolves to `$report`: `name`, `runtime`,
/// `stop_handle`, `stats`, `run` and `spawn`.
macro_rules! flow_handles {
    ($report:ty) => {
        /// Times the grace period of a stop on `runtime`, for a flow driven in place; a
        /// spawned flow uses the runtime it is spawned on.
        pub fn runtime(self, runtime: &$crate::runtime::SharedRuntime) -> Self {
            self.stop.set_clock(Some(runtime));
            self
        }

        /// Drives the flow inside the current task, on any executor: its invocations
        /// run concurrently (up to its limit) but not in parallel.
        pub async fn run(self) -> $report {
            self.drive(None).await
        }

        /// Spawns the flow on `runtime`, which also times its grace period: bus and
        /// reactive invocations and a consumer's workers become tasks of their own,
        /// so they run in parallel on a multi-threaded executor. Await the handle for
        /// the flow's report.
        pub fn spawn(
            self,
            runtime: &$crate::runtime::SharedRuntime,
        ) -> $crate::runtime::JoinHandle<$report> {
            $crate::runtime::RuntimeExt::spawn(
                &**runtime,
                self.drive(Some(::std::sync::Arc::clone(runtime))),
            )
        }

        /// Names the flow in its statistics and failure records.
        pub fn name(self, name: impl Into<String>) -> Self {
            self.metrics.rename(name.into());
            self
        }

        /// A handle that stops the flow gracefully (see
        /// [`StopHandle`](crate::flow::StopHandle)); the grace period is timed on the
        /// runtime the flow was given or is spawned on.
        pub fn stop_handle(&self) -> $crate::flow::StopHandle {
            $crate::flow::StopHandle {
                state: ::std::sync::Arc::clone(&self.stop),
            }
        }

        /// A handle to the flow's statistics, valid while and after it runs.
        pub fn stats(&self) -> $crate::flow::FlowStatsHandle {
            $crate::flow::FlowStatsHandle {
                metrics: ::std::sync::Arc::clone(&self.metrics),
            }
        }
    };
}
pub(crate) use flow_handles;

/// The part of an `impl Flow` every flow type has alike (see [`flow_handles`]); the
/// type writes `start` itself.
macro_rules! flow_identity {
    ($to_flow_error:expr) => {
        fn start(
            self: Box<Self>,
            runtime: Option<$crate::runtime::SharedRuntime>,
        ) -> ::futures_util::future::BoxFuture<'static, $crate::flow::FlowReport> {
            ::futures_util::FutureExt::boxed(::futures_util::FutureExt::map(
                self.drive(runtime),
                |report| report.map_err($to_flow_error),
            ))
        }

        fn name(&self) -> String {
            self.metrics.name()
        }

        fn stop_handle(&self) -> $crate::flow::StopHandle {
            Self::stop_handle(self)
        }

        fn stats(&self) -> $crate::flow::FlowStatsHandle {
            Self::stats(self)
        }
    };
}
pub(crate) use flow_identity;

/// The `IntoFuture` items of a flow type whose `drive(runtime)` gives `$report`:
/// awaiting the flow drives it in place.
macro_rules! flow_into_future {
    ($report:ty) => {
        type Output = $report;
        type IntoFuture = ::futures_util::future::BoxFuture<'static, $report>;

        fn into_future(self) -> Self::IntoFuture {
            ::futures_util::FutureExt::boxed(self.drive(None))
        }
    };
}
pub(crate) use flow_into_future;

/// A flow behind a trait object: what an owner of flows (a registry, a supervisor)
/// needs to start, stop and observe flows of any item type.
///
/// Every flow type of riverbed implements it; so does `Box<dyn Flow>`.
pub trait Flow: Send + 'static {
    /// The flow's name, as its statistics give it.
    fn name(&self) -> String;

    /// A handle to stop the flow gracefully, valid before and while it runs.
    fn stop_handle(&self) -> StopHandle;

    /// A handle to read the flow's statistics while it runs.
    fn stats(&self) -> FlowStatsHandle;

    /// Starts the flow: the future drives it to its end. With a runtime, handler
    /// invocations (a queue consumer's workers) run as tasks of it; without one,
    /// everything runs inside the future's task.
    fn start(self: Box<Self>, runtime: Option<SharedRuntime>) -> BoxFuture<'static, FlowReport>;
}

/// A flow of any kind, boxed.
pub type BoxFlow = Box<dyn Flow>;

impl<F: Flow + ?Sized> Flow for Box<F> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn stop_handle(&self) -> StopHandle {
        (**self).stop_handle()
    }

    fn stats(&self) -> FlowStatsHandle {
        (**self).stats()
    }

    fn start(self: Box<Self>, runtime: Option<SharedRuntime>) -> BoxFuture<'static, FlowReport> {
        (*self).start(runtime)
    }
}

/// Makes a fresh flow each time it is asked: how an owner restarts a flow that
/// ended. Any `Fn() -> impl Flow` is one.
///
/// ```
/// use riverbed::flow::{Flow, FlowFactory};
/// use riverbed::reactive::ReactiveStream;
///
/// let numbers: ReactiveStream<u32> = ReactiveStream::new("numbers");
/// let factory = move || numbers.on(|_n| async {}).name("printer");
/// let first = factory.make();
/// let second = factory.make(); // a new subscription, a new flow
/// assert_eq!((first.name(), second.name()), ("printer".to_owned(), "printer".to_owned()));
/// ```
pub trait FlowFactory: Send + Sync + 'static {
    /// A new flow, not yet started.
    fn make(&self) -> BoxFlow;
}

impl<F, Fl> FlowFactory for F
where
    F: Fn() -> Fl + Send + Sync + 'static,
    Fl: Flow,
{
    fn make(&self) -> BoxFlow {
        Box::new(self())
    }
}
