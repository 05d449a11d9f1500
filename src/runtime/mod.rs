//! The runtime abstraction: spawning, timers and the clock.
//!
//! Riverbed's components never name an executor. Where a component needs to run
//! something in the background (a worker pool, a handler flow that wants real
//! parallelism) or needs time (history by age, time operators, leases), it is handed a
//! [`Runtime`]. Everything else is a plain `Future` or `Stream` that any executor can
//! poll.
//!
//! # The trait is object-safe, on purpose
//!
//! [`Runtime`] has three required methods: spawn a boxed `Send` future, build a sleep
//! future for a deadline, and read the clock. Components keep an
//! `Arc<dyn Runtime>` ([`SharedRuntime`]), so no generic runtime parameter leaks into
//! every type a user names (`EventBus<P, K>`, not `EventBus<P, K, R>`). The price is one
//! allocation per spawn and per sleep, which is small beside the task or timer itself.
//! Generic conveniences — spawning a future with an output and getting a
//! [`JoinHandle`] back, `sleep(duration)`, `timeout` — live on [`RuntimeExt`], which is
//! implemented for every `Runtime`, `dyn Runtime` included.
//!
//! # Implementations
//!
//! | type | feature | notes |
//! |---|---|---|
//! | [`VirtualRuntime`] | always | deterministic executor on a virtual clock, for tests |
//! | `TokioRuntime` | `tokio` | ambient or given `tokio::runtime::Handle`; needs the time driver |
//! | `SmolRuntime` | `smol` | a given `Arc<smol::Executor>` or smol's global executor |
//!
//! Any other executor is one small `impl` away; the crate's tests implement it for
//! `futures::executor::ThreadPool` with `futures-timer` as the timer:
//!
//! ```
//! use std::future::Future;
//! use std::sync::Arc;
//! use std::task::{Context, Poll, Wake, Waker};
//! use std::thread::{self, Thread};
//! use std::time::{Duration, Instant};
//!
//! use futures_channel::oneshot;
//! use futures_util::future::BoxFuture;
//! use riverbed::runtime::{Runtime, RuntimeExt, Sleep};
//!
//! /// The smallest executor there is: every task gets a thread of its own.
//! #[derive(Debug)]
//! struct ThreadPerTask;
//!
//! impl Runtime for ThreadPerTask {
//!     fn spawn_boxed(&self, task: BoxFuture<'static, ()>) {
//!         thread::spawn(move || block_on(task));
//!     }
//!
//!     fn sleep_until(&self, deadline: Instant) -> Sleep {
//!         // One timer thread per sleep: wasteful, but correct. A real implementation
//!         // hands the deadline to its executor's timer.
//!         let (fire, fired) = oneshot::channel::<()>();
//!         thread::spawn(move || {
//!             thread::sleep(deadline.saturating_duration_since(Instant::now()));
//!             let _ = fire.send(());
//!         });
//!         Box::pin(async move {
//!             let _ = fired.await;
//!         })
//!     }
//!
//!     fn now(&self) -> Instant {
//!         Instant::now()
//!     }
//! }
//!
//! /// Polls `future` on the current thread, parking the thread between wake-ups.
//! fn block_on<F: Future>(future: F) -> F::Output {
//!     struct Unpark(Thread);
//!     impl Wake for Unpark {
//!         fn wake(self: Arc<Self>) {
//!             self.0.unpark();
//!         }
//!     }
//!
//!     let mut future = std::pin::pin!(future);
//!     let waker = Waker::from(Arc::new(Unpark(thread::current())));
//!     let mut cx = Context::from_waker(&waker);
//!     loop {
//!         match future.as_mut().poll(&mut cx) {
//!             Poll::Ready(output) => return output,
//!             Poll::Pending => thread::park(),
//!         }
//!     }
//! }
//!
//! // Every riverbed convenience now works on it.
//! let rt = ThreadPerTask;
//! let answer = block_on(async {
//!     let task = rt.spawn(async { 6 * 7 });
//!     let started = rt.now();
//!     rt.sleep(Duration::from_millis(5)).await;
//!     assert!(rt.now() - started >= Duration::from_millis(5));
//!     task.await.expect("the task completes")
//! });
//! assert_eq!(answer, 42);
//!
//! let never = std::future::pending::<()>();
//! let timed_out = block_on(rt.timeout(Duration::from_millis(1), never));
//! assert!(timed_out.is_err());
//! ```

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use futures_channel::oneshot;
use futures_util::FutureExt;
use futures_util::future::{AbortHandle, Abortable, BoxFuture};

mod virtual_clock;
pub use virtual_clock::VirtualRuntime;

mod deadline;
mod wall;
pub(crate) use deadline::{Deadline, poll_due};

#[cfg(feature = "tokio")]
mod tokio;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use self::tokio::{TokioContextError, TokioRuntime};

#[cfg(feature = "smol")]
mod smol;
#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
pub use self::smol::SmolRuntime;

/// The tokio runtime the current thread is in, ready to hand to riverbed: the one
/// call before the first queue or spawned flow.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let rt = riverbed::runtime::tokio();
/// let queue: riverbed::queue::MessageQueue<u32> = riverbed::queue::MessageQueue::new("jobs", &rt);
/// # let _ = queue;
/// # }
/// ```
///
/// # Panics
///
/// Outside a tokio runtime context, as [`TokioRuntime::current`] does.
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub fn tokio() -> SharedRuntime {
    Arc::new(TokioRuntime::current())
}

/// smol's global executor, ready to hand to riverbed ([`SmolRuntime::global`]).
#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
pub fn smol() -> SharedRuntime {
    Arc::new(SmolRuntime::global())
}

/// A boxed timer future, as returned by [`Runtime::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A runtime shared between components.
pub type SharedRuntime = Arc<dyn Runtime>;

/// What riverbed needs from an executor: spawn, a timer and a clock.
///
/// See the [module docs](self) for why the trait is object-safe and how to implement
/// it for an executor riverbed does not ship.
pub trait Runtime: Send + Sync + fmt::Debug + 'static {
    /// Runs `task` in the background until it completes.
    ///
    /// The task must be polled to completion unless the runtime itself shuts down;
    /// riverbed wraps every task it spawns so that panics are caught and aborts and
    /// outputs travel through a [`JoinHandle`].
    fn spawn_boxed(&self, task: BoxFuture<'static, ()>);

    /// A future that completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> Sleep;

    /// The current instant on this runtime's clock.
    fn now(&self) -> Instant;

    /// The current wall-clock time on this runtime's clock, used for timestamps (of
    /// events, of queue messages).
    ///
    /// The default reads the system clock through the CPU's time-stamp counter,
    /// anchored to `SystemTime::now()` every 100 ms on each thread: about a third of
    /// the cost, within a few hundred nanoseconds of it. The [`VirtualRuntime`]
    /// returns its own, deterministic, time.
    fn system_time(&self) -> SystemTime {
        wall::system_time()
    }
}

impl<R: Runtime + ?Sized> Runtime for Arc<R> {
    fn spawn_boxed(&self, task: BoxFuture<'static, ()>) {
        (**self).spawn_boxed(task)
    }
    fn sleep_until(&self, deadline: Instant) -> Sleep {
        (**self).sleep_until(deadline)
    }
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn system_time(&self) -> SystemTime {
        (**self).system_time()
    }
}

/// Conveniences built on [`Runtime`], available on every runtime (`dyn Runtime` too).
pub trait RuntimeExt: Runtime {
    /// Spawns `future` and returns a handle that resolves to its output.
    ///
    /// A panic inside the future is caught and reported as [`JoinError::Panicked`];
    /// [`JoinHandle::abort`] stops it at its next poll. Dropping the handle detaches the
    /// task: it keeps running.
    fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (abort, registration) = AbortHandle::new_pair();
        let (tx, rx) = oneshot::channel();
        let finished = Arc::new(AtomicBool::new(false));
        // Dropped when the task ends for any reason, the runtime dropping it included;
        // bound first so it is dropped last, after the result has been sent.
        let guard = FinishedGuard(finished.clone());
        let task = Abortable::new(AssertUnwindSafe(future).catch_unwind(), registration);
        self.spawn_boxed(Box::pin(async move {
            let _guard = guard;
            let result = match task.await {
                Ok(Ok(output)) => Ok(output),
                Ok(Err(panic)) => Err(JoinError::Panicked(panic)),
                Err(_aborted) => Err(JoinError::Aborted),
            };
            let _ = tx.send(result);
        }));
        JoinHandle {
            rx,
            abort,
            finished,
        }
    }

    /// A future that completes after `duration` on this runtime's clock.
    fn sleep(&self, duration: Duration) -> Sleep {
        let deadline = self.now().checked_add(duration);
        match deadline {
            Some(deadline) => self.sleep_until(deadline),
            // Past the end of representable time: never completes.
            None => Box::pin(futures_util::future::pending()),
        }
    }

    /// Runs `future` with a time limit of `duration`.
    fn timeout<F: Future>(&self, duration: Duration, future: F) -> TimeoutFuture<F> {
        TimeoutFuture {
            future: Box::pin(future),
            sleep: self.sleep(duration),
        }
    }
}

impl<R: Runtime + ?Sized> RuntimeExt for R {}

/// The error of a [`JoinHandle`]: the task did not produce its output.
pub enum JoinError {
    /// The task was aborted through [`JoinHandle::abort`], or the runtime dropped it
    /// before it completed (for example at shutdown).
    Aborted,
    /// The task panicked; the payload is the panic's.
    Panicked(Box<dyn Any + Send + 'static>),
}

impl JoinError {
    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panicked(_))
    }

    /// Whether the task was aborted or dropped by its runtime.
    pub fn is_aborted(&self) -> bool {
        matches!(self, JoinError::Aborted)
    }

    /// The panic message, when the panic payload was a string.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            JoinError::Panicked(payload) => panic_message(payload.as_ref()),
            JoinError::Aborted => None,
        }
    }

    /// The panic payload, to resume the panic with `std::panic::resume_unwind`.
    pub fn into_panic(self) -> Option<Box<dyn Any + Send + 'static>> {
        match self {
            JoinError::Panicked(payload) => Some(payload),
            JoinError::Aborted => None,
        }
    }
}

/// "panicked" (or "`what` panicked"), with the panic message when the payload is a
/// string: how handler failures describe a caught panic.
pub(crate) fn panic_text(what: Option<&str>, payload: &(dyn Any + Send)) -> String {
    let subject = what.map_or_else(String::new, |what| format!("{what} "));
    match panic_message(payload) {
        Some(message) => format!("{subject}panicked: {message}"),
        None => format!("{subject}panicked"),
    }
}

/// The message of a panic payload, when it is a string.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Aborted => f.write_str("Aborted"),
            JoinError::Panicked(_) => f
                .debug_tuple("Panicked")
                .field(&self.panic_message().unwrap_or("<non-string payload>"))
                .finish(),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Aborted => f.write_str("task was aborted before it completed"),
            JoinError::Panicked(_) => match self.panic_message() {
                Some(msg) => write!(f, "task panicked: {msg}"),
                None => f.write_str("task panicked"),
            },
        }
    }
}

impl std::error::Error for JoinError {}

/// A handle to a task spawned with [`RuntimeExt::spawn`]; await it for the output.
///
/// Dropping the handle detaches the task.
#[must_use = "dropping a JoinHandle detaches the task; await it or call abort()"]
pub struct JoinHandle<T> {
    rx: oneshot::Receiver<Result<T, JoinError>>,
    abort: AbortHandle,
    finished: Arc<AtomicBool>,
}

/// Marks a spawned task as finished when the task's future is dropped.
struct FinishedGuard(Arc<AtomicBool>);

impl Drop for FinishedGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl<T> JoinHandle<T> {
    /// Stops the task at its next poll; awaiting the handle then gives
    /// [`JoinError::Aborted`] (unless the task had already completed).
    pub fn abort(&self) {
        self.abort.abort();
    }

    /// A handle that can abort the task without owning the `JoinHandle`.
    pub fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    /// Whether the task has finished (completed, panicked, been aborted or been dropped
    /// by its runtime).
    ///
    /// Once this returns `true`, awaiting the handle completes without waiting. After
    /// [`abort`](Self::abort) it stays `false` until the task has actually stopped, at
    /// its next poll.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.rx.poll_unpin(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            // The runtime dropped the task without running it to the end.
            Poll::Ready(Err(oneshot::Canceled)) => Poll::Ready(Err(JoinError::Aborted)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("aborted", &self.abort.is_aborted())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// The error of [`TimeoutFuture`]: the time limit passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline elapsed")]
pub struct Elapsed;

/// A future with a time limit, from [`RuntimeExt::timeout`].
#[must_use = "futures do nothing unless polled"]
pub struct TimeoutFuture<F> {
    future: Pin<Box<F>>,
    sleep: Sleep,
}

impl<F: Future> Future for TimeoutFuture<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(output) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> fmt::Debug for TimeoutFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutFuture").finish_non_exhaustive()
    }
}
