//! [`PipelineFlow`]: a pipeline fed from a stream, run under the flow contract.

use std::fmt;
use std::future::IntoFuture;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::named::Build;
use super::stage::Flowing;
use super::stats::FailureHook;
use super::{FlowStreamExt, StageError, StageStatsHandle};
use crate::FlowContext;
use crate::flow::{Flow, FlowEnd, FlowError, FlowMetrics, FlowReport, FlowStats, Grace, StopState};
use crate::runtime::SharedRuntime;

/// A [`Pipeline`](super::Pipeline) fed from a stream and run as a flow; from
/// [`Pipeline::flow_from`](super::Pipeline::flow_from).
///
/// It follows the [flow contract](crate::flow): `.await` it, [`run`](Self::run) it in
/// place or [`spawn`](Self::spawn) it. Each item of the source enters the pipeline
/// with a new [`FlowContext`](crate::FlowContext); the last stage's outputs are
/// counted as `handled` and let go (end the pipeline with a stage that sends them on
/// if you need them). A stop ends intake; the items inside the stages get the grace
/// period to come out, then the stages are dropped and the items still in them are
/// counted as `cancelled`. It ends finished when the source ends and the stages are
/// drained, failed when a stage's `Fail` policy stops it (with that
/// [`StageError`]).
///
/// Its [`FlowStats`] add up the stages: `failed` counts items an error ended
/// (skipped, dead-lettered or failed) other than by a panic, `panicked` processor
/// panics, `in_flight` items inside the stages; latency is the last stage's.
/// `recent_failures` names each such item by its context's flow id and the stage
/// (`flow 0193…, stage "parse"`), with the error's message.
///
/// ```
/// use std::time::Duration;
/// use riverbed::pipeline::{map, Pipeline};
///
/// # futures::executor::block_on(async {
/// let flow = Pipeline::<u32>::new("double")
///     .stage(map(|n: u32| async move { n * 2 }))
///     .flow_from(futures::stream::iter(1..=3));
/// let report = flow.await;
/// assert!(report.is_finished());
/// assert_eq!(report.stats.handled, 3);
/// # });
/// ```
#[must_use = "a pipeline flow does nothing until it is awaited or spawned"]
pub struct PipelineFlow<In, Out> {
    source: BoxStream<'static, In>,
    build: Build<In, Out>,
    stages: Vec<StageStatsHandle>,
    stop: Arc<StopState>,
    metrics: Arc<FlowMetrics>,
}

impl<In: Send + 'static, Out: Send + 'static> PipelineFlow<In, Out> {
    crate::flow::flow_handles!(FlowReport<StageError>);

    pub(crate) fn new(
        name: &str,
        build: Build<In, Out>,
        stages: Vec<StageStatsHandle>,
        source: BoxStream<'static, In>,
    ) -> Self {
        let view_stages = stages.clone();
        let metrics = FlowMetrics::with_view(
            name,
            Box::new(move |stats: &mut FlowStats| add_stages(stats, &view_stages)),
        );
        for stage in &stages {
            let recent = Arc::downgrade(&metrics);
            // A stage belongs to one started pipeline; its first flow keeps the hook.
            let _ = stage.metrics.failures.set(FailureHook(Box::new(
                move |stage: &str, ctx: &FlowContext, message: &str, panicked: bool| {
                    if let Some(metrics) = recent.upgrade() {
                        let item = format!("flow {}, stage {stage:?}", ctx.flow_id());
                        metrics.remember(item, message, panicked);
                    }
                },
            )));
        }
        PipelineFlow {
            source,
            build,
            stages,
            stop: StopState::new(None),
            metrics,
        }
    }

    fn drive(
        self,
        runtime: Option<SharedRuntime>,
    ) -> impl Future<Output = FlowReport<StageError>> + Send + 'static {
        let PipelineFlow {
            source,
            build,
            stages,
            stop,
            metrics,
        } = self;
        stop.set_clock(runtime.as_ref());
        let intake = Intake {
            source,
            stop: Arc::clone(&stop),
        };
        let input: BoxStream<'static, Flowing<In>> = intake.flow().boxed();
        let mut output = Some(build(input));
        async move {
            let mut grace = Grace::default();
            let end = std::future::poll_fn(|cx| {
                let Some(stream) = output.as_mut() else {
                    return Poll::Ready(FlowEnd::Stopped);
                };
                loop {
                    match stream.poll_next_unpin(cx) {
                        Poll::Ready(Some(Ok(_))) => {
                            metrics.handled.inc();
                            continue;
                        }
                        Poll::Ready(Some(Err(error))) => {
                            return Poll::Ready(FlowEnd::Failed(error));
                        }
                        Poll::Ready(None) => {
                            return Poll::Ready(if stop.requested() {
                                FlowEnd::Stopped
                            } else {
                                FlowEnd::Finished
                            });
                        }
                        Poll::Pending => {}
                    }
                    std::task::ready!(stop.poll_grace_over(&mut grace, cx));
                    // The grace period ran out: the stages, and what is in them, go.
                    let before = cancelled(&stages);
                    output = None;
                    metrics
                        .cancelled
                        .add(cancelled(&stages).saturating_sub(before));
                    return Poll::Ready(FlowEnd::Stopped);
                }
            })
            .await;
            drop(output);
            end.into_report(&metrics)
        }
    }
}

/// Items the stages dropped while in flight.
fn cancelled(stages: &[StageStatsHandle]) -> u64 {
    stages.iter().map(|s| s.snapshot().cancelled).sum()
}

/// Adds the stages' counts to a pipeline flow's snapshot.
fn add_stages(stats: &mut FlowStats, stages: &[StageStatsHandle]) {
    let snapshots: Vec<_> = stages.iter().map(StageStatsHandle::snapshot).collect();
    let errors: u64 = snapshots
        .iter()
        .map(|s| s.skipped + s.dead_lettered + s.failed)
        .sum();
    // A stage counts a panic as its item's error too; a flow counts it once, as a
    // panic.
    let panics: u64 = snapshots.iter().map(|s| s.panics).sum();
    stats.failed += errors.saturating_sub(panics);
    stats.panicked += panics;
    stats.in_flight += snapshots.iter().map(|s| s.in_flight).sum::<u64>();
    if let Some(last) = snapshots.last() {
        stats.latency = last.latency.clone();
    }
}

/// The source, ended early by a stop: at once, or (draining) once it has nothing
/// ready.
struct Intake<In> {
    source: BoxStream<'static, In>,
    stop: Arc<StopState>,
}

impl<In> Stream for Intake<In> {
    type Item = In;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<In>> {
        if self.stop.halts_intake() {
            return Poll::Ready(None);
        }
        match self.source.poll_next_unpin(cx) {
            Poll::Pending if self.stop.requested() => Poll::Ready(None),
            other => other,
        }
    }
}

impl<In: Send + 'static, Out: Send + 'static> IntoFuture for PipelineFlow<In, Out> {
    crate::flow::flow_into_future!(FlowReport<StageError>);
}

impl<In: Send + 'static, Out: Send + 'static> Flow for PipelineFlow<In, Out> {
    crate::flow::flow_identity!(FlowError::new);
}

impl<In, Out> fmt::Debug for PipelineFlow<In, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineFlow")
            .field("name", &self.metrics.name())
            .field("stages", &self.stages.len())
            .finish_non_exhaustive()
    }
}
