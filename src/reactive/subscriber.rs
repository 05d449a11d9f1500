//! [`Subscriber`]: a handler flow over a [`ReactiveStream`](super::ReactiveStream).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;

use super::subscription::{StreamError, Subscription};
use crate::BoxError;
use crate::bus::HandlerOutcome;
use crate::runtime::{JoinHandle, RuntimeExt, SharedRuntime};

/// A handler flow from [`ReactiveStream::subscribe`](super::ReactiveStream::subscribe):
/// runs the handler for every item until the stream ends.
///
/// Nothing runs until the flow is driven: `.await` it (it implements [`IntoFuture`]),
/// call [`run`](Self::run) to drive it in the current task, or [`spawn`](Self::spawn)
/// it on a runtime, where each invocation is a task of its own. The flow's output says
/// how the stream ended: `Ok(())` when it completed, `Err(e)` when it failed with `e`
/// (after every item before the error was handled).
///
/// Up to [`concurrency`](Self::concurrency) invocations run at once (default 1: items
/// are handled one after the other, in order). The flow subscribes with the `Block`
/// policy: a slow handler slows emitters down rather than losing items.
///
/// An invocation that returns `Err` or panics is isolated: it is counted in the
/// stream's [`ReactiveStats`](super::ReactiveStats) (`handler_failures`,
/// `handler_panics`) and the flow goes on with the next item.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use riverbed::reactive::ReactiveStream;
///
/// # futures::executor::block_on(async {
/// let stream: ReactiveStream<u32> = ReactiveStream::new("numbers");
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = Arc::clone(&seen);
/// let flow = stream
///     .subscribe(move |n| {
///         let sink = Arc::clone(&sink);
///         async move {
///             if n == 2 {
///                 return Err("two is not welcome");
///             }
///             sink.lock().unwrap().push(n);
///             Ok(())
///         }
///     })
///     .concurrency(2);
/// for n in 1..=3 {
///     stream.emit(n).await.unwrap();
/// }
/// stream.complete().unwrap();
/// flow.await.unwrap(); // handles all three, then ends with the stream
///
/// assert_eq!(*seen.lock().unwrap(), [1, 3]);
/// assert_eq!(stream.stats().handler_failures, 1);
/// # });
/// ```
#[must_use = "a subscriber flow does nothing until it is awaited or spawned"]
pub struct Subscriber<T: Clone + Send + Sync + 'static, E, F> {
    subscription: Subscription<T, E>,
    handler: Arc<F>,
    concurrency: usize,
    stop: Arc<Stop>,
}

/// The flag behind an [`Unsubscribe`] handle, and the flow's waker.
#[derive(Debug, Default)]
struct Stop {
    stopped: AtomicBool,
    waker: AtomicWaker,
}

/// Ends a [`Subscriber`] flow from outside it; from
/// [`Subscriber::unsubscribe_handle`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Unsubscribe {
    stop: Arc<Stop>,
}

impl Unsubscribe {
    /// Unsubscribes the flow: it takes no more items, lets the invocations already
    /// running finish, and then ends with `Ok(())`. Items waiting for it are released
    /// with its subscription. Calling it again does nothing.
    pub fn unsubscribe(&self) {
        self.stop.stopped.store(true, Ordering::Release);
        self.stop.waker.wake();
    }

    /// Whether [`unsubscribe`](Self::unsubscribe) was called.
    pub fn is_unsubscribed(&self) -> bool {
        self.stop.stopped.load(Ordering::Acquire)
    }
}

/// How one invocation ended: its outcome, or the panic's message.
type Invocation = BoxFuture<'static, Result<Result<(), BoxError>, ()>>;

impl<T, E, F, Fut> Subscriber<T, E, F>
where
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutcome,
{
    pub(crate) fn new(subscription: Subscription<T, E>, handler: F) -> Self {
        Subscriber {
            subscription,
            handler: Arc::new(handler),
            concurrency: 1,
            stop: Arc::default(),
        }
    }

    /// A handle that ends this flow from outside (see [`Unsubscribe`]); aborting a
    /// spawned flow's `JoinHandle` or dropping the flow also unsubscribes it, at once.
    pub fn unsubscribe_handle(&self) -> Unsubscribe {
        Unsubscribe {
            stop: Arc::clone(&self.stop),
        }
    }

    /// How many invocations may run at once (at least 1; default 1).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    /// Drives the flow inside the current task; invocations run concurrently (up to
    /// the limit) but not in parallel.
    pub async fn run(self) -> Result<(), E> {
        self.drive(None).await
    }

    /// Spawns the flow on `runtime`; each invocation is spawned as its own task, so
    /// they can run in parallel. Await the handle for the flow's output.
    pub fn spawn(self, runtime: &SharedRuntime) -> JoinHandle<Result<(), E>> {
        let rt = Arc::clone(runtime);
        runtime.spawn(self.drive(Some(rt)))
    }

    async fn drive(self, runtime: Option<SharedRuntime>) -> Result<(), E> {
        let mut running: FuturesUnordered<Invocation> = FuturesUnordered::new();
        let mut ended: Option<Result<(), E>> = None;
        let stream = Arc::clone(&self.subscription.stream);
        let counters = &stream.counters;
        let Subscriber {
            subscription,
            handler,
            concurrency,
            stop,
        } = self;
        let mut subscription = Some(subscription);
        std::future::poll_fn(|cx| {
            stop.waker.register(cx.waker());
            loop {
                if subscription.is_some() && stop.stopped.load(Ordering::Acquire) {
                    // Unsubscribed: leave the stream now, finish what runs.
                    subscription = None;
                    ended.get_or_insert(Ok(()));
                }
                while let Poll::Ready(Some(result)) = running.poll_next_unpin(cx) {
                    match result {
                        Ok(Ok(())) => counters.handled.inc(),
                        Ok(Err(_)) => counters.handler_failures.inc(),
                        Err(()) => counters.handler_panics.inc(),
                    }
                }
                if let Some(sub) = subscription
                    .as_mut()
                    .filter(|_| running.len() < concurrency)
                {
                    match sub.poll_next_unpin(cx) {
                        Poll::Ready(Some(Ok(item))) => {
                            running.push(invoke(&handler, item, runtime.as_ref()));
                            continue;
                        }
                        // Block subscribers never lag.
                        Poll::Ready(Some(Err(StreamError::Lagged(_)))) => continue,
                        Poll::Ready(Some(Err(StreamError::Failed(error)))) => {
                            subscription = None;
                            ended = Some(Err(error));
                        }
                        Poll::Ready(None) => {
                            subscription = None;
                            ended = Some(Ok(()));
                        }
                        Poll::Pending => {}
                    }
                }
                if running.is_empty() {
                    if let Some(end) = ended.take() {
                        return Poll::Ready(end);
                    }
                }
                return Poll::Pending;
            }
        })
        .await
    }
}

/// Runs the handler on one item, as a task of `runtime` if there is one, catching
/// panics.
fn invoke<T, F, Fut>(handler: &Arc<F>, item: T, runtime: Option<&SharedRuntime>) -> Invocation
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutcome,
{
    let handler = Arc::clone(handler);
    let body = async move {
        // The handler's synchronous part may panic too; catch it like the rest.
        let future =
            std::panic::catch_unwind(AssertUnwindSafe(|| handler(item))).map_err(|_| ())?;
        AssertUnwindSafe(future)
            .catch_unwind()
            .await
            .map(HandlerOutcome::into_result)
            .map_err(|_| ())
    };
    match runtime {
        None => body.boxed(),
        Some(rt) => {
            let handle = rt.spawn(body);
            async move { handle.await.unwrap_or(Err(())) }.boxed()
        }
    }
}

impl<T, E, F, Fut> IntoFuture for Subscriber<T, E, F>
where
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutcome,
{
    type Output = Result<(), E>;
    type IntoFuture = BoxFuture<'static, Result<(), E>>;

    fn into_future(self) -> Self::IntoFuture {
        self.run().boxed()
    }
}

impl<T: Clone + Send + Sync + 'static, E, F> fmt::Debug for Subscriber<T, E, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}
