//! The runtime contract, on every runtime flavour.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{matrix, timed_matrix};
use futures::channel::oneshot;
use futures::future::{self, Either};
use riverbed::runtime::{JoinError, RuntimeExt};

matrix! {
    /// A spawned task's output comes back through its handle.
    async fn spawn_and_join(rt) {
        let handle = rt.spawn(async { String::from("riverbed") });
        assert_eq!(handle.await.unwrap(), "riverbed");

        let handles: Vec<_> = (0..16u64).map(|i| rt.spawn(async move { i * i })).collect();
        let mut sum = 0;
        for handle in handles {
            sum += handle.await.unwrap();
        }
        assert_eq!(sum, (0..16).map(|i| i * i).sum::<u64>());
    }

    /// A task finishes before its handle resolves, and `is_finished` says so.
    async fn finished_after_join(rt) {
        let (tx, rx) = oneshot::channel::<u8>();
        let handle = rt.spawn(async move { rx.await.unwrap() + 1 });
        assert!(!handle.is_finished());
        tx.send(1).unwrap();
        let abort = handle.abort_handle();
        assert_eq!(handle.await.unwrap(), 2);
        // Too late to abort: nothing happens.
        abort.abort();
    }

    /// Aborting stops the task: its future is dropped and its handle reports `Aborted`.
    async fn abort(rt) {
        let (tx, rx) = oneshot::channel::<()>();
        let ran_on = Arc::new(AtomicBool::new(false));
        let task_ran_on = ran_on.clone();
        let handle = rt.spawn(async move {
            let _ = rx.await;
            task_ran_on.store(true, Ordering::SeqCst);
        });
        handle.abort();
        let err = handle.await.unwrap_err();
        assert!(err.is_aborted());
        assert!(matches!(err, JoinError::Aborted));
        assert_eq!(err.to_string(), "task was aborted before it completed");
        // The task's future, and the receiver in it, are gone.
        assert!(tx.send(()).is_err());
        assert!(!ran_on.load(Ordering::SeqCst));
    }

    /// A panic is caught and reported, with its payload.
    async fn panic_is_a_join_error(rt) {
        let err = rt.spawn(async { panic!("boom {}", 42) }).await.unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.panic_message(), Some("boom 42"));
        assert_eq!(err.to_string(), "task panicked: boom 42");

        let err = rt
            .spawn(async { std::panic::panic_any(7_u8) })
            .await
            .unwrap_err();
        assert_eq!(err.panic_message(), None);
        assert_eq!(err.into_panic().unwrap().downcast::<u8>().ok().map(|b| *b), Some(7));

        // The runtime is still usable.
        assert_eq!(rt.spawn(async { 1 }).await.unwrap(), 1);
    }

    /// Tasks may spawn tasks on the runtime they were given.
    async fn spawn_from_within_a_task(rt) {
        let task_rt = rt.clone();
        let handle = rt.spawn(async move {
            let children: Vec<_> = (1..=4u32)
                .map(|i| {
                    let grandchild_rt = task_rt.clone();
                    task_rt.spawn(async move {
                        grandchild_rt.spawn(async move { i * 10 }).await.unwrap() + i
                    })
                })
                .collect();
            let mut sum = 0;
            for child in children {
                sum += child.await.unwrap();
            }
            sum
        });
        assert_eq!(handle.await.unwrap(), 110);
    }

    /// Dropping a handle detaches the task; it still runs to completion.
    async fn dropped_handle_detaches(rt) {
        let (tx, rx) = oneshot::channel();
        drop(rt.spawn(async move { tx.send("done").unwrap() }));
        assert_eq!(rx.await.unwrap(), "done");
    }

    /// A raw `spawn_boxed` task runs too.
    async fn spawn_boxed_runs(rt) {
        let (tx, rx) = oneshot::channel();
        rt.spawn_boxed(Box::pin(async move { tx.send(3).unwrap() }));
        assert_eq!(rx.await.unwrap(), 3);
    }
}

timed_matrix! {
    /// A sleep lasts at least its duration on the runtime's clock.
    async fn sleep_waits_at_least_its_duration(rt) {
        let start = rt.now();
        rt.sleep(Duration::from_millis(20)).await;
        assert!(rt.now() - start >= Duration::from_millis(20));

        let deadline = rt.now() + Duration::from_millis(5);
        rt.sleep_until(deadline).await;
        assert!(rt.now() >= deadline);

        // A deadline that has passed completes at once.
        rt.sleep_until(rt.now()).await;
        rt.sleep(Duration::ZERO).await;
    }

    /// Of two sleeps, the one with the earlier deadline completes first.
    async fn sleep_ordering(rt) {
        let start = rt.now();
        let short = rt.sleep(Duration::from_millis(10));
        let long = rt.sleep(Duration::from_millis(40));
        let long = match future::select(short, long).await {
            Either::Left(((), long)) => long,
            Either::Right(_) => panic!("the later deadline completed first"),
        };
        assert!(rt.now() - start >= Duration::from_millis(10));
        long.await;
        assert!(rt.now() - start >= Duration::from_millis(40));
    }

    /// Sleeps in concurrent tasks each last at least their duration.
    async fn concurrent_sleeps(rt) {
        let start = rt.now();
        let handles: Vec<_> = [30u64, 10, 20]
            .into_iter()
            .map(|millis| {
                let task_rt = rt.clone();
                let deadline = start + Duration::from_millis(millis);
                rt.spawn(async move {
                    task_rt.sleep_until(deadline).await;
                    (deadline, task_rt.now())
                })
            })
            .collect();
        for handle in handles {
            let (deadline, woke) = handle.await.unwrap();
            assert!(woke >= deadline);
        }
    }

    /// A timeout elapses when its future does not complete in time.
    async fn timeout_elapsed(rt) {
        let start = rt.now();
        let result = rt
            .timeout(Duration::from_millis(15), future::pending::<()>())
            .await;
        assert!(result.is_err());
        assert_eq!(result.unwrap_err().to_string(), "deadline elapsed");
        assert!(rt.now() - start >= Duration::from_millis(15));
    }

    /// A timeout passes the output through when its future completes in time.
    async fn timeout_not_elapsed(rt) {
        assert_eq!(rt.timeout(Duration::from_secs(3600), async { 5 }).await, Ok(5));

        let task = rt.spawn(async { "from a task" });
        let joined = rt.timeout(Duration::from_secs(3600), task).await;
        assert_eq!(joined.unwrap().unwrap(), "from a task");

        let slept = rt
            .timeout(Duration::from_secs(3600), rt.sleep(Duration::from_millis(5)))
            .await;
        assert!(slept.is_ok());
    }

    /// Tasks may sleep and spawn sleeping tasks on the runtime they were given.
    async fn spawn_and_sleep_from_within_a_task(rt) {
        let task_rt = rt.clone();
        let start = rt.now();
        let handle = rt.spawn(async move {
            let child_rt = task_rt.clone();
            let child = task_rt.spawn(async move {
                child_rt.sleep(Duration::from_millis(10)).await;
                child_rt.now()
            });
            task_rt.sleep(Duration::from_millis(5)).await;
            child.await.unwrap()
        });
        assert!(handle.await.unwrap() - start >= Duration::from_millis(10));
    }
}
