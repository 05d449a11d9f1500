//! The `Runtime` trait is open: a runtime written outside the crate (over
//! `futures::executor::ThreadPool` and `futures-timer`, in `tests/common`) runs bus
//! handler flows and timeouts like the built-in ones.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::FuturesRuntime;
use futures::executor::block_on;
use futures::stream::StreamExt;
use riverbed::bus::{EventBus, Filter};
use riverbed::runtime::{RuntimeExt, SharedRuntime};

const POOL_THREAD_PREFIX: &str = "riverbed-futures-";

fn pool_thread() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|name| name.starts_with(POOL_THREAD_PREFIX))
}

/// A handler flow spawned on the outside runtime handles every matching event, its
/// invocations run on the runtime's threads, and failures are counted.
#[test]
fn handler_flow_spawned_on_an_outside_runtime() {
    let rt: SharedRuntime = Arc::new(FuturesRuntime::new(2));
    block_on(async {
        let bus: EventBus<u32, &'static str> = EventBus::builder().clock(rt.clone()).build();
        let (tx, rx) = async_channel::unbounded();
        let handle = bus
            .on(Filter::kind("job"), move |e| {
                let tx = tx.clone();
                async move {
                    tx.send((e.payload, pool_thread())).await.unwrap();
                    if e.payload == 7 {
                        return Err("seven is refused");
                    }
                    Ok(())
                }
            })
            .concurrency(4)
            .name("pool-worker")
            .spawn(&rt);
        for n in 0..50 {
            bus.emit(if n % 5 == 0 { "other" } else { "job" }, n)
                .await
                .unwrap();
        }
        bus.close();
        let report = handle.await.expect("the flow ends once the bus is closed");
        assert!(report.is_finished());

        let mut handled = Vec::new();
        while let Ok((payload, on_pool)) = rx.try_recv() {
            assert!(
                on_pool,
                "invocation of {payload} ran off the runtime's threads"
            );
            handled.push(payload);
        }
        handled.sort_unstable();
        assert_eq!(handled, (0..50).filter(|n| n % 5 != 0).collect::<Vec<_>>());

        let stats = bus.stats();
        let worker = &stats.handlers[0];
        assert_eq!(worker.name, "pool-worker");
        assert_eq!((worker.handled, worker.failed, worker.panicked), (39, 1, 0));
        assert_eq!(worker.recent_failures[0].message, "seven is refused");
        assert_eq!(worker.in_flight, 0);
    });
}

/// Publishing from tasks of the outside runtime to a flow spawned on it.
#[test]
fn publishers_and_flow_all_on_an_outside_runtime() {
    let rt: SharedRuntime = Arc::new(FuturesRuntime::new(2));
    block_on(async {
        let bus: EventBus<u64, u8> = EventBus::new();
        let (tx, rx) = async_channel::unbounded();
        let flow = bus
            .on(Filter::all(), move |e| {
                let tx = tx.clone();
                async move { tx.send((e.kind, e.payload)).await.unwrap() }
            })
            .spawn(&rt);
        let publishers: Vec<_> = (0..4u8)
            .map(|kind| {
                let bus = bus.clone();
                rt.spawn(async move {
                    for n in 0..100 {
                        bus.emit(kind, n).await.unwrap();
                    }
                })
            })
            .collect();
        for publisher in publishers {
            publisher.await.unwrap();
        }
        bus.close();
        assert!(flow.await.unwrap().is_finished());

        // Concurrency 1: each publisher's events are handled in its order.
        let mut next = [0u64; 4];
        let mut count = 0;
        while let Ok((kind, payload)) = rx.try_recv() {
            assert_eq!(payload, next[kind as usize], "publisher {kind}");
            next[kind as usize] += 1;
            count += 1;
        }
        assert_eq!((count, next), (400, [100; 4]));
    });
}

/// `timeout` works on the outside runtime: it elapses on a future that never
/// completes, and passes through the output of one that does.
#[test]
fn timeout_on_an_outside_runtime() {
    let rt: SharedRuntime = Arc::new(FuturesRuntime::new(2));
    block_on(async {
        let started = Instant::now();
        let elapsed = rt
            .timeout(Duration::from_millis(20), futures::future::pending::<()>())
            .await;
        assert!(elapsed.is_err());
        assert!(started.elapsed() >= Duration::from_millis(20));

        assert_eq!(
            rt.timeout(Duration::from_secs(60), async { 5 }).await,
            Ok(5)
        );
        let task = rt.spawn(async { pool_thread() });
        let on_pool = rt.timeout(Duration::from_secs(60), task).await;
        assert!(
            on_pool.unwrap().unwrap(),
            "spawned off the runtime's threads"
        );

        // A subscription with nothing to read times out; with an event, it does not.
        let bus: EventBus<u32, &'static str> = EventBus::new();
        let mut sub = bus.subscribe(Filter::all());
        assert!(
            rt.timeout(Duration::from_millis(10), sub.next())
                .await
                .is_err()
        );
        let publisher = {
            let bus = bus.clone();
            rt.spawn(async move { bus.emit("late", 1).await.unwrap().seq })
        };
        let event = rt
            .timeout(Duration::from_secs(60), sub.next())
            .await
            .expect("an event arrives")
            .expect("not ended")
            .expect("no lag");
        assert_eq!((event.kind, event.payload), ("late", 1));
        assert_eq!(publisher.await.unwrap(), event.seq);
    });
}

/// The runtime can be used as its own type, not only behind `SharedRuntime`.
#[test]
fn outside_runtime_by_value() {
    let pool = FuturesRuntime::new(1);
    let answer = block_on(async {
        let task = pool.spawn(async { 6 * 7 });
        pool.sleep(Duration::from_millis(1)).await;
        task.await.unwrap()
    });
    assert_eq!(answer, 42);
}
