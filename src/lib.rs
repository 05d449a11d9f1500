//! Asynchronous, non-blocking flows for any executor.
//!
//! Riverbed's components are plain values that hand out [`Stream`]s and futures. A
//! component that needs background work exposes it as a future you drive or spawn on
//! the executor of your choice; nothing spawns by itself, and every buffer is bounded.
//!
//! [`Stream`]: futures_core::Stream
//!
//! # A tour
//!
//! ## Components
//!
//! | component | module | status |
//! |---|---|---|
//! | `EventBus`: typed publish/subscribe, filters, history and replay, overflow policies, isolated handlers | [`bus`] | available |
//! | `Pipeline`: typed stages with concurrency and order, named pipelines, per-stage error policies (skip, retry, dead-letter, fail), batching, per-stage statistics | [`pipeline`] | available |
//! | Resilience layers around any processor: retry, timeout, circuit breaker, rate limit, bulkhead | [`resilience`] | available |
//! | `ReactiveStream`: a hot, multicast subject (plain, replay, latest) with transformers, terminal signals and per-subscriber overflow; operators usable on any `Stream` (time, combining, stateful, `share`/`replay`) | [`reactive`] | available |
//! | `MessageQueue`: at-least-once work queue with consumer groups, worker pools, leases, retries, delayed messages and dead letters, over a pluggable backend (in memory, or on local disk with the `durable` feature) | [`queue`] | available |
//! | `Orchestrator`: named flows under supervision, with stats and health | — | planned |
//!
//! The [event bus](bus) in a few lines, driven by `futures`' tiny `block_on` (the same
//! example as in the README):
//!
//! ```
//! use futures::StreamExt;
//! use riverbed::bus::{EventBus, Filter};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     futures::executor::block_on(async {
//!         let bus: EventBus<String, &str> = EventBus::builder().history(100).build();
//!         let mut orders = bus.subscribe(Filter::kind("order_placed"));
//!         let mailer = bus.on(Filter::kind("user_registered"), |event| async move {
//!             println!("welcome, {}!", event.payload);
//!         });
//!
//!         bus.emit("user_registered", "alice".to_string()).await?;
//!         bus.emit("order_placed", "#1001".to_string()).await?;
//!         bus.close(); // no more publishing; subscribers drain what they were sent
//!         let report = mailer.await; // prints "welcome, alice!", then ends
//!         assert!(report.is_finished());
//!
//!         let order = orders.next().await.unwrap()?;
//!         assert_eq!((order.seq, order.payload.as_str()), (1, "#1001"));
//!         Ok(())
//!     })
//! }
//! ```
//!
//! The [`bus`] module docs state its promises: order, replay without gap or duplicate,
//! overflow policies that count every drop, isolated handlers and clean shutdown.
//!
//! A [pipeline] in a few lines (the same example as in the README): a stage
//! that skips what it cannot parse, then a closure that sees each item's
//! [`FlowContext`], up to four items at once with the outputs kept in order.
//!
//! ```
//! use futures::TryStreamExt;
//! use riverbed::pipeline::{ErrorPolicy, FeedError, FlowStreamExt, Pipeline, try_map};
//! use riverbed::{BoxError, FlowContext};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     futures::executor::block_on(async {
//!         // A line that does not parse is skipped (and counted), not fatal.
//!         let parse = try_map(|line: String| async move { line.parse::<u32>() });
//!         // A processor sees each item's context; `Ok(None)` would filter it out.
//!         let label = |cents: u32, ctx: FlowContext| async move {
//!             let user = ctx.user_id().unwrap_or("guest").to_string();
//!             Ok::<_, BoxError>(Some(format!("{user}: {cents} cents")))
//!         };
//!         let pipeline = Pipeline::<String>::new("orders")
//!             .stage_with(parse, |stage| {
//!                 stage.name("parse").on_error(ErrorPolicy::skip())
//!             })
//!             .stage_with(label, |stage| stage.name("label").concurrency(4));
//!         let stats = pipeline.stats();
//!         let (mut input, output) = pipeline.start();
//!
//!         let ctx = FlowContext::new().with_user_id("alice");
//!         let feed = async move {
//!             for line in ["1200", "oops", "350"] {
//!                 input.feed(line.to_string(), ctx.clone()).await?;
//!             }
//!             Ok::<_, FeedError<String>>(()) // dropping the input ends the pipeline
//!         };
//!         let (fed, out) = futures::join!(feed, output.values().try_collect::<Vec<_>>());
//!         fed?;
//!         assert_eq!(out?, ["alice: 1200 cents", "alice: 350 cents"]);
//!         assert_eq!(stats.snapshot().stages[0].skipped, 1);
//!         Ok(())
//!     })
//! }
//! ```
//!
//! The [`pipeline`] module docs state its promises: order, backpressure, error
//! policies, panics, cancellation and the statistics' accounting; the [`resilience`]
//! module lists the layers that wrap any processor.
//!
//! A [reactive stream](reactive) in a few lines (the same example as in the README):
//! a transformer that runs once per item, two subscribers, and completion.
//!
//! ```
//! use futures::StreamExt;
//! use riverbed::reactive::ReactiveStream;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     futures::executor::block_on(async {
//!         let prices: ReactiveStream<u32> = ReactiveStream::new("prices");
//!         // Runs once per item, whatever the number of subscribers; `None` drops it.
//!         prices.add_sync_transformer(|cents: u32| (cents > 0).then_some(cents * 2));
//!
//!         let mut ui = prices.subscribe();
//!         let mut cache = prices.subscribe();
//!         for cents in [100, 0, 250] {
//!             prices.emit(cents).await?;
//!         }
//!         prices.complete()?; // every subscriber gets what came before, then the end
//!
//!         let ui: Vec<u32> = ui.by_ref().map(Result::unwrap).collect().await;
//!         let cache: Vec<u32> = cache.by_ref().map(Result::unwrap).collect().await;
//!         assert_eq!((ui, cache), (vec![200, 500], vec![200, 500]));
//!         Ok(())
//!     })
//! }
//! ```
//!
//! The [`reactive`] module docs state the stream's promises and map RxJS operator
//! names to [`ReactiveExt`](reactive::ReactiveExt) and to the `futures` calls that
//! already do the job.
//!
//! A [work queue](queue) in a few lines (the same example as in the README):
//!
//! ```
//! use std::sync::Arc;
//! use futures::StreamExt;
//! use riverbed::queue::MessageQueue;
//! use riverbed::runtime::{SharedRuntime, VirtualRuntime};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let clock = VirtualRuntime::new();
//!     let rt: SharedRuntime = Arc::new(clock.clone());
//!     clock.block_on(async {
//!         // Leases, delays and retries keep time on the runtime the queue is given.
//!         let queue: MessageQueue<String> = MessageQueue::new("emails", &rt);
//!         let mut mailer = queue.consume("mailer").await?; // a consumer group
//!         queue.send("welcome, alice".to_string()).await?;
//!
//!         let delivery = mailer.next().await.unwrap()?;
//!         assert_eq!(delivery.message(), "welcome, alice");
//!         delivery.ack().await?; // unanswered, it would be delivered again
//!         Ok(())
//!     })
//! }
//! ```
//!
//! ## Runtime abstraction
//!
//! Where a component needs to spawn, sleep or read the clock, it is handed a
//! [`Runtime`](runtime::Runtime), an object-safe trait with three methods, shared as a
//! [`SharedRuntime`](runtime::SharedRuntime). [`RuntimeExt`](runtime::RuntimeExt) adds
//! `spawn` with a [`JoinHandle`](runtime::JoinHandle), `sleep` and `timeout` on top.
//! Riverbed ships:
//!
//! | type | cargo feature |
//! |---|---|
//! | [`VirtualRuntime`](runtime::VirtualRuntime): deterministic executor on a virtual clock, for tests | always |
//! | `TokioRuntime` | `tokio` |
//! | `SmolRuntime` | `smol` |
//!
//! No feature is on by default, and the core compiles with none. Any other executor
//! is one small `impl` away; the [`runtime`] module docs show a complete one.
//!
//! ## Statistics
//!
//! Every component counts and times its work with the lock-free [`stats`] types
//! ([`Counter`](stats::Counter), [`Gauge`](stats::Gauge),
//! [`Histogram`](stats::Histogram)), and its snapshot serialises with serde:
//! [`EventBus::stats`](bus::EventBus::stats) returns a [`BusStats`](bus::BusStats)
//! with publish, delivery and drop counts, per-kind counts and per-handler latency;
//! [`Pipeline::stats`](pipeline::Pipeline::stats) gives a handle whose snapshot, a
//! [`PipelineStats`](pipeline::PipelineStats), counts each stage's items in, out,
//! filtered, skipped, retried, dead-lettered, failed and in flight, with latency
//! percentiles; [`ReactiveStream::stats`](reactive::ReactiveStream::stats) counts
//! emitted, transformed-away, delivered and dropped items and handler outcomes.
//!
//! ## Serialized forms
//!
//! Snapshots, envelopes and configurations are meant to be read as JSON. In a
//! human-readable format a point in time is an **RFC 3339 string in UTC**
//! (`"timestamp": "2026-12-04T01:25:58.5Z"`; any offset is accepted when reading), and
//! a duration is, in every format, **integer nanoseconds in a field whose name ends in
//! `_ns`** (`"p99_ns": 1250000`, `"open_for_ns": 30000000000`), so the unit is in the
//! name and the value round-trips exactly. Binary formats (the durable queue's store)
//! keep serde's compact standard form for points in time.
//!
//! ## Flow context
//!
//! A [`FlowContext`] carries a flow's identity (a unique flow id, an optional user id),
//! free-form attributes and an optional deadline as the work moves through riverbed.
//! It is cheap to clone and serialises with serde.
//!
//! ## Prelude
//!
//! `use riverbed::prelude::*;` brings the main types and traits into scope; see
//! [`prelude`].
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod broadcast;
pub mod bus;
mod chunk;
pub mod context;
pub mod flow;
pub mod id;
pub mod pipeline;
mod processor;
pub mod queue;
pub mod reactive;
pub mod resilience;
mod retry;
pub mod runtime;
mod serde_time;
pub mod stats;

pub use context::FlowContext;

/// A boxed error that can cross threads: what processors and handlers may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The main types and traits, for a glob import.
///
/// ```
/// use std::time::Duration;
/// use riverbed::prelude::*;
///
/// let bus: EventBus<u32, &str> = EventBus::new();
/// let _orders: Subscription<u32, &str> = bus.subscribe(Filter::kind("order"));
/// let rt: SharedRuntime = std::sync::Arc::new(VirtualRuntime::new());
/// let ctx = FlowContext::new().with_user_id("alice");
///
/// // A processor, a resilience layer, an error policy and the stream combinators.
/// let double = |n: u32, _ctx: FlowContext| async move {
///     Ok::<_, riverbed::BoxError>(Some(n * 2))
/// };
/// assert_eq!(futures::executor::block_on(double.process(21, &ctx)).unwrap(), Some(42));
/// let policy = ErrorPolicy::retry(RetryPolicy::default(), ErrorPolicy::skip());
/// let pipeline: Pipeline<u32> = Pipeline::new("numbers")
///     .stage_with(double.timeout(Duration::from_secs(1), &rt), |s| s.on_error(policy));
/// let doubled = futures::stream::iter([1, 2, 3]).flow_in(ctx).pipe(double);
/// # let _ = (pipeline, doubled);
/// ```
pub mod prelude {
    pub use crate::bus::{
        Envelope, Event, EventBus, Filter, Overflow, SubscribeOptions, Subscription,
    };
    pub use crate::context::FlowContext;
    pub use crate::pipeline::{ErrorPolicy, FlowStreamExt, Pipeline, Processor};
    pub use crate::queue::{Delivery, MessageQueue, StartFrom};
    pub use crate::reactive::{ReactiveExt, ReactiveStream};
    pub use crate::resilience::{ProcessorExt, RetryPolicy};
    pub use crate::runtime::{Runtime, RuntimeExt, SharedRuntime, VirtualRuntime};
}
