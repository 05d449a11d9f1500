//! [`Pipeline`]: a named chain of stages with an input to feed and an output to read.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, Sink, StreamExt};
use serde::{Deserialize, Serialize};

use super::stage::{Flowing, Stage};
use super::{FlowStreamExt, PipelineFlow, Processor, StageError, StageStats, StageStatsHandle};
use crate::FlowContext;
use crate::runtime::{JoinHandle, RuntimeExt, SharedRuntime};

pub(crate) type Build<In, Out> =
    Box<dyn FnOnce(BoxStream<'static, Flowing<In>>) -> BoxStream<'static, Flowing<Out>> + Send>;

/// The default number of items the input holds before `feed` waits.
pub const DEFAULT_INPUT_CAPACITY: usize = 64;

/// A named pipeline: stages chained with compile-time checked types, an input to
/// [`feed`](PipelineInput::feed) and an output to read — the seed's `AsyncDataPipeline`
/// with `add_processor`, `feed_data` and `get_output`.
///
/// [`start`](Self::start) gives the input and an output stream that drives the stages
/// as it is polled (no task, any executor); [`spawn`](Self::spawn) drives them in a
/// task on a runtime and hands outputs over through a bounded channel. Either way,
/// dropping the output stops every stage, and feeding after that fails with
/// [`FeedError`], handing the item back.
///
/// ```
/// use futures::StreamExt;
/// use riverbed::FlowContext;
/// use riverbed::pipeline::{map, try_map, ErrorPolicy, FlowStreamExt, Pipeline};
///
/// # futures::executor::block_on(async {
/// let pipeline = Pipeline::<String>::new("orders")
///     .stage_with(try_map(|s: String| async move { s.parse::<u32>() }), |stage| {
///         stage.name("validate").on_error(ErrorPolicy::skip())
///     })
///     .stage(map(|n: u32| async move { n * 100 }));
/// let stats = pipeline.stats();
/// let (mut input, output) = pipeline.start();
///
/// let ctx = FlowContext::new();
/// let feeder = async move {
///     for line in ["1", "oops", "3"] {
///         input.feed(line.to_string(), ctx.clone()).await.unwrap();
///     }
///     // dropping the input ends the pipeline once it is drained
/// };
/// let (_, out) = futures::join!(feeder, output.values().collect::<Vec<_>>());
/// assert_eq!(out.into_iter().map(Result::unwrap).collect::<Vec<_>>(), [100, 300]);
/// assert_eq!(stats.snapshot().stages[0].skipped, 1);
/// # });
/// ```
pub struct Pipeline<In, Out = In> {
    name: Arc<str>,
    capacity: usize,
    build: Build<In, Out>,
    stages: Vec<StageStatsHandle>,
}

impl<In: Send + 'static> Pipeline<In, In> {
    /// An empty pipeline named `name`: it passes items through until stages are added.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Pipeline {
            name: name.into(),
            capacity: DEFAULT_INPUT_CAPACITY,
            build: Box::new(|input| input),
            stages: Vec::new(),
        }
    }
}

impl<In: Send + 'static, Out: Send + 'static> Pipeline<In, Out> {
    /// Adds a stage running `processor` with the default settings (concurrency 1,
    /// ordered, `Fail` on error), named `"<pipeline>.<n>"`.
    pub fn stage<P>(self, processor: P) -> Pipeline<In, P::Out>
    where
        P: Processor<Out>,
    {
        self.stage_with(processor, |stage| stage)
    }

    /// Adds a stage running `processor`, configured by `configure` (name, concurrency,
    /// ordering, error policy, runtime, statistics).
    pub fn stage_with<P, F>(mut self, processor: P, configure: F) -> Pipeline<In, P::Out>
    where
        P: Processor<Out>,
        F: FnOnce(
            Stage<BoxStream<'static, Flowing<Out>>, P, Out>,
        ) -> Stage<BoxStream<'static, Flowing<Out>>, P, Out>,
    {
        let default_name = format!("{}.{}", self.name, self.stages.len());
        // Build the stage once now, on an empty stream, to learn its configuration and
        // statistics handle; it is rebuilt on the real input when the pipeline starts.
        let (tx, rx) = futures_channel::oneshot::channel::<BoxStream<'static, Flowing<Out>>>();
        let upstream: BoxStream<'static, Flowing<Out>> = futures_util::stream::once(rx)
            .filter_map(|r| async move { r.ok() })
            .flatten()
            .boxed();
        let stage = configure(upstream.pipe(processor).name(default_name));
        self.stages.push(stage.stats());
        let previous = self.build;
        Pipeline {
            name: self.name,
            capacity: self.capacity,
            stages: self.stages,
            build: Box::new(move |input| {
                // The stage already holds its (deferred) upstream: hand it the real one.
                let _ = tx.send(previous(input));
                stage.boxed()
            }),
        }
    }

    /// How many fed items the input holds before [`feed`](PipelineInput::feed) waits
    /// (default [`DEFAULT_INPUT_CAPACITY`]; at least 1, 0 counts as 1), however many
    /// clones of the input feed it.
    pub fn input_capacity(mut self, items: usize) -> Self {
        self.capacity = items;
        self
    }

    /// A handle to the statistics of every stage, valid after the pipeline is started.
    pub fn stats(&self) -> PipelineStatsHandle {
        PipelineStatsHandle {
            name: Arc::clone(&self.name),
            stages: self.stages.clone(),
        }
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts the pipeline: the input to feed, and the output stream, which drives the
    /// stages as it is polled. The output ends when every input handle is dropped and
    /// the stages are drained, or after a stage's error.
    pub fn start(self) -> (PipelineInput<In>, PipelineOutput<Out>) {
        let (tx, rx) = async_channel::bounded::<(In, FlowContext)>(self.capacity.max(1));
        let input: BoxStream<'static, Flowing<In>> = rx.map(Ok).boxed();
        let output = (self.build)(input);
        (
            PipelineInput { tx, sending: None },
            PipelineOutput {
                inner: Output::Direct(output),
            },
        )
    }

    /// The pipeline fed from `source` and run as a flow (see [`PipelineFlow`]): each
    /// item enters with a new context, outputs are counted and let go, and it stops
    /// with grace like every flow.
    pub fn flow_from<S>(self, source: S) -> PipelineFlow<In, Out>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        PipelineFlow::new(&self.name, self.build, self.stages, source.boxed())
    }

    /// Starts the pipeline in a task on `runtime`; outputs are handed over through a
    /// channel of `capacity` items (at least 1). Dropping the output stops the task at its next
    /// output; the handle resolves when the task ends.
    pub fn spawn(
        self,
        runtime: &SharedRuntime,
        capacity: usize,
    ) -> (PipelineInput<In>, PipelineOutput<Out>, JoinHandle<()>) {
        let (input, output) = self.start();
        let (tx, rx) = async_channel::bounded::<Flowing<Out>>(capacity.max(1));
        let task = runtime.spawn(async move {
            let mut output = output;
            while let Some(item) = output.next().await {
                if tx.send(item).await.is_err() {
                    // The reader is gone: stop the stages.
                    return;
                }
            }
        });
        (
            input,
            PipelineOutput {
                inner: Output::Channel(Box::pin(rx)),
            },
            task,
        )
    }
}

impl<In, Out> fmt::Debug for Pipeline<In, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.name)
            .field("stages", &self.stages.len())
            .field("input_capacity", &self.capacity)
            .finish()
    }
}

/// Feeding failed because the pipeline's output was dropped (or its task ended); the
/// item and its context are handed back.
#[derive(Debug, thiserror::Error)]
#[error("the pipeline has stopped: nothing reads its output any more")]
pub struct FeedError<In> {
    /// The item that was not fed.
    pub item: In,
    /// Its context.
    pub ctx: FlowContext,
}

/// The input of a started [`Pipeline`]: a bounded [`async-channel`](async_channel).
/// Clone it for more producers; the pipeline's input ends when every clone is dropped.
///
/// It is also a [`Sink`] of `(item, context)` pairs, so a stream can be forwarded in
/// (`send`, `send_all` and `forward` flush as they go). As with any `Sink`, an item
/// given to `start_send` is only sure to be in once the sink is flushed: one that
/// found the input full and was not flushed when the handle drops goes in only if
/// the input has room by then.
pub struct PipelineInput<In> {
    tx: async_channel::Sender<(In, FlowContext)>,
    /// The `Sink` side's item that found the input full, on its way in.
    sending: Option<BoxFuture<'static, Result<(), PipelineClosed>>>,
}

impl<In> Clone for PipelineInput<In> {
    fn clone(&self) -> Self {
        PipelineInput {
            tx: self.tx.clone(),
            sending: None,
        }
    }
}

impl<In> PipelineInput<In> {
    /// Feeds one item with its context, waiting while the input is full (backpressure).
    pub async fn feed(&mut self, item: In, ctx: FlowContext) -> Result<(), FeedError<In>> {
        // An item this handle's `Sink` side accepted goes in first, keeping the order.
        if std::future::poll_fn(|cx| self.poll_sending(cx))
            .await
            .is_err()
        {
            return Err(FeedError { item, ctx });
        }
        self.tx.send((item, ctx)).await.map_err(|refused| {
            let (item, ctx) = refused.into_inner();
            FeedError { item, ctx }
        })
    }

    /// Whether the pipeline has stopped reading its input.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Items fed and not yet taken in by the first stage.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// Whether no fed item is waiting for the first stage.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }

    fn poll_sending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PipelineClosed>> {
        let Some(sending) = self.sending.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let done = std::task::ready!(sending.poll_unpin(cx));
        self.sending = None;
        Poll::Ready(done)
    }
}

impl<In: Send + 'static> Sink<(In, FlowContext)> for PipelineInput<In> {
    type Error = PipelineClosed;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        std::task::ready!(self.poll_sending(cx))?;
        if self.tx.is_closed() {
            return Poll::Ready(Err(PipelineClosed));
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, item: (In, FlowContext)) -> Result<(), Self::Error> {
        match self.tx.try_send(item) {
            Ok(()) => Ok(()),
            Err(async_channel::TrySendError::Closed(_)) => Err(PipelineClosed),
            // Full: the item waits for room in a send of its own, which `poll_ready`,
            // `poll_flush` and `feed` drive (one allocation per item that finds the
            // input full). As the `Sink` contract says, an item is only sure to be in
            // once `poll_flush` (or the next `poll_ready`) has completed.
            Err(async_channel::TrySendError::Full(item)) => {
                let tx = self.tx.clone();
                self.sending = Some(Box::pin(async move {
                    tx.send(item).await.map_err(|_| PipelineClosed)
                }));
                Ok(())
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_sending(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Closing one handle only flushes it: the input ends when every clone is gone.
        self.poll_sending(cx)
    }
}

impl<In> Drop for PipelineInput<In> {
    fn drop(&mut self) {
        // A last try for an item the `Sink` side accepted and nobody flushed.
        if let Some(sending) = self.sending.take() {
            let _sent = sending.now_or_never();
        }
    }
}

impl<In> fmt::Debug for PipelineInput<In> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineInput")
            .field("closed", &self.tx.is_closed())
            .field("waiting", &self.tx.len())
            .finish()
    }
}

/// The pipeline stopped reading its input (as a [`Sink`] error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline has stopped reading its input")]
pub struct PipelineClosed;

enum Output<Out> {
    Direct(BoxStream<'static, Flowing<Out>>),
    Channel(Pin<Box<async_channel::Receiver<Flowing<Out>>>>),
}

/// The output of a started [`Pipeline`]: a stream of [`Flowing`] items (use
/// [`FlowStreamExt::values`] for the values alone). Dropping it stops the pipeline.
pub struct PipelineOutput<Out> {
    inner: Output<Out>,
}

impl<Out: Send + 'static> PipelineOutput<Out> {
    /// Drives the pipeline to its end, discarding the outputs: the number of outputs,
    /// or the error that stopped a stage.
    pub async fn run(mut self) -> Result<u64, StageError> {
        let mut outputs = 0;
        while let Some(item) = self.next().await {
            item?;
            outputs += 1;
        }
        Ok(outputs)
    }
}

impl<Out> Stream for PipelineOutput<Out> {
    type Item = Flowing<Out>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.inner {
            Output::Direct(stream) => stream.poll_next_unpin(cx),
            Output::Channel(rx) => rx.poll_next_unpin(cx),
        }
    }
}

impl<Out> fmt::Debug for PipelineOutput<Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.inner {
            Output::Direct(_) => "direct",
            Output::Channel(_) => "spawned",
        };
        f.debug_struct("PipelineOutput")
            .field("mode", &mode)
            .finish()
    }
}

/// A handle to a pipeline's statistics, valid after it is started.
#[derive(Debug, Clone)]
pub struct PipelineStatsHandle {
    name: Arc<str>,
    stages: Vec<StageStatsHandle>,
}

impl PipelineStatsHandle {
    /// A snapshot of every stage's statistics, in stage order.
    pub fn snapshot(&self) -> PipelineStats {
        PipelineStats {
            name: self.name.to_string(),
            stages: self.stages.iter().map(StageStatsHandle::snapshot).collect(),
        }
    }
}

/// A pipeline's statistics: one [`StageStats`] per stage; serialisable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineStats {
    /// The pipeline's name.
    pub name: String,
    /// Each stage's statistics, in stage order.
    pub stages: Vec<StageStats>,
}

impl PipelineStats {
    /// Items that entered the pipeline (the first stage's `received`).
    pub fn received(&self) -> u64 {
        self.stages.first().map_or(0, |s| s.received)
    }

    /// Items that came out of the pipeline (the last stage's `emitted`).
    pub fn emitted(&self) -> u64 {
        self.stages.last().map_or(0, |s| s.emitted)
    }
}
