//! [`Handler`]: a bus handler flow — an async function run for every matching event,
//! on the shared flow driver ([`crate::flow`]).

use std::convert::Infallible;
use std::fmt;
use std::future::IntoFuture;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::stream::StreamExt;

use super::{Envelope, HandlerFailure, Kind, Subscription};
use crate::flow::{
    Flow, FlowMetrics, FlowReport, HandlerFn, Next, Source, StopSignal, StopState, Verdict,
};
use crate::runtime::SharedRuntime;

/// The broadcast core that carries handler failures as events.
pub(crate) type FailureCore = crate::broadcast::Core<HandlerFailure>;

/// A handler flow from [`EventBus::on`](super::EventBus::on) (or
/// [`on_with_context`](super::EventBus::on_with_context)): runs the handler for every
/// matching event until the bus closes and every event sent to it has been handled, or
/// until it is stopped.
///
/// It follows the [flow contract](crate::flow): nothing runs until the flow is driven —
/// `.await` it or call [`run`](Self::run) to drive it inside the current task, or
/// [`spawn`](Self::spawn) it on a runtime, where each invocation becomes a task of its
/// own and so runs in parallel on a multi-threaded executor.
/// [`stop_handle`](Self::stop_handle) stops it with grace; its future resolves to a [`FlowReport`]
/// (finished when the bus closed, or stopped).
///
/// Up to [`concurrency`](Self::concurrency) invocations run at once (default 1: events
/// are handled one after the other, in order). The handler's subscription uses the
/// `Block` policy, so a slow handler slows publishers rather than losing events.
///
/// An invocation that returns `Err` or panics is isolated: it is counted and recorded
/// in the flow's statistics ([`BusStats::handlers`](super::BusStats::handlers), with
/// the error or panic message), published on
/// [`EventBus::handler_failures`](super::EventBus::handler_failures), and the flow goes
/// on with the next event.
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
/// let report = flow.await; // handles all three, then ends because the bus is closed
/// assert!(report.is_finished());
/// assert_eq!((report.stats.handled, report.stats.failed), (2, 1));
///
/// let stats = bus.stats();
/// assert_eq!(stats.handler_failures, 1);
/// assert_eq!(stats.handlers[0].recent_failures[0].message, "two is not allowed");
/// # });
/// ```
#[must_use = "a handler flow does nothing until it is awaited or spawned"]
pub struct Handler<P: Clone + Send + Sync + 'static, K: Kind, H> {
    source: Events<P, K>,
    handler: Arc<H>,
    metrics: Arc<FlowMetrics>,
    stop: Arc<StopState>,
    concurrency: usize,
}

/// The bus side of a handler flow: its subscription, and where failures go.
struct Events<P: Clone + Send + Sync + 'static, K: Kind> {
    subscription: Subscription<P, K>,
    failures: Arc<FailureCore>,
}

impl<P: Clone + Send + Sync + 'static, K: Kind> Source for Events<P, K> {
    type Item = Envelope<P, K>;
    type Error = Infallible;
    type Tag = (u64, K);

    fn poll_next_item(&mut self, cx: &mut Context<'_>) -> Poll<Next<Self::Item, Infallible>> {
        self.subscription
            .poll_next_unpin(cx)
            .map(|next| match next {
                Some(Ok(event)) => Next::Item(event),
                // The handler's subscription uses Block: no lag can occur.
                Some(Err(_lagged)) => Next::Skip,
                None => Next::End,
            })
    }

    fn tag(&mut self, event: &Envelope<P, K>) -> (u64, K) {
        (event.seq, event.kind.clone())
    }

    fn describe((seq, kind): &(u64, K)) -> String {
        format!("seq {seq}, kind {kind:?}")
    }
}

impl<P, K, H> Handler<P, K, H>
where
    P: Clone + Send + Sync + 'static,
    K: Kind,
    H: HandlerFn<Envelope<P, K>, StopSignal>,
{
    crate::flow::flow_handles!(FlowReport<Infallible>);

    pub(crate) fn new(
        subscription: Subscription<P, K>,
        handler: H,
        metrics: Arc<FlowMetrics>,
        failures: Arc<FailureCore>,
        clock: Option<SharedRuntime>,
    ) -> Self {
        Handler {
            source: Events {
                subscription,
                failures,
            },
            handler: Arc::new(handler),
            metrics,
            stop: StopState::new(clock),
            concurrency: 1,
        }
    }

    /// How many invocations may run at once (at least 1; default 1).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    crate::flow::driven_flow!(FlowReport<Infallible>);

    /// Publishes each failed invocation on the bus's failure events.
    fn settle(&self) -> impl FnMut((u64, K), &Verdict, &FlowMetrics) + Send + use<P, K, H> {
        let failures = Arc::clone(&self.source.failures);
        move |(seq, kind), verdict, metrics| {
            if let Some((message, panicked)) = verdict.failure() {
                let failure = HandlerFailure {
                    handler: metrics.name(),
                    seq,
                    kind: format!("{kind:?}"),
                    message: message.to_owned(),
                    panicked,
                };
                // Failure subscribers drop their oldest rather than hold a handler
                // back, so this never waits; with no subscriber it keeps nothing.
                let _ = failures.try_publish(failure, &mut |_, _| {});
            }
        }
    }
}

impl<P, K, H> IntoFuture for Handler<P, K, H>
where
    P: Clone + Send + Sync + 'static,
    K: Kind,
    H: HandlerFn<Envelope<P, K>, StopSignal>,
{
    crate::flow::flow_into_future!(FlowReport<Infallible>);
}

impl<P, K, H> Flow for Handler<P, K, H>
where
    P: Clone + Send + Sync + 'static,
    K: Kind,
    H: HandlerFn<Envelope<P, K>, StopSignal>,
{
    crate::flow::flow_identity!(|never| match never {});
}

impl<P: Clone + Send + Sync + 'static, K: Kind, H> fmt::Debug for Handler<P, K, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::flow::debug_driven(f, "Handler", &self.metrics, self.concurrency)
    }
}
