//! Pipelines: items flow through [`Processor`]s that validate, enrich, transform or drop
//! them.
//!
//! A processor takes an item and its [`FlowContext`](crate::FlowContext) and returns,
//! asynchronously, an [`Outcome`]: `Ok(Some(out))` (continue with `out`), `Ok(None)`
//! (the item is filtered out) or `Err(error)` (handled by the stage's error policy).
//! Async closures and functions `|item, ctx| async move { .. }` are processors as they
//! are; [`map`], [`filter`], [`filter_map`] and [`try_map`] build the common shapes
//! from simpler closures, and the [`resilience`](crate::resilience) layers wrap any
//! processor.
//!
//! There are two ways in, with the same stages and the same promises:
//!
//! - on any `Stream`, with [`FlowStreamExt`]: [`flow`](FlowStreamExt::flow) or
//!   [`flow_in`](FlowStreamExt::flow_in) give each item a context,
//!   [`pipe`](FlowStreamExt::pipe) adds a [`Stage`], [`batch`](FlowStreamExt::batch)
//!   and [`batch_timeout`](FlowStreamExt::batch_timeout) group items into `Vec`s, and
//!   [`values`](FlowStreamExt::values) takes the values out again;
//! - as a named [`Pipeline`]: [`stage`](Pipeline::stage) and
//!   [`stage_with`](Pipeline::stage_with) add stages, [`start`](Pipeline::start) gives
//!   a [`PipelineInput`] to [`feed`](PipelineInput::feed) and a [`PipelineOutput`] to
//!   read or [`run`](PipelineOutput::run), and [`spawn`](Pipeline::spawn) drives the
//!   stages in a task on a runtime instead.
//!
//! Each stage's output type is the next stage's input type, checked at compile time.
//! Nothing runs until the output is polled (or the spawned task runs), on any executor.
//!
//! # Promises
//!
//! **Order.** A stage is ordered by default: at any concurrency, its outputs come out
//! in the order its inputs came in, so items fed through one input keep their order
//! through every ordered stage. A stage made [`unordered`](Stage::unordered) emits each
//! output as soon as it is ready, and says so. Filtered, skipped and dead-lettered items
//! leave a gap, never a reordering. Each item's context travels with it through every
//! stage; a batch carries the context of its first item.
//!
//! **Backpressure.** Every buffer is bounded. A stage has at most its
//! [`concurrency`](Stage::concurrency) items in flight (an ordered stage counts the
//! finished items still waiting for an earlier one), and it takes a new item only when
//! it has room and the next stage, or the reader, asks for more: there is no queue
//! between stages. The input holds at most [`input_capacity`](Pipeline::input_capacity)
//! items ([`DEFAULT_INPUT_CAPACITY`] by default), then [`feed`](PipelineInput::feed)
//! waits; a spawned pipeline's output channel holds at most the capacity given to
//! [`spawn`](Pipeline::spawn); a batch holds at most its size. So a slow last stage, or
//! a slow reader, bounds the memory of the whole pipeline. A full dead-letter sink
//! makes its stage wait too.
//!
//! **Errors.** An error goes to the stage's [`ErrorPolicy`] (default
//! [`fail`](ErrorPolicy::fail): nothing is dropped unless a policy says so):
//!
//! - [`skip`](ErrorPolicy::skip) drops the item and counts it as skipped.
//! - [`retry`](ErrorPolicy::retry) runs the processor again on a copy of the item,
//!   waiting between attempts as the crate's one
//!   [`RetryPolicy`](crate::resilience::RetryPolicy) says (exponential backoff, jitter,
//!   maximum attempts and delay) on the stage's [`runtime`](Stage::runtime); without a
//!   runtime the attempts follow each other at once. When the attempts are used up, the
//!   item and its last error fall through to the policy given as `then`; so does an
//!   error that [`when`](ErrorPolicy::when) says is not worth another attempt.
//! - [`dead_letter`](ErrorPolicy::dead_letter) sends a [`DeadLetter`] (the item as it
//!   entered the stage, the error, the context, the stage's name and the number of
//!   attempts) to any `Sink` and goes on. If the sink fails, the item fails the stage.
//! - [`fail`](ErrorPolicy::fail) stops the stage: the items still in flight in it are
//!   cancelled, a [`StageError`] (stage, error, context, attempts) comes out in place of
//!   an item, and the stream ends. Each later stage finishes the items it already holds,
//!   passes the same `StageError` on and ends, so it reaches the output stream and
//!   [`run`](PipelineOutput::run) returns it.
//!
//! **Panics.** A processor that panics, while returning its future or while it is
//! polled, does not take the pipeline down: the panic is caught, counted, and becomes
//! that item's error, a [`ProcessorPanicked`] with the panic message, which the stage's
//! policy handles like any other error.
//!
//! **Cancellation.** Dropping the output stream, or the [`run`](PipelineOutput::run)
//! future, stops every stage at once: the items in flight are dropped and nothing keeps
//! running in the background. A spawned pipeline's task stops at its next output once
//! the output it handed over is dropped, and its [`JoinHandle`](crate::runtime::JoinHandle)
//! resolves. A [`feed`](PipelineInput::feed) into a stopped pipeline returns a
//! [`FeedError`] that hands the item and its context back; it never hangs. Dropping
//! every input instead ends the pipeline gracefully: the stages drain what they hold,
//! then the output ends.
//!
//! **Statistics.** Every stage counts its items unless built
//! [`without_stats`](Stage::without_stats). An item that entered a stage ends up in
//! exactly one of `emitted`, `filtered`, `skipped`, `dead_lettered`, `failed` or
//! `cancelled` (dropped in flight because its stage failed on another item or the
//! pipeline was dropped), or is still `in_flight`, so each [`StageStats`] satisfies
//! `received = emitted + filtered + skipped + dead_lettered + failed + cancelled +
//! in_flight`. `retried` counts extra attempts (not items) and `panics` counts caught
//! panics (each also an error of its item). Latency is timed from an item entering the
//! processor to its outcome, retries included, on the stage's runtime clock when it has
//! one, for one item in [`latency_sampling`](Stage::latency_sampling) (default 32) so
//! that the clock reads do not dominate cheap stages.
//! [`Pipeline::stats`] gives a handle whose [`PipelineStats`] snapshot lists every stage
//! in order and serialises with serde.
//!
//! ```
//! use riverbed::FlowContext;
//! use riverbed::pipeline::{FeedError, Pipeline, map, try_map};
//!
//! # futures::executor::block_on(async {
//! let pipeline = Pipeline::<String>::new("numbers")
//!     .stage_with(try_map(|s: String| async move { s.parse::<u32>() }), |stage| {
//!         stage.name("parse") // on_error defaults to Fail
//!     })
//!     .stage(map(|n: u32| async move { n + 1 }));
//! let stats = pipeline.stats();
//! let (mut input, output) = pipeline.start();
//! for line in ["1", "x", "3"] {
//!     input.feed(line.to_string(), FlowContext::new()).await.unwrap();
//! }
//!
//! // "x" fails the first stage; the error comes out of the output and ends it.
//! let error = output.run().await.unwrap_err();
//! assert_eq!((error.stage(), error.attempts()), ("parse", 1));
//! let parse = &stats.snapshot().stages[0];
//! assert_eq!((parse.received, parse.emitted, parse.failed), (2, 1, 1));
//!
//! // The output is gone, so the pipeline is stopped: feeding hands the item back.
//! let stopped = input.feed("4".to_string(), FlowContext::new()).await;
//! assert!(matches!(stopped, Err(FeedError { item, .. }) if item == "4"));
//! # });
//! ```

mod batch;
mod error;
mod ext;
mod flow;
mod named;
mod policy;
mod stage;
mod stats;

pub use self::batch::Batch;
pub use self::error::StageError;
pub use self::ext::{FlowIn, FlowStreamExt, NewContexts, Values};
pub use self::flow::PipelineFlow;
pub use self::named::{
    DEFAULT_INPUT_CAPACITY, FeedError, Pipeline, PipelineClosed, PipelineInput, PipelineOutput,
    PipelineStats, PipelineStatsHandle,
};
pub use self::policy::{DeadLetter, DeadLetterSink, ErrorPolicy};
pub use self::stage::{Flowing, ProcessorPanicked, Stage};
pub use self::stats::{StageStats, StageStatsHandle};
pub use crate::processor::{
    Filter, FilterFuture, FilterMap, FilterMapFuture, Map, MapFuture, Outcome, OutcomeFuture,
    Processor, TryMap, TryMapFuture, filter, filter_map, map, try_map,
};
