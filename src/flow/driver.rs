//! The concurrency-limited driver of item flows (bus handlers and reactive
//! subscribers): takes items from a source, runs up to a limit of guarded handler
//! invocations at once, and stops with grace.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::guard::{HandlerFn, Verdict, call};
use super::stats::FlowMetrics;
use super::stop::{Grace, StopSignal, StopState};
use super::{FlowEnd, FlowReport};
use crate::runtime::{JoinHandle, RuntimeExt, SharedRuntime};

/// What a source hands the driver next.
pub(crate) enum Next<T, E> {
    /// An item to handle.
    Item(T),
    /// Nothing to handle (a notice the flow has no use for); ask again.
    Skip,
    /// The source ended.
    End,
    /// The source failed; the flow ends with the error once what runs is done.
    Fail(E),
}

/// Where an item flow takes its items from.
pub(crate) trait Source: Unpin + Send + 'static {
    type Item: Send + 'static;
    type Error: Send + 'static;
    /// What the driver keeps of an item while it is handled, to describe a failure.
    type Tag: Send + 'static;

    fn poll_next_item(&mut self, cx: &mut Context<'_>) -> Poll<Next<Self::Item, Self::Error>>;

    /// The tag of an item about to be handled.
    fn tag(&mut self, item: &Self::Item) -> Self::Tag;

    /// How a failure record names the item.
    fn describe(tag: &Self::Tag) -> String;
}

/// What the driver needs besides the source and the handler.
pub(crate) struct DriveSpec {
    pub(crate) concurrency: usize,
    /// Each invocation is spawned on it when given.
    pub(crate) runtime: Option<SharedRuntime>,
    pub(crate) stop: Arc<StopState>,
    pub(crate) metrics: Arc<FlowMetrics>,
}

/// The `drive` of a flow type on this driver, resolving to `$report`: for a type
/// with `source`, `handler`, `concurrency`, `stop` and `metrics` fields, and a
/// `settle(&self)` giving what hears of each invocation's end (see [`drive`]).
macro_rules! driven_flow {
    ($report:ty) => {
        fn drive(
            self,
            runtime: Option<$crate::runtime::SharedRuntime>,
        ) -> impl ::std::future::Future<Output = $report> + Send + 'static {
            let settle = self.settle();
            let spec = $crate::flow::DriveSpec {
                concurrency: self.concurrency,
                runtime,
                stop: self.stop,
                metrics: self.metrics,
            };
            $crate::flow::drive(self.source, self.handler, spec, settle)
        }
    };
}
pub(crate) use driven_flow;

/// The `Debug` of a flow type on this driver.
pub(crate) fn debug_driven(
    f: &mut fmt::Formatter<'_>,
    kind: &str,
    metrics: &FlowMetrics,
    concurrency: usize,
) -> fmt::Result {
    f.debug_struct(kind)
        .field("name", &metrics.name())
        .field("concurrency", &concurrency)
        .finish_non_exhaustive()
}

/// One invocation in flight: a future in this task, or a task of the runtime, which
/// is aborted if the invocation is cancelled.
enum Body {
    Local(BoxFuture<'static, Verdict>),
    Spawned(JoinHandle<Verdict>),
}

struct Running<T> {
    tag: Option<T>,
    started: Instant,
    body: Body,
}

// The tag is never pinned: it is only moved out once the invocation ended.
impl<T> Unpin for Running<T> {}

impl<T> Future for Running<T> {
    type Output = (T, Instant, Verdict);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let verdict = match &mut self.body {
            Body::Local(future) => std::task::ready!(future.poll_unpin(cx)),
            Body::Spawned(handle) => match std::task::ready!(handle.poll_unpin(cx)) {
                Ok(verdict) => verdict,
                Err(join) => Verdict::Panicked(join.to_string()),
            },
        };
        let tag = self
            .tag
            .take()
            .expect("a running invocation is polled after it ended");
        Poll::Ready((tag, self.started, verdict))
    }
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        if let Body::Spawned(handle) = &self.body {
            // Cancelled before it ended: the task must not outlive the flow.
            handle.abort();
        }
    }
}

/// Drives `source` through `handler` until the source ends or fails, or a stop.
/// `settled` hears of each invocation's end, after the flow's own counters were
/// updated (for the component's counters and failure events).
pub(crate) async fn drive<S, H>(
    source: S,
    handler: Arc<H>,
    spec: DriveSpec,
    mut settled: impl FnMut(S::Tag, &Verdict, &FlowMetrics),
) -> FlowReport<S::Error>
where
    S: Source,
    H: HandlerFn<S::Item, StopSignal>,
{
    let DriveSpec {
        concurrency,
        runtime,
        stop,
        metrics,
    } = spec;
    stop.set_clock(runtime.as_ref());
    let mut source = Some(source);
    let mut running: FuturesUnordered<Running<S::Tag>> = FuturesUnordered::new();
    let mut end: Option<FlowEnd<S::Error>> = None;
    let mut grace = Grace::default();
    std::future::poll_fn(|cx| {
        loop {
            while let Poll::Ready(Some((tag, started, verdict))) = running.poll_next_unpin(cx) {
                metrics.finish(started);
                match verdict.failure() {
                    None => metrics.handled.inc(),
                    Some((message, panicked)) => {
                        metrics.fail(S::describe(&tag), message, panicked);
                    }
                }
                settled(tag, &verdict, &metrics);
            }
            if source.is_some() && stop.halts_intake() {
                // Leave the source now (a Block subscription holds publishers back).
                source = None;
                end.get_or_insert(FlowEnd::Stopped);
            }
            if let Some(src) = source.as_mut().filter(|_| running.len() < concurrency) {
                match src.poll_next_item(cx) {
                    Poll::Ready(Next::Item(item)) => {
                        let tag = src.tag(&item);
                        let started = metrics.start();
                        let guarded = call(&*handler, item, || StopSignal::new(&stop));
                        let body = match &runtime {
                            None => Body::Local(guarded.boxed()),
                            Some(rt) => Body::Spawned(rt.spawn(guarded)),
                        };
                        running.push(Running {
                            tag: Some(tag),
                            started,
                            body,
                        });
                        continue;
                    }
                    Poll::Ready(Next::Skip) => continue,
                    Poll::Ready(Next::End) => {
                        source = None;
                        end = Some(if stop.requested() {
                            FlowEnd::Stopped
                        } else {
                            FlowEnd::Finished
                        });
                    }
                    Poll::Ready(Next::Fail(error)) => {
                        source = None;
                        end = Some(FlowEnd::Failed(error));
                    }
                    Poll::Pending => {
                        if stop.requested() {
                            // Draining, and nothing more is ready: intake ends.
                            source = None;
                            end.get_or_insert(FlowEnd::Stopped);
                            continue;
                        }
                    }
                }
            }
            if running.is_empty()
                && let Some(end) = end.take()
            {
                return Poll::Ready(end);
            }
            match stop.poll_grace_over(&mut grace, cx) {
                Poll::Ready(()) if !running.is_empty() => {
                    // The grace period ran out: cancel what still runs.
                    let cancelled = running.len() as u64;
                    running.clear();
                    metrics.end(cancelled);
                    metrics.cancelled.add(cancelled);
                }
                Poll::Ready(()) => {
                    // A stop with nothing running: the intake checks above end it.
                    if source.is_none() && end.is_none() {
                        end = Some(FlowEnd::Stopped);
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
    .into_report(&metrics)
}

impl<E> FlowEnd<E> {
    pub(crate) fn into_report(self, metrics: &FlowMetrics) -> FlowReport<E> {
        FlowReport {
            end: self,
            stats: metrics.snapshot(),
        }
    }
}
