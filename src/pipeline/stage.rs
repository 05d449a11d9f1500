//! [`Stage`]: one processor applied to a stream of items, with concurrency, ordering,
//! an error policy and statistics.

use std::fmt;
use std::future::Future;
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

use super::policy::{DeadLetter, ErrorPolicy, PolicyKind};
use super::stats::{StageMetrics, StageStatsHandle};
use super::{Outcome, Processor, StageError};
use crate::retry::{RetryNext, Retrying};
use crate::runtime::{SharedRuntime, panic_message};
use crate::{BoxError, FlowContext};

/// An item in a pipeline: the value and its context, or the error that stopped an
/// earlier stage.
pub type Flowing<T> = Result<(T, FlowContext), StageError>;

/// How one item left the processor.
pub(crate) enum Done<Out> {
    Emitted(Out, FlowContext),
    Dropped,
    Failed(StageError),
}

/// The items a stage processes at once when its concurrency is above 1. (At
/// concurrency 1 the item lives in the stage itself: see [`Stage::poll_single`].)
enum Running<P: Processor<In>, In: Send + 'static> {
    Ordered(FuturesOrdered<ItemFut<P, In>>),
    Unordered(FuturesUnordered<ItemFut<P, In>>),
}

impl<P: Processor<In>, In: Send + 'static> Running<P, In> {
    fn len(&self) -> usize {
        match self {
            Running::Ordered(r) => r.len(),
            Running::Unordered(r) => r.len(),
        }
    }

    fn push(&mut self, future: ItemFut<P, In>) {
        match self {
            Running::Ordered(r) => r.push_back(future),
            Running::Unordered(r) => r.push(future),
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Done<P::Out>>> {
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
    ///   [`ErrorPolicy`] (default [`fail`](ErrorPolicy::fail)). `Fail` emits a
    ///   [`StageError`] and ends the stream, cancelling the items in flight; an error
    ///   coming from upstream passes through the same way after the items in flight.
    /// - **Context**: each item's [`FlowContext`] goes with it to the processor and on
    ///   to the output.
    /// - **Cancellation**: dropping the stage drops the items in flight.
    /// - **Pinning**: like `StreamExt::then`, a stage keeps its processor's future in
    ///   place, so it is `Unpin` only when that future is; to call `next()` on a stage
    ///   directly, pin it first (`std::pin::pin!` or `Box::pin`). Combinators that
    ///   consume it (`collect`, `for_each`, `forward`, a [`Pipeline`](super::Pipeline))
    ///   need nothing.
    #[must_use = "streams do nothing unless polled"]
    #[project = StageProj]
    pub struct Stage<S, P, In>
    where
        P: Processor<In>,
        In: Send,
        In: 'static,
    {
        #[pin]
        upstream: S,
        shared: Arc<Shared<P, In>>,
        concurrency: usize,
        unordered: bool,
        // Concurrency 1: the processor's future of the item in progress, its context,
        // a copy of the item when the policy may need it again, and its mark.
        #[pin]
        future: Option<P::Future>,
        ctx: Option<FlowContext>,
        kept: Option<In>,
        mark: Mark,
        // Concurrency 1: the rest of an item's life when its policy has more to do.
        slow: Option<BoxFuture<'static, Done<P::Out>>>,
        // Concurrency above 1: the items in flight.
        running: Running<P, In>,
        upstream_done: bool,
        upstream_error: Option<StageError>,
        done: bool,
    }
    impl<S, P, In> PinnedDrop for Stage<S, P, In>
    where
        P: Processor<In>,
        In: Send,
        In: 'static,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if this.ctx.is_some() {
                // Dropped in flight: cancelled.
                this.shared.cancel(*this.mark);
            }
        }
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
            shared: Arc::new(Shared {
                processor: Arc::new(processor),
                policy: Arc::new(ErrorPolicy::fail()),
                runtime: None,
                metrics: Arc::new(StageMetrics::new(Arc::from("stage"))),
                stats: true,
                copier: None,
                bookkeeping: true,
            }),
            concurrency: 1,
            unordered: false,
            future: None,
            ctx: None,
            kept: None,
            mark: Mark::default(),
            slow: None,
            running: Running::Ordered(FuturesOrdered::new()),
            upstream_done: false,
            upstream_error: None,
            done: false,
        }
    }

    /// Changes the shared settings (cheap: every part is behind its own `Arc`).
    fn configure(mut self, change: impl FnOnce(&mut Shared<P, In>)) -> Self {
        let mut shared = Shared::clone(&self.shared);
        change(&mut shared);
        shared.stats = shared.metrics.enabled;
        shared.copier = shared.policy.copier();
        shared.bookkeeping = shared.stats || shared.copier.is_some();
        self.shared = Arc::new(shared);
        self
    }

    /// Picks the container for items in flight from the concurrency and ordering.
    fn rearm(mut self) -> Self {
        self.running = if self.unordered {
            Running::Unordered(FuturesUnordered::new())
        } else {
            Running::Ordered(FuturesOrdered::new())
        };
        self
    }

    /// Names the stage in statistics and errors (default `"stage"`). Take
    /// [`stats`](Self::stats) after naming.
    pub fn name(self, name: impl Into<Arc<str>>) -> Self {
        let name = name.into();
        self.remake_metrics(|metrics| metrics.name = name)
    }

    /// Replaces the (not yet shared) statistics with a fresh set configured like the
    /// current one, then changed by `change`.
    fn remake_metrics(self, change: impl FnOnce(&mut StageMetrics)) -> Self {
        self.configure(|shared| {
            let mut metrics = StageMetrics::new(Arc::clone(&shared.metrics.name));
            metrics.enabled = shared.metrics.enabled;
            metrics.latency_every = shared.metrics.latency_every;
            change(&mut metrics);
            shared.metrics = Arc::new(metrics);
        })
    }

    /// Process up to `limit` items at once (at least 1), keeping their order.
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self.rearm()
    }

    /// Emit outputs as they complete rather than in input order.
    pub fn unordered(mut self) -> Self {
        self.unordered = true;
        self.rearm()
    }

    /// What to do with an item whose processor fails.
    pub fn on_error(self, policy: ErrorPolicy<In>) -> Self {
        self.configure(|shared| shared.policy = Arc::new(policy))
    }

    /// The runtime whose clock times the stage and whose timer waits between retries.
    /// Without one, latency is measured with `Instant::now` and retries do not wait.
    pub fn runtime(self, runtime: &SharedRuntime) -> Self {
        self.configure(|shared| shared.runtime = Some(Arc::clone(runtime)))
    }

    /// Turns statistics off for this stage: no counters, no clock reads. Errors still
    /// name the stage.
    pub fn without_stats(self) -> Self {
        self.remake_metrics(|metrics| metrics.enabled = false)
    }

    /// Times one item in `every` (default 32; 1 times them all). Latency percentiles
    /// come from the timed items; counters are always exact.
    pub fn latency_sampling(self, every: u64) -> Self {
        self.remake_metrics(|metrics| metrics.latency_every = every.max(1))
    }

    /// A handle to this stage's statistics; it stays valid after the stage is dropped.
    pub fn stats(&self) -> StageStatsHandle {
        StageStatsHandle {
            metrics: Arc::clone(&self.shared.metrics),
        }
    }
}

impl<S, P, In> Stream for Stage<S, P, In>
where
    S: Stream<Item = Flowing<In>>,
    P: Processor<In>,
    In: Send + 'static,
{
    type Item = Flowing<P::Out>;

    // Inlined into the stage after it, so a chain of stages at concurrency 1 compiles
    // to one loop, as a chain of `StreamExt` combinators does.
    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.concurrency == 1 {
            self.poll_single(cx)
        } else {
            self.poll_many(cx)
        }
    }
}

impl<S, P, In> Stage<S, P, In>
where
    S: Stream<Item = Flowing<In>>,
    P: Processor<In>,
    In: Send + 'static,
{
    /// Concurrency above 1: up to `concurrency` item futures in a `FuturesOrdered` or
    /// `FuturesUnordered`.
    #[inline(never)]
    fn poll_many(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Flowing<P::Out>>> {
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
                        let future = ItemFut::start(this.shared, item, ctx);
                        this.running.push(future);
                    }
                    Poll::Ready(Some(Err(error))) => *this.upstream_error = Some(error),
                    Poll::Ready(None) => *this.upstream_done = true,
                    Poll::Pending => break,
                }
            }
            let this = self.as_mut().project();
            match this.running.poll_next(cx) {
                Poll::Ready(Some(done)) => match emit(done, this.done) {
                    Some(item) => {
                        if *this.done {
                            // Fail stops the stage: the items in flight are cancelled.
                            this.running.clear();
                        }
                        return Poll::Ready(Some(item));
                    }
                    None => continue,
                },
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

impl<S, P, In> Stage<S, P, In>
where
    S: Stream<Item = Flowing<In>>,
    P: Processor<In>,
    In: Send + 'static,
{
    /// Concurrency 1: the item being processed lives in the stage itself (its
    /// future pinned in place, its context and mark in plain fields), polled with the
    /// stage's settings borrowed, so the common case allocates nothing and clones
    /// nothing per item.
    #[inline]
    fn poll_single(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Flowing<P::Out>>> {
        let mut this = self.project();
        loop {
            if let Some(future) = this.future.as_mut().as_pin_mut() {
                let outcome = std::task::ready!(this.shared.poll_processor(future, cx));
                this.future.set(None);
                // The context is always there while a future is; `None` cannot happen.
                let Some(ctx) = this.ctx.take() else { continue };
                let shared = &**this.shared;
                // The common case, an output, settles here.
                let outcome = match outcome {
                    Ok(Some(out)) => {
                        if shared.stats {
                            shared.metrics.emitted.inc_exclusive();
                            shared.finish(std::mem::take(this.mark));
                        }
                        return Poll::Ready(Some(Ok((out, ctx))));
                    }
                    other => other,
                };
                let mark = std::mem::take(this.mark);
                match this.shared.conclude(outcome, ctx, this.kept.take(), mark) {
                    Concluded::Done(done) => {
                        if let Some(item) = emit(done, this.done) {
                            return Poll::Ready(Some(item));
                        }
                    }
                    Concluded::Slow(future) => *this.slow = Some(future),
                }
                continue;
            }
            if this.slow.is_some() || *this.done {
                // An item whose policy has more to do, or the end.
                if let Some(future) = this.slow {
                    let done = std::task::ready!(future.as_mut().poll(cx));
                    *this.slow = None;
                    match emit(done, this.done) {
                        Some(item) => return Poll::Ready(Some(item)),
                        None => continue,
                    }
                }
                return Poll::Ready(None);
            }
            match std::task::ready!(this.upstream.as_mut().poll_next(cx)) {
                Some(Ok((item, ctx))) => {
                    // `kept` is empty and `mark` is the default here (taken when the
                    // last item settled); write them only when they change, and leave
                    // `ctx` where it lands.
                    let shared = &**this.shared;
                    if shared.bookkeeping {
                        shared.prepare(&item, this.mark, this.kept);
                    }
                    let ctx = this.ctx.insert(ctx);
                    match shared.call(item, ctx) {
                        Ok(future) => this.future.set(Some(future)),
                        // The processor panicked before it returned a future.
                        Err(error) => {
                            let kept = this.kept.take();
                            let mark = std::mem::take(this.mark);
                            if let Some(ctx) = this.ctx.take() {
                                *this.slow = Some(this.shared.slow(error, kept, ctx, mark));
                            }
                        }
                    }
                }
                // Nothing is in flight here, so an error from upstream passes at once
                // and the stage ends with it, as it does at its upstream's end.
                Some(Err(error)) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(error)));
                }
                None => {
                    *this.done = true;
                    return Poll::Ready(None);
                }
            }
        }
    }
}

/// What the stage's stream yields for a settled item, if anything; a failure also
/// ends the stage.
#[inline(always)]
fn emit<Out>(done: Done<Out>, stage_done: &mut bool) -> Option<Flowing<Out>> {
    match done {
        Done::Emitted(out, ctx) => Some(Ok((out, ctx))),
        Done::Dropped => None,
        Done::Failed(error) => {
            *stage_done = true;
            Some(Err(error))
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
    In: Send + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.shared.metrics.name)
            .field("concurrency", &self.concurrency)
            .field("policy", &self.shared.policy)
            .field("in_flight", &self.running.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// What a stage's items share: the processor, the policy, the clock, the statistics.
pub(crate) struct Shared<P, In> {
    processor: Arc<P>,
    policy: Arc<ErrorPolicy<In>>,
    runtime: Option<SharedRuntime>,
    metrics: Arc<StageMetrics>,
    // Read per item, so kept here rather than behind `metrics` and `policy`:
    /// Whether statistics are on (`metrics.enabled`).
    stats: bool,
    /// How to copy an item the policy may need again (`policy.copier()`).
    copier: Option<fn(&In) -> In>,
    /// `stats || copier.is_some()`: whether an item needs anything before its call.
    bookkeeping: bool,
}

impl<P, In> Shared<P, In> {
    fn now(&self) -> Instant {
        self.runtime
            .as_ref()
            .map_or_else(Instant::now, |rt| rt.now())
    }

    /// Counts an item in and keeps a copy of it if the policy may need one; out of
    /// line, so a stage without either stays a tight loop.
    #[inline(never)]
    fn prepare(&self, item: &In, mark: &mut Mark, kept: &mut Option<In>) {
        if self.stats {
            *mark = self.admit();
        }
        if let Some(copy) = self.copier {
            *kept = Some(copy(item));
        }
    }

    /// Counts an item in.
    #[inline(always)]
    fn admit(&self) -> Mark {
        let metrics = &self.metrics;
        if !metrics.enabled {
            return Mark::default();
        }
        let n = metrics.received.next_exclusive();
        let every = metrics.latency_every;
        // A mask for the usual powers of two, a division otherwise.
        let sampled = if every.is_power_of_two() {
            n & (every - 1) == 0
        } else {
            n.is_multiple_of(every.max(1))
        };
        Mark {
            live: true,
            started: sampled.then(|| self.now()),
        }
    }

    /// Counts an item out when it has settled: its latency, if sampled. (Items in
    /// flight are those received and not yet settled: the snapshot works it out.)
    #[inline(always)]
    fn finish(&self, mark: Mark) {
        if let Some(started) = mark.started {
            self.metrics
                .record_latency(self.now().saturating_duration_since(started));
        }
    }

    /// Counts an item out that was dropped before it settled.
    #[inline]
    fn cancel(&self, mark: Mark) {
        if mark.live {
            self.metrics.cancelled.inc_exclusive();
        }
    }
}

/// An item's place in the statistics, from [`Shared::admit`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mark {
    /// Counted in flight (statistics are on).
    live: bool,
    /// When it started, if its latency is sampled.
    started: Option<Instant>,
}

/// A [`Mark`] that counts its item as cancelled if it is dropped before
/// [`finish`](Self::finish): for item futures that the stage does not hold itself.
pub(crate) struct Tracked<P, In> {
    shared: Arc<Shared<P, In>>,
    mark: Option<Mark>,
}

impl<P, In> Tracked<P, In> {
    fn new(shared: Arc<Shared<P, In>>, mark: Mark) -> Self {
        Tracked {
            shared,
            mark: Some(mark),
        }
    }

    /// The mark, handed over: dropping the `Tracked` afterwards counts nothing.
    fn take(&mut self) -> Mark {
        self.mark.take().unwrap_or_default()
    }

    fn finish(mut self) {
        let mark = self.take();
        self.shared.finish(mark);
    }
}

impl<P, In> Drop for Tracked<P, In> {
    fn drop(&mut self) {
        if let Some(mark) = self.mark.take() {
            self.shared.cancel(mark);
        }
    }
}

impl<P, In> Clone for Shared<P, In> {
    fn clone(&self) -> Self {
        Shared {
            processor: Arc::clone(&self.processor),
            policy: Arc::clone(&self.policy),
            runtime: self.runtime.clone(),
            metrics: Arc::clone(&self.metrics),
            stats: self.stats,
            copier: self.copier,
            bookkeeping: self.bookkeeping,
        }
    }
}

pin_project! {
    /// One item going through the processor.
    ///
    /// The common case — the processor's future completes with an output, a filter or
    /// an error that `Skip` or `Fail` settles — runs here with no allocation. An error
    /// that needs more work (retries, a dead-letter send) continues in a boxed future.
    #[project = ItemProj]
    #[project_replace = ItemReplace]
    pub(crate) enum ItemFut<P, In>
    where
        P: Processor<In>,
    {
        Fast {
            #[pin]
            future: P::Future,
            tracked: Tracked<P, In>,
            ctx: FlowContext,
            // A copy of the item, when the policy may need it again.
            kept: Option<In>,
        },
        Slow {
            future: BoxFuture<'static, Done<P::Out>>,
        },
        Finished,
    }
}

impl<P, In> ItemFut<P, In>
where
    P: Processor<In>,
    In: Send + 'static,
{
    fn start(shared: &Arc<Shared<P, In>>, item: In, ctx: FlowContext) -> Self {
        let mark = shared.admit();
        let kept = shared.copier.map(|copy| copy(&item));
        match shared.call(item, &ctx) {
            Ok(future) => ItemFut::Fast {
                future,
                tracked: Tracked::new(Arc::clone(shared), mark),
                ctx,
                kept,
            },
            // The processor panicked before it returned a future.
            Err(error) => ItemFut::Slow {
                future: shared.slow(error, kept, ctx, mark),
            },
        }
    }
}

impl<P, In> Future for ItemFut<P, In>
where
    P: Processor<In>,
    In: Send + 'static,
{
    type Output = Done<P::Out>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let outcome = match self.as_mut().project() {
            ItemProj::Fast {
                future, tracked, ..
            } => std::task::ready!(tracked.shared.poll_processor(future, cx)),
            ItemProj::Slow { future } => {
                let done = std::task::ready!(future.as_mut().poll(cx));
                self.set(ItemFut::Finished);
                return Poll::Ready(done);
            }
            ItemProj::Finished => return Poll::Pending,
        };
        let ItemReplace::Fast {
            mut tracked,
            ctx,
            kept,
            ..
        } = self.as_mut().project_replace(ItemFut::Finished)
        else {
            return Poll::Pending;
        };
        let mark = tracked.take();
        match tracked.shared.conclude(outcome, ctx, kept, mark) {
            Concluded::Done(done) => Poll::Ready(done),
            Concluded::Slow(future) => {
                self.set(ItemFut::Slow { future });
                self.poll(cx)
            }
        }
    }
}

/// How an item's first attempt settles: at once, or in a boxed future when its policy
/// has more to do (retries, a dead-letter send).
enum Concluded<Out> {
    Done(Done<Out>),
    Slow(BoxFuture<'static, Done<Out>>),
}

impl<P, In> Shared<P, In>
where
    P: Processor<In>,
    In: Send + 'static,
{
    /// Polls a processor's future, turning a panic into an error of the item.
    #[inline(always)]
    fn poll_processor(
        &self,
        future: Pin<&mut P::Future>,
        cx: &mut Context<'_>,
    ) -> Poll<Outcome<P::Out>> {
        catch_unwind(AssertUnwindSafe(|| future.poll(cx)))
            .unwrap_or_else(|panic| Poll::Ready(Err(self.panicked(panic))))
    }

    /// Settles an item after its first attempt: counted and decided at once, or (for
    /// a policy with more to do) continued in a boxed future.
    #[inline(always)]
    fn conclude(
        self: &Arc<Self>,
        outcome: Outcome<P::Out>,
        ctx: FlowContext,
        kept: Option<In>,
        mark: Mark,
    ) -> Concluded<P::Out> {
        let error = match outcome {
            Ok(Some(out)) => {
                self.metrics.hit(|m| &m.emitted);
                self.finish(mark);
                return Concluded::Done(Done::Emitted(out, ctx));
            }
            Ok(None) => {
                self.metrics.hit(|m| &m.filtered);
                self.finish(mark);
                return Concluded::Done(Done::Dropped);
            }
            Err(error) => error,
        };
        match &self.policy.kind {
            PolicyKind::Skip => {
                self.metrics.hit(|m| &m.skipped);
                self.metrics.ended_by(&ctx, &error);
                self.finish(mark);
                Concluded::Done(Done::Dropped)
            }
            PolicyKind::Fail => {
                self.metrics.hit(|m| &m.failed);
                self.metrics.ended_by(&ctx, &error);
                self.finish(mark);
                Concluded::Done(Done::Failed(self.error(error, ctx, 1)))
            }
            PolicyKind::Retry { .. } | PolicyKind::DeadLetter { .. } => {
                Concluded::Slow(self.slow(error, kept, ctx, mark))
            }
        }
    }

    /// The rest of an item's life after an error its policy must work on.
    fn slow(
        self: &Arc<Self>,
        error: BoxError,
        kept: Option<In>,
        ctx: FlowContext,
        mark: Mark,
    ) -> BoxFuture<'static, Done<P::Out>> {
        let tracked = Tracked::new(Arc::clone(self), mark);
        Box::pin(async move {
            let done = tracked.shared.settle(error, kept, ctx, 1).await;
            tracked.finish();
            done
        })
    }

    /// Calls the processor, turning a panic into an error of the item.
    fn call(&self, item: In, ctx: &FlowContext) -> Result<P::Future, BoxError> {
        catch_unwind(AssertUnwindSafe(|| self.processor.process(item, ctx)))
            .map_err(|panic| self.panicked(panic))
    }

    fn panicked(&self, panic: Box<dyn std::any::Any + Send>) -> BoxError {
        self.metrics.hit(|m| &m.panics);
        Box::new(ProcessorPanicked {
            message: panic_message(panic.as_ref()).map(str::to_owned),
        })
    }

    /// Runs the processor once more, to completion, turning a panic into an error.
    async fn attempt(&self, item: In, ctx: &FlowContext) -> Result<Option<P::Out>, BoxError> {
        let future = self.call(item, ctx)?;
        AssertUnwindSafe(future)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(self.panicked(panic)))
    }

    /// Applies the policy chain to an item's error: retries (running the processor
    /// again), a dead-letter send, a skip or a failure.
    async fn settle(
        &self,
        mut error: BoxError,
        mut kept: Option<In>,
        ctx: FlowContext,
        mut attempts: u32,
    ) -> Done<P::Out> {
        let copy = self.copier;
        let mut policy: &ErrorPolicy<In> = &self.policy;
        let mut retrying: Option<Retrying> = None;
        loop {
            match &policy.kind {
                PolicyKind::Retry {
                    policy: retry,
                    retryable,
                    then,
                    ..
                } => {
                    let again = match kept.take() {
                        Some(item) => {
                            let run = retrying.get_or_insert_with(|| {
                                Retrying::new(retry, self.runtime.clone(), retryable.clone())
                            });
                            match run.after(&error).await {
                                RetryNext::Again => Ok(item),
                                RetryNext::NotRetryable | RetryNext::Exhausted { .. } => {
                                    Err(Some(item))
                                }
                            }
                        }
                        None => Err(None),
                    };
                    match again {
                        Ok(again) => {
                            self.metrics.hit(|m| &m.retried);
                            attempts += 1;
                            kept = copy.map(|copy| copy(&again));
                            match self.attempt(again, &ctx).await {
                                Ok(Some(out)) => {
                                    self.metrics.hit(|m| &m.emitted);
                                    return Done::Emitted(out, ctx);
                                }
                                Ok(None) => {
                                    self.metrics.hit(|m| &m.filtered);
                                    return Done::Dropped;
                                }
                                Err(next) => error = next,
                            }
                        }
                        // Attempts used up: the next policy decides, with the item.
                        Err(back) => {
                            kept = back;
                            policy = then;
                            retrying = None;
                        }
                    }
                }
                PolicyKind::Skip => {
                    self.metrics.hit(|m| &m.skipped);
                    self.metrics.ended_by(&ctx, &error);
                    return Done::Dropped;
                }
                PolicyKind::DeadLetter { sink, .. } => {
                    self.metrics.ended_by(&ctx, &error);
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
                PolicyKind::Fail => {
                    self.metrics.hit(|m| &m.failed);
                    self.metrics.ended_by(&ctx, &error);
                    return Done::Failed(self.error(error, ctx, attempts));
                }
            }
        }
    }

    fn error(&self, error: BoxError, ctx: FlowContext, attempts: u32) -> StageError {
        StageError::new(Arc::clone(&self.metrics.name), error, ctx, attempts)
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
