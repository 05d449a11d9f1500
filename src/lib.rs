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
//! | `Pipeline`: multi-stage processing with per-stage error policies | [`pipeline`] | in progress: the [`Processor`](pipeline::Processor) trait; [`resilience::RetryPolicy`] |
//! | `ReactiveStream`: a hot subject with operators usable on any `Stream` | — | planned |
//! | `MessageQueue`: at-least-once work queue with consumers, workers and dead letters | — | planned |
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
//!         mailer.await; // prints "welcome, alice!", then ends
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
//! with publish, delivery and drop counts, per-kind counts and per-handler latency.
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

mod broadcast;
pub mod bus;
pub mod context;
pub mod id;
pub mod pipeline;
pub mod resilience;
pub mod runtime;
pub mod stats;

pub use context::FlowContext;

/// A boxed error that can cross threads: what processors and handlers may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The main types and traits, for a glob import.
///
/// ```
/// use riverbed::prelude::*;
///
/// let bus: EventBus<u32, &str> = EventBus::new();
/// let _orders: Subscription<u32, &str> = bus.subscribe(Filter::kind("order"));
/// let rt: SharedRuntime = std::sync::Arc::new(VirtualRuntime::new());
/// let ctx = FlowContext::new().with_user_id("alice");
/// # let _ = (rt, ctx);
/// ```
pub mod prelude {
    pub use crate::bus::{
        Envelope, Event, EventBus, Filter, Overflow, SubscribeOptions, Subscription,
    };
    pub use crate::context::FlowContext;
    pub use crate::runtime::{Runtime, RuntimeExt, SharedRuntime, VirtualRuntime};
}
