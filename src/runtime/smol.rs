//! [`Runtime`] over smol.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;

use super::{Runtime, Sleep};

/// A [`Runtime`] that spawns onto a smol executor and uses smol's timer
/// ([`smol::Timer`]).
///
/// Two kinds of executor can be used:
///
/// * [`SmolRuntime::global`]: smol's global executor ([`smol::spawn`]), which runs on
///   threads of its own; nothing needs to drive it.
/// * [`SmolRuntime::new`]: a [`smol::Executor`] of yours. It only runs tasks while some
///   thread drives it, for example with `smol::block_on(executor.run(future))` (run it
///   on several threads for parallelism).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use riverbed::runtime::{RuntimeExt, SmolRuntime};
///
/// let executor = Arc::new(smol::Executor::new());
/// let rt = SmolRuntime::new(executor.clone());
/// let out = smol::block_on(executor.run(async {
///     let task = rt.spawn(async { 21 * 2 });
///     rt.sleep(Duration::from_millis(1)).await;
///     task.await.unwrap()
/// }));
/// assert_eq!(out, 42);
/// ```
#[derive(Clone)]
pub struct SmolRuntime {
    executor: Option<Arc<smol::Executor<'static>>>,
}

impl SmolRuntime {
    /// A runtime that spawns onto smol's global executor, with [`smol::spawn`].
    pub fn global() -> Self {
        SmolRuntime { executor: None }
    }

    /// A runtime that spawns onto `executor`.
    ///
    /// Tasks only run while the executor is driven, for example by
    /// `smol::block_on(executor.run(future))` on one or more threads.
    pub fn new(executor: Arc<smol::Executor<'static>>) -> Self {
        SmolRuntime {
            executor: Some(executor),
        }
    }

    /// The executor tasks are spawned on; `None` for smol's global executor.
    pub fn executor(&self) -> Option<&Arc<smol::Executor<'static>>> {
        self.executor.as_ref()
    }
}

impl fmt::Debug for SmolRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let executor = match self.executor {
            Some(_) => "given",
            None => "global",
        };
        f.debug_struct("SmolRuntime")
            .field("executor", &executor)
            .finish()
    }
}

impl Runtime for SmolRuntime {
    fn spawn_boxed(&self, task: BoxFuture<'static, ()>) {
        match &self.executor {
            Some(executor) => executor.spawn(task).detach(),
            None => smol::spawn(task).detach(),
        }
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let timer = smol::Timer::at(deadline);
        Box::pin(async move {
            timer.await;
        })
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::RuntimeExt;
    use std::time::Duration;

    async fn exercise(rt: SmolRuntime) {
        let start = rt.now();
        let task_rt = rt.clone();
        let task = rt.spawn(async move {
            task_rt.sleep(Duration::from_millis(10)).await;
            task_rt.now()
        });
        assert!(task.await.unwrap() - start >= Duration::from_millis(10));

        let forever = rt.spawn(std::future::pending::<()>());
        forever.abort();
        assert!(forever.await.unwrap_err().is_aborted());

        let panicked = rt.spawn(async { panic!("smol boom") });
        assert_eq!(
            panicked.await.unwrap_err().panic_message(),
            Some("smol boom")
        );

        let timed_out = rt
            .timeout(Duration::from_millis(5), std::future::pending::<()>())
            .await;
        assert!(timed_out.is_err());
    }

    #[test]
    fn works_on_a_given_executor() {
        let executor = Arc::new(smol::Executor::new());
        let rt = SmolRuntime::new(executor.clone());
        assert!(rt.executor().is_some());
        smol::block_on(executor.run(exercise(rt)));
    }

    #[test]
    fn works_on_the_global_executor() {
        let rt = SmolRuntime::global();
        assert!(rt.executor().is_none());
        assert!(format!("{rt:?}").contains("global"));
        smol::block_on(exercise(rt));
    }

    #[test]
    fn a_given_executor_runs_only_when_driven() {
        let executor = Arc::new(smol::Executor::new());
        let rt = SmolRuntime::new(executor.clone());
        let task = rt.spawn(async { 5 });
        assert!(!task.is_finished());
        assert!(executor.try_tick());
        assert!(task.is_finished());
        assert_eq!(smol::block_on(task).unwrap(), 5);
    }
}
