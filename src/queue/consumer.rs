//! [`Consumer`]: a consumer group's handler flow, with workers and a graceful stop.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;
use futures_util::{FutureExt, Stream};
use serde::de::DeserializeOwned;
use std::sync::Mutex;

use super::backend::StartFrom;
use super::codec::Codec;
use super::delivery::{DEFAULT_CLAIM_BATCH, Deliveries, Delivery};
use super::error::QueueError;
use super::queue::Inner;
use crate::bus::HandlerOutcome;
use crate::runtime::{RuntimeExt, SharedRuntime, Sleep, panic_message};

/// A consumer group's handler flow; from [`MessageQueue::consumer`](super::MessageQueue::consumer).
///
/// The handler runs for each message of the group: `Ok` (or `()`) acknowledges it,
/// `Err` retries it after the queue's backoff (dead letters after the last attempt),
/// and a panic is caught and treated as an `Err`. A message whose handler does not
/// finish within the lease is delivered again (to this or another consumer of the
/// group).
///
/// Up to [`workers`](Self::workers) messages are handled at once (default 1). Nothing
/// runs until the flow is driven: [`run`](Self::run) (or `.await`) drives the workers
/// inside the current task (concurrent, not parallel: runtime-agnostic);
/// [`spawn`](Self::spawn) runs each handler call as a task of a runtime, so workers
/// run in parallel on a multi-threaded executor.
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
    batch: Option<usize>,
    stop: Arc<Stop>,
    message: std::marker::PhantomData<fn() -> M>,
}

/// The shared side of a [`StopHandle`].
#[derive(Debug, Default)]
struct Stop {
    requested: AtomicBool,
    /// Stop only once nothing is ready or running (for tests and batch jobs).
    when_idle: AtomicBool,
    grace: Mutex<Option<Duration>>,
    waker: AtomicWaker,
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
        *self.stop.grace.lock().unwrap_or_else(|p| p.into_inner()) = Some(grace);
        self.stop.requested.store(true, Ordering::Release);
        self.stop.waker.wake();
    }

    /// As [`stop`](Self::stop), but only once the group has nothing ready for this
    /// consumer and no handler runs: drains what is there, then stops. Messages that
    /// are delayed or waiting for a retry's backoff are not waited for.
    pub fn stop_when_idle(&self, grace: Duration) {
        self.stop.when_idle.store(true, Ordering::Release);
        self.stop(grace);
    }

    /// Whether a stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.stop.requested.load(Ordering::Acquire)
    }
}

type Invocation = BoxFuture<'static, ()>;

impl<M, C, F, Fut> Consumer<M, C, F>
where
    M: DeserializeOwned + Send + 'static,
    C: Codec,
    F: Fn(M) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutcome,
{
    pub(crate) fn new(inner: Arc<Inner<C>>, group: &str, handler: F) -> Self {
        Consumer {
            inner,
            group: group.to_owned(),
            handler: Arc::new(handler),
            workers: 1,
            start: StartFrom::Latest,
            batch: None,
            stop: Arc::default(),
            message: std::marker::PhantomData,
        }
    }

    /// How many messages are handled at once (at least 1; default 1).
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

    /// How many messages are claimed at once (default: the number of workers, at most
    /// [`DEFAULT_CLAIM_BATCH`]).
    pub fn claim_batch(mut self, batch: usize) -> Self {
        self.batch = Some(batch.max(1));
        self
    }

    /// A handle that stops the flow gracefully.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            stop: Arc::clone(&self.stop),
        }
    }

    /// Drives the flow in the current task until it is stopped.
    pub async fn run(self) -> Result<(), QueueError> {
        self.drive(None).await
    }

    /// Spawns the flow on `runtime`, each handler call as a task of its own; await the
    /// handle for the flow's end.
    pub fn spawn(
        self,
        runtime: &SharedRuntime,
    ) -> crate::runtime::JoinHandle<Result<(), QueueError>> {
        let rt = Arc::clone(runtime);
        runtime.spawn(self.drive(Some(rt)))
    }

    async fn drive(self, runtime: Option<SharedRuntime>) -> Result<(), QueueError> {
        self.inner
            .backend
            .create_group(&self.group, self.start)
            .await?;
        let batch = self
            .batch
            .unwrap_or_else(|| self.workers.min(DEFAULT_CLAIM_BATCH));
        let mut deliveries: Option<Deliveries<M, C>> =
            Some(Deliveries::new(Arc::clone(&self.inner), &self.group).claim_batch(batch));
        let mut running: FuturesUnordered<Invocation> = FuturesUnordered::new();
        let mut grace: Option<Sleep> = None;
        let clock = Arc::clone(&self.inner.runtime);
        std::future::poll_fn(|cx| {
            self.stop.waker.register(cx.waker());
            loop {
                while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {}
                let stopping = self.stop.requested.load(Ordering::Acquire);
                let when_idle = self.stop.when_idle.load(Ordering::Acquire);
                if stopping && !when_idle && deliveries.is_some() {
                    // No new messages; what was claimed ahead goes back now.
                    deliveries = None;
                }
                if stopping && grace.is_none() {
                    let period = self
                        .stop
                        .grace
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .unwrap_or(Duration::ZERO);
                    if !when_idle {
                        grace = Some(clock.sleep_until(clock.now() + period));
                    }
                }
                if let Some(timer) = grace.as_mut() {
                    if running.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    if timer.as_mut().poll(cx).is_ready() {
                        // Out of time: cancelled handlers' leases retry their messages.
                        running.clear();
                        return Poll::Ready(Ok(()));
                    }
                }
                let Some(stream) = deliveries.as_mut() else {
                    if running.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Pending;
                };
                if running.len() >= self.workers {
                    return Poll::Pending;
                }
                match Pin::new(&mut *stream).poll_next(cx) {
                    Poll::Ready(Some(Ok(delivery))) => {
                        running.push(self.invoke(delivery, runtime.as_ref()));
                    }
                    Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(error)),
                    Poll::Ready(None) => deliveries = None,
                    Poll::Pending => {
                        if stopping && when_idle && running.is_empty() && stream.is_idle() {
                            // Drained: stop as asked.
                            self.stop.when_idle.store(false, Ordering::Release);
                            continue;
                        }
                        return Poll::Pending;
                    }
                }
            }
        })
        .await
    }

    fn invoke(&self, delivery: Delivery<M>, runtime: Option<&SharedRuntime>) -> Invocation {
        let handler = Arc::clone(&self.handler);
        let body = async move {
            let (message, lease) = delivery.into_parts();
            let called = std::panic::catch_unwind(AssertUnwindSafe(|| handler(message)));
            let outcome = match called {
                Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
                Err(panic) => Err(panic),
            };
            // A failed answer (the backend failed) leaves the lease to run out: the
            // message is delivered again.
            let _ = match outcome {
                Ok(outcome) => match outcome.into_result() {
                    Ok(()) => lease.ack().await,
                    Err(error) => lease.retry(error).await,
                },
                Err(panic) => {
                    let text = match panic_message(panic.as_ref()) {
                        Some(message) => format!("handler panicked: {message}"),
                        None => "handler panicked".to_owned(),
                    };
                    lease.retry(text).await
                }
            };
        };
        match runtime {
            None => body.boxed(),
            Some(rt) => {
                let handle = rt.spawn(body);
                // Dropping this future (a stop past its grace) aborts the task, whose
                // lease then retries the message.
                let abort = handle.abort_handle();
                let guard = AbortOnDrop(abort);
                async move {
                    let _ = handle.await;
                    drop(guard);
                }
                .boxed()
            }
        }
    }
}

use std::pin::Pin;

/// Aborts a spawned handler call when the flow drops it.
struct AbortOnDrop(futures_util::future::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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
            .finish_non_exhaustive()
    }
}
