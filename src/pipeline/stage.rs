//! [`Stage`]: one processor applied to a stream of items, with concurrency, ordering,
//! an error policy and statistics.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_core::{FusedStream, Stream};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;

use super::policy::{DeadLetter, ErrorPolicy};
use super::stats::{StageMetrics, StageStatsHandle};
use super::{Processor, StageError};
use crate::runtime::{RuntimeExt, SharedRuntime, panic_message};
use crate::{BoxError, FlowContext};

/// An item in a pipeline: the value and its context, or the error that stopped an
/// earlier stage.
pub type Flowing<T> = Result<(T, FlowContext), StageError>;

/// How one item left the processor.
enum Done<Out> {
    Emitted(Out, FlowContext),
    Dropped,
    Failed(StageError),
}

type ItemFuture<Out> = BoxFuture<'static, Done<Out>>;

enum Running<Out> {
    Ordered(FuturesOrdered<ItemFuture<Out>>),
    Unordered(FuturesUnordered<ItemFuture<Out>>),
}

impl<Out> Running<Out> {
    fn len(&self) -> usize {
        match self {
            Running::Ordered(r) => r.len(),
            Running::Unordered(r) => r.len(),
        }
    }

    fn push(&mut self, future: ItemFuture<Out>) {
        match self {
            Running::Ordered(r) => r.push_back(future),
            Running::Unordered(r) => r.push(future),
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Done<Out>>> {
        match self {
            Running::Ordered(r) => r.poll_next_unpin(cx),
            Running::Unordered(r) => r.poll_next_unpin(cx),
        }
    }

    fn clear(&mut self) {
        match self {
            Running::Ordered(r) => *r = FuturesOrdered::new(),
            Running::Unordered(r) => r.clear(),
        }
    }
}

pin_project! {
    /// A stream that runs a [`Processor`] on every item of another stream; from
    /// [`FlowStreamExt::pipe`](super::FlowStreamExt::pipe).
    ///
    /// - **Order**: with concurrency 1, or [`ordered`](Self::concurrency) (the default),
    ///   outputs keep their inputs' order; [`unordered`](Self::unordered) emits each
    ///   output as soon as it is ready.
    /// - **Backpressure**: the stage pulls a new item only while fewer than its
    ///   concurrency are in flight and its consumer keeps polling, so a slow consumer
    ///   bounds how many items the stage holds.
    /// - **Errors**: an error (or a panic) of the processor goes to the stage's
    ///   [`ErrorPolicy`] (default [`Fail`](ErrorPolicy::Fail)). `Fail` emits a
    ///   [`StageError`] and ends the stream, cancelling the items in flight; an error
    ///   coming from upstream passes through the same way after the items in flight.
    /// - **Context**: each item's [`FlowContext`] goes with it to the processor and on
    ///   to the output.
    /// - **Cancellation**: dropping the stage drops the items in flight.
    #[must_use = "streams do nothing unless polled"]
    pub struct Stage<S, P, In>
    where
        P: Processor<In>,
    {
        #[pin]
        upstream: S,
        processor: Arc<P>,
        policy: Arc<ErrorPolicy<In>>,
        runtime: Option<SharedRuntime>,
        metrics: Arc<StageMetrics>,
        concurrency: usize,
        running: Running<P::Out>,
        upstream_done: bool,
        upstream_error: Option<StageError>,
        done: bool,
    }
}

impl<S, P, In> Stage<S, P, In>
where
    S: Stream<Item = Flowing<In>>,
    P: Processor<In>,
    In: Send + 'static,
{
    pub(crate) fn new(upstream: S, processor: P) -> Self {
        Stage {
            upstream,
            processor: Arc::new(processor),
            policy: Arc::new(ErrorPolicy::Fail),
            runtime: None,
            metrics: Arc::new(StageMetrics::new(Arc::from("stage"))),
            concurrency: 1,
            running: Running::Ordered(FuturesOrdered::new()),
            upstream_done: false,
            upstream_error: None,
            done: false,
        }
    }

    /// Names the stage in statistics and errors (default `"stage"`). Take
    /// [`stats`](Self::stats) after naming.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        let mut metrics = StageMetrics::new(name.into());
        metrics.enabled = self.metrics.enabled;
        self.metrics = Arc::new(metrics);
        self
    }

    /// Process up to `limit` items at once (at least 1), keeping their order.
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    /// Emit outputs as they complete rather than in input order.
    pub fn unordered(mut self) -> Self {
        self.running = Running::Unordered(FuturesUnordered::new());
        self
    }

    /// What to do with an item whose processor fails.
    pub fn on_error(mut self, policy: ErrorPolicy<In>) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// The runtime whose clock times the stage and whose timer waits between retries.
    /// Without one, latency is measured with `Instant::now` and retries do not wait.
    pub fn runtime(mut self, runtime: &SharedRuntime) -> Self {
        self.runtime = Some(Arc::clone(runtime));
        self
    }

    /// Turns statistics off for this stage: no counters, no clock reads. Errors still
    /// name the stage.
    pub fn without_stats(mut self) -> Self {
        let mut metrics = StageMetrics::new(Arc::clone(&self.metrics.name));
        metrics.enabled = false;
        self.metrics = Arc::new(metrics);
        self
    }

    /// A handle to this stage's statistics; it stays valid after the stage is dropped.
    pub fn stats(&self) -> StageStatsHandle {
        StageStatsHandle {
            metrics: Arc::clone(&self.metrics),
        }
    }

    fn item_future(&self, item: In, ctx: FlowContext) -> ItemFuture<P::Out> {
        let item_run = ItemRun {
            processor: Arc::clone(&self.processor),
            policy: Arc::clone(&self.policy),
            runtime: self.runtime.clone(),
            metrics: Arc::clone(&self.metrics),
        };
        Box::pin(item_run.run(item, ctx))
    }
}

impl<S, P, In> Stream for Stage<S, P, In>
where
    S: Stream<Item = Flowing<In>>,
    P: Processor<In>,
    In: Send + 'static,
{
    type Item = Flowing<P::Out>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            // Pull while there is room and nothing stopped the stage.
            while !self.upstream_done
                && self.upstream_error.is_none()
                && self.running.len() < self.concurrency
            {
                let this = self.as_mut().project();
                match this.upstream.poll_next(cx) {
                    Poll::Ready(Some(Ok((item, ctx)))) => {
                        self.metrics.hit(|m| &m.received);
                        let future = self.item_future(item, ctx);
                        self.as_mut().project().running.push(future);
                    }
                    Poll::Ready(Some(Err(error))) => *this.upstream_error = Some(error),
                    Poll::Ready(None) => *this.upstream_done = true,
                    Poll::Pending => break,
                }
            }
            let this = self.as_mut().project();
            match this.running.poll_next(cx) {
                Poll::Ready(Some(Done::Emitted(out, ctx))) => {
                    return Poll::Ready(Some(Ok((out, ctx))));
                }
                Poll::Ready(Some(Done::Dropped)) => continue,
                Poll::Ready(Some(Done::Failed(error))) => {
                    // Fail stops the stage: the items in flight are cancelled.
                    this.running.clear();
                    *this.done = true;
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(None) => {
                    if let Some(error) = this.upstream_error.take() {
                        *this.done = true;
                        return Poll::Ready(Some(Err(error)));
                    }
                    if *this.upstream_done {
                        *this.done = true;
                        return Poll::Ready(None);
                    }
                    return Poll::Pending;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S, P, In> FusedStream for Stage<S, P, In>
where
    S: Stream<Item = Flowing<In>>,
    P: Processor<In>,
    In: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S, P, In> fmt::Debug for Stage<S, P, In>
where
    P: Processor<In>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.metrics.name)
            .field("concurrency", &self.concurrency)
            .field("policy", &self.policy)
            .field("in_flight", &self.running.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// What one item's future needs, shared with the stage.
struct ItemRun<P, In> {
    processor: Arc<P>,
    policy: Arc<ErrorPolicy<In>>,
    runtime: Option<SharedRuntime>,
    metrics: Arc<StageMetrics>,
}

/// Keeps the in-flight gauge right even when the item's future is cancelled.
struct InFlight(Arc<StageMetrics>);

impl InFlight {
    fn enter(metrics: &Arc<StageMetrics>) -> Self {
        metrics.in_flight.inc();
        InFlight(Arc::clone(metrics))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

impl<P, In> ItemRun<P, In>
where
    P: Processor<In>,
    In: Send + 'static,
{
    fn now(&self) -> Instant {
        self.runtime
            .as_ref()
            .map_or_else(Instant::now, |rt| rt.now())
    }

    /// Runs the processor once, turning a panic into an error of the item.
    async fn attempt(&self, item: In, ctx: &FlowContext) -> Result<Option<P::Out>, BoxError> {
        let processor = &self.processor;
        let outcome = match catch_unwind(AssertUnwindSafe(|| processor.process(item, ctx))) {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        outcome.unwrap_or_else(|panic| {
            self.metrics.hit(|m| &m.panics);
            Err(Box::new(ProcessorPanicked {
                message: panic_message(panic.as_ref()).map(str::to_owned),
            }))
        })
    }

    async fn run(self, item: In, ctx: FlowContext) -> Done<P::Out> {
        if !self.metrics.enabled {
            return self.settle(item, ctx).await;
        }
        let _in_flight = InFlight::enter(&self.metrics);
        let started = self.now();
        let done = self.settle(item, ctx).await;
        self.metrics
            .record_latency(self.now().saturating_duration_since(started));
        done
    }

    async fn settle(&self, item: In, ctx: FlowContext) -> Done<P::Out> {
        let copy = self.policy.copier();
        let mut attempts = 0u32;
        let mut current = item;
        let mut policy: &ErrorPolicy<In> = &self.policy;
        let mut backoff = None;
        loop {
            attempts += 1;
            let mut kept = copy.map(|copy| copy(&current));
            let error = match self.attempt(current, &ctx).await {
                Ok(Some(out)) => {
                    self.metrics.hit(|m| &m.emitted);
                    return Done::Emitted(out, ctx);
                }
                Ok(None) => {
                    self.metrics.hit(|m| &m.filtered);
                    return Done::Dropped;
                }
                Err(error) => error,
            };
            // Walk the policy chain until one of them decides.
            loop {
                match policy {
                    ErrorPolicy::Retry {
                        policy: retry,
                        then,
                        ..
                    } => {
                        let delay = backoff.get_or_insert_with(|| retry.backoff()).next();
                        match (delay, kept.take()) {
                            (Some(delay), Some(again)) => {
                                self.metrics.hit(|m| &m.retried);
                                if let Some(rt) = &self.runtime {
                                    if !delay.is_zero() {
                                        rt.sleep(delay).await;
                                    }
                                }
                                current = again;
                                break;
                            }
                            // Attempts used up: the next policy decides, with the item.
                            (_, back) => {
                                kept = back;
                                policy = then;
                                backoff = None;
                            }
                        }
                    }
                    ErrorPolicy::Skip => {
                        self.metrics.hit(|m| &m.skipped);
                        return Done::Dropped;
                    }
                    ErrorPolicy::DeadLetter { sink, .. } => {
                        let Some(item) = kept else {
                            self.metrics.hit(|m| &m.failed);
                            return Done::Failed(self.error(error, ctx, attempts));
                        };
                        let letter = DeadLetter {
                            item,
                            error,
                            ctx: ctx.clone(),
                            stage: Arc::clone(&self.metrics.name),
                            attempts,
                        };
                        return match sink.send(letter).await {
                            Ok(()) => {
                                self.metrics.hit(|m| &m.dead_lettered);
                                Done::Dropped
                            }
                            Err(send_error) => {
                                self.metrics.hit(|m| &m.failed);
                                Done::Failed(self.error(send_error, ctx, attempts))
                            }
                        };
                    }
                    ErrorPolicy::Fail => {
                        self.metrics.hit(|m| &m.failed);
                        return Done::Failed(self.error(error, ctx, attempts));
                    }
                }
            }
        }
    }

    fn error(&self, error: BoxError, ctx: FlowContext, attempts: u32) -> StageError {
        StageError {
            stage: Arc::clone(&self.metrics.name),
            error,
            ctx,
            attempts,
        }
    }
}

/// A processor panicked while processing an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorPanicked {
    /// The panic message, when it was a string.
    pub message: Option<String>,
}

impl fmt::Display for ProcessorPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(message) => write!(f, "processor panicked: {message}"),
            None => f.write_str("processor panicked"),
        }
    }
}

impl std::error::Error for ProcessorPanicked {}
