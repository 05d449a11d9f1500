//! [`Runtime`] over tokio.

use std::time::Instant;

use futures_util::future::BoxFuture;
use tokio::runtime::Handle;

use super::{Runtime, Sleep};

/// A [`Runtime`] that spawns onto a tokio runtime and uses tokio's timer and clock.
///
/// It holds a [`tokio::runtime::Handle`], so it works on current-thread and
/// multi-thread runtimes alike, and may be used from any thread, inside the runtime or
/// not. Tasks run while the tokio runtime runs: on a current-thread runtime, only while
/// some thread is inside its `block_on`.
///
/// The tokio runtime must have its time driver enabled
/// ([`enable_time`](tokio::runtime::Builder::enable_time) or `enable_all`; `#[tokio::main]`
/// and `#[tokio::test]` do this): without it, [`sleep_until`](Runtime::sleep_until)
/// panics.
///
/// The clock is tokio's, so a paused tokio clock (tokio's `test-util` feature) is
/// honoured.
///
/// ```
/// use std::time::Duration;
/// use riverbed::runtime::{RuntimeExt, TokioRuntime};
///
/// let tokio_rt = tokio::runtime::Builder::new_current_thread()
///     .enable_time()
///     .build()
///     .unwrap();
/// let rt = TokioRuntime::from_handle(tokio_rt.handle().clone());
/// let out = tokio_rt.block_on(async {
///     let task = rt.spawn(async { 21 * 2 });
///     rt.sleep(Duration::from_millis(1)).await;
///     task.await.unwrap()
/// });
/// assert_eq!(out, 42);
/// ```
#[derive(Debug, Clone)]
pub struct TokioRuntime {
    handle: Handle,
}

impl TokioRuntime {
    /// The runtime the current thread is in (see [`Handle::current`]).
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime context; use
    /// [`try_current`](Self::try_current) to get an error instead.
    pub fn current() -> Self {
        Self::from_handle(Handle::current())
    }

    /// The runtime the current thread is in, or an error outside a tokio runtime
    /// context.
    pub fn try_current() -> Result<Self, TokioContextError> {
        Handle::try_current()
            .map(Self::from_handle)
            .map_err(|inner| TokioContextError { inner })
    }

    /// A runtime that spawns onto the tokio runtime behind `handle`.
    pub fn from_handle(handle: Handle) -> Self {
        TokioRuntime { handle }
    }

    /// The tokio handle tasks are spawned on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl From<Handle> for TokioRuntime {
    fn from(handle: Handle) -> Self {
        Self::from_handle(handle)
    }
}

impl Runtime for TokioRuntime {
    fn spawn_boxed(&self, task: BoxFuture<'static, ()>) {
        // Dropping tokio's JoinHandle detaches the task.
        drop(self.handle.spawn(task));
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        // Tokio binds a sleep to the runtime in context when it is created; enter ours,
        // so that sleeps made from other threads or executors use this runtime's timer.
        let _context = self.handle.enter();
        Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
            deadline,
        )))
    }

    fn now(&self) -> Instant {
        let _context = self.handle.enter();
        tokio::time::Instant::now().into_std()
    }
}

/// The error of [`TokioRuntime::try_current`]: the current thread is not in a tokio
/// runtime context (or its thread-local context is being destroyed).
#[derive(Debug, thiserror::Error)]
#[error("no tokio runtime to use: {inner}")]
pub struct TokioContextError {
    #[source]
    inner: tokio::runtime::TryCurrentError,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::RuntimeExt;
    use std::time::Duration;

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    fn multi_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap()
    }

    /// Spawn, join, sleep and abort on `tokio_rt` through a `TokioRuntime`.
    fn exercise(tokio_rt: &tokio::runtime::Runtime) {
        tokio_rt.block_on(async {
            let rt = TokioRuntime::current();
            let start = rt.now();
            let task_rt = rt.clone();
            let task = rt.spawn(async move {
                task_rt.sleep(Duration::from_millis(10)).await;
                task_rt.now()
            });
            let woke = task.await.unwrap();
            assert!(woke - start >= Duration::from_millis(10));

            let forever = rt.spawn(std::future::pending::<()>());
            forever.abort();
            assert!(forever.await.unwrap_err().is_aborted());

            let panicked = rt.spawn(async { panic!("tokio boom") });
            assert_eq!(
                panicked.await.unwrap_err().panic_message(),
                Some("tokio boom")
            );

            let timed_out = rt
                .timeout(Duration::from_millis(5), std::future::pending::<()>())
                .await;
            assert!(timed_out.is_err());
        });
    }

    #[test]
    fn works_on_a_current_thread_runtime() {
        exercise(&current_thread());
    }

    #[test]
    fn works_on_a_multi_thread_runtime() {
        exercise(&multi_thread());
    }

    #[test]
    fn try_current_outside_a_runtime_is_an_error() {
        let err: crate::runtime::TokioContextError = TokioRuntime::try_current().unwrap_err();
        assert!(err.to_string().contains("no tokio runtime"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
        let tokio_rt = current_thread();
        let _context = tokio_rt.enter();
        assert!(TokioRuntime::try_current().is_ok());
    }

    #[test]
    #[should_panic]
    fn current_outside_a_runtime_panics() {
        let _ = TokioRuntime::current();
    }

    #[test]
    fn sleeps_made_outside_the_runtime_use_its_timer() {
        let tokio_rt = multi_thread();
        let rt = TokioRuntime::from(tokio_rt.handle().clone());
        // Created on a thread with no tokio context, polled by another executor.
        let start = rt.now();
        let sleep = rt.sleep(Duration::from_millis(5));
        futures::executor::block_on(sleep);
        assert!(rt.now() - start >= Duration::from_millis(5));
        assert_eq!(
            rt.handle().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread
        );
    }
}
