//! [`MessageQueue`]: an at-least-once work queue with consumer groups, worker pools,
//! leases, retries with backoff, delayed messages and dead letters, over a pluggable
//! [`Backend`].
//!
//! # Promises
//!
//! * **At least once.** A message is removed from a consumer group only when a
//!   consumer acknowledges it. One whose handler fails, panics or outlives its lease is
//!   delivered again after a backoff (the same [`RetryPolicy`](crate::resilience::RetryPolicy)
//!   the pipeline uses); after the policy's last attempt it goes to the group's dead
//!   letters with its last error, attempt count and timestamps. Dead letters can be
//!   listed and requeued.
//! * **An answer only answers for its own delivery.** An `ack`, `nack`, `retry` or
//!   `reject` that comes after its delivery lost its lease (the message went back to
//!   the group, or was delivered again) changes nothing — it never takes the message
//!   from the delivery that holds it now — and says so:
//!   [`QueueError::LateAnswer`]; it is counted in [`GroupStats::late_answers`], not
//!   as acknowledged. `extend_lease` of such a delivery returns `false`.
//! * **Consumer groups.** Every message reaches every group; inside a group, consumers
//!   and their workers compete, so each message is handled once per group (at least
//!   once: a retry or a lost lease hands it out again).
//! * **Jobs wait for workers.** A group created by its first consumer starts from
//!   [`StartFrom::Earliest`], the earliest message the queue still holds; while no
//!   group exists, what is sent is kept (bounded by the backend's capacity) and
//!   counted in [`QueueStats::held`]. [`StartFrom::Latest`] (new messages only) is
//!   the explicit choice of a fan-out subscriber.
//! * **Backpressure.** `send` resolves once the backend holds the message under its
//!   durability setting; the [`MemoryBackend`] (and the durable backend, by default)
//!   is bounded and makes `send` wait when full.
//! * **Crashes.** On the durable backend (`DurableBackend`, feature `durable`) nothing
//!   whose `send` resolved is lost when the process dies, even by `kill -9`; only the
//!   messages in flight at the crash may be handled twice.
//! * **Bad payloads** go to dead letters with the decode error; they never reach a
//!   handler, crash a worker or block the queue.
//! * **The producer's context travels.** A message sent with
//!   [`send(m).with_context(ctx)`](SendFuture::with_context) carries the producer's
//!   [`FlowContext`](crate::FlowContext) (flow id, user id, attributes) to every
//!   delivery ([`Delivery::context`], [`MessageContext::flow_context`]), stored beside
//!   the payload on every backend.
//! * **Graceful stop.** A [`Consumer`] stops taking messages, lets running handlers
//!   finish within a grace period and returns the rest to the group: nothing is lost.
//! * **Time** (leases, delays, backoff) runs on the queue's runtime: exact under the
//!   [`VirtualRuntime`](crate::runtime::VirtualRuntime).
//!
//! Messages are any serde type; a [`Codec`] turns them into bytes for the backend
//! ([`Postcard`], compact binary, by default; `Json`, with the `json` feature, to read
//! what is stored).
//!
//! Two ways to consume, both first-class: [`MessageQueue::consume`] gives a `Stream`
//! of [`Delivery`]s to answer one by one (`ack`, `nack(delay)`, `retry(error)`,
//! `reject(error)`, `extend_lease`); [`MessageQueue::consumer`] runs a handler with a
//! pool of workers.

pub mod backend;
mod codec;
mod consumer;
mod delivery;
#[cfg(feature = "durable")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
mod durable;
mod error;
mod id_map;
mod local;
mod memory;
mod message_queue;
mod payload;
mod shared;
pub(crate) mod state;
mod stats;

pub use backend::{Backend, BackendError, StartFrom};
#[cfg(feature = "json")]
pub use codec::Json;
pub use codec::{Codec, CodecError, Postcard};
pub use consumer::{Consumer, DEFAULT_MAX_CLAIM, MessageContext};
pub use delivery::{DEFAULT_CLAIM_BATCH, Deliveries, Delivery, Lease};
#[cfg(feature = "durable")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
pub use durable::{
    CommitHold, DEFAULT_DURABLE_CAPACITY, Durability, DurableBackend, DurableOptions, DurableStats,
    OpenError,
};
pub use error::{QueueError, SendError};
pub use memory::{DEFAULT_MEMORY_CAPACITY, MemoryBackend};
pub use message_queue::{
    DEFAULT_LEASE, DeadMessage, MessageQueue, QueueBuilder, QueueSink, SendFuture,
};
pub use stats::{GroupStats, QueueStats};
