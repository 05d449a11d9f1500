//! Pipelines: items flow through [`Processor`]s that validate, enrich, transform or drop
//! them.
//!
//! A processor takes an item and its [`FlowContext`](crate::FlowContext) and returns,
//! asynchronously, an [`Outcome`]: `Ok(Some(out))` (continue with `out`), `Ok(None)`
//! (the item is filtered out) or `Err(error)` (handled by the stage's error policy).
//! Async closures `|item, ctx| async move { .. }` are processors as they are; [`map`],
//! [`filter`], [`filter_map`] and [`try_map`] build the common shapes from simpler
//! closures.

mod batch;
mod error;
mod ext;
mod named;
mod policy;
mod processor;
mod stage;
mod stats;

pub use self::batch::Batch;
pub use self::error::StageError;
pub use self::ext::{Flow, FlowIn, FlowStreamExt, Values};
pub use self::named::{
    DEFAULT_INPUT_CAPACITY, FeedError, Pipeline, PipelineClosed, PipelineInput, PipelineOutput,
    PipelineStats, PipelineStatsHandle,
};
pub use self::policy::{DeadLetter, DeadLetterSink, ErrorPolicy};
pub use self::processor::{
    Filter, FilterMap, Map, Outcome, OutcomeFuture, Processor, TryMap, filter, filter_map, map,
    try_map,
};
pub use self::stage::{Flowing, ProcessorPanicked, Stage};
pub use self::stats::{StageStats, StageStatsHandle};
