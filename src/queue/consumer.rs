//! [`Consumer`]: a consumer group's handler flow, with workers and a graceful stop.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use event_listener::EventListener;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;

use super::backend::Claimed;
use super::backend::StartFrom;
use super::codec::Codec;
use super::delivery::{Answers, Deliveries};
use super::error::QueueError;
use super::shared::Inner;
use crate::FlowContext;
use crate::flow::{
    Flow, FlowEnd, FlowError, FlowMetrics, FlowReport, Grace, HandlerFn, StopSignal, StopState,
    Verdict, call,
};
use crate::runtime::{JoinHandle, RuntimeExt, SharedRuntime};

/// The most messages a [`Consumer`]'s worker claims at once by default.
pub const DEFAULT_MAX_CLAIM: usize = 128;

/// One in this many handled messages has its handler's time recorded in the
/// consumer's [`FlowStats::latency`](crate::flow::FlowStats::latency): two clock reads
/// per message would cost more than the rest of a small message's handling.
const LATENCY_SAMPLING: u64 = 32;

/// What a consumer's handler is told about the message it handles, as its second
/// argument ([`MessageQueue::consumer_with_context`](super::MessageQueue::consumer_with_context)).
#[derive(Debug, Clone)]
pub struct MessageContext {
    id: u64,
    attempt: u32,
    enqueued_at: SystemTime,
    flow: Option<FlowContext>,
    stop: StopSignal,
}

impl MessageContext {
    super::delivery::delivery_identity!();

    /// The producer's [`FlowContext`], when it sent the message with one
    /// ([`SendFuture::with_context`](super::SendFuture::with_context)): its flow id,
    /// user id and attributes, for tracing the work across the queue.
    pub fn flow_context(&self) -> Option<&FlowContext> {
        self.flow.as_ref()
    }

    /// The consumer's stop: whether one was asked for, a future for it, and a way to
    /// stop the consumer from inside a handler.
    pub fn stop(&self) -> &StopSignal {
        &self.stop
    }
}

/// A consumer group's handler flow; from [`MessageQueue::consumer`](super::MessageQueue::consumer).
///
/// The handler runs for each message of the group: `Ok` (or `()`) acknowledges it,
/// `Err` retries it after the queue's backoff (dead letters after the last attempt),
/// and a panic is caught and treated as an `Err`. A message whose handler does not
/// finish within the lease is delivered again (to this or another consumer of the
/// group).
///
/// The flow is a pool of [`workers`](Self::workers) (default 1). Each worker claims
/// messages in batches (leasing them ahead, see [`claim_batch`](Self::claim_batch)),
/// handles them one after the other, and acknowledges them in batches. Nothing runs
/// until the flow is driven: [`run`](Self::run) (or `.await`) drives every worker
/// inside the current task (concurrent, not parallel: runtime-agnostic);
/// [`spawn`](Self::spawn) runs each worker as a task of a runtime, so they run in
/// parallel on a multi-threaded executor.
///
/// It follows the [flow contract](crate::flow). The flow runs until
/// [`StopHandle::stop`](crate::flow::StopHandle::stop) (from [`stop_handle`](Self::stop_handle)): it then takes no
/// new message, lets the handlers running finish within the given grace period,
/// cancels those still running after it (their messages go back to the group
/// uncounted, to be delivered again: nothing is lost), returns what it had claimed
/// ahead, and ends with a [`FlowReport`] that says it stopped. It ends failed, with
/// the [`QueueError`], if the backend fails.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use riverbed::queue::MessageQueue;
/// use riverbed::runtime::{SharedRuntime, VirtualRuntime};
///
/// let clock = VirtualRuntime::new();
/// let rt: SharedRuntime = Arc::new(clock.clone());
/// clock.block_on(async {
///     let queue: MessageQueue<u32> = MessageQueue::new("numbers", &rt);
///     let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
///     let sink = Arc::clone(&seen);
///     let consumer = queue
///         .consumer("sum", move |n: u32| {
///             sink.lock().unwrap().push(n);
///             async move { if n == 0 { Err("zero") } else { Ok(()) } }
///         })
///         .workers(4)
///         // The group is created when the flow first runs, after the sends below;
///         // it starts from the earliest message the queue holds, so it sees them.
///         .claim_batch(8);
///     let stop = consumer.stop_handle();
///     let flow = consumer.spawn(&rt);
///     queue.send_batch([1, 2, 3]).await.unwrap();
///     stop.stop_when_idle(Duration::from_secs(1));
///     let report = flow.await.unwrap();
///     assert!(report.is_stopped());
///     assert_eq!(report.stats.handled, 3);
///     let mut seen = seen.lock().unwrap().clone();
///     seen.sort();
///     assert_eq!(seen, [1, 2, 3]);
/// });
/// ```
#[must_use = "a consumer does nothing until it is awaited, run or spawned"]
pub struct Consumer<M, C: Codec, H> {
    inner: Arc<Inner<C>>,
    group: String,
    handler: Arc<H>,
    workers: usize,
    start: StartFrom,
    batch: usize,
    stop: Arc<StopState>,
    metrics: Arc<FlowMetrics>,
    message: PhantomData<fn() -> M>,
}

impl<M, C, H> Consumer<M, C, H>
where
    M: DeserializeOwned + Send + 'static,
    C: Codec,
    H: HandlerFn<M, MessageContext>,
{
    crate::flow::flow_handles!(FlowReport<QueueError>);

    pub(crate) fn new(inner: Arc<Inner<C>>, group: &str, handler: H) -> Self {
        let clock = Arc::clone(&inner.runtime);
        Consumer {
            group: group.to_owned(),
            handler: Arc::new(handler),
            workers: 1,
            start: StartFrom::Earliest,
            batch: DEFAULT_MAX_CLAIM,
            stop: StopState::new(Some(Arc::clone(&clock))),
            metrics: FlowMetrics::new(format!("{}/{group}", inner.name), Some(clock)),
            inner,
            message: PhantomData,
        }
    }

    /// How many workers handle messages at once (at least 1; default 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Where the group starts if this consumer creates it (default
    /// [`StartFrom::Earliest`]: the earliest message the queue still holds, so jobs
    /// sent before the workers started are handled). A fan-out subscriber that wants
    /// only what is sent from now on starts from [`StartFrom::Latest`]. The flow
    /// creates its group when it first runs.
    pub fn start_from(mut self, start: StartFrom) -> Self {
        self.start = start;
        self
    }

    /// The most messages each worker claims (leases) at once, and acknowledges at
    /// once (at least 1; default [`DEFAULT_MAX_CLAIM`]). A claimed message waits for
    /// its worker while its lease runs, so a worker claims fewer when its handler is
    /// slow: as many as it handles in a quarter of a lease at its recent pace (one at
    /// first).
    pub fn claim_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Creates the group, then runs the workers: as tasks of `runtime`, or in this
    /// future.
    async fn drive(self, runtime: Option<SharedRuntime>) -> FlowReport<QueueError> {
        let metrics = Arc::clone(&self.metrics);
        let created = self
            .inner
            .backend
            .create_group(&self.group, self.start)
            .await;
        let end = match (created, runtime) {
            (Err(error), _) => Err(QueueError::from(error)),
            (Ok(_), None) => {
                let workers: Vec<_> = (0..self.workers).map(|_| self.worker()).collect();
                futures_util::future::join_all(workers)
                    .await
                    .into_iter()
                    .collect()
            }
            (Ok(_), Some(rt)) => {
                // Aborted if this future is dropped: no worker outlives its flow.
                let mut tasks = Tasks((0..self.workers).map(|_| rt.spawn(self.worker())).collect());
                let mut results = Vec::with_capacity(tasks.0.len());
                for handle in &mut tasks.0 {
                    results.push(
                        handle
                            .await
                            .unwrap_or_else(|join| Err(QueueError::Worker(join.to_string()))),
                    );
                }
                results.into_iter().collect()
            }
        };
        match end {
            Ok(()) => FlowEnd::Stopped,
            Err(error) => FlowEnd::Failed(error),
        }
        .into_report(&metrics)
    }

    /// One worker: claims, handles one message at a time, acknowledges in batches.
    ///
    /// It handles claimed messages as they come from the backend, without a
    /// [`Lease`](super::Lease) each: its [`Answering`] holds the acknowledgements it
    /// gathers and the message in hand, and answers for them if the worker is dropped.
    fn worker(&self) -> BoxFuture<'static, Result<(), QueueError>> {
        let mut deliveries: Deliveries<M, C> =
            Deliveries::new(Arc::clone(&self.inner), &self.group).claim_batch(1);
        let handler = Arc::clone(&self.handler);
        let stop = Arc::clone(&self.stop);
        let metrics = Arc::clone(&self.metrics);
        let slot = metrics.slot();
        let mut pace = Pace::new(
            self.batch,
            self.inner.lease,
            Arc::clone(&self.inner.runtime),
        );
        async move {
            let mut answering = Answering {
                to: Arc::clone(deliveries.answers()),
                acks: Vec::new(),
                enqueued: Vec::new(),
                in_hand: None,
                delivered: 0,
                redelivered: 0,
                metrics: Arc::clone(&metrics),
            };
            let mut sampled: u64 = 0;
            let outcome = loop {
                if deliveries.claimed_ahead() == 0 {
                    // About to claim again: acknowledge what is done, and size the
                    // next claim to what this worker handles within a lease.
                    if let Err(error) = answering.flush().await {
                        break Err(error);
                    }
                    deliveries.set_claim_batch(pace.next_batch());
                }
                // Messages claimed ahead are taken as they are, with no trip
                // through the stream's polling; a stop still ends the loop first.
                let ahead = if stop.halts_intake() {
                    None
                } else {
                    deliveries.pop_claimed()
                };
                let claimed = match ahead {
                    Some(claimed) => claimed,
                    None => match next_or_stop(&mut deliveries, &stop).await {
                        Step::Deliver(claimed) => claimed,
                        Step::Fail(error) => break Err(error),
                        Step::Stop => break Ok(()),
                    },
                };
                pace.handled += 1;
                answering.delivered += 1;
                answering.redelivered += u64::from(claimed.lease_expired);
                let Some((message, flow)) = deliveries.decode(&claimed) else {
                    continue;
                };
                let (id, attempt) = (claimed.message.id, claimed.attempt);
                let retry_base = claimed.retry_base;
                let enqueued_at = claimed.message.enqueued_at;
                answering.in_hand = Some((id, attempt));
                slot.set(1);
                sampled += 1;
                let started = (sampled % LATENCY_SAMPLING == 1).then(|| metrics.now());
                let cx = || MessageContext {
                    id,
                    attempt,
                    enqueued_at,
                    flow,
                    stop: StopSignal::new(&stop),
                };
                let verdict = handle_within_grace(&*handler, message, cx, &stop).await;
                slot.set(0);
                if let Some(started) = started {
                    metrics.record_latency(metrics.now().saturating_duration_since(started));
                }
                match verdict {
                    Some(Verdict::Done) => {
                        answering.in_hand = None;
                        answering.acks.push((id, attempt));
                        answering.enqueued.push(enqueued_at);
                    }
                    Some(failed) => {
                        answering.in_hand = None;
                        if let Some((message, panicked)) = failed.failure() {
                            metrics.fail(
                                format!("message {id}, attempt {attempt}"),
                                message,
                                panicked,
                            );
                        }
                        // The dead letter says whose panic it was.
                        let error = match failed {
                            Verdict::Panicked(message) => format!("handler {message}"),
                            other => other.into_result().err().unwrap_or_default(),
                        };
                        drop(
                            answering
                                .to
                                .fail(id, (attempt, retry_base), error, None)
                                .await,
                        );
                    }
                    // Cancelled at the end of the grace period: handed back
                    // uncounted as the answering drops, below.
                    None => {
                        metrics.cancelled.inc();
                        break Ok(());
                    }
                }
            };
            let acked = answering.flush().await;
            drop(answering);
            // What was claimed ahead goes back to the group as the stream drops.
            drop(deliveries);
            outcome.and(acked)
        }
        .boxed()
    }
}

/// A consumer's spawned workers, aborted if the flow's future is dropped before they
/// end.
struct Tasks(Vec<JoinHandle<Result<(), QueueError>>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort();
        }
    }
}

/// A worker's answers not given to the backend yet: the acknowledgements it
/// gathered, and the message its handler has now. Dropped (the worker cancelled or
/// dropped mid-flight), the acknowledgements still go out and the message in hand
/// goes back to the group, that delivery uncounted: the backend acts when called.
struct Answering {
    to: Arc<Answers>,
    acks: Vec<(u64, u32)>,
    enqueued: Vec<SystemTime>,
    in_hand: Option<(u64, u32)>,
    /// Messages handed to the handler since the last flush, and how many of them
    /// came back after a lease ran out: counted in the group's statistics per batch
    /// rather than per message.
    delivered: u64,
    redelivered: u64,
    /// The flow's counters: acknowledged messages count as handled.
    metrics: Arc<FlowMetrics>,
}

impl Answering {
    /// Adds the deliveries counted so far to the group's statistics.
    fn count(&mut self) {
        self.to.count_delivered(self.delivered, self.redelivered);
        self.delivered = 0;
        self.redelivered = 0;
    }

    /// Acknowledges what was gathered, in one backend call.
    async fn flush(&mut self) -> Result<(), QueueError> {
        self.count();
        if self.acks.is_empty() {
            return Ok(());
        }
        // A late acknowledgement (a lease that ran out while the handler ran) is
        // counted by the group as such; the handler's work still counts as handled.
        // Taken out first: the backend acts when called, so a worker dropped while
        // this waits for a commit must not acknowledge them again (they would all
        // read as late).
        let acks = std::mem::take(&mut self.acks);
        let enqueued = std::mem::take(&mut self.enqueued);
        self.metrics.handled.add(acks.len() as u64);
        self.to.ack(&acks, &enqueued).await.map(drop)
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.count();
        if !self.acks.is_empty() {
            self.metrics.handled.add(self.acks.len() as u64);
            self.to.ack_now(&self.acks, &self.enqueued);
        }
        if let Some((id, attempt)) = self.in_hand.take() {
            self.to.release(id, attempt);
        }
    }
}

/// How many messages a worker claims at once: as many as it handles in a quarter of a
/// lease at its recent pace, between 1 and the configured batch. Claiming ahead saves
/// backend calls; claiming more than a lease's worth would let leases run out while
/// messages wait in the worker, and hand them to someone else too.
struct Pace {
    max: usize,
    lease: Duration,
    clock: SharedRuntime,
    /// Since the last claim: when it was made, and how many were handled since.
    since: Instant,
    handled: u64,
    batch: usize,
}

impl Pace {
    fn new(max: usize, lease: Duration, clock: SharedRuntime) -> Self {
        Pace {
            max,
            lease,
            since: clock.now(),
            clock,
            handled: 0,
            batch: 1,
        }
    }

    /// The size of the next claim, from the pace since the last one.
    fn next_batch(&mut self) -> usize {
        let now = self.clock.now();
        if self.handled > 0 {
            let elapsed = now.saturating_duration_since(self.since).as_nanos();
            let per_message = elapsed / u128::from(self.handled);
            let fit = (self.lease / 4)
                .as_nanos()
                .checked_div(per_message)
                .map_or(self.max, |fit| usize::try_from(fit).unwrap_or(usize::MAX));
            self.batch = fit.clamp(1, self.max);
        }
        self.since = now;
        self.handled = 0;
        self.batch
    }
}

/// What a worker does next.
enum Step {
    Deliver(Claimed),
    Fail(QueueError),
    Stop,
}

/// The next delivery, unless the flow is stopping (or, when draining, the group has
/// nothing ready any more).
async fn next_or_stop<M, C>(deliveries: &mut Deliveries<M, C>, stop: &StopState) -> Step
where
    M: DeserializeOwned + Send + 'static,
    C: Codec,
{
    let mut listener: Option<EventListener> = None;
    std::future::poll_fn(|cx| {
        loop {
            if stop.halts_intake() {
                return Poll::Ready(Step::Stop);
            }
            match deliveries.poll_claimed(cx) {
                Poll::Ready(Some(Ok(claimed))) => return Poll::Ready(Step::Deliver(claimed)),
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Step::Fail(error)),
                Poll::Ready(None) => return Poll::Ready(Step::Stop),
                Poll::Pending => {}
            }
            if stop.requested() && deliveries.is_idle() {
                return Poll::Ready(Step::Stop);
            }
            // Wake on a stop too; registered, then checked again above.
            if stop.poll_listen(&mut listener, cx).is_pending() {
                return Poll::Pending;
            }
        }
    })
    .await
}

/// Runs the handler on `message`, guarded; `None` if the flow's grace period ran out
/// first (the handler is dropped).
async fn handle_within_grace<M, H>(
    handler: &H,
    message: M,
    cx: impl FnOnce() -> MessageContext,
    stop: &StopState,
) -> Option<Verdict>
where
    H: HandlerFn<M, MessageContext>,
{
    let mut handling = std::pin::pin!(call(handler, message, cx));
    let mut grace = Grace::default();
    std::future::poll_fn(|cx| {
        if let Poll::Ready(verdict) = handling.as_mut().poll(cx) {
            return Poll::Ready(Some(verdict));
        }
        stop.poll_grace_over(&mut grace, cx).map(|()| None)
    })
    .await
}

impl<M, C, H> IntoFuture for Consumer<M, C, H>
where
    M: DeserializeOwned + Send + 'static,
    C: Codec,
    H: HandlerFn<M, MessageContext>,
{
    crate::flow::flow_into_future!(FlowReport<QueueError>);
}

impl<M, C, H> Flow for Consumer<M, C, H>
where
    M: DeserializeOwned + Send + 'static,
    C: Codec,
    H: HandlerFn<M, MessageContext>,
{
    crate::flow::flow_identity!(FlowError::new);
}

impl<M, C: Codec, H> fmt::Debug for Consumer<M, C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.inner.name)
            .field("group", &self.group)
            .field("workers", &self.workers)
            .field("start", &self.start)
            .field("claim_batch", &self.batch)
            .finish_non_exhaustive()
    }
}
