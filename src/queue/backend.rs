//! The [`Backend`] trait: where a [`MessageQueue`](super::MessageQueue) keeps its
//! messages, consumer groups, leases and dead letters.
//!
//! A backend stores **bytes** (the queue's [codec](super::Codec) turns messages into
//! bytes and back), so one codec layer serves every backend. The model is the one of
//! Redis Streams consumer groups, so that a backend over Redis fits it as well as the
//! in-process ones:
//!
//! * messages are appended with increasing ids and kept until every consumer group has
//!   acknowledged (or dead-lettered) them;
//! * a group has a cursor (the next message it has never seen) and a list of pending
//!   entries (delivered and not acknowledged, with a delivery count and a lease; or
//!   waiting to be retried, or delayed);
//! * [`claim`](Backend::claim) leases ready entries to a consumer: retries and expired
//!   leases that are due, then new messages;
//! * [`ack`](Backend::ack) removes an entry; [`nack`](Backend::nack) makes it wait
//!   until a given time; [`dead_letter`](Backend::dead_letter) moves it to the group's
//!   dead letters, which can be listed and [requeued](Backend::requeue).
//!
//! # Promises every backend keeps
//!
//! * **Operations take effect when called**; the returned future resolves once the
//!   effect is as durable as the backend promises (in memory: at once; on disk: once
//!   committed). So an operation whose future is dropped still happens: a delivery
//!   dropped without an answer can hand its `nack` to the backend from `Drop`.
//! * **Times are wall-clock** (`SystemTime`), given by the caller from its runtime, so
//!   leases and delays survive a restart and mean the same to every process.
//! * **At least once.** An entry leaves a group only by `ack` or `dead_letter`.
//! * **An answer only answers for its own delivery.** `ack`, `nack`, `release` and
//!   `dead_letter` name the delivery (`attempt`) they answer for, and change nothing
//!   when it no longer holds the entry; they say so in their result.
//!
//! This module holds what an implementor of [`Backend`] needs ([`NewMessage`],
//! [`StoredMessage`], [`Claim`], [`Claimed`], [`DeadRecord`], [`GroupCounts`],
//! [`Payload`], [`BackendFuture`]); a user of a queue needs none of it but the
//! trait, to pick a backend. [`append_one`](Backend::append_one) and
//! [`append_now`](Backend::append_now) are optional fast paths with defaults: an
//! external store implements [`append`](Backend::append) alone.

use std::fmt;
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use super::payload::{INLINE_PAYLOAD, Payload};

/// What a backend operation's future resolves to.
pub type BackendFuture<'a, T> = BoxFuture<'a, Result<T, BackendError>>;

/// A message to append: its encoded payload and when it may be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The encoded message.
    pub payload: Payload,
    /// When it was sent.
    pub enqueued_at: SystemTime,
    /// Not delivered before this time (`None`: at once).
    pub not_before: Option<SystemTime>,
    /// The producer's [`FlowContext`](crate::FlowContext), encoded by the queue's
    /// codec, when it sent one; the backend stores it beside the payload.
    pub context: Option<Payload>,
}

/// A stored message, shared by the groups that still have to see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// The queue-wide id, increasing in send order.
    pub id: u64,
    /// The encoded message (its bytes shared, not copied, between groups).
    pub payload: Payload,
    /// When it was sent.
    #[serde(with = "crate::serde_time::timestamp")]
    pub enqueued_at: SystemTime,
    /// Not delivered before this time.
    #[serde(with = "crate::serde_time::timestamp_opt")]
    pub not_before: Option<SystemTime>,
    /// The producer's [`FlowContext`](crate::FlowContext), encoded by the queue's
    /// codec, when it sent one.
    pub context: Option<Payload>,
}

/// Where a new consumer group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum StartFrom {
    /// Every message the queue still holds (those not yet acknowledged by every other
    /// group, and those sent while no group existed), then the new ones: the default,
    /// as jobs wait for their workers.
    #[default]
    Earliest,
    /// Only messages sent after the group was created: for a fan-out subscriber that
    /// wants new messages alone.
    Latest,
}

/// A message leased to a consumer by [`Backend::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The message.
    pub message: StoredMessage,
    /// Deliveries to this group so far, this one included (1 the first time); never
    /// reused for the entry, so it names this delivery in its answers.
    pub attempt: u32,
    /// Deliveries before the entry was last requeued from dead letters (0 if never):
    /// the retry policy counts `attempt - retry_base`.
    pub retry_base: u32,
    /// Whether an earlier delivery's lease ran out without an answer.
    pub lease_expired: bool,
    /// The error of the previous attempt, if it failed with one.
    pub last_error: Option<String>,
}

/// What [`Backend::claim`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    /// The messages now leased, oldest first.
    pub messages: Vec<Claimed>,
    /// When the group's next waiting entry (delayed, retried or leased) becomes due,
    /// if it has any: the time to look again without a new message.
    pub next_due: Option<SystemTime>,
}

/// A message a group gave up on: the message, the last error and the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadRecord {
    /// The message.
    pub message: StoredMessage,
    /// Deliveries made before it was given up.
    pub attempts: u32,
    /// Why: the last handler error, a decode error, ...
    pub error: String,
    /// When it was dead-lettered.
    #[serde(with = "crate::serde_time::timestamp")]
    pub dead_at: SystemTime,
}

/// A group's entries by state, as a backend counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCounts {
    /// Messages waiting for the group: never delivered, or to be retried.
    pub depth: u64,
    /// Delivered and not answered yet (leased).
    pub in_flight: u64,
    /// Not deliverable yet: sent with a delay, or waiting for a retry's backoff.
    pub delayed: u64,
    /// In the group's dead letters.
    pub dead: u64,
}

/// A backend failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// No consumer group of that name.
    #[error("no consumer group {0:?}")]
    UnknownGroup(String),
    /// The backend was closed (for a store, its writer stopped).
    #[error("the queue backend is closed")]
    Closed,
    /// A point in time the store cannot hold (the durable store keeps times since
    /// 1970): the operation was refused and changed nothing.
    #[error("the store cannot hold the point in time {0:?} (it keeps times since 1970)")]
    TimeOutOfRange(SystemTime),
    /// The storage failed (I/O, a full disk, corruption, ...): what it said. A store
    /// refuses every later operation with the same error.
    #[error("queue storage failed: {0}")]
    Storage(String),
}

/// Where a [`MessageQueue`](super::MessageQueue) keeps its state; see the
/// [module docs](self) for the model and the promises.
///
/// Riverbed has [`MemoryBackend`](super::MemoryBackend) and, with the `durable`
/// feature, `DurableBackend` on local disk; a backend over Redis Streams can implement
/// the same trait.
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// Appends `messages` in order and returns their ids. Waits while the backend is
    /// full (backpressure); resolves once they are stored as durably as the backend
    /// promises.
    fn append(&self, messages: Vec<NewMessage>) -> BackendFuture<'_, Vec<u64>>;

    /// Appends one message: [`append`](Self::append) of one, which backends may make
    /// cheaper (no batch to build).
    fn append_one(&self, message: NewMessage) -> BackendFuture<'_, u64> {
        let append = self.append(vec![message]);
        Box::pin(async move {
            append.await?.first().copied().ok_or_else(|| {
                BackendError::Storage("the backend returned no id for a message".into())
            })
        })
    }

    /// Appends one message if that can be done at once, with no waiting (for room, for
    /// a commit): its id then, or the message handed back, to be appended with
    /// [`append_one`](Self::append_one). Saves an in-memory backend the future of a
    /// send; the default always hands the message back.
    fn append_now(&self, message: NewMessage) -> Result<u64, NewMessage> {
        Err(message)
    }

    /// Creates consumer group `group`, starting at `start`, unless it exists; returns
    /// whether it was created.
    fn create_group<'a>(&'a self, group: &'a str, start: StartFrom) -> BackendFuture<'a, bool>;

    /// Leases up to `max` ready entries of `group` to `consumer` until `lease_until`:
    /// entries due at `now` (retries whose delay passed, leases that ran out, delayed
    /// messages now due), then messages the group has never seen.
    fn claim<'a>(
        &'a self,
        group: &'a str,
        consumer: &'a str,
        max: usize,
        now: SystemTime,
        lease_until: SystemTime,
    ) -> BackendFuture<'a, Claim>;

    /// Acknowledges each `(id, attempt)` of `group` whose delivery `attempt` still
    /// holds the entry: it leaves the group for good. Returns the ids of the others —
    /// *late answers*: the lease of that delivery ran out and the entry went back or
    /// was delivered again (or it was answered already) — which change nothing.
    ///
    /// Every answer only answers for its own delivery: a late acknowledgement must
    /// never remove an entry another delivery now holds.
    fn ack<'a>(&'a self, group: &'a str, entries: &'a [(u64, u32)]) -> BackendFuture<'a, Vec<u64>>;

    /// Returns entry `id` of `group`, leased for delivery `attempt`, to waiting until
    /// `retry_at`, remembering `error`; `true` if it did, `false` (a late answer,
    /// nothing changed) if that delivery no longer holds the entry.
    fn nack<'a>(
        &'a self,
        group: &'a str,
        id: u64,
        attempt: u32,
        retry_at: SystemTime,
        error: Option<String>,
    ) -> BackendFuture<'a, bool>;

    /// Gives entry `id` of `group`, leased for delivery `attempt` but never handed to a
    /// handler (a consumer claimed it ahead and stopped), back at once, ready at `now`,
    /// with that delivery not counted; `false` if that lease is gone.
    ///
    /// The default nacks it to `now`, which counts the delivery; backends override it
    /// to leave the count as it was.
    fn release<'a>(
        &'a self,
        group: &'a str,
        id: u64,
        attempt: u32,
        now: SystemTime,
    ) -> BackendFuture<'a, bool> {
        self.nack(group, id, attempt, now, None)
    }

    /// Extends the lease of entry `id` of `group` for delivery `attempt` to
    /// `lease_until`; `false` if that lease is gone (answered, or it ran out and the
    /// entry went back or was delivered again).
    fn extend_lease<'a>(
        &'a self,
        group: &'a str,
        id: u64,
        attempt: u32,
        lease_until: SystemTime,
    ) -> BackendFuture<'a, bool>;

    /// Moves entry `id` of `group`, leased for delivery `attempt`, to the group's dead
    /// letters with `error`; `false` (a late answer, nothing changed) if that
    /// delivery no longer holds the entry.
    fn dead_letter<'a>(
        &'a self,
        group: &'a str,
        id: u64,
        attempt: u32,
        error: String,
        now: SystemTime,
    ) -> BackendFuture<'a, bool>;

    /// Up to `limit` dead letters of `group`, oldest message first.
    fn dead_letters<'a>(
        &'a self,
        group: &'a str,
        limit: usize,
    ) -> BackendFuture<'a, Vec<DeadRecord>>;

    /// Moves dead letter `id` of `group` back to its pending entries, ready at `now`
    /// with its delivery count reset; `false` if there is no such dead letter.
    fn requeue<'a>(&'a self, group: &'a str, id: u64, now: SystemTime) -> BackendFuture<'a, bool>;

    /// The groups, by name.
    fn groups(&self) -> BackendFuture<'_, Vec<String>>;

    /// How many messages the store holds: those some group has not reached or
    /// answered, or that were sent while no group existed (a pending entry counts
    /// once per group). What a bounded store's capacity bounds.
    fn held(&self) -> BackendFuture<'_, u64>;

    /// `group`'s entries by state at `now`.
    fn counts<'a>(&'a self, group: &'a str, now: SystemTime) -> BackendFuture<'a, GroupCounts>;

    /// A future that resolves when something a consumer waits for may have changed:
    /// an append, a nack, a requeue. It must be registered when this returns, so that
    /// a change between this call and a `claim` that found nothing is not missed. A
    /// backend shared with other processes also resolves it when it learns of their
    /// changes (or after a polling interval).
    fn changed(&self) -> BoxFuture<'static, ()>;
}
