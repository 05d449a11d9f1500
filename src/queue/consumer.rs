//! [`Consumer`]: a consumer group's handler flow, with workers and a graceful stop.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use event_listener::{Event, EventListener};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;

use super::backend::Claimed;
use super::backend::{BackendError, StartFrom};
use super::codec::Codec;
use super::delivery::{Answers, Deliveries};

/// The most messages a [`Consumer`]'s worker claims at once by default.
pub const DEFAULT_MAX_CLAIM: usize = 128;
use super::error::QueueError;
use super::queue::Inner;
use crate::bus::HandlerOutcome;
use crate::runtime::{JoinHandle, RuntimeExt, SharedRuntime, Sleep, panic_text};

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
/// The flow runs until [`StopHandle::stop`] (from [`stop_handle`](Self::stop_handle)):
/// it then takes no new message, lets the handlers running finish within the given
/// grace period, cancels those still running after it (their messages go back to the
/// group, to be delivered again: nothing is lost), returns what it had claimed ahead,
/// and ends with `Ok(())`. It ends with `Err` if the backend fails.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use riverbed::queue::{MessageQueue, StartFrom};
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
///         // The group is created when the flow first runs, after the sends below:
///         // from the earliest message it still sees them.
///         .start_from(StartFrom::Earliest);
///     let stop = consumer.stop_handle();
///     let flow = consumer.spawn(&rt);
///     queue.send_batch([1, 2, 3]).await.unwrap();
///     stop.stop_when_idle(Duration::from_secs(1));
///     flow.await.unwrap().unwrap();
///     let mut seen = seen.lock().unwrap().clone();
///     seen.sort();
///     assert_eq!(seen, [1, 2, 3]);
/// });
/// ```
#[must_use = "a consumer does nothing until it is awaited, run or spawned"]
pub struct Consumer<M, C: Codec, F> {
    inner: Arc<Inner<C>>,
    group: String,
    handler: Arc<F>,
    workers: usize,
    start: StartFrom,
    batch: usize,
    stop: Arc<Stop>,
    message: PhantomData<fn() -> M>,
}

/// The shared side of a [`StopHandle`].
#[derive(Debug)]
struct Stop {
    requested: AtomicBool,
    /// Stop only once the group has nothing ready (draining).
    when_idle: AtomicBool,
    /// When running handlers must have finished, on the runtime's clock.
    deadline: Mutex<Option<Instant>>,
    clock: SharedRuntime,
    /// Workers waiting for a message also wait for this.
    event: Event,
}

impl Stop {
    fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Listens for a stop: `Ready` when the caller must look at the stop again (the
    /// listener was just registered, so nothing is missed, or it fired), `Pending`
    /// when it waits.
    fn poll_listen(&self, listener: &mut Option<EventListener>, cx: &mut Context<'_>) -> Poll<()> {
        match listener.as_mut() {
            None => *listener = Some(self.event.listen()),
            Some(l) => {
                std::task::ready!(Pin::new(l).poll(cx));
                *listener = None;
            }
        }
        Poll::Ready(())
    }

    fn deadline(&self) -> Instant {
        self.deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(|| self.clock.now())
    }
}

/// Stops a [`Consumer`] gracefully; from [`Consumer::stop_handle`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StopHandle {
    stop: Arc<Stop>,
}

impl StopHandle {
    /// Stops the flow: no new messages; running handlers get `grace` to finish, then
    /// are cancelled and their messages go back to the group.
    pub fn stop(&self, grace: Duration) {
        let deadline = self.stop.clock.now() + grace;
        *self.stop.deadline.lock().unwrap_or_else(|p| p.into_inner()) = Some(deadline);
        self.stop.requested.store(true, Ordering::Release);
        self.stop.event.notify(usize::MAX);
    }

    /// As [`stop`](Self::stop), but each worker first drains what the group has ready
    /// for it, and stops once a claim finds nothing. Messages that are delayed or
    /// waiting for a retry's backoff are not waited for.
    pub fn stop_when_idle(&self, grace: Duration) {
        self.stop.when_idle.store(true, Ordering::Release);
        self.stop(grace);
    }

    /// Whether a stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.stop.requested()
    }
}

impl<M, C, F, Fut> Consumer<M, C, F>
where
    M: DeserializeOwned + Send + 'static,
    C: Codec,
    F: Fn(M) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutcome,
{
    pub(crate) fn new(inner: Arc<Inner<C>>, group: &str, handler: F) -> Self {
        let stop = Arc::new(Stop {
            requested: AtomicBool::new(false),
            when_idle: AtomicBool::new(false),
            deadline: Mutex::new(None),
            clock: Arc::clone(&inner.runtime),
            event: Event::new(),
        });
        Consumer {
            inner,
            group: group.to_owned(),
            handler: Arc::new(handler),
            workers: 1,
            start: StartFrom::Latest,
            batch: DEFAULT_MAX_CLAIM,
            stop,
            message: PhantomData,
        }
    }

    /// How many workers handle messages at once (at least 1; default 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Where the group starts if this consumer creates it (default
    /// [`StartFrom::Latest`]). The flow creates its group when it first runs: to see
    /// messages sent before that, start from [`StartFrom::Earliest`] or create the
    /// group beforehand with [`MessageQueue::create_group`](super::MessageQueue::create_group).
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

    /// A handle that stops the flow gracefully.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            stop: Arc::clone(&self.stop),
        }
    }

    /// Drives every worker in the current task until the flow is stopped.
    pub async fn run(self) -> Result<(), QueueError> {
        self.inner
            .backend
            .create_group(&self.group, self.start)
            .await?;
        let workers: Vec<_> = (0..self.workers).map(|_| self.worker()).collect();
        first_error(futures_util::future::join_all(workers).await)
    }

    /// Spawns every worker as a task of `runtime`; await the handle for the flow's end.
    pub fn spawn(self, runtime: &SharedRuntime) -> JoinHandle<Result<(), QueueError>> {
        let rt = Arc::clone(runtime);
        runtime.spawn(async move {
            self.inner
                .backend
                .create_group(&self.group, self.start)
                .await?;
            let handles: Vec<_> = (0..self.workers).map(|_| rt.spawn(self.worker())).collect();
            let mut results = Vec::with_capacity(handles.len());
            for handle in handles {
                results.push(handle.await.unwrap_or_else(|join| {
                    Err(QueueError::Backend(BackendError::Storage(format!(
                        "a worker task failed: {join}"
                    ))))
                }));
            }
            first_error(results)
        })
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
            };
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
                let stopping = stop.requested() && !stop.when_idle.load(Ordering::Acquire);
                let ahead = if stopping {
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
                let Some(message) = deliveries.decode(&claimed) else {
                    continue;
                };
                let (id, attempt) = (claimed.message.id, claimed.attempt);
                answering.in_hand = Some((id, attempt));
                match handle_within_grace(&handler, message, &stop).await {
                    Some(Ok(())) => {
                        answering.in_hand = None;
                        answering.acks.push(id);
                        answering.enqueued.push(claimed.message.enqueued_at);
                    }
                    Some(Err(error)) => {
                        answering.in_hand = None;
                        drop(answering.to.fail(id, attempt, error, None).await);
                    }
                    // Cancelled at the end of the grace period: retried as the
                    // answering drops, below.
                    None => break Ok(()),
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

/// A worker's answers not given to the backend yet: the acknowledgements it
/// gathered, and the message its handler has now. Dropped (the worker cancelled or
/// dropped mid-flight), the acknowledgements still go out and the message in hand is
/// retried as failed: the backend acts when called.
struct Answering {
    to: Arc<Answers>,
    acks: Vec<u64>,
    enqueued: Vec<SystemTime>,
    in_hand: Option<(u64, u32)>,
    /// Messages handed to the handler since the last flush, and how many of them
    /// came back after a lease ran out: counted in the group's statistics per batch
    /// rather than per message.
    delivered: u64,
    redelivered: u64,
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
        let done = self.to.ack(&self.acks, &self.enqueued).await;
        self.acks.clear();
        self.enqueued.clear();
        done
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.count();
        if !self.acks.is_empty() {
            drop(self.to.ack(&self.acks, &self.enqueued));
        }
        if let Some((id, attempt)) = self.in_hand.take() {
            drop(
                self.to
                    .fail(id, attempt, "dropped without an answer".to_owned(), None),
            );
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
async fn next_or_stop<M, C>(deliveries: &mut Deliveries<M, C>, stop: &Stop) -> Step
where
    M: DeserializeOwned + Send + 'static,
    C: Codec,
{
    let mut listener: Option<EventListener> = None;
    std::future::poll_fn(|cx| {
        loop {
            let draining = stop.when_idle.load(Ordering::Acquire);
            if stop.requested() && !draining {
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

/// Runs the handler on `message`, catching panics; `None` if the flow's grace period
/// ran out first (the handler is dropped).
async fn handle_within_grace<M, F, Fut>(
    handler: &Arc<F>,
    message: M,
    stop: &Stop,
) -> Option<Result<(), String>>
where
    F: Fn(M) -> Fut,
    Fut: Future,
    Fut::Output: HandlerOutcome,
{
    let called = std::panic::catch_unwind(AssertUnwindSafe(|| handler(message)));
    let handling = match called {
        Ok(future) => AssertUnwindSafe(future).catch_unwind(),
        Err(panic) => return Some(Err(panic_text(Some("handler"), panic.as_ref()))),
    };
    let mut handling = std::pin::pin!(handling);
    let mut listener: Option<EventListener> = None;
    let mut grace: Option<Sleep> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(outcome) = handling.as_mut().poll(cx) {
            return Poll::Ready(Some(match outcome {
                Ok(outcome) => outcome.into_result().map_err(|e| e.to_string()),
                Err(panic) => Err(panic_text(Some("handler"), panic.as_ref())),
            }));
        }
        loop {
            if stop.requested() {
                let timer = grace.get_or_insert_with(|| stop.clock.sleep_until(stop.deadline()));
                return match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                };
            }
            if stop.poll_listen(&mut listener, cx).is_pending() {
                return Poll::Pending;
            }
        }
    })
    .await
}

/// The first error among the workers' results, if any.
fn first_error(results: Vec<Result<(), QueueError>>) -> Result<(), QueueError> {
    results.into_iter().collect()
}

impl<M, C, F, Fut> IntoFuture for Consumer<M, C, F>
where
    M: DeserializeOwned + Send + 'static,
    C: Codec,
    F: Fn(M) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutcome,
{
    type Output = Result<(), QueueError>;
    type IntoFuture = BoxFuture<'static, Result<(), QueueError>>;

    fn into_future(self) -> Self::IntoFuture {
        self.run().boxed()
    }
}

impl<M, C: Codec, F> fmt::Debug for Consumer<M, C, F> {
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
