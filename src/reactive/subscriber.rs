//! [`Subscriber`]: a handler flow over a [`ReactiveStream`](super::ReactiveStream), on
//! the shared flow driver ([`crate::flow`]).

use std::fmt;
use std::future::IntoFuture;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::stream::StreamExt;

use super::subscription::{StreamError, Subscription};
use crate::flow::{
    Flow, FlowMetrics, FlowReport, HandlerFn, Next, Source, StopSignal, StopState, Verdict,
};

/// A handler flow from [`ReactiveStream::on`](super::ReactiveStream::on) (or
/// [`on_with_context`](super::ReactiveStream::on_with_context)): runs the handler for
/// every item until the stream ends, or until it is stopped.
///
/// It follows the [flow contract](crate::flow): nothing runs until the flow is driven
/// — `.await` it (it implements [`IntoFuture`]), call [`run`](Self::run) to drive it in
/// the current task, or [`spawn`](Self::spawn) it on a runtime, where each invocation
/// is a task of its own. Its [`FlowReport`] says how it ended: finished when the
/// stream completed, failed with `e` when the stream failed with `e` (after every item
/// before the error was handled), or stopped through its [`stop_handle`](Self::stop_handle).
///
/// Up to [`concurrency`](Self::concurrency) invocations run at once (default 1: items
/// are handled one after the other, in order). The flow subscribes with the `Block`
/// policy: a slow handler slows emitters down rather than losing items.
///
/// An invocation that returns `Err` or panics is isolated: it is counted in the flow's
/// statistics and in the stream's [`ReactiveStats`](super::ReactiveStats)
/// (`handler_failures`, `handler_panics`), and the flow goes on with the next item.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use riverbed::reactive::ReactiveStream;
///
/// # futures::executor::block_on(async {
/// let stream: ReactiveStream<u32> = ReactiveStream::new("numbers");
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = Arc::clone(&seen);
/// let flow = stream
///     .on(move |n| {
///         let sink = Arc::clone(&sink);
///         async move {
///             if n == 2 {
///                 return Err("two is not welcome");
///             }
///             sink.lock().unwrap().push(n);
///             Ok(())
///         }
///     })
///     .concurrency(2);
/// for n in 1..=3 {
///     stream.emit(n).await.unwrap();
/// }
/// stream.complete().unwrap();
/// let report = flow.await; // handles all three, then ends with the stream
/// assert!(report.is_finished());
///
/// assert_eq!(*seen.lock().unwrap(), [1, 3]);
/// assert_eq!(stream.stats().handler_failures, 1);
/// # });
/// ```
#[must_use = "a subscriber flow does nothing until it is awaited or spawned"]
pub struct Subscriber<T: Clone + Send + Sync + 'static, E, H> {
    source: Items<T, E>,
    handler: Arc<H>,
    concurrency: usize,
    metrics: Arc<FlowMetrics>,
    stop: Arc<StopState>,
}

/// The stream side of a subscriber flow: its subscription, and the items counted.
struct Items<T: Clone + Send + Sync + 'static, E> {
    subscription: Subscription<T, E>,
    taken: u64,
}

impl<T, E> Source for Items<T, E>
where
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    type Item = T;
    type Error = E;
    type Tag = u64;

    fn poll_next_item(&mut self, cx: &mut Context<'_>) -> Poll<Next<T, E>> {
        self.subscription
            .poll_next_unpin(cx)
            .map(|next| match next {
                Some(Ok(item)) => Next::Item(item),
                // Block subscribers never lag.
                Some(Err(StreamError::Lagged(_))) => Next::Skip,
                Some(Err(StreamError::Failed(error))) => Next::Fail(error),
                None => Next::End,
            })
    }

    fn tag(&mut self, _item: &T) -> u64 {
        self.taken += 1;
        self.taken - 1
    }

    fn describe(index: &u64) -> String {
        format!("item {index}")
    }
}

impl<T, E, H> Subscriber<T, E, H>
where
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
    H: HandlerFn<T, StopSignal>,
{
    crate::flow::flow_handles!(FlowReport<E>);

    pub(crate) fn new(subscription: Subscription<T, E>, handler: H) -> Self {
        let name = subscription.stream.name.to_string();
        Subscriber {
            source: Items {
                subscription,
                taken: 0,
            },
            handler: Arc::new(handler),
            concurrency: 1,
            metrics: FlowMetrics::new(name, None),
            stop: StopState::new(None),
        }
    }

    /// How many invocations may run at once (at least 1; default 1).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    crate::flow::driven_flow!(FlowReport<E>);

    /// Counts each invocation's end in the stream's statistics.
    fn settle(&self) -> impl FnMut(u64, &Verdict, &FlowMetrics) + Send + use<T, E, H> {
        let stream = Arc::clone(&self.source.subscription.stream);
        move |_index, verdict, _metrics| {
            let counters = &stream.counters;
            match verdict.failure() {
                None => counters.handled.inc(),
                Some((_, false)) => counters.handler_failures.inc(),
                Some((_, true)) => counters.handler_panics.inc(),
            }
        }
    }
}

impl<T, E, H> IntoFuture for Subscriber<T, E, H>
where
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
    H: HandlerFn<T, StopSignal>,
{
    crate::flow::flow_into_future!(FlowReport<E>);
}

impl<T, E, H> Flow for Subscriber<T, E, H>
where
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + fmt::Display + 'static,
    H: HandlerFn<T, StopSignal>,
{
    crate::flow::flow_identity!(crate::flow::FlowError::msg);
}

impl<T: Clone + Send + Sync + 'static, E, H> fmt::Debug for Subscriber<T, E, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::flow::debug_driven(f, "Subscriber", &self.metrics, self.concurrency)
    }
}
