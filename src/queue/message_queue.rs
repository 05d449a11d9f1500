//! [`MessageQueue`]: the producer side, groups, dead letters and statistics.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, Sink};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::backend::{Backend, BackendError, NewMessage, StartFrom};
use super::codec::{Codec, CodecError, Postcard};
use super::consumer::{Consumer, MessageContext};
use super::delivery::Deliveries;
use super::error::{QueueError, SendError};
use super::memory::MemoryBackend;
use super::payload::Payload;
use super::shared::Inner;
use super::stats::{GroupStats, QueueStats};
use crate::FlowContext;
use crate::flow::{HandlerOutcome, ItemOnly, WithContext};
use crate::retry::RetryPolicy;
use crate::runtime::SharedRuntime;

/// How long a delivery is leased to its consumer by default before it is delivered
/// again.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// An at-least-once work queue: producers [`send`](Self::send) messages, consumer
/// groups receive them, and a message leaves a group only when a consumer acknowledges
/// it.
///
/// # Promises
///
/// * **At least once.** A message is removed from a group only when acknowledged. One
///   whose handler fails or panics, or whose lease runs out, is delivered again after
///   a backoff (the [`RetryPolicy`], the same type the pipeline's retries use); after
///   the policy's `max_attempts` it goes to the group's dead letters with its last
///   error, attempt count and timestamps. Dead letters can be listed and requeued.
/// * **Consumer groups.** Every message reaches every group (a [`consume`](Self::consume)
///   or [`consumer`](Self::consumer) with its own name); inside one group, consumers
///   and their workers compete, so each message is handled once per group.
/// * **Jobs wait for workers.** A group created by its first consumer (`consume`,
///   `consumer`) starts from [`StartFrom::Earliest`]: the earliest message the queue
///   still holds, so jobs sent before any worker ran are handled. While no group
///   exists the queue keeps what is sent (up to its backend's capacity; a bounded
///   backend makes `send` wait), counted in [`QueueStats::held`]. A fan-out
///   subscriber that wants only new messages asks for [`StartFrom::Latest`]
///   ([`consume_from`](Self::consume_from), [`Consumer::start_from`], or
///   [`create_group`](Self::create_group) beforehand).
/// * **Backpressure.** `send` resolves once the backend accepted the message under its
///   durability setting; a bounded backend (the memory one) makes it wait when full.
/// * **Bad payloads** (that fail to decode) go to dead letters with the decode error;
///   they never reach a handler, crash a worker or block the queue.
/// * **Time** (leases, delays, backoff) is kept on the queue's runtime, so it is exact
///   under the virtual clock.
///
/// Cloning a `MessageQueue` gives another handle to the same queue.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use riverbed::queue::MessageQueue;
/// use riverbed::runtime::{SharedRuntime, VirtualRuntime};
///
/// let clock = VirtualRuntime::new();
/// let rt: SharedRuntime = Arc::new(clock.clone());
/// clock.block_on(async {
///     let queue: MessageQueue<String> = MessageQueue::new("emails", &rt);
///     let mut outbox = queue.consume("mailer").await?;
///     queue.send("welcome alice".to_string()).await?;
///
///     let delivery = futures::StreamExt::next(&mut outbox).await.unwrap()?;
///     assert_eq!(delivery.message(), "welcome alice");
///     delivery.ack().await?;
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })
/// .unwrap();
/// ```
pub struct MessageQueue<M, C: Codec = Postcard> {
    pub(crate) inner: Arc<Inner<C>>,
    message: PhantomData<fn(M) -> M>,
}

/// Configures a [`MessageQueue`]; from [`MessageQueue::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct QueueBuilder<M, C = Postcard> {
    name: Arc<str>,
    runtime: SharedRuntime,
    backend: Option<Arc<dyn Backend>>,
    codec: C,
    retry: RetryPolicy,
    lease: Duration,
    message: PhantomData<fn(M) -> M>,
}

impl<M, C: Codec> QueueBuilder<M, C> {
    /// The backend (default: a [`MemoryBackend`] with its default capacity).
    pub fn backend(mut self, backend: impl Backend) -> Self {
        self.backend = Some(Arc::new(backend));
        self
    }

    /// A backend shared with other queue values (another handle to the same store).
    pub fn shared_backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// The codec (default [`Postcard`]).
    pub fn codec<C2: Codec>(self, codec: C2) -> QueueBuilder<M, C2> {
        QueueBuilder {
            name: self.name,
            runtime: self.runtime,
            backend: self.backend,
            codec,
            retry: self.retry,
            lease: self.lease,
            message: PhantomData,
        }
    }

    /// How failed deliveries are retried and when they go to dead letters (default:
    /// [`RetryPolicy::default`], 3 attempts with exponential backoff and jitter).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How long a delivery is leased before it is delivered again if it was not
    /// answered (default [`DEFAULT_LEASE`]).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Builds the queue.
    pub fn build(self) -> MessageQueue<M, C> {
        MessageQueue {
            inner: Arc::new(Inner::new(
                self.name,
                self.backend
                    .unwrap_or_else(|| Arc::new(MemoryBackend::new())),
                self.codec,
                self.runtime,
                self.retry,
                self.lease,
            )),
            message: PhantomData,
        }
    }
}

impl<M, C> fmt::Debug for QueueBuilder<M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueBuilder")
            .field("name", &self.name)
            .field("retry", &self.retry)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl<M> MessageQueue<M>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    /// A queue named `name` on a [`MemoryBackend`], keeping time on `runtime`.
    pub fn new(name: impl Into<Arc<str>>, runtime: &SharedRuntime) -> Self {
        MessageQueue::builder(name, runtime).build()
    }

    /// A builder for a queue named `name` keeping time on `runtime`: backend, codec,
    /// retry policy, lease.
    pub fn builder(name: impl Into<Arc<str>>, runtime: &SharedRuntime) -> QueueBuilder<M> {
        QueueBuilder {
            name: name.into(),
            runtime: Arc::clone(runtime),
            backend: None,
            codec: Postcard,
            retry: RetryPolicy::default(),
            lease: DEFAULT_LEASE,
            message: PhantomData,
        }
    }
}

impl<M, C> MessageQueue<M, C>
where
    M: Serialize + DeserializeOwned + Send + 'static,
    C: Codec,
{
    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The queue's retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    fn encode(&self, message: &M) -> Result<Payload, CodecError> {
        self.inner.codec.encode_payload(message)
    }

    /// Sends `message`; resolves with its id once the backend has accepted it under
    /// its durability setting (waiting while a bounded backend is full).
    pub fn send(&self, message: M) -> SendFuture<'_, M, C> {
        SendFuture {
            queue: self,
            state: SendState::Start {
                message,
                not_before: None,
                context: None,
            },
        }
    }

    /// Sends `message`, to be delivered no earlier than `delay` from now.
    pub async fn send_delayed(&self, message: M, delay: Duration) -> Result<u64, SendError<M>> {
        let at = self.inner.now() + delay;
        self.send_at(message, Some(at)).await
    }

    /// Sends `message`, to be delivered no earlier than `not_before` (or at once when
    /// `None`).
    pub fn send_at(&self, message: M, not_before: Option<SystemTime>) -> SendFuture<'_, M, C> {
        SendFuture {
            queue: self,
            state: SendState::Start {
                message,
                not_before,
                context: None,
            },
        }
    }

    /// Sends `messages` in one append (one commit for a durable backend); resolves with
    /// their ids, in order. If one does not encode, none is sent and it is handed back.
    pub async fn send_batch(
        &self,
        messages: impl IntoIterator<Item = M>,
    ) -> Result<Vec<u64>, SendError<M>> {
        let now = self.inner.now();
        let mut batch = Vec::new();
        for message in messages {
            match self.encode(&message) {
                Ok(payload) => batch.push(NewMessage {
                    payload,
                    enqueued_at: now,
                    not_before: None,
                    context: None,
                }),
                Err(error) => return Err(SendError::Encode(message, error)),
            }
        }
        self.inner
            .backend
            .append(batch)
            .await
            .map_err(SendError::Backend)
    }

    /// A [`Sink`] into this queue, so that any stream can `forward` into it: items are
    /// appended in batches of up to `batch` (one commit each); `poll_ready` waits while
    /// a batch is being stored.
    pub fn sink(&self, batch: usize) -> QueueSink<M, C> {
        QueueSink {
            queue: self.clone(),
            batch: batch.max(1),
            buffer: Vec::new(),
            flushing: None,
        }
    }

    /// Makes sure group `group` exists, starting at `start` if it is new.
    pub async fn create_group(&self, group: &str, start: StartFrom) -> Result<bool, QueueError> {
        Ok(self.inner.backend.create_group(group, start).await?)
    }

    /// A stream of deliveries for group `group` (created if new, from
    /// [`StartFrom::Earliest`]); see [`Deliveries`].
    pub async fn consume(&self, group: &str) -> Result<Deliveries<M, C>, QueueError> {
        self.consume_from(group, StartFrom::Earliest).await
    }

    /// As [`consume`](Self::consume), creating the group at `start` if it is new.
    pub async fn consume_from(
        &self,
        group: &str,
        start: StartFrom,
    ) -> Result<Deliveries<M, C>, QueueError> {
        self.create_group(group, start).await?;
        Ok(Deliveries::new(Arc::clone(&self.inner), group))
    }

    /// A handler flow for group `group`; see [`Consumer`]. Configure it (workers, start
    /// position), then drive it with `.await`, [`run`](Consumer::run) or
    /// [`spawn`](Consumer::spawn).
    pub fn consumer<F, Fut>(&self, group: &str, handler: F) -> Consumer<M, C, ItemOnly<F>>
    where
        F: Fn(M) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future + Send + 'static,
        Fut::Output: HandlerOutcome,
    {
        Consumer::new(Arc::clone(&self.inner), group, ItemOnly(handler))
    }

    /// As [`consumer`](Self::consumer), with a [`MessageContext`] as the handler's
    /// second argument: the message's id and attempt, and the consumer's
    /// [`StopSignal`](crate::flow::StopSignal), so a long handler can finish early or
    /// stop its own consumer.
    pub fn consumer_with_context<F, Fut>(
        &self,
        group: &str,
        handler: F,
    ) -> Consumer<M, C, WithContext<F>>
    where
        F: Fn(M, MessageContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future + Send + 'static,
        Fut::Output: HandlerOutcome,
    {
        Consumer::new(Arc::clone(&self.inner), group, WithContext(handler))
    }

    /// Up to `limit` dead letters of `group`, oldest first, with the message decoded
    /// where it can be.
    pub async fn dead_letters(
        &self,
        group: &str,
        limit: usize,
    ) -> Result<Vec<DeadMessage<M>>, QueueError> {
        let records = self.inner.backend.dead_letters(group, limit).await?;
        Ok(records
            .into_iter()
            .map(|record| DeadMessage {
                id: record.message.id,
                message: self.inner.codec.decode(&record.message.payload),
                payload: record.message.payload.to_vec(),
                attempts: record.attempts,
                error: record.error,
                enqueued_at: record.message.enqueued_at,
                dead_at: record.dead_at,
            })
            .collect())
    }

    /// Puts dead letter `id` of `group` back, ready now with its attempt count reset;
    /// `false` if there is no such dead letter.
    pub async fn requeue(&self, group: &str, id: u64) -> Result<bool, QueueError> {
        let now = self.inner.now();
        Ok(self.inner.backend.requeue(group, id, now).await?)
    }

    /// A snapshot of every group's statistics.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let now = self.inner.now();
        let mut groups = Vec::new();
        for group in self.inner.backend.groups().await? {
            let counts = self.inner.backend.counts(&group, now).await?;
            let metrics = self.inner.metrics(&group);
            groups.push(GroupStats::new(group, counts, &metrics));
        }
        Ok(QueueStats {
            name: self.inner.name.to_string(),
            held: self.inner.backend.held().await?,
            groups,
        })
    }
}

impl<M, C: Codec> Clone for MessageQueue<M, C> {
    fn clone(&self) -> Self {
        MessageQueue {
            inner: Arc::clone(&self.inner),
            message: PhantomData,
        }
    }
}

impl<M, C: Codec> fmt::Debug for MessageQueue<M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageQueue")
            .field("name", &self.inner.name)
            .field("backend", &self.inner.backend)
            .field("codec", &self.inner.codec)
            .finish_non_exhaustive()
    }
}

/// The future of [`MessageQueue::send`] and [`MessageQueue::send_at`]: resolves with
/// the message's id once the backend holds it, or with the message handed back if it
/// does not encode. Nothing is sent until it is polled.
///
/// On a backend that can take the message at once (the memory backend with room),
/// the first poll sends it and resolves; otherwise it waits for the backend's append.
#[must_use = "a send does nothing unless awaited"]
pub struct SendFuture<'a, M, C: Codec> {
    queue: &'a MessageQueue<M, C>,
    state: SendState<'a, M>,
}

enum SendState<'a, M> {
    Start {
        message: M,
        not_before: Option<SystemTime>,
        context: Option<FlowContext>,
    },
    Appending(BoxFuture<'a, Result<u64, BackendError>>),
    Done,
}

// The message is only ever moved, never pinned.
impl<M, C: Codec> Unpin for SendFuture<'_, M, C> {}

impl<M, C: Codec> SendFuture<'_, M, C> {
    /// Sends the message with the producer's `ctx`: its flow id, user id and
    /// attributes travel with the message (encoded by the queue's codec; a deadline is
    /// local to a process and does not), and every delivery hands them to the handler
    /// ([`Delivery::context`](super::Delivery::context),
    /// [`MessageContext::flow_context`](super::MessageContext::flow_context)).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use std::sync::Arc;
    /// use riverbed::FlowContext;
    /// use riverbed::queue::MessageQueue;
    /// use riverbed::runtime::{SharedRuntime, VirtualRuntime};
    ///
    /// let rt: SharedRuntime = Arc::new(VirtualRuntime::new());
    /// let queue: MessageQueue<String> = MessageQueue::new("mail", &rt);
    /// let mut deliveries = queue.consume("senders").await.unwrap();
    /// let ctx = FlowContext::new().with_user_id("ada");
    /// queue.send("hello".into()).with_context(ctx.clone()).await.unwrap();
    ///
    /// use futures::StreamExt;
    /// let delivery = deliveries.next().await.unwrap().unwrap();
    /// assert_eq!(delivery.context(), Some(&ctx));
    /// delivery.ack().await.unwrap();
    /// # });
    /// ```
    ///
    /// Set it before the send is first polled; once the send has started it changes
    /// nothing.
    pub fn with_context(mut self, ctx: FlowContext) -> Self {
        if let SendState::Start { context, .. } = &mut self.state {
            *context = Some(ctx);
        }
        self
    }
}

impl<M, C> Future for SendFuture<'_, M, C>
where
    M: Serialize + DeserializeOwned + Send + 'static,
    C: Codec,
{
    type Output = Result<u64, SendError<M>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let SendState::Start { .. } = this.state {
            let SendState::Start {
                message,
                not_before,
                context,
            } = std::mem::replace(&mut this.state, SendState::Done)
            else {
                return Poll::Pending;
            };
            let inner = &this.queue.inner;
            let payload = match inner.codec.encode_payload(&message) {
                Ok(payload) => payload,
                Err(error) => return Poll::Ready(Err(SendError::Encode(message, error))),
            };
            let context = match context.map(|ctx| inner.codec.encode_payload(&ctx)) {
                None => None,
                Some(Ok(encoded)) => Some(encoded),
                Some(Err(error)) => return Poll::Ready(Err(SendError::Encode(message, error))),
            };
            let new = NewMessage {
                payload,
                enqueued_at: inner.now(),
                not_before,
                context,
            };
            match inner.backend.append_now(new) {
                Ok(id) => return Poll::Ready(Ok(id)),
                Err(new) => this.state = SendState::Appending(inner.backend.append_one(new)),
            }
        }
        match &mut this.state {
            SendState::Appending(append) => {
                let done = std::task::ready!(append.as_mut().poll(cx));
                this.state = SendState::Done;
                Poll::Ready(done.map_err(SendError::Backend))
            }
            // As futures' own futures do: polling a finished future is a bug in the
            // caller.
            SendState::Start { .. } | SendState::Done => {
                panic!("`SendFuture` polled after completion")
            }
        }
    }
}

impl<M, C: Codec> fmt::Debug for SendFuture<'_, M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            SendState::Start { .. } => "not started",
            SendState::Appending(_) => "waiting for the backend",
            SendState::Done => "done",
        };
        f.debug_struct("SendFuture")
            .field("queue", &self.queue.inner.name)
            .field("state", &state)
            .finish()
    }
}

/// A message a group gave up on, from [`MessageQueue::dead_letters`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeadMessage<M> {
    /// The message's id.
    pub id: u64,
    /// The message, or why it does not decode.
    pub message: Result<M, CodecError>,
    /// The message as stored.
    pub payload: Vec<u8>,
    /// Deliveries made before it was given up.
    pub attempts: u32,
    /// The last error: a handler's, a panic's, a decode error.
    pub error: String,
    /// When it was sent.
    pub enqueued_at: SystemTime,
    /// When it was dead-lettered.
    pub dead_at: SystemTime,
}

/// A [`Sink`] into a [`MessageQueue`]; from [`MessageQueue::sink`].
pub struct QueueSink<M, C: Codec = Postcard> {
    queue: MessageQueue<M, C>,
    batch: usize,
    buffer: Vec<NewMessage>,
    flushing: Option<BoxFuture<'static, Result<Vec<u64>, BackendError>>>,
}

impl<M, C> QueueSink<M, C>
where
    M: Serialize + DeserializeOwned + Send + 'static,
    C: Codec,
{
    /// Drives the batch being stored, if any.
    fn poll_flushing(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), QueueError>> {
        if let Some(flushing) = self.flushing.as_mut() {
            let done = std::task::ready!(flushing.as_mut().poll(cx));
            self.flushing = None;
            done?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.buffer);
        let inner = Arc::clone(&self.queue.inner);
        self.flushing = Some(async move { inner.backend.append(batch).await }.boxed());
    }
}

impl<M, C> Sink<M> for QueueSink<M, C>
where
    M: Serialize + DeserializeOwned + Send + 'static,
    C: Codec,
{
    type Error = QueueError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        std::task::ready!(self.poll_flushing(cx))?;
        if self.buffer.len() >= self.batch {
            self.start_flush();
            std::task::ready!(self.poll_flushing(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, item: M) -> Result<(), Self::Error> {
        let payload = self.queue.encode(&item)?;
        let now = self.queue.inner.now();
        self.buffer.push(NewMessage {
            payload,
            enqueued_at: now,
            not_before: None,
            context: None,
        });
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        std::task::ready!(self.poll_flushing(cx))?;
        self.start_flush();
        self.poll_flushing(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_flush(cx)
    }
}

// Nothing in a sink is pinned in place.
impl<M, C: Codec> Unpin for QueueSink<M, C> {}

impl<M, C: Codec> fmt::Debug for QueueSink<M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueSink")
            .field("queue", &self.queue.inner.name)
            .field("buffered", &self.buffer.len())
            .field("flushing", &self.flushing.is_some())
            .finish()
    }
}
