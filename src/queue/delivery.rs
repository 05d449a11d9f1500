//! [`Deliveries`]: a consumer group's messages as a `Stream` of [`Delivery`]s, each
//! answered through its [`Lease`].

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_core::Stream;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;

use super::backend::{BackendError, Claim, Claimed};
use super::codec::{Codec, CodecError};
use super::error::QueueError;
use super::shared::Inner;
use super::stats::GroupMetrics;
use crate::FlowContext;
use crate::runtime::Sleep;
use crate::stats::HistogramBatch;

/// How many messages a [`Deliveries`] stream claims at once by default. (A
/// [`Consumer`](super::Consumer) sizes its claims by its pace, up to
/// [`DEFAULT_MAX_CLAIM`](super::DEFAULT_MAX_CLAIM).)
pub const DEFAULT_CLAIM_BATCH: usize = 16;

/// Gives each consumer a name of its own (backends that track consumers use it).
static CONSUMERS: AtomicU64 = AtomicU64::new(0);

/// A consumer group's messages, as a [`Stream`] of `Result<Delivery<M>, QueueError>`;
/// from [`MessageQueue::consume`](super::MessageQueue::consume).
///
/// Each item is a message leased to this consumer: answer it through its
/// [`Delivery`] (`ack`, `nack`, `retry`, `reject`), or it is delivered again when the
/// lease runs out. Several `Deliveries` of one group compete: each message goes to one
/// of them. The stream claims messages in batches (default
/// [`DEFAULT_CLAIM_BATCH`]), so up to a batch may be leased to it before it yields
/// them; when nothing is ready it waits for a new message, a nack, or the time the
/// group's next delayed or retried message is due, on the queue's runtime.
///
/// A payload that does not decode never comes out: it goes to the group's dead letters
/// with the decode error. A backend error comes out as an `Err` item; the stream then
/// tries again when polled. The stream does not end by itself (a queue has no end):
/// drop it, or use a [`Consumer`](super::Consumer) for a graceful stop.
pub struct Deliveries<M, C: Codec> {
    inner: Arc<Inner<C>>,
    group: Arc<str>,
    consumer: Arc<str>,
    metrics: Arc<GroupMetrics>,
    /// What every lease of this stream answers through (one `Arc` per lease).
    answers: Arc<Answers>,
    batch: usize,
    /// Claimed and not yet handed out, in order.
    buffer: std::vec::IntoIter<Claimed>,
    state: ClaimState,
    message: PhantomData<fn() -> M>,
}

enum ClaimState {
    /// Nothing under way: claim on the next poll.
    Idle,
    /// A claim is under way; the change listener was registered before it.
    Claiming {
        claim: BoxFuture<'static, Result<Claim, BackendError>>,
        changed: BoxFuture<'static, ()>,
    },
    /// Nothing was ready: wait for a change or the next due time.
    Waiting {
        changed: BoxFuture<'static, ()>,
        due: Option<Sleep>,
    },
}

impl<M, C> Deliveries<M, C>
where
    M: DeserializeOwned + Send + 'static,
    C: Codec,
{
    pub(crate) fn new(inner: Arc<Inner<C>>, group: &str) -> Self {
        let n = CONSUMERS.fetch_add(1, Ordering::Relaxed);
        let metrics = inner.metrics(group);
        let answers = Arc::new(Answers {
            inner: Arc::clone(&inner) as Arc<dyn LeaseTarget>,
            group: Arc::from(group),
            metrics: Arc::clone(&metrics),
        });
        Deliveries {
            answers,
            consumer: Arc::from(format!("{}-{n}", inner.name)),
            group: Arc::from(group),
            inner,
            metrics,
            batch: DEFAULT_CLAIM_BATCH,
            buffer: Vec::new().into_iter(),
            state: ClaimState::Idle,
            message: PhantomData,
        }
    }

    /// Claims up to `batch` messages at a time (at least 1; default
    /// [`DEFAULT_CLAIM_BATCH`]). A smaller batch leases fewer messages ahead of the
    /// handler; a larger one costs fewer backend calls.
    pub fn claim_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Changes how many messages the next claims take (at least 1).
    pub fn set_claim_batch(&mut self, batch: usize) {
        self.batch = batch.max(1);
    }

    /// The group these deliveries come from.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Messages claimed and not yet yielded (already leased to this consumer).
    pub fn claimed_ahead(&self) -> usize {
        self.buffer.len()
    }

    /// Whether the last claim found nothing and nothing is buffered: the group had
    /// nothing ready for this consumer.
    pub(crate) fn is_idle(&self) -> bool {
        self.buffer.len() == 0 && matches!(self.state, ClaimState::Waiting { .. })
    }

    fn start_claim(&mut self) {
        let changed = self.inner.backend.changed();
        let (inner, group, consumer) = (
            Arc::clone(&self.inner),
            Arc::clone(&self.group),
            Arc::clone(&self.consumer),
        );
        let batch = self.batch;
        let claim = async move {
            let now = inner.now();
            let lease_until = now + inner.lease;
            inner
                .backend
                .claim(&group, &consumer, batch, now, lease_until)
                .await
        }
        .boxed();
        self.state = ClaimState::Claiming { claim, changed };
    }

    /// Turns a claimed message into a delivery, or dead-letters it if it does not
    /// decode.
    fn deliver(&self, claimed: Claimed) -> Option<Delivery<M>> {
        let (message, context) = self.decode(&claimed)?;
        let lease = Lease {
            to: Arc::clone(&self.answers),
            id: claimed.message.id,
            attempt: claimed.attempt,
            retry_base: claimed.retry_base,
            enqueued_at: claimed.message.enqueued_at,
            last_error: claimed.last_error,
            answered: false,
        };
        Some(Delivery {
            message,
            context,
            lease,
        })
    }

    /// Decodes a claimed message and the producer's context, or dead-letters the
    /// message with the decode error.
    pub(crate) fn decode(&self, claimed: &Claimed) -> Option<(M, Option<FlowContext>)> {
        let codec = &self.inner.codec;
        let decoded = codec.decode(&claimed.message.payload).and_then(|message| {
            match &claimed.message.context {
                None => Ok((message, None)),
                Some(bytes) => {
                    codec
                        .decode(bytes)
                        .map(|ctx| (message, Some(ctx)))
                        .map_err(|error| CodecError {
                            message: format!("its flow context: {}", error.message),
                            ..error
                        })
                }
            }
        });
        match decoded {
            Ok(decoded) => Some(decoded),
            Err(error) => {
                let id = claimed.message.id;
                self.answers
                    .dead_letter_now(id, claimed.attempt, format!("decode error: {error}"));
                None
            }
        }
    }

    /// Where this stream's answers go.
    pub(crate) fn answers(&self) -> &Arc<Answers> {
        &self.answers
    }

    /// The next message claimed ahead, if there is one (not counted as delivered:
    /// the caller counts).
    pub(crate) fn pop_claimed(&mut self) -> Option<Claimed> {
        self.buffer.next()
    }

    /// The next claimed message, undecoded and not counted as delivered yet: what
    /// [`poll_next`](Stream::poll_next) makes deliveries of, and what a consumer's
    /// workers handle without a [`Lease`] each.
    pub(crate) fn poll_claimed(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Claimed, QueueError>>> {
        loop {
            if let Some(claimed) = self.pop_claimed() {
                return Poll::Ready(Some(Ok(claimed)));
            }
            match &mut self.state {
                ClaimState::Idle => self.start_claim(),
                ClaimState::Claiming { claim, .. } => {
                    let result = std::task::ready!(claim.as_mut().poll(cx));
                    let ClaimState::Claiming { changed, .. } =
                        std::mem::replace(&mut self.state, ClaimState::Idle)
                    else {
                        continue;
                    };
                    match result {
                        Ok(claim) if claim.messages.is_empty() => {
                            let due = claim.next_due.map(|at| {
                                self.inner.runtime.sleep_until(self.inner.instant_at(at))
                            });
                            self.state = ClaimState::Waiting { changed, due };
                        }
                        Ok(claim) => self.buffer = claim.messages.into_iter(),
                        Err(error) => return Poll::Ready(Some(Err(error.into()))),
                    }
                }
                ClaimState::Waiting { changed, due } => {
                    let woke = changed.as_mut().poll(cx).is_ready()
                        | due.as_mut().is_some_and(|d| d.as_mut().poll(cx).is_ready());
                    if !woke {
                        return Poll::Pending;
                    }
                    self.state = ClaimState::Idle;
                }
            }
        }
    }
}

impl<M, C> Stream for Deliveries<M, C>
where
    M: DeserializeOwned + Send + 'static,
    C: Codec,
{
    type Item = Result<Delivery<M>, QueueError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match std::task::ready!(this.poll_claimed(cx)) {
                Some(Ok(claimed)) => {
                    this.metrics.delivered.inc();
                    if claimed.lease_expired {
                        this.metrics.redelivered.inc();
                    }
                    if let Some(delivery) = this.deliver(claimed) {
                        return Poll::Ready(Some(Ok(delivery)));
                    }
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => return Poll::Ready(None),
            }
        }
    }
}

impl<M, C: Codec> Drop for Deliveries<M, C> {
    fn drop(&mut self) {
        // Messages claimed and never handed out go back at once, not at lease end,
        // with that delivery not counted.
        let now = self.inner.now();
        for claimed in self.buffer.by_ref() {
            drop(
                self.inner
                    .backend
                    .release(&self.group, claimed.message.id, claimed.attempt, now),
            );
        }
    }
}

impl<M, C: Codec> fmt::Debug for Deliveries<M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deliveries")
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

/// A message leased to a consumer, from [`Deliveries`]. Answer it with
/// [`ack`](Self::ack) (done), [`retry`](Self::retry) (failed: try again after the
/// queue's backoff), [`nack`](Self::nack) (try again after a given delay) or
/// [`reject`](Self::reject) (to dead letters now); or take it apart with
/// [`into_parts`](Self::into_parts) and answer through the [`Lease`].
///
/// A delivery dropped without an answer is retried as if it had failed ("dropped
/// without an answer"), at once as far as the backend is concerned.
#[derive(Debug)]
pub struct Delivery<M> {
    message: M,
    context: Option<FlowContext>,
    lease: Lease,
}

impl<M> Delivery<M> {
    /// The message.
    pub fn message(&self) -> &M {
        &self.message
    }

    /// The producer's [`FlowContext`], when it sent the message with one
    /// ([`SendFuture::with_context`](super::SendFuture::with_context)).
    pub fn context(&self) -> Option<&FlowContext> {
        self.context.as_ref()
    }

    /// The message, to change in place.
    pub fn message_mut(&mut self) -> &mut M {
        &mut self.message
    }

    /// The message and the lease that answers for it.
    pub fn into_parts(self) -> (M, Lease) {
        (self.message, self.lease)
    }

    /// The lease: id, attempt, times.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Acknowledges the message: it leaves the group for good.
    pub async fn ack(self) -> Result<(), QueueError> {
        self.lease.ack().await
    }

    /// Failed: delivered again after `delay`, unless this was the last attempt the
    /// queue's retry policy allows; then it goes to dead letters.
    pub async fn nack(self, delay: Duration) -> Result<(), QueueError> {
        self.lease.nack(delay).await
    }

    /// Failed with `error`: delivered again after the retry policy's backoff for this
    /// attempt, or dead-lettered with `error` after the last attempt.
    pub async fn retry(self, error: impl fmt::Display) -> Result<(), QueueError> {
        self.lease.retry(error).await
    }

    /// Gives up on the message now: it goes to the group's dead letters with `error`.
    pub async fn reject(self, error: impl fmt::Display) -> Result<(), QueueError> {
        self.lease.reject(error).await
    }

    /// Extends the lease by `by` from now; `false` if the lease was lost meanwhile
    /// (it ran out and the message went back to the group).
    pub async fn extend_lease(&mut self, by: Duration) -> Result<bool, QueueError> {
        self.lease.extend(by).await
    }
}

/// What a [`Lease`] needs of its queue, whatever its codec.
pub(crate) trait LeaseTarget: Send + Sync {
    fn backend(&self) -> &dyn super::Backend;
    fn now(&self) -> SystemTime;
    fn retry_policy(&self) -> &crate::retry::RetryPolicy;
}

impl<C: Codec> LeaseTarget for Inner<C> {
    fn backend(&self) -> &dyn super::Backend {
        &*self.backend
    }
    fn now(&self) -> SystemTime {
        Inner::now(self)
    }
    fn retry_policy(&self) -> &crate::retry::RetryPolicy {
        &self.retry
    }
}

/// The answer side of a [`Delivery`]: acknowledges, retries or dead-letters one
/// message of one group. Dropped without an answer, it retries the message as failed.
pub struct Lease {
    to: Arc<Answers>,
    id: u64,
    attempt: u32,
    retry_base: u32,
    enqueued_at: SystemTime,
    last_error: Option<String>,
    answered: bool,
}

/// Where answers go: the queue, the group, the group's counters. Shared by every
/// lease of one [`Deliveries`] stream, and used directly by a consumer's workers.
pub(crate) struct Answers {
    inner: Arc<dyn LeaseTarget>,
    group: Arc<str>,
    metrics: Arc<GroupMetrics>,
}

impl Answers {
    /// Counts `delivered` messages handed to a handler, `redelivered` of them after a
    /// lease ran out.
    pub(crate) fn count_delivered(&self, delivered: u64, redelivered: u64) {
        if delivered > 0 {
            self.metrics.delivered.add(delivered);
        }
        if redelivered > 0 {
            self.metrics.redelivered.add(redelivered);
        }
    }

    /// Acknowledges `entries` (`(id, attempt)`, sent at `enqueued`, in the same
    /// order) in one backend call: one lock, or one commit. Resolves with the ids of
    /// the late answers among them (their delivery had lost its lease): not counted
    /// as acknowledged, no latency taken, counted in `late_answers`.
    pub(crate) fn ack<'a>(
        &'a self,
        entries: &'a [(u64, u32)],
        enqueued: &'a [SystemTime],
    ) -> BoxFuture<'a, Result<Vec<u64>, QueueError>> {
        let now = self.inner.now();
        let done = self.inner.backend().ack(&self.group, entries);
        async move {
            let late = done.await?;
            self.count_acked(entries, enqueued, &late, now);
            Ok(late)
        }
        .boxed()
    }

    /// Counts the acknowledgements of `entries` but the `late` ones, and their
    /// latency at `now`.
    fn count_acked(
        &self,
        entries: &[(u64, u32)],
        enqueued: &[SystemTime],
        late: &[u64],
        now: SystemTime,
    ) {
        // A send stamped on another thread can read a hair later than this clock:
        // that is no latency, not a lost sample.
        let latency = |at: SystemTime| now.duration_since(at).unwrap_or(Duration::ZERO);
        let acked = entries
            .iter()
            .zip(enqueued)
            .filter(|((id, _), _)| !late.contains(id))
            .map(|(_, &at)| at);
        // One or two (a stream's single acks) are not worth a batch's bucket list.
        if entries.len() <= 2 {
            for at in acked {
                self.metrics.latency.record(latency(at));
            }
        } else {
            let mut batch = HistogramBatch::default();
            for at in acked {
                batch.record(latency(at));
            }
            self.metrics.latency.record_batch(&mut batch);
        }
        self.metrics
            .acked
            .add(entries.len().saturating_sub(late.len()) as u64);
        if !late.is_empty() {
            self.metrics.late_answers.add(late.len() as u64);
        }
    }

    /// Counts one answer other than an acknowledgement on `counter`, or as a late
    /// answer; a late answer is [`QueueError::LateAnswer`].
    fn counted(
        &self,
        held: bool,
        counter: &crate::stats::Counter,
        id: u64,
        attempt: u32,
    ) -> Result<(), QueueError> {
        if held {
            counter.inc();
            Ok(())
        } else {
            self.metrics.late_answers.inc();
            Err(QueueError::LateAnswer { id, attempt })
        }
    }

    /// Delivery `attempt` of `id` failed with `error`: retried (after `delay`, or
    /// the policy's backoff), or dead-lettered after the last attempt the policy
    /// allows. The backend acts when called, so dropping the future still answers;
    /// the answer is counted when the future completes (`fail_now`, for a delivery
    /// dropped unanswered, counts when called).
    ///
    /// The policy counts the attempts after `retry_base` (the deliveries before the
    /// message was last requeued from dead letters).
    pub(crate) fn fail(
        &self,
        id: u64,
        (attempt, retry_base): (u32, u32),
        error: String,
        delay: Option<Duration>,
    ) -> BoxFuture<'_, Result<(), QueueError>> {
        let now = self.inner.now();
        let policy = self.inner.retry_policy();
        let tries = attempt.saturating_sub(retry_base);
        if policy.allows(tries) {
            let delay = delay.unwrap_or_else(|| policy.delay_for(tries, id));
            let nack =
                self.inner
                    .backend()
                    .nack(&self.group, id, attempt, now + delay, Some(error));
            async move { self.counted(nack.await?, &self.metrics.nacked, id, attempt) }.boxed()
        } else {
            self.dead_letter(id, attempt, error)
        }
    }

    /// Moves delivery `attempt` of `id` to dead letters with `error`.
    pub(crate) fn dead_letter(
        &self,
        id: u64,
        attempt: u32,
        error: String,
    ) -> BoxFuture<'_, Result<(), QueueError>> {
        let now = self.inner.now();
        let dead = self
            .inner
            .backend()
            .dead_letter(&self.group, id, attempt, error, now);
        async move { self.counted(dead.await?, &self.metrics.dead_lettered, id, attempt) }.boxed()
    }

    /// Gives the answer `answer` without waiting for it: counted by its outcome when
    /// it is known at once (an in-memory backend), else as given (the backend acts
    /// when called, and a dropped future cannot tell).
    fn answer_now(
        &self,
        answer: BoxFuture<'_, Result<(), QueueError>>,
        counter: &crate::stats::Counter,
    ) {
        if answer.now_or_never().is_none() {
            counter.inc();
        }
    }

    /// Hands delivery `attempt` of `id` back to the group unhandled, that delivery not
    /// counted (a stop cancelled its handler). The backend acts when called.
    pub(crate) fn release(&self, id: u64, attempt: u32) {
        let now = self.inner.now();
        drop(self.inner.backend().release(&self.group, id, attempt, now));
    }

    /// Dead-letters at once, without waiting (the backend acts when called).
    pub(crate) fn dead_letter_now(&self, id: u64, attempt: u32, error: String) {
        self.answer_now(
            self.dead_letter(id, attempt, error),
            &self.metrics.dead_lettered,
        );
    }

    /// Fails delivery `attempt` of `id` at once, without waiting (a lease dropped
    /// unanswered).
    pub(crate) fn fail_now(&self, id: u64, (attempt, retry_base): (u32, u32), error: String) {
        let counter = if self
            .inner
            .retry_policy()
            .allows(attempt.saturating_sub(retry_base))
        {
            &self.metrics.nacked
        } else {
            &self.metrics.dead_lettered
        };
        self.answer_now(self.fail(id, (attempt, retry_base), error, None), counter);
    }

    /// Acknowledges at once, without waiting (a worker dropped with acknowledgements
    /// gathered): counted by its outcome when known at once, else as acknowledged.
    pub(crate) fn ack_now(&self, entries: &[(u64, u32)], enqueued: &[SystemTime]) {
        if self.ack(entries, enqueued).now_or_never().is_none() {
            self.count_acked(entries, enqueued, &[], self.inner.now());
        }
    }
}

/// Which delivery of which message a type speaks for: `id`, `attempt` and
/// `enqueued_at`, over fields of those names (a [`Lease`], a consumer's
/// [`MessageContext`](super::MessageContext)).
macro_rules! delivery_identity {
    () => {
        /// The message's id in the queue.
        pub fn id(&self) -> u64 {
            self.id
        }

        /// Which delivery of the message this is, for its group (1 for the first).
        pub fn attempt(&self) -> u32 {
            self.attempt
        }

        /// When the message was sent.
        pub fn enqueued_at(&self) -> ::std::time::SystemTime {
            self.enqueued_at
        }
    };
}
pub(crate) use delivery_identity;

impl Lease {
    delivery_identity!();

    /// The error of the previous attempt, if there was one.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The group the message was delivered to.
    pub fn group(&self) -> &str {
        &self.to.group
    }

    /// Acknowledges the message: it leaves the group for good.
    ///
    /// If this delivery's lease ran out before the answer (the message went back to
    /// the group, or was delivered again), the answer changes nothing and is
    /// [`QueueError::LateAnswer`]; it is counted in the group's `late_answers`, not
    /// as acknowledged. The same holds for every answer below.
    pub async fn ack(mut self) -> Result<(), QueueError> {
        self.answered = true;
        let late = self
            .to
            .ack(&[(self.id, self.attempt)], &[self.enqueued_at])
            .await?;
        match late.is_empty() {
            true => Ok(()),
            false => Err(QueueError::LateAnswer {
                id: self.id,
                attempt: self.attempt,
            }),
        }
    }

    /// Failed: delivered again after `delay`, or dead-lettered after the last attempt.
    pub async fn nack(mut self, delay: Duration) -> Result<(), QueueError> {
        self.answered = true;
        let error = format!("nacked on attempt {}", self.attempt);
        self.to
            .fail(self.id, (self.attempt, self.retry_base), error, Some(delay))
            .await
    }

    /// Failed with `error`: delivered again after the policy's backoff, or
    /// dead-lettered with `error` after the last attempt.
    pub async fn retry(mut self, error: impl fmt::Display) -> Result<(), QueueError> {
        self.answered = true;
        self.to
            .fail(
                self.id,
                (self.attempt, self.retry_base),
                error.to_string(),
                None,
            )
            .await
    }

    /// Gives up on the message now: to dead letters with `error`.
    pub async fn reject(mut self, error: impl fmt::Display) -> Result<(), QueueError> {
        self.answered = true;
        self.to
            .dead_letter(self.id, self.attempt, error.to_string())
            .await
    }

    /// Extends the lease by `by` from now; `false` if it was lost meanwhile.
    pub async fn extend(&mut self, by: Duration) -> Result<bool, QueueError> {
        let until = self.to.inner.now() + by;
        Ok(self
            .to
            .inner
            .backend()
            .extend_lease(&self.to.group, self.id, self.attempt, until)
            .await?)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.answered {
            // The backend acts when called: dropping the future still retries.
            self.to.fail_now(
                self.id,
                (self.attempt, self.retry_base),
                "dropped without an answer".to_owned(),
            );
        }
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("group", &self.to.group)
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("answered", &self.answered)
            .finish_non_exhaustive()
    }
}
